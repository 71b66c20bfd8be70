"""The pure parts of bench/bgp.py: the addresses of the bulk run stay in the lab's BGP
pool and off the routers' client networks."""

from __future__ import annotations

import ipaddress

import pytest
from bench.bgp import _addresses

from metallb_lab.bgplab import POOL_RANGES
from metallb_lab.bird import client_net

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("n", [1, 300, 8192, 10_000, 16_384])
def test_bulk_addresses_are_distinct_pool_addresses_off_the_client_nets(n: int) -> None:
    got = _addresses(n)
    assert len(got) == len(set(got)) == n
    pools = [ipaddress.ip_network(r) for r in POOL_RANGES if "." in r]
    clients = [ipaddress.ip_network(f"{client_net(i)[0]}0/24") for i in range(32)]
    for a in map(ipaddress.ip_address, got):
        assert any(a in p for p in pools), a
        assert not any(a in c for c in clients), a

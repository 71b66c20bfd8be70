"""The pure parts of bench/bgp_scale.py: its addresses stay in its pool and off the
lab's other networks, the router's routes are counted against the nodes' next hops, and
a process counts as quiet only after a whole quiet window."""

from __future__ import annotations

import ipaddress

import pytest
from bench.bgp_scale import POOL, addresses, quiet, routed

from metallb_lab.bgp_netlab import POOLS
from metallb_lab.bird import ROUTER4, client_net

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("n", [1, 1000, 10_000, 16_382])
def test_addresses_are_distinct_hosts_of_the_pool_off_the_lab_networks(n: int) -> None:
    got = addresses(n)
    assert len(got) == len(set(got)) == n
    pool = ipaddress.ip_network(POOL)
    others = [ipaddress.ip_network(r) for rs in POOLS.values() for r in rs if "." in r]
    others += [ipaddress.ip_network(f"{client_net(i)[0]}0/24") for i in range(32)]
    others.append(ipaddress.ip_network(f"{ROUTER4}/24", strict=False))  # the nodes' LAN
    for a in map(ipaddress.ip_address, got):
        assert a in pool and a not in (pool.network_address, pool.broadcast_address), a
        assert not any(a in o for o in others), a


def test_more_addresses_than_the_pool_holds_are_refused() -> None:
    with pytest.raises(ValueError, match="do not fit"):
        addresses(16_383)


A, B = "198.18.0.11", "198.18.0.12"
ROUTES = {"10.0.0.1/32": frozenset({A, B}), "10.0.0.2/32": frozenset({A}),
          "10.0.0.3/32": frozenset({A, B, "198.18.0.13"}), "10.0.0.9/32": frozenset({B})}


@pytest.mark.parametrize(("prefixes", "hops", "want"), [
    (["10.0.0.1/32", "10.0.0.2/32", "10.0.0.3/32", "10.0.0.4/32"], frozenset({A, B}), 2),
    (["10.0.0.1/32", "10.0.0.2/32", "10.0.0.3/32", "10.0.0.4/32"], frozenset({A}), 3),
    (["10.0.0.1/32", "10.0.0.2/32", "10.0.0.4/32"], None, 2),  # present, any next hop
    ([], frozenset({A}), 0),
])
def test_routed_counts_prefixes_through_every_node(
        prefixes: list[str], hops: frozenset[str] | None, want: int) -> None:
    assert routed(ROUTES, prefixes, hops) == want


@pytest.mark.parametrize(("samples", "is_quiet"), [
    ([(0.0, 1.0), (1.0, 1.01), (2.0, 1.02)], True),  # 1 % of a core over 2 s
    ([(0.0, 1.0), (1.0, 1.5), (2.0, 1.5)], False),  # 25 %: the first second was busy
    ([(0.0, 1.0), (1.0, 1.0)], False),  # no whole window yet
    ([(0.0, 0.0), (1.0, 1.0), (2.0, 1.0), (3.0, 1.05)], True),  # busy, then quiet 2 s
    ([(0.0, 1.0)], False),
])
def test_quiet_needs_a_whole_window_below_the_share(
        samples: list[tuple[float, float]], is_quiet: bool) -> None:
    assert quiet(samples, 2.0, 0.05) is is_quiet

"""The BGP lab without Kubernetes: two node namespaces run FRR with the frr.conf our
speaker renders (metallb_speaker.frr.render, from MetalLB objects) and peer with the
lab's router, BIRD 2 or FRR (a second, independent implementation). The router's kernel
gets one ECMP route per announced address, the client behind the router reaches the
nodes through it, communities and localPref arrive, and a node whose link goes down
(BFD 100 ms x 3) or whose FRR is killed stops being a next hop."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from metallb_lab.bgplab import (
    NODE_ASN,
    ROUTER_ASN,
    NodeLan,
    frr_conf,
    namer,
    router_config,
    speaker_objects,
)
from metallb_lab.bird import BirdRouter, FrrRouter, Router, link_local
from metallb_lab.frr import RUN_DIR as FRR_RUN_DIR
from metallb_lab.netns import ip
from metallb_lab.routerconf import BfdTimings

pytestmark = pytest.mark.netns
VIPS = ("198.18.32.1", "fd00:32::1")
BFD = BfdTimings(100, 100, 3)
COMMUNITIES = ("64512:100", "large:64512:1:2")


@dataclass(frozen=True)
class Case:
    router: type[Router]
    ibgp: bool = False
    password: str = ""
    local_pref: int | None = None


CASES = {
    "bird-ebgp-md5": Case(BirdRouter, password="s3cret-pw"),
    "bird-ibgp-localpref": Case(BirdRouter, ibgp=True, local_pref=150),
    "frr-router-ebgp-md5": Case(FrrRouter, password="s3cret-pw"),
}


@pytest.fixture
def net() -> Iterator[NodeLan]:
    with NodeLan(nodes=2) as net:
        net.serve()
        net.vips_on_lo(VIPS)
        yield net
    assert not any(n.ns in ip("netns", "list").stdout for n in net.nodes)


@pytest.mark.parametrize("name", sorted(CASES))
def test_router_spreads_over_the_nodes_and_drops_a_failed_one(net: NodeLan, name: str
                                                               ) -> None:
    case = CASES[name]
    rc = router_config(net.nodes, asn=NODE_ASN if case.ibgp else ROUTER_ASN, ipv6=True,
                       password=case.password, bfd=BFD)
    objs = speaker_objects(rc, ipv6=True, password=case.password, bfd=BFD,
                           communities=COMMUNITIES, local_pref=case.local_pref)
    with case.router(net.lan, rc) as router:
        router.route_back(n.ns for n in net.nodes)
        for node in net.nodes:
            net.start_frr(node, frr_conf(objs, node, VIPS))
        router.wait_established()
        hop = namer(net.nodes)
        both = ["node-1", "node-2"]
        for vip in VIPS:
            router.wait_next_hops(vip, both, key=hop, timeout=15)
            # the client behind the router reaches both nodes (ECMP per flow)
            served = {router.curl(vip) for _ in range(24)}
            assert served == {"served by node-1", "served by node-2"}, served

        if isinstance(router, BirdRouter):
            for vip, plen in zip(VIPS, (32, 128), strict=True):
                paths = router.routes(f"{vip}/{plen}")[f"{vip}/{plen}"]
                assert sorted(p.protocol for p in paths) == (
                    ["node_1", "node_2"] if plen == 32 else ["node_1_v6", "node_2_v6"])
                for p in paths:
                    assert p.communities == set(COMMUNITIES)
                    # LOCAL_PREF only travels over iBGP: BIRD's default otherwise
                    assert p.local_pref == (case.local_pref or 100)
        else:
            assert isinstance(router, FrrRouter)
            paths = router.bgp_route(f"{VIPS[0]}/32")["paths"]
            assert len(paths) == 2 and all(p["multipath"] for p in paths)
            for p in paths:
                assert p["community"]["list"] == ["64512:100"]
                assert p["largeCommunity"]["list"] == ["64512:1:2"]
            # FRR installs IPv6 routes through the nodes' link-local addresses
            assert router.next_hops(f"{VIPS[1]}/128") == {link_local(n.ns)
                                                          for n in net.nodes}

        # node-1's link goes down: BFD (100 ms x 3) takes it out of the route
        node1, node2 = net.nodes
        t0 = time.monotonic()
        router.set_link(node1.ns, False)
        for vip in VIPS:
            router.wait_next_hops(vip, ["node-2"], key=hop, timeout=5)
        assert time.monotonic() - t0 < 2.0
        assert router.curl(VIPS[0]) == "served by node-2"
        router.set_link(node1.ns, True)
        router.wait_established(timeout=30)
        for vip in VIPS:
            router.wait_next_hops(vip, both, key=hop, timeout=15)
            # serving again: its route back to the client came back with the link
            served = {router.curl(vip) for _ in range(24)}
            assert served == {"served by node-1", "served by node-2"}, served

        # node-2's FRR is killed: its TCP sessions close, its next hop goes
        assert node2.frr is not None
        node2.frr.kill()
        for vip in VIPS:
            router.wait_next_hops(vip, ["node-1"], key=hop, timeout=5)
    assert not router.state_dir.exists()
    assert router.ns not in ip("netns", "list").stdout
    assert router.ns not in net.lan.created_ns


def test_router_teardown_after_a_failed_start_leaves_nothing(net: NodeLan) -> None:
    rc = router_config(net.nodes)
    router = BirdRouter(net.lan, rc)
    router.start_engine = lambda: (_ for _ in ()).throw(RuntimeError("boom"))  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="boom"), router:
        pass
    listed = ip("netns", "list").stdout
    assert router.ns not in listed and router.client_ns not in listed
    assert not router.state_dir.exists() and not router.work.exists()
    assert not list(FRR_RUN_DIR.glob(f"*{router.ns}*"))

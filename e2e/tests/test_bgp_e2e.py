"""BGP mode end to end on simulated nodes: the real operator allocates, a real speaker on
each of three nodes drives its node's FRR (zebra, bgpd, bfdd), and the nodes peer with a
BIRD 2 router on the LAN (metallb_lab.bird). The router's kernel gets one ECMP route per
Service address with a next hop per eligible node, and a client behind the router
reaches nginx through it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from metallb_lab.bgp_netlab import COMMUNITIES, NODE_ASN, BGPNetLab
from metallb_lab.controlplane import ControlPlane
from metallb_lab.kube import wait_for

pytestmark = pytest.mark.netns


@pytest.fixture(scope="module")
def bgp(control_plane: ControlPlane) -> Iterator[BGPNetLab]:
    with BGPNetLab(control_plane, nodes=3) as b:
        yield b


@pytest.fixture
def healthy(bgp: BGPNetLab) -> Iterator[BGPNetLab]:
    """Each test starts and leaves the lab with every node up and every session up."""
    yield bgp
    for node in bgp.lab.nodes:
        bgp.set_link(node, up=True)
        frr = bgp.frrs[node.name]
        if not frr.alive():
            frr.start()
        if node.speaker is None or node.speaker.poll() is not None:
            bgp.start_speaker(node)
    bgp.lab.wait_ready(timeout=60)
    bgp.router.wait_established(timeout=60)


def test_every_node_is_a_next_hop_and_the_client_gets_through(healthy: BGPNetLab) -> None:
    b = healthy
    v6, v4 = b.lab.service("web", ipFamilyPolicy="RequireDualStack",
                           ipFamilies=["IPv6", "IPv4"])
    for vip in (v4, v6):
        b.wait_next_hops(vip, b.lab.nodes)
        served = {b.router.curl(vip) for _ in range(30)}
        # ECMP per flow: the client's connections spread over the nodes
        assert None not in served and len(served) >= 2, served
    paths = b.router.routes(f"{v4}/32")[f"{v4}/32"]
    assert sorted(p.protocol for p in paths) == ["node_1", "node_2", "node_3"]
    for p in paths:
        assert p.communities == set(COMMUNITIES)
        assert p.as_path == (NODE_ASN,)
    b.lab.api.delete(f"/api/v1/namespaces/{b.lab.apps}/services/web")
    for vip in (v4, v6):
        b.wait_next_hops(vip, [], timeout=20)


def test_external_traffic_policy_local_narrows_the_next_hops(healthy: BGPNetLab) -> None:
    b = healthy
    node1, node2, node3 = b.lab.nodes
    (vip,) = b.lab.service("local", externalTrafficPolicy="Local", endpoints=[node1, node2])
    b.wait_next_hops(vip, [node1, node2])
    served = {b.router.curl(vip) for _ in range(20)}
    assert served <= {f"served by {node1.name}", f"served by {node2.name}"}, served
    b.lab.endpoints(b.lab.apps, "local", [node3])
    b.wait_next_hops(vip, [node3])
    wait_for(lambda: b.router.curl(vip, timeout=0.5) == f"served by {node3.name}",
             timeout=10, what="traffic follows the endpoint")
    b.lab.endpoints(b.lab.apps, "local", [])  # no ready endpoint: no node announces
    b.wait_next_hops(vip, [])
    b.lab.api.delete(f"/api/v1/namespaces/{b.lab.apps}/services/local")


@pytest.mark.parametrize("failure", ["link-down", "frr-killed"])
def test_a_failed_node_stops_being_a_next_hop(healthy: BGPNetLab, failure: str) -> None:
    b = healthy
    name = f"fail-{failure}"
    (vip,) = b.lab.service(name)
    b.wait_next_hops(vip, b.lab.nodes)
    victim = b.lab.nodes[2]
    others = b.lab.nodes[:2]
    t0 = time.monotonic()
    if failure == "link-down":
        b.set_link(victim, up=False)
    else:
        b.frrs[victim.name].kill()
    b.wait_next_hops(vip, others, timeout=10)
    took = time.monotonic() - t0
    assert took < 2.0, f"{failure}: next hop removed after {took:.2f} s (BFD 100 ms x 3)"
    assert b.router.curl(vip) is not None
    # back: the node is a next hop again (after a killed FRR, the speaker pushes its
    # whole configuration to the new one)
    if failure == "link-down":
        b.set_link(victim, up=True)
    else:
        b.frrs[victim.name].start()
    b.wait_next_hops(vip, b.lab.nodes, timeout=60)
    # and serves again: the client's connections that hash to it are answered
    served = {b.router.curl(vip) for _ in range(30)}
    assert served == {f"served by {n.name}" for n in b.lab.nodes}, served
    b.lab.api.delete(f"/api/v1/namespaces/{b.lab.apps}/services/{name}")


def test_deleting_the_pool_withdraws_its_addresses(healthy: BGPNetLab) -> None:
    b = healthy
    (vip,) = b.lab.service("doomed", annotations={"metallb.io/address-pool": "doomed"})
    assert vip.startswith("198.18.33.")
    b.wait_next_hops(vip, b.lab.nodes)
    b.lab.cp.kubectl("delete", "-n", b.lab.namespace, "ipaddresspool", "doomed")
    b.wait_next_hops(vip, [], timeout=30)
    assert b.router.curl(vip, timeout=1) is None
    b.lab.api.delete(f"/api/v1/namespaces/{b.lab.apps}/services/doomed")

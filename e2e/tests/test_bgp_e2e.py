"""BGP mode end to end on simulated nodes: the real operator allocates, a real speaker on
each of three nodes drives its node's FRR (zebra, bgpd, bfdd), and the nodes peer with a
BIRD 2 router on the LAN (metallb_lab.bird). The router's kernel gets one ECMP route per
Service address with a next hop per eligible node, and a client behind the router
reaches nginx through it."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from metallb_lab.bgplab import keep_addresses_on_link_down
from metallb_lab.bird import BirdRouter, hop_namer
from metallb_lab.controlplane import ControlPlane
from metallb_lab.frr import FRR
from metallb_lab.kube import wait_for
from metallb_lab.netlab import LabNode, NetLab
from metallb_lab.netns import ip
from metallb_lab.operator import OperatorProcess
from metallb_lab.routerconf import BfdTimings, RouterConfig, node_peers

pytestmark = pytest.mark.netns
ROUTER_ASN, NODE_ASN = 64500, 64512
ROUTER4, ROUTER6 = "198.18.0.254", "fd00:18::fe"
POOLS = {"bgp": ["198.18.32.0/24", "fd00:32::/120"], "doomed": ["198.18.33.0/28"]}
COMMUNITIES = ["64512:100", "large:64512:1:2"]
BFD = BfdTimings(100, 100, 3)


@dataclass
class BGPLab:
    lab: NetLab
    router: BirdRouter
    frrs: dict[str, FRR]
    hop: Callable[[str], str]

    def next_hop_nodes(self, vip: str) -> set[str]:
        return {self.hop(h) for h in self.router.next_hops(vip)}

    def wait_next_hops(self, vip: str, nodes: list[LabNode], timeout: float = 30.0) -> None:
        self.router.wait_next_hops(vip, [n.name for n in nodes], key=self.hop,
                                   timeout=timeout)

    def start_speaker(self, node: LabNode) -> None:
        self.lab.start_speaker(node, f"--frr-socket-dir={self.frrs[node.name].socket_dir}",
                               "--frr-debounce=0.1")


def _objects(namespace: str) -> str:
    def obj(api: str, kind: str, name: str, spec: object) -> dict[str, object]:
        return {"apiVersion": f"metallb.io/{api}", "kind": kind,
                "metadata": {"name": name, "namespace": namespace}, "spec": spec}

    items = [obj("v1beta1", "IPAddressPool", name, {"addresses": addresses})
             for name, addresses in POOLS.items()]
    items += [obj("v1beta2", "BGPPeer", f"router-v{fam}",
                  {"myASN": NODE_ASN, "peerASN": ROUTER_ASN, "peerAddress": addr,
                   "bfdProfile": "fast"})
              for fam, addr in ((4, ROUTER4), (6, ROUTER6))]
    items += [obj("v1beta1", "BFDProfile", "fast",
                  {"receiveInterval": BFD.rx_ms, "transmitInterval": BFD.tx_ms,
                   "detectMultiplier": BFD.multiplier}),
              obj("v1beta1", "BGPAdvertisement", "all",
                  {"ipAddressPools": sorted(POOLS), "communities": COMMUNITIES})]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


@pytest.fixture(scope="module")
def bgp(control_plane: ControlPlane) -> Iterator[BGPLab]:
    lab_id = uuid.uuid4().hex[:5]
    with NetLab(control_plane, nodes=3, namespace=f"mlb-{lab_id}",
                lb_class=f"metallb.io/bgp-{lab_id}") as lab:
        lab.apps = f"apps-{lab_id}"
        lab.api.create("/api/v1/namespaces", {"metadata": {"name": lab.apps}})
        lab.cp.kubectl("apply", "-f", "-", input=_objects(lab.namespace))
        peers = node_peers(((n.name, n.ip4, n.ip6) for n in lab.nodes), NODE_ASN,
                           ipv6=True, bfd=True)
        config = RouterConfig(ROUTER_ASN, ROUTER4, ROUTER4, ROUTER6, peers, BFD)
        op = OperatorProcess(control_plane, lab.namespace, lb_class=lab.lb_class)
        frrs: dict[str, FRR] = {}
        try:
            with BirdRouter(lab.net, config, work=lab.work) as router:
                router.route_back(n.ns for n in lab.nodes)
                for node in lab.nodes:
                    keep_addresses_on_link_down(node.ns)
                    frrs[node.name] = FRR(node.ns, name=f"{node.name}-frr", log_dir=lab.work)
                    frrs[node.name].start()
                hop = hop_namer((n.name, n.ns, n.ip4, n.ip6) for n in lab.nodes)
                b = BGPLab(lab, router, frrs, hop)
                op.start()
                for node in lab.nodes:
                    b.start_speaker(node)
                lab.wait_ready()
                router.wait_established(timeout=60)
                yield b
        finally:
            op.stop()
            for frr in frrs.values():
                frr.__exit__(None, None, None)


@pytest.fixture
def healthy(bgp: BGPLab) -> Iterator[BGPLab]:
    """Each test starts and leaves the lab with every node up and every session up."""
    yield bgp
    for node in bgp.lab.nodes:
        ip("link", "set", "eth0", "up", ns=node.ns)
        frr = bgp.frrs[node.name]
        if not frr.alive():
            frr.start()
        if node.speaker is None or node.speaker.poll() is not None:
            bgp.start_speaker(node)
    bgp.lab.wait_ready(timeout=60)
    bgp.router.wait_established(timeout=60)


def test_every_node_is_a_next_hop_and_the_client_gets_through(healthy: BGPLab) -> None:
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


def test_external_traffic_policy_local_narrows_the_next_hops(healthy: BGPLab) -> None:
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
def test_a_failed_node_stops_being_a_next_hop(healthy: BGPLab, failure: str) -> None:
    b = healthy
    name = f"fail-{failure}"
    (vip,) = b.lab.service(name)
    b.wait_next_hops(vip, b.lab.nodes)
    victim = b.lab.nodes[2]
    others = b.lab.nodes[:2]
    t0 = time.monotonic()
    if failure == "link-down":
        ip("link", "set", "eth0", "down", ns=victim.ns)
    else:
        b.frrs[victim.name].kill()
    b.wait_next_hops(vip, others, timeout=10)
    took = time.monotonic() - t0
    assert took < 2.0, f"{failure}: next hop removed after {took:.2f} s (BFD 100 ms x 3)"
    assert b.router.curl(vip) is not None
    # back: the node is a next hop again (after a killed FRR, the speaker pushes its
    # whole configuration to the new one)
    if failure == "link-down":
        ip("link", "set", "eth0", "up", ns=victim.ns)
    else:
        b.frrs[victim.name].start()
    b.wait_next_hops(vip, b.lab.nodes, timeout=60)
    b.lab.api.delete(f"/api/v1/namespaces/{b.lab.apps}/services/{name}")


def test_deleting_the_pool_withdraws_its_addresses(healthy: BGPLab) -> None:
    b = healthy
    (vip,) = b.lab.service("doomed", annotations={"metallb.io/address-pool": "doomed"})
    assert vip.startswith("198.18.33.")
    b.wait_next_hops(vip, b.lab.nodes)
    b.lab.cp.kubectl("delete", "-n", b.lab.namespace, "ipaddresspool", "doomed")
    b.wait_next_hops(vip, [], timeout=30)
    assert b.router.curl(vip, timeout=1) is None
    b.lab.api.delete(f"/api/v1/namespaces/{b.lab.apps}/services/doomed")

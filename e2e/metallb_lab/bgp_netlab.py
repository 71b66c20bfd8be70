"""BGP mode on the process lab: NetLab's nodes (real speakers, nginx, the real operator)
each with FRR driven by its speaker, peering with a BIRD 2 router on the LAN that has a
client behind it. Used by e2e/tests/test_bgp_e2e.py and `python -m metallb_lab.bgp_demo`.

    with BGPNetLab(control_plane) as b:
        (vip,) = b.lab.service("web")
        b.wait_next_hops(vip, b.lab.nodes)      # ECMP: every node is a next hop
        b.router.curl(vip)                      # from the client behind the router
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from types import TracebackType

from metallb_lab.bgplab import keep_addresses_on_link_down
from metallb_lab.bird import ROUTER4, ROUTER6, BirdRouter, hop_namer
from metallb_lab.controlplane import ControlPlane
from metallb_lab.frr import FRR
from metallb_lab.netlab import LabNode, NetLab
from metallb_lab.operator import OperatorProcess
from metallb_lab.routerconf import BfdTimings, RouterConfig, node_peers

ROUTER_ASN, NODE_ASN = 64500, 64512
POOLS = {"bgp": ["198.18.32.0/24", "fd00:32::/120"], "doomed": ["198.18.33.0/28"]}
COMMUNITIES = ["64512:100", "large:64512:1:2"]
BFD = BfdTimings(100, 100, 3)


def manifests(namespace: str) -> list[dict[str, object]]:
    """What a user applies: the pools, a BGPPeer per router address (with the BFD
    profile), the BFDProfile and a BGPAdvertisement with communities."""

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
    return items


class BGPNetLab:
    def __init__(self, cp: ControlPlane, nodes: int = 3) -> None:
        lab_id = uuid.uuid4().hex[:5]
        self.lab = NetLab(cp, nodes=nodes, namespace=f"mlb-{lab_id}",
                          lb_class=f"metallb.io/bgp-{lab_id}")
        self.lab.apps = f"apps-{lab_id}"
        peers = node_peers(((n.name, n.ip4, n.ip6) for n in self.lab.nodes), NODE_ASN,
                           ipv6=True, bfd=True)
        self.config = RouterConfig(ROUTER_ASN, ROUTER4, ROUTER4, ROUTER6, peers, BFD)
        self.router = BirdRouter(self.lab.net, self.config, work=self.lab.work)
        self.operator = OperatorProcess(cp, self.lab.namespace, lb_class=self.lab.lb_class)
        self.frrs: dict[str, FRR] = {}
        self.hop: Callable[[str], str] = str

    def __enter__(self) -> BGPNetLab:
        try:
            self.setup()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.teardown()

    def setup(self) -> None:
        lab = self.lab
        lab.setup()
        lab.api.create("/api/v1/namespaces", {"metadata": {"name": lab.apps}})
        lab.cp.kubectl("apply", "-f", "-", input=json.dumps(
            {"apiVersion": "v1", "kind": "List", "items": manifests(lab.namespace)}))
        self.router.start()
        self.router.route_back(n.ns for n in lab.nodes)
        for node in lab.nodes:
            keep_addresses_on_link_down(node.ns)
            self.frrs[node.name] = FRR(node.ns, name=f"{node.name}-frr", log_dir=lab.work)
            self.frrs[node.name].start()
        self.hop = hop_namer((n.name, n.ns, n.ip4, n.ip6) for n in lab.nodes)
        self.operator.start()
        for node in lab.nodes:
            self.start_speaker(node)
        lab.wait_ready()
        self.router.wait_established(timeout=60)

    def teardown(self) -> None:
        self.operator.stop()
        for node in self.lab.nodes:  # speakers first: they would push to a stopped FRR
            self.lab.stop_speaker(node)
        for frr in self.frrs.values():
            frr.__exit__(None, None, None)
        self.router.teardown()
        self.lab.teardown()

    def start_speaker(self, node: LabNode) -> None:
        self.lab.start_speaker(node, f"--frr-socket-dir={self.frrs[node.name].socket_dir}",
                               "--frr-debounce=0.1")

    def set_link(self, node: LabNode, up: bool) -> None:
        """Link down / up (up: with the node's route to the client restored)."""
        self.router.set_link(node.ns, up)

    def next_hop_nodes(self, vip: str) -> set[str]:
        return {self.hop(h) for h in self.router.next_hops(vip)}

    def wait_next_hops(self, vip: str, nodes: list[LabNode], timeout: float = 30.0) -> None:
        self.router.wait_next_hops(vip, [n.name for n in nodes], key=self.hop,
                                   timeout=timeout)

"""A BGP lab without Kubernetes: node namespaces on a LAN, each running FRR with the
frr.conf the speaker would render (`metallb_speaker.frr.render` from MetalLB objects),
and a router (`metallb_lab.bird`) they peer with. The netns tests of the router and
`bench/bgp` use it; what they measure is the routing engines and our configuration.

    with NodeLan(nodes=2) as net, BirdRouter(net.lan, router_config(net)) as router:
        objs = speaker_objects(router.config, bfd=BfdTimings(100, 100, 3))
        for node in net.nodes:
            net.start_frr(node, frr_conf(objs, node.name, ["198.18.32.1"]))
        router.wait_next_hops("198.18.32.1/32", [n.ip4 for n in net.nodes])
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from metallb_api.addresses import IP
from metallb_api.bgp import advertised_for, build_bgp_config
from metallb_api.config import build_config
from metallb_lab.bird import ROUTER4, ROUTER6, hop_namer
from metallb_lab.frr import FRR
from metallb_lab.lan import Lan
from metallb_lab.netlab import NGINX_CONF
from metallb_lab.netns import in_ns, ip, sysctl
from metallb_lab.routerconf import BfdTimings, RouterConfig, node_peers
from metallb_speaker.frr.render import render

ROUTER_ASN, NODE_ASN = 64500, 64512
POOL = "bgp"
# announced addresses, off the LAN (not the routers' client nets, 198.18.64.0/19)
POOL_RANGES = ("198.18.32.0/19", "198.18.96.0/19", "fd00:32::/112")


@dataclass
class Node:
    name: str
    ns: str
    ip4: str
    ip6: str
    frr: FRR | None = None
    nginx: subprocess.Popen[bytes] | None = None

    @property
    def labels(self) -> dict[str, str]:
        return {"kubernetes.io/hostname": self.name}


class NodeLan:
    """A LAN with `nodes` node namespaces (198.18.0.11.., fd00:18::b..)."""

    def __init__(self, nodes: int = 2, work: Path | None = None) -> None:
        self.lan = Lan(f"mlb{uuid.uuid4().hex[:5]}")
        self.work = work
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{self.lan.prefix}-", dir=work))
        self.nodes = [Node(f"node-{i}", f"{self.lan.prefix}-n{i}", f"198.18.0.{10 + i}",
                           f"fd00:18::{10 + i:x}") for i in range(1, nodes + 1)]

    def __enter__(self) -> NodeLan:
        try:
            self.lan.setup()
            for node in self.nodes:
                self.lan.add_ns(node.ns)
                self.lan.attach(node.ns, "eth0", node.ip4, node.ip6)
                keep_addresses_on_link_down(node.ns)
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.teardown()

    def teardown(self) -> None:
        for node in self.nodes:
            self.stop_frr(node)
            if node.nginx is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.nginx.pid, signal.SIGKILL)
                node.nginx.wait(timeout=5)
        self.lan.teardown()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def serve(self) -> None:
        """nginx on every node, answering `served by <node>` (as NetLab's)."""
        for node in self.nodes:
            d = self.tmp / f"nginx-{node.name}"
            d.mkdir(parents=True, exist_ok=True)
            (d / "nginx.conf").write_text(NGINX_CONF.format(dir=d, node=node.name))
            node.nginx = subprocess.Popen(
                in_ns(node.ns, ["nginx", "-c", str(d / "nginx.conf"), "-g", "daemon off;"]),
                stdout=subprocess.DEVNULL, stderr=(d / "stderr").open("wb"),
                start_new_session=True)

    def start_frr(self, node: Node, config: str) -> FRR:
        self.stop_frr(node)
        node.frr = FRR(node.ns, config, name=node.name, log_dir=self.tmp)
        try:
            node.frr.start()
        except BaseException:
            self.stop_frr(node)
            raise
        return node.frr

    def stop_frr(self, node: Node) -> None:
        frr, node.frr = node.frr, None
        if frr is not None:
            frr.__exit__(None, None, None)

    def set_link(self, node: Node, up: bool) -> None:
        ip("link", "set", "eth0", "up" if up else "down", ns=node.ns)

    def vips_on_lo(self, vips: Iterable[str]) -> None:
        """The addresses on every node's lo, as kube-proxy (IPVS) would put them, so a
        node the router forwards to answers."""
        for node in self.nodes:
            for vip in vips:
                plen = "128" if ":" in vip else "32"
                ip("addr", "replace", f"{vip}/{plen}", "dev", "lo", ns=node.ns)


def keep_addresses_on_link_down(ns: str, ifname: str = "eth0") -> None:
    """Linux drops an interface's IPv6 addresses when its link goes down; a lab node
    whose link comes back must have them again (as a host's network manager would
    re-add them)."""
    sysctl(ns, f"net.ipv6.conf.{ifname}.keep_addr_on_down", "1")


def router_config(nodes: Sequence[Node], *, asn: int = ROUTER_ASN, node_asn: int = NODE_ASN,
                  ipv4: bool = True, ipv6: bool = False, password: str = "",
                  bfd: BfdTimings | None = None, hold_time: int | None = None
                  ) -> RouterConfig:
    """The router's side: a session per node and family."""
    peers = node_peers(((n.name, n.ip4, n.ip6) for n in nodes), node_asn, ipv4=ipv4,
                       ipv6=ipv6, password=password, bfd=bfd is not None,
                       hold_time=hold_time)
    return RouterConfig(asn, ROUTER4, ROUTER4, ROUTER6, peers, bfd or BfdTimings())


def speaker_objects(router: RouterConfig, node_asn: int = NODE_ASN, *, ipv4: bool = True,
                    ipv6: bool = False, password: str = "", bfd: BfdTimings | None = None,
                    hold_time: str | None = None, communities: Sequence[str] = (),
                    local_pref: int | None = None) -> list[dict[str, Any]]:
    """The MetalLB objects a user would apply: an IPAddressPool, BGPPeers towards the
    router (one per family), a BFDProfile, a BGPAdvertisement."""

    def obj(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {"kind": kind, "metadata": {"name": name}, "spec": spec}

    out = [obj("IPAddressPool", POOL, {"addresses": list(POOL_RANGES)})]
    for fam, addr in ((4, router.local4), (6, router.local6)):
        if (fam == 4 and not ipv4) or (fam == 6 and not ipv6):
            continue
        spec: dict[str, Any] = {"myASN": node_asn, "peerASN": router.asn, "peerAddress": addr}
        if password:
            spec["password"] = password
        if bfd is not None:
            spec["bfdProfile"] = "lab"
        if hold_time is not None:
            spec["holdTime"] = hold_time
        out.append(obj("BGPPeer", f"router-v{fam}", spec))
    if bfd is not None:
        out.append(obj("BFDProfile", "lab", {"receiveInterval": bfd.rx_ms,
                                             "transmitInterval": bfd.tx_ms,
                                             "detectMultiplier": bfd.multiplier}))
    adv: dict[str, Any] = {"ipAddressPools": [POOL]}
    if communities:
        adv["communities"] = list(communities)
    if local_pref is not None:
        adv["localPref"] = local_pref
    out.append(obj("BGPAdvertisement", "lab", adv))
    return out


def frr_conf(objects: Sequence[dict[str, Any]], node: Node, vips: Iterable[str]) -> str:
    """The frr.conf the speaker renders for `node` announcing `vips`."""

    def of(kind: str) -> list[dict[str, Any]]:
        return [o for o in objects if o["kind"] == kind]

    config = build_bgp_config(build_config(of("IPAddressPool")), of("BGPPeer"),
                              of("BGPAdvertisement"), of("BFDProfile"), of("Community"))
    if config.problems:
        raise ValueError(f"the lab's objects have problems: {config.problems}")
    advertised = advertised_for(config, POOL, [IP.parse(v) for v in vips], node.labels)
    return render(config, node.name, node.labels, advertised)


def namer(nodes: Iterable[Node]) -> Callable[[str], str]:
    """Next hop -> node name (any of its addresses, link-local included)."""
    return hop_namer((n.name, n.ns, n.ip4, n.ip6) for n in nodes)

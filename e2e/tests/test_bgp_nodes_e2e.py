"""BGP mode on real nodes, as users install it: `helm install` with speaker.frr.enabled,
so every speaker Pod runs FRR's daemons in its `frr` container (the project's image,
`metallb-frr`) and drives them over the shared run directory. The nodes peer with a BIRD
2 router on the LAN (metallb_lab.bird, the same router as the process lab's BGP tests);
a client behind the router reaches nginx Pods through the router's ECMP route and each
node's kube-proxy.

The nginx backends run on node-3 only."""

from __future__ import annotations

import datetime
import json
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from metallb_lab.bgplab import keep_addresses_on_link_down
from metallb_lab.bird import BirdRouter, hop_namer
from metallb_lab.cluster import Cluster
from metallb_lab.kube import wait_for
from metallb_lab.podlogs import SpeakerLogs
from metallb_lab.prober import Outcome
from metallb_lab.pytest_plugin import FAILED
from metallb_lab.routerconf import BfdTimings, RouterConfig, node_peers

pytestmark = pytest.mark.cluster_nodes
NS = "metallb-system"
APPS = "apps"
BACKEND_NODE = "node-3"
ROUTER_ASN, NODE_ASN = 64500, 64512
ROUTER4, ROUTER6 = "198.18.0.254", "fd00:18::fe"
POOL = ["198.18.40.0/24", "fd00:40:1::/120"]
BFD = BfdTimings(100, 100, 3)
COMMUNITY = "64512:300"
VALUES = ("speaker.frr.enabled=true",
          # probes a few times faster than the chart's defaults (as test_nodes_e2e)
          *(f"speaker.{probe}.{k}={v}" for probe in ("livenessProbe", "readinessProbe")
            for k, v in (("periodSeconds", 2), ("timeoutSeconds", 1),
                         ("failureThreshold", 2), ("initialDelaySeconds", 2))))


@dataclass
class BGPCluster:
    c: Cluster
    router: BirdRouter

    def hop_nodes(self, vip: str) -> set[str]:
        hop = hop_namer((n.name, n.ns, n.ip4, n.ip6) for n in self.c.nodes)
        return {hop(h) for h in self.router.next_hops(vip)}

    def wait_next_hops(self, vip: str, nodes: list[str], timeout: float = 30.0) -> None:
        hop = hop_namer((n.name, n.ns, n.ip4, n.ip6) for n in self.c.nodes)
        self.router.wait_next_hops(vip, nodes, key=hop, timeout=timeout)


def _bgp_objects() -> str:
    def obj(api: str, kind: str, name: str, spec: object) -> dict[str, object]:
        return {"apiVersion": f"metallb.io/{api}", "kind": kind,
                "metadata": {"name": name, "namespace": NS}, "spec": spec}

    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        obj("v1beta1", "IPAddressPool", "bgp", {"addresses": POOL}),
        obj("v1beta1", "BFDProfile", "fast", {"receiveInterval": BFD.rx_ms,
                                              "transmitInterval": BFD.tx_ms,
                                              "detectMultiplier": BFD.multiplier}),
        *(obj("v1beta2", "BGPPeer", f"router-v{fam}",
              {"myASN": NODE_ASN, "peerASN": ROUTER_ASN, "peerAddress": addr,
               "bfdProfile": "fast"}) for fam, addr in ((4, ROUTER4), (6, ROUTER6))),
        obj("v1beta1", "BGPAdvertisement", "bgp", {"ipAddressPools": ["bgp"],
                                                   "communities": [COMMUNITY]})]})


@pytest.fixture(scope="module")
def bgp() -> Iterator[BGPCluster]:
    with Cluster(nodes=3) as c:
        peers = node_peers(((n.name, n.ip4, n.ip6) for n in c.nodes), NODE_ASN,
                           ipv6=True, bfd=True)
        config = RouterConfig(ROUTER_ASN, ROUTER4, ROUTER4, ROUTER6, peers, BFD)
        with BirdRouter(c.net, config, work=c.dir) as router:
            router.route_back(n.ns for n in c.nodes)
            for n in c.nodes:
                keep_addresses_on_link_down(n.ns)
            c.install(values=VALUES)
            c.wait_speakers_ready()
            c.kubectl("apply", "-f", "-", input=_bgp_objects())
            router.wait_established(timeout=90)
            c.wait_speakers_ready()
            c.api.create("/api/v1/namespaces", {"metadata": {"name": APPS}})
            c.deployment(APPS, "web", BACKEND_NODE, replicas=2)
            yield BGPCluster(c, router)


@pytest.fixture
def healthy(bgp: BGPCluster, request: pytest.FixtureRequest) -> Iterator[BGPCluster]:
    yield bgp
    for node in bgp.c.nodes:
        bgp.c.set_frozen(node, False)
        bgp.c.set_link(node, up=True)
    if request.node.stash.get(FAILED, False):
        print(bgp.c.diagnose(pods_of=(NS,), tail=200))
        print(bgp.router.logs()[-5000:])
    bgp.c.wait_speakers_ready()
    bgp.router.wait_established(timeout=90)


def speaker_pod(c: Cluster, node: str) -> dict[str, object]:
    (pod,) = [p for p in c.pods(NS, "app.kubernetes.io/component=speaker")
              if p["spec"]["nodeName"] == node and not p["metadata"].get("deletionTimestamp")]
    return pod


def test_the_chart_runs_frr_beside_every_speaker_and_the_router_gets_ecmp(
        healthy: BGPCluster) -> None:
    b, c = healthy, healthy.c
    for n in c.nodes:
        pod = speaker_pod(c, n.name)
        assert [s["name"] for s in pod["status"]["containerStatuses"]] == ["frr", "speaker"]
        assert all(s["ready"] for s in pod["status"]["containerStatuses"])
    v6, v4 = c.lb_service(APPS, "ecmp", "web", ipFamilyPolicy="RequireDualStack",
                          ipFamilies=["IPv6", "IPv4"])
    names = sorted(n.name for n in c.nodes)
    for vip in (v4, v6):
        b.wait_next_hops(vip, names)
        body = wait_for(lambda vip=vip: b.router.curl(vip), timeout=30, what=f"curl {vip}")
        assert body.startswith("served by "), body
    (route,) = b.router.routes(f"{v4}/32").values()
    assert sorted(p.protocol for p in route) == ["node_1", "node_2", "node_3"]
    assert all(p.communities == {COMMUNITY} for p in route)
    # MetalLB's series, from the Pods: a session per peer (IPv4 and IPv6) up on every node
    for n in c.nodes:
        metrics = c.http_get(f"http://{n.ip4}:7473/metrics") or ""
        up = [line for line in metrics.splitlines()
              if line.startswith("metallb_bgp_session_up{") and line.endswith(" 1.0")]
        assert len(up) == 2, (n.name, up)
    statuses = c.api.get(f"/apis/metallb.io/v1beta1/namespaces/{NS}/servicebgpstatuses")
    on = sorted(o["status"]["node"] for o in statuses["items"]
                if o["status"].get("serviceName") == "ecmp")
    assert on == names
    # A BGPSessionState per node and peer, BGP and BFD up, owned by the node's speaker
    # Pod (it goes with the Pod; the next speaker writes its own).
    states = c.api.get(f"/apis/metallb.io/v1beta1/namespaces/{NS}/bgpsessionstates")["items"]
    assert sorted((o["status"]["node"], o["status"]["peer"], o["status"]["bgpStatus"],
                   o["status"]["bfdStatus"]) for o in states) == [
        (n, f"router-v{f}", "Established", "up") for n in names for f in (4, 6)]
    for o in states:
        (owner,) = o["metadata"]["ownerReferences"]
        assert owner["uid"] == speaker_pod(c, o["status"]["node"])["metadata"]["uid"]
    c.api.delete(f"/api/v1/namespaces/{APPS}/services/ecmp")
    for vip in (v4, v6):
        b.wait_next_hops(vip, [], timeout=30)


def test_local_traffic_policy_leaves_only_the_endpoints_node(healthy: BGPCluster) -> None:
    b, c = healthy, healthy.c
    (vip,) = c.lb_service(APPS, "local", "web", externalTrafficPolicy="Local")
    b.wait_next_hops(vip, [BACKEND_NODE])
    # (the route may come before node-3's kube-proxy has the new Service's rules)
    body = wait_for(lambda: b.router.curl(vip), timeout=30, what=f"curl {vip}")
    assert c.node_of_pod(APPS, body.removeprefix("served by ")).name == BACKEND_NODE
    c.api.delete(f"/api/v1/namespaces/{APPS}/services/local")
    b.wait_next_hops(vip, [], timeout=30)


@pytest.mark.parametrize("failure", ["link-down", "frozen"])
def test_a_failed_node_stops_being_a_next_hop(healthy: BGPCluster, failure: str) -> None:
    """Link down, or every process of the node stopped (kubelet, kube-proxy, the speaker
    Pod's FRR): BFD (100 ms x 3) takes the node out of the router's route."""
    b, c = healthy, healthy.c
    name = f"fail-{failure}"
    (vip,) = c.lb_service(APPS, name, "web")
    names = sorted(n.name for n in c.nodes)
    b.wait_next_hops(vip, names)
    node = c.node("node-1")
    t0 = time.monotonic()
    try:
        if failure == "link-down":
            c.set_link(node, up=False)
        else:
            c.set_frozen(node, True)
        b.wait_next_hops(vip, [n for n in names if n != node.name], timeout=10)
        gone = time.monotonic() - t0
        assert gone < 5.0, gone  # hang guard; bench/bgp has the distribution
        wait_for(lambda: b.router.curl(vip, timeout=1.0), timeout=10,
                 what=f"curl {vip} through the other nodes")
    finally:
        c.set_frozen(node, False)
        c.set_link(node, up=True)
    b.wait_next_hops(vip, names, timeout=90)
    c.api.delete(f"/api/v1/namespaces/{APPS}/services/{name}")


class NextHopLog:
    """The router's next hops for one address, sampled every 20 ms in a thread."""

    def __init__(self, b: BGPCluster, vip: str) -> None:
        self.b, self.vip = b, vip
        self.changes: list[tuple[float, frozenset[str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        last: frozenset[str] | None = None
        while not self._stop.wait(0.02):
            hops = frozenset(self.b.hop_nodes(self.vip))
            if hops != last:
                self.changes.append((time.time(), hops))  # wall clock, as the logs
                last = hops

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_helm_upgrade_rolls_the_speakers_without_a_blackhole(healthy: BGPCluster) -> None:
    """Each speaker withdraws on SIGTERM while its FRR still runs (metallb-frr's stop
    delay), and a restarted one is Ready only once its sessions are back: the rollout
    never leaves the address with fewer than all nodes but one. What a client may still
    lose is a connection in flight when the router's ECMP set changes (it rehashes flows
    onto other nodes, which have no conntrack entry for them: MetalLB's documented BGP
    limitation, for any speaker): at most one per change for this one-at-a-time client."""
    b, c = healthy, healthy.c
    (vip,) = c.lb_service(APPS, "rolling", "web")
    names = sorted(n.name for n in c.nodes)
    b.wait_next_hops(vip, names)
    before = {p["metadata"]["uid"] for p in c.pods(NS, "app.kubernetes.io/component=speaker")}
    hops = NextHopLog(b, vip)
    logs = SpeakerLogs(c)
    probe = c.prober(vip, duration=300.0, timeout=3.5, ns=b.router.client_ns)
    try:
        time.sleep(1.0)
        pods = c.roll_speakers(values=VALUES)
        b.wait_next_hops(vip, names, timeout=60)
        time.sleep(1.0)
    finally:
        probe.send_signal(signal.SIGTERM)
        hops.close()
        logs.close()
    seen = Outcome.parse(probe.communicate(timeout=30)[0])
    assert not before & {p["metadata"]["uid"] for p in pods}  # every speaker replaced
    assert seen.requests > 100, seen
    sets = [h for _, h in hops.changes]
    timeline = ([(datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%H:%M:%S.%f")[:-3],
                  sorted(h)) for t, h in hops.changes], logs.events())
    assert min(len(h) for h in sets) >= len(names) - 1, timeline  # one node at a time
    assert len(sets) >= 2 * len(names), timeline  # each node withdrew and came back
    assert seen.failed <= len(sets) - 1, (seen, timeline)
    c.api.delete(f"/api/v1/namespaces/{APPS}/services/rolling")

    # The session states are the new speakers' now (taken over, or written again after
    # the garbage collector removed the old Pods'), one per node and peer, Established.
    def states() -> list[tuple[str, str, str, str]]:
        items = c.api.get(f"/apis/metallb.io/v1beta1/namespaces/{NS}/bgpsessionstates")
        return sorted((o["status"]["node"], o["status"]["peer"], o["status"]["bgpStatus"],
                       o["metadata"]["ownerReferences"][0]["uid"]) for o in items["items"])
    pod_of = {p["spec"]["nodeName"]: p["metadata"]["uid"] for p in pods}
    wait_for(lambda: states() == [(n, f"router-v{f}", "Established", pod_of[n])
                                  for n in names for f in (4, 6)],
             timeout=30, what="BGPSessionStates of the new speakers")

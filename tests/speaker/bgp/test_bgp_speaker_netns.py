"""BGP mode end to end on one lab node: the real operator, a speaker process driving a
real FRR (zebra, bgpd, bfdd) in the node's namespace, and a second FRR as the router
in another namespace on the LAN. The router learns the Service's address with the node
as next hop; deleting the Service withdraws it; a killed FRR is reported (metric,
readiness, its BGPSessionState's condition and a Warning Event) and gets the whole
configuration again when it is back; SIGTERM withdraws before the speaker exits; a
BGPSessionState per peer comes and goes with the peers."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from metallb_lab.controlplane import ControlPlane
from metallb_lab.frr import FRR
from metallb_lab.kube import wait_for
from metallb_lab.netlab import LabNode, NetLab
from metallb_lab.netns import in_ns
from metallb_lab.operator import OperatorProcess

pytestmark = pytest.mark.netns
ROUTER_IP = "198.18.0.250"
POOL = "198.19.20.0/28"
TAGGED_POOL = "198.19.20.16/28"
ROUTER_CONF = """\
router bgp 64513
 bgp router-id 198.18.0.250
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 neighbor 198.18.0.11 remote-as 64512
 neighbor 198.18.0.11 timers 1 3
 address-family ipv4 unicast
  neighbor 198.18.0.11 activate
 exit-address-family
exit
"""


@dataclass
class BGPLab:
    lab: NetLab
    node: LabNode
    frr: FRR  # the node's
    router: FRR

    def routes(self) -> dict[str, list[str]]:
        """prefix -> next hops, as the router's BGP table has them."""
        doc = self.router.vtysh_json("show bgp ipv4 unicast json")
        return {p: sorted(h["ip"] for path in paths for h in path.get("nexthops", []))
                for p, paths in (doc.get("routes") or {}).items()}

    def statuses(self) -> list[dict[str, Any]]:
        items = self.lab.api.get(f"/apis/metallb.io/v1beta1/namespaces/{self.lab.namespace}/"
                                 "servicebgpstatuses")["items"]
        return [o.get("status") or {} for o in items]

    def session_states(self) -> dict[str, dict[str, Any]]:
        """BGPPeer name -> its BGPSessionState's status (this lab has one node)."""
        items = self.lab.api.get(f"/apis/metallb.io/v1beta1/namespaces/{self.lab.namespace}/"
                                 "bgpsessionstates")["items"]
        return {o["status"]["peer"]: o["status"] for o in items if o.get("status")}

    def session(self, peer: str = "router") -> tuple[str, str, str] | None:
        """(bgpStatus, bfdStatus, the Established condition's reason) of `peer`."""
        st = self.session_states().get(peer)
        if st is None:
            return None
        reason = next((c["reason"] for c in st.get("conditions") or []
                       if c["type"] == "Established"), "")
        return st["bgpStatus"], st["bfdStatus"], reason

    def session_events(self) -> list[tuple[str, str, str]]:
        """(type, reason, involved object's name) of the Events on BGPSessionStates."""
        items = self.lab.api.get(f"/api/v1/namespaces/{self.lab.namespace}/events")["items"]
        return [(e["type"], e["reason"], e["involvedObject"]["name"]) for e in items
                if e["involvedObject"].get("kind") == "BGPSessionState"]

    def readyz(self) -> str:
        out = subprocess.run(in_ns(self.node.ns, ["curl", "-s", "--max-time", "2",
                                                  "http://127.0.0.1:7473/readyz"]),
                             capture_output=True, text=True, check=False)
        return out.stdout

    def start_speaker(self) -> None:
        self.lab.start_speaker(self.node, f"--frr-socket-dir={self.frr.socket_dir}",
                               "--frr-debounce=0.1")


@pytest.fixture(scope="module")
def bgp(control_plane: ControlPlane) -> Iterator[BGPLab]:
    lab_id = uuid.uuid4().hex[:5]
    with NetLab(control_plane, nodes=1, namespace=f"mlb-{lab_id}",
                lb_class=f"metallb.io/bgp-{lab_id}") as lab:
        router_ns = lab.add_host("rt", ROUTER_IP, "fd00:18::fa")
        lab.apps = f"apps-{lab_id}"
        lab.api.create("/api/v1/namespaces", {"metadata": {"name": lab.apps}})
        lab.cp.kubectl("apply", "-n", lab.namespace, "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "List", "items": [
                {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                 "metadata": {"name": "bgp"}, "spec": {"addresses": [POOL]}},
                {"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
                 "metadata": {"name": "router"},
                 "spec": {"myASN": 64512, "peerASN": 64513, "peerAddress": ROUTER_IP,
                          "holdTime": "3s", "keepaliveTime": "1s"}},
                {"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
                 "metadata": {"name": "bgp"}, "spec": {"ipAddressPools": ["bgp"]}},
                {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                 "metadata": {"name": "tagged"},
                 "spec": {"addresses": [TAGGED_POOL], "autoAssign": False}},
                {"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
                 "metadata": {"name": "tagged"},
                 "spec": {"ipAddressPools": ["tagged"],
                          "communities": ["64512:300", "large:64512:1:2"]}}]}))
        node = lab.nodes[0]
        op = OperatorProcess(control_plane, lab.namespace, lb_class=lab.lb_class)
        op.start()
        try:
            with FRR(node.ns, name="node-frr") as frr, \
                    FRR(router_ns, ROUTER_CONF, name="router") as router:
                b = BGPLab(lab, node, frr, router)
                b.start_speaker()
                lab.wait_ready()
                yield b
        finally:
            op.stop()


def _service(b: BGPLab, name: str, **spec: Any) -> str:
    b.lab.create_service(name, **spec)
    ips = wait_for(lambda: b.lab.ingress(name), timeout=20, what=f"{name}'s address")
    return ips[0]


def _delete(b: BGPLab, name: str) -> None:
    b.lab.api.delete(f"/api/v1/namespaces/{b.lab.apps}/services/{name}")


def test_router_learns_and_loses_the_address(bgp: BGPLab) -> None:
    b = bgp
    vip = _service(b, "web")
    wait_for(lambda: b.routes().get(f"{vip}/32") == [b.node.ip4], timeout=20,
             what=f"router route to {vip} via the node")
    status = wait_for(lambda: [s for s in b.statuses() if s.get("serviceName") == "web"],
                      timeout=10, what="ServiceBGPStatus")
    assert status == [{"node": b.node.name, "serviceName": "web",
                       "serviceNamespace": b.lab.apps, "peers": ["router"]}]
    wait_for(lambda: b.lab.speaker_metric(b.node, "metallb_bgp_session_up",
                                          f'peer="{ROUTER_IP}:179",vrf="default"') == 1.0,
             timeout=10, what="metallb_bgp_session_up 1")
    wait_for(lambda: b.lab.speaker_metric(b.node, "metallb_bgp_announced_prefixes_total",
                                          f'peer="{ROUTER_IP}:179",vrf="default"') == 1.0,
             timeout=5, what="metallb_bgp_announced_prefixes_total 1")  # next FRR probe
    wait_for(lambda: b.session() == ("Established", "N/A", "Established"), timeout=10,
             what="BGPSessionState Established")
    # What `kubectl get` shows: the printer columns.
    out = b.lab.cp.kubectl("get", "bgpsessionstates", "-n", b.lab.namespace).stdout
    header, *rows = [line.split() for line in out.strip().splitlines()]
    assert header == ["NAME", "NODE", "PEER", "ADDRESS", "VRF", "BGP", "BFD", "AGE"], out
    assert [r[1:7] for r in rows] == [
        [b.node.name, "router", ROUTER_IP, "default", "Established", "N/A"]], out
    _delete(b, "web")
    wait_for(lambda: f"{vip}/32" not in b.routes(), timeout=10, what="withdrawal")
    wait_for(lambda: not [s for s in b.statuses() if s.get("serviceName") == "web"],
             timeout=10, what="ServiceBGPStatus removed")


def test_killed_frr_is_reported_and_recovered(bgp: BGPLab) -> None:
    b = bgp
    vip = _service(b, "survivor")
    wait_for(lambda: f"{vip}/32" in b.routes(), timeout=20, what="route")
    wait_for(lambda: b.session() == ("Established", "N/A", "Established"), timeout=10,
             what="BGPSessionState Established")
    b.frr.kill()
    wait_for(lambda: b.lab.speaker_metric(b.node, "metallb_speaker_frr_up") == 0.0,
             timeout=10, what="metallb_speaker_frr_up 0")
    assert "FRR unavailable" in b.readyz()
    # The object says so too, with a Warning Event on it.
    wait_for(lambda: b.session() == ("Unknown", "N/A", "FRRUnavailable"), timeout=10,
             what="BGPSessionState FRRUnavailable")
    name = next(iter(b.lab.api.get(
        f"/apis/metallb.io/v1beta1/namespaces/{b.lab.namespace}/bgpsessionstates")["items"]
    ))["metadata"]["name"]
    wait_for(lambda: ("Warning", "FRRUnavailable", name) in b.session_events(), timeout=10,
             what="FRRUnavailable Event")
    wait_for(lambda: f"{vip}/32" not in b.routes(), timeout=10, what="router drops it")
    b.frr.start()  # empty configuration: the speaker must push everything again
    wait_for(lambda: f"{vip}/32" in b.routes(), timeout=20, what="route after FRR is back")
    assert b.lab.speaker_metric(b.node, "metallb_speaker_frr_up") == 1.0
    wait_for(lambda: b.session() == ("Established", "N/A", "Established"), timeout=10,
             what="BGPSessionState Established again")
    wait_for(lambda: ("Normal", "SessionEstablished", name) in b.session_events(),
             timeout=10, what="SessionEstablished Event")
    events = [line for line in b.lab.speaker_log(b.node).read_text().splitlines()
              if '"event":"frr' in line]
    assert any('"frrUnavailable"' in e for e in events), events
    assert any('"frrRecovered"' in e or '"frrRestarted"' in e for e in events), events
    _delete(b, "survivor")
    wait_for(lambda: f"{vip}/32" not in b.routes(), timeout=10, what="withdrawal")


def test_sigterm_withdraws_before_exit(bgp: BGPLab) -> None:
    b = bgp
    vip = _service(b, "rolling")
    wait_for(lambda: f"{vip}/32" in b.routes(), timeout=20, what="route")
    started = time.monotonic()
    b.lab.stop_speaker(b.node, sig=signal.SIGTERM, timeout=20)
    took = time.monotonic() - started
    # FRR still runs: only the speaker's withdrawal can have removed the route, and it
    # was sent before the speaker exited (the router may take a moment to process it).
    wait_for(lambda: f"{vip}/32" not in b.routes(), timeout=2, what="withdrawn at exit")
    log = b.lab.speaker_log(b.node).read_text()
    assert '"bgpWithdrawAll"' in log and '"confirmed"' in log, log[-2000:]
    assert took < 15
    b.start_speaker()
    b.lab.wait_ready()
    wait_for(lambda: f"{vip}/32" in b.routes(), timeout=20, what="announced again")
    _delete(b, "rolling")


def test_communities_reach_the_router(bgp: BGPLab) -> None:
    """A pool whose advertisement sets communities: a new class of prefix (a structural
    push) beside the plain one (prefix pushes); the router sees each with its own."""
    b = bgp
    plain = _service(b, "plain")
    tagged = _service(b, "tagged", annotations={"metallb.io/address-pool": "tagged"})

    def attrs(prefix: str) -> tuple[list[str], list[str]] | None:
        doc = b.router.vtysh_json(f"show bgp ipv4 unicast {prefix} json")
        paths = doc.get("paths") or []
        if not paths:
            return None
        p = paths[0]
        return (sorted((p.get("community") or {}).get("list") or []),
                sorted((p.get("largeCommunity") or {}).get("list") or []))

    assert wait_for(lambda: attrs(f"{tagged}/32"), timeout=20, what="tagged route") == (
        ["64512:300"], ["64512:1:2"])
    assert wait_for(lambda: attrs(f"{plain}/32"), timeout=20, what="plain route") == ([], [])
    for name in ("plain", "tagged"):
        _delete(b, name)
    wait_for(lambda: not ({f"{plain}/32", f"{tagged}/32"} & set(b.routes())), timeout=10,
             what="both withdrawn")


def test_a_session_state_per_peer_comes_and_goes_with_the_peer(bgp: BGPLab) -> None:
    """A second BGPPeer nobody answers: its state appears, not Established, with FRR's
    reason; deleting the peer removes it. A speaker restart keeps the states (no
    duplicate, the router's unchanged)."""
    b = bgp
    ns = b.lab.namespace
    b.lab.cp.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({
        "apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer", "metadata": {"name": "silent"},
        "spec": {"myASN": 64512, "peerASN": 64514, "peerAddress": "198.18.0.249",
                 "holdTime": "3s", "keepaliveTime": "1s"}}))
    try:
        state = wait_for(lambda: b.session("silent"), timeout=15, what="silent peer's state")
        assert state[0] in {"Unknown", "Idle", "Connect", "Active", "OpenSent"}, state
        assert state[2] in {"Pending", "NotEstablished"}, state
        wait_for(lambda: (b.session("silent") or ("",))[0] in {"Connect", "Active"},
                 timeout=15, what="FRR's own state for the silent peer")
        assert b.session("silent")[1:] == ("N/A", "NotEstablished")  # type: ignore[index]
        assert b.session() == ("Established", "N/A", "Established")
    finally:
        b.lab.cp.kubectl("delete", "-n", ns, "bgppeer", "silent", "--wait=false")
    wait_for(lambda: "silent" not in b.session_states(), timeout=15,
             what="silent peer's state removed")
    before = b.lab.api.get(f"/apis/metallb.io/v1beta1/namespaces/{ns}/bgpsessionstates")
    b.lab.stop_speaker(b.node, sig=signal.SIGTERM, timeout=20)
    b.start_speaker()
    b.lab.wait_ready()
    wait_for(lambda: b.session() == ("Established", "N/A", "Established"), timeout=20,
             what="Established after the restart")
    after = b.lab.api.get(f"/apis/metallb.io/v1beta1/namespaces/{ns}/bgpsessionstates")
    assert [o["metadata"]["uid"] for o in after["items"]] == \
        [o["metadata"]["uid"] for o in before["items"]]

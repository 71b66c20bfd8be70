"""Real speaker processes (pyzmq on loopback) discovering each other through the real
API server, electing owners from real Node / Service / EndpointSlice objects."""

from __future__ import annotations

import hashlib
import itertools
import json
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from metallb_lab.controlplane import ControlPlane
from metallb_lab.kube import Json, create_namespace, wait_for
from metallb_lab.speaker import SpeakerProcess
from metallb_speaker.transport import derive_keys
from metallb_speaker.wire.gossip import Header, Heartbeat, Message, pack

pytestmark = pytest.mark.cluster
SECRET = "s3cret-" + "x" * 40


class Cluster:
    def __init__(self, cp: ControlPlane, ns: str) -> None:
        self.cp = cp
        self.ns = ns
        self.api = Json(cp)
        self.id = uuid.uuid4().hex[:5]
        self.lb_class = f"metallb.io/sp-{self.id}"
        self.speakers: dict[str, SpeakerProcess] = {}
        self.api.create(f"/api/v1/namespaces/{ns}/secrets", {
            "metadata": {"name": "metallb-py-memberlist"}, "stringData": {"secretkey": SECRET}})
        self.api.create(f"/api/v1/namespaces/{ns}/secrets", {
            "metadata": {"name": "other-secret"}, "stringData": {"secretkey": "nope" * 10}})
        self.pool = f"198.18.{40 + int(self.id, 16) % 100}"
        cp.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
            "items": [
                {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                 "metadata": {"name": "p", "namespace": ns},
                 "spec": {"addresses": [f"{self.pool}.0/24"]}},
                {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
                 "metadata": {"name": "all", "namespace": ns}, "spec": {}},
            ]}))

    def node(self, name: str, labels: dict[str, str] | None = None,
             unavailable: bool = False) -> str:
        full = f"{name}-{self.id}"
        self.api.create("/api/v1/nodes", {"metadata": {"name": full, "labels": labels or {}}})
        if unavailable:
            self.api.merge_patch(f"/api/v1/nodes/{full}/status", {"status": {"conditions": [
                {"type": "NetworkUnavailable", "status": "True", "reason": "Test"}]}})
        return full

    def start(self, node: str, *extra: str) -> SpeakerProcess:
        sp = SpeakerProcess(self.cp, node, self.ns,
                            extra_args=(f"--lb-class={self.lb_class}", "--hold-down=1.5",
                                        *extra))
        self.speakers[node] = sp.start()
        return sp

    def wait_members(self, count: int, state: str = "ready", timeout: float = 30.0,
                     nodes: list[str] | None = None) -> None:
        for name in nodes or list(self.speakers):
            self.speakers[name].wait_metric("metallb_speaker_members", f'state="{state}"',
                                            float(count), timeout=timeout)

    def service(self, name: str, ip: str, *, local: bool = False) -> str:
        body: dict[str, Any] = {"metadata": {"name": name}, "spec": {
            "type": "LoadBalancer", "loadBalancerClass": self.lb_class,
            "selector": {"app": name}, "ports": [{"port": 80}]}}
        if local:
            body["spec"]["externalTrafficPolicy"] = "Local"
        svcs = f"/api/v1/namespaces/{self.ns}/services"
        self.api.create(svcs, body)
        # A serving endpoint (on no particular node): without one nobody announces.
        self.endpoints(name, [None])
        self.api.merge_patch(f"{svcs}/{name}/status", {"status": {"loadBalancer": {
            "ingress": [{"ip": ip, "ipMode": "VIP"}]}}})
        return f"{self.ns}/{name}"

    def endpoints(self, service: str, nodes: list[str | None], ready: bool = True) -> None:
        """The Service's one EndpointSlice: an endpoint per node (None: no nodeName)."""
        self.cp.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service}-x", "namespace": self.ns,
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [f"198.18.250.{i + 1}"],
                           **({"nodeName": n} if n else {}),
                           "conditions": {"ready": ready, "serving": ready}}
                          for i, n in enumerate(nodes)],
            "ports": [{"port": 80}]}))

    def announcers(self) -> dict[str, list[str]]:
        """service name -> nodes with a ServiceL2Status for it."""
        items = self.api.get(f"/apis/metallb.io/v1beta1/namespaces/{self.ns}/"
                             "servicel2statuses")["items"]
        out: dict[str, list[str]] = {}
        for obj in items:
            st = obj.get("status") or {}
            if st.get("serviceName"):
                out.setdefault(st["serviceName"], []).append(st["node"])
        return out

    def stop_all(self) -> None:
        for sp in self.speakers.values():
            sp.stop(signal.SIGKILL)


def expected_owner(nodes: list[str], ip: str) -> str:
    return min(nodes, key=lambda n: hashlib.sha256(f"{n}#{ip}".encode()).digest())


@pytest.fixture
def cluster(control_plane: ControlPlane) -> Iterator[Cluster]:
    c = Cluster(control_plane, create_namespace(control_plane, "spk"))
    try:
        yield c
    finally:
        c.stop_all()


def test_join_and_identical_owner_decisions(cluster: Cluster) -> None:
    nodes = [cluster.node(f"n{i}") for i in range(4)]
    for n in nodes:
        cluster.start(n)
    cluster.wait_members(4)
    ips = {f"s{i}": f"{cluster.pool}.{10 + i}" for i in range(8)}
    for name, ip in ips.items():
        cluster.service(name, ip)

    def settled() -> dict[str, list[str]] | None:
        got = cluster.announcers()
        return got if len(got) == len(ips) else None

    got = wait_for(settled, timeout=20, what="one announcer per service")
    for name, ip in ips.items():
        assert got[name] == [expected_owner(nodes, ip)], (name, got)
    # Every speaker agrees: exactly one of them announces each Service.
    for name, ip in ips.items():
        announcing = [n for n, sp in cluster.speakers.items() if sp.metric(
            "metallb_speaker_announced",
            f'ip="{ip}",node="{n}",protocol="layer2",service="{cluster.ns}/{name}"')]
        assert len(announcing) == 1, (name, announcing)


def _time_until_members(cluster: Cluster, watchers: list[str], count: int,
                        timeout: float = 10.0) -> float:
    start = time.monotonic()
    pending = set(watchers)
    while pending and time.monotonic() - start < timeout:
        for n in list(pending):
            if cluster.speakers[n].metric("metallb_speaker_members",
                                          'state="alive"') == float(count):
                pending.discard(n)
        time.sleep(0.02)
    assert not pending, f"{pending} still see the dead member"
    return time.monotonic() - start


@pytest.mark.parametrize("kind", ["SIGKILL", "SIGSTOP", "SIGTERM"])
def test_failure_detection_and_graceful_leave(cluster: Cluster, kind: str) -> None:
    nodes = [cluster.node(f"d{i}") for i in range(4)]
    for n in nodes:
        cluster.start(n)
    cluster.wait_members(4)
    victim, watchers = nodes[0], nodes[1:]
    cluster.speakers[victim].send_signal(getattr(signal, kind))
    took = _time_until_members(cluster, watchers, 3)
    # Generous bound only to catch hangs; the distribution is measured in bench/.
    assert took < (1.5 if kind != "SIGTERM" else 1.0), took
    if kind == "SIGSTOP":
        cluster.speakers[victim].send_signal(signal.SIGCONT)
        # It wakes up, learns it was declared dead, refutes and is alive again.
        _time_until_members(cluster, watchers, 4, timeout=10)
        logs = cluster.speakers[victim].logs()
        assert '"reason":"refuted"' in logs


def test_wrong_secret_never_joins(cluster: Cluster) -> None:
    nodes = [cluster.node(f"w{i}") for i in range(3)]
    for n in nodes:
        cluster.start(n)
    intruder = cluster.node("intruder")
    cluster.start(intruder, "--secret-name=other-secret")
    cluster.wait_members(3, nodes=nodes)

    def rejected() -> float:
        return sum(sp.metric("metallb_speaker_gossip_rejected_total", f'reason="{r}"') or 0
                   for sp in cluster.speakers.values()
                   for r in ("handshake_failed_auth", "handshake_failed_protocol"))

    # Discovery makes both sides talk: wait until they did (and were refused) a few
    # times, instead of sleeping and finding that nothing happened.
    wait_for(lambda: rejected() >= 3, timeout=15, what="the intruder's handshakes refused")
    for n in nodes:
        assert cluster.speakers[n].metric("metallb_speaker_members", 'state="alive"') == 3.0
    assert cluster.speakers[intruder].metric("metallb_speaker_members", 'state="alive"') == 1.0


def test_replayed_and_malformed_messages_are_dropped(cluster: Cluster) -> None:
    node = cluster.node("r0")
    sp = cluster.start(node)
    cluster.wait_members(1)
    keys = derive_keys(SECRET.encode())
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.curve_serverkey = keys.server_public
    sock.curve_publickey = keys.client_public
    sock.curve_secretkey = keys.client_secret
    sock.linger = 0
    sock.connect(f"tcp://127.0.0.1:{sp.gossip_port}")
    try:
        frame = pack(Message(Header("replayer", 1, 7, 0), Heartbeat(1, True, 0)))
        sock.send(frame)
        sock.send(frame)  # the very same bytes again
        sock.send(b"\x00garbage that is not gossip")
        wait_for(lambda: sp.metric("metallb_speaker_gossip_rejected_total",
                                   'reason="replay"') == 1.0, timeout=10, what="replay counted")
        wait_for(lambda: sp.metric("metallb_speaker_gossip_rejected_total",
                                   'reason="bad_magic"') == 1.0, timeout=10,
                 what="malformed counted")
        assert sp.metric("metallb_speaker_gossip_received_total", 'type="Heartbeat"') == 1.0
    finally:
        sock.close()
        ctx.term()


def test_candidate_filters(cluster: Cluster) -> None:
    plain = [cluster.node(f"f{i}") for i in range(2)]
    excluded = cluster.node("fx", labels={
        "node.kubernetes.io/exclude-from-external-load-balancers": ""})
    broken = cluster.node("fu", unavailable=True)
    picky = cluster.node("fp", labels={"role": "edge"})
    everyone = [*plain, excluded, broken, picky]
    for n in everyone:
        cluster.start(n)
    cluster.wait_members(len(everyone))
    ips = [f"{cluster.pool}.{100 + i}" for i in range(12)]
    for i, ip in enumerate(ips):
        cluster.service(f"c{i}", ip)
    def all_announced() -> dict[str, list[str]] | None:
        got = cluster.announcers()
        return got if len(got) == len(ips) else None

    got = wait_for(all_announced, timeout=20, what="announcers")
    allowed = [*plain, picky]
    for i, ip in enumerate(ips):
        assert got[f"c{i}"] == [expected_owner(allowed, ip)]
    # externalTrafficPolicy: Local -> only nodes with a ready endpoint.
    cluster.service("local", f"{cluster.pool}.200", local=True)
    cluster.endpoints("local", [plain[1]])
    wait_for(lambda: cluster.announcers().get("local") == [plain[1]], timeout=20,
             what="local owner")
    cluster.endpoints("local", [picky])
    wait_for(lambda: cluster.announcers().get("local") == [picky], timeout=20,
             what="local owner moved with its endpoint")
    # No serving endpoint anywhere: nobody announces, whatever the policy (MetalLB's
    # rule); back as soon as one serves again.
    cluster.endpoints("c0", [plain[0]], ready=False)
    wait_for(lambda: "c0" not in cluster.announcers(), timeout=20,
             what="c0 withdrawn without a serving endpoint")
    cluster.endpoints("local", [plain[1], picky], ready=False)
    wait_for(lambda: "local" not in cluster.announcers(), timeout=20,
             what="local withdrawn without a serving endpoint")
    cluster.endpoints("c0", [plain[0]])
    wait_for(lambda: cluster.announcers().get("c0") == [expected_owner(allowed, ips[0])],
             timeout=20, what="c0 announced again")
    # nodeSelectors: an advertisement for edge nodes only.
    cluster.cp.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
        "metadata": {"name": "all", "namespace": cluster.ns},
        "spec": {"nodeSelectors": [{"matchLabels": {"role": "edge"}}]}}))
    wait_for(lambda: all(v == [picky] for k, v in cluster.announcers().items()
                         if k.startswith("c")) and len(cluster.announcers()) >= len(ips),
             timeout=20, what="only the edge node announces")
    reasons = cluster.speakers[excluded].metric("metallb_speaker_election_decisions",
                                                'reason="excludedByLabel"')
    assert reasons and reasons >= len(ips)


def test_restart_moves_addresses_once_each_way(cluster: Cluster) -> None:
    nodes = [cluster.node(f"h{i}") for i in range(3)]
    for n in nodes:
        cluster.start(n)
    cluster.wait_members(3)
    ip = next(f"{cluster.pool}.{i}" for i in range(1, 250)
              if expected_owner(nodes, f"{cluster.pool}.{i}") == nodes[0])
    cluster.service("flappy", ip)
    wait_for(lambda: cluster.announcers().get("flappy") == [nodes[0]], timeout=20,
             what="initial owner")
    history: list[tuple[str, ...]] = []
    cluster.speakers[nodes[0]].stop(signal.SIGTERM)
    restart_at = time.monotonic()
    cluster.start(nodes[0])
    while time.monotonic() - restart_at < 8.0:
        owners = tuple(sorted(cluster.announcers().get("flappy", [])))
        if owners and (not history or history[-1] != owners):
            history.append(owners)
        time.sleep(0.05)
    # Away to another node, back once the hold-down passed, and nothing else.
    singles = [h for h in history if len(h) == 1]
    assert singles[0] != (nodes[0],) and singles[-1] == (nodes[0],), history
    moves = sum(1 for a, b in itertools.pairwise(singles) if a != b)
    assert moves == 1, history

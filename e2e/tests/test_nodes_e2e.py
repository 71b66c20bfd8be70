"""End to end on a real multi-node cluster: the chart's Pods on kubelets, the image built
from the project's Dockerfile, ServiceAccount tokens and RBAC, probes, kube-proxy's
rules and real EndpointSlices; ARP/NDP answered by speaker Pods, curl from a client on
the LAN reaching nginx Pods.

The nginx backends ("web") run on node-3 only, and the failure tests fail another node:
what they measure is the address moving, not Kubernetes noticing dead Pods.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from metallb_lab import cgroups
from metallb_lab.cluster import Cluster, address_ranked_last, pod_ready
from metallb_lab.kube import wait_for
from metallb_lab.kubenode import KubeNode
from metallb_lab.lan import NeighbourWatch
from metallb_lab.podlogs import SpeakerLogs
from metallb_lab.prober import Outcome
from metallb_lab.pytest_plugin import FAILED

pytestmark = pytest.mark.cluster_nodes
NS = "metallb-system"
APPS = "apps"
SPEAKER_SA = "system:serviceaccount:metallb-system:metallb-py-speaker"
OPERATOR_SA = "system:serviceaccount:metallb-system:metallb-py-operator"
BACKEND_NODE = "node-3"
# Probes a few times faster than the chart's defaults, so failing ones act within seconds.
FAST_PROBES = tuple(f"speaker.{probe}.{k}={v}" for probe in ("livenessProbe", "readinessProbe")
                    for k, v in (("periodSeconds", 2), ("timeoutSeconds", 1),
                                 ("failureThreshold", 2), ("initialDelaySeconds", 2)))
_addresses = (f"198.18.0.{i}" for i in itertools.count(120))


def pick_address(c: Cluster, last: str) -> str:
    return address_ranked_last(last, (n.name for n in c.nodes), _addresses)


def curl_pod(c: Cluster, vip: str, timeout: float = 30.0) -> str:
    body = wait_for(lambda: c.curl(vip, timeout=1), timeout=timeout, what=f"curl {vip}")
    assert body.startswith("served by "), body
    return body.removeprefix("served by ")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with Cluster(nodes=3) as c:
        c.install(values=FAST_PROBES)
        c.wait_speakers_ready()
        c.l2_pool("lab", "198.18.0.100-198.18.0.199", "fd00:18::100-fd00:18::1ff")
        c.api.create("/api/v1/namespaces", {"metadata": {"name": APPS}})
        c.deployment(APPS, "web", BACKEND_NODE, replicas=2)
        yield c


@pytest.fixture
def healthy(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """Each test leaves every node up and every speaker Ready and joined."""
    yield cluster
    for node in cluster.nodes:
        cluster.set_frozen(node, False)
        cluster.set_link(node, up=True)
    if request.node.stash.get(FAILED, False):
        print(cluster.diagnose(pods_of=(NS,), tail=200))
    cluster.wait_speakers_ready()


def test_the_chart_runs_as_pods_on_every_node(healthy: Cluster) -> None:
    c = healthy
    pods = c.pods(NS)
    speakers = [p for p in pods if p["metadata"]["labels"].get(
        "app.kubernetes.io/component") == "speaker"]
    operators = [p for p in pods if p["metadata"]["labels"].get(
        "app.kubernetes.io/component") == "operator"]
    assert len(operators) == 1 and pod_ready(operators[0])
    assert sorted(p["spec"]["nodeName"] for p in speakers) == ["node-1", "node-2", "node-3"]
    for pod in speakers + operators:
        assert pod_ready(pod), pod["status"]
        (container,) = pod["spec"]["containers"]
        assert container["image"] == c.images.project.ref  # built from this tree
    for pod in speakers:  # host network: the Pod's address is its node's
        assert pod["status"]["podIP"] == c.node(pod["spec"]["nodeName"]).ip4
    table = c.kubectl("get", "pods", "-n", NS).stdout
    assert table.count("Running") == 4 and table.count("1/1") == 4, table
    # Logs through the API server and the kubelet: JSON lines with the stable keys.
    for pod in speakers + operators:
        logs = c.kubectl("logs", "-n", NS, pod["metadata"]["name"]).stdout
        lines = [json.loads(line) for line in logs.splitlines() if line.strip()]
        assert lines, pod["metadata"]["name"]
        assert all({"ts", "level", "msg", "event"} <= set(line) for line in lines), lines[:3]
    # The probes' view, as the kubelet gets it.
    body = c.http_get(f"http://{c.nodes[0].ip4}:7473/readyz")
    assert body is not None and "membership: ok" in body and "dataplane: ok" in body, body


PROBE = """
import json, os, ssl, sys, urllib.error, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
ctx = ssl.create_default_context(cafile=sa + "/ca.crt")
base = "https://%s:%s" % (os.environ["KUBERNETES_SERVICE_HOST"],
                          os.environ["KUBERNETES_SERVICE_PORT"])
token = open(sa + "/token").read()
def call(method, path, body=None):
    req = urllib.request.Request(base + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + token,
                 "Content-Type": "application/merge-patch+json"
                 if method == "PATCH" else "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None
out = {"whoami": call("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
    {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    )[1]["status"]["userInfo"]["username"]}
for name, (method, path, body) in json.loads(sys.argv[1]).items():
    out[name] = call(method, path, body)[0]
print(json.dumps(out))
"""


def as_pod(c: Cluster, pod: str, calls: dict[str, tuple[str, str, Any]]) -> dict[str, Any]:
    """Make API calls from inside a Pod, with its own ServiceAccount token."""
    out = c.kubectl("exec", "-n", NS, pod, "--", "python3", "-c", PROBE, json.dumps(calls))
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_components_run_with_only_their_service_accounts(healthy: Cluster) -> None:
    c = healthy
    dry = "?dryRun=All"  # authorization is checked, nothing changes
    speaker = c.pods(NS, "app.kubernetes.io/component=speaker")[0]["metadata"]["name"]
    got = as_pod(c, speaker, {
        "own secret": ("GET", f"/api/v1/namespaces/{NS}/secrets/metallb-py-memberlist",
                       None),
        "any secret": ("GET", "/api/v1/secrets", None),
        "list services": ("GET", "/api/v1/services", None),
        "delete a service": ("DELETE", f"/api/v1/namespaces/default/services/kubernetes{dry}",
                             None),
        "write service status": ("PATCH", "/api/v1/namespaces/default/services/kubernetes/"
                                 f"status{dry}", {"metadata": {}}),
    })
    assert got == {"whoami": SPEAKER_SA, "own secret": 200, "any secret": 403,
                   "list services": 200, "delete a service": 403,
                   "write service status": 403}
    operator = c.pods(NS, "app.kubernetes.io/component=operator")[0]["metadata"]["name"]
    got = as_pod(c, operator, {
        "list services": ("GET", "/api/v1/services", None),
        "patch a node": ("PATCH", f"/api/v1/nodes/node-1{dry}", {"metadata": {}}),
        "read secrets": ("GET", f"/api/v1/namespaces/{NS}/secrets", None),
        "write service status": ("PATCH", "/api/v1/namespaces/default/services/kubernetes/"
                                 f"status{dry}", {"metadata": {}}),
    })
    assert got == {"whoami": OPERATOR_SA, "list services": 200, "patch a node": 403,
                   "read secrets": 403, "write service status": 200}


def _speaker_pid(node: KubeNode) -> int:
    for pid in cgroups.pids(node.cgroup):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(arg.endswith(b"metallb-speaker") for arg in cmdline):
            return pid
    raise AssertionError(f"no speaker process on {node.name}")


def test_probes_restart_a_speaker_that_stops_answering(healthy: Cluster) -> None:
    c = healthy
    node = c.nodes[1]

    def pod() -> dict[str, Any]:
        (p,) = [p for p in c.pods(NS, "app.kubernetes.io/component=speaker")
                if p["spec"]["nodeName"] == node.name]
        return p

    before = pod()
    restarts = before["status"]["containerStatuses"][0]["restartCount"]
    os.kill(_speaker_pid(node), signal.SIGSTOP)  # alive to the kernel, answers nothing
    wait_for(lambda: not pod_ready(pod()), timeout=30, what="speaker Pod not Ready")
    wait_for(lambda: pod()["status"]["containerStatuses"][0]["restartCount"] > restarts,
             timeout=60, what="the kubelet restarted the speaker")
    c.wait_speakers_ready()
    events = c.kubectl("get", "events", "-n", NS, "--field-selector",
                       f"involvedObject.name={before['metadata']['name']},reason=Unhealthy",
                       "-o", "jsonpath={.items[*].message}").stdout
    assert "Liveness probe failed" in events and "Readiness probe failed" in events, events


def test_ipv4_and_ipv6_through_kube_proxy(healthy: Cluster) -> None:
    c = healthy
    vip4, vip6 = c.lb_service(APPS, "dual", "web", ipFamilyPolicy="RequireDualStack",
                            ipFamilies=["IPv4", "IPv6"])
    assert "." in vip4 and ":" in vip6
    owner = c.single_announcer(APPS, "dual")
    web = {p["metadata"]["name"] for p in c.pods(APPS, "app=web")}
    assert curl_pod(c, vip4) in web
    assert curl_pod(c, vip6) in web  # NDP answered by the speaker Pod
    # The speaker answered for the owner's interface; no node holds the address.
    for vip in (vip4, vip6):
        assert c.node_by_mac(c.neighbour_mac(vip) or "") is owner
        assert not any(vip in c.node_addresses(n) for n in c.nodes)
    status = [s["status"] for s in c.api.get(
        f"/apis/metallb.io/v1beta1/namespaces/{NS}/servicel2statuses")["items"]
        if s["status"].get("serviceName") == "dual"]
    assert status == [{"node": owner.name, "serviceName": "dual", "serviceNamespace": APPS,
                       "interfaces": [{"name": "eth0"}]}]


def test_external_traffic_policy_local_follows_the_ready_pod(healthy: Cluster) -> None:
    c = healthy
    c.deployment(APPS, "local", "node-2")
    (vip,) = c.lb_service(APPS, "local", "local", externalTrafficPolicy="Local")
    assert c.single_announcer(APPS, "local").name == "node-2"
    first = curl_pod(c, vip)
    assert c.node_of_pod(APPS, first).name == "node-2"
    # The Pod moves to node-1: the EndpointSlice follows, and so does the announcement.
    c.api.merge_patch(f"/apis/apps/v1/namespaces/{APPS}/deployments/local",
                      {"spec": {"template": {"spec": {"nodeSelector": {
                          "kubernetes.io/hostname": "node-1"}}}}})
    c.kubectl("rollout", "status", "-n", APPS, "deployment/local", "--timeout=120s")
    wait_for(lambda: [n.name for n in c.announcers(APPS, "local")] == ["node-1"],
             timeout=30, what="announcement follows the endpoint")
    body = wait_for(lambda: (b := c.curl(vip, timeout=1)) and first not in b and b,
                    timeout=30, what="traffic reaches the new Pod")
    assert c.node_of_pod(APPS, body.removeprefix("served by ")).name == "node-1"


@pytest.mark.parametrize("failure", ["link-down", "frozen"])
def test_owner_moves_when_its_node_fails(healthy: Cluster, failure: str) -> None:
    c = healthy
    name = f"move-{failure}"
    (vip,) = c.lb_service(APPS, name, "web", address=pick_address(c, last=BACKEND_NODE))
    first = c.single_announcer(APPS, name)
    assert first.name != BACKEND_NODE
    curl_pod(c, vip)
    probe = c.prober(vip, duration=6.0, timeout=0.05)
    time.sleep(1.5)
    if failure == "link-down":
        c.set_link(first, up=False)
    else:
        c.set_frozen(first, True)  # kubelet, kube-proxy, the speaker Pod: all stop
    seen = Outcome.parse(probe.communicate(timeout=60)[0])
    assert seen.after_outage is not None and seen.failed < seen.requests, seen
    assert seen.outage_s < 5.0, seen  # hang guard; the distribution is in bench/failover
    assert c.curl(vip, timeout=1) is not None
    new = c.node_by_mac(c.neighbour_mac(vip) or "")
    assert new is not None and new is not first
    wait_for(lambda: new in c.announcers(APPS, name), timeout=30,
             what="the new owner's ServiceL2Status")


# Failed in two clean-clone CI runs of 2026-12-06 (one request of ~1,600: a loud
# takeover while a restarted speaker was briefly silent); fixed by quiet.py's rule (a
# node's silence must last 0.6 s over two checks before its addresses move loudly) and
# the lab's control plane in its own cgroup. Marked xfail until it had passed in four
# full runs in a row (three `make test`, one clean-clone CI); now it counts again.
def test_helm_upgrade_rolls_the_speakers_without_failed_requests(healthy: Cluster) -> None:
    c = healthy
    (vip,) = c.lb_service(APPS, "rolling", "web")
    owner = c.single_announcer(APPS, "rolling")
    curl_pod(c, vip)
    mac = c.neighbour_mac(vip)
    assert c.node_by_mac(mac or "") is owner
    before = {p["metadata"]["uid"] for p in c.pods(NS, "app.kubernetes.io/component=speaker")}
    watch = NeighbourWatch(c.client_ns, vip)
    # A client that waits as real ones do: past TCP's first two SYN retransmissions
    # (1 s, then 2 s more), so packets lost to a busy 2-core machine are not a failed
    # request (a reset or a refusal is). A 1.5 s stall was seen once in ~6 runs, starting
    # while helm applied the upgrade, before any speaker was replaced (cause unknown,
    # noted in the 2026-12-06 closing note). bench/failover_nodes reports the gaps with
    # a 50 ms timeout.
    logs = SpeakerLogs(c)
    probe = c.prober(vip, duration=300.0, timeout=3.5)
    probe_started = time.time()
    try:
        time.sleep(1.0)
        pods = c.roll_speakers(values=FAST_PROBES)
        time.sleep(1.0)
    finally:
        probe.send_signal(signal.SIGTERM)
        watch.close()
        time.sleep(1.5)  # the last Pods' final lines
        logs.close()
    seen = Outcome.parse(probe.communicate(timeout=30)[0])
    assert not before & {p["metadata"]["uid"] for p in pods}  # every speaker replaced
    assert seen.requests > 100, seen
    # (wall-clock times of failures and of the client's ARP changes, to line up with
    # the speakers' logs that diagnose() prints)
    assert seen.failed == 0, (seen, [probe_started + t for t, _ in seen.failures],
                              watch.changes, logs.events())
    # Speakers restarting on nodes that keep forwarding move no client: the takeovers
    # were quiet, the client's ARP entry never changed (a move resets connections).
    assert {m for _, m in watch.changes} <= {mac}, (watch.changes, logs.events())
    c.single_announcer(APPS, "rolling")


def test_a_quiet_takeover_announces_when_the_previous_node_stops_forwarding(
        healthy: Cluster) -> None:
    c = healthy
    name = "quiet-then-loud"
    (vip,) = c.lb_service(APPS, name, "web", address=pick_address(c, last=BACKEND_NODE))
    first = c.single_announcer(APPS, name)
    curl_pod(c, vip)
    mac = c.neighbour_mac(vip)
    (speaker,) = [p["metadata"]["name"] for p in c.pods(NS, "app.kubernetes.io/component=speaker")
                  if p["spec"]["nodeName"] == first.name]
    probe = c.prober(vip, duration=8.0, timeout=0.05)
    time.sleep(1.0)
    c.kubectl("delete", "pod", "-n", NS, speaker, "--wait=false")  # leaves gracefully
    second = wait_for(lambda: next((n for n in c.announcers(APPS, name) if n is not first),
                                   None), timeout=10, what="another node announces")
    # Quiet: the client still sends to the first node, which still forwards.
    assert c.neighbour_mac(vip) == mac
    c.set_link(first, up=False)  # now the first node stops forwarding
    seen = Outcome.parse(probe.communicate(timeout=60)[0])
    assert seen.outage_s < 5.0, seen  # hang guard; the distribution is in bench/
    assert c.curl(vip, timeout=1) is not None
    assert c.node_by_mac(c.neighbour_mac(vip) or "") is second

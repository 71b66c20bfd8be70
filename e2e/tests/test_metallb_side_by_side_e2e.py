"""MetalLB itself on the real-node cluster, and the switch from it to metallb-py.

MetalLB v0.15.2, built from the Go module proxy by e2e/tools/build-metallb, runs from its
own manifests (config/manifests/metallb-native.yaml) with images of those binaries. Then
the migration that docs/migration.md describes, step by step as written there: MetalLB's
workloads go, its CRDs and objects stay, metallb-py is installed, and no Service's
address changes. The same from MetalLB v0.12.1's ConfigMap (`metallbctl convert`), and
back from metallb-py to MetalLB v0.15.2. The doc's marked `sh` blocks are what runs.

One cluster for the module; tests run in file order, each starting from what the
previous one left (MetalLB v0.15.2 -> metallb-py; v0.12.1 -> metallb-py -> v0.15.2).
"""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from metallb_lab import metallb
from metallb_lab.cluster import Cluster, pod_ready
from metallb_lab.kube import lb_ingress, wait_for
from metallb_lab.kubenode import KubeNode
from metallb_lab.netns import ip
from metallb_lab.prober import Outcome
from metallb_lab.pytest_plugin import FAILED

pytestmark = pytest.mark.cluster_nodes
NS = metallb.NAMESPACE
APPS = "apps"
BACKEND_NODE = "node-3"
VERSION = "v0.15.2"
POOL4 = "198.18.0.100-198.18.0.199"
POOL6 = "fd00:18::100-fd00:18::1ff"
REQUESTED = "198.18.0.150"


def curl(c: Cluster, vip: str, port: int = 80, timeout: float = 30.0) -> str:
    host = f"[{vip}]" if ":" in vip else vip
    body = wait_for(lambda: c.http_get(f"http://{host}:{port}/", timeout=1),
                    timeout=timeout, what=f"curl {vip}:{port}")
    assert body.startswith("served by "), body
    return body


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[Cluster, metallb.MetalLB]]:
    m = metallb.prepare(VERSION)
    with Cluster(nodes=3) as c:
        metallb.load_images(c, m)
        c.api.create("/api/v1/namespaces", {"metadata": {"name": APPS}})
        c.deployment(APPS, "web", BACKEND_NODE, replicas=2)
        yield c, m


@pytest.fixture
def cluster(lab: tuple[Cluster, metallb.MetalLB], request: pytest.FixtureRequest
            ) -> Iterator[Cluster]:
    yield lab[0]
    if request.node.stash.get(FAILED, False):
        print(lab[0].diagnose(pods_of=(NS,), tail=100))


def service(c: Cluster, name: str, *, port: int = 80, annotations: dict[str, str] | None = None,
            **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = c.api.create(f"/api/v1/namespaces/{APPS}/services", {
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
                 "ports": [{"port": port, "targetPort": 80}], **spec}})
    return body


def addresses(c: Cluster, names: list[str]) -> dict[str, list[str]]:
    return {n: lb_ingress(c.api, APPS, n) for n in names}


def wait_assigned(c: Cluster, want: dict[str, int]) -> dict[str, list[str]]:
    """Until each Service has its number of addresses; returns them all."""
    def assigned() -> dict[str, list[str]] | None:
        got = addresses(c, list(want))
        return got if all(len(got[n]) == k for n, k in want.items()) else None

    return wait_for(assigned, timeout=60, what="every Service's addresses")


def pool_with_conditions(c: Cluster, name: str) -> dict[str, Any]:
    def get() -> dict[str, Any] | None:
        pool: dict[str, Any] = c.api.get(
            f"/apis/metallb.io/v1beta1/namespaces/{NS}/ipaddresspools/{name}")
        return pool if (pool.get("status") or {}).get("conditions") else None

    return wait_for(get, timeout=30, what=f"pool {name}'s status")


def reach_all(c: Cluster, before: dict[str, list[str]], ports: dict[str, int]) -> None:
    for name, vips in before.items():
        for vip in vips:
            curl(c, vip, ports.get(name, 80))


def switch_under_probe(c: Cluster, before: dict[str, list[str]], ports: dict[str, int],
                       switch: Callable[[], None]) -> Outcome:
    """`switch` (one system's steps to the other) while a client probes the first
    address; then every address answers; what the client saw."""
    probe = c.prober(next(iter(before.values()))[0], duration=600.0, timeout=0.2)
    try:
        switch()
        reach_all(c, before, ports)
        time.sleep(1.0)
    finally:
        probe.send_signal(signal.SIGTERM)
    return Outcome.parse(probe.communicate(timeout=30)[0])


def reach_all_afresh(c: Cluster, before: dict[str, list[str]], ports: dict[str, int]
                     ) -> list[tuple[str, KubeNode | None]]:
    """The client forgets the MACs it learned and reaches every address again: (Service,
    the node that answered the client's ARP/NDP) for each address."""
    ip("neigh", "flush", "all", ns=c.client_ns)
    answered = []
    for name, vips in before.items():
        for vip in vips:
            curl(c, vip, ports.get(name, 80))
            answered.append((name, c.node_by_mac(c.neighbour_mac(vip) or "")))
    return answered


def test_metallb_gives_the_service_an_address_and_the_client_reaches_it(
        cluster: Cluster, lab: tuple[Cluster, metallb.MetalLB]) -> None:
    c, m = cluster, lab[1]
    metallb.install(c, m)
    pods = c.pods(NS, "app=metallb")
    # Its own manifests, our builds of its binaries: nothing was pulled.
    assert {ctr["image"] for p in pods for ctr in p["spec"]["containers"]} \
        == m.image_refs()
    assert all(pod_ready(p) for p in pods)
    # Its validating webhook is served (and called by the API server) as in a real cluster.
    c.l2_pool("lab", POOL4, POOL6)
    (vip,) = c.lb_service(APPS, "nginx", "web")
    assert vip.startswith("198.18.0.1"), vip
    curl(c, vip)
    # Answered by one of MetalLB's speakers with its node's MAC; no node holds the address.
    owner = c.node_by_mac(c.neighbour_mac(vip) or "")
    assert owner is not None
    assert not any(vip in c.node_addresses(n) for n in c.nodes)


MIGRATED = ["nginx", "requested", "shared-a", "shared-b", "dual"]


def test_migration_to_metallb_py_changes_no_address(cluster: Cluster) -> None:
    c = cluster
    service(c, "requested", annotations={"metallb.io/loadBalancerIPs": REQUESTED})
    share = {"metallb.io/allow-shared-ip": "web"}
    service(c, "shared-a", annotations=share)
    service(c, "shared-b", port=8080, annotations=share)
    service(c, "dual", ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv4", "IPv6"])
    want = {"nginx": 1, "requested": 1, "shared-a": 1, "shared-b": 1, "dual": 2}
    before = wait_assigned(c, want)
    assert before["requested"] == [REQUESTED]
    assert before["shared-a"] == before["shared-b"], before
    ports = {"shared-b": 8080}
    reach_all(c, before, ports)

    steps = metallb.doc_steps()
    assert list(steps)[:5] == ["remove-metallb", "crds", "install", "check", "tidy"], steps
    t0 = time.monotonic()
    took: dict[str, float] = {}

    def switch() -> None:
        metallb.run_step(c, steps["remove-metallb"])  # MetalLB's workloads go; objects stay
        assert not c.pods(NS, "app=metallb")
        took["removed"] = time.monotonic() - t0
        metallb.run_step(c, steps["crds"])
        metallb.run_step(c, steps["install"])
        c.wait_speakers_ready()
        took["installed"] = time.monotonic() - t0
        metallb.run_step(c, steps["check"])

    seen = switch_under_probe(c, before, ports, switch)
    print(f"migration: MetalLB removed after {took['removed']:.1f}s, metallb-py Ready after "
          f"{took['installed']:.1f}s; client saw {seen.failed}/{seen.requests} failed, "
          f"longest gap {seen.outage_s:.2f}s")

    assert addresses(c, MIGRATED) == before  # not one address changed
    assert seen.requests > 100 and seen.after_outage is not None, seen
    for name in MIGRATED:
        c.single_announcer(APPS, name)
    # metallb-py's status and conditions on the objects MetalLB's users created.
    pool = pool_with_conditions(c, "lab")
    conds = {cond["type"]: cond["status"] for cond in pool["status"]["conditions"]}
    assert conds == {"Ready": "True", "Advertised": "True", "AssignmentsStable": "True"}, pool
    # 4 IPv4 addresses (two Services share one), 1 IPv6
    assert (pool["status"]["assignedIPv4"], pool["status"]["assignedIPv6"]) == (4, 1), pool

    # The client forgets the MACs it learned from MetalLB: metallb-py's speakers answer.
    for name, node in reach_all_afresh(c, before, ports):
        assert node in c.announcers(APPS, name)

    # Step 4 removes what MetalLB left, and nothing metallb-py needs.
    metallb.run_step(c, steps["tidy"])
    assert not [o for o in c.api.get("/apis/rbac.authorization.k8s.io/v1/clusterroles")[
        "items"] if o["metadata"]["name"].startswith("metallb-system:")]
    c.wait_speakers_ready()
    assert addresses(c, MIGRATED) == before


V012 = "v0.12.1"
SEED = ["seed", "seed-requested", "seed-shared-a", "seed-shared-b"]


def test_migration_from_metallb_v012_configmap_changes_no_address(
        cluster: Cluster, tmp_path: Path) -> None:
    c = cluster
    # From the previous test's metallb-py to a cluster with only MetalLB v0.12.1 (its
    # controller would re-assign what it cannot read, such as metallb.io/ keys).
    for name in MIGRATED:
        c.api.delete(f"/api/v1/namespaces/{APPS}/services/{name}")
    c.helm("uninstall", "metallb-py", "-n", NS, "--wait")
    c.kubectl("delete", "ipaddresspools,l2advertisements", "-n", NS, "--all")
    m = metallb.prepare(V012)
    metallb.load_images(c, m)
    metallb.install(c, m)
    assert {ctr["image"] for p in c.pods(NS, "app=metallb")
            for ctr in p["spec"]["containers"]} == m.image_refs()
    metallb.configure_v012(c, {"seed": [POOL4]})  # as the seed document shows
    service(c, "seed")
    service(c, "seed-requested", loadBalancerIP="198.18.0.160")
    share = {"metallb.universe.tf/allow-shared-ip": "seed"}
    service(c, "seed-shared-a", annotations=share)
    service(c, "seed-shared-b", port=8080, annotations=share)
    before = wait_assigned(c, dict.fromkeys(SEED, 1))
    assert before["seed-requested"] == ["198.18.0.160"]
    assert before["seed-shared-a"] == before["seed-shared-b"], before
    ports = {"seed-shared-b": 8080}
    reach_all(c, before, ports)

    steps = metallb.doc_steps()

    def switch() -> None:
        metallb.run_step(c, steps["v012-remove-metallb"])
        assert not c.pods(NS, "app=metallb")
        metallb.run_step(c, steps["v012-crds"])
        metallb.run_step(c, steps["v012-convert"], tmp_path)
        metallb.run_step(c, steps["install"])
        c.wait_speakers_ready()

    seen = switch_under_probe(c, before, ports, switch)
    print(f"v0.12.1 migration: client saw {seen.failed}/{seen.requests} failed, "
          f"longest gap {seen.outage_s:.2f}s")
    assert addresses(c, SEED) == before
    for name, node in reach_all_afresh(c, before, ports):
        assert node in c.announcers(APPS, name)
    pool = pool_with_conditions(c, "seed")
    assert pool["spec"]["addresses"] == [POOL4]
    conds = {cond["type"]: cond["status"] for cond in pool["status"]["conditions"]}
    assert conds == {"Ready": "True", "Advertised": "True", "AssignmentsStable": "True"}, pool


def test_back_to_metallb_keeps_every_address(
        cluster: Cluster, lab: tuple[Cluster, metallb.MetalLB], tmp_path: Path) -> None:
    c, m = cluster, lab[1]
    before = addresses(c, SEED)  # what the previous test left, now metallb-py's
    assert all(len(v) == 1 for v in before.values()), before
    ports = {"seed-shared-b": 8080}
    shutil.copy(m.build.manifests / "metallb-native.yaml", tmp_path)

    def switch() -> None:
        metallb.run_step(c, metallb.doc_steps()["back-to-metallb"], tmp_path)
        metallb.wait_ready(c)

    seen = switch_under_probe(c, before, ports, switch)
    print(f"back to MetalLB {m.version}: client saw {seen.failed}/{seen.requests} failed, "
          f"longest gap {seen.outage_s:.2f}s")
    assert not c.pods(NS, "app.kubernetes.io/name=metallb-py")
    assert addresses(c, SEED) == before
    # MetalLB's speakers answer now (metallb-py's are gone).
    for name, node in reach_all_afresh(c, before, ports):
        assert node is not None, name

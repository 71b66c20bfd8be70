"""bench.versus's lab: the two systems as the bench sees them (their workloads' names and
labels, how to wait until they are ready), the shared configuration, the switch from
MetalLB to metallb-py, and the Pods' processes with their CPU and RSS, read the same way
for both systems (the Pod's processes found through the node's cgroups, then /proc)."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import cpu_seconds, rss_mb, summary
from metallb_lab import cgroups, metallb
from metallb_lab.cluster import Cluster, pod_ready
from metallb_lab.kube import wait_for
from metallb_lab.kubenode import KubeNode

APPS = "bench"
BACKEND = "node-3"
NS = metallb.NAMESPACE
POOL = "198.18.0.100-198.18.0.199"
# Room for 10k Services (16,384 addresses), in the lab's range, clear of the LAN
# (198.18.0.0/24), the Pods (198.18.128.0/17) and the Services' ClusterIPs (198.19.0.0/16).
SCALE_POOL = "198.18.64.0/18"


@dataclass(frozen=True)
class System:
    name: str
    speaker_ds: str
    speaker_pods: str  # label selector
    controller_deploy: str
    controller_pods: str
    ready: Callable[[Cluster], object]


def _ours_ready(c: Cluster) -> None:
    c.wait_speakers_ready()
    controller_ready(c, SYSTEMS["metallb-py"])


SYSTEMS = {
    "metallb": System("metallb", "speaker", metallb.SPEAKERS, "controller",
                      metallb.CONTROLLERS, metallb.wait_ready),
    "metallb-py": System("metallb-py", "metallb-py-speaker",
                         "app.kubernetes.io/component=speaker", "metallb-py-operator",
                         "app.kubernetes.io/component=operator", _ours_ready),
}


def configure(c: Cluster) -> None:
    """Two pools, each advertised from every node but the backends' (so a failure moves
    the address and never the nginx Pods: Kubernetes noticing dead Pods takes the node
    controller's 50 s grace period, for any load balancer)."""
    not_backend = [{"matchExpressions": [{"key": "kubernetes.io/hostname",
                                          "operator": "NotIn", "values": [BACKEND]}]}]
    items: list[dict[str, Any]] = []
    for name, addresses, auto in (("bench", POOL, True), ("scale", SCALE_POOL, False)):
        items += [
            {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
             "metadata": {"name": name, "namespace": NS},
             "spec": {"addresses": [addresses], "autoAssign": auto}},
            {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
             "metadata": {"name": name, "namespace": NS},
             "spec": {"ipAddressPools": [name], "nodeSelectors": not_backend}}]
    c.kubectl("apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": items}))


def switch_to_metallb_py(c: Cluster) -> None:
    """docs/migration.md, steps 1-3, its own commands."""
    steps = metallb.doc_steps()
    for step in ("remove-metallb", "crds", "install"):
        metallb.run_step(c, steps[step])
    SYSTEMS["metallb-py"].ready(c)


def live_pods(c: Cluster, selector: str) -> list[dict[str, Any]]:
    return [p for p in c.pods(NS, selector) if not p["metadata"].get("deletionTimestamp")]


def controller_ready(c: Cluster, s: System, timeout: float = 180) -> dict[str, Any]:
    def one() -> dict[str, Any] | None:
        ready = [p for p in live_pods(c, s.controller_pods) if pod_ready(p)]
        return ready[0] if ready else None

    return wait_for(one, timeout=timeout, interval=0.2, what=f"{s.name} controller Ready")


def speaker_pod(c: Cluster, s: System, node: KubeNode) -> dict[str, Any]:
    return next(p for p in live_pods(c, s.speaker_pods) if p["spec"].get("nodeName") == node.name)


def pod_pids(c: Cluster, pod: dict[str, Any]) -> list[int]:
    """The processes of a Pod's containers (not its sandbox): the node's cgroups hold
    them, under the Pod's own cgroup (named after its UID)."""
    node = c.node(pod["spec"]["nodeName"])
    uid = pod["metadata"]["uid"]
    marks = (uid, uid.replace("-", "_"))
    found = []
    for pid in cgroups.pids(node.cgroup):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "pause":
                continue
            text = Path(f"/proc/{pid}/cgroup").read_text()
            if any(m in text for m in marks):
                found.append(pid)
    return sorted(found)


def usage(c: Cluster, s: System, window: float = 10.0) -> dict[str, Any]:
    """CPU (cores, averaged over `window`) and RSS of each speaker and the controller."""
    pods = {f"speaker {p['spec']['nodeName']}": p for p in live_pods(c, s.speaker_pods)}
    pods["controller"] = controller_ready(c, s)
    pids = {k: pod_pids(c, p) for k, p in pods.items()}

    def cpu(ps: list[int]) -> float:
        total = 0.0
        for pid in ps:
            with contextlib.suppress(OSError):
                total += cpu_seconds(pid)
        return total

    before = {k: cpu(ps) for k, ps in pids.items()}
    t0 = time.monotonic()
    time.sleep(window)
    took = time.monotonic() - t0
    per: dict[str, dict[str, float]] = {}
    for k, ps in pids.items():
        rss = 0.0
        for pid in ps:
            with contextlib.suppress(OSError):
                rss += rss_mb(pid)
        per[k] = {"cpu_millicores": round((cpu(ps) - before[k]) / took * 1000, 1),
                  "rss_mb": round(rss, 1), "processes": len(ps)}
    speakers = [v for k, v in per.items() if k.startswith("speaker")]
    return {"window_s": round(took, 1), "pods": per,
            "speaker_cpu_millicores": summary([v["cpu_millicores"] for v in speakers]),
            "speaker_rss_mb": summary([v["rss_mb"] for v in speakers]),
            "controller_cpu_millicores": per["controller"]["cpu_millicores"],
            "controller_rss_mb": per["controller"]["rss_mb"]}


def speaker_logs(c: Cluster, s: System, tail: int = 40) -> dict[str, str]:
    """Evidence for a trial that went wrong: each speaker's last lines."""
    out = {}
    for p in c.pods(NS, s.speaker_pods):
        name = p["metadata"]["name"]
        r = c.kubectl("logs", "-n", NS, name, f"--tail={tail}", "--request-timeout=10s",
                      check=False)
        out[f"{p['spec'].get('nodeName')} {name}"] = (r.stdout + r.stderr)[-6000:]
    return out


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)

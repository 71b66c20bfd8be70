"""What the real-node lab costs: the cluster's start-up time, and per node at idle
(speakers Ready, one LoadBalancer Service announced) the CPU and memory of kubelet,
containerd (and its shims), kube-proxy and the speaker Pod; the control plane beside.

Processes are attributed by cgroup (each node's daemons and Pods live in cgroups of
their own), so nothing of the host is counted.

Run: .venv/bin/python -m bench.cluster_nodes [--idle 30]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.common import write
from metallb_lab import cgroups
from metallb_lab.cluster import Cluster

CLK_TCK = os.sysconf("SC_CLK_TCK")


def role(pid: int) -> str | None:
    """What a process is, from its command line."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    words = [Path(a.decode(errors="replace")).name for a in argv if a]
    for name in ("kubelet", "kube-proxy", "containerd-shim-runc-v2", "containerd"):
        if name in words[:1] or (words[:1] == ["nsenter"] and name in words):
            return "shims" if name.startswith("containerd-shim") else name
    if any(w == "metallb-speaker" for w in words):
        return "speaker"
    if any(w == "metallb-operator" for w in words):
        return "operator"
    if words[:1] == ["nginx"] or "nginx:" in " ".join(words):
        return "nginx"
    if words[:1] == ["pause"]:
        return "pause"
    return "other"


def cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime + stime


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def sample(groups: dict[str, list[int]], window: float) -> dict[str, dict[str, float]]:
    """Per group: RSS (MB, at the end) and CPU (% of one core over `window`)."""
    before = {pid: cpu_ticks(pid) for pids in groups.values() for pid in pids}
    time.sleep(window)
    out: dict[str, dict[str, float]] = {}
    for name, pids in groups.items():
        ticks = sum(cpu_ticks(p) - before.get(p, 0) for p in pids)
        out[name] = {"rss_mb": round(sum(rss_mb(p) for p in pids), 1),
                     "cpu_pct": round(100 * ticks / CLK_TCK / window, 2),
                     "processes": len(pids)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--idle", type=float, default=30.0)
    args = ap.parse_args()
    out: dict[str, Any] = {"nodes": 3, "idle_window_s": args.idle}
    t0 = time.monotonic()
    with Cluster(nodes=3, log=lambda m: print(f"cluster: {m}", flush=True)) as c:
        out["start_s"] = dict(c.timings)
        t1 = time.monotonic()
        c.install()
        c.wait_speakers_ready()
        out["start_s"]["helm install to every speaker Ready and joined"] = round(
            time.monotonic() - t1, 1)
        c.l2_pool("idle", "198.18.0.100-198.18.0.110")
        c.api.create("/api/v1/namespaces", {"metadata": {"name": "idle"}})
        c.deployment("idle", "web", "node-3")
        c.lb_service("idle", "web", "web")
        c.single_announcer("idle", "web")
        time.sleep(5)  # let start-up work settle
        groups: dict[str, list[int]] = defaultdict(list)
        for node in c.nodes:
            for cg in (node.cgroup, node.daemon_cgroup):
                for pid in cgroups.pids(cg):
                    if (r := role(pid)) is not None:
                        groups[f"{node.name}/{r}"].append(pid)
        for name, pid in c.control_plane.processes():
            groups[f"control-plane/{name}"].append(pid)
        got = sample(groups, args.idle)
        out["per_process_group"] = got
    out["total_s_with_teardown"] = round(time.monotonic() - t0, 1)
    per_role: dict[str, list[dict[str, float]]] = defaultdict(list)
    for key, v in got.items():
        where, what = key.split("/", 1)
        if where.startswith("node-"):
            per_role[what].append(v)
    out["per_node_mean"] = {r: {"rss_mb": round(sum(v["rss_mb"] for v in vs) / len(vs), 1),
                                "cpu_pct": round(sum(v["cpu_pct"] for v in vs) / len(vs), 2)}
                            for r, vs in per_role.items()}
    out["cluster_total"] = {"rss_mb": round(sum(v["rss_mb"] for v in got.values()), 1),
                            "cpu_pct": round(sum(v["cpu_pct"] for v in got.values()), 2)}
    print("\nstart-up:")
    for k, v in out["start_s"].items():
        print(f"  {k:50s} {v:6.1f} s")
    print(f"\nper node at idle, mean of 3 (over {args.idle:.0f} s):")
    for r, v in sorted(out["per_node_mean"].items()):
        print(f"  {r:12s} {v['rss_mb']:7.1f} MB  {v['cpu_pct']:5.2f} % of a core")
    for k, v in sorted(got.items()):
        if k.startswith("control-plane/"):
            print(f"  {k:30s} {v['rss_mb']:7.1f} MB  {v['cpu_pct']:5.2f} %")
    t = out["cluster_total"]
    print(f"  whole cluster: {t['rss_mb']:.0f} MB, {t['cpu_pct']:.1f} % of a core")
    write("cluster_nodes", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

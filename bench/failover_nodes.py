"""bench/failover on the real-node cluster: speakers as the chart's Pods, traffic through
kube-proxy's rules to nginx Pods, a request to the external IP every 10 ms.

  link-down - the announcing node's eth0 goes down;
  frozen    - every process of the announcing node (kubelet, containerd, kube-proxy,
              the speaker Pod) is frozen (cgroup freezer). Its kernel still forwards
              with kube-proxy's rules, so clients may see no outage at all: the figure
              that shows the speakers' failover is when the client's ARP entry moved;
  rolling   - `helm upgrade` rolls the speaker DaemonSet (goal: 0 failed requests).

The nginx Pods run on node-3 and node-3 ranks last for the Service's address (it never
announces it while another node is up), so the outage is the address moving, not
Kubernetes noticing dead Pods (which takes the node controller's 50 s grace period, for
any load balancer). Each trial fails the node the client sends to. outage = the longest gap
between two successful requests.

Run: .venv/bin/python -m bench.failover_nodes [--trials 20] [--rollouts 5]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from bench.common import summary, write
from metallb_lab.cluster import Cluster, address_ranked_last
from metallb_lab.kube import wait_for
from metallb_lab.kubenode import KubeNode
from metallb_lab.lan import NeighbourWatch
from metallb_lab.netns import ip
from metallb_lab.prober import Outcome

APPS = "bench"
BACKEND = "node-3"
PROBE_TIMEOUT = 0.05


def fail(c: Cluster, node: KubeNode, kind: str, failed: bool) -> None:
    if kind == "link-down":
        c.set_link(node, up=not failed)
    else:
        c.set_frozen(node, failed)


def mac_of(c: Cluster, node: KubeNode) -> str:
    out = json.loads(ip("-j", "link", "show", "eth0", ns=node.ns).stdout)
    return str(out[0]["address"])


def settle(c: Cluster, vip: str, ready: Callable[[], object] | None = None,
           timeout: float = 30) -> KubeNode:
    """The steady state before each trial: `ready` (default: every speaker Ready and
    joined, one node announcing the Service), and the client reaching it; returns the
    node the client sends to. After a recovery the owner may have reclaimed the address
    quietly while the client still sends to the node it failed over to: that node is
    the one a client-visible failure must hit (and the owner must then announce)."""
    if ready is None:
        c.wait_speakers_ready()
        c.single_announcer(APPS, "web")
    else:
        ready()

    def reached() -> KubeNode | None:
        if c.curl(vip, timeout=1) is None:
            return None
        return c.node_by_mac(c.neighbour_mac(vip) or "")

    via = wait_for(reached, timeout=timeout, what="the client reaches the Service")
    assert via.name != BACKEND, "the backends' node never announces this address"
    time.sleep(0.5)
    return via


def trial(c: Cluster, vip: str, kind: str) -> dict[str, Any]:
    owner = settle(c, vip)
    watch = NeighbourWatch(c.client_ns, vip)
    probe = c.prober(vip, duration=6.0, timeout=PROBE_TIMEOUT)
    time.sleep(1.5)
    t_fault = time.time()
    fail(c, owner, kind, True)
    seen = Outcome.parse(probe.communicate(timeout=60)[0])
    moved = watch.moved_after(t_fault, away_from=mac_of(c, owner))
    watch.close()
    new_owner = c.node_by_mac(c.neighbour_mac(vip) or "")
    fail(c, owner, kind, False)
    return {"kind": kind, "from": owner.name,
            "to": new_owner.name if new_owner else None,
            "outage_s": seen.outage_s, "failed_requests": seen.failed,
            "requests": seen.requests,
            "arp_moved_s": round(moved, 4) if moved is not None else None}


def rollout(c: Cluster, vip: str) -> dict[str, Any]:
    settle(c, vip)
    probe = c.prober(vip, duration=600.0, timeout=PROBE_TIMEOUT)
    t0 = time.monotonic()
    try:
        time.sleep(1.0)
        c.install(values=[f"speaker.podAnnotations.bench/rollout={uuid.uuid4()}"])
        c.kubectl("rollout", "status", "-n", "metallb-system",
                  "daemonset/metallb-py-speaker", "--timeout=300s")
        c.wait_speakers_ready()
        took = time.monotonic() - t0
        time.sleep(1.0)
    finally:
        probe.terminate()
    seen = Outcome.parse(probe.communicate(timeout=30)[0])
    return {"kind": "rolling", "rollout_s": round(took, 1), "outage_s": seen.outage_s,
            "failed_requests": seen.failed, "requests": seen.requests,
            "failures": seen.failures, "slowest_ok_ms": seen.slowest_ms}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--rollouts", type=int, default=5)
    ap.add_argument("--kinds", default="link-down,frozen")
    args = ap.parse_args()
    out: dict[str, Any] = {"lab": "real nodes (kubelet, containerd, kube-proxy nftables)",
                           "trials_per_kind": args.trials, "probe_interval_s": 0.01,
                           "probe_timeout_s": PROBE_TIMEOUT, "nodes": 3, "results": {}}
    with Cluster(nodes=3, log=lambda m: print(f"cluster: {m}", flush=True)) as c:
        out["cluster_timings_s"] = dict(c.timings)
        c.install()
        c.wait_speakers_ready()
        c.l2_pool("bench", "198.18.0.100-198.18.0.199")
        c.api.create("/api/v1/namespaces", {"metadata": {"name": APPS}})
        c.deployment(APPS, "web", BACKEND, replicas=2)
        address = address_ranked_last(BACKEND, (n.name for n in c.nodes),
                                       (f"198.18.0.{i}" for i in itertools.count(100)))
        (vip,) = c.lb_service(APPS, "web", "web", address=address)
        for kind in args.kinds.split(","):
            rows = []
            for i in range(args.trials):
                row = trial(c, vip, kind)
                rows.append(row)
                moved = row["arp_moved_s"]
                print(f"{kind:9s} #{i + 1:2d}: outage {row['outage_s'] * 1000:6.0f} ms, "
                      f"{row['failed_requests']:3d} failed, client's ARP entry moved "
                      f"after {moved * 1000 if moved is not None else float('nan'):4.0f} ms,"
                      f" {row['from']} -> {row['to']}", flush=True)
            outages = [r["outage_s"] * 1000 for r in rows if r["to"] != r["from"]]
            out["results"][kind] = {
                "trials": rows, "outage_ms": summary(outages),
                "arp_moved_ms": summary([r["arp_moved_s"] * 1000 for r in rows
                                         if r["arp_moved_s"] is not None]),
                "failed_requests_total": sum(r["failed_requests"] for r in rows),
                "moved": len(outages)}
        rows = []
        for i in range(args.rollouts):
            row = rollout(c, vip)
            rows.append(row)
            print(f"rolling   #{i + 1:2d}: {row['failed_requests']} failed of "
                  f"{row['requests']} {list(row['failures'])}, longest gap "
                  f"{row['outage_s'] * 1000:.0f} ms, slowest answer "
                  f"{row['slowest_ok_ms']:.0f} ms, rollout {row['rollout_s']} s", flush=True)
        out["results"]["rolling"] = {
            "trials": rows, "failed_requests_total": sum(r["failed_requests"] for r in rows),
            "longest_gap_ms": summary([r["outage_s"] * 1000 for r in rows]),
            "rollout_s": summary([r["rollout_s"] for r in rows])}
    print("\nkind       outage p50/p99/max ms   ARP moved p50/p99 ms   failed requests")
    for kind, res in out["results"].items():
        o = res.get("outage_ms") or res["longest_gap_ms"]
        a = res.get("arp_moved_ms") or {"p50": float("nan"), "p99": float("nan")}
        print(f"{kind:9s} {o['p50']:7.0f} {o['p99']:7.0f} {o['max']:7.0f}   "
              f"{a['p50']:9.0f} {a['p99']:7.0f}   {res['failed_requests_total']:10d}")
    out["goals"] = {"hard_p50_ms": 400, "hard_p99_ms": 1000, "rolling_failed_requests": 0}
    write("failover_nodes", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

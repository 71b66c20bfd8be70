"""MetalLB and metallb-py side by side, in one run on one real-node cluster (issue 13):
the client-observed outage when the announcing node fails, same client, same 10 ms
probing, same nginx Service and address.

  link-down - the node the client sends to loses its link;
  frozen    - every process of that node stops (cgroup freezer). Its kernel still
              forwards with kube-proxy's rules, so the client may see no outage: the
              figure that shows the failover is when the client's ARP entry moved.

MetalLB v0.15.2 (built from the Go module proxy by e2e/tools/build-metallb, installed from
its own metallb-native.yaml) runs first; then the cluster switches to metallb-py the way
docs/migration.md says (the Service keeps its address) and the same trials run again.

Both systems get the same configuration: one pool, and an L2Advertisement whose
nodeSelectors leave out the backends' node, so a failure moves the address and never the
nginx Pods (Kubernetes noticing dead Pods takes the node controller's 50 s grace period,
for any load balancer). Each trial takes down the link of the node the client sends to.
outage = the longest gap between two successful requests.

Skeleton: node failures only. Still to come (issue 13): speaker Pod killed, rolling
update, create -> address at 1k/10k Services, controller restart, CPU and RSS, ARP
replies per second.

Run: .venv/bin/python -m bench.versus [--trials 10] [--systems metallb,metallb-py]
                                     [--kinds link-down,frozen]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.common import summary, write
from bench.failover_nodes import fail, mac_of, settle
from metallb_lab import metallb
from metallb_lab.cluster import Cluster
from metallb_lab.lan import NeighbourWatch
from metallb_lab.prober import Outcome

APPS = "bench"
BACKEND = "node-3"
NS = metallb.NAMESPACE
METALLB_VERSION = "v0.15.2"
PROBE_TIMEOUT = 0.05
# Long enough for MetalLB's memberlist to notice a dead node (users report 5-8 s).
PROBE_SECONDS = 20.0
# After a node's link is back: time for memberlist to take it back (MetalLB has no
# readiness figure for that, unlike metallb-py's members metric), so that the next
# trial starts from a whole cluster for both systems.
RECOVER_SECONDS = 10.0
SYSTEMS = ("metallb", "metallb-py")


def configure(c: Cluster) -> None:
    """The pool and an advertisement from every node but the backends'."""
    c.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
             "metadata": {"name": "bench", "namespace": NS},
             "spec": {"addresses": ["198.18.0.100-198.18.0.199"]}},
            {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
             "metadata": {"name": "bench", "namespace": NS},
             "spec": {"ipAddressPools": ["bench"], "nodeSelectors": [{"matchExpressions": [
                 {"key": "kubernetes.io/hostname", "operator": "NotIn",
                  "values": [BACKEND]}]}]}}]}))


def switch_to_metallb_py(c: Cluster) -> None:
    """docs/migration.md, steps 1-3, its own commands."""
    steps = metallb.doc_steps()
    for step in ("remove-metallb", "crds", "install"):
        metallb.run_step(c, steps[step])
    c.wait_speakers_ready()


def trial(c: Cluster, vip: str, kind: str, ready: Callable[[], object]) -> dict[str, Any]:
    owner = settle(c, vip, ready, timeout=60)  # MetalLB's memberlist takes longer
    watch = NeighbourWatch(c.client_ns, vip)
    probe = c.prober(vip, duration=PROBE_SECONDS, timeout=PROBE_TIMEOUT)
    time.sleep(1.5)
    t_fault = time.time()
    fail(c, owner, kind, True)
    seen = Outcome.parse(probe.communicate(timeout=120)[0])
    moved = watch.moved_after(t_fault, away_from=mac_of(c, owner))
    watch.close()
    new_owner = c.node_by_mac(c.neighbour_mac(vip) or "")
    # Who says it announces (ServiceL2Status, written by both systems' speakers).
    announcers = [n.name for n in c.announcers(APPS, "web")]
    fail(c, owner, kind, False)
    time.sleep(RECOVER_SECONDS)
    return {"from": owner.name, "to": new_owner.name if new_owner else None,
            "outage_s": seen.outage_s, "failed_requests": seen.failed,
            "requests": seen.requests, "recovered": seen.after_outage is not None,
            "announcers": announcers,
            "arp_moved_s": round(moved, 4) if moved is not None else None}


def run_trials(c: Cluster, system: str, kind: str, vip: str, n: int,
               ready: Callable[[], object]) -> dict[str, Any]:
    rows = []
    for i in range(n):
        row = trial(c, vip, kind, ready)
        rows.append(row)
        moved = row["arp_moved_s"]
        print(f"{system:10s} {kind:9s} #{i + 1:2d}: outage {row['outage_s'] * 1000:6.0f} ms, "
              f"{row['failed_requests']:4d} failed, client's ARP entry moved after "
              f"{moved * 1000 if moved is not None else float('nan'):5.0f} ms, "
              f"{row['from']} -> {row['to']} (status: {row['announcers']})", flush=True)
    moved_rows = [r for r in rows if r["to"] != r["from"] and r["recovered"]]
    return {"trials": rows, "outage_ms": summary([r["outage_s"] * 1000 for r in moved_rows]),
            "arp_moved_ms": summary([r["arp_moved_s"] * 1000 for r in rows
                                     if r["arp_moved_s"] is not None]),
            "moved": len(moved_rows),
            "failed_requests_total": sum(r["failed_requests"] for r in rows)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--kinds", default="link-down,frozen")
    args = ap.parse_args()
    systems = args.systems.split(",")
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        ap.error(f"unknown systems {sorted(unknown)}: choose from {SYSTEMS}")
    log = lambda m: print(f"cluster: {m}", flush=True)  # noqa: E731
    m = metallb.prepare(METALLB_VERSION, log) if "metallb" in systems else None
    out: dict[str, Any] = {"lab": "real nodes (kubelet, containerd, kube-proxy nftables)",
                           "metallb": METALLB_VERSION, "trials": args.trials,
                           "probe_interval_s": 0.01, "probe_timeout_s": PROBE_TIMEOUT,
                           "nodes": 3, "results": {}}
    with Cluster(nodes=3, log=log) as c:
        out["cluster_timings_s"] = dict(c.timings)
        c.api.create("/api/v1/namespaces", {"metadata": {"name": APPS}})
        c.deployment(APPS, "web", BACKEND, replicas=2)
        if m is not None:
            metallb.load_images(c, m)
            metallb.install(c, m)
        else:
            c.install()
            c.wait_speakers_ready()
        configure(c)
        (vip,) = c.lb_service(APPS, "web", "web")
        for system in systems:
            if system == "metallb-py" and m is not None:
                switch_to_metallb_py(c)
            ready: Callable[[], object] = (
                (lambda: metallb.wait_ready(c)) if system == "metallb" else c.wait_speakers_ready)
            out["results"][system] = {
                kind: run_trials(c, system, kind, vip, args.trials, ready)
                for kind in args.kinds.split(",")}
    print("\nsystem     kind       outage p50/p99/max ms   ARP moved p50/p99 ms   moved"
          "   failed requests")
    for system, kinds in out["results"].items():
        for kind, res in kinds.items():
            o, a = res["outage_ms"], res["arp_moved_ms"]
            print(f"{system:10s} {kind:9s} {o['p50']:7.0f} {o['p99']:7.0f} {o['max']:7.0f}   "
                  f"{a['p50']:9.0f} {a['p99']:7.0f}   {res['moved']:3d}/{args.trials}   "
                  f"{res['failed_requests_total']:10d}")
    if set(out["results"]) == set(SYSTEMS):
        # MetalLB's figure over ours, per kind: outage where the client saw one, else
        # the time until the client's ARP entry moved.
        ratios = {}
        for kind in args.kinds.split(","):
            ours, theirs = (out["results"][s][kind] for s in ("metallb-py", "metallb"))
            key = "outage_ms" if ours["moved"] and theirs["moved"] else "arp_moved_ms"
            mine, other = ours[key]["p50"], theirs[key]["p50"]
            ratios[kind] = {"figure": key, "p50_ratio": round(other / mine, 1) if mine else None}
        out["metallb_over_metallb_py"] = ratios
    write("versus", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Failover as a client sees it: a request to the external IP every 10 ms while the
announcing node fails.

Hard loss (goal p50 <= 400 ms, p99 <= 1 s), >= 20 trials each:
  SIGKILL   - the node's speaker and nginx are killed (the node's services are gone);
  SIGSTOP   - the node's speaker and nginx are frozen;
  link-down - the node's eth0 goes down.
Planned handoff (goal: 0 failed requests): SIGTERM of the announcing speaker (a rolling
restart), nginx keeps running there as kube-proxy would until the pod is gone.

outage = the longest gap between two successful requests (10 ms when all is well); it
includes the client's 50 ms per-request timeout granularity.

Run: .venv/bin/python -m bench.failover [--trials 20]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any

from bench.common import summary, write
from metallb_lab.controlplane import ControlPlane
from metallb_lab.kube import apply_crds, wait_for
from metallb_lab.netlab import LabNode, NetLab
from metallb_lab.netns import ip
from metallb_lab.operator import OperatorProcess
from metallb_lab.prober import Outcome

NS = "metallb-system"
PROBE_TIMEOUT = 0.05  # the client's per-request timeout: the outage's resolution


def inject(lab: NetLab, node: LabNode, kind: str) -> None:
    if kind == "link-down":
        ip("link", "set", "eth0", "down", ns=node.ns)
        return
    sig = {"SIGKILL": signal.SIGKILL, "SIGSTOP": signal.SIGSTOP,
           "SIGTERM": signal.SIGTERM}[kind]
    lab.signal_speaker(node, sig)
    if kind != "SIGTERM" and node.nginx is not None:
        os.killpg(node.nginx.pid, sig)


def restore(lab: NetLab, node: LabNode) -> None:
    ip("link", "set", "eth0", "up", ns=node.ns)
    lab.ensure_nginx(node)
    if node.speaker is not None and node.speaker.poll() is None:
        lab.signal_speaker(node, signal.SIGCONT)
    else:
        if node.speaker is not None:
            node.speaker.wait(timeout=10)
        lab.start_speaker(node)


def settle(lab: NetLab, vip: str) -> LabNode:
    """Wait until one node announces and the client reaches it through the VIP."""
    lab.wait_ready(timeout=90)

    seen: list[Any] = []

    def stable() -> LabNode | None:
        owners = lab.owner("default", "web")
        body = lab.curl(vip, timeout=0.5)
        seen[:] = [owners, body, lab.neighbour_mac(vip)]
        if len(owners) != 1:
            return None
        node = lab.node(owners[0])
        return node if body == f"served by {node.name}" else None

    try:
        first = wait_for(stable, timeout=60, interval=0.2, what="a settled owner")
    except TimeoutError:
        for n in lab.nodes:
            print(f"---- {n.name}\n" + lab.speaker_log(n).read_text()[-3000:], file=sys.stderr)
        raise TimeoutError(f"no settled owner: {seen}") from None
    time.sleep(0.5)
    return first


def trial(lab: NetLab, vip: str, kind: str) -> dict[str, Any]:
    node = settle(lab, vip)
    probe = lab.prober(vip, duration=6.0, interval=0.01, timeout=PROBE_TIMEOUT)
    started = time.monotonic()
    time.sleep(1.5)
    t_fault = time.monotonic() - started
    inject(lab, node, kind)
    out, _ = probe.communicate(timeout=60)
    restore(lab, node)
    del t_fault  # the prober's clock starts later than ours: use only its own timeline
    seen = Outcome.parse(out)
    moved_to = next((n for n in seen.served_by if n != node.name), None)
    return {"kind": kind, "from": node.name, "to": moved_to, "outage_s": seen.outage_s,
            "failed_requests": seen.failed, "requests": seen.requests,
            "first_ok_after_gap": seen.after_outage}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--kinds", default="SIGKILL,SIGSTOP,link-down,SIGTERM")
    args = ap.parse_args()
    kinds = args.kinds.split(",")
    out: dict[str, Any] = {"trials_per_kind": args.trials, "probe_interval_s": 0.01,
                           "probe_timeout_s": PROBE_TIMEOUT, "nodes": 3, "results": {}}
    with ControlPlane() as cp:
        apply_crds(cp)
        with NetLab(cp, nodes=3, namespace=NS) as lab:
            lab.apply("""
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: bench}
spec: {addresses: ["198.18.0.100-198.18.0.110"]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: bench}
""")
            with OperatorProcess(cp, NS):
                lab.start_speakers()
                lab.wait_ready()
                cp.kubectl("create", "service", "loadbalancer", "web", "--tcp=80:80")
                lab.endpoints("default", "web", lab.nodes)  # nginx serves on every node
                vip = wait_for(lambda: cp.kubectl(
                    "get", "svc", "web", "-o",
                    "jsonpath={.status.loadBalancer.ingress[0].ip}").stdout, timeout=30)
                lab.wait_vip_on_nodes(vip)
                for kind in kinds:
                    rows = []
                    for i in range(args.trials):
                        row = trial(lab, vip, kind)
                        rows.append(row)
                        print(f"{kind:9s} #{i + 1:2d}: outage {row['outage_s'] * 1000:6.0f} ms, "
                              f"{row['failed_requests']:3d} failed, {row['from']} -> "
                              f"{row['to']}", flush=True)
                    outages = [r["outage_s"] for r in rows if r["to"]]
                    out["results"][kind] = {
                        "trials": rows,
                        "outage_ms": {k: (v * 1000 if isinstance(v, float) else v)
                                      for k, v in summary(outages).items()},
                        "failed_requests_total": sum(r["failed_requests"] for r in rows),
                        "moved": sum(1 for r in rows if r["to"]),
                    }
    print("\nkind       p50 ms   p99 ms   max ms  failed requests (total)")
    for kind, res in out["results"].items():
        o = res["outage_ms"]
        print(f"{kind:9s} {o['p50']:7.0f}  {o['p99']:7.0f}  {o['max']:7.0f}  "
              f"{res['failed_requests_total']}")
    out["goals"] = {"hard_p50_ms": 400, "hard_p99_ms": 1000, "planned_failed_requests": 0}
    write("failover", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""bench.versus's failure cases, the same for both systems: the client-observed outage
when the node the client sends to fails, and failed requests while the speaker
DaemonSet rolls. Same client, same 10 ms probing, same nginx Service and address.

  link-down    - that node loses its link;
  frozen       - every process of that node stops (cgroup freezer). Its kernel still
                 forwards with kube-proxy's rules, so the client may see no outage: the
                 figure that shows the failover is when the client's ARP entry moved;
  speaker-kill - that node's speaker process is SIGKILLed and its Pod force-deleted (the
                 DaemonSet makes a new one; no crash-loop back-off between trials). The
                 node still forwards, so again the ARP figure shows the failover;
  rolling      - `kubectl rollout restart ds` of the speakers (goal: 0 failed requests).

outage = the longest gap between two successful requests.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from bench.common import summary
from bench.failover_nodes import fail, mac_of, settle
from bench.versus_lab import (
    APPS,
    NS,
    System,
    kill_pids,
    pod_pids,
    speaker_logs,
    speaker_pod,
)
from metallb_lab.cluster import Cluster
from metallb_lab.kubenode import KubeNode
from metallb_lab.lan import NeighbourWatch
from metallb_lab.prober import Outcome

KINDS = ("link-down", "frozen", "speaker-kill")
PROBE_TIMEOUT = 0.05
# Long enough for MetalLB's memberlist to notice a dead node (users report 5-8 s).
PROBE_SECONDS = 20.0
# After a node's link is back: time for memberlist to take it back (MetalLB has no
# readiness figure for that, unlike metallb-py's members metric), so that the next
# trial starts from a whole cluster for both systems.
RECOVER_SECONDS = 10.0


def client_outage(results: list[dict[str, Any]], settled: float = 0.5
                  ) -> tuple[float, bool]:
    """(outage in s, answered again by the end) from the prober's records: the longest
    gap between two answered requests. If nothing was answered in the last `settled`
    seconds, the outage had not ended: the time from the last answer (or the first
    request) to the end counts too - a lower bound. (One unanswered request at the very
    end is not an outage that went on.)"""
    if not results:
        return float("nan"), False
    gap = Outcome.of(results).outage_s
    gap = 0.0 if math.isnan(gap) else gap
    end = results[-1]["t"]
    recovered = any(r["ok"] for r in results if r["t"] >= end - settled)
    if not recovered:
        oks = [r["t"] for r in results if r["ok"]]
        gap = max(gap, results[-1]["t"] - (oks[-1] if oks else results[0]["t"]))
    return round(gap, 4), recovered


def inflict(c: Cluster, s: System, node: KubeNode, kind: str, failed: bool) -> None:
    if kind != "speaker-kill":
        fail(c, node, kind, failed)
    elif failed:
        pod = speaker_pod(c, s, node)
        kill_pids(pod_pids(c, pod))
        c.api.request("DELETE", f"/api/v1/namespaces/{NS}/pods/{pod['metadata']['name']}",
                      {"gracePeriodSeconds": 0})


def trial(c: Cluster, s: System, vip: str, kind: str) -> dict[str, Any]:
    owner = settle(c, vip, lambda: s.ready(c), timeout=60)  # memberlist takes longer
    watch = NeighbourWatch(c.client_ns, vip)
    probe = c.prober(vip, duration=PROBE_SECONDS, timeout=PROBE_TIMEOUT)
    time.sleep(1.5)
    t_fault = time.time()
    inflict(c, s, owner, kind, True)
    results = json.loads(probe.communicate(timeout=120)[0])
    seen = Outcome.of(results)
    moved = watch.moved_after(t_fault, away_from=mac_of(c, owner))
    watch.close()
    new_owner = c.node_by_mac(c.neighbour_mac(vip) or "")
    # Who says it announces (ServiceL2Status, written by both systems' speakers).
    announcers = [n.name for n in c.announcers(APPS, "web")]
    inflict(c, s, owner, kind, False)
    outage, recovered = client_outage(results)
    row: dict[str, Any] = {
        "from": owner.name, "to": new_owner.name if new_owner else None,
        "outage_s": outage, "failed_requests": seen.failed,
        "requests": seen.requests, "recovered": recovered,
        "announcers": announcers, "arp_moved_s": round(moved, 4) if moved is not None else None}
    if moved is None and kind == "frozen":
        # The unreproduced case of issue 13 (the ARP entry never moved): keep the evidence.
        row["evidence"] = {"speaker_logs": speaker_logs(c, s)}
        print(f"  (ARP entry not moved: speaker logs kept; announcers {announcers})", flush=True)
    time.sleep(RECOVER_SECONDS)
    return row


def failover(c: Cluster, s: System, vip: str, kind: str, n: int) -> dict[str, Any]:
    rows = []
    for i in range(n):
        row = trial(c, s, vip, kind)
        rows.append(row)
        moved = row["arp_moved_s"]
        print(f"{s.name:10s} {kind:12s} #{i + 1:2d}: outage {row['outage_s'] * 1000:6.0f} ms, "
              f"{row['failed_requests']:4d} failed, client's ARP entry moved after "
              f"{moved * 1000 if moved is not None else float('nan'):5.0f} ms, "
              f"{row['from']} -> {row['to']} (status: {row['announcers']})"
              f"{'' if row['recovered'] else ', NOT answered again within the probing'}",
              flush=True)
    return {"trials": rows,
            "not_recovered": sum(not r["recovered"] for r in rows),
            # every trial: one where nothing moved and the client saw no gap counts with
            # its (small) longest gap, one never answered again with its lower bound
            "outage_ms": summary([r["outage_s"] * 1000 for r in rows]),
            "arp_moved_ms": summary([r["arp_moved_s"] * 1000 for r in rows
                                     if r["arp_moved_s"] is not None]),
            "arp_moved": sum(r["arp_moved_s"] is not None for r in rows),
            "moved": sum(r["to"] != r["from"] for r in rows),
            "failed_requests": summary([float(r["failed_requests"]) for r in rows]),
            "failed_requests_total": sum(r["failed_requests"] for r in rows)}


def rollout(c: Cluster, s: System, vip: str) -> dict[str, Any]:
    settle(c, vip, lambda: s.ready(c), timeout=60)
    probe = c.prober(vip, duration=900.0, timeout=PROBE_TIMEOUT)
    t0 = time.monotonic()
    try:
        time.sleep(1.0)
        c.kubectl("rollout", "restart", "-n", NS, f"daemonset/{s.speaker_ds}")
        c.kubectl("rollout", "status", "-n", NS, f"daemonset/{s.speaker_ds}",
                  "--timeout=600s")
        s.ready(c)
        took = time.monotonic() - t0
        time.sleep(1.0)
    finally:
        probe.terminate()
    seen = Outcome.parse(probe.communicate(timeout=30)[0])
    return {"rollout_s": round(took, 1), "outage_s": seen.outage_s,
            "failed_requests": seen.failed, "requests": seen.requests,
            "failures": seen.failures[:50], "slowest_ok_ms": seen.slowest_ms}


def rolling(c: Cluster, s: System, vip: str, n: int) -> dict[str, Any]:
    rows = []
    for i in range(n):
        row = rollout(c, s, vip)
        rows.append(row)
        print(f"{s.name:10s} rolling      #{i + 1:2d}: {row['failed_requests']} failed of "
              f"{row['requests']}, longest gap {row['outage_s'] * 1000:.0f} ms, slowest "
              f"answer {row['slowest_ok_ms']:.0f} ms, rollout {row['rollout_s']} s", flush=True)
        time.sleep(RECOVER_SECONDS)
    return {"trials": rows,
            "failed_requests": summary([float(r["failed_requests"]) for r in rows]),
            "failed_requests_total": sum(r["failed_requests"] for r in rows),
            "longest_gap_ms": summary([r["outage_s"] * 1000 for r in rows]),
            "rollout_s": summary([r["rollout_s"] for r in rows])}

"""The operator against the real kube-apiserver at 10,000 Services.

Measures (issue 3 goals in brackets):
1. baseline: a plain async client sending the operator's one write per Service (the
   same status PATCH body, pool annotation included) for 10,000 Services as fast as it
   can, same concurrency;
2. bulk: 10,000 new Services allocated by the operator -> ratio to the baseline [>= 0.8];
3. latency: with 10,000 Services existing and the operator idle (Event backlog of the
   bulk phase drained), create one at a time, time until its
   status.loadBalancer.ingress is set (seen on a watch), from sending the create and
   from the create's acknowledgement [p99 <= 100 ms];
4. restart: SIGKILL, start again: time until synced and idle, addresses changed [0];
5. operator RSS at that size [<= 200 MB].

CPU: the operator's own CPU time (user + system, from /proc) during the start-up sync,
the allocation phase and the Event backlog, per Service; the plain client's CPU per
PATCH for comparison (issue 11: roughly halve the operator's).

Run: .venv/bin/python -m bench.operator_scale [--services 10000] [--bulk-only]
     [--py-spy collapsed.txt]   (samples the operator during the allocation phase;
                                 needs py-spy, not a dependency of the project)
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import cpu_seconds, gather_limited, rss_mb, summary, write
from metallb_kube.client import Connection, KubeClient
from metallb_lab.controlplane import ControlPlane, ControlPlaneConfig
from metallb_lab.kube import apply_crds
from metallb_lab.operator import OperatorProcess

POOL_NS = "metallb-system"
APP_NS = "bench"
CONCURRENCY = 32


def start_py_spy(pid: int, out: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid),
         "--format", "raw", "--rate", "1000", "--output", out],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def svc_body(name: str, lb_class: str) -> dict[str, Any]:
    # No NodePorts: 10k+ Services would exhaust most of the 30000-32767 range (and L2
    # load balancing does not need them).
    return {"metadata": {"name": name}, "spec": {
        "type": "LoadBalancer", "loadBalancerClass": lb_class, "selector": {"app": name},
        "allocateLoadBalancerNodePorts": False,
        "ports": [{"port": 80, "protocol": "TCP"}]}}


async def create_services(client: KubeClient, prefix: str, n: int, lb_class: str) -> float:
    start = time.perf_counter()
    await gather_limited(n, lambda i: client.create(
        f"/api/v1/namespaces/{APP_NS}/services", svc_body(f"{prefix}-{i}", lb_class)))
    return time.perf_counter() - start


async def baseline(client: KubeClient, n: int) -> dict[str, float]:
    """A plain client doing the operator's one write per Service, as fast as it can, on
    the same Services: the same status PATCH body (ingress, and the pool annotation
    that rides along) minus the resourceVersion precondition, which a client without a
    cache cannot know. Then it clears both so the operator starts from scratch."""
    def path(i: int) -> str:
        return f"/api/v1/namespaces/{APP_NS}/services/bulk-{i}/status"

    async def assign(i: int) -> None:
        ip = f"198.19.{200 + i // 65536}.{i % 256}"  # never used anywhere else
        await client.merge_patch(path(i), {
            "metadata": {"annotations": {"metallb.io/ip-allocated-from-pool": "bench"}},
            "status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}})

    async def clear(i: int) -> None:
        await client.merge_patch(path(i), {
            "metadata": {"annotations": {"metallb.io/ip-allocated-from-pool": None}},
            "status": {"loadBalancer": {"ingress": None}}})

    t, cpu = time.perf_counter(), time.process_time()
    await gather_limited(n, assign)
    status_rate = n / (time.perf_counter() - t)
    cpu_ms = (time.process_time() - cpu) * 1000 / n
    await gather_limited(n, clear)
    return {"status_patches_per_s": status_rate, "client_cpu_ms_per_patch": cpu_ms}


class AssignedWatch:
    """Counts Services of one prefix whose ingress is set, from a watch: polling with
    LISTs of 10k Services would itself load the 2-core machine the operator shares."""

    def __init__(self, client: KubeClient, prefix: str, n: int) -> None:
        self.client, self.prefix, self.n = client, prefix + "-", n
        self.assigned: set[str] = set()
        self.done = asyncio.Event()
        self.done_at = 0.0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        items, rv = await self.client.list_all(f"/api/v1/namespaces/{APP_NS}/services",
                                               page=2000)
        for s in items:
            self._see(s)
        self._task = asyncio.create_task(self._run(rv))

    def _see(self, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if name.startswith(self.prefix) and (obj.get("status") or {}).get(
                "loadBalancer", {}).get("ingress"):
            self.assigned.add(name)
            if len(self.assigned) >= self.n and not self.done.is_set():
                self.done_at = time.perf_counter()
                self.done.set()

    async def _run(self, rv: str) -> None:
        while not self.done.is_set():
            async for kind, obj in self.client.watch(f"/api/v1/namespaces/{APP_NS}/services",
                                                     rv):
                if kind == "BOOKMARK":
                    rv = obj["metadata"]["resourceVersion"]
                    continue
                rv = obj["metadata"]["resourceVersion"]
                self._see(obj)
                if self.done.is_set():
                    return

    async def wait(self, timeout: float) -> float:
        try:
            await asyncio.wait_for(self.done.wait(), timeout)
        finally:
            if self._task is not None:
                self._task.cancel()
        return self.done_at


async def wait_quiet(op: OperatorProcess, timeout: float = 600) -> float:
    """Until the operator's queue and its Event backlog are empty: steady state."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if not (op.metric("metallb_controller_queue_depth") or 0) and not (
                op.metric("metallb_controller_events_pending") or 0):
            break
        await asyncio.sleep(0.5)
    return time.perf_counter() - start


async def snapshot(client: KubeClient) -> dict[str, list[str]]:
    items, _ = await client.list_all(f"/api/v1/namespaces/{APP_NS}/services", page=2000)
    return {s["metadata"]["name"]: [i["ip"] for i in
                                    (s.get("status") or {}).get("loadBalancer", {}).get("ingress")
                                    or []]
            for s in items}


async def latency(client: KubeClient, samples: int, lb_class: str
                  ) -> tuple[list[float], list[float]]:
    """Create Services one by one; a watch records when each one's ingress appears.
    Returns ms from sending the create, and from the API acknowledging it (the
    earliest moment the operator can know the Service exists)."""
    _, rv = await client.list_all(f"/api/v1/namespaces/{APP_NS}/services", page=5000)
    created: dict[str, float] = {}
    acked: dict[str, float] = {}
    seen: dict[str, float] = {}
    done = asyncio.Event()

    async def watcher() -> None:
        async for kind, obj in client.watch(f"/api/v1/namespaces/{APP_NS}/services", rv):
            name = obj["metadata"]["name"]
            if (kind == "MODIFIED" and name.startswith("lat-") and name not in seen
                    and (obj.get("status") or {}).get("loadBalancer", {}).get("ingress")):
                seen[name] = time.perf_counter()
                if len(seen) == samples:
                    done.set()
                    return

    task = asyncio.create_task(watcher())
    await asyncio.sleep(0.5)
    for i in range(samples):
        name = f"lat-{i}"
        created[name] = time.perf_counter()
        await client.create(f"/api/v1/namespaces/{APP_NS}/services", svc_body(name, lb_class))
        acked[name] = time.perf_counter()
        await asyncio.sleep(0.05)
    await asyncio.wait_for(done.wait(), timeout=60)
    task.cancel()
    return ([(seen[n] - created[n]) * 1000 for n in created],
            [(seen[n] - acked[n]) * 1000 for n in created])


async def amain(n: int, samples: int, bulk_only: bool = False,
                py_spy: str | None = None, crds: str | None = None) -> dict[str, Any]:
    lb_class = "bench/metallb"
    out: dict[str, Any] = {"services": n, "concurrency": CONCURRENCY}
    cfg = ControlPlaneConfig(extra_apiserver_flags=("--max-requests-inflight=800",
                                                    "--max-mutating-requests-inflight=400"))
    with ControlPlane(cfg) as cp:
        apply_crds(cp, *([Path(crds)] if crds else []))
        cp.kubectl("create", "ns", POOL_NS)
        cp.kubectl("create", "ns", APP_NS)
        cp.kubectl("apply", "-f", "-", input=f"""
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: bench, namespace: {POOL_NS}}}
spec: {{addresses: ["198.18.0.0/16"]}}
""")
        conn = await Connection.load(str(cp.kubeconfig))
        async with KubeClient(conn, limit=CONCURRENCY) as client:
            print(f"creating {n} Services (operator stopped) ...", flush=True)
            out["create_seconds"] = await create_services(client, "bulk", n, lb_class)
            print(f"  {out['create_seconds']:.0f} s", flush=True)
            print(f"baseline: plain client, {n} status PATCHes ...", flush=True)
            out["baseline"] = await baseline(client, n)
            print(f"  {out['baseline']}", flush=True)

            print(f"bulk: the operator allocates {n} Services ...", flush=True)
            watch = AssignedWatch(client, "bulk", n)
            await watch.start()
            op = OperatorProcess(cp, POOL_NS, lb_class=lb_class, identity="bench-pod-1")
            t0 = time.perf_counter()
            op.start(wait=False)
            assert op.proc is not None
            pid = op.proc.pid
            op.wait_synced(timeout=300)
            t_synced, cpu_synced = time.perf_counter(), cpu_seconds(pid)
            spy = None if py_spy is None else start_py_spy(pid, py_spy)
            t_done = await watch.wait(timeout=600)
            cpu_done = cpu_seconds(pid)
            if spy is not None:
                spy.send_signal(2)
                spy.wait(timeout=30)
            write_phase = t_done - t_synced
            rate = n / write_phase
            out["bulk"] = {
                "startup_to_synced_s": t_synced - t0,
                "allocation_phase_s": write_phase,
                "services_per_s": rate,
                "ratio_to_plain_client": rate / out["baseline"]["status_patches_per_s"],
                "cpu_ms_per_service_sync": cpu_synced * 1000 / n,
                "cpu_ms_per_service_allocation": (cpu_done - cpu_synced) * 1000 / n,
                "operator_cores_during_allocation": (cpu_done - cpu_synced) / write_phase,
            }
            print(f"  {out['bulk']}", flush=True)
            out["rss_mb_after_bulk"] = rss_mb(pid)

            spy = None if py_spy is None else start_py_spy(pid, py_spy + ".events")
            out["event_backlog_drain_s"] = await wait_quiet(op)
            if spy is not None:
                spy.send_signal(2)
                spy.wait(timeout=30)
            cpu_quiet = cpu_seconds(pid)
            out["bulk"]["cpu_ms_per_service_events"] = (cpu_quiet - cpu_done) * 1000 / n
            out["bulk"]["cpu_ms_per_service_total"] = cpu_quiet * 1000 / n
            print(f"  Event backlog drained after {out['event_backlog_drain_s']:.1f} s; "
                  f"operator CPU per Service: {out['bulk']['cpu_ms_per_service_total']:.2f} ms "
                  f"(allocation phase {out['bulk']['cpu_ms_per_service_allocation']:.2f} ms)",
                  flush=True)
            if bulk_only:
                op.stop()
                return out
            print(f"latency: {samples} Services created one by one, {n} existing ...",
                  flush=True)
            from_send, from_ack = await latency(client, samples, lb_class)
            out["latency_ms"] = summary(from_send)
            out["latency_from_ack_ms"] = summary(from_ack)
            out["create_ack_ms"] = summary([a - b for a, b in zip(from_send, from_ack,
                                                                   strict=True)])
            for k in ("latency_ms", "latency_from_ack_ms", "create_ack_ms"):
                print(f"  {k}: {out[k]}", flush=True)
            out["rss_mb"] = rss_mb(op.proc.pid)

            before = await snapshot(client)
            out["restart"] = {}
            # SIGTERM: a rolling update to a new Pod (the Lease is released at once).
            # SIGKILL same Pod: a crash, the container restarts with the same Pod name,
            # which is the Lease identity, so it renews its own Lease at once.
            # SIGKILL new Pod: a crash replaced by another Pod: it must wait for the
            # dead holder's Lease to expire (15 s) first.
            for how, identity in (("SIGTERM", "bench-pod-2"),
                                  ("SIGKILL same pod", "bench-pod-2"),
                                  ("SIGKILL new pod", "bench-pod-3")):
                if how.startswith("SIGKILL"):
                    op.kill()
                    assert op.proc is not None
                    op.proc.wait(timeout=10)
                else:
                    op.stop()
                op = OperatorProcess(cp, POOL_NS, lb_class=lb_class, identity=identity)
                t0 = time.perf_counter()
                op.start(wait=False)
                op.wait_synced(timeout=300)
                t_synced = time.perf_counter()
                await asyncio.sleep(1.0)
                while (op.metric("metallb_controller_queue_depth") or 0) > 0:
                    await asyncio.sleep(0.05)
                t_idle = time.perf_counter()
                after = await snapshot(client)
                changed = sum(1 for k, v in before.items() if after.get(k) != v)
                assert op.proc is not None
                out["restart"][how] = {
                    "services": len(before),
                    "to_synced_s": t_synced - t0,
                    "to_idle_s": t_idle - t0 - 1.0,
                    "changed_addresses": changed,
                    "rss_mb": rss_mb(op.proc.pid),
                    "conflicts": op.metric("metallb_k8s_client_conflicts_total"),
                }
                print(f"  restart ({how}): {out['restart'][how]}", flush=True)
            op.stop()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=10_000)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--bulk-only", action="store_true",
                    help="baseline and bulk phases only (no latency, no restarts)")
    ap.add_argument("--py-spy", metavar="FILE",
                    help="py-spy collapsed stacks of the operator's allocation phase")
    ap.add_argument("--name", default="operator_scale", help="results file name")
    ap.add_argument("--crds", help="directory of CRDs to install (default: crds/)")
    args = ap.parse_args()
    out = asyncio.run(amain(args.services, args.samples, args.bulk_only, args.py_spy,
                                args.crds))
    out["goals"] = {"latency_p99_ms": 100, "bulk_ratio": 0.8, "restart_changed": 0,
                    "rss_mb": 200}
    write(args.name, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

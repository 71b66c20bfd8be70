"""The operator against the real kube-apiserver at 10,000 Services.

Measures (issue 3 goals in brackets):
1. baseline: a plain async client PATCHing the same writes (status, then the pool
   annotation) for 10,000 Services as fast as it can, same concurrency;
2. bulk: 10,000 new Services allocated by the operator -> ratio to the baseline [>= 0.8];
3. latency: with 20,000 Services existing, create one at a time, time until its
   status.loadBalancer.ingress is set (seen on a watch) [p99 <= 100 ms];
4. restart: SIGKILL, start again: time until synced and idle, addresses changed [0];
5. operator RSS at that size [<= 200 MB].

Run: .venv/bin/python -m bench.operator_scale [--services 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from bench.common import rss_mb, summary, write
from metallb_kube.client import Connection, KubeClient
from metallb_lab.controlplane import ControlPlane, ControlPlaneConfig
from metallb_lab.kube import apply_crds
from metallb_lab.operator import OperatorProcess

POOL_NS = "metallb-system"
APP_NS = "bench"
CONCURRENCY = 32


async def gather_limited(n: int, fn: Any, limit: int = CONCURRENCY) -> None:
    sem = asyncio.Semaphore(limit)

    async def one(i: int) -> None:
        async with sem:
            await fn(i)

    await asyncio.gather(*(one(i) for i in range(n)))


def svc_body(name: str, lb_class: str) -> dict[str, Any]:
    # No NodePorts: 20k+ Services would exhaust the 30000-32767 range (and L2 load
    # balancing does not need them).
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
    """A plain client doing what the operator writes per Service, as fast as it can."""
    await create_services(client, "base", n, "bench/none")

    async def status_only(i: int) -> None:
        ip = f"198.19.{200 + i // 65536}.{i % 256}"  # never used anywhere else
        await client.merge_patch(f"/api/v1/namespaces/{APP_NS}/services/base-{i}/status", {
            "status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}})

    t = time.perf_counter()
    await gather_limited(n, status_only)
    status_rate = n / (time.perf_counter() - t)

    async def same_writes(i: int) -> None:
        path = f"/api/v1/namespaces/{APP_NS}/services/base-{i}"
        obj = await client.merge_patch(path + "/status", {
            "status": {"loadBalancer": {"ingress": [{"ip": "198.18.255.1", "ipMode": "VIP"}]}}})
        await client.merge_patch(path, {"metadata": {
            "resourceVersion": obj["metadata"]["resourceVersion"],
            "annotations": {"metallb.io/ip-allocated-from-pool": "bench"}}})

    t = time.perf_counter()
    await gather_limited(n, same_writes)
    return {"status_patches_per_s": status_rate,
            "services_per_s_same_writes": n / (time.perf_counter() - t)}


async def wait_all_assigned(client: KubeClient, prefix: str, n: int, timeout: float) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        items, _ = await client.list_all(f"/api/v1/namespaces/{APP_NS}/services", page=2000)
        done = sum(1 for s in items if s["metadata"]["name"].startswith(prefix + "-")
                   and (s.get("status") or {}).get("loadBalancer", {}).get("ingress"))
        if done >= n:
            return time.perf_counter()
        await asyncio.sleep(0.2)
    raise TimeoutError(f"{prefix}: not all assigned")


async def snapshot(client: KubeClient) -> dict[str, list[str]]:
    items, _ = await client.list_all(f"/api/v1/namespaces/{APP_NS}/services", page=2000)
    return {s["metadata"]["name"]: [i["ip"] for i in
                                    (s.get("status") or {}).get("loadBalancer", {}).get("ingress")
                                    or []]
            for s in items if not s["metadata"]["name"].startswith("base-")}


async def latency(client: KubeClient, samples: int, lb_class: str) -> list[float]:
    """Create Services one by one; a watch records when each one's ingress appears."""
    _, rv = await client.list_all(f"/api/v1/namespaces/{APP_NS}/services", page=5000)
    created: dict[str, float] = {}
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
        await asyncio.sleep(0.05)
    await asyncio.wait_for(done.wait(), timeout=60)
    task.cancel()
    return [(seen[n] - created[n]) * 1000 for n in created]


async def amain(n: int, samples: int) -> dict[str, Any]:
    lb_class = "bench/metallb"
    out: dict[str, Any] = {"services": n, "concurrency": CONCURRENCY}
    cfg = ControlPlaneConfig(extra_apiserver_flags=("--max-requests-inflight=800",
                                                    "--max-mutating-requests-inflight=400"))
    with ControlPlane(cfg) as cp:
        apply_crds(cp)
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
            print(f"baseline: plain client, {n} Services ...", flush=True)
            out["baseline"] = await baseline(client, n)
            print(f"  {out['baseline']}", flush=True)

            print(f"bulk: creating {n} Services with the operator stopped ...", flush=True)
            out["create_seconds"] = await create_services(client, "bulk", n, lb_class)
            op = OperatorProcess(cp, POOL_NS, lb_class=lb_class)
            t0 = time.perf_counter()
            op.start(wait=False)
            op.wait_synced(timeout=300)
            t_synced = time.perf_counter()
            t_done = await wait_all_assigned(client, "bulk", n, timeout=600)
            write_phase = t_done - t_synced
            rate = n / write_phase
            out["bulk"] = {
                "startup_to_synced_s": t_synced - t0,
                "allocation_phase_s": write_phase,
                "services_per_s": rate,
                "ratio_to_plain_same_writes": rate / out["baseline"]["services_per_s_same_writes"],
                "ratio_to_plain_status_only": rate / out["baseline"]["status_patches_per_s"],
            }
            print(f"  {out['bulk']}", flush=True)
            assert op.proc is not None
            out["rss_mb_after_bulk"] = rss_mb(op.proc.pid)

            print(f"latency: {samples} Services created one by one, {2 * n} existing ...",
                  flush=True)
            lat = await latency(client, samples, lb_class)
            out["latency_ms"] = summary(lat)
            print(f"  {out['latency_ms']}", flush=True)
            out["rss_mb"] = rss_mb(op.proc.pid)

            before = await snapshot(client)
            out["restart"] = {}
            for how in ("SIGTERM", "SIGKILL"):
                # SIGTERM: a rolling update (the Lease is handed over at once). SIGKILL: a
                # crash; the standby must wait for the Lease to expire (15 s) first.
                if how == "SIGKILL":
                    op.kill()
                    assert op.proc is not None
                    op.proc.wait(timeout=10)
                else:
                    op.stop()
                op = OperatorProcess(cp, POOL_NS, lb_class=lb_class)
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
    args = ap.parse_args()
    out = asyncio.run(amain(args.services, args.samples))
    out["goals"] = {"latency_p99_ms": 100, "bulk_ratio": 0.8, "restart_changed": 0,
                    "rss_mb": 200}
    write("operator_scale", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

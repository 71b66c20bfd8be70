"""bench.versus at scale, the same for both systems:

  create -> address  - N LoadBalancer Services created (16 at a time, from the `scale`
                       pool, selecting the nginx Pods), until every one has
                       status.loadBalancer.ingress; then until the speakers announce
                       every one (a ServiceL2Status each);
  usage              - speaker and controller CPU and RSS with the N Services;
  controller restart - its Pod deleted (the Deployment makes a new one): from the delete
                       until a Service created once the old Pod is gone has its address
                       (a controller assigns new Services only once it knows the existing
                       ones: "to synced"), until the new Pod is Ready, and how many of the
                       N addresses changed (must be 0), plus any address given twice.

Each run deletes its Services and waits until they are gone (cases are independent).
"""

from __future__ import annotations

import concurrent.futures
import time
import urllib.error
from collections import Counter
from collections.abc import Callable
from typing import Any

from bench.versus_lab import APPS, NS, System, controller_ready, live_pods, usage
from metallb_lab.cluster import Cluster
from metallb_lab.kube import wait_for

LABEL = "bench-scale"
PROBE = "scale-probe"
WORKERS = 16


def _services_path() -> str:
    return f"/api/v1/namespaces/{APPS}/services"


def service_body(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {LABEL: "1"},
                         "annotations": {"metallb.io/address-pool": "scale"}},
            # No NodePorts: the 2,768 of the default range ran out at 2,768 Services
            # (HTTP 500 "failed to allocate a nodePort: range is full"), and an L2
            # load balancer does not need them (kube-proxy answers on the address).
            "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
                     "allocateLoadBalancerNodePorts": False, "ports": [{"port": 80}]}}


def retried(fn: Callable[[], object], tolerate: int, attempts: int = 6) -> None:
    """fn(), again after the lab API server's transient failures (5xx, 429, timeouts -
    seen while creating thousands of Services on a busy machine). A retried call may
    find its first attempt done: `tolerate` (409 for a create, 404 for a delete) is
    success."""
    for attempt in range(attempts):
        try:
            fn()
            return
        except urllib.error.HTTPError as exc:
            if exc.code == tolerate:
                return
            if (exc.code < 500 and exc.code != 429) or attempt == attempts - 1:
                # the API server's Status names the cause (allocator, webhook, etcd)
                raise RuntimeError(f"{exc.code} {exc.reason}: "
                                   f"{exc.read().decode(errors='replace')[:2000]}") from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError):
            if attempt == attempts - 1:
                raise
        time.sleep(0.5 * 2 ** attempt)


def in_parallel(fn: Callable[[str], object], names: list[str]) -> None:
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        for f in [pool.submit(fn, n) for n in names]:
            f.result()


def addresses(c: Cluster) -> dict[str, tuple[str, ...]]:
    """Every scale Service's addresses (empty while it has none)."""
    items = c.api.get(f"{_services_path()}?labelSelector={LABEL}")["items"]
    return {o["metadata"]["name"]: tuple(
        i.get("ip", "") for i in ((o.get("status") or {}).get("loadBalancer") or {}).get(
            "ingress") or []) for o in items}


def announced(c: Cluster, names: set[str]) -> int:
    items = c.api.get(f"/apis/metallb.io/v1beta1/namespaces/{NS}/servicel2statuses")["items"]
    return len({(o.get("status") or {}).get("serviceName") for o in items} & names)


def wait_until(fn: Callable[[], bool], timeout: float, interval: float) -> float | None:
    """Seconds until fn() held (from the call), None on timeout."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if fn():
            return time.monotonic() - t0
        time.sleep(interval)
    return None


def create(c: Cluster, names: list[str], timeout: float) -> dict[str, Any]:
    interval = 0.25 if len(names) <= 1000 else 1.0
    t0 = time.monotonic()
    in_parallel(lambda n: retried(lambda: c.api.create(_services_path(), service_body(n)),
                                  tolerate=409), names)
    created = time.monotonic() - t0
    want = set(names)

    def all_assigned() -> bool:
        got = addresses(c)
        return all(got.get(n) for n in want)

    assigned = wait_until(all_assigned, timeout, interval)
    t_assigned = time.monotonic() - t0
    announced_s = wait_until(lambda: announced(c, want) >= len(want), timeout, interval * 4)
    return {"services": len(names), "created_s": round(created, 2),
            "create_to_address_s": round(t_assigned, 2) if assigned is not None else None,
            # the lab's API server limits how fast Services are created: this part is
            # the load balancer's alone
            "last_create_to_address_s": (round(t_assigned - created, 2)
                                         if assigned is not None else None),
            "create_to_announced_s": (round(time.monotonic() - t0, 2)
                                      if announced_s is not None else None)}


def restart_controller(c: Cluster, s: System, timeout: float) -> dict[str, Any]:
    before = addresses(c)
    old = {p["metadata"]["name"] for p in live_pods(c, s.controller_pods)}
    t0 = time.monotonic()
    for name in old:
        c.api.delete(f"/api/v1/namespaces/{NS}/pods/{name}")
    # The old controller keeps working while it terminates: the new Service must be one
    # only the new controller can have addressed.
    gone = wait_until(lambda: not any(c.api.exists(f"/api/v1/namespaces/{NS}/pods/{name}")
                                      for name in old), timeout, 0.1)
    c.api.create(_services_path(), service_body(PROBE))

    def probe_addressed() -> bool:
        obj = c.api.get(f"{_services_path()}/{PROBE}")
        return bool(((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress"))

    synced = wait_until(probe_addressed, timeout, 0.1)
    t_synced = time.monotonic() - t0 if synced is not None else None

    def new_ready() -> bool:
        pod = controller_ready(c, s, timeout=timeout)
        return pod["metadata"]["name"] not in old

    ready = wait_until(new_ready, timeout, 0.2)
    t_ready = time.monotonic() - t0 if ready is not None else None
    time.sleep(5.0)  # anything the new controller would still rewrite
    after = addresses(c)
    # what the new controller did meanwhile (why it took as long as it did)
    log = c.kubectl("logs", "-n", NS, f"deployment/{s.controller_deploy}", "--tail=40",
                    "--request-timeout=10s", check=False)
    changed = sorted(n for n, a in before.items() if after.get(n) != a)
    used = Counter(ip for a in after.values() for ip in a)
    return {"to_new_service_addressed_s": round(t_synced, 2) if t_synced is not None else None,
            "to_old_pod_gone_s": round(gone, 2) if gone is not None else None,
            "to_pod_ready_s": round(t_ready, 2) if t_ready is not None else None,
            "addresses_changed": len(changed), "changed_examples": changed[:10],
            "addresses_given_twice": sum(1 for n in used.values() if n > 1),
            "new_controller_log": (log.stdout + log.stderr)[-8000:]}


def cleanup(c: Cluster, timeout: float = 900) -> float:
    """Delete every scale Service; seconds until all are gone."""
    t0 = time.monotonic()

    in_parallel(lambda n: retried(lambda: c.api.delete(f"{_services_path()}/{n}"),
                                  tolerate=404), list(addresses(c)))
    wait_for(lambda: not addresses(c), timeout=timeout, interval=1.0, what="scale Services gone")
    return round(time.monotonic() - t0, 1)


def scale(c: Cluster, s: System, n: int, *, restart: bool, measure_usage: bool,
          timeout: float) -> dict[str, Any]:
    """One Service count: create -> address, usage, controller restart; then clean up."""
    names = [f"scale-{i:05d}" for i in range(n)]
    out: dict[str, Any] = {}
    try:
        out["create"] = create(c, names, timeout)
        print(f"{s.name:10s} {n:6d} Services: created in {out['create']['created_s']} s, "
              f"all addressed after {out['create']['create_to_address_s']} s, all announced "
              f"after {out['create']['create_to_announced_s']} s", flush=True)
        if measure_usage:
            time.sleep(5.0)
            out["usage"] = usage(c, s)
            print(f"{s.name:10s} {n:6d} Services: {fmt_usage(out['usage'])}", flush=True)
        if restart:
            out["restart"] = restart_controller(c, s, timeout)
            r = out["restart"]
            print(f"{s.name:10s} {n:6d} Services: controller restart -> new Service "
                  f"addressed {r['to_new_service_addressed_s']} s, Pod Ready "
                  f"{r['to_pod_ready_s']} s, {r['addresses_changed']} addresses changed, "
                  f"{r['addresses_given_twice']} given twice", flush=True)
    finally:
        out["cleanup_s"] = cleanup(c)
        s.ready(c)
    return out


def fmt_usage(u: dict[str, Any]) -> str:
    return (f"speaker {u['speaker_cpu_millicores']['mean']:.0f} m CPU, "
            f"{u['speaker_rss_mb']['mean']:.0f} MB RSS (mean of {u['speaker_rss_mb']['n']}); "
            f"controller {u['controller_cpu_millicores']:.0f} m CPU, "
            f"{u['controller_rss_mb']:.0f} MB RSS")

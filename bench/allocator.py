"""Allocator in-process: allocations/s into an IPv4 /8 and an IPv6 /64 pool that already
have 100k addresses taken (contiguous, and fragmented at random), and memory per
allocated address. Goal: >= 100k allocations/s, memory O(allocated) not O(pool).

Run: .venv/bin/python -m bench.allocator
"""

from __future__ import annotations

import gc
import random
import sys
import time
import tracemalloc
from typing import Any

from bench.common import write
from metallb_api.addresses import IP, Family
from metallb_api.config import build_config
from metallb_api.service import parse_request, service_view
from metallb_operator.__main__ import tune_gc
from metallb_operator.allocator import Allocator

TAKEN = 100_000
MEASURE = 100_000


def _views(prefix: str, family: str, n: int, pool: str) -> list[Any]:
    out = []
    for i in range(n):
        v = service_view({
            "metadata": {"namespace": "bench", "name": f"{prefix}{i}",
                         "annotations": {"metallb.io/address-pool": pool}},
            "spec": {"type": "LoadBalancer", "ipFamilies": [family],
                     "ports": [{"port": 80}]},
        })
        out.append((v, parse_request(v)))
    return out


def _config() -> Any:
    return build_config([
        {"metadata": {"name": "v4", "creationTimestamp": "1"},
         "spec": {"addresses": ["10.0.0.0/8"]}},
        {"metadata": {"name": "v6", "creationTimestamp": "2"},
         "spec": {"addresses": ["fd00:1::/64"]}},
    ])


def run_case(family: str, layout: str, gc_mode: str) -> dict[str, Any]:
    pool = "v4" if family == "IPv4" else "v6"
    fam = Family.V4 if family == "IPv4" else Family.V6
    base = 10 << 24 if family == "IPv4" else int.from_bytes(
        bytes.fromhex("fd000001000000000000000000000000"), "big")
    alloc = Allocator(_config())
    pre = _views("pre", family, TAKEN, pool)
    if layout == "contiguous":
        for v, r in pre:
            alloc.ensure(v, r)
    else:  # random addresses spread over the first 2^24 of the pool: ~100k runs
        rng = random.Random(7)
        picks = rng.sample(range(1, 1 << 24), TAKEN)
        for (v, r), off in zip(pre, picks, strict=True):
            alloc.ensure(v, r, current=(IP(fam, base + off),))
    todo = _views("new", family, MEASURE, pool)
    for v, _r in todo:  # warm cached properties the controller computes on parse anyway
        _ = v.key, v.backend_key
    gc.collect()
    if gc_mode == "tuned":
        tune_gc()
    else:
        gc.unfreeze()
        gc.set_threshold(700, 10, 10)
    start = time.perf_counter()
    for v, r in todo:
        alloc.ensure(v, r)
    elapsed = time.perf_counter() - start
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    return {
        "family": family, "layout": layout, "gc": gc_mode,
        "runs_before": None if layout == "contiguous" else TAKEN,
        "allocations_per_s": round(MEASURE / elapsed),
        "usage_assigned": alloc.usage(pool).assigned[fam],
    }


def memory_case() -> dict[str, Any]:
    """Bytes the allocator holds: empty huge pools, then per allocated address."""
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    alloc = Allocator(_config())
    empty = tracemalloc.get_traced_memory()[0] - base
    todo = _views("m", "IPv6", 50_000, "v6")
    before = tracemalloc.get_traced_memory()[0]
    for v, r in todo:
        alloc.ensure(v, r)
    per = (tracemalloc.get_traced_memory()[0] - before) / 50_000
    tracemalloc.stop()
    return {"empty_v4_slash8_plus_v6_slash64_bytes": empty,
            "bytes_per_allocated_address": round(per)}


def _case_in_subprocess(family: str, layout: str, gc_mode: str) -> dict[str, Any]:
    """Each case in a fresh interpreter: GC state left by one case (frozen generations,
    a large old generation) must not bias the next."""
    import json
    import subprocess

    code = (f"import json; from bench.allocator import run_case; "
            f"print(json.dumps(run_case({family!r}, {layout!r}, {gc_mode!r})))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> int:
    cases = []
    for family in ("IPv4", "IPv6"):
        for layout in ("contiguous", "fragmented"):
            for gc_mode in ("default", "tuned"):
                runs = [_case_in_subprocess(family, layout, gc_mode) for _ in range(3)]
                rates = sorted(r["allocations_per_s"] for r in runs)
                res = {**runs[0], "allocations_per_s": rates[1], "runs": rates}
                cases.append(res)
                print(f"{family} {layout:10s} gc={gc_mode:7s}: "
                      f"{res['allocations_per_s']:>8,d} allocations/s (median of {rates})")
    mem = memory_case()
    print(f"memory: empty /8 + /64 pools: {mem['empty_v4_slash8_plus_v6_slash64_bytes']} B; "
          f"{mem['bytes_per_allocated_address']} B per allocated address (incl. Service record)")
    tuned = [c["allocations_per_s"] for c in cases if c["gc"] == "tuned"]
    write("allocator", {"goal_allocations_per_s": 100_000, "taken_before": TAKEN,
                        "measured": MEASURE, "cases": cases, "memory": mem,
                        "min_tuned_allocations_per_s": min(tuned),
                        "note": "gc=tuned is what the operator runs with (tune_gc)"})
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""MetalLB and metallb-py side by side, in one run on one real-node cluster (issue 13).

MetalLB v0.15.2 (built from the Go module proxy by e2e/tools/build-metallb, installed from
its own metallb-native.yaml) runs first; then the cluster switches to metallb-py the way
docs/migration.md says (the Service keeps its address) and the same cases run again.
Both systems get the same configuration (`versus_lab.configure`) and the same nginx
Service, and are measured the same way. Cases, in order:

  idle          speaker and controller CPU and RSS before any case (versus_lab.usage)
  arp           ARP replies per second at saturation: the announcing speaker and the
                kernel, on the same wire (versus_arp)
  link-down     client-observed outage when the node the client sends to loses its link
  frozen        ... when every process of that node stops (and when the ARP entry moved)
  speaker-kill  ... when that node's speaker is SIGKILLed and its Pod force-deleted
  rolling       failed requests during `kubectl rollout restart ds` of the speakers
                (the four above: versus_failover; same client, same 10 ms probing)
  scale         per Service count: create -> address (and -> announced), CPU and RSS with
                them, controller restart (time to synced, addresses changed); the
                Services are deleted again (versus_scale)

Every case cleans up after itself; a case that fails is recorded with its error and
the run goes on; the cluster is torn down at the end, also on failure. The JSON is
rewritten after every case (bench/results/versus.json). The table gives both systems'
figures and how many times better metallb-py is (below 1: MetalLB is better).

Run: .venv/bin/python -m bench.versus [--trials 10] [--services 1000,10000]
       [--systems metallb,metallb-py] [--cases idle,arp,link-down,...] [--rollouts N]
       [--cases-for metallb=scale] [--keep-from OLD.json]
     quick: --trials 2 --services 200
     an interrupted run finished: --cases-for SYSTEM=CASES runs only those cases for that
       system, --keep-from copies the other cases' results (not errors) from an earlier
       run's JSON, which the output names per case (`kept_from`)
     the Markdown table of a run: --markdown bench/results/versus.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench.common import write
from bench.versus_arp import RATES, Generator, arp
from bench.versus_failover import KINDS, PROBE_SECONDS, PROBE_TIMEOUT, failover, rolling
from bench.versus_lab import APPS, BACKEND, SYSTEMS, configure, switch_to_metallb_py, usage
from bench.versus_scale import fmt_usage, scale
from metallb_lab import metallb
from metallb_lab.cluster import Cluster

METALLB_VERSION = "v0.15.2"
# Before the idle figure: start-up work (caches filled, first announcements) is done.
IDLE_SETTLE_S = 15.0
CASES = ("idle", "arp", *KINDS, "rolling", "scale")


def run_case(c: Cluster, system: str, case: str, vip: str, args: argparse.Namespace,
             gen: Generator | None) -> dict[str, Any]:
    s = SYSTEMS[system]
    if case == "idle":
        time.sleep(IDLE_SETTLE_S)
        u = usage(c, s)
        print(f"{system:10s} idle: {fmt_usage(u)}", flush=True)
        return u
    if case == "arp":
        assert gen is not None
        return arp(c, s, vip, gen, kernel=True, rates=args.arp_rates, seconds=args.arp_seconds)
    if case in KINDS:
        return failover(c, s, vip, case, args.trials)
    if case == "rolling":
        return rolling(c, s, vip, args.rollouts)
    assert case == "scale"
    return {str(n): scale(c, s, n, restart=True, measure_usage=True, timeout=args.timeout)
            for n in args.services}


# -- the table --------------------------------------------------------------------------
def _get(d: Any, *path: str) -> float | None:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return float(d) if isinstance(d, (int, float)) and not math.isnan(d) else None


Figure = tuple[str, str, bool | None, float | None]  # name, unit, lower is better, value


def figures(res: dict[str, Any], services: list[int]) -> list[Figure]:
    """One system's figures (lower_is_better None: informative only)."""
    f: list[Figure] = []
    for kind in KINDS:
        for stat in ("p50", "p99", "max"):
            f.append((f"{kind}: outage {stat}", "ms", True, _get(res, kind, "outage_ms", stat)))
        if kind != "link-down":
            for stat in ("p50", "p99", "max"):
                f.append((f"{kind}: ARP entry moved {stat}", "ms", True,
                          _get(res, kind, "arp_moved_ms", stat)))
            # informative, no better or worse: a speaker back within a second may keep
            # its address and never move the client
            f.append((f"{kind}: trials where the ARP entry moved", "", None,
                      _get(res, kind, "arp_moved")))
        f.append((f"{kind}: trials not answered again within {PROBE_SECONDS:.0f} s", "",
                  True, _get(res, kind, "not_recovered")))
        f.append((f"{kind}: failed requests, max per trial", "", True,
                  _get(res, kind, "failed_requests", "max")))
    f += [("rolling: failed requests p50 per rollout", "", True,
           _get(res, "rolling", "failed_requests", "p50")),
          ("rolling: failed requests max per rollout", "", True,
           _get(res, "rolling", "failed_requests", "max")),
          ("rolling: longest gap max", "ms", True, _get(res, "rolling", "longest_gap_ms", "max")),
          ("rolling: rollout duration p50", "s", True, _get(res, "rolling", "rollout_s", "p50"))]
    f += [("ARP replies/s at saturation (speaker)", "/s", False,
           _get(res, "arp", "speaker", "saturation", "rate")),
          ("ARP replies/s at saturation (kernel, same wire)", "/s", False,
           _get(res, "arp", "kernel", "saturation", "rate"))]
    for where, base in [("idle", ("idle",))] + [
            (f"{n} Services", ("scale", str(n), "usage")) for n in services]:
        f += [(f"speaker CPU, {where} (mean of nodes)", "millicores", True,
               _get(res, *base, "speaker_cpu_millicores", "mean")),
              (f"speaker RSS, {where} (mean of nodes)", "MB", True,
               _get(res, *base, "speaker_rss_mb", "mean")),
              (f"controller CPU, {where}", "millicores", True,
               _get(res, *base, "controller_cpu_millicores")),
              (f"controller RSS, {where}", "MB", True, _get(res, *base, "controller_rss_mb"))]
    for n in services:
        sc = ("scale", str(n))
        f += [(f"create -> address, {n} Services", "s", True,
               _get(res, *sc, "create", "create_to_address_s")),
              (f"last create -> all addressed, {n} Services", "s", True,
               _get(res, *sc, "create", "last_create_to_address_s")),
              (f"create -> announced, {n} Services", "s", True,
               _get(res, *sc, "create", "create_to_announced_s")),
              (f"controller restart, {n} Services: to synced", "s", True,
               _get(res, *sc, "restart", "to_new_service_addressed_s")),
              (f"controller restart, {n} Services: addresses changed", "", True,
               _get(res, *sc, "restart", "addresses_changed"))]
    return f


def advantage(theirs: float | None, ours: float | None, lower_better: bool | None) -> str:
    """How many times better metallb-py is (below 1: MetalLB is better)."""
    if theirs is None or ours is None or lower_better is None:
        return "n/a"
    if theirs == ours:
        return "="
    num, den = (theirs, ours) if lower_better else (ours, theirs)
    return "inf" if den == 0 else f"{num / den:.2f}"


def table(out: dict[str, Any], services: list[int]) -> list[dict[str, Any]]:
    res = out["results"]
    per = {s: figures(res.get(s, {}), services) for s in SYSTEMS}
    rows = []
    for (name, unit, lower, theirs), (_, _, _, ours) in zip(per["metallb"], per["metallb-py"],
                                                           strict=True):
        if theirs is None and ours is None:
            continue
        ratio = advantage(theirs, ours, lower)
        rows.append({"figure": name, "unit": unit, "lower_is_better": lower,
                     "metallb": theirs, "metallb_py": ours, "metallb_py_advantage": ratio,
                     "better": "-" if ratio == "n/a" else "=" if ratio == "=" else
                     "metallb-py" if ratio == "inf" or (ratio != "0" and float(ratio) > 1)
                     else "MetalLB"})
    return rows


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.0f}" if abs(v) >= 100 or v == int(v) else f"{v:.2f}"


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'figure':58s} {'unit':>10s} {'MetalLB':>10s} {'metallb-py':>10s} "
          f"{'advantage':>9s}  better")
    for r in rows:
        print(f"{r['figure']:58s} {r['unit']:>10s} {_fmt(r['metallb']):>10s} "
              f"{_fmt(r['metallb_py']):>10s} {r['metallb_py_advantage']:>9s}  {r['better']}")


def markdown(out: dict[str, Any]) -> str:
    """The table for docs/benchmarks.md, from a run's JSON."""
    lines = ["| figure | MetalLB | metallb-py | metallb-py better by | better |",
             "|---|---|---|---|---|"]
    for r in table(out, out["services"]):
        unit = f" ({r['unit']})" if r["unit"] else ""
        lines.append(f"| {r['figure']}{unit} | {_fmt(r['metallb'])} | "
                     f"{_fmt(r['metallb_py'])} | {r['metallb_py_advantage']} | {r['better']} |")
    return "\n".join(lines)


# -- the run ----------------------------------------------------------------------------
def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=10, help="per failure kind")
    ap.add_argument("--rollouts", type=int, default=None, help="default: --trials")
    ap.add_argument("--services", default="1000,10000", help="Service counts for `scale`")
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--arp-seconds", type=float, default=2.0)
    ap.add_argument("--arp-rates", default=",".join(map(str, RATES)))
    ap.add_argument("--timeout", type=float, default=1800.0,
                    help="per wait of the scale case (10k Services take minutes)")
    ap.add_argument("--cases-for", action="append", default=[], metavar="SYSTEM=CASES",
                    help="this system runs only these cases (repeatable)")
    ap.add_argument("--keep-from", metavar="JSON",
                    help="results of cases not run now, copied from an earlier run")
    ap.add_argument("--markdown", metavar="JSON",
                    help="print the table of an earlier run's JSON as Markdown; run nothing")
    args = ap.parse_args(argv)
    args.systems = args.systems.split(",")
    args.cases = args.cases.split(",")
    args.services = [int(n) for n in args.services.split(",") if n]
    args.arp_rates = [int(n) for n in args.arp_rates.split(",")]
    args.rollouts = args.trials if args.rollouts is None else args.rollouts
    per: dict[str, list[str]] = {}
    for item in args.cases_for:
        system, _, cases = item.partition("=")
        per[system] = cases.split(",")
    args.cases_for = per
    for what, got, known in (("systems", args.systems, SYSTEMS), ("cases", args.cases, CASES),
                             ("systems", list(per), SYSTEMS),
                             *(("cases", c, CASES) for c in per.values())):
        if set(got) - set(known):
            ap.error(f"unknown {what} {sorted(set(got) - set(known))}: choose from {known}")
    return args


def keep(out: dict[str, Any], old: dict[str, Any]) -> None:
    """Copy into `out` the cases of `old` this run did not measure (errors are not kept),
    and say so per case."""
    for system, cases in (old.get("results") or {}).items():
        res = out["results"].setdefault(system, {})
        for case, value in cases.items():
            if case in res or (isinstance(value, dict) and "error" in value):
                continue
            res[case] = value
            out.setdefault("kept_from", {}).setdefault(system, {})[case] = old.get("when")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return 0
    t_run = time.monotonic()
    log = lambda m: print(f"cluster: {m}", flush=True)  # noqa: E731
    m = metallb.prepare(METALLB_VERSION, log) if "metallb" in args.systems else None
    out: dict[str, Any] = {
        "lab": "real nodes (kubelet, containerd, kube-proxy nftables)",
        "metallb": METALLB_VERSION, "nodes": 3, "trials": args.trials,
        "rollouts": args.rollouts, "services": args.services, "cases": args.cases,
        "probe_interval_s": 0.01, "probe_timeout_s": PROBE_TIMEOUT,
        "probe_seconds": PROBE_SECONDS, "results": {},
        "elapsed_s": {}, "errors": []}
    gen = Generator() if "arp" in args.cases else None
    try:
        with Cluster(nodes=3, log=log) as c:
            out["cluster_timings_s"] = dict(c.timings)
            c.api.create("/api/v1/namespaces", {"metadata": {"name": APPS}})
            c.deployment(APPS, "web", BACKEND, replicas=2)
            if m is not None:
                metallb.load_images(c, m)
                metallb.install(c, m)
            else:
                c.install()
            configure(c)
            (vip,) = c.lb_service(APPS, "web", "web")
            out["vip"] = vip
            for system in args.systems:
                if system == "metallb-py" and m is not None:
                    t0 = time.monotonic()
                    switch_to_metallb_py(c)
                    out["elapsed_s"]["switch to metallb-py"] = round(time.monotonic() - t0, 1)
                SYSTEMS[system].ready(c)
                res = out["results"][system] = {}
                for case in args.cases_for.get(system, args.cases):
                    t0 = time.monotonic()
                    print(f"\n### {system}: {case}", flush=True)
                    try:
                        res[case] = run_case(c, system, case, vip, args, gen)
                    except Exception as exc:  # the next cases may still work: go on
                        traceback.print_exc()
                        res[case] = {"error": f"{type(exc).__name__}: {exc}"[:4000]}
                        out["errors"].append(f"{system} {case}: {type(exc).__name__}")
                    took = round(time.monotonic() - t0, 1)
                    out["elapsed_s"][f"{system} {case}"] = took
                    print(f"### {system}: {case} took {took:.0f} s "
                          f"(run so far {time.monotonic() - t_run:.0f} s)", flush=True)
                    write("versus", out)
    finally:
        if gen is not None:
            gen.close()
        if args.keep_from:
            keep(out, json.loads(Path(args.keep_from).read_text()))
        out["elapsed_s"]["total"] = round(time.monotonic() - t_run, 1)
        out["table"] = table(out, args.services)
        print_table(out["table"])
        print("\nelapsed: " + ", ".join(f"{k} {v:.0f} s" for k, v in out["elapsed_s"].items()))
        write("versus", out)
    return 1 if out["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())

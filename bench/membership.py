"""Membership (failure detection) benchmarks: the simulator, real speakers in the netns
lab, and a false-positive soak.

Issue goals (checked at the end, numbers in bench/results/membership.json):
  * p99 detection <= 500 ms for a hard-dead speaker (SIGKILL, SIGSTOP, partition);
  * 0 false positives and 0 addresses moved in a 10-minute run with a CPU-throttled
    speaker (cgroup CPU quota) and another speaker whose loop stalls for 250 ms every
    3-5 s (350 ms every 4th time);
  * per-node gossip traffic does not grow linearly with N;
  * speaker RSS <= 80 MB.

Parts:
  a. simulated (metallb_speaker.sim, real Membership code and wire format): per-node
     messages/s and bytes/s at N = 10, 100, 1000 (1000 skipped with --quick), one kill
     each, and repeated kills (random victim and seed) at N = 10 and 100;
  b. real speakers (6, `--no-dataplane`) in the netns lab: SIGKILL, SIGSTOP and an
     isolating partition of one node, `--trials` each; detection per observer =
     timestamp of its `memberChanged reason=declared` log line - wall clock just
     before the injection; plus idle CPU and RSS of every speaker;
  c. false positives: `--fp-minutes` with one speaker under a CPU quota (cgroup v2
     `cpu.max`, or the v1 cpu controller's CFS quota on hybrid hosts) and another
     SIGSTOPped for 250 ms every 3-5 s (every 4th stall `--long-stall-ms`, 350 ms: past
     the probe, so it is suspected and must refute in time); every `declared` log line
     is reported, with the suspicions raised and refuted and how many Service addresses
     moved (`takeover` log lines of the speakers electing owners for SOAK_SERVICES
     Services). The run is split into phases, one per `--cpu-quota` value (default 5 %
     then 3 % of one CPU: an idle speaker uses ~4 % of a core, so 10 % is not enforced
     and 3 % throttles it in almost every 100 ms period; at 2 % its loop falls 0.5 s
     behind and it is, rightly, declared dead now and then).

Run: .venv/bin/python -m bench.membership [--quick] [--only sim,real,fp]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import random
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import cpu_seconds, rss_mb, summary, write
from metallb_speaker.membership import MembershipConfig
from metallb_speaker.sim import SimNode, Simulator
from metallb_speaker.wire.gossip import Status

CFG = MembershipConfig()
SOAK_SERVICES = 30
TAILED = ("memberChanged", "takeover", "takeovers")  # speaker log events the benches read
DETECT_GOAL_MS = 500.0
RSS_GOAL_MB = 80.0
REAL_NODES = 6


# =====================================================================================
# a. simulated
# =====================================================================================
class CountingSim(Simulator):
    """The simulator, plus bytes sent per node (it only counts messages per node)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.bytes_by: dict[str, int] = {}
        super().__init__(*args, **kwargs)

    def _dispatch(self, src: SimNode, sends: list) -> None:  # type: ignore[type-arg]
        before = self.bytes
        super()._dispatch(src, sends)
        self.bytes_by[src.name] = self.bytes_by.get(src.name, 0) + self.bytes - before


def _ms(values: list[float]) -> list[float]:
    return [v * 1000 for v in values]


def sim_steady(sim: CountingSim, window: float) -> dict[str, Any]:
    """Per-node send rates over `window` simulated seconds from now."""
    msgs0, bytes0 = dict(sim.sent_by), dict(sim.bytes_by)
    total0 = sim.messages
    sim.run_for(window)
    names = sim.live()
    m = [(sim.sent_by.get(n, 0) - msgs0.get(n, 0)) / window for n in names]
    b = [(sim.bytes_by.get(n, 0) - bytes0.get(n, 0)) / window for n in names]
    return {
        "window_s": window,
        "msgs_per_s_per_node": {"mean": sum(m) / len(m), "max": max(m), "min": min(m)},
        "bytes_per_s_per_node": {"mean": sum(b) / len(b), "max": max(b), "min": min(b)},
        "msgs_per_s_total": (sim.messages - total0) / window,
    }


def sim_kill(sim: CountingSim, victim: str, limit: float = 3.0,
             step: float = 0.01) -> dict[str, Any]:
    """Kill `victim` now; run until every live node declared it DEAD (or `limit`)."""
    t0 = sim.now
    sim.kill(victim)
    live = [n for n in sim.live() if n != victim]
    declared: dict[str, float] = {}
    while sim.now - t0 < limit:
        sim.run_for(step)
        declared = sim.declared(victim, Status.DEAD, since=t0)
        if all(n in declared for n in live):
            break
    lat = [declared[n] - t0 for n in live if n in declared]
    missed = [n for n in live if n not in declared]
    return {
        "victim": victim,
        "observers": len(live),
        "latency_ms": summary(_ms(lat)),
        "latencies": _ms(lat),
        "all_declared_ms": (max(lat) * 1000 if lat and not missed else float("inf")),
        "missed": len(missed),
        "false_declarations": len(sim.false_declarations(since=t0)),
    }


def sim_size(n: int, seed: int = 1, warmup: float = 1.0, window: float = 5.0,
             limit: float = 3.0) -> dict[str, Any]:
    wall = time.monotonic()
    sim = CountingSim(n, seed=seed)
    sim.run_for(warmup)
    steady = sim_steady(sim, window)
    victim = random.Random(seed).choice(sim.live())
    kill = sim_kill(sim, victim, limit)
    kill.pop("latencies")
    stats = [node.m.stats for node in sim.nodes.values()]
    return {"n": n, "seed": seed, **steady, "kill": kill,
            "probes_started": sum(s.probes_started for s in stats),
            "convictions_suppressed": sum(s.convictions_suppressed for s in stats),
            "wall_s": time.monotonic() - wall}


def sim_trials(n: int, trials: int, warmup: float = 0.5, limit: float = 3.0,
               seed0: int = 100) -> dict[str, Any]:
    observer_lat: list[float] = []
    all_declared: list[float] = []
    missed = false_decl = 0
    per_trial = []
    for t in range(trials):
        seed = seed0 + t
        rng = random.Random(seed)
        sim = CountingSim(n, seed=seed)
        sim.run_for(warmup + rng.random() * CFG.heartbeat_interval * 2)  # random phase
        victim = rng.choice(sim.live())
        k = sim_kill(sim, victim, limit)
        observer_lat += k["latencies"]
        all_declared.append(k["all_declared_ms"])
        missed += k["missed"]
        false_decl += k["false_declarations"]
        per_trial.append({"seed": seed, "victim": victim,
                          "all_declared_ms": k["all_declared_ms"],
                          "p50_ms": k["latency_ms"]["p50"]})
    return {"n": n, "trials": trials,
            "observer_latency_ms": summary(observer_lat),
            "all_declared_ms": summary(all_declared),
            "missed": missed, "false_declarations": false_decl, "per_trial": per_trial}


def simulated(sizes: tuple[int, ...] = (10, 100, 1000), trial_sizes: tuple[int, ...] = (10, 100),
              trials: int = 20, window: float = 5.0, warmup: float = 1.0,
              big_window: float = 1.0, big_warmup: float = 0.3,
              verbose: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"config": dataclasses.asdict(CFG), "sizes": {}, "trials": {}}
    for n in sizes:
        big = n >= 1000
        if verbose:
            print(f"[sim] N={n} ...", flush=True)
        out["sizes"][str(n)] = sim_size(n, warmup=big_warmup if big else warmup,
                                        window=big_window if big else window)
    for n in trial_sizes:
        if verbose:
            print(f"[sim] N={n}: {trials} kill trials ...", flush=True)
        out["trials"][str(n)] = sim_trials(n, trials)
    if verbose:
        print_sim(out)
    return out


def print_sim(res: dict[str, Any]) -> None:
    c = res["config"]
    print(f"\n(a) simulated: steady state per node, then one kill (heartbeat "
          f"{c['heartbeat_interval']} s to {c['monitors']} monitors, suspect_after "
          f"{c['suspect_after']} s, probe_timeout {c['probe_timeout']} s)")
    print(f"{'N':>6} {'msg/s mean':>11} {'msg/s max':>10} {'B/s mean':>10} {'B/s max':>10} "
          f"{'det p50':>8} {'det p99':>8} {'det max':>8} {'all':>8} {'wall s':>7}")
    for n, r in res["sizes"].items():
        k = r["kill"]
        print(f"{n:>6} {r['msgs_per_s_per_node']['mean']:>11.1f} "
              f"{r['msgs_per_s_per_node']['max']:>10.1f} "
              f"{r['bytes_per_s_per_node']['mean']:>10.0f} "
              f"{r['bytes_per_s_per_node']['max']:>10.0f} "
              f"{k['latency_ms']['p50']:>8.1f} {k['latency_ms']['p99']:>8.1f} "
              f"{k['latency_ms']['max']:>8.1f} {k['all_declared_ms']:>8.1f} "
              f"{r['wall_s']:>7.1f}")
    print("\n(a) simulated: repeated kills (random victim and seed), ms")
    print(f"{'N':>6} {'trials':>6} {'obs p50':>8} {'obs p99':>8} {'obs max':>8} "
          f"{'all p50':>8} {'all p99':>8} {'all max':>8} {'missed':>6} {'false':>6}")
    for n, r in res["trials"].items():
        o, a = r["observer_latency_ms"], r["all_declared_ms"]
        print(f"{n:>6} {r['trials']:>6} {o['p50']:>8.1f} {o['p99']:>8.1f} {o['max']:>8.1f} "
              f"{a['p50']:>8.1f} {a['p99']:>8.1f} {a['max']:>8.1f} {r['missed']:>6} "
              f"{r['false_declarations']:>6}")


# =====================================================================================
# helpers for real speakers
# =====================================================================================
def parse_ts(ts: str) -> float:
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


class LogTail:
    """Incremental reader of one speaker's JSON log: `memberChanged` events."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0
        self._partial = b""

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        out = []
        for line in lines:
            with contextlib.suppress(ValueError):
                doc = json.loads(line)
                if isinstance(doc, dict) and doc.get("event") in TAILED:
                    doc["t"] = parse_ts(doc["ts"])
                    out.append(doc)
        return out


def speaker_pid(node: Any) -> int:
    """The python process of a node's speaker (`ip netns exec` execs, so normally the
    Popen pid; checked, with a fallback to its child)."""
    pid = int(node.speaker.pid)
    for _ in range(50):
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"metallb_speaker" in cmd and not cmd.startswith(b"ip\0"):
            return pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if children:
            pid = int(children[0])
            continue
        time.sleep(0.1)
    raise RuntimeError(f"no speaker process under {node.speaker.pid}")


def measure_resources(lab: Any, seconds: float = 30.0) -> dict[str, Any]:
    pids = {n.name: speaker_pid(n) for n in lab.nodes}
    c0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    t0 = time.monotonic()
    time.sleep(seconds)
    dt = time.monotonic() - t0
    out = {}
    for name, pid in pids.items():
        out[name] = {"pid": pid, "rss_mb": rss_mb(pid),
                     "cpu_pct": (cpu_seconds(pid) - c0[name]) / dt * 100}
    return {"seconds": dt, "per_speaker": out,
            "rss_mb_max": max(v["rss_mb"] for v in out.values()),
            "cpu_pct_mean": sum(v["cpu_pct"] for v in out.values()) / len(out),
            "cpu_pct_max": max(v["cpu_pct"] for v in out.values())}


def parse_metrics(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        with contextlib.suppress(ValueError, IndexError):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


GOSSIP_KEYS = {
    "ping": 'metallb_speaker_gossip_sent_total{type="Ping"}',
    "ping_req": 'metallb_speaker_gossip_sent_total{type="PingReq"}',
    "nack": 'metallb_speaker_gossip_sent_total{type="Nack"}',
    "ack": 'metallb_speaker_gossip_sent_total{type="Ack"}',
    "heartbeat": 'metallb_speaker_gossip_sent_total{type="Heartbeat"}',
    "updates": 'metallb_speaker_gossip_sent_total{type="Updates"}',
    "sync": 'metallb_speaker_gossip_sent_total{type="Sync"}',
    "send_dropped": "metallb_speaker_gossip_send_dropped_total",
    "loop_lag_max_s": "metallb_speaker_gossip_loop_lag_max_seconds",
    "suppressed": "metallb_speaker_convictions_suppressed_total",
}


def gossip_metrics(lab: Any, node: Any) -> dict[str, Any]:
    m = parse_metrics(lab.speaker_metrics(node))
    out: dict[str, Any] = {k: m.get(v, 0.0) for k, v in GOSSIP_KEYS.items()}
    out["member_changes"] = {k.split('"')[1]: v for k, v in m.items()
                             if k.startswith("metallb_speaker_member_changes_total{")}
    return out


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


@contextlib.contextmanager
def control_plane() -> Any:
    from metallb_lab.controlplane import ControlPlane, ControlPlaneConfig
    from metallb_lab.kube import apply_crds

    with ControlPlane(ControlPlaneConfig()) as cp:
        apply_crds(cp)
        yield cp


def new_lab(cp: Any) -> Any:
    from metallb_lab.netlab import NetLab

    return NetLab(cp, nodes=REAL_NODES, namespace=f"mlb-bench-{uuid.uuid4().hex[:5]}",
                  speaker_args=("--no-dataplane",))


# =====================================================================================
# b. real speakers: detection
# =====================================================================================
@dataclass
class Trial:
    kind: str
    victim: str
    t0: float
    inject_ms: float
    latencies_ms: dict[str, float] = field(default_factory=dict)
    missed: list[str] = field(default_factory=list)
    recovery_s: float = 0.0
    collateral: list[dict[str, Any]] = field(default_factory=list)
    loadavg: float = 0.0
    # per observer, over the detection window: probes sent, helpers' NACKs, and the
    # gossip loop's worst lateness (a lifetime max: before -> after)
    observer_gossip: dict[str, dict[str, float]] = field(default_factory=dict)
    # the host canary's late wake-ups from 1 s before the injection to detection
    host_hiccups: list[list[float]] = field(default_factory=list)

    @property
    def all_ms(self) -> float:
        if self.missed or not self.latencies_ms:
            return float("inf")
        return max(self.latencies_ms.values())


def run_trial(lab: Any, victim: Any, kind: str, detect_timeout: float = 5.0,
              canary: HostCanary | None = None) -> Trial:
    from metallb_lab.netns import ip

    observers = [n for n in lab.nodes if n is not victim]
    before = {n.name: gossip_metrics(lab, n) for n in observers}
    tails = {n.name: LogTail(lab.speaker_log(n)) for n in lab.nodes}
    t0 = time.time()
    if kind == "sigkill":
        lab.signal_speaker(victim, signal.SIGKILL)
    elif kind == "sigstop":
        lab.signal_speaker(victim, signal.SIGSTOP)
    elif kind == "partition":
        lab.partition(observers, [victim])
    else:
        raise ValueError(kind)
    trial = Trial(kind, victim.name, t0, (time.time() - t0) * 1000)
    events: list[tuple[str, dict[str, Any]]] = []
    pending = {n.name for n in observers}
    deadline = time.monotonic() + detect_timeout
    try:
        while pending and time.monotonic() < deadline:
            time.sleep(0.02)
            for n in lab.nodes:
                for ev in tails[n.name].read():
                    events.append((n.name, ev))
                    if (ev.get("reason") == "declared" and ev.get("node") == victim.name
                            and n.name in pending and ev["t"] >= t0 - 0.001):
                        trial.latencies_ms[n.name] = (ev["t"] - t0) * 1000
                        pending.discard(n.name)
        trial.missed = sorted(pending)
        trial.loadavg = loadavg()[0]
        if canary is not None:
            trial.host_hiccups = canary.events(t0 - 1.0, time.time())
        for n in observers:
            a, b = gossip_metrics(lab, n), before[n.name]
            trial.observer_gossip[n.name] = {
                "ping": a["ping"] - b["ping"], "ping_req": a["ping_req"] - b["ping_req"],
                "nack": a["nack"] - b["nack"],
                "lag_max_before_ms": b["loop_lag_max_s"] * 1000,
                "lag_max_after_ms": a["loop_lag_max_s"] * 1000}
    finally:
        r0 = time.monotonic()
        if kind == "sigkill":
            with contextlib.suppress(Exception):
                victim.speaker.wait(timeout=10)
            lab.start_speaker(victim)
        elif kind == "sigstop":
            lab.signal_speaker(victim, signal.SIGCONT)
        else:
            lab.heal()
            # belt and braces: the bridge port must be back on br0
            ip("link", "set", victim.port, "master", "br0", ns=lab.lan, check=False)
    lab.wait_ready(timeout=90)
    trial.recovery_s = time.monotonic() - r0
    for n in lab.nodes:
        events += [(n.name, ev) for ev in tails[n.name].read()]
    for observer, ev in events:
        if ev.get("reason") != "declared":
            continue
        if ev.get("node") == victim.name and observer != victim.name:
            continue  # the verdict we are measuring (or a repeat of it)
        trial.collateral.append({"observer": observer, **{k: ev.get(k) for k in
                                                          ("ts", "node", "reason", "count")}})
    return trial


def speaker_config() -> dict[str, Any]:
    """The membership defaults a freshly started speaker process gets (the code may
    change under a long run; the in-process CFG is what the simulator used)."""
    import subprocess

    code = ("import dataclasses, json; from metallb_speaker.membership import "
            "MembershipConfig as C; print(json.dumps(dataclasses.asdict(C())))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    cfg: dict[str, Any] = json.loads(out)
    if cfg != dataclasses.asdict(CFG):
        print(f"WARNING: speaker membership config {cfg} differs from the one this "
              f"process loaded {dataclasses.asdict(CFG)}", flush=True)
    return cfg


def real_detection(cp: Any, trials: int, kinds: tuple[str, ...] = ("sigkill", "sigstop",
                                                                   "partition"),
                   resource_seconds: float = 30.0) -> dict[str, Any]:
    out: dict[str, Any] = {"nodes": REAL_NODES, "trials_per_kind": trials, "kinds": {},
                           "loadavg_start": loadavg(), "speaker_config": speaker_config()}
    with new_lab(cp) as lab:
        lab.start_speakers()
        lab.wait_ready(timeout=90)
        time.sleep(2.0)
        print(f"[real] {REAL_NODES} speakers ready; idle CPU/RSS over "
              f"{resource_seconds:.0f} s ...", flush=True)
        out["resources_idle"] = measure_resources(lab, resource_seconds)
        rng = random.Random(7)
        canary = HostCanary(lab.work / "canary.log")
        try:
            run_kinds(lab, kinds, trials, rng, canary, out)
        finally:
            canary.close()
        out["rss_after_trials_mb"] = {n.name: rss_mb(speaker_pid(n)) for n in lab.nodes}
    out["loadavg_end"] = loadavg()
    print_real(out)
    return out


def run_kinds(lab: Any, kinds: tuple[str, ...], trials: int, rng: random.Random,
              canary: HostCanary, out: dict[str, Any]) -> None:
    for kind in kinds:
        results: list[Trial] = []
        for i in range(trials):
            victim = lab.nodes[i % len(lab.nodes)]
            time.sleep(0.5 + rng.random())  # random phase against heartbeats
            t = run_trial(lab, victim, kind, canary=canary)
            results.append(t)
            lat = sorted(t.latencies_ms.values())
            print(f"[real] {kind:9s} #{i + 1:2d} victim={victim.name} "
                  f"obs ms={[round(x) for x in lat]} missed={t.missed} "
                  f"collateral={len(t.collateral)} recovery={t.recovery_s:.1f}s "
                  f"load={t.loadavg:.1f}", flush=True)
            if t.missed or t.all_ms > DETECT_GOAL_MS:
                print(f"[real]   slow trial, observers' probes/NACKs/loop lag: "
                      f"{json.dumps(t.observer_gossip)}; host canary late wake-ups "
                      f"[t - t0 s, late s]: "
                      f"{[[round(h[0] - t.t0, 3), h[1]] for h in t.host_hiccups]}",
                      flush=True)
        obs = [v for t in results for v in t.latencies_ms.values()]
        alls = [t.all_ms for t in results]
        out["kinds"][kind] = {
            "observer_latency_ms": summary(obs),
            "all_observers_ms": summary(alls),
            "missed_observer_trials": sum(len(t.missed) for t in results),
            "collateral_declarations": [c for t in results for c in t.collateral],
            "inject_ms": summary([t.inject_ms for t in results]),
            "recovery_s": summary([t.recovery_s for t in results]),
            "slow_trials": sum(1 for t in results
                               if t.missed or t.all_ms > DETECT_GOAL_MS),
            "trials": [{"victim": t.victim, "latencies_ms": t.latencies_ms,
                        "all_ms": t.all_ms, "missed": t.missed,
                        "inject_ms": t.inject_ms, "recovery_s": t.recovery_s,
                        "loadavg1": t.loadavg, "observer_gossip": t.observer_gossip,
                        "host_hiccups": [[round(h[0] - t.t0, 3), h[1]]
                                         for h in t.host_hiccups]}
                       for t in results],
        }


def print_real(res: dict[str, Any]) -> None:
    r = res.get("resources_idle")
    if r:
        print(f"\n(b) speakers idle over {r['seconds']:.0f} s")
        print(f"{'speaker':>8} {'RSS MB':>7} {'CPU %':>6}")
        for name, v in r["per_speaker"].items():
            print(f"{name:>8} {v['rss_mb']:>7.1f} {v['cpu_pct']:>6.2f}")
    c = res["speaker_config"]
    print(f"\n(b) real speakers ({res['nodes']}), detection ms = declared log ts - injection"
          f"\n    (heartbeat {c['heartbeat_interval']} s, suspect_after {c['suspect_after']} s,"
          f" probe_timeout {c['probe_timeout']} s; load avg {res['loadavg_start'][0]:.1f}"
          f" -> {res['loadavg_end'][0]:.1f})")
    print(f"{'fault':>10} {'trials':>6} {'pairs':>5} {'obs p50':>8} {'obs p99':>8} "
          f"{'obs max':>8} {'all p50':>8} {'all p99':>8} {'all max':>8} {'missed':>6} "
          f"{'>500ms':>6} {'collat':>6}")
    for kind, k in res["kinds"].items():
        o, a = k["observer_latency_ms"], k["all_observers_ms"]
        print(f"{kind:>10} {len(k['trials']):>6} {o['n']:>5} {o['p50']:>8.0f} "
              f"{o['p99']:>8.0f} {o['max']:>8.0f} {a['p50']:>8.0f} {a['p99']:>8.0f} "
              f"{a['max']:>8.0f} {k['missed_observer_trials']:>6} {k['slow_trials']:>6} "
              f"{len(k['collateral_declarations']):>6}")


# =====================================================================================
# c. false positives: CPU quota + loop stalls
# =====================================================================================
class CpuQuota:
    """A cgroup with a CPU quota (v2 `cpu.max`, else the v1 `cpu` controller's CFS
    quota). Members are moved back to their previous cgroup and the cgroup removed on
    exit."""

    def __init__(self, percent: float, tag: str, period_us: int = 100_000) -> None:
        self.percent = percent
        self.period = period_us
        self.quota = int(period_us * percent / 100)
        self.tag = tag
        self.path: Path | None = None
        self.version = 0
        self.note = ""
        self._origins: dict[int, Path] = {}
        self._enabled_cpu_v2 = False

    def __enter__(self) -> CpuQuota:
        v2root = Path("/sys/fs/cgroup")
        ctrl = v2root / "cgroup.controllers"
        v1 = v2root / "cpu"
        try:
            if ctrl.exists() and "cpu" in ctrl.read_text().split():
                sub = v2root / "cgroup.subtree_control"
                if "cpu" not in sub.read_text().split():
                    sub.write_text("+cpu")
                    self._enabled_cpu_v2 = True
                self.path = v2root / f"mlb-bench-{self.tag}"
                self.path.mkdir()
                (self.path / "cpu.max").write_text(f"{self.quota} {self.period}")
                self.version = 2
            elif (v1 / "cpu.cfs_quota_us").exists():
                self.path = v1 / f"mlb-bench-{self.tag}"
                self.path.mkdir()
                (self.path / "cpu.cfs_period_us").write_text(str(self.period))
                (self.path / "cpu.cfs_quota_us").write_text(str(self.quota))
                self.version = 1
                self.note = ("cgroup v2 has no cpu controller here (hybrid hierarchy); "
                             "used the cgroup v1 cpu controller's CFS quota instead")
            else:
                self.note = "no cgroup cpu controller available"
        except OSError as exc:
            self.note = f"cgroup cpu quota unavailable: {exc}"
            self._remove()
            self.version = 0
        return self

    def set_percent(self, percent: float) -> None:
        assert self.path is not None
        self.percent = percent
        self.quota = int(self.period * percent / 100)
        if self.version == 2:
            (self.path / "cpu.max").write_text(f"{self.quota} {self.period}")
        else:
            (self.path / "cpu.cfs_quota_us").write_text(str(self.quota))

    @property
    def available(self) -> bool:
        return self.version > 0

    def _origin(self, pid: int) -> Path:
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            hid, ctrls, rel = line.split(":", 2)
            if self.version == 2 and hid == "0":
                return Path("/sys/fs/cgroup") / rel.lstrip("/")
            if self.version == 1 and "cpu" in ctrls.split(","):
                return Path("/sys/fs/cgroup/cpu") / rel.lstrip("/")
        return self.path.parent if self.path else Path("/sys/fs/cgroup")

    def add(self, pid: int) -> None:
        assert self.path is not None
        self._origins[pid] = self._origin(pid)
        (self.path / "cgroup.procs").write_text(str(pid))

    def stat(self) -> dict[str, float]:
        if self.path is None:
            return {}
        out: dict[str, float] = {}
        with contextlib.suppress(OSError):
            for line in (self.path / "cpu.stat").read_text().splitlines():
                k, v = line.split()
                out[k] = float(v)
        return out

    def _remove(self) -> None:
        if self.path is None or not self.path.exists():
            return
        for pid, origin in self._origins.items():
            with contextlib.suppress(OSError):
                (origin / "cgroup.procs").write_text(str(pid))
        with contextlib.suppress(OSError):
            for stray in (self.path / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    (self.path.parent / "cgroup.procs").write_text(stray)
        for _ in range(50):
            try:
                self.path.rmdir()
                break
            except OSError:
                time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        self._remove()


class Staller(threading.Thread):
    """SIGSTOP a speaker for `pause` seconds every 3-5 s (random); every `long_every`-th
    stall lasts `long_pause` instead (past the probe: suspected, and it must refute
    before anyone moves its addresses). The thread asks for SCHED_FIFO so that a loaded
    host does not stretch the stall it injects; every stall is recorded as (wall-clock
    start, measured stop -> cont seconds)."""

    def __init__(self, lab: Any, node: Any, pause: float = 0.25,
                 gap: tuple[float, float] = (3.0, 5.0), seed: int = 11,
                 long_pause: float = 0.0, long_every: int = 4) -> None:
        super().__init__(name="staller", daemon=True)
        self.lab, self.node, self.pause, self.gap = lab, node, pause, gap
        self.long_pause, self.long_every = long_pause, long_every
        self.rng = random.Random(seed)
        self.stop_ev = threading.Event()
        self.stalls: list[float] = []  # measured stop -> cont, seconds
        self.log: list[tuple[float, float]] = []  # (wall start, seconds)
        self.realtime = False

    def run(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))  # this thread
            self.realtime = True
        while not self.stop_ev.wait(self.rng.uniform(*self.gap)):
            wall, t = time.time(), time.monotonic()
            long = self.long_pause and len(self.stalls) % self.long_every == \
                self.long_every - 1
            self.lab.signal_speaker(self.node, signal.SIGSTOP)
            try:
                time.sleep(self.long_pause if long else self.pause)
            finally:
                self.lab.signal_speaker(self.node, signal.SIGCONT)
                d = time.monotonic() - t
                self.stalls.append(d)
                self.log.append((wall, d))

    def stop(self) -> None:
        self.stop_ev.set()
        self.join(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            self.lab.signal_speaker(self.node, signal.SIGCONT)


CANARY = """
import sys, time
out = open(sys.argv[1], "a", buffering=1)
step = 0.005
while True:
    t = time.monotonic()
    time.sleep(step)
    late = time.monotonic() - t - step
    if late > 0.03:
        out.write(f"{time.time() - late - step:.3f} {late:.3f}\\n")
"""


class HostCanary:
    """A separate process (ordinary priority, like the speakers) that sleeps 5 ms in a
    loop and logs every wake-up later than 30 ms: evidence of host-wide scheduling
    hiccups (CPU contention, VM steal) to set against slow detections and verdicts."""

    def __init__(self, path: Path) -> None:
        import subprocess

        self.path = path
        self.proc = subprocess.Popen([sys.executable, "-c", CANARY, str(path)])
        time.sleep(0.3)
        if self.proc.poll() is not None:
            raise RuntimeError(f"host canary exited with {self.proc.returncode}")

    def events(self, since: float = 0.0, until: float = float("inf")) -> list[list[float]]:
        """[wall start of the late sleep, lateness s] in [since, until]."""
        out = []
        with contextlib.suppress(OSError):
            for line in self.path.read_text().splitlines():
                with contextlib.suppress(ValueError):
                    t, late = (float(x) for x in line.split())
                    if since <= t + late and t <= until:
                        out.append([t, late])
        return out

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=5)


def soak_services(lab: Any, count: int) -> None:
    """`count` LoadBalancer Services with an address each (written to their status: no
    operator runs here) and an endpoint on every node, so that every speaker elects an
    owner for each and a move shows up as a `takeover` log line."""
    lab.l2_pool("soak", f"198.18.0.100-198.18.0.{99 + count}")
    for i in range(count):
        lab.create_service(f"soak-{i}")
        lab.api.merge_patch(f"/api/v1/namespaces/{lab.apps}/services/soak-{i}/status",
                            {"status": {"loadBalancer": {"ingress": [
                                {"ip": f"198.18.0.{100 + i}"}]}}})


def moved_addresses(events: list[tuple[str, dict[str, Any]]]) -> int:
    """Addresses that changed owner: one per `takeover` line (a failover, quiet or
    loud), or the count of a summarised `takeovers` line."""
    return sum(1 if e.get("event") == "takeover" else int(e.get("count") or 0)
               for _, e in events if e.get("event") in ("takeover", "takeovers"))


def false_positives(cp: Any, minutes: float, quotas: tuple[float, ...] = (5.0, 3.0),
                    long_stall: float = 0.35) -> dict[str, Any]:
    """One run of `minutes`, split into equal phases, one per CPU quota in `quotas`
    (percent of one CPU) for the throttled speaker; the stalled speaker is SIGSTOPped
    for 250 ms every 3-5 s throughout, every 4th time for `long_stall` instead."""
    out: dict[str, Any] = {"minutes": minutes, "nodes": REAL_NODES,
                           "loadavg_start": loadavg(), "speaker_config": speaker_config()}
    with new_lab(cp) as lab:
        lab.start_speakers()
        lab.wait_ready(timeout=90)
        soak_services(lab, SOAK_SERVICES)
        time.sleep(5.0)  # every speaker has elected the owners (first claims: no move)
        throttled, stalled = lab.nodes[0], lab.nodes[1]
        pids = {n.name: speaker_pid(n) for n in lab.nodes}
        with CpuQuota(quotas[0], lab.id) as quota:
            out["cpu_quota"] = {"available": quota.available, "cgroup_version": quota.version,
                                "percents": list(quotas), "path": str(quota.path or ""),
                                "note": quota.note, "node": throttled.name if
                                quota.available else None}
            if quota.available:
                quota.add(pids[throttled.name])
                print(f"[fp] {throttled.name} (pid {pids[throttled.name]}) in "
                      f"{quota.path} (cgroup v{quota.version}), quota phases "
                      f"{', '.join(f'{q:g} %' for q in quotas)}", flush=True)
            else:
                print(f"[fp] NO CPU quota: {quota.note}; running the stall part only",
                      flush=True)
                quotas = (0.0,)
            before = {n.name: gossip_metrics(lab, n) for n in lab.nodes}
            cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
            tails = {n.name: LogTail(lab.speaker_log(n)) for n in lab.nodes}
            staller = Staller(lab, stalled, long_pause=long_stall)
            canary = HostCanary(lab.work / "canary.log")
            lag_seen = {name: d["loop_lag_max_s"] for name, d in before.items()}
            lag_events: list[dict[str, Any]] = []  # when a speaker's worst loop lag grew
            t_start = time.time()
            m0 = time.monotonic()
            staller.start()
            print(f"[fp] {stalled.name} SIGSTOPped 250 ms every 3-5 s ({long_stall * 1000:.0f}"
                  f" ms every 4th time); running "
                  f"{minutes:g} min ...", flush=True)
            events: list[tuple[str, dict[str, Any]]] = []
            phases: list[dict[str, Any]] = []
            phase_len = minutes * 60 / len(quotas)
            next_report = m0 + 60

            def poll() -> None:
                for n in lab.nodes:
                    for ev in tails[n.name].read():
                        events.append((n.name, ev))
                        if ev.get("reason") == "declared":
                            print(f"[fp] DECLARED by {n.name}: {json.dumps(ev)}", flush=True)
                    lag = gossip_metrics(lab, n)["loop_lag_max_s"]
                    if lag > lag_seen[n.name]:
                        lag_seen[n.name] = lag
                        lag_events.append({"t": time.time(), "node": n.name,
                                           "loop_lag_max_ms": round(lag * 1000)})

            try:
                for i, pct in enumerate(quotas):
                    if quota.available:
                        quota.set_percent(pct)
                    p_stat0, p_cpu0 = quota.stat(), cpu_seconds(pids[throttled.name])
                    p_t0, p_m0, p_stalls0 = time.time(), time.monotonic(), len(staller.stalls)
                    end = m0 + phase_len * (i + 1)
                    while time.monotonic() < end:
                        time.sleep(min(2.0, max(0.0, end - time.monotonic())))
                        poll()
                        if time.monotonic() >= next_report:
                            next_report += 60
                            print(f"[fp] {(time.monotonic() - m0) / 60:.0f} min: "
                                  f"{len(staller.stalls)} stalls, declared so far "
                                  f"{sum(1 for _, e in events if e.get('reason') == 'declared')}",
                                  flush=True)
                    p_dt = time.monotonic() - p_m0
                    p_stat1 = quota.stat()
                    phases.append({
                        "quota_pct": pct if quota.available else None,
                        "seconds": p_dt,
                        "stalls": len(staller.stalls) - p_stalls0,
                        "throttled_cpu_pct": (cpu_seconds(pids[throttled.name]) - p_cpu0)
                        / p_dt * 100,
                        "cgroup_cpu_stat_delta": {k: p_stat1.get(k, 0) - p_stat0.get(k, 0)
                                                  for k in p_stat1},
                        "declared": sum(1 for _, e in events if e.get("reason") == "declared"
                                        and e["t"] >= p_t0),
                        "suspected": sum(1 for _, e in events if e.get("reason") == "suspected"
                                         and e["t"] >= p_t0),
                        "addresses_moved": moved_addresses([(o, e) for o, e in events
                                                            if e["t"] >= p_t0]),
                    })
            finally:
                staller.stop()
                canary.close()
            elapsed = time.monotonic() - m0
            time.sleep(1.0)
            poll()
            cpu1 = {name: cpu_seconds(pid) for name, pid in pids.items()}
            after = {n.name: gossip_metrics(lab, n) for n in lab.nodes}
            rss = {n.name: rss_mb(pids[n.name]) for n in lab.nodes}
        events = [(o, e) for o, e in events if e["t"] >= t_start - 0.001]
        declared = [{"observer": o, **{k: e.get(k) for k in ("ts", "node", "reason", "count")}}
                    for o, e in events if e.get("reason") == "declared"]
        reasons = Counter(e.get("reason") for _, e in events if e.get("event") == "memberChanged")
        # Context of each verdict: the injected stalls and the host's late wake-ups in the
        # 1.5 s before it (a stall longer than suspect_after + probe_timeout - one
        # heartbeat interval can be convicted legitimately).
        for d in declared:
            t = parse_ts(str(d["ts"]))
            d["stalls_before"] = [[round(w - t, 3), round(x, 3)] for w, x in staller.log
                                  if t - 1.5 <= w <= t]
            d["host_hiccups_before"] = [[round(h[0] - t, 3), h[1]]
                                        for h in canary.events(t - 1.5, t)]
            d["lag_max_grew_within_4s"] = [dict(e, t=round(e["t"] - t, 1))
                                           for e in lag_events if abs(e["t"] - t) <= 4.0]
        cfg = out["speaker_config"]
        convict_after = cfg["suspect_after"] + cfg["probe_timeout"]
        hiccups = canary.events(t_start)
        over_long = [x for _, x in staller.log
                     if x > convict_after - cfg["heartbeat_interval"]]
        delta = {}
        for name in before:
            delta[name] = {k: after[name][k] - before[name][k] for k in GOSSIP_KEYS
                           if k != "loop_lag_max_s"}
            delta[name]["loop_lag_max_s"] = after[name]["loop_lag_max_s"]
            delta[name]["loop_lag_max_before_s"] = before[name]["loop_lag_max_s"]
        out.update({
            "elapsed_s": elapsed,
            "throttled": throttled.name if quota.available else None,
            "stalled": stalled.name,
            "phases": phases,
            "stalls": {"count": len(staller.stalls), **summary(staller.stalls),
                       "realtime_injector": staller.realtime,
                       "over_conviction_threshold": len(over_long),
                       "threshold_s": convict_after - cfg["heartbeat_interval"]},
            "stall_log": [[round(w - t_start, 3), round(x, 4)] for w, x in staller.log],
            "host_hiccups": {"count_over_30ms": len(hiccups),
                             "count_over_100ms": sum(1 for h in hiccups if h[1] > 0.1),
                             "max_s": max((h[1] for h in hiccups), default=0.0),
                             "events": [[round(h[0] - t_start, 3), h[1]] for h in hiccups
                                        if h[1] > 0.1]},
            "loop_lag_growth": [dict(e, t=round(e["t"] - t_start, 1)) for e in lag_events],
            "declared": declared,
            "declared_count": len(declared),
            "suspected_count": reasons.get("suspected", 0),
            "refuted_suspicions": reasons.get("refutedSuspicion", 0),
            "services": SOAK_SERVICES,
            "addresses_moved": moved_addresses(events),
            "member_changes": dict(reasons),
            "gossip": delta,
            "probes_total": sum(d["ping"] for d in delta.values()),
            "ping_req_total": sum(d["ping_req"] for d in delta.values()),
            "nack_total": sum(d["nack"] for d in delta.values()),
            "suppressions": sum(d["suppressed"] for d in delta.values()),
            "throttled_loop_lag_max_s": after[throttled.name]["loop_lag_max_s"],
            "stalled_loop_lag_max_s": after[stalled.name]["loop_lag_max_s"],
            "cpu_pct": {name: (cpu1[name] - cpu0[name]) / elapsed * 100 for name in pids},
            "rss_mb": rss,
        })
    out["loadavg_end"] = loadavg()
    print_fp(out)
    return out


def print_fp(res: dict[str, Any]) -> None:
    q = res["cpu_quota"]
    print(f"\n(c) false positives over {res['elapsed_s'] / 60:.1f} min, "
          f"{res['nodes']} speakers")
    quota = (f"{q['node']} (cgroup v{q['cgroup_version']})" if q["available"]
             else "UNAVAILABLE")
    print(f"  CPU quota: {quota}{' - ' + q['note'] if q['note'] else ''}")
    for ph in res["phases"]:
        st = ph["cgroup_cpu_stat_delta"]
        shown = {k: v for k, v in st.items() if k in ("nr_periods", "nr_throttled")}
        if "throttled_time" in st:
            shown["throttled_s"] = round(st["throttled_time"] / 1e9, 1)
        if "throttled_usec" in st:
            shown["throttled_s"] = round(st["throttled_usec"] / 1e6, 1)
        pct = "none" if ph["quota_pct"] is None else f"{ph['quota_pct']:g} %"
        print(f"  phase quota {pct}: {ph['seconds']:.0f} s, throttled speaker used "
              f"{ph['throttled_cpu_pct']:.2f} % CPU, {ph['stalls']} stalls, suspected "
              f"{ph['suspected']}, declared {ph['declared']}, addresses moved "
              f"{ph['addresses_moved']}, cpu.stat {json.dumps(shown)}")
    s = res["stalls"]
    print(f"  {res['stalled']}: {s['count']} SIGSTOP stalls (injector SCHED_FIFO: "
          f"{s['realtime_injector']}), measured p50 {s['p50'] * 1000:.0f} ms, p99 "
          f"{s['p99'] * 1000:.0f} ms, max {s['max'] * 1000:.0f} ms; "
          f"{s['over_conviction_threshold']} longer than {s['threshold_s'] * 1000:.0f} ms")
    h = res["host_hiccups"]
    print(f"  host canary (5 ms sleeps): {h['count_over_30ms']} wake-ups >30 ms late, "
          f"{h['count_over_100ms']} >100 ms, worst {h['max_s'] * 1000:.0f} ms")
    print(f"  declared lines: {res['declared_count']}   suspicions: {res['suspected_count']} "
          f"(refuted {res['refuted_suspicions']})   addresses moved: "
          f"{res['addresses_moved']} of {res['services']} Services' addresses")
    print(f"  member changes: {res['member_changes']}")
    for d in res["declared"][:50]:
        print(f"    {json.dumps(d)}")
    print(f"  probes (Ping sent): {res['probes_total']:.0f}, PingReq: "
          f"{res['ping_req_total']:.0f}, Nack: {res['nack_total']:.0f}; suppressions: "
          f"{res['suppressions']:.0f}")
    print(f"{'speaker':>8} {'Ping':>6} {'PingReq':>7} {'Nack':>5} {'HB':>7} {'lag0 ms':>7} "
          f"{'lagmax ms':>9} {'CPU %':>6} {'RSS MB':>7}")
    for name, d in res["gossip"].items():
        print(f"{name:>8} {d['ping']:>6.0f} {d['ping_req']:>7.0f} {d['nack']:>5.0f} "
              f"{d['heartbeat']:>7.0f} {d['loop_lag_max_before_s'] * 1000:>7.0f} "
              f"{d['loop_lag_max_s'] * 1000:>9.0f} "
              f"{res['cpu_pct'][name]:>6.2f} {res['rss_mb'][name]:>7.1f}")


# =====================================================================================
# goals
# =====================================================================================
def goals(res: dict[str, Any]) -> dict[str, Any]:
    g: dict[str, Any] = {}
    sim = res.get("simulated")
    if sim:
        sizes = sorted(int(n) for n in sim["sizes"])
        rates = {n: sim["sizes"][str(n)]["msgs_per_s_per_node"]["mean"] for n in sizes}
        brates = {n: sim["sizes"][str(n)]["bytes_per_s_per_node"]["mean"] for n in sizes}
        lo, hi = sizes[0], sizes[-1]
        g["sim_traffic_sublinear"] = {} if lo == hi else {
            "msgs_per_s_per_node": rates, "bytes_per_s_per_node": brates,
            "growth_msgs": rates[hi] / rates[lo], "growth_bytes": brates[hi] / brates[lo],
            "growth_n": hi / lo,
            "met": rates[hi] / rates[lo] < 0.2 * hi / lo and brates[hi] / brates[lo]
            < 0.2 * hi / lo}
        worst = max(t["observer_latency_ms"]["p99"] for t in sim["trials"].values())
        g["sim_detection_p99_ms"] = {"value": worst, "goal": DETECT_GOAL_MS,
                                     "met": worst <= DETECT_GOAL_MS}
    real = res.get("real")
    if real:
        for kind, k in real["kinds"].items():
            p99 = k["observer_latency_ms"]["p99"]
            g[f"real_{kind}_p99_ms"] = {
                "value": p99, "all_observers_p99": k["all_observers_ms"]["p99"],
                "missed": k["missed_observer_trials"], "goal": DETECT_GOAL_MS,
                "met": p99 <= DETECT_GOAL_MS and k["missed_observer_trials"] == 0}
        rss = real["resources_idle"]["rss_mb_max"]
        g["rss_mb"] = {"value": rss, "goal": RSS_GOAL_MB, "met": rss <= RSS_GOAL_MB}
    fp = res.get("false_positives")
    if fp:
        g["false_positives"] = {"value": fp["declared_count"], "goal": 0,
                                "minutes": fp["elapsed_s"] / 60,
                                "cpu_quota": fp["cpu_quota"]["available"],
                                "met": fp["declared_count"] == 0}
        g["addresses_moved_in_soak"] = {"value": fp["addresses_moved"], "goal": 0,
                                        "suspicions": fp["suspected_count"],
                                        "met": fp["addresses_moved"] == 0}
        rss = max(fp["rss_mb"].values())
        prev = g.get("rss_mb", {}).get("value", 0.0)
        g["rss_mb"] = {"value": max(rss, prev), "goal": RSS_GOAL_MB,
                       "met": max(rss, prev) <= RSS_GOAL_MB}
    return g


def print_goals(g: dict[str, Any]) -> None:
    print("\ngoals")
    for name, v in g.items():
        if not v:
            continue
        shown = {k: (round(x, 2) if isinstance(x, float) else x) for k, x in v.items()
                 if k not in ("met", "msgs_per_s_per_node", "bytes_per_s_per_node")}
        print(f"  {'MET ' if v['met'] else 'MISS'} {name}: {shown}")


def git_head() -> str:
    import subprocess

    out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                         check=False, cwd=Path(__file__).resolve().parent)
    return out.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.membership")
    ap.add_argument("--quick", action="store_true",
                    help="skip N=1000, 5 real trials per fault, 1-minute soak")
    ap.add_argument("--trials", type=int, default=None, help="real trials per fault")
    ap.add_argument("--sim-trials", type=int, default=20)
    ap.add_argument("--fp-minutes", type=float, default=None)
    ap.add_argument("--long-stall-ms", type=float, default=350.0,
                    help="every 4th SIGSTOP stall lasts this long instead of 250 ms "
                         "(0: none)")
    ap.add_argument("--cpu-quota", default="5,3",
                    help="CPU quota phases for the throttled speaker, percent of one CPU, "
                         "comma-separated; the soak is split evenly between them")
    ap.add_argument("--only", default="sim,real,fp")
    args = ap.parse_args(argv)
    parts = set(args.only.split(","))
    trials = args.trials or (5 if args.quick else 20)
    minutes = args.fp_minutes or (1.0 if args.quick else 10.0)
    res: dict[str, Any] = {"membership_config": dataclasses.asdict(CFG),
                           "git_head": git_head()}
    if "sim" in parts:
        res["simulated"] = simulated(sizes=(10, 100) if args.quick else (10, 100, 1000),
                                     trials=args.sim_trials)
    if parts & {"real", "fp"}:
        if os.geteuid() != 0:
            print("real speakers need root (network namespaces); skipped")
        else:
            with control_plane() as cp:
                if "real" in parts:
                    res["real"] = real_detection(cp, trials)
                if "fp" in parts:
                    res["false_positives"] = false_positives(
                        cp, minutes, tuple(float(q) for q in args.cpu_quota.split(",")),
                        args.long_stall_ms / 1000)
    res["goals"] = goals(res)
    print_goals(res["goals"])
    if "simulated" in res:
        print_sim(res["simulated"])
    if "real" in res:
        print_real(res["real"])
    if "false_positives" in res:
        print_fp(res["false_positives"])
    write("membership", res)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""BGP mode at the router: how fast a failed node stops being a next hop, and how fast
10,000 prefixes arrive and leave.

Two node namespaces run FRR with the frr.conf our speaker renders (from MetalLB
objects: metallb_speaker.frr.render), peering with a BIRD 2 router in a namespace of
its own (metallb_lab.bgplab, metallb_lab.bird); what is measured is the routing
engines with our configuration.

failover: a node's link goes down; time until the router's kernel route for the
  announced address has lost that node's next hop (polled every ~5 ms). Modes:
  bfd-100x3   BFDProfile 100 ms x 3      (goal p99 <= 0.5 s)
  bfd-300x3   MetalLB's default profile  (goal p99 <= 1.2 s)
  hold-3s     holdTime 3s, no BFD        (report; MetalLB's default hold is 90 s)
  rejoin: link up again until the node is a next hop again (report).
traffic: real speakers (process lab): a client behind the router requests every 10 ms
  while a node's speaker gets SIGTERM (planned handoff, goal 0 failed requests) or its
  link goes down; failed requests and the longest gap.
bulk: 10,000 addresses pushed to both nodes' FRR the speaker's way (frr.diff of two
  rendered configurations, one `vtysh -f` batch each, metallb_speaker.frr.apply.Vtysh);
  time until the router's kernel has all of them (ECMP, both next hops) and, withdrawn,
  none (goal <= 5 s each way).

Run: .venv/bin/python -m bench.bgp [--trials 10] [--modes bfd-100x3,...]
                                  [--prefixes 1000,10000] [--bulk-timeout 300]
                                  [--traffic-trials 10] [--traffic-kinds SIGTERM,link-down]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import ipaddress
import signal
import sys
import time
from typing import Any

from bench.common import summary, write
from metallb_lab.bgp_netlab import BGPNetLab
from metallb_lab.bgplab import NodeLan, frr_conf, namer, router_config, speaker_objects
from metallb_lab.bird import BirdRouter
from metallb_lab.controlplane import ControlPlane, ControlPlaneConfig
from metallb_lab.kube import apply_crds
from metallb_lab.prober import Outcome
from metallb_lab.routerconf import BfdTimings
from metallb_speaker.frr.apply import FRRUnavailable, Vtysh
from metallb_speaker.frr.diff import diff

VIP = "198.18.32.1"
MODES: dict[str, tuple[BfdTimings | None, int | None]] = {
    "bfd-100x3": (BfdTimings(100, 100, 3), None),
    "bfd-300x3": (BfdTimings(300, 300, 3), None),
    "hold-3s": (None, 3),
}
GOALS = {"bfd-100x3": 0.5, "bfd-300x3": 1.2}


def failover(net: NodeLan, mode: str, trials: int) -> dict[str, Any]:
    bfd, hold = MODES[mode]
    rc = router_config(net.nodes, bfd=bfd, hold_time=hold)
    objs = speaker_objects(rc, bfd=bfd, hold_time=f"{hold}s" if hold else None)
    removed: list[float] = []
    rejoined: list[float] = []
    detected: list[float] = []
    with BirdRouter(net.lan, rc) as router:
        for node in net.nodes:
            net.start_frr(node, frr_conf(objs, node, [VIP]))
        hop = namer(net.nodes)
        names = [n.name for n in net.nodes]
        router.wait_established(timeout=60)
        router.wait_next_hops(VIP, names, key=hop)
        for i in range(trials):
            victim = net.nodes[i % len(net.nodes)]
            router.wait_established(timeout=60)  # BGP up and BFD up on both sides
            # BFD starts slow (1 s) and negotiates its intervals down once up
            time.sleep(1.5)
            wall0, t0 = time.time(), time.monotonic()
            net.set_link(victim, False)
            while victim.name in {hop(h) for h in router.next_hops(VIP)}:
                if time.monotonic() - t0 > 60:
                    raise TimeoutError(f"{mode}: {victim.name} still a next hop after 60 s")
                time.sleep(0.005)
            removed.append(time.monotonic() - t0)
            noticed = _noticed(router, rc.peers[i % len(net.nodes)].name, wall0)
            if noticed is not None:
                detected.append(noticed)
            t1 = time.monotonic()
            net.set_link(victim, True)
            router.wait_next_hops(VIP, names, key=hop, timeout=60)
            rejoined.append(time.monotonic() - t1)
            seen = f"{noticed * 1000:5.0f} ms" if noticed is not None else "    ?"
            print(f"{mode:9s} #{i + 1:2d}: next hop removed after {removed[-1] * 1000:6.0f} ms"
                  f" (BIRD noticed after {seen}), back after {rejoined[-1]:4.1f} s",
                  flush=True)
        for node in net.nodes:
            net.stop_frr(node)
    return {"removed_s": summary(removed), "rejoined_s": summary(rejoined),
            "bird_noticed_s": summary(detected), "samples_removed_s": removed,
            "goal_p99_s": GOALS.get(mode)}


def _noticed(router: BirdRouter, peer: str, since: float) -> float | None:
    """Seconds from `since` (time.time()) until BIRD logged the session's loss (BFD
    down or hold timer expired): detection, as opposed to the kernel route's update."""
    for line in router.log_path.read_text(errors="replace").splitlines():
        if f" {peer}: " not in line or not any(
                s in line for s in ("BFD session down", "Hold timer expired")):
            continue
        with contextlib.suppress(ValueError):
            when = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f").timestamp()
            if when >= since:
                return when - since
    return None


def _addresses(n: int) -> list[str]:
    first = int(ipaddress.IPv4Address("198.18.32.0"))
    out = []
    for i in range(n):
        a = ipaddress.IPv4Address(first + i)
        if a >= ipaddress.IPv4Address("198.18.64.0"):  # skip the routers' client nets
            a = ipaddress.IPv4Address(int(a) + 32 * 256)
        out.append(str(a))
    return out


def _ecmp_routes(router: BirdRouter, hops: int) -> int:
    """Routes BIRD installed in the kernel: with `hops` next hops each (announcing), or
    with any (withdrawing: `hops` 0)."""
    routes = router.kernel_routes("proto", "bird")
    return sum(1 for h in routes.values() if len(h) == hops or not hops)


async def _push(vtyshs: list[Vtysh], texts: list[str]) -> None:
    await asyncio.gather(*(v.apply(t) for v, t in zip(vtyshs, texts, strict=True)))


def bulk(net: NodeLan, prefixes: int, timeout: float) -> dict[str, Any]:
    """Announce then withdraw `prefixes` addresses from every node; a push that takes
    longer than `timeout` is recorded as such (and the withdrawal skipped)."""
    rc = router_config(net.nodes)
    objs = speaker_objects(rc)
    vips = _addresses(prefixes)
    out: dict[str, Any] = {"prefixes": prefixes}
    with BirdRouter(net.lan, rc) as router:
        base = {n.name: frr_conf(objs, n, []) for n in net.nodes}
        for node in net.nodes:
            net.start_frr(node, base[node.name])
        router.wait_established(timeout=60)
        full = {n.name: frr_conf(objs, n, vips) for n in net.nodes}
        vtyshs = [Vtysh(str(n.frr.socket_dir), timeout=timeout) for n in net.nodes
                  if n.frr is not None]
        for what, old, new, want in (("announce", base, full, prefixes),
                                     ("withdraw", full, base, 0)):
            texts = [diff(old[n.name], new[n.name]).text() for n in net.nodes]
            t0 = time.monotonic()
            try:
                asyncio.run(_push(vtyshs, texts))
            except FRRUnavailable as exc:  # vtysh timed out: FRR is still at it
                out[what] = {"timed_out_s": timeout, "error": str(exc),
                             "router_had": _ecmp_routes(router, 0)}
                print(f"bulk {what}: {prefixes} prefixes: push not done after {timeout:.0f} s "
                      f"(router had {out[what]['router_had']})", flush=True)
                break
            pushed = time.monotonic() - t0
            # announced: every address routed through every node; withdrawn: none left
            while (complete := _ecmp_routes(router, len(net.nodes) if want else 0)) != want:
                if time.monotonic() - t0 > timeout:
                    raise TimeoutError(f"{what}: {complete} of {want} routes")
                time.sleep(0.1)
            took = time.monotonic() - t0
            out[what] = {"push_s": pushed, "router_has_all_s": took, "goal_s": 5.0}
            print(f"bulk {what}: {prefixes} prefixes pushed in {pushed:.2f} s, router's "
                  f"kernel {'has all' if want else 'has none'} after {took:.2f} s",
                  flush=True)
        for node in net.nodes:
            net.stop_frr(node)
    return out


def traffic(trials: int, kinds: list[str]) -> dict[str, Any]:
    """A client behind the router requests the address every 10 ms (50 ms timeout, a new
    connection each) while one node's speaker is stopped (SIGTERM: a rolling update;
    FRR and nginx stay, as in a Pod being replaced) or its link goes down. With real
    speakers, FRR and the operator on the process lab (metallb_lab.bgp_netlab)."""
    out: dict[str, Any] = {}
    with ControlPlane(ControlPlaneConfig()) as cp:
        apply_crds(cp)
        with BGPNetLab(cp, nodes=3) as b:
            (vip,) = b.lab.service("bench")
            for kind in kinds:
                rows = []
                for i in range(trials):
                    node = b.lab.nodes[i % len(b.lab.nodes)]
                    b.wait_next_hops(vip, b.lab.nodes, timeout=60)
                    time.sleep(1.5)  # BFD at its negotiated intervals
                    probe = b.lab.prober(vip, duration=5.0, interval=0.01, timeout=0.05,
                                         ns=b.router.client_ns)
                    time.sleep(1.5)
                    t0 = time.monotonic()
                    if kind == "SIGTERM":
                        b.lab.stop_speaker(node, sig=signal.SIGTERM, timeout=20)
                    else:
                        b.set_link(node, up=False)
                    b.wait_next_hops(vip, [n for n in b.lab.nodes if n is not node],
                                     timeout=30)
                    removed = time.monotonic() - t0
                    seen = Outcome.parse(probe.communicate(timeout=60)[0])
                    b.set_link(node, up=True)
                    if node.speaker is None or node.speaker.poll() is not None:
                        b.start_speaker(node)
                    b.lab.wait_ready(timeout=60)
                    b.router.wait_established(timeout=60)
                    if seen.failures:
                        print(f"  failures at t = {seen.failures[0][0]:.2f}.."
                              f"{seen.failures[-1][0]:.2f} s (fault ~1.5 s into the run)",
                              flush=True)
                    rows.append({"node": node.name, "next_hop_removed_s": removed,
                                 "failed_requests": seen.failed, "requests": seen.requests,
                                 "outage_s": seen.outage_s})
                    print(f"traffic {kind:9s} #{i + 1:2d}: {node.name} out of the route "
                          f"after {removed * 1000:5.0f} ms, {seen.failed} of "
                          f"{seen.requests} requests failed, longest gap "
                          f"{seen.outage_s * 1000:4.0f} ms", flush=True)
                out[kind] = {"trials": rows,
                             "failed_requests_total": sum(r["failed_requests"] for r in rows),
                             "outage_s": summary([r["outage_s"] for r in rows]),
                             "next_hop_removed_s": summary([r["next_hop_removed_s"]
                                                            for r in rows])}
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--prefixes", default="1000,10000",
                    help="bulk runs, comma-separated counts ('' for none)")
    ap.add_argument("--bulk-timeout", type=float, default=300.0)
    ap.add_argument("--traffic-trials", type=int, default=10, help="0: no traffic run")
    ap.add_argument("--traffic-kinds", default="SIGTERM,link-down")
    a = ap.parse_args()
    modes = [m for m in a.modes.split(",") if m]
    results: dict[str, Any] = {"trials": a.trials, "failover": {}}
    started = time.monotonic()
    with NodeLan(nodes=2) as net:
        for mode in modes:
            results["failover"][mode] = failover(net, mode, a.trials)
            write("bgp", results)  # what is measured so far survives a later failure
        results["bulk"] = []
        for n in (int(x) for x in a.prefixes.split(",") if x):
            results["bulk"].append(bulk(net, n, a.bulk_timeout))
            write("bgp", results)
    if a.traffic_trials:
        results["traffic"] = traffic(a.traffic_trials,
                                     [k for k in a.traffic_kinds.split(",") if k])
    results["wall_s"] = time.monotonic() - started
    print("\nmode        removed p50 ms  p99 ms  max ms  noticed p50/max ms  rejoin p50 s"
          "  goal p99")
    for mode, r in results["failover"].items():
        s, j, d = r["removed_s"], r["rejoined_s"], r["bird_noticed_s"]
        goal = f"{r['goal_p99_s'] * 1000:.0f} ms" if r["goal_p99_s"] else "report"
        print(f"{mode:11s} {s['p50'] * 1000:14.0f} {s['p99'] * 1000:7.0f} "
              f"{s['max'] * 1000:7.0f} {d['p50'] * 1000:9.0f}/{d['max'] * 1000:<8.0f} "
              f"{j['p50']:12.1f}  {goal}")
    for kind, r in (results.get("traffic") or {}).items():
        print(f"traffic {kind:9s}: {r['failed_requests_total']} failed requests in "
              f"{len(r['trials'])} trials, longest gap p50/max {r['outage_s']['p50'] * 1000:.0f}"
              f"/{r['outage_s']['max'] * 1000:.0f} ms")
    write("bgp", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())

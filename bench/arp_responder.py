"""The speaker's real `DataPlane` as a stand-alone responder for bench/arp.py.

Run inside the node namespace (sysfs must be that namespace's, as `ip netns exec`
arranges):

    ip netns exec NODE .venv/bin/python -m bench.arp_responder --vip 198.18.0.100

Builds `DataPlane` with the speaker's default interface exclusions (so the responder
interface must not be called veth*: the bench names it eth0), owns the VIPs without
probing, prints `ready {...}` once every VIP is announced, then serves until stdin
closes or SIGTERM. Each `stats` line on stdin prints a JSON snapshot of the plane's
counters; the final snapshot is printed as `final {...}` on exit.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import signal
import sys
import time
from typing import Any

from metallb_api.addresses import IP
from metallb_speaker.dataplane.plane import DataPlane
from metallb_speaker.settings import SpeakerSettings


class _Stop(Exception):
    pass


def _copy(d: dict[Any, int]) -> dict[Any, int]:
    for _ in range(100):  # the plane thread may insert a key while we copy
        try:
            return dict(d)
        except RuntimeError:
            time.sleep(0.001)
    return {}


def _alive(plane: DataPlane) -> bool:
    try:
        return plane.is_alive()
    except TypeError:
        # DataPlane's `_stop` attribute shadows threading.Thread._stop(), which
        # is_alive()/join() call once the thread has ended: that means "dead".
        return False


def snapshot(plane: DataPlane, alive: bool | None = None) -> dict[str, Any]:
    c = plane.counters
    req, resp = _copy(c.requests), _copy(c.responses)
    return {
        "answered_requests": sum(req.values()),  # the plane counts only answered ones
        "responses": sum(resp.values()),
        "responses_by_ip": {k.hex(): v for k, v in resp.items()},
        "gratuitous": sum(_copy(c.gratuitous).values()),
        "conflicts": len(c.conflicts),
        # PACKET_STATISTICS drops of the plane's ARP+NDP sockets, cumulative, refreshed
        # by the plane's interface rescan (every 2 s).
        "socket_drops": _copy(c.drops),
        "alive": _alive(plane) if alive is None else alive,
        "error": repr(plane.error) if plane.error else None,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.arp_responder")
    p.add_argument("--vip", action="append", required=True, help="address to own (repeat)")
    p.add_argument("--ready-timeout", type=float, default=10.0)
    p.add_argument("--profile", help="cProfile the plane thread into this file")
    args = p.parse_args(argv)

    node = "bench-node"
    plane = DataPlane(node, exclude=SpeakerSettings(node_name=node).interfaces_exclude)
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        run = plane.run
        plane.run = lambda: profiler.runcall(run)  # type: ignore[method-assign]

    def on_term(signum: int, frame: object) -> None:
        raise _Stop

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    plane.start()
    ips = [IP.parse(v) for v in args.vip]
    plane.set_owned({ip: () for ip in ips}, probe=frozenset())
    try:
        deadline = time.monotonic() + args.ready_timeout
        while not all(plane.interfaces_for(ip) for ip in ips):
            if time.monotonic() > deadline or not _alive(plane):
                print("failed " + json.dumps({"eligible": plane.eligible,
                                              "error": repr(plane.error)}), flush=True)
                return 1
            time.sleep(0.01)
        print("ready " + json.dumps({
            "interfaces": {str(ip): plane.interfaces_for(ip) for ip in ips},
            "eligible": plane.eligible}), flush=True)
        for line in sys.stdin:
            if line.strip() == "stats":
                print(json.dumps(snapshot(plane)), flush=True)
    except (_Stop, KeyboardInterrupt):
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        close_error = None
        try:
            plane.close()
        except TypeError as exc:
            close_error = repr(exc)  # the same `_stop` shadowing, in join()
        if profiler is not None:
            profiler.dump_stats(args.profile)
    final = snapshot(plane, alive=False)
    final["close_error"] = close_error
    print("final " + json.dumps(final), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

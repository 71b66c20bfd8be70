"""A client that requests http://VIP/ every `interval` and records each outcome.

Run inside the lab's client namespace (`ip netns exec ... python -m metallb_lab.prober`);
prints one JSON document: [{"t": seconds since start, "ok": bool, "node": "node-2",
"ms": latency}] ("node" is whoever the answer names: a node of the process lab, a Pod of
the real-node cluster; for a failed request, why it failed: "timeout", "refused", ...).
`Outcome` summarizes it for the demo, the failover tests and the failover benches.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def probe(vip: str, timeout: float) -> tuple[bool, str]:
    """(answered with 200, who answered, or why not: "timeout", "refused", ...)."""
    conn = http.client.HTTPConnection(vip, 80, timeout=timeout)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace").strip()
        return resp.status == 200, body.removeprefix("served by ")
    except TimeoutError:
        return False, "timeout"
    except ConnectionRefusedError:
        return False, "refused"
    except OSError as exc:
        return False, type(exc).__name__
    finally:
        conn.close()


@dataclass(frozen=True)
class Outcome:
    """What the client saw. `outage_s` is the longest gap between two successful
    requests (one interval when all is well): it covers refused and timed-out ones."""

    requests: int
    failed: int
    outage_s: float
    served_by: tuple[str, ...]  # in order of first answer
    after_outage: str | None  # who answered first after the longest gap
    failures: tuple[tuple[float, str], ...] = ()  # (t, why) of each failed request
    slowest_ms: float = 0.0  # the slowest successful request

    @classmethod
    def of(cls, results: Sequence[dict[str, Any]]) -> Outcome:
        ok = [r for r in results if r["ok"]]
        gaps = [(b["t"] - a["t"], b) for a, b in itertools.pairwise(ok)]
        gap, first_after = max(gaps, key=lambda g: g[0]) if gaps else (float("nan"), None)
        return cls(requests=len(results), failed=len(results) - len(ok),
                   outage_s=round(gap, 4),
                   served_by=tuple(dict.fromkeys(r["node"] for r in ok)),
                   after_outage=first_after["node"] if first_after else None,
                   failures=tuple((r["t"], r["node"]) for r in results if not r["ok"]),
                   slowest_ms=max((r.get("ms", 0.0) for r in ok), default=0.0))

    @classmethod
    def parse(cls, stdout: str) -> Outcome:
        return cls.of(json.loads(stdout))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("vip")
    ap.add_argument("--interval", type=float, default=0.01)
    ap.add_argument("--timeout", type=float, default=0.1)
    ap.add_argument("--duration", type=float, default=10.0)
    a = ap.parse_args(argv)
    stop = False

    def on_term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    out = []
    start = time.monotonic()
    nxt = start
    while not stop and time.monotonic() - start < a.duration:
        t = time.monotonic() - start
        ok, node = probe(a.vip, a.timeout)
        took = time.monotonic() - start - t
        out.append({"t": round(t, 4), "ok": ok, "node": node, "ms": round(took * 1000, 1)})
        nxt += a.interval
        delay = nxt - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            nxt = time.monotonic()
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

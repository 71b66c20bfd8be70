"""When does a quiet takeover turn loud?

A node that took an address over quietly (the previous owner's speaker restarted, or a
reclaim) answers requests but sends no gratuitous ARP/NA: the clients keep sending to
the previous node, which still forwards, and no connection in flight is reset. It turns
loud - moves every client at once, resetting their connections - when the previous node
stops forwarding.

Only the previous node's kube-proxy can tell. A 503 from its `/healthz` is its own
verdict (rules stale, node going away): loud at once. Silence (a timeout, a refused or
reset connection) is weaker evidence: on a loaded 2-core machine a health check can miss
a 0.3 s deadline while the node forwards perfectly well (seen in CI during a `helm
upgrade`, a loud move in the middle of a rolling update reset a client's request). So
silence must last `confirm` seconds, over at least two checks, before we move clients.

Pure: the clock is the caller's.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PathVerdict:
    """One health check of a node's data path."""

    down: str | None = None  # why we think it does not forward; None: it forwards
    definitive: bool = False  # its kube-proxy said so itself (not mere silence)


FORWARDS = PathVerdict()


@dataclass
class _Silence:
    since: float
    checks: int
    why: str


class QuietTakeovers:
    """Per previous node: is it time to announce its quietly taken-over addresses?"""

    def __init__(self, confirm: float = 0.6, recheck: float = 0.5,
                 recheck_unsure: float = 0.15) -> None:
        self.confirm = confirm
        self.recheck = recheck
        self.recheck_unsure = recheck_unsure
        self._silent: dict[str, _Silence] = {}

    def observe(self, node: str, verdict: PathVerdict, now: float) -> str | None:
        """The reason to announce `node`'s addresses loudly now, or None to stay quiet."""
        if verdict.down is None:
            self._silent.pop(node, None)
            return None
        if verdict.definitive:
            self._silent.pop(node, None)
            return verdict.down
        s = self._silent.get(node)
        if s is None:
            self._silent[node] = _Silence(now, 1, verdict.down)
            return None
        s.checks += 1
        s.why = verdict.down
        if s.checks >= 2 and now - s.since >= self.confirm:
            del self._silent[node]
            return f"{s.why}, for {now - s.since:.1f} s"
        return None

    def keep_only(self, nodes: set[str]) -> None:
        """Only these nodes still carry quiet takeovers: forget the others' silence."""
        for node in set(self._silent) - nodes:
            del self._silent[node]

    def next_check(self) -> float:
        """Seconds until the next round: sooner while a node's silence is unconfirmed."""
        return self.recheck_unsure if self._silent else self.recheck

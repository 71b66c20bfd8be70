"""When to push what to FRR: the pure half of `frr.apply`. The clock is the caller's.

- Only prefixes moved (`Diff.prefix_only`): push at once, one batch of the difference.
- Anything else (peers, BFD profiles, timers, passwords, route-maps): wait until the
  wanted configuration has been quiet for `debounce`, but no longer than `max_delay`
  after the first unpushed change, then push the difference (prefix moves waiting
  meanwhile go with it).
- FRR's state unknown (start, FRR lost or restarted, a batch refused): a full push, at
  once: everything of ours FRR holds is deleted and the whole configuration written, in
  one batch. After a refused full push, retry with a back-off (`retry_min`..`retry_max`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from metallb_speaker.frr.diff import diff


@dataclass(frozen=True)
class ApplySettings:
    debounce: float = 0.3
    max_delay: float = 2.0
    probe_interval: float = 1.0  # FRR liveness and session state
    retry_min: float = 1.0
    retry_max: float = 30.0
    withdraw_timeout: float = 5.0  # SIGTERM: how long to wait for FRR to send withdrawals
    # After a start: Ready only once every BGP session is up and its updates sent, or
    # this many seconds passed (a peer that is down must not block rollouts forever).
    ready_grace: float = 60.0
    ready_settle: float = 2.5  # ... and this long after they all came up (> probe_interval)


class PushKind(StrEnum):
    PREFIXES = "prefixes"
    CONFIG = "config"
    FULL = "full"


@dataclass(frozen=True)
class Step:
    """`push` (`commands`: one batch; FULL: prepend the deletion of what FRR holds),
    `wait` (`delay` seconds, unless the wanted configuration changes), or `idle`."""

    action: str
    delay: float = 0.0
    kind: PushKind | None = None
    commands: str = ""
    target: str = ""  # the configuration FRR holds once the push succeeds


IDLE = Step("idle")


class Planner:
    def __init__(self, settings: ApplySettings = ApplySettings()) -> None:
        self.s = settings
        self.wanted: str | None = None
        self.applied: str | None = None  # what FRR holds; None: unknown
        self._first: float | None = None  # first unpushed change
        self._last = 0.0  # latest change
        self._retry_at = 0.0
        self._retry_delay = settings.retry_min

    def want(self, text: str, now: float) -> None:
        if text == self.wanted:
            return
        self.wanted = text
        self._last = now
        if self._first is None:
            self._first = now

    def step(self, now: float) -> Step:
        if self.wanted is None:
            return IDLE
        if now < self._retry_at:
            return Step("wait", self._retry_at - now)
        if self.applied is None:
            return Step("push", kind=PushKind.FULL, commands=diff("", self.wanted).text(),
                        target=self.wanted)
        if self.applied == self.wanted:
            return IDLE
        d = diff(self.applied, self.wanted)
        if not d:
            return Step("push", kind=PushKind.PREFIXES, target=self.wanted)  # same config
        if d.prefix_only:
            return Step("push", kind=PushKind.PREFIXES, commands=d.text(), target=self.wanted)
        first = self._first if self._first is not None else now
        due = min(self._last + self.s.debounce, first + self.s.max_delay)
        if now < due:
            return Step("wait", due - now)
        return Step("push", kind=PushKind.CONFIG, commands=d.text(), target=self.wanted)

    def pushed(self, target: str) -> None:
        self.applied = target
        self._retry_delay = self.s.retry_min
        self._retry_at = 0.0
        if target == self.wanted:
            self._first = None

    def refused(self, kind: PushKind, now: float) -> None:
        """FRR refused some of a batch: its state is unknown. A refused difference is
        followed by a full push at once; a refused full push waits, longer each time."""
        self.applied = None
        if kind is PushKind.FULL:
            self._retry_at = now + self._retry_delay
            self._retry_delay = min(self._retry_delay * 2, self.s.retry_max)

    def forget(self) -> None:
        """FRR lost or restarted: push everything once it answers."""
        self.applied = None

    @property
    def synced(self) -> bool:
        return self.wanted is not None and self.applied == self.wanted

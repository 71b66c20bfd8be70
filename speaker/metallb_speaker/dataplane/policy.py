"""Pure decisions of the data plane: which interfaces answer, when to announce, and
when an address conflict starts and ends. The thread in `plane.py` only executes them.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

# MetalLB: immediately, then every 1.1 s for 5 s (a client's neighbour cache may ignore
# an update inside its locktime, so one announcement is not enough).
GARP_OFFSETS = (0.0, 1.1, 2.2, 3.3, 4.4)
PROBE_OFFSETS = (0.0, 0.1)  # two probes; conflicts seen within PROBE_WAIT count
PROBE_WAIT = 0.25
CONFLICT_CLEAR_AFTER = 30.0


class Skip(StrEnum):
    DOWN = "down"
    NOARP = "noarp"
    ENSLAVED = "enslaved"
    EXCLUDED_NAME = "excludedName"
    LOOPBACK = "loopback"
    NO_MAC = "noMac"


@dataclass(frozen=True)
class IfaceInfo:
    name: str
    up: bool
    noarp: bool
    loopback: bool
    has_master: bool
    mac: bytes


def why_skip(iface: IfaceInfo, exclude: Iterable[str]) -> Skip | None:
    if iface.loopback:
        return Skip.LOOPBACK
    if not iface.up:
        return Skip.DOWN
    if iface.noarp:
        return Skip.NOARP
    if iface.has_master:
        return Skip.ENSLAVED
    if any(fnmatch.fnmatchcase(iface.name, pat) for pat in exclude):
        return Skip.EXCLUDED_NAME
    if len(iface.mac) != 6 or iface.mac == b"\0" * 6:
        return Skip.NO_MAC
    return None


def announce_on(eligible: Iterable[str], wanted: tuple[str, ...]) -> list[str]:
    """Interfaces to announce an address on: `wanted` from the L2Advertisement (empty:
    every eligible interface). A named interface is used even if excluded by pattern,
    because the user asked for it explicitly - but never if it is down or enslaved
    (the caller passes only eligible-or-named ones)."""
    names = list(eligible)
    return names if not wanted else [n for n in names if n in wanted]


class Phase(StrEnum):
    PROBING = "probing"
    ANNOUNCING = "announcing"


@dataclass
class OwnedAddress:
    """One owned address on one interface and its timers."""

    phase: Phase
    since: float
    garp_due: list[float] = field(default_factory=list)
    probe_due: list[float] = field(default_factory=list)

    @classmethod
    def start(cls, now: float, probe: bool, quiet: bool = False) -> OwnedAddress:
        """`probe`: new to the network, check nobody uses it first. `quiet`: answer
        requests but send no gratuitous announcements (clients keep the path they have,
        which still works) until `announce()`."""
        if probe:
            return cls(Phase.PROBING, now, [], [now + o for o in PROBE_OFFSETS])
        return cls(Phase.ANNOUNCING, now, [] if quiet else [now + o for o in GARP_OFFSETS])

    def announce(self, now: float) -> None:
        """(Re)start the gratuitous announcements; a probing address announces anyway."""
        if self.phase is Phase.ANNOUNCING:
            self.garp_due = [now + o for o in GARP_OFFSETS]

    def due(self, now: float) -> tuple[int, int, bool]:
        """(probes to send, announcements to send, probing finished now)."""
        probes = sum(1 for t in self.probe_due if t <= now)
        self.probe_due = [t for t in self.probe_due if t > now]
        finished = False
        if self.phase is Phase.PROBING and now >= self.since + PROBE_WAIT:
            self.phase = Phase.ANNOUNCING
            self.garp_due = [now + o for o in GARP_OFFSETS]
            finished = True
        garps = sum(1 for t in self.garp_due if t <= now)
        self.garp_due = [t for t in self.garp_due if t > now]
        return probes, garps, finished

    def next_due(self) -> float | None:
        times = self.probe_due + self.garp_due
        if self.phase is Phase.PROBING:
            times.append(self.since + PROBE_WAIT)
        return min(times) if times else None


@dataclass(frozen=True)
class ConflictEvent:
    ip: str
    mac: str
    interface: str
    started: bool  # True: a new conflict; False: it cleared


class ConflictTracker:
    """Another MAC claiming one of our addresses. Frames from known speakers' MACs are
    not conflicts (during a handover the previous owner still answers for a moment)."""

    def __init__(self) -> None:
        self.active: dict[tuple[str, str], tuple[str, float]] = {}  # (ip, mac) -> (iface, last)

    def seen(self, ip: str, mac: str, interface: str, now: float,
             ours: frozenset[str]) -> ConflictEvent | None:
        if mac in ours:
            return None
        key = (ip, mac)
        new = key not in self.active
        self.active[key] = (interface, now)
        return ConflictEvent(ip, mac, interface, True) if new else None

    def expire(self, now: float) -> list[ConflictEvent]:
        out = []
        for (ip, mac), (iface, last) in list(self.active.items()):
            if now - last > CONFLICT_CLEAR_AFTER:
                del self.active[(ip, mac)]
                out.append(ConflictEvent(ip, mac, iface, False))
        return out

    def conflicted(self, ip: str) -> bool:
        return any(k[0] == ip for k in self.active)

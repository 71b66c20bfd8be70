"""The member table and its merge rule (SWIM-style, with a readiness bit).

A record supersedes another for the same node when its incarnation is higher; at the
same incarnation LEFT > DEAD > SUSPECT > ALIVE, and ALIVE+ready > ALIVE (the ready bit
breaks the tie for every status, so the order is total). Merging is therefore a
join: any two tables that have seen the same records agree, whatever the order.
A SUSPECT record's accuser is not part of the agreed state (the digest leaves it out):
which accusers a node has heard only shortens its own suspicion timer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from metallb_speaker.wire.gossip import Record, Status

_RANK = {Status.ALIVE: 0, Status.SUSPECT: 1, Status.DEAD: 2, Status.LEFT: 3}
# Members that count as alive: a suspect keeps its place (and its addresses) until the
# suspicion is confirmed, or refutes it.
LIVE = (Status.ALIVE, Status.SUSPECT)


def supersedes(new: Record, old: Record) -> bool:
    if new.incarnation != old.incarnation:
        return new.incarnation > old.incarnation
    if new.status != old.status:
        return _RANK[new.status] > _RANK[old.status]
    # Ready only matters for ALIVE, but breaking the tie for every status keeps the
    # order total (a DEAD record with the ready bit set is valid on the wire), so the
    # merge stays order independent.
    return new.ready and not old.ready


@dataclass
class Entry:
    record: Record
    changed_at: float


class MemberTable:
    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}
        self._digest: int | None = None
        self.version = 0  # bumps on every change; cheap cache key for derived views

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str) -> Record | None:
        e = self._entries.get(name)
        return e.record if e else None

    def records(self) -> list[Record]:
        return [e.record for e in self._entries.values()]

    def apply(self, record: Record, now: float) -> bool:
        """Merge one record; True if it changed our view."""
        e = self._entries.get(record.name)
        if e is not None and not supersedes(record, e.record):
            return False
        self._entries[record.name] = Entry(record, now)
        self._digest = None
        self.version += 1
        return True

    def remove(self, name: str) -> None:
        if self._entries.pop(name, None) is not None:
            self._digest = None
            self.version += 1

    def expired(self, now: float, left_after: float, dead_after: float) -> list[str]:
        out = []
        for name, e in self._entries.items():
            st = e.record.status
            if (st is Status.LEFT and now - e.changed_at > left_after) or (
                    st is Status.DEAD and now - e.changed_at > dead_after):
                out.append(name)
        return out

    def names(self, statuses: Iterable[Status] = LIVE) -> list[str]:
        wanted = set(statuses)
        return [n for n, e in self._entries.items() if e.record.status in wanted]

    def digest(self) -> int:
        """64-bit hash of the whole table: equal digests mean equal tables."""
        if self._digest is None:
            h = hashlib.sha256()
            for name in sorted(self._entries):
                r = self._entries[name].record
                h.update(f"{name}\0{r.incarnation}\0{int(r.status)}\0{int(r.ready)}\n".encode())
            self._digest = int.from_bytes(h.digest()[:8], "big")
        return self._digest

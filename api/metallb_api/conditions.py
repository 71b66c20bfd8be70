"""Status conditions shared by the two writers of a pool's status (the operator's
`Ready`/`AssignmentsStable`, the speakers' `AddressConflict`): one merge, pure.

Each writer owns some condition types. A write starts from the object's *current*
conditions (the caller re-reads and retries on a resourceVersion conflict), replaces
the types it owns and keeps every other one as it is, so neither writer erases the
other's. `lastTransitionTime` moves only when a condition's status flips.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ConditionSpec:
    type: str
    status: bool
    reason: str
    message: str


def merge_conditions(current: Sequence[Mapping[str, Any]], wanted: Sequence[ConditionSpec],
                     generation: int, now: str, owned: Collection[str] | None = None,
                     ) -> list[dict[str, Any]]:
    """The conditions to write: `wanted` in order (a transition time kept while the
    status is unchanged), then the current conditions of types we do not own, untouched.
    `owned` defaults to the wanted types; an owned type not wanted is removed."""
    owned = {c.type for c in wanted} if owned is None else set(owned) | {c.type for c in wanted}
    before = {c.get("type"): c for c in current if isinstance(c, Mapping)}
    out: list[dict[str, Any]] = []
    for spec in wanted:
        status = "True" if spec.status else "False"
        old = before.get(spec.type)
        since = now
        if old is not None and old.get("status") == status and old.get("lastTransitionTime"):
            since = str(old["lastTransitionTime"])
        out.append({
            "type": spec.type,
            "status": status,
            "reason": spec.reason,
            "message": spec.message,
            "lastTransitionTime": since,
            "observedGeneration": generation,
        })
    out += [dict(c) for c in current
            if isinstance(c, Mapping) and c.get("type") not in owned]
    return out

"""Condition merging shared by the operator and the speakers: each replaces only the
types it owns, keeps the others' untouched, and moves lastTransitionTime only on a
status flip."""

from __future__ import annotations

import re
from typing import Any

import pytest

from metallb_api.conditions import ConditionSpec, merge_conditions, now_rfc3339

pytestmark = pytest.mark.unit
T0, T1 = "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"


def cond(type_: str, status: str, since: str = T0, reason: str = "R", msg: str = "m",
         gen: int = 1) -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": msg,
            "lastTransitionTime": since, "observedGeneration": gen}


READY = ConditionSpec("Ready", True, "R", "m")


@pytest.mark.parametrize(("case", "current", "wanted", "owned", "expected"), [
    ("first write", [], [READY], None, [cond("Ready", "True", T1, gen=2)]),
    ("unchanged status keeps its transition time", [cond("Ready", "True")], [READY], None,
     [cond("Ready", "True", T0, gen=2)]),
    ("a flip moves it", [cond("Ready", "False")], [READY], None,
     [cond("Ready", "True", T1, gen=2)]),
    ("a new message alone does not move it", [cond("Ready", "True", msg="old")],
     [ConditionSpec("Ready", True, "R2", "new")], None,
     [cond("Ready", "True", T0, reason="R2", msg="new", gen=2)]),
    ("another writer's condition is kept as it is",
     [cond("Ready", "True"), cond("AddressConflict", "True", reason="IPConflict")],
     [ConditionSpec("Ready", False, "Overlap", "x")], None,
     [cond("Ready", "False", T1, reason="Overlap", msg="x", gen=2),
      cond("AddressConflict", "True", reason="IPConflict")]),
    ("the speaker's write keeps the operator's conditions",
     [cond("Ready", "True"), cond("AssignmentsStable", "True")],
     [ConditionSpec("AddressConflict", True, "IPConflict", "claimed")], None,
     [cond("AddressConflict", "True", T1, reason="IPConflict", msg="claimed", gen=2),
      cond("Ready", "True"), cond("AssignmentsStable", "True")]),
    ("an owned type no longer wanted is removed",
     [cond("Ready", "True"), cond("AssignmentsStable", "False"), cond("AddressConflict", "True")],
     [READY], {"Ready", "AssignmentsStable"},
     [cond("Ready", "True", T0, gen=2), cond("AddressConflict", "True")]),
    ("junk entries are dropped, not crashed on", ["junk", cond("Other", "True")], [READY], None,
     [cond("Ready", "True", T1, gen=2), cond("Other", "True")]),
])
def test_merge(case: str, current: list[Any], wanted: list[ConditionSpec],
               owned: set[str] | None, expected: list[dict[str, Any]]) -> None:
    assert merge_conditions(current, wanted, 2, T1, owned) == expected, case


@pytest.mark.parametrize(("before", "wanted", "moves"), [
    ("True", True, False), ("False", False, False),
    ("False", True, True), ("True", False, True), ("Unknown", True, True),
])
def test_transition_time_moves_only_on_a_flip(before: str, wanted: bool, moves: bool) -> None:
    [out] = merge_conditions([cond("Ready", before, reason="Old")],
                             [ConditionSpec("Ready", wanted, "New", "new message")], 2, T1)
    assert out["lastTransitionTime"] == (T1 if moves else T0)
    # reason, message and generation always follow what is wanted
    assert (out["reason"], out["message"], out["observedGeneration"]) == ("New", "new message", 2)


def test_a_condition_without_a_time_gets_now() -> None:
    [out] = merge_conditions([{"type": "Ready", "status": "True"}], [READY], 1, T1)
    assert out["lastTransitionTime"] == T1


def test_now_is_rfc3339() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", now_rfc3339())

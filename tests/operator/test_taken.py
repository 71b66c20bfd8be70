"""TakenSet: table tests plus a hypothesis comparison against a plain Python set."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from metallb_operator.allocator import TakenSet

pytestmark = pytest.mark.unit


def runs_of(t: TakenSet) -> list[tuple[int, int]]:
    return list(zip(t._starts, t._ends, strict=True))


def make(*values: int) -> TakenSet:
    t = TakenSet()
    for v in values:
        t.add(v)
    return t


@pytest.mark.parametrize(
    ("values", "runs"),
    [
        ((), []),
        ((5,), [(5, 5)]),
        ((5, 6), [(5, 6)]),  # extend right
        ((6, 5), [(5, 6)]),  # extend left
        ((5, 7), [(5, 5), (7, 7)]),
        ((5, 7, 6), [(5, 7)]),  # bridge two runs
        ((1, 3, 5, 7, 2, 6), [(1, 3), (5, 7)]),
        ((0,), [(0, 0)]),
        ((2**128 - 1, 2**128 - 2), [(2**128 - 2, 2**128 - 1)]),
    ],
)
def test_add_merges_runs(values: tuple[int, ...], runs: list[tuple[int, int]]) -> None:
    t = make(*values)
    assert runs_of(t) == runs
    assert len(t) == len(values)
    assert t.runs == len(runs)


@pytest.mark.parametrize(
    ("values", "removed", "runs"),
    [
        ((5,), 5, []),
        ((5, 6, 7), 5, [(6, 7)]),  # trim start
        ((5, 6, 7), 7, [(5, 6)]),  # trim end
        ((5, 6, 7), 6, [(5, 5), (7, 7)]),  # split
        ((1, 5, 6, 7, 9), 6, [(1, 1), (5, 5), (7, 7), (9, 9)]),
    ],
)
def test_remove_splits_runs(values: tuple[int, ...], removed: int,
                            runs: list[tuple[int, int]]) -> None:
    t = make(*values)
    t.remove(removed)
    assert runs_of(t) == runs
    assert len(t) == len(values) - 1


def test_add_twice_and_remove_missing_raise() -> None:
    t = make(5, 6)
    with pytest.raises(ValueError, match="already taken"):
        t.add(5)
    with pytest.raises(ValueError, match="already taken"):
        t.add(6)
    with pytest.raises(ValueError, match="not taken"):
        t.remove(7)
    with pytest.raises(ValueError, match="not taken"):
        t.remove(4)
    with pytest.raises(ValueError, match="not taken"):
        TakenSet().remove(0)
    assert runs_of(t) == [(5, 6)] and len(t) == 2


@pytest.mark.parametrize(
    ("values", "lo", "hi", "expected"),
    [
        ((), 0, 10, 0),
        ((0, 1, 2), 0, 10, 3),
        ((0, 1, 2), 1, 2, None),
        ((0, 1, 2), 3, 10, 3),
        ((0, 1, 2), 0, 2, None),
        ((0, 1, 2, 5), 2, 5, 3),
        ((3, 4), 0, 10, 0),
        ((3, 4), 4, 4, None),
        ((3, 4), 4, 5, 5),
        ((3, 4), 10, 9, None),  # empty interval
    ],
)
def test_first_free(values: tuple[int, ...], lo: int, hi: int, expected: int | None) -> None:
    assert make(*values).first_free(lo, hi) == expected


def test_first_free_is_instant_in_a_huge_interval() -> None:
    t = TakenSet()
    lo = 0xFD00 << 112
    for i in range(1000):
        t.add(lo + i)
    assert t.runs == 1
    assert t.first_free(lo, lo + 2**64 - 1) == lo + 1000
    assert t.count_in(lo, lo + 2**64 - 1) == 1000


@pytest.mark.parametrize(
    ("values", "lo", "hi", "expected"),
    [
        ((), 0, 100, 0),
        ((1, 2, 3, 10, 11), 0, 100, 5),
        ((1, 2, 3, 10, 11), 2, 10, 3),
        ((1, 2, 3, 10, 11), 4, 9, 0),
        ((1, 2, 3, 10, 11), 3, 3, 1),
        ((1, 2, 3, 10, 11), 12, 100, 0),
    ],
)
def test_count_in(values: tuple[int, ...], lo: int, hi: int, expected: int) -> None:
    assert make(*values).count_in(lo, hi) == expected


def test_contains() -> None:
    t = make(1, 2, 3, 7)
    assert [x for x in range(10) if t.contains(x)] == [1, 2, 3, 7]


# -- against a model ---------------------------------------------------------------

SMALL = st.integers(min_value=0, max_value=40)


def check_structure(t: TakenSet, model: set[int]) -> None:
    runs = runs_of(t)
    for s, e in runs:
        assert s <= e
    for (_, e1), (s2, _) in itertools.pairwise(runs):
        assert e1 + 1 < s2, "runs must be disjoint and non-adjacent"
    covered = {x for s, e in runs for x in range(s, e + 1)}
    assert covered == model
    assert len(t) == len(model)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), SMALL), max_size=60), SMALL, SMALL)
def test_matches_a_set_model(ops: list[tuple[bool, int]], lo: int, hi: int) -> None:
    t, model = TakenSet(), set()
    for add, x in ops:
        if add and x not in model:
            t.add(x)
            model.add(x)
        elif not add and x in model:
            t.remove(x)
            model.discard(x)
    check_structure(t, model)
    free = [x for x in range(lo, hi + 1) if x not in model]
    assert t.first_free(lo, hi) == (free[0] if free else None)
    assert t.count_in(lo, hi) == len([x for x in model if lo <= x <= hi])


class TakenSetMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.t = TakenSet()
        self.model: set[int] = set()

    @rule(x=SMALL)
    def add(self, x: int) -> None:
        if x in self.model:
            with pytest.raises(ValueError):
                self.t.add(x)
        else:
            self.t.add(x)
            self.model.add(x)

    @rule(x=SMALL)
    def remove(self, x: int) -> None:
        if x not in self.model:
            with pytest.raises(ValueError):
                self.t.remove(x)
        else:
            self.t.remove(x)
            self.model.discard(x)

    @rule(lo=SMALL, hi=SMALL)
    def first_free(self, lo: int, hi: int) -> None:
        free = [x for x in range(lo, hi + 1) if x not in self.model]
        assert self.t.first_free(lo, hi) == (free[0] if free else None)

    @rule(lo=SMALL, hi=SMALL)
    def count_in(self, lo: int, hi: int) -> None:
        assert self.t.count_in(lo, hi) == sum(1 for x in self.model if lo <= x <= hi)

    @rule(x=SMALL)
    def contains(self, x: int) -> None:
        assert self.t.contains(x) == (x in self.model)

    @invariant()
    def structure(self) -> None:
        check_structure(self.t, self.model)


TakenSetMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=50,
                                             deadline=None)
test_taken_set_machine = TakenSetMachine.TestCase

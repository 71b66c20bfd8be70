"""Member table merge rule (a join: order independent, idempotent), expiry, the hash
ring helpers and the replay guard."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metallb_speaker.membership.replay import ReplayDrop, ReplayGuard
from metallb_speaker.membership.ring import monitors_of, ring_order, subjects_of
from metallb_speaker.membership.table import MemberTable, supersedes
from metallb_speaker.wire.gossip import Header, Record, Status

pytestmark = pytest.mark.unit

A, S, D, L = Status.ALIVE, Status.SUSPECT, Status.DEAD, Status.LEFT


def rec(inc: int, status: Status = A, ready: bool = False, name: str = "n",
        accuser: str = "") -> Record:
    if status is S and not accuser:
        accuser = "m"
    return Record(name, f"{name}:7946", inc, status, ready, accuser)


SUPERSEDES: list[tuple[Record, Record, bool]] = [
    # higher incarnation wins, whatever the status
    (rec(2, A), rec(1, A), True),
    (rec(2, A), rec(1, D), True),
    (rec(2, A), rec(1, L), True),
    (rec(2, A, False), rec(1, A, True), True),
    (rec(1, L), rec(2, A), False),
    (rec(1, D), rec(2, A), False),
    (rec(1, A, True), rec(2, A, False), False),
    # same incarnation: LEFT > DEAD > SUSPECT > ALIVE
    (rec(1, S), rec(1, A, True), True),
    (rec(1, A, True), rec(1, S), False),
    (rec(1, D), rec(1, S, True), True),
    (rec(1, S, True), rec(1, D), False),
    (rec(2, A), rec(1, S), True),  # the suspect refutes with a higher incarnation
    (rec(1, S), rec(2, A), False),  # and an old suspicion cannot come back
    # another accuser of the same suspicion is not a new state (it only confirms)
    (rec(1, S, accuser="x"), rec(1, S, accuser="y"), False),
    (rec(1, D), rec(1, A), True),
    (rec(1, D), rec(1, A, True), True),
    (rec(1, L), rec(1, A), True),
    (rec(1, L), rec(1, D), True),
    (rec(1, A), rec(1, D), False),
    (rec(1, A, True), rec(1, D), False),
    (rec(1, D), rec(1, L), False),
    (rec(1, A), rec(1, L), False),
    # same incarnation and status: ALIVE+ready > ALIVE
    (rec(1, A, True), rec(1, A, False), True),
    (rec(1, A, False), rec(1, A, True), False),
    # the ready bit also breaks DEAD/LEFT ties (valid on the wire), keeping the order total
    (rec(1, D, True), rec(1, D, False), True),
    (rec(1, D, False), rec(1, D, True), False),
    (rec(1, L, True), rec(1, L, False), True),
    (rec(1, D, True), rec(1, L, False), False),
    # nothing supersedes itself
    (rec(1, A, False), rec(1, A, False), False),
    (rec(1, A, True), rec(1, A, True), False),
    (rec(1, D), rec(1, D), False),
    (rec(1, L), rec(1, L), False),
    (rec(0, A), rec(0, A), False),
]


@pytest.mark.parametrize(("new", "old", "expected"), SUPERSEDES)
def test_supersedes(new: Record, old: Record, expected: bool) -> None:
    assert supersedes(new, old) is expected


# -- merge is a join ----------------------------------------------------------------
NAMES = ["a", "b", "c"]
records = st.builds(
    rec,
    st.integers(0, 3),
    st.sampled_from(Status),
    st.booleans(),
    st.sampled_from(NAMES),
    st.sampled_from(["x", "y"]),
)


def _merged(recs: list[Record]) -> MemberTable:
    t = MemberTable()
    for i, r in enumerate(recs):
        t.apply(r, float(i))
    return t


def _key(r: Record) -> tuple[int, int, int]:
    return (r.incarnation, {A: 0, S: 1, D: 2, L: 3}[r.status], int(r.ready))


@settings(max_examples=300)
@given(st.lists(records, max_size=12), st.randoms(use_true_random=False))
def test_merge_order_independent(recs: list[Record], rnd: object) -> None:
    shuffled = list(recs)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    t1, t2 = _merged(recs), _merged(shuffled)
    assert t1.digest() == t2.digest()
    # and the result is the per-name maximum (by incarnation, status rank, ready)
    for name in NAMES:
        mine = [r for r in recs if r.name == name]
        got = t1.get(name)
        if not mine:
            assert got is None
            continue
        assert got is not None
        assert _key(got) == max(_key(r) for r in mine)


@given(st.lists(records, max_size=12))
def test_merge_idempotent(recs: list[Record]) -> None:
    t = _merged(recs)
    digest, version = t.digest(), t.version
    for r in recs:
        assert t.apply(r, 100.0) is False
    assert t.digest() == digest
    assert t.version == version


@given(st.lists(records, max_size=8), st.lists(records, max_size=8))
def test_merge_associative_across_tables(left: list[Record], right: list[Record]) -> None:
    """Merging table B's records into A equals merging everything at once."""
    a = _merged(left)
    for r in _merged(right).records():
        a.apply(r, 50.0)
    assert a.digest() == _merged(left + right).digest()


def test_digest_is_content_hash() -> None:
    t1, t2 = MemberTable(), MemberTable()
    t1.apply(rec(1, name="a"), 0.0)
    t1.apply(rec(1, name="b"), 0.0)
    t2.apply(rec(1, name="b"), 5.0)
    t2.apply(rec(1, name="a"), 7.0)
    assert t1.digest() == t2.digest()
    before = t1.digest()
    assert t1.apply(rec(1, A, True, name="a"), 1.0)
    assert t1.digest() != before
    assert MemberTable().digest() != before


def test_apply_reports_change_and_bumps_version() -> None:
    t = MemberTable()
    assert t.apply(rec(1), 0.0) is True
    v = t.version
    assert t.apply(rec(1), 1.0) is False
    assert t.version == v
    assert t.apply(rec(1, D), 1.0) is True
    assert t.version == v + 1
    assert t.apply(rec(1, A, True), 2.0) is False  # DEAD beats ALIVE+ready at inc 1
    assert t.get("n") == rec(1, D)
    t.remove("n")
    assert "n" not in t
    assert t.version == v + 2
    t.remove("n")  # absent: no change
    assert t.version == v + 2


def test_names_filters_by_status() -> None:
    t = MemberTable()
    t.apply(rec(1, A, name="a"), 0.0)
    t.apply(rec(1, D, name="b"), 0.0)
    t.apply(rec(1, L, name="c"), 0.0)
    assert t.names() == ["a"]
    assert sorted(t.names((D, L))) == ["b", "c"]
    assert len(t) == 3


def test_expired() -> None:
    t = MemberTable()
    t.apply(rec(1, A, name="alive"), 0.0)
    t.apply(rec(1, D, name="dead"), 10.0)
    t.apply(rec(1, L, name="left"), 20.0)
    assert t.expired(25.0, left_after=30.0, dead_after=600.0) == []
    assert t.expired(50.0, left_after=30.0, dead_after=600.0) == []  # exactly 30: kept
    assert t.expired(50.1, left_after=30.0, dead_after=600.0) == ["left"]
    assert sorted(t.expired(10_000.0, left_after=30.0, dead_after=600.0)) == ["dead", "left"]
    # an update restarts the clock
    t.apply(rec(2, L, name="dead"), 9_990.0)
    assert t.expired(10_000.0, left_after=30.0, dead_after=600.0) == ["left"]


# -- ring ---------------------------------------------------------------------------
def test_ring_order_is_sha256_order_and_input_order_independent() -> None:
    names = [f"node-{i}" for i in range(20)]
    ring = ring_order(names)
    assert ring == sorted(names, key=lambda n: hashlib.sha256(n.encode()).hexdigest())
    assert ring_order(reversed(names)) == ring


@given(st.sets(st.text(min_size=1, max_size=6), max_size=12), st.integers(1, 6))
def test_monitors_and_subjects_are_inverse(names: set[str], k: int) -> None:
    ring = ring_order(names)
    for x in ring:
        for y in ring:
            assert (y in monitors_of(x, ring, k)) == (x in subjects_of(y, ring, k))


@pytest.mark.parametrize(("n", "k", "size"), [
    (0, 3, 0), (1, 3, 0), (2, 3, 1), (3, 3, 2), (4, 3, 3), (5, 3, 3), (10, 3, 3),
    (10, 1, 1), (10, 9, 9), (10, 12, 9),
])
def test_ring_sizes(n: int, k: int, size: int) -> None:
    ring = ring_order(f"n{i}" for i in range(n))
    for x in ring:
        mons, subs = monitors_of(x, ring, k), subjects_of(x, ring, k)
        assert len(mons) == len(subs) == size
        assert len(set(mons)) == size
        assert x not in mons
        assert x not in subs
    # every node is watched by exactly `size` monitors
    watchers = {x: sum(x in monitors_of(y, ring, k) for y in ring) for x in ring}
    assert all(v == size for v in watchers.values())


def test_monitors_are_successors() -> None:
    ring = ["a", "b", "c", "d", "e"]
    assert monitors_of("d", ring, 3) == ["e", "a", "b"]
    assert subjects_of("b", ring, 3) == ["a", "e", "d"]
    assert monitors_of("zz", ring, 3) == []
    assert subjects_of("zz", ring, 3) == []


# -- replay guard -------------------------------------------------------------------
def h(sender: str, boot: int, seq: int) -> Header:
    return Header(sender, boot, seq, 0)


def test_replay_guard() -> None:
    g = ReplayGuard()
    assert g.check(h("a", 5, 1)) is None
    assert g.check(h("a", 5, 2)) is None
    assert g.check(h("a", 5, 2)) is ReplayDrop.REPLAY
    assert g.check(h("a", 5, 1)) is ReplayDrop.REPLAY
    assert g.check(h("a", 5, 10)) is None  # gaps are fine (loss)
    assert g.check(h("a", 5, 9)) is ReplayDrop.REPLAY  # late reordering dropped
    assert g.check(h("a", 4, 100)) is ReplayDrop.STALE_BOOT
    assert g.check(h("b", 1, 1)) is None  # senders are independent
    # a new boot is accepted at once, even with a lower seq
    assert g.check(h("a", 6, 1)) is None
    assert g.check(h("a", 5, 11)) is ReplayDrop.STALE_BOOT
    assert g.check(h("a", 6, 1)) is ReplayDrop.REPLAY
    # a rejected message does not move the window
    assert g.check(h("a", 6, 2)) is None


def test_replay_guard_forget() -> None:
    g = ReplayGuard()
    assert g.check(h("a", 5, 3)) is None
    g.forget("a")
    assert g.check(h("a", 5, 3)) is None
    assert g.check(h("a", 1, 1)) is ReplayDrop.STALE_BOOT
    g.forget("unknown")  # no error


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5)), max_size=30))
def test_replay_guard_accepts_exactly_the_increasing_ones(seqs: list[tuple[int, int]]) -> None:
    g = ReplayGuard()
    last: tuple[int, int] | None = None
    for boot, seq in seqs:
        ok = g.check(h("s", boot, seq)) is None
        assert ok == (last is None or (boot, seq) > last)
        if ok:
            last = (boot, seq)

"""One `Membership` driven directly: crafted messages in, injected time, sends checked."""

from __future__ import annotations

import itertools
import math
import random
from collections import defaultdict
from typing import NamedTuple

import pytest

from metallb_speaker.membership import Membership, MembershipConfig, Send
from metallb_speaker.membership.ring import monitors_of, ring_order
from metallb_speaker.wire.gossip import (
    Ack,
    Body,
    Header,
    Heartbeat,
    Nack,
    Ping,
    PingReq,
    Record,
    Status,
    Sync,
    Updates,
)

pytestmark = pytest.mark.unit

CFG = MembershipConfig()
ME = "n0"
NAMES = [f"n{i}" for i in range(8)]
RING = ring_order(NAMES)
_seq = itertools.count(1)


def ep(name: str) -> str:
    return f"{name}.ep:7946"


def hdr(sender: str) -> Header:
    return Header(sender, 1, next(_seq), 0)


def at(i: int) -> float:
    """Tick i of a 10 ms loop, computed so that at(28) == 0.28 exactly."""
    return i / 100


def make(names: list[str] = NAMES, ready: bool = True, cfg: MembershipConfig = CFG,
         me: str = ME) -> Membership:
    """`me` with a table learnt through a full SYNC from another member at t=0."""
    m = Membership(me, ep(me), cfg, 0.0, random.Random(7))
    others = [n for n in names if n != me]
    if others:
        recs = tuple(Record(n, ep(n), 1, Status.ALIVE, ready) for n in others)
        m.receive(hdr(others[0]), Sync(0, True, recs), 0.0)
    m.drain_changes()
    return m


def bodies(out: list[Send], kind: type) -> list[Send]:
    return [s for s in out if isinstance(s.body, kind)]


def status(m: Membership, name: str) -> Status:
    rec = m.table.get(name)
    assert rec is not None
    return rec.status


# -- heartbeats ---------------------------------------------------------------------
def test_heartbeats_go_to_exactly_the_k_monitors_every_interval() -> None:
    m = make()
    mons = monitors_of(ME, RING, CFG.monitors)
    assert len(mons) == CFG.monitors
    assert m.monitors() == mons
    subjects = m.subjects()
    assert len(subjects) == CFG.monitors
    sent: dict[str, list[float]] = defaultdict(list)
    for i in range(100):  # one second
        now = at(i)
        if i % 5 == 0:  # our subjects heartbeat us, so no one is suspected
            for subj in subjects:
                m.receive(hdr(subj), Heartbeat(1, True, m.table.digest()), now)
        out = m.tick(now)
        assert not bodies(out, Ping)
        assert not bodies(out, PingReq)
        for s in bodies(out, Heartbeat):
            assert s.endpoint == ep(s.to)
            assert s.body == Heartbeat(1, m.ready, m.table.digest())
            sent[s.to].append(now)
    assert set(sent) == set(mons)
    for times in sent.values():
        assert len(times) == round(1.0 / CFG.heartbeat_interval)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(CFG.heartbeat_interval - 0.011 < g < CFG.heartbeat_interval + 0.011
                   for g in gaps)
    assert m.stats.heartbeats_sent == round(1.0 / CFG.heartbeat_interval) * CFG.monitors


def test_heartbeats_follow_the_ring_when_a_monitor_leaves() -> None:
    m = make()
    gone = m.monitors()[0]
    m.tick(0.0)
    m.receive(hdr(gone), Updates((Record(gone, ep(gone), 1, Status.LEFT, False),)), 0.01)
    expected = monitors_of(ME, ring_order(n for n in NAMES if n != gone), CFG.monitors)
    assert gone not in expected
    out = m.tick(CFG.heartbeat_interval)
    assert sorted(s.to for s in bodies(out, Heartbeat)) == sorted(expected)


def test_late_loop_does_not_burst_heartbeats() -> None:
    m = make()
    m.tick(0.0)
    out = m.tick(2.0)  # the loop was blocked for 2 s
    assert len(bodies(out, Heartbeat)) == CFG.monitors  # one round, not forty
    assert not bodies(m.tick(2.01), Heartbeat)
    assert len(bodies(m.tick(2.0 + CFG.heartbeat_interval), Heartbeat)) == CFG.monitors


def test_heartbeat_with_other_digest_triggers_one_full_sync() -> None:
    m = make()
    out = m.receive(hdr("n3"), Heartbeat(1, True, 12345), 0.1)
    syncs = bodies(out, Sync)
    assert len(syncs) == 1
    assert syncs[0].to == "n3"
    assert syncs[0].body.full  # type: ignore[union-attr]
    assert {r.name for r in syncs[0].body.records} == set(NAMES)  # type: ignore[union-attr]
    # rate limited: not again within half a sync interval
    assert not bodies(m.receive(hdr("n3"), Heartbeat(1, True, 12345), 0.2), Sync)
    assert bodies(m.receive(hdr("n3"), Heartbeat(1, True, 12345), 0.1 + CFG.sync_interval), Sync)
    # equal digest: nothing
    assert not m.receive(hdr("n4"), Heartbeat(1, True, m.table.digest()), 0.3)


# -- ping / ping-req ----------------------------------------------------------------
def test_ping_is_acked() -> None:
    m = make()
    out = m.receive(hdr("n3"), Ping(77, ME), 0.1)
    assert out == [Send("n3", ep("n3"), Ack(77, ME))]


def test_ping_req_pings_target_and_relays_the_ack() -> None:
    m = make()
    out = m.receive(hdr("n1"), PingReq(42, "n5", ep("n5")), 0.1)
    assert len(out) == 1
    ping = out[0]
    assert isinstance(ping.body, Ping)
    assert (ping.to, ping.endpoint, ping.body.target) == ("n5", ep("n5"), "n5")
    assert ping.body.probe != 42  # our own probe id, mapped back to the origin's
    # a wrong probe id is not relayed
    assert not bodies(m.receive(hdr("n5"), Ack(ping.body.probe + 1, "n5"), 0.105), Ack)
    out = m.receive(hdr("n5"), Ack(ping.body.probe, "n5"), 0.11)
    assert out == [Send("n1", ep("n1"), Ack(42, "n5"))]
    # answered: no NACK later
    for i in range(12, 60):
        assert not bodies(m.tick(at(i)), Nack)


def test_ping_req_nacks_after_timeout() -> None:
    m = make()
    m.tick(0.0)
    out = m.receive(hdr("n1"), PingReq(42, "n5", ep("n5")), 0.1)
    assert bodies(out, Ping)
    nack_at = []
    for i in range(11, 60):
        for s in bodies(m.tick(at(i)), Nack):
            assert s == Send("n1", ep("n1"), Nack(42, "n5"))
            nack_at.append(at(i))
    assert len(nack_at) == 1
    # the helper answers before the origin's own probe_timeout expires
    assert 0.1 < nack_at[0] <= 0.1 + CFG.probe_timeout


def test_ping_req_for_unknown_target_uses_the_given_endpoint() -> None:
    m = make()
    out = m.receive(hdr("n1"), PingReq(9, "stranger", "10.9.9.9:7946"), 0.1)
    assert [(s.to, s.endpoint) for s in bodies(out, Ping)] == [("stranger", "10.9.9.9:7946")]


# -- suspicion and conviction -------------------------------------------------------
class Probed:
    """Drives `me` with heartbeats from every subject except `victim`."""

    def __init__(self, m: Membership, victim: str | None = None) -> None:
        self.m = m
        self.victim = victim or m.subjects()[0]
        self.pings: list[tuple[float, int]] = []
        self.ping_reqs: list[tuple[float, Send]] = []
        self.out: list[tuple[float, Send]] = []

    def tick(self, i: int, lag: float = 0.0) -> list[Send]:
        now = at(i)
        if i % 5 == 0:
            for subj in self.m.subjects():
                if subj != self.victim:
                    self.m.receive(hdr(subj), Heartbeat(1, True, self.m.table.digest()), now)
        out = self.m.tick(now, lag)
        for s in out:
            self.out.append((now, s))
            if isinstance(s.body, Ping) and s.to == self.victim:
                self.pings.append((now, s.body.probe))
            if isinstance(s.body, PingReq):
                self.ping_reqs.append((now, s))
        return out

    def send(self, sender: str, body: Body, i: int) -> list[Send]:
        return self.m.receive(hdr(sender), body, at(i))


def test_silent_subject_is_probed_directly_and_indirectly() -> None:
    m = make()
    p = Probed(m)
    for i in range(int((CFG.suspect_after + CFG.probe_timeout) * 100)):  # one probe round
        p.tick(i)
    assert p.pings, "a silent subject must be probed"
    first, pid = p.pings[0]
    assert CFG.suspect_after < first <= CFG.suspect_after + 0.01
    reqs = [s for t, s in p.ping_reqs if t == first]
    assert len(reqs) == CFG.indirect_probes
    for s in reqs:
        assert s.body == PingReq(pid, p.victim, ep(p.victim))
    # helpers are the victim's other monitors first
    other_monitors = [x for x in monitors_of(p.victim, RING, CFG.monitors) if x != ME]
    assert {s.to for s in reqs} == set(other_monitors[: CFG.indirect_probes])
    # no one else was probed, and the victim is still alive
    assert {s.to for _, s in p.out if isinstance(s.body, Ping)} == {p.victim}
    assert status(m, p.victim) is Status.ALIVE
    assert m.stats.probes_started == 1  # one probe in flight, not one per tick


def test_helpers_exclude_nodes_we_suspect_ourselves() -> None:
    """Two adjacent subjects go silent together (a rack loss): the probe of the farther
    one must not ask the nearer one, which we are probing as well, to help."""
    m = make()
    near, far = m.subjects()[0], m.subjects()[1]
    assert near in monitors_of(far, RING, CFG.monitors)  # the natural helper
    for i in range(40):
        now = at(i)
        if i % 5 == 0:
            for s in m.subjects():
                if s not in (near, far):
                    m.receive(hdr(s), Heartbeat(1, True, m.table.digest()), now)
        out = m.tick(now)
        pinged = {s.to for s in bodies(out, Ping)}
        if pinged:
            assert pinged == {near, far}
            asked = {s.to for s in bodies(out, PingReq) if s.body.target == far}  # type: ignore[union-attr]
            assert len(asked) == CFG.indirect_probes
            assert not asked & {near, far, ME}
            return
    pytest.fail("the silent subjects were never probed")


class Verdict(NamedTuple):
    suspected: float | None  # when `me` accused the victim
    declared: float | None  # when it declared it dead


def _run_probe(p: Probed, nack: bool, until: int = 60, lag_at: dict[int, float] | None = None,
               nack_all: bool = False) -> Verdict:
    """Tick until `until`; the helpers NACK the first probe (or every probe)."""
    suspected = declared = None
    nacked: set[int] = set()
    for i in range(until):
        p.tick(i, (lag_at or {}).get(i, 0.0))
        if nack and p.pings and (nack_all or not nacked):
            t0, pid = p.pings[-1]
            if pid not in nacked and at(i) >= t0 + 0.01:
                helper = next(s.to for t, s in p.ping_reqs if t == t0)
                p.send(helper, Nack(pid, p.victim), i)
                nacked.add(pid)
        st = status(p.m, p.victim)
        if suspected is None and st is Status.SUSPECT:
            suspected = at(i)
        if declared is None and st is Status.DEAD:
            declared = at(i)
    return Verdict(suspected, declared)


# subjects whose monitors do not include `me` (so `me` neither accuses nor is waited for)
NOT_MINE = [n for n in NAMES if n != ME and ME not in monitors_of(n, RING, CFG.monitors)]


def accusation(victim: str, accuser: str, incarnation: int = 1) -> Record:
    return Record(victim, ep(victim), incarnation, Status.SUSPECT, True, accuser)


def test_accusation_after_probe_timeout_with_a_nack_then_death_after_the_suspicion() -> None:
    m = make()
    p = Probed(m)
    suspected, declared = _run_probe(p, nack=True, until=200)
    assert suspected is not None and declared is not None
    first = p.pings[0][0]
    assert first + CFG.probe_timeout <= suspected <= first + CFG.probe_timeout + 0.011
    assert m.stats.suspected == 1
    # nobody confirmed: the subject's other monitors may be fine with it, so the
    # longest suspicion runs (we may be the one with the problem)
    assert declared == pytest.approx(suspected + CFG.suspicion_max, abs=0.011)
    assert m.stats.declared_dead == 1
    changes = [c for c in m.drain_changes() if c.name == p.victim]
    assert [(c.status, c.reason) for c in changes] == [(Status.SUSPECT, "suspected"),
                                                       (Status.DEAD, "declared")]
    # the suspect itself is told (so it can refute) and the news is disseminated
    told = [(s.to, s.body) for t, s in p.out if t == suspected and isinstance(s.body, Updates)]
    assert (p.victim, Updates((accusation(p.victim, ME),))) in told
    others = {to for to, b in told if to != p.victim and accusation(p.victim, ME) in b.records}
    assert len(others) == CFG.fanout_for(len(NAMES))
    dead = Record(p.victim, ep(p.victim), 1, Status.DEAD, False)
    assert any(dead in b.records for t, s in p.out if t == declared  # type: ignore[union-attr]
               and isinstance(b := s.body, Updates) and s.to == p.victim)
    assert p.victim not in m.view().alive
    assert p.victim not in m.subjects()  # the ring moved on


def test_a_suspect_keeps_its_place_until_declared() -> None:
    """Suspicion does not move addresses: the suspect stays alive and ready in the
    view the election reads."""
    m = make()
    m.receive(hdr("n2"), Updates((accusation("n5", "n2"),)), 0.5)
    assert status(m, "n5") is Status.SUSPECT
    view = m.view()
    assert "n5" in view.alive and "n5" in view.ready


@pytest.mark.parametrize(("accusers", "timeout"), [
    (1, CFG.suspicion_max),
    # one of the two other possible confirmations
    (2, CFG.suspicion_max - (CFG.suspicion_max - CFG.suspicion_min) * math.log(2) / math.log(3)),
    (3, CFG.suspicion_min),
])
def test_confirmations_from_other_monitors_shorten_the_suspicion(accusers: int,
                                                                 timeout: float) -> None:
    m = make()
    victim = NOT_MINE[0]
    watchers = monitors_of(victim, RING, CFG.monitors)
    sent: list[Send] = []
    for i, w in enumerate(watchers[:accusers]):
        sent += m.receive(hdr(w), Updates((accusation(victim, w),)), 0.5 + i * 0.001)
    # each new accuser is passed on (other nodes' timers shrink with it too) ...
    passed = {r.accuser for s in bodies(sent, Updates)
              for r in s.body.records if r.name == victim}  # type: ignore[union-attr]
    assert passed == set(watchers[:accusers])
    # ... but a repeated one is not
    assert not bodies(m.receive(hdr("n3"), Updates((accusation(victim, watchers[0]),)), 0.51),
                      Updates)
    t = 0.5
    while status(m, victim) is Status.SUSPECT and t < 3.0:
        t = round(t + 0.01, 2)
        m.tick(t)
    assert status(m, victim) is Status.DEAD
    assert t == pytest.approx(0.5 + timeout, abs=0.011)


@pytest.mark.parametrize(("accusers", "watchers", "expected"), [
    (1, 3, CFG.suspicion_max),
    (3, 3, CFG.suspicion_min),
    (5, 3, CFG.suspicion_min),  # more than possible: still the minimum
    (1, 1, CFG.suspicion_min),  # the only monitor in good standing is the accuser
    (1, 0, CFG.suspicion_min),
    (0, 3, CFG.suspicion_max),
])
def test_suspicion_timeout(accusers: int, watchers: int, expected: float) -> None:
    assert CFG.suspicion_timeout(accusers, watchers) == pytest.approx(expected)


def test_a_monitor_that_is_suspected_too_is_not_waited_for() -> None:
    """A rack goes down: the suspect's other monitors are suspected as well, so the one
    healthy accuser is enough (minimum timeout), not a wait for confirmations that
    cannot come."""
    m = make()
    victim = NOT_MINE[0]
    w1, w2, w3 = monitors_of(victim, RING, CFG.monitors)
    others = [n for n in NAMES if n not in (ME, victim, w1, w2, w3)]
    m.receive(hdr(others[0]), Updates((accusation(w2, others[0]), accusation(w3, others[0]))),
              0.4)
    m.receive(hdr(w1), Updates((accusation(victim, w1),)), 0.5)
    t = 0.5
    while status(m, victim) is Status.SUSPECT and t < 3.0:
        t = round(t + 0.01, 2)
        m.tick(t)
    assert t == pytest.approx(0.5 + CFG.suspicion_min, abs=0.011)


def test_a_refutation_clears_the_suspicion() -> None:
    m = make()
    m.receive(hdr("n2"), Updates((accusation("n5", "n2"),)), 0.5)
    m.drain_changes()
    m.receive(hdr("n3"), Updates((Record("n5", ep("n5"), 2, Status.ALIVE, True),)), 0.6)
    assert status(m, "n5") is Status.ALIVE
    assert [c.reason for c in m.drain_changes()] == ["cleared"]
    for i in range(60, 300):
        m.tick(at(i))
    assert status(m, "n5") is Status.ALIVE
    assert m.stats.declared_dead == 0
    # the stale accusation (older incarnation) cannot bring the suspicion back
    m.receive(hdr("n2"), Updates((accusation("n5", "n4"),)), 3.1)
    assert status(m, "n5") is Status.ALIVE


def test_a_heartbeat_of_the_same_incarnation_does_not_clear_a_suspicion() -> None:
    """Only the suspect's refutation (a higher incarnation) clears it: a heartbeat sent
    before it knew may be old news."""
    m = make()
    m.receive(hdr("n2"), Updates((accusation("n5", "n2"),)), 0.5)
    out = m.receive(hdr("n5"), Heartbeat(1, True, m.table.digest()), 0.55)
    assert status(m, "n5") is Status.SUSPECT
    # ... but the suspect is shown our table, where it reads the accusation
    assert any(accusation("n5", "n2") in s.body.records  # type: ignore[union-attr]
               for s in bodies(out, Sync) if s.to == "n5")


def test_no_death_while_our_own_loop_is_late() -> None:
    """A suspicion runs out while our loop is late: the refutation may be queued unread
    behind the lag, so the verdict waits for one more probe window."""
    m = make(names=["n0", "n1", "n2"])
    m.receive(hdr("n2"), Updates((accusation("n1", "n2"),)), 0.5)
    due = 0.5 + CFG.suspicion_timeout(1, 2)  # n1's monitors: n0 and n2
    late_at = round(due - 0.02, 2)
    t = 0.5
    while t < due + 1.0 and status(m, "n1") is Status.SUSPECT:
        t = round(t + 0.01, 2)
        if round(t * 100) % 5 == 0:  # nobody is silent: n0 accuses no one itself
            for n in ("n1", "n2"):
                m.receive(hdr(n), Heartbeat(1, True, m.table.digest()), t)
        m.tick(t, 0.2 if t == late_at else 0.0)
    assert status(m, "n1") is Status.DEAD
    assert t >= late_at + CFG.probe_timeout


def test_no_accusation_without_a_nack() -> None:
    """Nobody answered: our own network may be the broken one."""
    m = make()
    p = Probed(m)
    assert _run_probe(p, nack=False, until=100) == Verdict(None, None)
    assert status(m, p.victim) is Status.ALIVE
    assert m.stats.convictions_suppressed >= 2
    assert len(p.pings) >= 3  # probed again after each suppressed round
    assert m.stats.suspected == m.stats.declared_dead == 0


def test_a_nack_for_another_probe_does_not_count() -> None:
    m = make()
    p = Probed(m)
    deadline = None
    for i in range(100):
        p.tick(i)
        if deadline is None and p.pings:
            t0, pid = p.pings[0]
            deadline = t0 + CFG.probe_timeout
            p.send(m.monitors()[0], Nack(pid + 1, p.victim), i)
            p.send(m.monitors()[0], Nack(pid, "n-other"), i)
        if deadline is not None and at(i) > deadline + 0.02:
            break
    assert status(m, p.victim) is Status.ALIVE
    assert m.stats.convictions_suppressed == 1


@pytest.mark.parametrize("proof", ["ack", "heartbeat", "relayed-ack"])
def test_any_sign_of_life_cancels_the_probe(proof: str) -> None:
    m = make()
    p = Probed(m)
    for i in range(60):
        p.tick(i)
        if len(p.pings) == 1 and at(i) == p.pings[0][0] + 0.02:
            _, pid = p.pings[0]
            helper = next(s.to for _, s in p.ping_reqs)
            p.send(helper, Nack(pid, p.victim), i)  # one helper failed ...
            if proof == "ack":  # ... but the direct ping got through
                p.send(p.victim, Ack(pid, p.victim), i)
            elif proof == "heartbeat":
                p.send(p.victim, Heartbeat(1, True, m.table.digest()), i)
            else:  # another helper reached it
                p.send(helper, Ack(pid, p.victim), i)
    assert status(m, p.victim) is Status.ALIVE
    assert m.stats.suspected == m.stats.declared_dead == 0


def test_two_node_cluster_convicts_without_helpers() -> None:
    """With no other monitor to confirm, the accusation needs no confirmation."""
    m = make(names=["n0", "n1"])
    p = Probed(m, "n1")
    suspected, declared = _run_probe(p, nack=False)
    assert not p.ping_reqs
    assert suspected == pytest.approx(p.pings[0][0] + CFG.probe_timeout, abs=0.011)
    assert declared == pytest.approx(suspected + CFG.suspicion_min, abs=0.011)


def test_no_accusation_while_our_own_loop_is_late() -> None:
    m = make()
    p = Probed(m)
    # the loop reports 200 ms of lag inside the probe window: the accusation due at the
    # probe deadline is held back for one more probe window
    late = round(CFG.suspect_after + 0.1, 2)
    suspected, _ = _run_probe(p, nack=True, nack_all=True, until=200,
                              lag_at={int(late * 100): 0.2})
    assert m.stats.convictions_suppressed >= 1
    assert suspected is not None
    guard_until = late + CFG.probe_timeout  # one more probe window after a late wake
    assert suspected >= guard_until
    assert suspected <= guard_until + CFG.suspect_after + CFG.probe_timeout + 0.02


def test_lag_at_the_guard_is_tolerated() -> None:
    m = make()
    p = Probed(m)
    first_round = int((CFG.suspect_after + CFG.probe_timeout) * 100) + 3
    suspected, _ = _run_probe(p, nack=True, until=first_round, lag_at={20: CFG.lag_guard})
    assert suspected is not None
    assert m.stats.convictions_suppressed == 0


# -- refutation ---------------------------------------------------------------------
@pytest.mark.parametrize("via", ["updates", "sync"])
@pytest.mark.parametrize("verdict", [Status.SUSPECT, Status.DEAD, Status.LEFT])
def test_refutes_when_told_it_is_gone(via: str, verdict: Status) -> None:
    m = make()
    claim = Record(ME, ep(ME), 1, verdict, False, "n2" if verdict is Status.SUSPECT else "")
    body: Body = Updates((claim,)) if via == "updates" else Sync(0, True, (claim,))
    out = m.receive(hdr("n2"), body, 0.5)
    assert m.incarnation == 2
    mine = m.table.get(ME)
    assert mine is not None
    assert (mine.status, mine.incarnation) == (Status.ALIVE, 2)
    assert ME in m.view().alive
    assert m.stats.refutations == 1
    # to every member, not a fanout: one that missed it would let its timer run out
    pushed = {s.to for s in bodies(out, Updates) if mine in s.body.records}  # type: ignore[union-attr]
    assert pushed == set(NAMES) - {ME}
    # (after a mere suspicion nobody has taken our addresses: no need to re-claim them)
    assert [c.reason for c in m.drain_changes() if c.name == ME] == [
        "refutedSuspicion" if verdict is Status.SUSPECT else "refuted"]
    # the stale verdict again: nothing happens
    assert not bodies(m.receive(hdr("n3"), Updates((claim,)), 0.6), Updates)
    assert m.incarnation == 2


def test_a_verdict_that_overtook_our_refutation_makes_us_reclaim_our_addresses() -> None:
    """We refuted a suspicion, but some node's timer ran out before our refutation got
    there: its verdict (about our old incarnation) arrives after. That node may have
    taken our addresses, so the change says "refuted" (the speaker re-claims them),
    once however many copies arrive; our incarnation stays."""
    m = make()
    m.receive(hdr("n2"), Updates((Record(ME, ep(ME), 1, Status.SUSPECT, True, "n2"),)), 0.5)
    assert [c.reason for c in m.drain_changes()] == ["refutedSuspicion"]
    dead = Record(ME, ep(ME), 1, Status.DEAD, False)
    for t in (0.6, 0.61):
        m.receive(hdr("n3"), Updates((dead,)), t)
    assert [(c.name, c.reason) for c in m.drain_changes()] == [(ME, "refuted")]
    assert m.incarnation == 2
    assert m.stats.refutations == 1


def test_a_verdict_on_a_previous_process_is_not_ours_to_answer() -> None:
    m = Membership(ME, ep(ME), CFG, 0.0, random.Random(7), incarnation=5000)
    m.receive(hdr("n2"), Updates((Record(ME, ep(ME), 4000, Status.DEAD, False),)), 0.5)
    assert m.drain_changes() == []
    assert m.incarnation == 5000


def test_refutes_a_later_incarnation_of_itself() -> None:
    m = make()
    m.receive(hdr("n2"), Updates((Record(ME, ep(ME), 7, Status.ALIVE, False),)), 0.5)
    assert m.incarnation == 8
    m.receive(hdr("n2"), Updates((Record(ME, ep(ME), 8, Status.ALIVE, False),)), 0.6)
    assert m.incarnation == 8  # our own current record: nothing to refute
    assert m.stats.refutations == 1


def test_a_node_we_think_dead_is_shown_our_table() -> None:
    m = make()
    m.receive(hdr("n2"), Updates((Record("n5", ep("n5"), 1, Status.DEAD, False),)), 0.5)
    out = m.receive(hdr("n5"), Heartbeat(1, True, 0), 0.6)
    syncs = [s for s in bodies(out, Sync) if s.to == "n5"]
    assert syncs
    assert Record("n5", ep("n5"), 1, Status.DEAD, False) in syncs[0].body.records  # type: ignore[union-attr]
    # its refutation brings it back
    m.receive(hdr("n5"), Updates((Record("n5", ep("n5"), 2, Status.ALIVE, False),)), 0.61)
    assert "n5" in m.view().alive


# -- leave --------------------------------------------------------------------------
def test_leave_tells_every_member_directly() -> None:
    m = make()
    m.receive(hdr("n2"), Updates((Record("n7", ep("n7"), 1, Status.DEAD, False),)), 0.1)
    out = m.leave(0.5)
    left = Record(ME, ep(ME), 1, Status.LEFT, False)
    assert sorted(s.to for s in out) == sorted(n for n in NAMES if n not in (ME, "n7"))
    assert all(s.body == Updates((left,)) and s.endpoint == ep(s.to) for s in out)
    # a left node is silent from then on
    assert m.tick(0.6) == []
    assert m.tick(5.0) == []
    assert m.receive(hdr("n1"), Ping(1, ME), 0.7) == []


# -- readiness ----------------------------------------------------------------------
def _ready_time(m: Membership, until: int = 500) -> float | None:
    for i in range(until):
        m.tick(at(i))
        if m.ready:
            return at(i)
    return None


@pytest.mark.parametrize("names", [[ME], NAMES], ids=["alone", "nobody-ready"])
def test_cold_start_is_ready_after_join_wait(names: list[str]) -> None:
    m = make(names=names, ready=False)
    m.discovered()  # discovery listed the speakers it knows of (alone: none)
    assert not m.ready
    assert _ready_time(m) == CFG.join_wait
    mine = m.table.get(ME)
    assert mine is not None
    assert mine.ready
    assert ME in m.view().ready
    assert [c.reason for c in m.drain_changes() if c.name == ME] == ["ready"]


@pytest.mark.parametrize(("case", "seeds", "discovered", "alone_after_wait"), [
    ("discovery knows speakers we have not heard from", ("n1", "n2"), True, True),
    # e.g. the API answered 429/5xx to discovery's list: all it knows is that it
    # does not know; it waits for a peer's message (or the list), however long.
    ("discovery has not listed the speakers yet", (), False, False),
    ("discovery failed, but seeds came from elsewhere", ("n1",), False, False),
])
def test_a_new_node_that_hears_nobody_does_not_think_it_is_alone(
        case: str, seeds: tuple[str, ...], discovered: bool, alone_after_wait: bool) -> None:
    """A restarted speaker starved of CPU (or cut off) must not take every address."""
    m = Membership(ME, ep(ME), CFG, 0.0, random.Random(3))
    for name in seeds:
        m.seed(name, ep(name), 0.0)
    if discovered:
        m.discovered()
    assert _ready_time(m, until=int(CFG.alone_after / 0.01) - 1) is None, case
    assert not m.view().joined
    m.tick(CFG.alone_after)  # all it knows of may be gone for good: then it is alone
    assert m.view().joined is alone_after_wait, case
    m.tick(CFG.alone_after * 30)
    assert m.view().joined is alone_after_wait, case
    m.receive(hdr("n1"), Heartbeat(5, False, 0), CFG.alone_after * 30)
    m.tick(CFG.alone_after * 30 + 0.01)
    assert m.view().joined, "a peer's message is contact: the node joins"


def test_cold_start_announces_readiness() -> None:
    m = make(ready=False)
    m.discovered()
    for i in range(100):
        m.tick(at(i))
    out = m.tick(CFG.join_wait)
    mine = Record(ME, ep(ME), 1, Status.ALIVE, True)
    assert {s.to for s in bodies(out, Updates) if mine in s.body.records}  # type: ignore[union-attr]
    assert all(s.body.ready for s in bodies(out, Heartbeat))  # type: ignore[union-attr]


def test_hold_down_when_others_are_ready() -> None:
    m = Membership(ME, ep(ME), CFG, 0.0, random.Random(3))
    assert m.seed("n1", ep("n1"), 0.0)  # an unknown seed is sent our table
    m.receive(hdr("n1"), Heartbeat(5, True, 0), 0.05)
    assert m.view().ready == {"n1"}
    ready_at = None
    for i in range(500):
        if i % 5 == 0:  # n1 keeps heartbeating
            m.receive(hdr("n1"), Heartbeat(5, True, m.table.digest()), at(i))
        m.tick(at(i))
        if m.ready:
            ready_at = at(i)
            break
    assert ready_at == CFG.hold_down
    assert m.view().ready == {ME, "n1"}


def test_restarted_node_joins_alive_but_not_ready() -> None:
    """Joining an established cluster through one seed: alive at once, ready later."""
    m = Membership(ME, ep(ME), CFG, 10.0, random.Random(3), incarnation=2)
    m.seed("n1", ep("n1"), 10.0)
    recs = tuple(Record(n, ep(n), 1, Status.ALIVE, True) for n in NAMES if n != ME)
    m.receive(hdr("n1"), Sync(0, True, (*recs, Record(ME, ep(ME), 1, Status.DEAD, False))),
              10.01)
    assert m.incarnation == 2  # the DEAD verdict was about the previous life
    assert m.view().alive == set(NAMES)
    assert ME not in m.view().ready
    for i in range(1001, 1299):
        m.tick(at(i))
        assert not m.ready
    m.tick(10.0 + CFG.hold_down)
    assert m.ready

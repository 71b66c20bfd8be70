"""The membership state machine (pure: the caller supplies time and moves the bytes).

Failure detection (per node, O(k) messages):
  * every `heartbeat_interval` a node sends HEARTBEAT to its k ring successors
    (its monitors);
  * a monitor that has not heard from a subject for `suspect_after` probes it: a
    direct PING plus PING_REQ to helpers (SWIM), who PING it too and answer ACK or
    NACK;
  * if nothing proves the subject alive within `probe_timeout`, the monitor accuses
    it: SUSPECT, naming itself - but only if it is healthy itself (Lifeguard-style
    guard): its own loop was not late by more than `lag_guard`, and at least one helper
    answered (a NACK proves *our* network works; without it we may be the isolated one);
  * a suspect is still alive (it keeps its addresses). Every node that hears of the
    suspicion starts a timer that shrinks as independent accusers confirm it
    (Lifeguard's dynamic suspicion timeout) and declares it DEAD when it runs out;
  * a node that hears it is suspected (or declared DEAD) refutes with a higher
    incarnation, sent to every member so that no timer runs out on stale news.
Dissemination: each new fact is pushed once to `fanout` random members (infection
style, O(log n) rounds); a digest exchange with one random peer per `sync_interval`
(push-pull on mismatch) repairs anything missed. Dead members are re-contacted every
`dead_probe_interval`, which is how the two sides of a healed partition find each
other again.
Readiness (flap damping): a (re)started node joins ALIVE but not ready and becomes
ready after `hold_down`; the election prefers ready nodes, so a restarting speaker
moves its addresses once, not twice. A node that finds no ready member at all (cold
start of the whole cluster) is ready at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import NamedTuple

from metallb_speaker.membership.config import MembershipConfig
from metallb_speaker.membership.ring import monitors_of, ring_order, subjects_of
from metallb_speaker.membership.table import LIVE, MemberTable
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


class Send(NamedTuple):
    to: str
    endpoint: str
    body: Body


class Change(NamedTuple):
    """A change of our view of one member, for logs, metrics and the election."""

    name: str
    status: Status
    ready: bool
    incarnation: int
    reason: str  # "joined", "ready", "declared", "heard", "refuted", "left", ...


@dataclass(frozen=True)
class View:
    alive: frozenset[str]
    ready: frozenset[str]
    version: int
    joined: bool = True  # False until we have the cluster's state (or waited join_wait)


@dataclass
class _Probe:
    id: int
    target: str
    started: float
    deadline: float
    helpers: int
    nacks: int = 0


@dataclass
class _Suspicion:
    incarnation: int
    started: float
    accusers: set[str]
    # How many of the subject's monitors could confirm: only ever lowered (a monitor
    # that dies or is suspected too will not confirm, and its successor on the ring
    # starts with a grace period), so a correlated failure is not judged slower.
    watchers: int = 1 << 30


@dataclass
class _Relay:
    origin: str
    origin_endpoint: str
    origin_probe: int
    target: str
    deadline: float


@dataclass
class Stats:
    heartbeats_sent: int = 0
    messages_sent: int = 0
    probes_started: int = 0
    suspected: int = 0
    declared_dead: int = 0
    convictions_suppressed: int = 0
    refutations: int = 0
    syncs: int = 0
    by_type: dict[str, int] = field(default_factory=dict)


class Membership:
    def __init__(self, name: str, endpoint: str, config: MembershipConfig, now: float,
                 rng: random.Random | None = None, incarnation: int = 1) -> None:
        self.name = name
        self.endpoint = endpoint
        self.cfg = config
        self.rng = rng or random.Random()
        self.table = MemberTable()
        self.stats = Stats()
        self._started = now
        self._incarnation = incarnation
        self._ready = False
        self._joined = False
        self._established: set[str] = set()
        self._ready_at: float | None = None
        self._left = False
        self._seeds: dict[str, str] = {}
        self._discovered = False  # discovery listed the other speakers (maybe none)
        self._contact = False  # another speaker's message reached us
        self._heard: dict[str, float] = {}
        self._subject_since: dict[str, float] = {}
        self._probes: dict[str, _Probe] = {}
        self._suspicions: dict[str, _Suspicion] = {}
        self._refuted = False  # our refutation goes to every member, not a fanout
        # The latest incarnation of ours a DEAD/LEFT verdict was about (none of this
        # process's yet: older ones are about a previous process on this node).
        self._verdicts_seen = incarnation - 1
        self._relays: dict[int, _Relay] = {}
        self._next_probe_id = self.rng.randrange(1, 2**31)
        self._outbox: list[Record] = []
        self._changes: list[Change] = []
        self._lag_until = 0.0
        self._last_sync_to: dict[str, float] = {}
        self._next_hb = now
        self._next_sync = now + config.sync_interval * self.rng.random()
        self._next_dead_probe = now + config.dead_probe_interval * self.rng.random()
        self._next_expiry = now + 1.0
        self._ring_version = -1
        self._ring: list[str] = []
        self._monitors: list[str] = []
        self._subjects: list[str] = []
        self.table.apply(self._self_record(), now)

    # -- public API ---------------------------------------------------------------
    @property
    def incarnation(self) -> int:
        return self._incarnation

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def joined(self) -> bool:
        return self._joined

    def view(self) -> View:
        alive = frozenset(self.table.names())
        ready = frozenset(n for n in alive if (r := self.table.get(n)) is not None and r.ready)
        return View(alive, ready, self.table.version, self._joined)

    def monitors(self) -> list[str]:
        self._refresh_ring(self._last_now)
        return list(self._monitors)

    def subjects(self) -> list[str]:
        self._refresh_ring(self._last_now)
        return list(self._subjects)

    def drain_changes(self) -> list[Change]:
        out, self._changes = self._changes, []
        return out

    def seed(self, name: str, endpoint: str, now: float) -> list[Send]:
        """A peer found through discovery (Kubernetes Leases). Unknown or dead peers are
        sent our table: that is how a node joins, and how partitions heal."""
        if name == self.name:
            return []
        self._seeds[name] = endpoint
        rec = self.table.get(name)
        if rec is None or rec.status not in LIVE:
            return [self._sync_full(name, endpoint, now)]
        return []

    def forget_seed(self, name: str) -> None:
        self._seeds.pop(name, None)

    def discovered(self) -> None:
        """Discovery has listed every speaker it knows of (`seed` was called for each):
        with none, a new node may conclude it is the first one after `join_wait`."""
        self._discovered = True

    def receive(self, header: Header, body: Body, now: float) -> list[Send]:
        self._last_now = now
        sender = header.sender
        self._contact = self._contact or sender != self.name
        if sender == self.name or self._left:
            return []
        self._heard[sender] = now
        out: list[Send] = []
        probe = self._probes.get(sender)
        if probe is not None:  # any message from the suspect proves it alive
            del self._probes[sender]
        rec = self.table.get(sender)
        if rec is not None and rec.status is not Status.ALIVE and not isinstance(body, Sync):
            # It is running but we suspect it or think it is gone: show it our table so
            # it refutes.
            out += self._maybe_sync(sender, now)
        if isinstance(body, Heartbeat):
            out += self._on_heartbeat(sender, body, now)
        elif isinstance(body, Ping):
            out.append(self._send(sender, Ack(body.probe, self.name)))
        elif isinstance(body, Ack):
            out += self._on_ack(body, now)
        elif isinstance(body, PingReq):
            out += self._on_ping_req(sender, body, now)
        elif isinstance(body, Nack):
            p = self._probes.get(body.target)
            if p is not None and p.id == body.probe:
                p.nacks += 1
        elif isinstance(body, Updates):
            self._merge(body.records, now)
        elif isinstance(body, Sync):
            out += self._on_sync(sender, body, now)
        out += self._flush(now)
        return out

    def next_due(self, now: float) -> float:
        """When `tick` next has work (a heartbeat, a suspicion, a probe deadline, ...), so
        the caller can sleep until then instead of polling."""
        times = [self._next_hb, self._next_sync, self._next_dead_probe, self._next_expiry]
        for s in self._subjects:
            if s not in self._probes:
                times.append(max(self._heard.get(s, 0.0), self._subject_since.get(s, 0.0))
                             + self.cfg.suspect_after)
        times += [p.deadline for p in self._probes.values()]
        if self._suspicions:
            times += self._suspicion_deadlines(now).values()
        times += [r.deadline for r in self._relays.values()]
        if not self._ready:
            if self._ready_at is not None:
                times.append(self._ready_at)
            elif now < self._started + self.cfg.join_wait:
                times.append(self._started + self.cfg.join_wait)
            else:
                times.append(self._started + self.cfg.alone_after)
        if self._outbox:
            times.append(now)
        return min(times)

    def tick(self, now: float, lag: float = 0.0) -> list[Send]:
        """Run timers. `lag` is how late the caller's loop woke up for this tick."""
        self._last_now = now
        if self._left:
            return []
        if lag > self.cfg.lag_guard:
            # We were late (stalled or starved): answers to our probes may have been
            # delayed by us, not by the suspect. Convict no one for one more probe window
            # (the socket is drained before timers run, so that is enough); a loop that
            # keeps being late keeps extending it.
            self._lag_until = now + self.cfg.probe_timeout
        out: list[Send] = []
        self._update_readiness(now)
        self._refresh_ring(now)
        if now >= self._next_hb:
            hb = Heartbeat(self._incarnation, self._ready, self.table.digest())
            for m in self._monitors:
                out.append(self._send(m, hb))
                self.stats.heartbeats_sent += 1
            self._next_hb += self.cfg.heartbeat_interval
            if self._next_hb < now:
                self._next_hb = now + self.cfg.heartbeat_interval
        out += self._detect(now)
        self._expire_suspicions(now)
        out += self._expire_relays(now)
        if now >= self._next_sync:
            self._next_sync = now + self.cfg.sync_interval
            peers = [n for n in self.table.names() if n != self.name]
            if peers:
                peer = self.rng.choice(peers)
                out.append(self._send(peer, Sync(self.table.digest(), False)))
                self.stats.syncs += 1
        if now >= self._next_dead_probe:
            self._next_dead_probe = now + self.cfg.dead_probe_interval
            out += self._probe_the_dead(now)
        if now >= self._next_expiry:  # O(n): once a second, not every tick
            self._next_expiry = now + 1.0
            for name in self.table.expired(now, self.cfg.left_retention,
                                           self.cfg.dead_retention):
                self.table.remove(name)
        out += self._flush(now)
        return out

    def leave(self, now: float) -> list[Send]:
        """Graceful shutdown: tell everyone directly, so our addresses move at once."""
        self._last_now = now
        rec = Record(self.name, self.endpoint, self._incarnation, Status.LEFT, False)
        self.table.apply(rec, now)
        self._left = True
        return [self._send(n, Updates((rec,))) for n in self.table.names() if n != self.name]

    # -- internals ----------------------------------------------------------------
    _last_now: float = 0.0

    def _self_record(self) -> Record:
        return Record(self.name, self.endpoint, self._incarnation, Status.ALIVE, self._ready)

    def _endpoint(self, name: str) -> str:
        rec = self.table.get(name)
        return rec.endpoint if rec is not None else self._seeds.get(name, "")

    def _send(self, to: str, body: Body, endpoint: str | None = None) -> Send:
        self.stats.messages_sent += 1
        kind = type(body).__name__
        self.stats.by_type[kind] = self.stats.by_type.get(kind, 0) + 1
        return Send(to, endpoint or self._endpoint(to), body)

    def _record_change(self, rec: Record, reason: str) -> None:
        self._changes.append(Change(rec.name, rec.status, rec.ready, rec.incarnation, reason))

    def _apply(self, rec: Record, now: float, reason: str) -> bool:
        first_sight = rec.name not in self.table
        if not self.table.apply(rec, now):
            return False
        if first_sight and rec.status is Status.ALIVE and rec.ready:
            # Ready before we ever saw it: an established member we must not take
            # addresses from. A member that turns ready later formed the cluster with
            # us (cold start), and does not put us on hold-down.
            self._established.add(rec.name)
        self._outbox.append(rec)
        self._record_change(rec, reason)
        if rec.status is Status.SUSPECT:
            self._suspicions[rec.name] = _Suspicion(rec.incarnation, now, {rec.accuser})
        else:
            self._suspicions.pop(rec.name, None)
        if rec.status is Status.ALIVE:
            self._heard.setdefault(rec.name, now)
        elif rec.status is not Status.SUSPECT:  # a suspect may still answer our probe
            self._probes.pop(rec.name, None)
        return True

    def _reason(self, rec: Record) -> str:
        """Why a record changes our view (logged, and what the benchmarks look for)."""
        before = self.table.get(rec.name)
        if rec.status is not Status.ALIVE:
            return {Status.SUSPECT: "suspected", Status.DEAD: "declared"}.get(rec.status,
                                                                            "left")
        if before is None or before.status not in LIVE:
            return "joined"
        if before.status is Status.SUSPECT:
            return "cleared"  # it refuted the suspicion
        return "ready" if rec.ready and not before.ready else "heard"

    def _confirm(self, rec: Record) -> bool:
        """A SUSPECT record for a suspicion we already hold (same incarnation) is a
        confirmation: a new accuser shortens our timer and is passed on, since other
        nodes' timers shrink with it too. True if it was one."""
        s = self._suspicions.get(rec.name)
        if s is None or s.incarnation != rec.incarnation:
            return False
        if rec.accuser not in s.accusers:
            s.accusers.add(rec.accuser)
            self._outbox.append(rec)
        return True

    def _merge(self, records: tuple[Record, ...], now: float) -> None:
        for rec in records:
            if rec.name == self.name:
                self._about_me(rec, now)
            elif rec.status is not Status.SUSPECT or not self._confirm(rec):
                self._apply(rec, now, self._reason(rec))

    def _about_me(self, rec: Record, now: float) -> None:
        if rec.status in (Status.DEAD, Status.LEFT) and rec.incarnation > self._verdicts_seen:
            self._verdicts_seen = rec.incarnation
            if rec.incarnation < self._incarnation:
                # A verdict on a suspicion we had already refuted (the timer ran out
                # somewhere before our refutation got there): that node may have taken
                # our addresses, so the speaker must claim them again.
                self._record_change(self._self_record(), "refuted")
                return
        if rec.incarnation < self._incarnation:
            return
        if rec.status is Status.ALIVE and rec.incarnation == self._incarnation:
            return
        # Someone suspects us, thinks we are dead, or knows a later incarnation of us:
        # refute, to everyone (a member that misses it would declare us dead).
        self._incarnation = rec.incarnation + 1
        self.stats.refutations += 1
        mine = self._self_record()
        self.table.apply(mine, now)
        self._outbox.append(mine)
        self._refuted = True
        # Refuting a suspicion in time means nobody took our addresses: the speaker
        # only re-claims them after a verdict (or news of a later self).
        self._record_change(mine, "refuted" if rec.status is not Status.SUSPECT
                            else "refutedSuspicion")

    def _update_readiness(self, now: float) -> None:
        if not self._joined:
            # In contact with the others (anti-entropy completes our table), or nobody
            # to hear from (the first or only speaker); but a new node that has heard
            # no one it knows of waits: it may be starved, not alone. Until discovery
            # has listed the speakers (the API may be failing) it never concludes it
            # is alone: that would announce every address beside their owners.
            waited = now - self._started
            nobody_known = self._discovered and not self._seeds
            if (waited >= self.cfg.join_wait and (self._contact or nobody_known)) or \
                    (waited >= self.cfg.alone_after and self._discovered):
                self._joined = True
        if self._ready:
            return
        if self._ready_at is None and self._joined:
            others_ready = any(
                r.ready for r in self.table.records()
                if r.name in self._established and r.status in LIVE)
            if others_ready:  # established members have the addresses: hold down
                self._ready_at = self._started + self.cfg.hold_down
            elif now - self._started >= self.cfg.join_wait:
                self._ready_at = now  # cold start: nobody to take addresses from
        if self._ready_at is not None and now >= self._ready_at:
            self._ready = True
            mine = self._self_record()
            self.table.apply(mine, now)
            self._outbox.append(mine)
            self._record_change(mine, "ready")

    def _refresh_ring(self, now: float) -> None:
        if self._ring_version == self.table.version:
            return
        self._ring_version = self.table.version
        self._ring = ring = ring_order(self.table.names())
        k = self.cfg.monitors
        self._monitors = monitors_of(self.name, ring, k)
        subjects = subjects_of(self.name, ring, k)
        for s in subjects:
            if s not in self._subject_since:
                # A new subject gets a grace period: it may not know yet that we watch it.
                self._subject_since[s] = now
        for s in list(self._subject_since):
            if s not in subjects:
                del self._subject_since[s]
                self._probes.pop(s, None)
        self._subjects = subjects

    def _silence(self, name: str, now: float) -> float:
        since = max(self._heard.get(name, 0.0), self._subject_since.get(name, 0.0))
        return now - since

    def _detect(self, now: float) -> list[Send]:
        out: list[Send] = []
        for s in self._subjects:
            if s in self._probes or self._silence(s, now) <= self.cfg.suspect_after:
                continue
            out += self._start_probe(s, now)
        for target, p in list(self._probes.items()):
            if now < p.deadline:
                continue
            del self._probes[target]
            if self._heard.get(target, 0.0) >= p.started:
                continue
            rec = self.table.get(target)
            if rec is None or rec.status not in LIVE:
                continue
            healthy = now >= self._lag_until and (p.helpers == 0 or p.nacks > 0)
            if not healthy:
                # We may be the sick one (stalled loop, or our own link is down): do not
                # accuse; probe again next round.
                self.stats.convictions_suppressed += 1
                continue
            accusation = Record(rec.name, rec.endpoint, rec.incarnation, Status.SUSPECT,
                                rec.ready, self.name)
            self.stats.suspected += 1
            if not self._confirm(accusation):
                self._apply(accusation, now, "suspected")
            out.append(self._send(target, Updates((accusation,))))  # so it can refute
        return out

    def _suspicion_deadlines(self, now: float) -> dict[str, float]:
        self._refresh_ring(now)
        out = {}
        for name, s in self._suspicions.items():
            watchers = [m for m in monitors_of(name, self._ring, self.cfg.monitors)
                        if m not in self._suspicions]
            s.watchers = min(s.watchers, len(watchers))
            out[name] = s.started + self.cfg.suspicion_timeout(len(s.accusers), s.watchers)
        return out

    def _expire_suspicions(self, now: float) -> None:
        if not self._suspicions or now < self._lag_until:
            return  # a late loop may not have read the refutation yet: wait
        for name, deadline in self._suspicion_deadlines(now).items():
            if now < deadline:
                continue
            del self._suspicions[name]
            rec = self.table.get(name)
            if rec is None or rec.status is not Status.SUSPECT:
                continue
            self.stats.declared_dead += 1
            self._apply(Record(name, rec.endpoint, rec.incarnation, Status.DEAD, False), now,
                        "declared")

    def _start_probe(self, target: str, now: float) -> list[Send]:
        self._next_probe_id = (self._next_probe_id + 1) % 2**32
        pid = self._next_probe_id
        self.stats.probes_started += 1
        out = [self._send(target, Ping(pid, target))]
        self._refresh_ring(now)
        ring = self._ring
        # Never ask a node we suspect ourselves: in a correlated failure (a rack going
        # down) the target's other monitors may be dead too, and with no helper able
        # to NACK the guard below would suppress the verdict for a whole round.
        suspects = (self.name, target, *self._probes, *self._suspicions)
        helpers = [m for m in monitors_of(target, ring, self.cfg.monitors)
                   if m not in suspects]
        others = [n for n in self.table.names() if n not in (*suspects, *helpers)]
        self.rng.shuffle(others)
        helpers = (helpers + others)[: self.cfg.indirect_probes]
        endpoint = self._endpoint(target)
        for h in helpers:
            out.append(self._send(h, PingReq(pid, target, endpoint)))
        self._probes[target] = _Probe(pid, target, now, now + self.cfg.probe_timeout,
                                      len(helpers))
        return out

    def _on_heartbeat(self, sender: str, hb: Heartbeat, now: float) -> list[Send]:
        rec = self.table.get(sender)
        endpoint = rec.endpoint if rec is not None else self._seeds.get(sender, "")
        if endpoint:
            alive = Record(sender, endpoint, hb.incarnation, Status.ALIVE, hb.ready)
            self._apply(alive, now, self._reason(alive))
        if hb.digest != self.table.digest():
            return self._maybe_sync(sender, now)
        return []

    def _maybe_sync(self, peer: str, now: float) -> list[Send]:
        """Push our full table to a peer, at most once per half sync interval."""
        if now - self._last_sync_to.get(peer, -1e9) < self.cfg.sync_interval / 2:
            return []
        endpoint = self._endpoint(peer)
        if not endpoint:
            return []
        return [self._sync_full(peer, endpoint, now)]

    def _sync_full(self, peer: str, endpoint: str, now: float) -> Send:
        self._last_sync_to[peer] = now
        self.stats.syncs += 1
        return self._send(peer, Sync(self.table.digest(), True, tuple(self.table.records())),
                          endpoint)

    def _on_sync(self, sender: str, body: Sync, now: float) -> list[Send]:
        if body.full:
            self._merge(body.records, now)
            self._joined = True
        if body.digest != self.table.digest():
            return self._maybe_sync(sender, now)
        return []

    def _on_ack(self, ack: Ack, now: float) -> list[Send]:
        self._heard[ack.target] = now
        p = self._probes.get(ack.target)
        if p is not None and p.id == ack.probe:
            del self._probes[ack.target]
        relay = self._relays.pop(ack.probe, None)
        if relay is not None:
            return [self._send(relay.origin, Ack(relay.origin_probe, relay.target),
                               relay.origin_endpoint)]
        return []

    def _on_ping_req(self, sender: str, req: PingReq, now: float) -> list[Send]:
        self._next_probe_id = (self._next_probe_id + 1) % 2**32
        pid = self._next_probe_id
        self._relays[pid] = _Relay(sender, self._endpoint(sender), req.probe, req.target,
                                   now + self.cfg.probe_timeout * 0.7)
        return [self._send(req.target, Ping(pid, req.target),
                           self._endpoint(req.target) or req.endpoint)]

    def _expire_relays(self, now: float) -> list[Send]:
        out = []
        for pid, r in list(self._relays.items()):
            if now >= r.deadline:
                del self._relays[pid]
                out.append(self._send(r.origin, Nack(r.origin_probe, r.target),
                                      r.origin_endpoint))
        return out

    def _probe_the_dead(self, now: float) -> list[Send]:
        """Re-contact one dead or discovered-but-unknown peer: heals partitions."""
        gone = [n for n in self.table.names((Status.DEAD,))]
        gone += [n for n in self._seeds if n not in self.table]
        if not gone:
            return []
        peer = self.rng.choice(gone)
        endpoint = self._endpoint(peer)
        return [self._sync_full(peer, endpoint, now)] if endpoint else []

    def _flush(self, now: float) -> list[Send]:
        """Push new facts to `fanout` random live members (each fact once)."""
        if not self._outbox:
            return []
        records, self._outbox = tuple(self._outbox), []
        peers = [n for n in self.table.names() if n != self.name]
        fanout = self.cfg.fanout_for(len(peers) + 1)
        if self._refuted:
            self._refuted, fanout = False, len(peers)
        targets = peers if len(peers) <= fanout else self.rng.sample(peers, fanout)
        out = [self._send(p, Updates(records)) for p in targets]
        # A node suspected, declared dead or left is told directly too (it may be alive
        # and refute).
        for rec in records:
            if rec.status is not Status.ALIVE and rec.name != self.name and \
                    rec.name not in targets and rec.endpoint:
                out.append(self._send(rec.name, Updates((rec,)), rec.endpoint))
        return out

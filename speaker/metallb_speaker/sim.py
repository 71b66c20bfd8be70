"""Deterministic simulator: N in-process speakers running the real `Membership` code on
a simulated clock and network (latency, loss, partitions, crashes, stalls, CPU-starved
nodes). Every message goes through the real wire format (pack/unpack), so byte counts
are real too. Used by unit tests and by bench/membership.

Same seed, same run: time is a float advanced by a heap of events, randomness comes
from one `random.Random(seed)`.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from metallb_speaker.membership import Membership, MembershipConfig
from metallb_speaker.membership.replay import ReplayGuard
from metallb_speaker.wire.gossip import Header, Message, Record, Status, pack, unpack


@dataclass(frozen=True)
class NetConfig:
    latency: float = 0.0003  # one-way, LAN
    jitter: float = 0.0002
    loss: float = 0.0
    tick: float = 0.01  # how often a speaker's loop runs its timers
    tick_jitter: float = 0.002


@dataclass
class SimNode:
    name: str
    m: Membership
    up: bool = True  # process exists
    link: bool = True
    stalled_until: float = 0.0
    group: int = 0
    backlog: list[tuple[Header, bytes]] = field(default_factory=list)
    guard: ReplayGuard = field(default_factory=ReplayGuard)
    boot: int = 0
    seq: int = 0
    last_tick: float = 0.0
    slow: float = 0.0  # extra seconds a starved node needs per tick (CPU quota)
    epoch: int = 0  # bumps on restart so stale timers of a previous life do nothing


@dataclass
class Observation:
    observer: str
    subject: str
    status: Status
    ready: bool
    at: float
    reason: str


class Simulator:
    def __init__(self, n: int, config: MembershipConfig | None = None,
                 net: NetConfig | None = None, seed: int = 1, preconverged: bool = True,
                 names: Iterable[str] | None = None) -> None:
        self.cfg = config or MembershipConfig()
        self.net = net or NetConfig()
        self.rng = random.Random(seed)
        self.now = 0.0
        self._heap: list[tuple[float, int, str, tuple[Any, Any]]] = []
        self._seq = 0
        self.nodes: dict[str, SimNode] = {}
        self.observations: list[Observation] = []
        self.messages = 0
        self.bytes = 0
        self.sent_by: dict[str, int] = {}
        names = list(names or (f"node-{i:04d}" for i in range(n)))
        for name in names:
            self._add(name, preconverged=preconverged)
        if preconverged:
            records = [Record(nm, nm, 1, Status.ALIVE, True) for nm in names]
            for node in self.nodes.values():
                for r in records:
                    node.m.table.apply(r, 0.0)
                node.m._ready = True
                node.m._joined = True
                node.m.table.apply(Record(node.name, node.name, 1, Status.ALIVE, True), 0.0)
        else:
            for node in self.nodes.values():
                for other in names:
                    self._dispatch(node, node.m.seed(other, other, 0.0))

    # -- setup --------------------------------------------------------------------
    def _add(self, name: str, preconverged: bool, incarnation: int = 1) -> SimNode:
        m = Membership(name, name, self.cfg, self.now, random.Random(self.rng.random()),
                       incarnation=incarnation)
        prev = self.nodes.get(name)
        node = SimNode(name, m, boot=(prev.boot + 1 if prev else 1),
                       epoch=(prev.epoch + 1 if prev else 0))
        if prev is not None:
            node.group, node.link = prev.group, prev.link
        self.nodes[name] = node
        self._schedule(self.now + self.rng.random() * self.net.tick, "tick", (name, node.epoch))
        return node

    def _schedule(self, at: float, kind: str, payload: tuple[Any, Any]) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, kind, payload))

    # -- fault injection ----------------------------------------------------------
    def kill(self, name: str) -> None:
        self.nodes[name].up = False

    def stall(self, name: str, seconds: float) -> None:
        """SIGSTOP / a blocked event loop: nothing runs, packets queue up."""
        self.nodes[name].stalled_until = self.now + seconds

    def starve(self, name: str, seconds_per_tick: float) -> None:
        """A CPU quota: each loop iteration finishes `seconds_per_tick` late."""
        self.nodes[name].slow = seconds_per_tick

    def link_down(self, name: str) -> None:
        self.nodes[name].link = False

    def link_up(self, name: str) -> None:
        self.nodes[name].link = True

    def partition(self, *groups: Iterable[str]) -> None:
        for i, g in enumerate(groups, start=1):
            for name in g:
                self.nodes[name].group = i

    def heal(self) -> None:
        for node in self.nodes.values():
            node.group = 0

    def leave(self, name: str) -> None:
        node = self.nodes[name]
        self._dispatch(node, node.m.leave(self.now))
        node.up = False

    def restart(self, name: str) -> None:
        """A new process on the same node: new boot, joins via discovery seeds."""
        old = self.nodes[name]
        node = self._add(name, preconverged=False, incarnation=old.m.incarnation + 1)
        for other in self.nodes:
            self._dispatch(node, node.m.seed(other, other, self.now))

    # -- running ------------------------------------------------------------------
    def run_until(self, t: float) -> None:
        while self._heap and self._heap[0][0] <= t:
            at, _, kind, payload = heapq.heappop(self._heap)
            self.now = at
            if kind == "tick":
                self._tick(str(payload[0]), int(payload[1]))
            else:
                self._deliver(str(payload[0]), bytes(payload[1]))
        self.now = t

    def run_for(self, seconds: float) -> None:
        self.run_until(self.now + seconds)

    def _reachable(self, a: SimNode, b: SimNode) -> bool:
        return a.link and b.link and a.group == b.group

    def _dispatch(self, src: SimNode, sends: list) -> None:  # type: ignore[type-arg]
        for s in sends:
            src.seq += 1
            header = Header(src.name, src.boot, src.seq, int(self.now * 1000))
            data = pack(Message(header, s.body))
            self.messages += 1
            self.bytes += len(data)
            self.sent_by[src.name] = self.sent_by.get(src.name, 0) + 1
            dst = self.nodes.get(s.to)
            if dst is None or not self._reachable(src, dst) or self.rng.random() < self.net.loss:
                continue
            delay = self.net.latency + self.rng.random() * self.net.jitter
            self._schedule(self.now + delay, "deliver", (s.to, data))

    def _deliver(self, name: str, data: bytes) -> None:
        node = self.nodes[name]
        if not node.up:
            return
        msg = unpack(data)
        assert isinstance(msg, Message), msg
        if not self._reachable(self.nodes[msg.header.sender], node):
            return  # the partition started while it was in flight
        if self.now < node.stalled_until:
            node.backlog.append((msg.header, data))
            return
        self._receive(node, msg)

    def _receive(self, node: SimNode, msg: Message) -> None:
        if node.guard.check(msg.header) is not None:
            return
        self._dispatch(node, node.m.receive(msg.header, msg.body, self.now))
        self._observe(node)

    def _tick(self, name: str, epoch: int) -> None:
        node = self.nodes[name]
        if not node.up or node.epoch != epoch:
            return
        if self.now < node.stalled_until:
            self._schedule(node.stalled_until, "tick", (name, epoch))
            return
        for header, data in node.backlog:  # a woken loop first drains its socket
            msg = unpack(data)
            assert isinstance(msg, Message)
            del header
            self._receive(node, msg)
        node.backlog.clear()
        expected = node.last_tick + self.net.tick
        lag = max(0.0, self.now - expected) if node.last_tick else 0.0
        node.last_tick = self.now
        self._dispatch(node, node.m.tick(self.now, lag))
        self._observe(node)
        nxt = self.now + self.net.tick + (self.rng.random() - 0.5) * self.net.tick_jitter
        if node.slow:
            nxt += node.slow * self.rng.random() * 2
        self._schedule(nxt, "tick", (name, epoch))

    def _observe(self, node: SimNode) -> None:
        for c in node.m.drain_changes():
            self.observations.append(Observation(node.name, c.name, c.status, c.ready,
                                                 self.now, c.reason))

    # -- queries ------------------------------------------------------------------
    def live(self) -> list[str]:
        return [n for n, node in self.nodes.items() if node.up]

    def views_agree(self, nodes: Iterable[str] | None = None) -> bool:
        names = list(nodes or self.live())
        views = {frozenset(self.nodes[n].m.view().alive) for n in names}
        return len(views) == 1

    def declared(self, subject: str, status: Status = Status.DEAD,
                 since: float = 0.0) -> dict[str, float]:
        """observer -> first time it saw `subject` reach `status` (after `since`)."""
        out: dict[str, float] = {}
        for o in self.observations:
            if o.subject == subject and o.status is status and o.at >= since \
                    and o.observer not in out:
                out[o.observer] = o.at
        return out

    def false_declarations(self, since: float = 0.0) -> list[Observation]:
        """DEAD verdicts about nodes whose process was up and reachable."""
        return [o for o in self.observations if o.status is Status.DEAD and o.at >= since
                and o.reason == "declared" and self.nodes[o.subject].up
                and self.nodes[o.subject].link]

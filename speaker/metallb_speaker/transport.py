"""The gossip thread: pyzmq sockets around the pure `Membership` state machine.

It owns its own thread and a plain zmq poll loop (no asyncio, no Kubernetes): the
heartbeat path never waits behind slow API work on the main loop.

Security: CURVE keys are derived deterministically from the shared secret (the chart's
memberlist Secret): seed = sha256(label + secret) -> libsodium keypair (PyNaCl) ->
z85 for zmq. Every speaker serves with the server keypair and connects with the client
keypair; ZAP accepts only the derived client key. A speaker with another secret fails
the handshake and never delivers a byte (counted). Inside the encrypted channel every
message's (boot, seq) must move forward per sender, so a replay is dropped (counted).
"""

from __future__ import annotations

import hashlib
import logging
import math
import queue
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import zmq
import zmq.auth.thread
from nacl.public import PrivateKey
from zmq.utils import z85

from metallb_speaker.membership import Change, Membership, MembershipConfig, Send, View
from metallb_speaker.membership.replay import ReplayGuard
from metallb_speaker.wire.gossip import GossipDrop, Header, Message, pack, unpack

log = logging.getLogger("metallb.gossip")
ZAP_DOMAIN = "metallb"
MAX_PEER_SOCKETS = 256
_HANDSHAKE: dict[int, str] = {
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "handshake_failed_auth",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "handshake_failed_protocol",
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "handshake_failed",
}


@dataclass(frozen=True)
class CurveKeys:
    server_public: bytes
    server_secret: bytes
    client_public: bytes
    client_secret: bytes


def derive_keys(secret: bytes) -> CurveKeys:
    def pair(label: bytes) -> tuple[bytes, bytes]:
        seed = hashlib.sha256(b"metallb-py/gossip/" + label + b"\0" + secret).digest()
        key = PrivateKey.from_seed(seed)
        return z85.encode(bytes(key.public_key)), z85.encode(bytes(key))

    sp, ss = pair(b"server")
    cp, cs = pair(b"client")
    return CurveKeys(sp, ss, cp, cs)


@dataclass
class GossipCounters:
    """Read by the metrics collector from another thread: plain ints are fine (GIL)."""

    received: dict[str, int] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    send_dropped: int = 0
    loop_lag_max: float = 0.0

    def bump(self, table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1


class _ZapKeys:
    def __init__(self, allowed: bytes, counters: GossipCounters) -> None:
        self._allowed = allowed
        self._counters = counters

    def callback(self, domain: str, key: bytes) -> bool:
        if key == self._allowed:
            return True
        self._counters.bump(self._counters.rejected, "wrong_key")
        return False


OnView = Callable[[View, list[Change]], None]


class GossipThread(threading.Thread):
    def __init__(self, name: str, advertise: str, bind: str, port: int, secret: bytes,
                 config: MembershipConfig, on_view: OnView, tick: float = 0.05,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name="gossip", daemon=True)
        self.node = name
        self.endpoint = f"{advertise}:{port}"
        self._bind = f"tcp://{bind}:{port}"
        self._keys = derive_keys(secret)
        self._on_view = on_view
        self._tick = tick
        self._clock = clock
        self.counters = GossipCounters()
        self._commands: queue.Queue[tuple[str, ...]] = queue.Queue()
        self._boot = (int(time.time() * 1000) << 16) | random.getrandbits(16)
        self._seq = 0
        self._guard = ReplayGuard()
        self.membership = Membership(name, self.endpoint, config, clock(),
                                     incarnation=int(time.time() * 1000))
        self._peers: OrderedDict[str, tuple[str, zmq.Socket[bytes]]] = OrderedDict()
        self._view_key: tuple[int, bool] = (-1, False)
        self.bound = threading.Event()
        self.stopped = threading.Event()
        self.error: BaseException | None = None
        self._ctx: zmq.Context[zmq.Socket[bytes]]

    # -- commands from other threads ----------------------------------------------
    def seed(self, name: str, endpoint: str) -> None:
        self._commands.put(("seed", name, endpoint))

    def forget(self, name: str) -> None:
        self._commands.put(("forget", name))

    def discovered(self) -> None:
        """Discovery has seeded every speaker it knows of."""
        self._commands.put(("discovered",))

    def leave(self) -> None:
        self._commands.put(("leave",))

    def stop(self) -> None:
        self._commands.put(("stop",))

    # -- the loop -----------------------------------------------------------------
    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # surfaced to the main thread via .error
            self.error = exc
            log.exception("gossip thread died", extra={"event": "gossipDied"})
        finally:
            self.stopped.set()

    def _run(self) -> None:
        ctx = self._ctx = zmq.Context()
        auth = zmq.auth.thread.ThreadAuthenticator(ctx, log=logging.getLogger("metallb.zap"))
        auth.start()
        auth.configure_curve_callback(ZAP_DOMAIN, _ZapKeys(self._keys.client_public,
                                                           self.counters))
        router = ctx.socket(zmq.ROUTER)
        router.curve_server = True
        router.curve_publickey = self._keys.server_public
        router.curve_secretkey = self._keys.server_secret
        router.zap_domain = ZAP_DOMAIN.encode()
        router.linger = 0
        router.rcvhwm = 10000
        router.bind(self._bind)
        monitor = router.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        self.bound.set()
        log.info("gossip listening", extra={"event": "gossipListening", "node": self.node,
                                             "peer": self.endpoint})
        next_tick = self._clock()
        running = True
        leaving_until: float | None = None
        try:
            while running:
                timeout = max(0.0, next_tick - self._clock())
                # ceil: truncating sub-millisecond waits to 0 would spin the CPU.
                ready = dict(poller.poll(math.ceil(timeout * 1000)))
                if router in ready:
                    self._drain(router)
                if monitor in ready:
                    self._drain_monitor(monitor)
                running, leaving = self._commands_step()
                if leaving and leaving_until is None:
                    self._send_all(self.membership.leave(self._clock()))
                    leaving_until = self._clock() + 0.2  # let the LEFT frames go out
                if leaving_until is not None and self._clock() >= leaving_until:
                    running = False
                now = self._clock()
                if now >= next_tick and leaving_until is None:
                    lag = now - next_tick
                    self.counters.loop_lag_max = max(self.counters.loop_lag_max, lag)
                    self._send_all(self.membership.tick(now, lag))
                    # Sleep until the protocol has work, but at least every `tick` so our
                    # own lateness (the lag guard's input) is always measured.
                    due = self.membership.next_due(now)
                    next_tick = min(max(due, now + 0.001), now + self._tick)
                self._publish()
        finally:
            for _ep, sock in self._peers.values():
                sock.close(linger=100)
            router.disable_monitor()
            monitor.close(linger=0)
            router.close(linger=0)
            auth.stop()
            ctx.term()

    def _commands_step(self) -> tuple[bool, bool]:
        running, leaving = True, False
        while True:
            try:
                cmd = self._commands.get_nowait()
            except queue.Empty:
                return running, leaving
            now = self._clock()
            if cmd[0] == "seed":
                self._send_all(self.membership.seed(cmd[1], cmd[2], now))
            elif cmd[0] == "forget":
                self.membership.forget_seed(cmd[1])
            elif cmd[0] == "discovered":
                self.membership.discovered()
            elif cmd[0] == "leave":
                leaving = True
            elif cmd[0] == "stop":
                running = False

    def _drain(self, router: zmq.Socket[bytes]) -> None:
        """Read everything queued before running timers: after a stall, fresh evidence
        of life is processed before anyone is judged."""
        for _ in range(10000):
            try:
                frames = router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) != 2:
                self.counters.bump(self.counters.rejected, "framing")
                continue
            msg = unpack(frames[1])
            if isinstance(msg, GossipDrop):
                self.counters.bump(self.counters.rejected, str(msg))
                continue
            drop = self._guard.check(msg.header)
            if drop is not None:
                self.counters.bump(self.counters.rejected, str(drop))
                continue
            self.counters.bump(self.counters.received, type(msg.body).__name__)
            self._send_all(self.membership.receive(msg.header, msg.body, self._clock()))

    def _drain_monitor(self, monitor: zmq.Socket[bytes]) -> None:
        from zmq.utils.monitor import recv_monitor_message

        while True:
            try:
                ev = recv_monitor_message(monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            self.counters.bump(self.counters.rejected,
                               _HANDSHAKE.get(int(ev["event"]), "handshake"))

    def _socket_for(self, name: str, endpoint: str) -> zmq.Socket[bytes]:
        cached = self._peers.get(name)
        if cached is not None and cached[0] == endpoint:
            self._peers.move_to_end(name)
            return cached[1]
        if cached is not None:
            cached[1].close(linger=0)
        sock = self._ctx.socket(zmq.DEALER)
        sock.curve_serverkey = self._keys.server_public
        sock.curve_publickey = self._keys.client_public
        sock.curve_secretkey = self._keys.client_secret
        sock.immediate = True  # never queue for a peer we are not connected to
        sock.linger = 0
        sock.sndhwm = 256
        sock.reconnect_ivl = 100
        sock.reconnect_ivl_max = 1000
        sock.connect(f"tcp://{endpoint}")
        self._peers[name] = (endpoint, sock)
        while len(self._peers) > MAX_PEER_SOCKETS:
            _old, (_ep, old_sock) = self._peers.popitem(last=False)
            old_sock.close(linger=0)
        return sock

    def _send_all(self, sends: list[Send]) -> None:
        if not sends:
            return
        for s in sends:
            if not s.endpoint or s.to == self.node:
                continue
            self._seq += 1
            header = Header(self.node, self._boot, self._seq, int(time.time() * 1000))
            data = pack(Message(header, s.body))
            sock = self._socket_for(s.to, s.endpoint)
            try:
                sock.send(data, zmq.NOBLOCK)
                self.counters.bump(self.counters.sent, type(s.body).__name__)
            except zmq.Again:
                self.counters.send_dropped += 1

    def _publish(self) -> None:
        changes = self.membership.drain_changes()
        # Joining (the cluster's state arrived) changes no record but matters: a
        # restarted speaker must see who owns what during its hold-down.
        current = (self.membership.table.version, self.membership.joined)
        if not changes and current == self._view_key:
            return  # the common case, every loop iteration: nothing to build or send
        view = self.membership.view()
        self._view_key = (view.version, view.joined)
        for c in changes:
            log.info("member %s", c.reason, extra={
                "event": "memberChanged", "node": c.name, "reason": c.reason,
                "count": c.incarnation})
        self._on_view(view, changes)


"""The data plane thread: answers ARP/NDP for owned addresses, announces takeovers,
probes new addresses and watches for conflicts. Implements `announce.Announcer`.

One epoll loop in its own thread (the GIL is released while it waits), two filtered
AF_PACKET sockets per eligible interface (all ARP; NDP NS+NA). The hot path is
`recv -> arp_answer/ndp_answer -> send` on bytes; everything unusual (replies, NA,
conflicts) takes the slow path. Owned sets are replaced, never mutated in place.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from metallb_api.addresses import IP, Family
from metallb_speaker.dataplane import rawsock
from metallb_speaker.dataplane.policy import (
    ConflictEvent,
    ConflictTracker,
    IfaceInfo,
    OwnedAddress,
    Phase,
    announce_on,
    why_skip,
)
from metallb_speaker.wire import bpf
from metallb_speaker.wire.arp import (
    ArpPacket,
    arp_answer,
    arp_probe,
    gratuitous_arp_reply,
    gratuitous_arp_request,
    parse_arp,
)
from metallb_speaker.wire.ethernet import DropReason, format_mac
from metallb_speaker.wire.ndp import (
    NeighborAdvertisement,
    NeighborSolicitation,
    dad_probe,
    ndp_answer,
    parse_ndp,
    unsolicited_na,
)

log = logging.getLogger("metallb.dataplane")
SYS_NET = Path("/sys/class/net")
IFF_UP, IFF_LOOPBACK, IFF_NOARP = 0x1, 0x8, 0x80
RESCAN = 2.0
BATCH = 512
_GONE = {errno.ENETDOWN, errno.ENXIO, errno.ENODEV, errno.EBADF}
SO_RCVBUFFORCE = 33
RCVBUF = 4 << 20
BULK_ROUNDS = 50  # this many gratuitous rounds at once are logged


def scan_interfaces(root: Path = SYS_NET) -> list[IfaceInfo]:
    out = []
    for d in sorted(root.iterdir()):
        try:
            flags = int((d / "flags").read_text(), 16)
            oper = (d / "operstate").read_text().strip()
            mac_text = (d / "address").read_text().strip()
            mac = bytes.fromhex(mac_text.replace(":", "")) if mac_text else b""
        except (OSError, ValueError):
            continue
        out.append(IfaceInfo(
            name=d.name, up=bool(flags & IFF_UP) and oper in ("up", "unknown"),
            noarp=bool(flags & IFF_NOARP), loopback=bool(flags & IFF_LOOPBACK),
            has_master=(d / "master").exists(), mac=mac))
    return out


def _packed(ip: IP) -> bytes:
    return ip.value.to_bytes(4 if ip.family is Family.V4 else 16, "big")


@dataclass
class _Iface:
    name: str
    mac: bytes
    arp: rawsock.PacketSocket
    ndp: rawsock.PacketSocket
    groups: rawsock.SolicitedNodeGroups
    answer4: frozenset[bytes] = frozenset()  # answering now
    answer6: frozenset[bytes] = frozenset()
    watch4: frozenset[bytes] = frozenset()  # owned or probing: conflicts are watched
    watch6: frozenset[bytes] = frozenset()
    joined: set[bytes] = field(default_factory=set)

    def close(self) -> None:
        for closer in (self.arp.close, self.ndp.close, self.groups.close):
            with contextlib.suppress(OSError):
                closer()


@dataclass
class Counters:
    requests: dict[bytes, int] = field(default_factory=dict)
    responses: dict[bytes, int] = field(default_factory=dict)
    gratuitous: dict[bytes, int] = field(default_factory=dict)
    conflicts: dict[tuple[str, str], int] = field(default_factory=dict)
    drops: dict[str, int] = field(default_factory=dict)


class DataPlane(threading.Thread):
    def __init__(self, node: str, *, exclude: Iterable[str] = (),
                 conflict_mode: str = "defend",
                 on_conflict: Callable[[ConflictEvent], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sys_net: Path = SYS_NET) -> None:
        super().__init__(name="dataplane", daemon=True)
        self.node = node
        self.exclude = tuple(exclude)
        self.conflict_mode = conflict_mode
        self.on_conflict = on_conflict
        self.clock = clock
        self.sys_net = sys_net
        self.counters = Counters()
        self.known_macs: frozenset[str] = frozenset()  # other speakers' MACs
        self._lock = threading.Lock()
        # (owned, probe first, quiet takeovers) from the controller, applied by the thread
        self._desired: tuple[dict[IP, tuple[str, ...]], frozenset[IP], frozenset[IP]] | None \
            = ({}, frozenset(), frozenset())
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._stopping = False  # not _stop: threading.Thread has a _stop()
        self._ifaces: dict[str, _Iface] = {}
        self._fds: dict[int, tuple[_Iface, str]] = {}
        self._ep = select.epoll()
        self._ep.register(self._wake_r, select.EPOLLIN)
        self._owned: dict[tuple[IP, str], OwnedAddress] = {}
        self._want: dict[IP, tuple[str, ...]] = {}
        self._probe: frozenset[IP] = frozenset()
        self._conflicts = ConflictTracker()
        self._announcing: dict[IP, tuple[str, ...]] = {}
        self._next_scan = 0.0
        self._due = 0.0  # next timer (announcement, probe, conflict expiry)
        self._reannounce = False
        self._loud: frozenset[IP] = frozenset()  # quiet addresses to announce now
        self._quiet: frozenset[IP] = frozenset()
        self.eligible: list[str] = []
        self.error: BaseException | None = None

    # -- Announcer API (any thread) --------------------------------------------------
    def set_owned(self, owned: Mapping[IP, tuple[str, ...]],
                  probe: frozenset[IP] = frozenset(), quiet: frozenset[IP] = frozenset()
                  ) -> None:
        with self._lock:
            if self._desired is not None:
                # The thread has not applied the previous state yet: its one-time
                # requests (probe this new address, take that one over quietly) still
                # hold for addresses that remain owned.
                _, probe_before, quiet_before = self._desired
                probe |= probe_before & owned.keys()
                quiet |= quiet_before & owned.keys()
            self._desired = (dict(owned), probe, quiet)
        self._wake()

    def reannounce(self) -> None:
        self._reannounce = True
        self._wake()

    def announce(self, ips: frozenset[IP]) -> None:
        with self._lock:
            self._loud |= ips
        self._wake()

    def interfaces_for(self, ip: IP) -> tuple[str, ...]:
        """Where `ip` is (or, while probing, is about to be) announced."""
        with self._lock:
            desired = self._desired[0] if self._desired is not None else self._want
            wanted = desired.get(ip)
        if wanted is None:
            return ()
        return tuple(announce_on(self.eligible, wanted))

    def own_macs(self) -> list[str]:
        return sorted({format_mac(i.mac) for i in scan_interfaces(self.sys_net)
                       if why_skip(i, ()) is None})

    def close(self) -> None:
        self._stopping = True
        self._wake()
        if self.is_alive():
            self.join(timeout=3)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    # -- thread -------------------------------------------------------------------
    def run(self) -> None:
        try:
            while not self._stopping:
                now = self.clock()
                if now >= self._next_scan:
                    self._rescan(now)
                    self._next_scan = now + RESCAN
                timeout = max(0.0, min(self._due, self._next_scan) - self.clock())
                for fd, _ev in self._ep.poll(timeout):
                    if fd == self._wake_r:
                        with contextlib.suppress(BlockingIOError):
                            os.read(self._wake_r, 4096)
                        self._apply_desired()
                        continue
                    entry = self._fds.get(fd)
                    if entry is None:
                        continue
                    iface, kind = entry
                    try:
                        self._read(iface, kind)
                    except OSError as exc:
                        log.info("interface error", extra={
                            "event": "interfaceError", "interface": iface.name,
                            "error": str(exc)})
                        if exc.errno in _GONE and iface.name in self._ifaces:
                            # The link went away under us: rebuild once it is back.
                            self._drop_iface(iface.name, str(exc))
                            self._next_scan = 0.0
                now = self.clock()
                if now >= self._due:  # not on every wake-up: at 100k frames/s it adds up
                    self._timers(now)
                    self._due = self._next_deadline()
        except BaseException as exc:
            self.error = exc
            log.exception("data plane died", extra={"event": "dataplaneDied"})
        finally:
            for iface in self._ifaces.values():
                iface.close()
            self._ifaces.clear()
            self._ep.close()
            os.close(self._wake_r)
            os.close(self._wake_w)

    # -- interfaces -----------------------------------------------------------------
    def _rescan(self, now: float) -> None:
        infos = {i.name: i for i in scan_interfaces(self.sys_net)}
        named = {n for ifaces in self._want.values() for n in ifaces}
        eligible = []
        for info in infos.values():
            skip = why_skip(info, self.exclude)
            # An interface an L2Advertisement names explicitly is used despite the
            # default name patterns, but never when down/enslaved/NOARP.
            if skip is None or (skip.value == "excludedName" and info.name in named):
                eligible.append(info.name)
        for name in list(self._ifaces):
            iface = self._ifaces[name]
            current = infos.get(name)
            if name not in eligible or current is None or current.mac != iface.mac:
                self._drop_iface(name, "gone or ineligible")
        for name in eligible:
            if name not in self._ifaces:
                self._open_iface(name, infos[name].mac)
        if eligible != self.eligible:
            self.eligible = eligible
            self._reconcile(now)
        drops = self.counters.drops
        for iface in self._ifaces.values():
            with contextlib.suppress(OSError):
                drops[iface.name] = iface.arp.stats().drops + iface.ndp.stats().drops

    def _open_iface(self, name: str, mac: bytes) -> None:
        try:
            arp = rawsock.open_packet_socket(name, bpf.arp_all(), blocking=False)
            ndp = rawsock.open_packet_socket(name, bpf.ndp_all(), blocking=False)
            groups = rawsock.SolicitedNodeGroups(name)
        except OSError as exc:
            log.warning("cannot open interface", extra={"event": "interfaceError",
                                                        "interface": name, "error": str(exc)})
            return
        for sock in (arp, ndp):
            # ~4 ms of frames at 100k/s fit in the default 208 KiB; a scheduler hiccup
            # is longer. As root, FORCE ignores rmem_max.
            with contextlib.suppress(OSError):
                sock.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
        iface = _Iface(name, arp.mac or mac, arp, ndp, groups)
        self._ifaces[name] = iface
        for sock, kind in ((arp, "arp"), (ndp, "ndp")):
            self._fds[sock.fileno()] = (iface, kind)
            self._ep.register(sock.fileno(), select.EPOLLIN)
        log.info("responder up", extra={"event": "interfaceUp", "interface": name,
                                        "node": self.node})

    def _drop_iface(self, name: str, why: str) -> None:
        iface = self._ifaces.pop(name)
        for sock in (iface.arp, iface.ndp):
            self._fds.pop(sock.fileno(), None)
            with contextlib.suppress(OSError, ValueError):
                self._ep.unregister(sock.fileno())
        iface.close()
        for key in [k for k in self._owned if k[1] == name]:
            del self._owned[key]
        log.info("responder down", extra={"event": "interfaceDown", "interface": name,
                                          "reason": why})

    # -- ownership ------------------------------------------------------------------
    def _apply_desired(self) -> None:
        with self._lock:
            desired, self._desired = self._desired, None
            loud, self._loud = self._loud, frozenset()
        if desired is not None:
            self._want, self._probe, self._quiet = desired
            if any(n not in self._ifaces for ifs in self._want.values() for n in ifs):
                self._next_scan = 0.0  # a named interface may be excluded by pattern only
            self._reconcile(self.clock())
            # Quiet applies to this takeover only: an interface that comes back later
            # (or a rescan) announces what it answers for.
            self._quiet = frozenset()
        if self._reannounce or loud:
            everything, self._reannounce = self._reannounce, False
            now = self.clock()
            for (ip, _), st in self._owned.items():
                if everything or ip in loud:
                    st.announce(now)
            self._due = now

    def _reconcile(self, now: float) -> None:
        wanted: set[tuple[IP, str]] = set()
        for ip, ifaces in self._want.items():
            for name in announce_on(self._ifaces, ifaces):
                wanted.add((ip, name))
        for key in [k for k in self._owned if k not in wanted]:
            del self._owned[key]  # lost ownership: stop answering at once
        for key in wanted - set(self._owned):
            self._owned[key] = OwnedAddress.start(now, key[0] in self._probe,
                                                  key[0] in self._quiet)
            self._due = now
            if key[0] in self._probe:
                log.info("probing before first announcement", extra={
                    "event": "probing", "ip": str(key[0]), "interface": key[1]})
        self._rebuild_sets()

    def _rebuild_sets(self) -> None:
        announcing: dict[IP, list[str]] = {}
        for iface in self._ifaces.values():
            a4: set[bytes] = set()
            a6: set[bytes] = set()
            w4: set[bytes] = set()
            w6: set[bytes] = set()
            for (ip, name), st in self._owned.items():
                if name != iface.name:
                    continue
                packed = _packed(ip)
                watch, answer = (w4, a4) if ip.family is Family.V4 else (w6, a6)
                watch.add(packed)
                backing_off = self.conflict_mode == "back-off" and \
                    self._conflicts.conflicted(str(ip))
                if st.phase is Phase.ANNOUNCING and not backing_off:
                    answer.add(packed)
                    announcing.setdefault(ip, []).append(name)
            iface.answer4, iface.answer6 = frozenset(a4), frozenset(a6)
            iface.watch4, iface.watch6 = frozenset(w4), frozenset(w6)
            for addr in a6 - iface.joined:  # MLD-snooping switches must forward NS to us
                with contextlib.suppress(OSError):
                    iface.groups.join(addr)
                    iface.joined.add(addr)
            for addr in iface.joined - a6:
                with contextlib.suppress(OSError):
                    iface.groups.leave(addr)
                iface.joined.discard(addr)
        self._announcing = {ip: tuple(sorted(n)) for ip, n in announcing.items()}

    def _next_deadline(self) -> float:
        times = [t for st in self._owned.values() if (t := st.next_due()) is not None]
        return min(times) if times else self.clock() + RESCAN

    def _timers(self, now: float) -> None:
        changed = False
        rounds = 0
        for (ip, name), st in list(self._owned.items()):
            iface = self._ifaces.get(name)
            if iface is None:
                continue
            probes, garps, finished = st.due(now)
            packed = _packed(ip)
            v4 = ip.family is Family.V4
            for _ in range(probes):
                self._send(iface, arp_probe(iface.mac, packed) if v4
                           else dad_probe(iface.mac, packed))
            if finished:
                changed = True
                log.info("announcing", extra={"event": "announcing", "ip": str(ip),
                                              "interface": name})
            for _ in range(garps):
                # Counted per packet sent, as MetalLB (an IPv4 round is two: request and
                # reply form).
                if v4:
                    sent = self._send(iface, gratuitous_arp_request(iface.mac, packed)) \
                        + self._send(iface, gratuitous_arp_reply(iface.mac, packed))
                else:
                    sent = self._send(iface, unsolicited_na(iface.mac, packed))
                g = self.counters.gratuitous
                g[packed] = g.get(packed, 0) + sent
                rounds += 1
        if rounds >= BULK_ROUNDS:  # a takeover of many addresses: how long it took to send
            log.info("gratuitous announcements sent", extra={
                "event": "gratuitous", "count": rounds,
                "seconds": round(self.clock() - now, 5)})
        for ev in self._conflicts.expire(now):
            self._report(ev)
            changed = True
        if changed:
            self._rebuild_sets()

    def _send(self, iface: _Iface, frame: bytes) -> int:
        """1 if sent, 0 if not (logged)."""
        try:
            iface.arp.send(frame)
        except OSError as exc:
            log.warning("send failed", extra={"event": "sendError", "interface": iface.name,
                                              "error": str(exc)})
            return 0
        return 1

    # -- hot paths ------------------------------------------------------------------
    def _read(self, iface: _Iface, kind: str) -> None:
        """Drain one socket: answer what we own at once (the hot path: bytes in, bytes
        out, a dict increment), hand everything else to the slow path."""
        if kind == "arp":
            sock, answer, owned, slow = iface.arp, arp_answer, iface.answer4, self._arp_slow
            lo, hi = 38, 42  # ARP target protocol address
        else:
            sock, answer, owned, slow = iface.ndp, ndp_answer, iface.answer6, self._ndp_slow
            lo, hi = 62, 78  # NS target address
        recv, send, mac = sock.sock.recv, sock.sock.send, iface.mac
        req, resp = self.counters.requests, self.counters.responses
        conflict = DropReason.SENDER_IP_CONFLICT
        for _ in range(BATCH):
            try:
                frame = recv(2048)
            except BlockingIOError:
                return
            r = answer(frame, owned, mac)
            # As MetalLB: a request for an owned address counts as received before we
            # answer (a failed send counts no response), and also when another host
            # asking from one of our addresses gets no answer (a conflict).
            if type(r) is bytes:
                target = frame[lo:hi]
                req[target] = req.get(target, 0) + 1
                send(r)
                resp[target] = resp.get(target, 0) + 1
            else:
                if r is conflict:
                    target = frame[lo:hi]
                    req[target] = req.get(target, 0) + 1
                slow(iface, frame, r)

    def _arp_slow(self, iface: _Iface, frame: bytes, why: DropReason | bytes) -> None:
        watch = iface.watch4
        if frame[28:32] not in watch and frame[38:42] not in watch:
            return  # nothing to do with our addresses
        pkt = parse_arp(frame)
        if not isinstance(pkt, ArpPacket) or pkt.sender_mac == iface.mac:
            return
        if pkt.sender_ip in watch:  # someone else says "this address is mine"
            self._conflict(pkt.sender_ip, pkt.sender_mac, iface)

    def _ndp_slow(self, iface: _Iface, frame: bytes, why: DropReason | bytes) -> None:
        if not iface.watch6 or why is DropReason.NOT_OWNED:
            return
        pkt = parse_ndp(frame)
        if isinstance(pkt, NeighborAdvertisement) and pkt.target in iface.watch6:
            claimer = pkt.target_lladdr or pkt.eth_src
            if claimer != iface.mac:
                self._conflict(pkt.target, claimer, iface)
        elif isinstance(pkt, NeighborSolicitation) and pkt.is_dad and \
                pkt.target in iface.watch6 and pkt.eth_src != iface.mac:
            self._conflict(pkt.target, pkt.eth_src, iface)  # someone wants it too

    def _conflict(self, packed_ip: bytes, mac: bytes, iface: _Iface) -> None:
        fam = Family.V4 if len(packed_ip) == 4 else Family.V6
        ip = str(IP(fam, int.from_bytes(packed_ip, "big")))
        ev = self._conflicts.seen(ip, format_mac(mac), iface.name, self.clock(),
                                  self.known_macs)
        if ev is not None:
            self._report(ev)
            self._rebuild_sets()

    def _report(self, ev: ConflictEvent) -> None:
        if ev.started:
            key = (ev.ip, ev.mac)
            self.counters.conflicts[key] = self.counters.conflicts.get(key, 0) + 1
        log.warning("address conflict" if ev.started else "address conflict cleared", extra={
            "event": "ipConflict" if ev.started else "ipConflictCleared", "ip": ev.ip,
            "interface": ev.interface, "reason": ev.mac, "node": self.node})
        if self.on_conflict is not None:
            self.on_conflict(ev)

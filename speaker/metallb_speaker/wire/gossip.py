"""Gossip messages between speakers: pack/unpack pairs, validated in the parser.

Every message starts with the same header so the receiver can reject junk, replays and
old-version peers before looking at the body:

    magic "MLBG" | version u8 | type u8 | sender (u8 len + UTF-8) |
    boot u64 (random per process start) | seq u64 (per-process counter) |
    sent_ms u64 (sender wall clock, informative only)

Bodies (all integers big-endian):

    HEARTBEAT  incarnation u64 | ready u8 | digest u64
    PING       probe u32 | target (name)
    ACK        probe u32 | target (name)          (target = who answered)
    PING_REQ   probe u32 | target (name) | endpoint (name)
    NACK       probe u32 | target (name)          (helper reached, target did not answer)
    UPDATES    count u16 | count * record         (dissemination of changes)
    SYNC       digest u64 | full u8 | count u16 | count * record   (anti-entropy)
    record   = name | endpoint | incarnation u64 | status u8 | ready u8
               [| accuser (name), only when status = SUSPECT]

Names and endpoints are length-prefixed (u8) UTF-8, at most 253 bytes.
CURVE (libzmq) encrypts and authenticates the transport; the header's (boot, seq)
lets the receiver drop replays of a sender's messages (see membership.replay).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

MAGIC = b"MLBG"
VERSION = 1
MAX_NAME = 253
MAX_RECORDS = 4096
_HEADER = struct.Struct("!4sBB")
_U64x3 = struct.Struct("!QQQ")
_U64 = struct.Struct("!Q")
_U32 = struct.Struct("!I")
_U16 = struct.Struct("!H")
_REC_TAIL = struct.Struct("!QBB")
_HB = struct.Struct("!QBQ")


class MsgType(IntEnum):
    HEARTBEAT = 1
    PING = 2
    ACK = 3
    PING_REQ = 4
    NACK = 5
    UPDATES = 6
    SYNC = 7


class Status(IntEnum):
    ALIVE = 1
    DEAD = 2
    LEFT = 3
    SUSPECT = 4  # alive until the suspicion times out; the record names its accuser


class GossipDrop(StrEnum):
    TOO_SHORT = "too_short"
    BAD_MAGIC = "bad_magic"
    BAD_VERSION = "bad_version"
    BAD_TYPE = "bad_type"
    BAD_NAME = "bad_name"
    BAD_FIELD = "bad_field"
    TRAILING = "trailing_bytes"


@dataclass(frozen=True)
class Record:
    name: str
    endpoint: str
    incarnation: int
    status: Status
    ready: bool
    # Who suspects the node (SUSPECT only): distinct accusers are what shortens the
    # suspicion timeout, so each one's record is disseminated.
    accuser: str = ""


@dataclass(frozen=True)
class Header:
    sender: str
    boot: int
    seq: int
    sent_ms: int


@dataclass(frozen=True)
class Heartbeat:
    incarnation: int
    ready: bool
    digest: int


@dataclass(frozen=True)
class Ping:
    probe: int
    target: str


@dataclass(frozen=True)
class Ack:
    probe: int
    target: str


@dataclass(frozen=True)
class PingReq:
    probe: int
    target: str
    endpoint: str


@dataclass(frozen=True)
class Nack:
    probe: int
    target: str


@dataclass(frozen=True)
class Updates:
    records: tuple[Record, ...]


@dataclass(frozen=True)
class Sync:
    digest: int
    full: bool
    records: tuple[Record, ...] = field(default=())


Body = Heartbeat | Ping | Ack | PingReq | Nack | Updates | Sync

_TYPES: dict[type, MsgType] = {
    Heartbeat: MsgType.HEARTBEAT, Ping: MsgType.PING, Ack: MsgType.ACK,
    PingReq: MsgType.PING_REQ, Nack: MsgType.NACK, Updates: MsgType.UPDATES,
    Sync: MsgType.SYNC,
}


@dataclass(frozen=True)
class Message:
    header: Header
    body: Body


class _Err(Exception):
    def __init__(self, reason: GossipDrop) -> None:
        self.reason = reason


# -- packing ------------------------------------------------------------------------
def _name(text: str) -> bytes:
    raw = text.encode()
    if len(raw) > MAX_NAME:
        raise ValueError(f"name too long: {text[:40]!r}...")
    return bytes((len(raw),)) + raw


def _record(r: Record) -> bytes:
    if (r.status is Status.SUSPECT) != bool(r.accuser):
        raise ValueError(f"record of {r.name!r}: an accuser goes with SUSPECT, and only")
    out = _name(r.name) + _name(r.endpoint) + _REC_TAIL.pack(r.incarnation, r.status,
                                                               int(r.ready))
    return out + _name(r.accuser) if r.accuser else out


def _records(records: Sequence[Record]) -> bytes:
    if len(records) > MAX_RECORDS:
        raise ValueError("too many records")
    return _U16.pack(len(records)) + b"".join(_record(r) for r in records)


def pack(msg: Message) -> bytes:
    h, b = msg.header, msg.body
    out = [_HEADER.pack(MAGIC, VERSION, _TYPES[type(b)]), _name(h.sender),
           _U64x3.pack(h.boot, h.seq, h.sent_ms)]
    if isinstance(b, Heartbeat):
        out.append(_HB.pack(b.incarnation, int(b.ready), b.digest))
    elif isinstance(b, Ping | Ack | Nack):
        out += [_U32.pack(b.probe), _name(b.target)]
    elif isinstance(b, PingReq):
        out += [_U32.pack(b.probe), _name(b.target), _name(b.endpoint)]
    elif isinstance(b, Updates):
        out.append(_records(b.records))
    else:
        out += [_U64.pack(b.digest), bytes((int(b.full),)), _records(b.records)]
    return b"".join(out)


# -- parsing ------------------------------------------------------------------------
class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.buf):
            raise _Err(GossipDrop.TOO_SHORT)
        out = self.buf[self.pos:end]
        self.pos = end
        return out

    def unpack(self, s: struct.Struct) -> tuple[Any, ...]:
        return s.unpack(self.take(s.size))

    def name(self) -> str:
        n = self.take(1)[0]
        raw = self.take(n)
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            raise _Err(GossipDrop.BAD_NAME) from None
        if not text.isprintable():
            raise _Err(GossipDrop.BAD_NAME)
        return text

    def records(self) -> tuple[Record, ...]:
        (count,) = self.unpack(_U16)
        if count > MAX_RECORDS:
            raise _Err(GossipDrop.BAD_FIELD)
        out = []
        for _ in range(count):
            name, endpoint = self.name(), self.name()
            inc, status, ready = self.unpack(_REC_TAIL)
            if not name or status not in Status._value2member_map_ or ready > 1:
                raise _Err(GossipDrop.BAD_FIELD)
            accuser = ""
            if status == Status.SUSPECT:
                accuser = self.name()
                if not accuser:
                    raise _Err(GossipDrop.BAD_FIELD)
            out.append(Record(name, endpoint, inc, Status(status), bool(ready), accuser))
        return tuple(out)


def unpack(data: bytes) -> Message | GossipDrop:
    """Parse one message; never raises on bad bytes, returns the reason instead."""
    r = _Reader(data)
    try:
        magic, version, mtype = r.unpack(_HEADER)
        if magic != MAGIC:
            return GossipDrop.BAD_MAGIC
        if version != VERSION:
            return GossipDrop.BAD_VERSION
        if mtype not in MsgType._value2member_map_:
            return GossipDrop.BAD_TYPE
        sender = r.name()
        if not sender:
            return GossipDrop.BAD_NAME
        boot, seq, sent = r.unpack(_U64x3)
        header = Header(sender, boot, seq, sent)
        t = MsgType(mtype)
        body: Body
        if t is MsgType.HEARTBEAT:
            inc, ready, digest = r.unpack(_HB)
            if ready > 1:
                return GossipDrop.BAD_FIELD
            body = Heartbeat(inc, bool(ready), digest)
        elif t in (MsgType.PING, MsgType.ACK, MsgType.NACK):
            (probe,) = r.unpack(_U32)
            target = r.name()
            body = (Ping(probe, target) if t is MsgType.PING else
                    Ack(probe, target) if t is MsgType.ACK else Nack(probe, target))
        elif t is MsgType.PING_REQ:
            (probe,) = r.unpack(_U32)
            body = PingReq(probe, r.name(), r.name())
        elif t is MsgType.UPDATES:
            body = Updates(r.records())
        else:
            (digest,) = r.unpack(_U64)
            full = r.take(1)[0]
            if full > 1:
                return GossipDrop.BAD_FIELD
            body = Sync(digest, bool(full), r.records())
        if r.pos != len(data):
            return GossipDrop.TRAILING
        return Message(header, body)
    except _Err as exc:
        return exc.reason

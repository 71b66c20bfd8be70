"""Gossip wire format: byte-exact packing, round trips, fuzzing and every reject path."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metallb_speaker.wire.gossip import (
    MAX_NAME,
    MAX_RECORDS,
    Ack,
    Body,
    GossipDrop,
    Header,
    Heartbeat,
    Message,
    MsgType,
    Nack,
    Ping,
    PingReq,
    Record,
    Status,
    Sync,
    Updates,
    pack,
    unpack,
)

pytestmark = pytest.mark.unit

HDR = Header("n1", 0x0102030405060708, 9, 1000)
# magic "MLBG" | version 1 | <type> | len 2 "n1" | boot | seq | sent_ms
HDR_HEX = "02 6e31 0102030405060708 0000000000000009 00000000000003e8"
REC = Record("n2", "e2", 3, Status.DEAD, False)
REC_HEX = "02 6e32 02 6532 0000000000000003 02 00"
REC_READY = Record("nöde", "10.0.0.9:7946", 2**64 - 1, Status.ALIVE, True)
REC_READY_HEX = "05 6ec3b66465 0d 31302e302e302e393a37393436 ffffffffffffffff 01 01"
# a suspicion carries its accuser's name after the ready byte
REC_SUSPECT = Record("n2", "e2", 3, Status.SUSPECT, True, "n7")
REC_SUSPECT_HEX = "02 6e32 02 6532 0000000000000003 04 01 02 6e37"


def hx(type_byte: int, body_hex: str) -> bytes:
    return b"MLBG" + bytes((1, type_byte)) + bytes.fromhex(HDR_HEX + body_hex)


PACK_CASES: list[tuple[str, Body, bytes]] = [
    ("heartbeat", Heartbeat(5, True, 0xDEADBEEF),
     hx(1, "0000000000000005 01 00000000deadbeef")),
    ("heartbeat-not-ready", Heartbeat(0, False, 2**64 - 1),
     hx(1, "0000000000000000 00 ffffffffffffffff")),
    ("ping", Ping(7, "n2"), hx(2, "00000007 02 6e32")),
    ("ping-empty-target", Ping(0, ""), hx(2, "00000000 00")),
    ("ack", Ack(0xFFFFFFFF, "n2"), hx(3, "ffffffff 02 6e32")),
    ("ping-req", PingReq(8, "n2", "10.0.0.2:7946"),
     hx(4, "00000008 02 6e32 0d 31302e302e302e323a37393436")),
    ("nack", Nack(8, "n2"), hx(5, "00000008 02 6e32")),
    ("updates-empty", Updates(()), hx(6, "0000")),
    ("updates-one", Updates((REC,)), hx(6, "0001" + REC_HEX)),
    ("updates-two", Updates((REC, REC_READY)), hx(6, "0002" + REC_HEX + REC_READY_HEX)),
    ("updates-suspect", Updates((REC_SUSPECT, REC)), hx(6, "0002" + REC_SUSPECT_HEX + REC_HEX)),
    ("sync-digest-only", Sync(1, False), hx(7, "0000000000000001 00 0000")),
    ("sync-full", Sync(0x1122334455667788, True, (REC,)),
     hx(7, "1122334455667788 01 0001" + REC_HEX)),
]


@pytest.mark.parametrize(("body", "expected"), [(b, e) for _, b, e in PACK_CASES],
                         ids=[c[0] for c in PACK_CASES])
def test_pack_is_byte_exact(body: Body, expected: bytes) -> None:
    msg = Message(HDR, body)
    assert pack(msg) == expected
    assert unpack(expected) == msg


def test_type_codes_cover_every_body() -> None:
    seen = {c[2][5] for c in PACK_CASES}
    assert seen == {int(t) for t in MsgType}


# -- round trips --------------------------------------------------------------------
_chars = st.characters(categories=["L", "M", "N", "P", "S"])
names = st.text(_chars, min_size=1, max_size=24).filter(
    lambda s: s.isprintable() and len(s.encode()) <= MAX_NAME)
maybe_empty = st.one_of(st.just(""), names)
u64 = st.integers(0, 2**64 - 1)
u32 = st.integers(0, 2**32 - 1)
records = st.one_of(
    st.builds(Record, names, maybe_empty, u64,
              st.sampled_from([s for s in Status if s is not Status.SUSPECT]), st.booleans()),
    st.builds(Record, names, maybe_empty, u64, st.just(Status.SUSPECT), st.booleans(), names))
record_tuples = st.lists(records, max_size=6).map(tuple)
headers = st.builds(Header, names, u64, u64, u64)
bodies: st.SearchStrategy[Body] = st.one_of(
    st.builds(Heartbeat, u64, st.booleans(), u64),
    st.builds(Ping, u32, maybe_empty),
    st.builds(Ack, u32, maybe_empty),
    st.builds(PingReq, u32, maybe_empty, maybe_empty),
    st.builds(Nack, u32, maybe_empty),
    st.builds(Updates, record_tuples),
    st.builds(Sync, u64, st.booleans(), record_tuples),
)
messages = st.builds(Message, headers, bodies)


@given(messages)
def test_round_trip(msg: Message) -> None:
    data = pack(msg)
    assert unpack(data) == msg


@given(messages)
def test_every_proper_prefix_is_too_short_and_any_suffix_is_trailing(msg: Message) -> None:
    data = pack(msg)
    for cut in range(len(data)):
        assert unpack(data[:cut]) is GossipDrop.TOO_SHORT
    assert unpack(data + b"\x00") is GossipDrop.TRAILING


def _check_total(data: bytes) -> None:
    """unpack never raises; whatever it accepts is the canonical encoding."""
    got = unpack(data)
    if isinstance(got, Message):
        assert pack(got) == data
    else:
        assert isinstance(got, GossipDrop)


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_unpack_never_raises_on_junk(data: bytes) -> None:
    _check_total(data)


@settings(max_examples=300)
@given(st.binary(max_size=120))
def test_unpack_never_raises_on_junk_after_valid_magic(tail: bytes) -> None:
    _check_total(b"MLBG\x01" + tail)


@settings(max_examples=300)
@given(messages, st.data())
def test_unpack_never_raises_on_bit_flips(msg: Message, data: st.DataObject) -> None:
    raw = bytearray(pack(msg))
    flips = data.draw(st.lists(st.integers(0, len(raw) * 8 - 1), min_size=1, max_size=4))
    for bit in flips:
        raw[bit // 8] ^= 1 << (bit % 8)
    _check_total(bytes(raw))


@settings(max_examples=300)
@given(messages, st.data())
def test_unpack_never_raises_on_truncated_then_padded(msg: Message, data: st.DataObject) -> None:
    raw = pack(msg)
    cut = data.draw(st.integers(0, len(raw)))
    pad = data.draw(st.binary(max_size=16))
    _check_total(raw[:cut] + pad)


# -- specific rejects ----------------------------------------------------------------
def _raw(type_byte: int, sender: bytes, body: bytes, magic: bytes = b"MLBG",
         version: int = 1) -> bytes:
    return (magic + bytes((version, type_byte, len(sender))) + sender
            + struct.pack("!QQQ", 1, 2, 3) + body)


GOOD_PING = _raw(2, b"n1", b"\x00\x00\x00\x07\x02n2")
REC_OK = b"\x02n2\x02e2" + struct.pack("!QBB", 1, 1, 0)


def _rec(status: int = 1, ready: int = 0, name: bytes = b"n2") -> bytes:
    return bytes((len(name),)) + name + b"\x02e2" + struct.pack("!QBB", 1, status, ready)


REJECTS: list[tuple[str, bytes, GossipDrop]] = [
    ("empty", b"", GossipDrop.TOO_SHORT),
    ("magic-only", b"MLBG", GossipDrop.TOO_SHORT),
    ("bad-magic", _raw(2, b"n1", b"\x00\x00\x00\x07\x02n2", magic=b"MLBX"),
     GossipDrop.BAD_MAGIC),
    ("bad-version-0", _raw(2, b"n1", b"", version=0), GossipDrop.BAD_VERSION),
    ("bad-version-2", _raw(2, b"n1", b"\x00\x00\x00\x07\x02n2", version=2),
     GossipDrop.BAD_VERSION),
    ("bad-type-0", _raw(0, b"n1", b""), GossipDrop.BAD_TYPE),
    ("bad-type-8", _raw(8, b"n1", b""), GossipDrop.BAD_TYPE),
    ("bad-type-255", _raw(255, b"n1", b""), GossipDrop.BAD_TYPE),
    ("trailing", GOOD_PING + b"\x00", GossipDrop.TRAILING),
    ("empty-sender", _raw(2, b"", b"\x00\x00\x00\x07\x02n2"), GossipDrop.BAD_NAME),
    ("sender-bad-utf8", _raw(2, b"\xff\xfe", b"\x00\x00\x00\x07\x02n2"), GossipDrop.BAD_NAME),
    ("sender-truncated-utf8", _raw(2, b"n\xc3", b"\x00\x00\x00\x07\x02n2"),
     GossipDrop.BAD_NAME),
    ("sender-surrogate", _raw(2, b"\xed\xa0\x80", b"\x00\x00\x00\x07\x02n2"),
     GossipDrop.BAD_NAME),
    ("sender-control-char", _raw(2, b"n\x001", b"\x00\x00\x00\x07\x02n2"),
     GossipDrop.BAD_NAME),
    ("sender-newline", _raw(2, b"n\n", b"\x00\x00\x00\x07\x02n2"), GossipDrop.BAD_NAME),
    ("target-bad-utf8", _raw(2, b"n1", b"\x00\x00\x00\x07\x01\x80"), GossipDrop.BAD_NAME),
    ("ping-req-endpoint-bad-utf8", _raw(4, b"n1", b"\x00\x00\x00\x07\x02n2\x01\xc0"),
     GossipDrop.BAD_NAME),
    ("name-length-past-end", _raw(2, b"n1", b"\x00\x00\x00\x07\x09n2"), GossipDrop.TOO_SHORT),
    ("heartbeat-ready-2", _raw(1, b"n1", struct.pack("!QBQ", 1, 2, 0)), GossipDrop.BAD_FIELD),
    ("heartbeat-short", _raw(1, b"n1", struct.pack("!QB", 1, 1)), GossipDrop.TOO_SHORT),
    ("record-status-0", _raw(6, b"n1", b"\x00\x01" + _rec(status=0)), GossipDrop.BAD_FIELD),
    ("record-status-5", _raw(6, b"n1", b"\x00\x01" + _rec(status=5)), GossipDrop.BAD_FIELD),
    ("suspect-without-accuser", _raw(6, b"n1", b"\x00\x01" + _rec(status=4)),
     GossipDrop.TOO_SHORT),
    ("suspect-empty-accuser", _raw(6, b"n1", b"\x00\x01" + _rec(status=4) + b"\x00"),
     GossipDrop.BAD_FIELD),
    ("suspect-accuser-bad-utf8", _raw(6, b"n1", b"\x00\x01" + _rec(status=4) + b"\x01\xff"),
     GossipDrop.BAD_NAME),
    ("record-status-255", _raw(6, b"n1", b"\x00\x01" + _rec(status=255)),
     GossipDrop.BAD_FIELD),
    ("record-ready-2", _raw(6, b"n1", b"\x00\x01" + _rec(ready=2)), GossipDrop.BAD_FIELD),
    ("record-empty-name", _raw(6, b"n1", b"\x00\x01" + _rec(name=b"")), GossipDrop.BAD_FIELD),
    ("record-name-bad-utf8", _raw(6, b"n1", b"\x00\x01" + _rec(name=b"\xff")),
     GossipDrop.BAD_NAME),
    ("second-record-bad", _raw(6, b"n1", b"\x00\x02" + REC_OK + _rec(status=9)),
     GossipDrop.BAD_FIELD),
    ("count-more-than-present", _raw(6, b"n1", b"\x00\x02" + REC_OK), GossipDrop.TOO_SHORT),
    ("count-less-than-present", _raw(6, b"n1", b"\x00\x01" + REC_OK + REC_OK),
     GossipDrop.TRAILING),
    ("too-many-records", _raw(6, b"n1", struct.pack("!H", MAX_RECORDS + 1)),
     GossipDrop.BAD_FIELD),
    ("too-many-records-max-u16", _raw(6, b"n1", b"\xff\xff" + REC_OK), GossipDrop.BAD_FIELD),
    ("sync-too-many-records", _raw(7, b"n1", struct.pack("!QBH", 1, 1, MAX_RECORDS + 1)),
     GossipDrop.BAD_FIELD),
    ("sync-full-2", _raw(7, b"n1", struct.pack("!QBH", 1, 2, 0)), GossipDrop.BAD_FIELD),
    ("sync-record-status-0", _raw(7, b"n1", struct.pack("!QBH", 1, 1, 1) + _rec(status=0)),
     GossipDrop.BAD_FIELD),
]


@pytest.mark.parametrize(("data", "reason"), [(d, r) for _, d, r in REJECTS],
                         ids=[c[0] for c in REJECTS])
def test_specific_rejects(data: bytes, reason: GossipDrop) -> None:
    assert unpack(data) is reason


def test_reject_fixtures_are_one_change_away_from_valid() -> None:
    """The reject cases are meaningful: the unmodified shapes parse."""
    assert isinstance(unpack(GOOD_PING), Message)
    assert unpack(_raw(6, b"n1", b"\x00\x01" + REC_OK)) == Message(
        Header("n1", 1, 2, 3), Updates((Record("n2", "e2", 1, Status.ALIVE, False),)))
    assert isinstance(unpack(_raw(6, b"n1", b"\x00\x01" + _rec(status=3, ready=1))), Message)
    assert isinstance(unpack(_raw(6, b"n1", b"\x00\x01" + _rec(status=4) + b"\x01a")), Message)
    assert isinstance(unpack(_raw(7, b"n1", struct.pack("!QBH", 1, 1, 0))), Message)


def test_max_records_accepted_exactly_at_limit() -> None:
    recs = tuple(Record(f"n{i}", "", i, Status.ALIVE, False) for i in range(MAX_RECORDS))
    msg = Message(HDR, Updates(recs))
    assert unpack(pack(msg)) == msg


def test_name_at_max_length_round_trips_and_one_more_is_refused() -> None:
    longest = "x" * MAX_NAME
    msg = Message(Header(longest, 1, 1, 1), Ping(1, longest))
    assert unpack(pack(msg)) == msg
    with pytest.raises(ValueError, match="name too long"):
        pack(Message(Header(longest + "x", 1, 1, 1), Ping(1, "t")))
    with pytest.raises(ValueError, match="name too long"):
        pack(Message(HDR, Ping(1, "é" * 127)))  # 254 bytes of UTF-8


@pytest.mark.parametrize("record", [
    Record("n2", "e2", 1, Status.SUSPECT, False),  # a suspicion names its accuser
    Record("n2", "e2", 1, Status.DEAD, False, "n3"),  # and nothing else carries one
])
def test_pack_refuses_an_accuser_out_of_place(record: Record) -> None:
    with pytest.raises(ValueError, match="accuser"):
        pack(Message(HDR, Updates((record,))))


def test_pack_refuses_too_many_records() -> None:
    recs = tuple(Record("n", "", 1, Status.ALIVE, False) for _ in range(MAX_RECORDS + 1))
    with pytest.raises(ValueError, match="too many records"):
        pack(Message(HDR, Updates(recs)))
    with pytest.raises(ValueError, match="too many records"):
        pack(Message(HDR, Sync(0, True, recs)))

"""ARP builders, parser and responder hot path, byte-for-byte against scapy and fuzzed."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import ARP, Dot1Q, Ether

from metallb_speaker.wire.arp import (
    ArpOp,
    ArpPacket,
    DropReason,
    arp_answer,
    arp_probe,
    arp_reply,
    arp_request,
    build_arp,
    gratuitous_arp_reply,
    gratuitous_arp_request,
    parse_arp,
)
from metallb_speaker.wire.ethernet import BROADCAST_MAC, ZERO_MAC, format_mac, parse_mac

pytestmark = pytest.mark.unit

OUR = "02:00:5e:00:00:aa"
PEER = "02:00:5e:00:00:02"
OTHER = "02:00:5e:00:00:77"
VIP = "198.18.0.100"
VIP2 = "198.18.0.101"
PEER_IP = "198.18.0.2"
BCAST = "ff:ff:ff:ff:ff:ff"
ZEROS = "00:00:00:00:00:00"

OUR_MAC = parse_mac(OUR)
PEER_MAC = parse_mac(PEER)


def ip4(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


OWNED = frozenset({ip4(VIP), ip4(VIP2)})


def scapy_arp(op: int, eth_dst: str, hwsrc: str, psrc: str, hwdst: str, pdst: str) -> bytes:
    return bytes(
        Ether(dst=eth_dst, src=hwsrc) / ARP(op=op, hwsrc=hwsrc, psrc=psrc, hwdst=hwdst, pdst=pdst)
    )


def patch(frame: bytes, offset: int, value: bytes) -> bytes:
    return frame[:offset] + value + frame[offset + len(value) :]


REQUEST = scapy_arp(1, BCAST, PEER, PEER_IP, ZEROS, VIP)


# --- builders -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("built", "oracle"),
    [
        (arp_request(PEER_MAC, ip4(PEER_IP), ip4(VIP)), REQUEST),
        (
            arp_request(PEER_MAC, ip4(PEER_IP), ip4(VIP), eth_dst=OUR_MAC, target_mac=OUR_MAC),
            scapy_arp(1, OUR, PEER, PEER_IP, OUR, VIP),
        ),
        (
            arp_reply(OUR_MAC, ip4(VIP), PEER_MAC, ip4(PEER_IP)),
            scapy_arp(2, PEER, OUR, VIP, PEER, PEER_IP),
        ),
        (gratuitous_arp_request(OUR_MAC, ip4(VIP)), scapy_arp(1, BCAST, OUR, VIP, ZEROS, VIP)),
        (gratuitous_arp_reply(OUR_MAC, ip4(VIP)), scapy_arp(2, BCAST, OUR, VIP, BCAST, VIP)),
        (arp_probe(OUR_MAC, ip4(VIP)), scapy_arp(1, BCAST, OUR, "0.0.0.0", ZEROS, VIP)),
    ],
    ids=["request", "unicast-request", "reply", "garp-request", "garp-reply", "probe"],
)
def test_builders_match_scapy(built: bytes, oracle: bytes) -> None:
    assert len(built) == 42
    assert built == oracle


def test_builders_reject_bad_lengths() -> None:
    with pytest.raises(ValueError):
        arp_request(PEER_MAC, bytes(16), ip4(VIP))
    with pytest.raises(ValueError):
        arp_request(bytes(5), ip4(PEER_IP), ip4(VIP))


def test_announcement_flags() -> None:
    garp = parse_arp(gratuitous_arp_request(OUR_MAC, ip4(VIP)))
    probe = parse_arp(arp_probe(OUR_MAC, ip4(VIP)))
    assert isinstance(garp, ArpPacket) and isinstance(probe, ArpPacket)
    assert garp.is_gratuitous and not garp.is_probe
    assert probe.is_probe and not probe.is_gratuitous


# --- parser ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (
            REQUEST,
            ArpPacket(
                ArpOp.REQUEST, PEER_MAC, ip4(PEER_IP), ZERO_MAC, ip4(VIP), PEER_MAC, BROADCAST_MAC
            ),
        ),
        (
            bytes(
                Ether(dst=OUR, src=PEER) / ARP(op=2, hwsrc=PEER, psrc=PEER_IP, hwdst=OUR, pdst=VIP)
            )
            + bytes(18),
            ArpPacket(ArpOp.REPLY, PEER_MAC, ip4(PEER_IP), OUR_MAC, ip4(VIP), PEER_MAC, OUR_MAC),
        ),
        (
            bytes(
                Ether(dst=BCAST, src=PEER)
                / Dot1Q(vlan=5)
                / ARP(op=1, hwsrc=PEER, psrc=PEER_IP, hwdst=ZEROS, pdst=VIP)
            ),
            ArpPacket(
                ArpOp.REQUEST, PEER_MAC, ip4(PEER_IP), ZERO_MAC, ip4(VIP), PEER_MAC, BROADCAST_MAC
            ),
        ),
        (REQUEST[:41], DropReason.TOO_SHORT),
        (REQUEST[:10], DropReason.TOO_SHORT),
        (bytes(Ether(dst=OUR, src=PEER) / IP(src=PEER_IP, dst=VIP) / ICMP()), DropReason.NOT_ARP),
        (patch(REQUEST, 14, b"\x00\x06"), DropReason.BAD_HARDWARE_TYPE),
        (patch(REQUEST, 16, b"\x86\xdd"), DropReason.BAD_PROTOCOL_TYPE),
        (patch(REQUEST, 18, b"\x08"), DropReason.BAD_ADDRESS_LENGTH),
        (patch(REQUEST, 19, b"\x10"), DropReason.BAD_ADDRESS_LENGTH),
        (patch(REQUEST, 20, b"\x00\x03"), DropReason.UNKNOWN_OP),
        (patch(REQUEST, 20, b"\x00\x00"), DropReason.UNKNOWN_OP),
    ],
    ids=[
        "request",
        "padded-reply",
        "vlan",
        "short",
        "tiny",
        "ipv4",
        "htype",
        "ptype",
        "hlen",
        "plen",
        "op3",
        "op0",
    ],
)
def test_parse(frame: bytes, expected: ArpPacket | DropReason) -> None:
    assert parse_arp(frame) == expected


macs = st.binary(min_size=6, max_size=6)
ips = st.binary(min_size=4, max_size=4)
packets = st.builds(ArpPacket, st.sampled_from(ArpOp), macs, ips, macs, ips, macs, macs)


@given(packets)
def test_round_trip(packet: ArpPacket) -> None:
    frame = build_arp(packet)
    assert parse_arp(frame) == packet
    assert parse_arp(frame + bytes(18)) == packet  # minimum-size Ethernet padding


@settings(deadline=None)
@given(packets)
def test_build_matches_scapy(packet: ArpPacket) -> None:
    oracle = Ether(dst=format_mac(packet.eth_dst), src=format_mac(packet.eth_src)) / ARP(
        op=int(packet.op),
        hwsrc=format_mac(packet.sender_mac),
        psrc=str(ipaddress.IPv4Address(packet.sender_ip)),
        hwdst=format_mac(packet.target_mac),
        pdst=str(ipaddress.IPv4Address(packet.target_ip)),
    )
    assert build_arp(packet) == bytes(oracle)


@given(st.binary(max_size=80), st.frozensets(ips, max_size=3), macs)
def test_never_raises_on_arbitrary_bytes(frame: bytes, owned: frozenset[bytes], mac: bytes) -> None:
    assert isinstance(parse_arp(frame), ArpPacket | DropReason)
    assert isinstance(arp_answer(frame, owned, mac), bytes | DropReason)


# --- responder hot path ---------------------------------------------------------------


def test_answer_matches_scapy_reply() -> None:
    assert arp_answer(REQUEST, OWNED, OUR_MAC) == scapy_arp(2, PEER, OUR, VIP, PEER, PEER_IP)


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (REQUEST, scapy_arp(2, PEER, OUR, VIP, PEER, PEER_IP)),
        (REQUEST + bytes(18), scapy_arp(2, PEER, OUR, VIP, PEER, PEER_IP)),
        # unicast refresh (Linux re-probes stale entries at the cached MAC)
        (scapy_arp(1, OUR, PEER, PEER_IP, OUR, VIP2), scapy_arp(2, PEER, OUR, VIP2, PEER, PEER_IP)),
        # RFC 5227 probe for our address: answering is how the prober learns it is taken
        (
            scapy_arp(1, BCAST, PEER, "0.0.0.0", ZEROS, VIP),
            scapy_arp(2, PEER, OUR, VIP, PEER, "0.0.0.0"),
        ),
        (REQUEST[:41], DropReason.TOO_SHORT),
        (
            bytes(
                Ether(dst=BCAST, src=PEER)
                / Dot1Q(vlan=5)
                / ARP(op=1, hwsrc=PEER, psrc=PEER_IP, pdst=VIP)
            ),
            DropReason.VLAN_TAGGED,
        ),
        (bytes(Ether(dst=OUR, src=PEER) / IP(src=PEER_IP, dst=VIP) / ICMP()), DropReason.NOT_ARP),
        (patch(REQUEST, 14, b"\x00\x06"), DropReason.BAD_HARDWARE_TYPE),
        (patch(REQUEST, 16, b"\x86\xdd"), DropReason.BAD_PROTOCOL_TYPE),
        (patch(REQUEST, 18, b"\x10"), DropReason.BAD_ADDRESS_LENGTH),
        (patch(REQUEST, 20, b"\x00\x09"), DropReason.UNKNOWN_OP),
        (scapy_arp(2, OUR, PEER, PEER_IP, OUR, VIP), DropReason.NOT_REQUEST),
        (scapy_arp(1, BCAST, PEER, PEER_IP, ZEROS, "198.18.0.99"), DropReason.NOT_OWNED),
        (scapy_arp(1, OTHER, PEER, PEER_IP, ZEROS, VIP), DropReason.WRONG_ETH_DST),
        (scapy_arp(1, "01:00:5e:00:00:01", PEER, PEER_IP, ZEROS, VIP), DropReason.WRONG_ETH_DST),
        (gratuitous_arp_request(OUR_MAC, ip4(VIP)), DropReason.FROM_SELF),
        (arp_probe(OUR_MAC, ip4(VIP)), DropReason.FROM_SELF),
        (scapy_arp(1, BCAST, PEER, VIP, ZEROS, VIP), DropReason.SENDER_IP_CONFLICT),
        (scapy_arp(1, BCAST, PEER, VIP2, ZEROS, VIP), DropReason.SENDER_IP_CONFLICT),
    ],
    ids=[
        "broadcast",
        "padded",
        "unicast",
        "probe",
        "short",
        "vlan",
        "ipv4",
        "htype",
        "ptype",
        "plen",
        "op",
        "reply",
        "not-owned",
        "other-mac",
        "multicast",
        "own-garp",
        "own-probe",
        "foreign-garp",
        "foreign-sender",
    ],
)
def test_answer(frame: bytes, expected: bytes | DropReason) -> None:
    assert arp_answer(frame, OWNED, OUR_MAC) == expected


def test_answer_accepts_dict_of_owned() -> None:
    owned = {ip4(VIP): "default/web"}
    assert isinstance(arp_answer(REQUEST, owned, OUR_MAC), bytes)


unicast_macs = macs.map(lambda m: bytes([m[0] & 0xFE]) + m[1:])


@settings(deadline=None)
@given(
    sender_mac=unicast_macs,
    sender_ip=ips,
    vip=ips,
    our_mac=unicast_macs,
    unicast=st.booleans(),
    padding=st.sampled_from([0, 18]),
)
def test_random_requests_get_correct_replies(
    sender_mac: bytes, sender_ip: bytes, vip: bytes, our_mac: bytes, unicast: bool, padding: int
) -> None:
    assume(sender_mac != our_mac and sender_ip != vip)
    eth_dst = our_mac if unicast else BROADCAST_MAC
    frame = arp_request(sender_mac, sender_ip, vip, eth_dst=eth_dst) + bytes(padding)
    reply = arp_answer(frame, {vip}, our_mac)
    assert isinstance(reply, bytes) and len(reply) == 42
    decoded = Ether(reply)
    assert decoded.dst == format_mac(sender_mac)
    assert decoded.src == format_mac(our_mac)
    arp = decoded[ARP]
    assert (arp.hwtype, arp.ptype, arp.hwlen, arp.plen, arp.op) == (1, 0x0800, 6, 4, 2)
    assert arp.hwsrc == format_mac(our_mac)
    assert arp.psrc == str(ipaddress.IPv4Address(vip))
    assert arp.hwdst == format_mac(sender_mac)
    assert arp.pdst == str(ipaddress.IPv4Address(sender_ip))


@st.composite
def mutated_requests(draw: st.DrawFn) -> bytes:
    """Valid requests for owned/unowned addresses with a few bytes overwritten, so the
    fuzzer spends its time near the accept/reject boundary."""
    target = draw(st.sampled_from([VIP, VIP2, "198.18.0.99"]))
    eth_dst = draw(st.sampled_from([BROADCAST_MAC, OUR_MAC, PEER_MAC]))
    sender = draw(st.sampled_from([PEER_MAC, OUR_MAC]))
    frame = bytearray(arp_request(sender, ip4(PEER_IP), ip4(target), eth_dst=eth_dst))
    for _ in range(draw(st.integers(0, 3))):
        frame[draw(st.integers(0, 41))] = draw(st.integers(0, 255))
    truncate = draw(st.integers(0, 7)) == 0
    return bytes(frame[: draw(st.integers(0, 42))] if truncate else frame)


@settings(max_examples=500)
@given(mutated_requests())
def test_hot_path_agrees_with_parser(frame: bytes) -> None:
    result = arp_answer(frame, OWNED, OUR_MAC)
    parsed = parse_arp(frame)
    event(result if isinstance(result, DropReason) else "answered")
    if isinstance(parsed, DropReason):
        assert result == parsed
        return
    answerable = (
        parsed.op is ArpOp.REQUEST
        and parsed.target_ip in OWNED
        and parsed.eth_dst in (BROADCAST_MAC, OUR_MAC)
        and parsed.sender_mac != OUR_MAC
        and parsed.sender_ip not in OWNED
    )
    if answerable:
        assert result == arp_reply(OUR_MAC, parsed.target_ip, parsed.sender_mac, parsed.sender_ip)
    else:
        assert isinstance(result, DropReason)

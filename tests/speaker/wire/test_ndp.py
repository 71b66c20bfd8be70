"""NDP builders, parser and responder hot path, byte-for-byte against scapy and fuzzed."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import UDP
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    in6_chksum,
)
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet, Raw
from scapy.utils6 import in6_getnsma, in6_getnsmac

from metallb_speaker.wire.ethernet import BROADCAST_MAC, DropReason, format_mac, parse_mac
from metallb_speaker.wire.ndp import (
    ALL_NODES,
    ALL_NODES_MAC,
    UNSPECIFIED,
    NeighborAdvertisement,
    NeighborSolicitation,
    build_na,
    build_ns,
    dad_probe,
    icmpv6_checksum,
    ndp_answer,
    neighbor_solicitation,
    parse_ndp,
    solicited_node_multicast,
    unsolicited_na,
)

pytestmark = pytest.mark.unit

OUR = "02:00:5e:00:00:aa"
PEER = "02:00:5e:00:00:02"
OTHER = "02:00:5e:00:00:77"
VIP = "fd00:7::100"
VIP2 = "fd00:7::101"
PEER_IP = "fd00:7::2"
OUR_MAC = parse_mac(OUR)
PEER_MAC = parse_mac(PEER)


def ip6(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def text6(packed: bytes) -> str:
    return str(ipaddress.IPv6Address(packed))


def snm(addr: str) -> str:
    return text6(in6_getnsma(ip6(addr)))


def snm_mac(addr: str) -> str:
    return str(in6_getnsmac(in6_getnsma(ip6(addr))))


OWNED = frozenset({ip6(VIP), ip6(VIP2)})


def scapy_ns(
    target: str = VIP,
    src: str = PEER_IP,
    dst: str | None = None,
    eth_dst: str | None = None,
    eth_src: str = PEER,
    slla: str | None = PEER,
    hlim: int = 255,
    code: int = 0,
    extra: Packet | None = None,
) -> bytes:
    dst = snm(target) if dst is None else dst
    eth_dst = snm_mac(target) if eth_dst is None else eth_dst
    pkt = (
        Ether(dst=eth_dst, src=eth_src)
        / IPv6(src=src, dst=dst, hlim=hlim)
        / ICMPv6ND_NS(tgt=target, code=code)
    )
    if slla is not None:
        pkt = pkt / ICMPv6NDOptSrcLLAddr(lladdr=slla)
    if extra is not None:
        pkt = pkt / extra
    return bytes(pkt)


def scapy_na(
    target: str,
    dst: str,
    eth_dst: str,
    *,
    src: str | None = None,
    eth_src: str = OUR,
    solicited: bool,
    router: bool = False,
    override: bool = True,
    tlla: str | None = OUR,
) -> bytes:
    pkt = (
        Ether(dst=eth_dst, src=eth_src)
        / IPv6(src=src or target, dst=dst, hlim=255)
        / ICMPv6ND_NA(tgt=target, R=int(router), S=int(solicited), O=int(override))
    )
    if tlla is not None:
        pkt = pkt / ICMPv6NDOptDstLLAddr(lladdr=tlla)
    return bytes(pkt)


def patch(frame: bytes, offset: int, value: bytes) -> bytes:
    return frame[:offset] + value + frame[offset + len(value) :]


def refresh_checksum(frame: bytes) -> bytes:
    """Recompute the ICMPv6 checksum of an untagged frame after a test edited it."""
    payload_len = int.from_bytes(frame[18:20], "big")
    body = patch(frame[54 : 54 + payload_len], 2, b"\x00\x00")
    checksum = icmpv6_checksum(frame[22:38], frame[38:54], body)
    return patch(frame, 56, checksum.to_bytes(2, "big"))


REQUEST = scapy_ns()
REPLY = scapy_na(VIP, PEER_IP, PEER, solicited=True)


# --- helpers and builders -------------------------------------------------------------


@pytest.mark.parametrize("addr", ["fd00::1", "fd00:7::12:3456", "fe80::ff:fe00:abcd", "::"])
def test_solicited_node_multicast_matches_scapy(addr: str) -> None:
    assert solicited_node_multicast(ip6(addr)) == in6_getnsma(ip6(addr))


@settings(deadline=None)
@given(
    st.binary(min_size=16, max_size=16), st.binary(min_size=16, max_size=16), st.binary(max_size=64)
)
def test_checksum_matches_scapy(src: bytes, dst: bytes, message: bytes) -> None:
    oracle = in6_chksum(58, IPv6(src=text6(src), dst=text6(dst)), message)  # type: ignore[no-untyped-call]
    assert icmpv6_checksum(src, dst, message) == oracle


@pytest.mark.parametrize(
    ("built", "oracle"),
    [
        (neighbor_solicitation(PEER_MAC, ip6(PEER_IP), ip6(VIP)), REQUEST),
        (
            neighbor_solicitation(PEER_MAC, ip6(PEER_IP), ip6(VIP), include_slla=False),
            scapy_ns(slla=None),
        ),
        (
            neighbor_solicitation(PEER_MAC, ip6(PEER_IP), ip6(VIP), dst=ip6(VIP), eth_dst=OUR_MAC),
            scapy_ns(dst=VIP, eth_dst=OUR),
        ),
        (dad_probe(OUR_MAC, ip6(VIP)), scapy_ns(src="::", eth_src=OUR, slla=None)),
        (
            unsolicited_na(OUR_MAC, ip6(VIP)),
            scapy_na(VIP, "ff02::1", "33:33:00:00:00:01", solicited=False),
        ),
        (
            build_na(
                NeighborAdvertisement(
                    PEER_MAC,
                    OUR_MAC,
                    ip6(VIP),
                    ip6(PEER_IP),
                    ip6(VIP),
                    solicited=True,
                    target_lladdr=OUR_MAC,
                )
            ),
            REPLY,
        ),
    ],
    ids=["ns", "ns-no-slla", "ns-unicast", "dad-probe", "unsolicited-na", "na"],
)
def test_builders_match_scapy(built: bytes, oracle: bytes) -> None:
    assert built == oracle


def test_builders_reject_bad_input() -> None:
    with pytest.raises(ValueError):
        neighbor_solicitation(PEER_MAC, ip6(PEER_IP), ip6(VIP), dst=ip6(VIP))  # no eth_dst
    with pytest.raises(ValueError):
        neighbor_solicitation(PEER_MAC, bytes(4), ip6(VIP))
    with pytest.raises(ValueError):
        unsolicited_na(bytes(5), ip6(VIP))
    with pytest.raises(ValueError):
        solicited_node_multicast(bytes(4))


# --- parser ---------------------------------------------------------------------------


NONCE = Raw(b"\x0e\x01" + bytes(6))  # RFC 3971 nonce option, as Linux adds to DAD probes


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (
            REQUEST,
            NeighborSolicitation(
                parse_mac(snm_mac(VIP)), PEER_MAC, ip6(PEER_IP), ip6(snm(VIP)), ip6(VIP), PEER_MAC
            ),
        ),
        (
            scapy_ns(src="::", slla=None, extra=NONCE),
            NeighborSolicitation(
                parse_mac(snm_mac(VIP)), PEER_MAC, UNSPECIFIED, ip6(snm(VIP)), ip6(VIP)
            ),
        ),
        (
            bytes(
                Ether(dst=OUR, src=PEER)
                / Dot1Q(vlan=9)
                / IPv6(src=PEER_IP, dst=VIP, hlim=255)
                / ICMPv6ND_NS(tgt=VIP)
            ),
            NeighborSolicitation(OUR_MAC, PEER_MAC, ip6(PEER_IP), ip6(VIP), ip6(VIP)),
        ),
        (
            REPLY,
            NeighborAdvertisement(
                PEER_MAC,
                OUR_MAC,
                ip6(VIP),
                ip6(PEER_IP),
                ip6(VIP),
                solicited=True,
                target_lladdr=OUR_MAC,
            ),
        ),
        (
            scapy_na(
                VIP,
                "ff02::1",
                "33:33:00:00:00:01",
                eth_src=OTHER,
                solicited=False,
                router=True,
                override=False,
                tlla=OTHER,
            ),
            NeighborAdvertisement(
                ALL_NODES_MAC,
                parse_mac(OTHER),
                ip6(VIP),
                ALL_NODES,
                ip6(VIP),
                router=True,
                solicited=False,
                override=False,
                target_lladdr=parse_mac(OTHER),
            ),
        ),
        (REQUEST[:60], DropReason.TRUNCATED),
        (REQUEST[:40], DropReason.TOO_SHORT),
        (bytes(Ether(dst=BROADCAST_MAC, src=PEER) / ARP()), DropReason.NOT_IPV6),
        (patch(REQUEST, 14, b"\x40"), DropReason.BAD_IP_VERSION),
        (
            bytes(Ether(dst=OUR, src=PEER) / IPv6(src=PEER_IP, dst=VIP) / UDP()),
            DropReason.NOT_ICMPV6,
        ),
        (
            bytes(Ether(dst=OUR, src=PEER) / IPv6(src=PEER_IP, dst=VIP) / ICMPv6EchoRequest()),
            DropReason.NOT_NDP,
        ),
        (patch(REQUEST, 18, b"\x00\x00"), DropReason.BAD_LENGTH),
        (patch(REQUEST, 18, b"\x00\x14"), DropReason.BAD_LENGTH),
        (scapy_ns(hlim=64), DropReason.BAD_HOP_LIMIT),
        (scapy_ns(code=1), DropReason.BAD_CODE),
        (patch(REQUEST, 56, b"\xde\xad"), DropReason.BAD_CHECKSUM),
        (refresh_checksum(patch(REQUEST, 62, b"\xff")), DropReason.BAD_TARGET),
        (scapy_ns(src="ff02::1"), DropReason.BAD_SOURCE),
        (scapy_ns(slla=None, extra=Raw(b"\x01\x00" + bytes(6))), DropReason.BAD_OPTION),
        (scapy_ns(slla=None, extra=Raw(b"\x01\x02" + bytes(6))), DropReason.BAD_OPTION),
        (scapy_ns(slla=None, extra=Raw(b"\x01")), DropReason.BAD_OPTION),
        (scapy_ns(src="::"), DropReason.BAD_OPTION),
        (scapy_ns(src="::", dst=VIP, eth_dst=OUR, slla=None), DropReason.BAD_DESTINATION),
        (scapy_na(VIP, "ff02::1", "33:33:00:00:00:01", solicited=True), DropReason.BAD_FLAGS),
    ],
    ids=[
        "ns",
        "dad",
        "vlan-ns",
        "na",
        "na-flags",
        "truncated",
        "short",
        "arp",
        "version",
        "udp",
        "echo",
        "zero-length",
        "length-20",
        "hop-limit",
        "code",
        "checksum",
        "multicast-target",
        "multicast-source",
        "option-length-0",
        "option-overrun",
        "option-stub",
        "dad-with-slla",
        "dad-unicast",
        "solicited-to-multicast",
    ],
)
def test_parse(
    frame: bytes, expected: NeighborSolicitation | NeighborAdvertisement | DropReason
) -> None:
    assert parse_ndp(frame) == expected


macs = st.binary(min_size=6, max_size=6)
addrs = st.binary(min_size=16, max_size=16)
unicast_addrs = addrs.filter(lambda a: a[0] != 0xFF and a != UNSPECIFIED)


@st.composite
def solicitations(draw: st.DrawFn) -> NeighborSolicitation:
    target = draw(unicast_addrs)
    if draw(st.booleans()):  # DAD
        return NeighborSolicitation(
            draw(macs), draw(macs), UNSPECIFIED, solicited_node_multicast(target), target
        )
    return NeighborSolicitation(
        draw(macs),
        draw(macs),
        draw(unicast_addrs),
        draw(addrs),
        target,
        draw(st.none() | macs),
    )


@st.composite
def advertisements(draw: st.DrawFn) -> NeighborAdvertisement:
    dst = draw(addrs)
    return NeighborAdvertisement(
        draw(macs),
        draw(macs),
        draw(unicast_addrs),
        dst,
        draw(unicast_addrs),
        router=draw(st.booleans()),
        solicited=dst[0] != 0xFF and draw(st.booleans()),
        override=draw(st.booleans()),
        target_lladdr=draw(st.none() | macs),
    )


@given(solicitations())
def test_ns_round_trip(ns: NeighborSolicitation) -> None:
    assert parse_ndp(build_ns(ns)) == ns


@given(advertisements())
def test_na_round_trip(na: NeighborAdvertisement) -> None:
    assert parse_ndp(build_na(na)) == na


@settings(deadline=None)
@given(advertisements())
def test_build_na_matches_scapy(na: NeighborAdvertisement) -> None:
    oracle = scapy_na(
        text6(na.target),
        text6(na.dst),
        format_mac(na.eth_dst),
        src=text6(na.src),
        eth_src=format_mac(na.eth_src),
        solicited=na.solicited,
        router=na.router,
        override=na.override,
        tlla=None if na.target_lladdr is None else format_mac(na.target_lladdr),
    )
    assert build_na(na) == oracle


@given(st.binary(max_size=120), st.frozensets(addrs, max_size=3), macs)
def test_never_raises_on_arbitrary_bytes(frame: bytes, owned: frozenset[bytes], mac: bytes) -> None:
    assert isinstance(parse_ndp(frame), NeighborSolicitation | NeighborAdvertisement | DropReason)
    assert isinstance(ndp_answer(frame, owned, mac), bytes | DropReason)


@given(st.binary(max_size=70))
def test_never_raises_on_ipv6_looking_bytes(tail: bytes) -> None:
    frame = REQUEST[:20] + tail
    assert isinstance(parse_ndp(frame), NeighborSolicitation | NeighborAdvertisement | DropReason)
    assert isinstance(ndp_answer(frame, OWNED, OUR_MAC), bytes | DropReason)


# --- responder hot path ---------------------------------------------------------------


ALL_NODES_ETH = "33:33:00:00:00:01"


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (REQUEST, REPLY),
        (scapy_ns(slla=None), REPLY),
        # a proxy/bridge may rewrite the Ethernet source: the SLLA option wins
        (scapy_ns(eth_src=OTHER), REPLY),
        # unicast NUD probes: dst is the target itself, Ethernet-addressed to us
        (scapy_ns(dst=VIP, eth_dst=OUR), REPLY),
        (scapy_ns(dst=VIP, eth_dst=OUR, slla=None), REPLY),
        (scapy_ns(target=VIP2), scapy_na(VIP2, PEER_IP, PEER, solicited=True)),
        # multicast NS Ethernet-addressed to us is still fine
        (scapy_ns(eth_dst=OUR), REPLY),
        # unknown options are skipped (RFC 4861 §4.6)
        (scapy_ns(extra=NONCE), REPLY),
        # DAD for our address: defend it to all nodes, S=0
        (scapy_ns(src="::", slla=None), scapy_na(VIP, "ff02::1", ALL_NODES_ETH, solicited=False)),
        (
            scapy_ns(src="::", slla=None, extra=NONCE),
            scapy_na(VIP, "ff02::1", ALL_NODES_ETH, solicited=False),
        ),
        (REQUEST[:77], DropReason.TRUNCATED),
        (REQUEST[:30], DropReason.TOO_SHORT),
        (
            bytes(
                Ether(dst=OUR, src=PEER)
                / Dot1Q(vlan=9)
                / IPv6(src=PEER_IP, dst=VIP, hlim=255)
                / ICMPv6ND_NS(tgt=VIP)
            ),
            DropReason.VLAN_TAGGED,
        ),
        (bytes(Ether(dst=BROADCAST_MAC, src=PEER) / ARP()), DropReason.NOT_IPV6),
        (patch(REQUEST, 14, b"\x40"), DropReason.BAD_IP_VERSION),
        (
            bytes(Ether(dst=OUR, src=PEER) / IPv6(src=PEER_IP, dst=VIP) / UDP()),
            DropReason.NOT_ICMPV6,
        ),
        (
            bytes(
                Ether(dst=OUR, src=PEER)
                / IPv6(src=PEER_IP, dst=VIP, hlim=255)
                / ICMPv6EchoRequest()
            ),
            DropReason.NOT_NDP,
        ),
        (scapy_ns(hlim=254), DropReason.BAD_HOP_LIMIT),
        (scapy_ns(code=3), DropReason.BAD_CODE),
        (patch(REQUEST, 18, b"\x00\x14"), DropReason.BAD_LENGTH),
        (patch(REQUEST, 18, b"\x00\x30"), DropReason.TRUNCATED),
        (patch(REQUEST, 56, b"\xde\xad"), DropReason.BAD_CHECKSUM),
        (REPLY, DropReason.NOT_SOLICITATION),
        (scapy_ns(target="fd00:7::99"), DropReason.NOT_OWNED),
        (scapy_ns(dst="ff02::1:ff00:99", eth_dst="33:33:ff:00:00:99"), DropReason.BAD_DESTINATION),
        (scapy_ns(dst="ff02::1", eth_dst=ALL_NODES_ETH), DropReason.BAD_DESTINATION),
        (scapy_ns(dst=VIP2, eth_dst=OUR), DropReason.BAD_DESTINATION),
        (scapy_ns(src="::", dst=VIP, eth_dst=OUR, slla=None), DropReason.BAD_DESTINATION),
        (scapy_ns(dst=VIP, eth_dst=OTHER), DropReason.WRONG_ETH_DST),
        (scapy_ns(eth_dst="33:33:ff:00:00:99"), DropReason.WRONG_ETH_DST),
        (scapy_ns(eth_dst=BROADCAST_MAC.hex(":")), DropReason.WRONG_ETH_DST),
        (dad_probe(OUR_MAC, ip6(VIP)), DropReason.FROM_SELF),
        (scapy_ns(eth_src=OUR, slla=OUR), DropReason.FROM_SELF),
        (scapy_ns(slla=OUR), DropReason.FROM_SELF),
        (scapy_ns(src="::"), DropReason.BAD_OPTION),
        (scapy_ns(slla=None, extra=Raw(b"\x01\x00" + bytes(6))), DropReason.BAD_OPTION),
        (scapy_ns(src="ff02::1"), DropReason.BAD_SOURCE),
        (scapy_ns(src=VIP2), DropReason.SENDER_IP_CONFLICT),
        (scapy_ns(src=VIP), DropReason.SENDER_IP_CONFLICT),
    ],
    ids=[
        "multicast",
        "no-slla",
        "slla-wins",
        "unicast-nud",
        "unicast-no-slla",
        "vip2",
        "multicast-to-our-mac",
        "nonce-option",
        "dad",
        "dad-nonce",
        "truncated",
        "short",
        "vlan",
        "arp",
        "version",
        "udp",
        "echo",
        "hop-limit",
        "code",
        "length-20",
        "length-overrun",
        "checksum",
        "na",
        "not-owned",
        "other-group",
        "all-nodes",
        "unicast-other-vip",
        "dad-unicast",
        "unicast-other-mac",
        "wrong-group-mac",
        "broadcast",
        "own-dad",
        "own-ns",
        "own-slla",
        "dad-with-slla",
        "option-length-0",
        "multicast-source",
        "conflict-vip2",
        "conflict-self-target",
    ],
)
def test_answer(frame: bytes, expected: bytes | DropReason) -> None:
    assert ndp_answer(frame, OWNED, OUR_MAC) == expected


def test_answer_accepts_dict_of_owned() -> None:
    assert ndp_answer(REQUEST, {ip6(VIP): "default/web"}, OUR_MAC) == REPLY


def checksum_agrees_with_scapy(frame: bytes) -> bool:
    packet = Ether(frame)
    sent = packet[ICMPv6ND_NA].cksum
    del packet[ICMPv6ND_NA].cksum
    return bool(Ether(bytes(packet))[ICMPv6ND_NA].cksum == sent)


unicast_macs = macs.map(lambda m: bytes([m[0] & 0xFE]) + m[1:])


@settings(deadline=None)
@given(
    peer_mac=unicast_macs,
    peer_ip=unicast_addrs,
    vip=unicast_addrs,
    our_mac=unicast_macs,
    kind=st.sampled_from(["multicast", "unicast", "dad"]),
    slla=st.booleans(),
)
def test_random_solicitations_get_correct_replies(
    peer_mac: bytes, peer_ip: bytes, vip: bytes, our_mac: bytes, kind: str, slla: bool
) -> None:
    assume(peer_mac != our_mac and peer_ip != vip)
    if kind == "dad":
        frame = neighbor_solicitation(peer_mac, UNSPECIFIED, vip, include_slla=False)
    elif kind == "unicast":
        frame = neighbor_solicitation(
            peer_mac, peer_ip, vip, dst=vip, eth_dst=our_mac, include_slla=slla
        )
    else:
        frame = neighbor_solicitation(peer_mac, peer_ip, vip, include_slla=slla)
    reply = ndp_answer(frame, {vip}, our_mac)
    assert isinstance(reply, bytes) and len(reply) == 86
    decoded = Ether(reply)
    ip, na = decoded[IPv6], decoded[ICMPv6ND_NA]
    dad = kind == "dad"
    assert decoded.dst == (ALL_NODES_ETH if dad else format_mac(peer_mac))
    assert decoded.src == format_mac(our_mac)
    assert (ip.nh, ip.hlim, ip.plen) == (58, 255, 32)
    assert ip.src == text6(vip)
    assert ip.dst == ("ff02::1" if dad else text6(peer_ip))
    assert (na.type, na.code, na.R, na.S, na.O) == (136, 0, 0, int(not dad), 1)
    assert na.tgt == text6(vip)
    assert decoded[ICMPv6NDOptDstLLAddr].lladdr == format_mac(our_mac)
    assert checksum_agrees_with_scapy(reply)
    assert parse_ndp(reply) == NeighborAdvertisement(
        ALL_NODES_MAC if dad else peer_mac,
        our_mac,
        vip,
        ALL_NODES if dad else peer_ip,
        vip,
        router=False,
        solicited=not dad,
        override=True,
        target_lladdr=our_mac,
    )


MUTATION_SEEDS = [
    frame
    for target in (VIP, VIP2, "fd00:7::99")
    for frame in (
        scapy_ns(target=target),
        scapy_ns(target=target, dst=target, eth_dst=OUR),
        scapy_ns(target=target, dst=target, eth_dst=OUR, slla=None),
        scapy_ns(target=target, src="::", slla=None),
        scapy_ns(target=target, src=VIP2),
        scapy_ns(target=target, eth_src=OUR),
    )
]


@st.composite
def mutated_solicitations(draw: st.DrawFn) -> bytes:
    """Valid NS (multicast, unicast, DAD) with a few bytes overwritten and, half the time,
    the checksum repaired so mutations reach the checks behind it."""
    frame = bytearray(draw(st.sampled_from(MUTATION_SEEDS)))
    for _ in range(draw(st.integers(0, 3))):
        frame[draw(st.integers(0, len(frame) - 1))] = draw(st.integers(0, 255))
    result = bytes(frame)
    repairable = len(result) >= 58 and 54 + int.from_bytes(result[18:20]) <= len(result)
    if repairable and draw(st.booleans()):
        result = refresh_checksum(result)
    truncate = draw(st.integers(0, 7)) == 0
    return result[: draw(st.integers(0, len(result)))] if truncate else result


RESPONDER_DECISIONS = {
    DropReason.NOT_OWNED,
    DropReason.BAD_DESTINATION,
    DropReason.WRONG_ETH_DST,
    DropReason.FROM_SELF,
    DropReason.SENDER_IP_CONFLICT,
}


@settings(max_examples=1000, deadline=None)
@given(mutated_solicitations())
def test_hot_path_agrees_with_parser(frame: bytes) -> None:
    result = ndp_answer(frame, OWNED, OUR_MAC)
    parsed = parse_ndp(frame)
    event(result if isinstance(result, DropReason) else "answered")
    if isinstance(parsed, DropReason):
        assert result == parsed or result in RESPONDER_DECISIONS
        return
    if isinstance(parsed, NeighborAdvertisement):
        assert result is DropReason.NOT_SOLICITATION
        return
    if parsed.dst[0] == 0xFF:
        addressed = parsed.dst == solicited_node_multicast(parsed.target) and parsed.eth_dst in (
            OUR_MAC,
            b"\x33\x33" + parsed.dst[12:],
        )
    else:
        addressed = parsed.dst == parsed.target and parsed.eth_dst == OUR_MAC
    answerable = (
        parsed.target in OWNED
        and addressed
        and OUR_MAC not in (parsed.eth_src, parsed.source_lladdr)
        and parsed.src not in OWNED
    )
    if not answerable:
        assert isinstance(result, DropReason)
        return
    dad = parsed.is_dad
    assert result == build_na(
        NeighborAdvertisement(
            ALL_NODES_MAC if dad else parsed.source_lladdr or parsed.eth_src,
            OUR_MAC,
            parsed.target,
            ALL_NODES if dad else parsed.src,
            parsed.target,
            solicited=not dad,
            override=True,
            target_lladdr=OUR_MAC,
        )
    )

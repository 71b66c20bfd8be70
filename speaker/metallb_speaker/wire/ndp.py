"""IPv6 Neighbor Discovery (RFC 4861) over Ethernet, as pure bytes in and bytes out.

Only what a layer-2 announcer needs: Neighbor Solicitations in (multicast resolution,
unicast NUD probes and DAD probes), Neighbor Advertisements out, and NA parsing for
conflict detection. Frames carry no extension headers: ICMPv6 follows the fixed IPv6
header directly. As for ARP, `parse_ndp`/`build_ns`/`build_na` are the general pair and
`ndp_answer` is the responder's hot path on untagged frames; addresses are raw bytes.

The ICMPv6 checksum uses one identity: the ones' complement sum of 16-bit words is
congruent to the big-endian integer of those bytes modulo 0xFFFF (2**16 ≡ 1), so a single
`int.from_bytes` over word-aligned data replaces a Python loop over words.
"""

from __future__ import annotations

import enum
from collections.abc import Container
from dataclasses import dataclass

from metallb_speaker.wire.ethernet import (
    ETH_HLEN,
    ETH_P_IPV6,
    VLAN_TPIDS,
    DropReason,
    EthernetHeader,
    ipv6_multicast_mac,
    pack_ethernet,
    parse_ethernet,
)

__all__ = [
    "ALL_NODES",
    "ALL_NODES_MAC",
    "UNSPECIFIED",
    "DropReason",
    "IcmpType",
    "NeighborAdvertisement",
    "NeighborSolicitation",
    "build_na",
    "build_ns",
    "dad_probe",
    "icmpv6_checksum",
    "ndp_answer",
    "neighbor_solicitation",
    "parse_ndp",
    "solicited_node_multicast",
    "unsolicited_na",
]

IPPROTO_ICMPV6 = 58
HOP_LIMIT = 255  # RFC 4861 §7.1: anything less may have crossed a router, so drop it
IPV6_HLEN = 40
NDP_MIN_LEN = 24  # ICMPv6 header + reserved/flags + target
OPT_SOURCE_LLADDR = 1
OPT_TARGET_LLADDR = 2

UNSPECIFIED = bytes(16)
ALL_NODES = bytes.fromhex("ff020000000000000000000000000001")
ALL_NODES_MAC = ipv6_multicast_mac(ALL_NODES)
_from_bytes = int.from_bytes  # bound once: the attribute lookup costs as much as the call
_SOLICITED_PREFIX = bytes.fromhex("ff0200000000000000000001ff")

FLAG_ROUTER = 0x80
FLAG_SOLICITED = 0x40
FLAG_OVERRIDE = 0x20

_ICMP = ETH_HLEN + IPV6_HLEN  # offset of the ICMPv6 header in an untagged frame
_NS_FIXED_END = _ICMP + NDP_MIN_LEN
_ETHERTYPE_IPV6 = ETH_P_IPV6.to_bytes(2, "big")
_NH_HOP = bytes((IPPROTO_ICMPV6, HOP_LIMIT))  # IPv6 header bytes 6..8
_NS_TYPE_CODE = b"\x87\x00"
# An NA we send: version 6, no traffic class/flow, payload 32 (24 + TLLA option).
_NA_IP_HEAD = bytes.fromhex("60000000 0020") + _NH_HOP
_NA_TYPE_CODE = b"\x88\x00"
_TLLA_HEAD = bytes((OPT_TARGET_LLADDR, 1))
_SLLA_HEAD = bytes((OPT_SOURCE_LLADDR, 1))
_NA_FLAGS_SOLICITED = bytes((FLAG_SOLICITED | FLAG_OVERRIDE, 0, 0, 0))
_NA_FLAGS_UNSOLICITED = bytes((FLAG_OVERRIDE, 0, 0, 0))
# Constant words of our NA's checksum: type/code, flags word, TLLA header, length, NH.
_NA_SUM_SOLICITED = 0x8800 + (FLAG_SOLICITED | FLAG_OVERRIDE) * 256 + 0x0201 + 32 + 58
_NA_SUM_UNSOLICITED = 0x8800 + FLAG_OVERRIDE * 256 + 0x0201 + 32 + 58


class IcmpType(enum.IntEnum):
    NEIGHBOR_SOLICITATION = 135
    NEIGHBOR_ADVERTISEMENT = 136


@dataclass(frozen=True, slots=True)
class NeighborSolicitation:
    """A validated NS; `source_lladdr` is the SLLA option (absent in DAD probes)."""

    eth_dst: bytes
    eth_src: bytes
    src: bytes
    dst: bytes
    target: bytes
    source_lladdr: bytes | None = None

    @property
    def is_dad(self) -> bool:
        """Duplicate Address Detection: the sender does not have an address yet."""
        return self.src == UNSPECIFIED


@dataclass(frozen=True, slots=True)
class NeighborAdvertisement:
    """A validated NA; `target_lladdr` is the TLLA option."""

    eth_dst: bytes
    eth_src: bytes
    src: bytes
    dst: bytes
    target: bytes
    router: bool = False
    solicited: bool = False
    override: bool = True
    target_lladdr: bytes | None = None


def solicited_node_multicast(addr: bytes) -> bytes:
    """RFC 4291 §2.7.1: ff02::1:ff00:0/104 + the low 24 bits of `addr`."""
    if len(addr) != 16:
        raise ValueError(f"an IPv6 address is 16 bytes, got {len(addr)}")
    return _SOLICITED_PREFIX + addr[13:]


def icmpv6_checksum(src: bytes, dst: bytes, message: bytes) -> int:
    """RFC 4443 §2.3 checksum of `message` (its checksum field zeroed) for src -> dst."""
    total = int.from_bytes(src + dst, "big") + len(message) + IPPROTO_ICMPV6
    body = int.from_bytes(message, "big")
    total += body << 8 if len(message) & 1 else body
    return -total % 0xFFFF


def _checksum_ok(frame: bytes, ip: int, payload_len: int) -> bool:
    """Sum over src, dst and the message, checksum included: valid iff ≡ 0 mod 0xFFFF.

    src, dst and the ICMPv6 message are contiguous in the frame and start at even
    distances from each other, so one integer covers all three.
    """
    end = ip + IPV6_HLEN + payload_len
    total = int.from_bytes(frame[ip + 8 : end], "big")
    if payload_len & 1:
        total <<= 8
    return (total + payload_len + IPPROTO_ICMPV6) % 0xFFFF == 0


def _options(frame: bytes, start: int, end: int, wanted: int) -> bytes | DropReason | None:
    """Walk the TLV options; return the link-layer address of type `wanted` if any."""
    found: bytes | None = None
    while start < end:
        if start + 2 > end:
            return DropReason.BAD_OPTION
        length = frame[start + 1] * 8
        if length == 0 or start + length > end:  # zero length would loop forever
            return DropReason.BAD_OPTION
        if frame[start] == wanted and length >= 8 and found is None:
            found = frame[start + 2 : start + 8]
        start += length
    return found


def parse_ndp(frame: bytes) -> NeighborSolicitation | NeighborAdvertisement | DropReason:
    """Validate (RFC 4861 §7.1.1/§7.1.2, checksum included) and decode an NS or NA.

    VLAN tags are skipped; anything else is a `DropReason`, never an exception.
    """
    header = parse_ethernet(frame)
    if isinstance(header, DropReason):
        return header
    if header.ethertype != ETH_P_IPV6:
        return DropReason.NOT_IPV6
    ip = header.length
    if len(frame) < ip + IPV6_HLEN:
        return DropReason.TOO_SHORT
    if frame[ip] >> 4 != 6:
        return DropReason.BAD_IP_VERSION
    if frame[ip + 6] != IPPROTO_ICMPV6:
        return DropReason.NOT_ICMPV6
    icmp = ip + IPV6_HLEN
    payload_len = int.from_bytes(frame[ip + 4 : ip + 6], "big")
    end = icmp + payload_len
    if end > len(frame):
        return DropReason.TRUNCATED
    if payload_len == 0:
        return DropReason.BAD_LENGTH
    kind = frame[icmp]
    if kind not in (IcmpType.NEIGHBOR_SOLICITATION, IcmpType.NEIGHBOR_ADVERTISEMENT):
        return DropReason.NOT_NDP
    if payload_len < NDP_MIN_LEN:
        return DropReason.BAD_LENGTH
    if frame[ip + 7] != HOP_LIMIT:
        return DropReason.BAD_HOP_LIMIT
    if frame[icmp + 1] != 0:
        return DropReason.BAD_CODE
    if not _checksum_ok(frame, ip, payload_len):
        return DropReason.BAD_CHECKSUM
    src = frame[ip + 8 : ip + 24]
    dst = frame[ip + 24 : ip + 40]
    target = frame[icmp + 8 : icmp + 24]
    if target[0] == 0xFF:
        return DropReason.BAD_TARGET
    if src[0] == 0xFF:
        return DropReason.BAD_SOURCE
    if kind == IcmpType.NEIGHBOR_SOLICITATION:
        slla = _options(frame, icmp + NDP_MIN_LEN, end, OPT_SOURCE_LLADDR)
        if isinstance(slla, DropReason):
            return slla
        if src == UNSPECIFIED:
            if dst[:13] != _SOLICITED_PREFIX:
                return DropReason.BAD_DESTINATION
            if slla is not None:
                return DropReason.BAD_OPTION
        return NeighborSolicitation(header.dst, header.src, src, dst, target, slla)
    tlla = _options(frame, icmp + NDP_MIN_LEN, end, OPT_TARGET_LLADDR)
    if isinstance(tlla, DropReason):
        return tlla
    flags = frame[icmp + 4]
    solicited = bool(flags & FLAG_SOLICITED)
    if solicited and dst[0] == 0xFF:
        return DropReason.BAD_FLAGS
    return NeighborAdvertisement(
        header.dst,
        header.src,
        src,
        dst,
        target,
        router=bool(flags & FLAG_ROUTER),
        solicited=solicited,
        override=bool(flags & FLAG_OVERRIDE),
        target_lladdr=tlla,
    )


def _ipv6_frame(eth_dst: bytes, eth_src: bytes, src: bytes, dst: bytes, body: bytes) -> bytes:
    """Wrap an ICMPv6 message (checksum field zero) with headers and fill the checksum."""
    if len(src) != 16 or len(dst) != 16:
        raise ValueError("IPv6 addresses are 16 bytes")
    checksum = icmpv6_checksum(src, dst, body).to_bytes(2, "big")
    ip_head = b"\x60\x00\x00\x00" + len(body).to_bytes(2, "big") + _NH_HOP
    return b"".join(
        (
            pack_ethernet(EthernetHeader(eth_dst, eth_src, ETH_P_IPV6)),
            ip_head,
            src,
            dst,
            body[:2],
            checksum,
            body[4:],
        )
    )


def _lladdr_option(kind: int, mac: bytes | None) -> bytes:
    if mac is None:
        return b""
    if len(mac) != 6:
        raise ValueError("MAC addresses are 6 bytes")
    return bytes((kind, 1)) + mac


def build_ns(ns: NeighborSolicitation) -> bytes:
    """Serialise an untagged NS frame with a correct checksum; inverse of `parse_ndp`."""
    if len(ns.target) != 16:
        raise ValueError("IPv6 addresses are 16 bytes")
    body = (
        _NS_TYPE_CODE + bytes(6) + ns.target + _lladdr_option(OPT_SOURCE_LLADDR, ns.source_lladdr)
    )
    return _ipv6_frame(ns.eth_dst, ns.eth_src, ns.src, ns.dst, body)


def build_na(na: NeighborAdvertisement) -> bytes:
    """Serialise an untagged NA frame with a correct checksum; inverse of `parse_ndp`."""
    if len(na.target) != 16:
        raise ValueError("IPv6 addresses are 16 bytes")
    flags = (
        (FLAG_ROUTER if na.router else 0)
        | (FLAG_SOLICITED if na.solicited else 0)
        | (FLAG_OVERRIDE if na.override else 0)
    )
    body = (
        _NA_TYPE_CODE
        + bytes(2)
        + bytes((flags, 0, 0, 0))
        + na.target
        + _lladdr_option(OPT_TARGET_LLADDR, na.target_lladdr)
    )
    return _ipv6_frame(na.eth_dst, na.eth_src, na.src, na.dst, body)


def ndp_answer(frame: bytes, owned: Container[bytes], our_mac: bytes) -> bytes | DropReason:
    """Hot path: the NA answering an NS for an address we own, or why there is none.

    `frame` is an untagged frame as read from the packet socket (must be `bytes`);
    `owned` holds 16-byte addresses. Handles the three kinds of NS: multicast address
    resolution (to the target's solicited-node group), unicast NUD probes (to the target
    itself, Ethernet-addressed to us; MetalLB ignores these, so caches went stale) and
    DAD probes (source ::), which we answer to ff02::1 with S=0 to defend the address.
    An NS whose *source* is an address we own comes from another host using it: that is
    reported as a conflict, not answered.
    """
    if (
        len(frame) < _NS_FIXED_END
        or frame[12:14] != _ETHERTYPE_IPV6
        or frame[20:22] != _NH_HOP
        or frame[54:56] != _NS_TYPE_CODE
        or frame[14] >> 4 != 6
    ):
        return _why_not_solicitation(frame)
    payload_len = (frame[18] << 8) | frame[19]
    end = _ICMP + payload_len
    if end > len(frame):
        return DropReason.TRUNCATED
    if payload_len < NDP_MIN_LEN:
        return DropReason.BAD_LENGTH
    target = frame[62:78]
    if target not in owned:
        return DropReason.NOT_OWNED
    # Inlined `_checksum_ok`: src, dst and the message are contiguous from byte 22.
    total = _from_bytes(frame[22:end], "big")
    if payload_len & 1:
        total <<= 8
    if (total + payload_len + IPPROTO_ICMPV6) % 0xFFFF:
        return DropReason.BAD_CHECKSUM
    if end == 86 and frame[78:80] == _SLLA_HEAD:  # the usual single SLLA option
        slla: bytes | None = frame[80:86]
    elif end == 78:
        slla = None
    else:
        found = _options(frame, _NS_FIXED_END, end, OPT_SOURCE_LLADDR)
        if isinstance(found, DropReason):
            return found
        slla = found
    src = frame[22:38]
    dst = frame[38:54]
    eth_dst = frame[0:6]
    if dst[0] == 0xFF:
        if dst[:13] != _SOLICITED_PREFIX or dst[13:] != target[13:]:
            return DropReason.BAD_DESTINATION
        if eth_dst != our_mac and eth_dst != b"\x33\x33" + dst[12:]:
            return DropReason.WRONG_ETH_DST
    else:
        if dst != target:
            return DropReason.BAD_DESTINATION
        if eth_dst != our_mac:
            return DropReason.WRONG_ETH_DST
    eth_src = frame[6:12]
    if our_mac in (eth_src, slla):
        return DropReason.FROM_SELF
    if src == UNSPECIFIED:
        if dst[0] != 0xFF:
            return DropReason.BAD_DESTINATION
        if slla is not None:
            return DropReason.BAD_OPTION
        reply_mac, reply_ip = ALL_NODES_MAC, ALL_NODES
        flags, words = _NA_FLAGS_UNSOLICITED, _NA_SUM_UNSOLICITED
    else:
        if src[0] == 0xFF:
            return DropReason.BAD_SOURCE
        if src in owned:
            return DropReason.SENDER_IP_CONFLICT
        reply_mac, reply_ip = slla or eth_src, src
        flags, words = _NA_FLAGS_SOLICITED, _NA_SUM_SOLICITED
    if target[0] == 0xFF:
        return DropReason.BAD_TARGET
    total = (
        2 * _from_bytes(target, "big")  # once as IPv6 source, once as NA target
        + _from_bytes(reply_ip, "big")
        + _from_bytes(our_mac, "big")
        + words
    )
    return b"".join(
        (
            reply_mac,
            our_mac,
            _ETHERTYPE_IPV6,
            _NA_IP_HEAD,
            target,
            reply_ip,
            _NA_TYPE_CODE,
            (-total % 0xFFFF).to_bytes(2, "big"),
            flags,
            target,
            _TLLA_HEAD,
            our_mac,
        )
    )


def _why_not_solicitation(frame: bytes) -> DropReason:
    """Slow path of `ndp_answer`: name the reason a frame failed the fixed-bytes test."""
    if int.from_bytes(frame[12:14], "big") in VLAN_TPIDS:
        return DropReason.VLAN_TAGGED
    parsed = parse_ndp(frame)
    if isinstance(parsed, DropReason):
        return parsed
    return DropReason.NOT_SOLICITATION


def neighbor_solicitation(
    src_mac: bytes,
    src: bytes,
    target: bytes,
    *,
    dst: bytes | None = None,
    eth_dst: bytes | None = None,
    include_slla: bool = True,
) -> bytes:
    """Plain NS (tests, load generators). Defaults to multicast address resolution;
    pass `dst=target, eth_dst=<owner MAC>` for a unicast NUD probe."""
    dst = solicited_node_multicast(target) if dst is None else dst
    if eth_dst is None:
        if dst[0] != 0xFF:
            raise ValueError("a unicast NS needs the owner's MAC as eth_dst")
        eth_dst = ipv6_multicast_mac(dst)
    slla = src_mac if include_slla else None
    return build_ns(NeighborSolicitation(eth_dst, src_mac, src, dst, target, slla))


def dad_probe(our_mac: bytes, target: bytes) -> bytes:
    """RFC 4862 §5.4.2 DAD probe: source ::, to the target's solicited-node group, no
    SLLA option; any NA for `target` (or NS from another node) means it is taken."""
    group = solicited_node_multicast(target)
    return build_ns(
        NeighborSolicitation(ipv6_multicast_mac(group), our_mac, UNSPECIFIED, group, target)
    )


def unsolicited_na(our_mac: bytes, addr: bytes) -> bytes:
    """RFC 4861 §7.2.6 announcement to all nodes after a takeover: S=0, O=1 so existing
    cache entries are overwritten with our MAC."""
    return build_na(
        NeighborAdvertisement(
            ALL_NODES_MAC,
            our_mac,
            addr,
            ALL_NODES,
            addr,
            router=False,
            solicited=False,
            override=True,
            target_lladdr=our_mac,
        )
    )

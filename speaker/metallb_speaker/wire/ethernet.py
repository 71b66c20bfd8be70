"""Ethernet II framing, MAC helpers and the drop reasons shared by every wire parser.

Pure: frames go in and out as `bytes`, so the hot paths can be tested and fuzzed without
a network. `DropReason` lives here (the lowest layer) so ARP and NDP report drops with
one enum, which the speaker can use directly as a metrics label.
"""

from __future__ import annotations

import enum
import re
import struct
from dataclasses import dataclass
from typing import NamedTuple

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
# 0x9100 is the pre-802.1ad QinQ TPID some switches still emit.
VLAN_TPIDS = frozenset({ETH_P_8021Q, ETH_P_8021AD, 0x9100})

ETH_HLEN = 14
BROADCAST_MAC = b"\xff" * 6
ZERO_MAC = bytes(6)

_HEADER = struct.Struct("!6s6sH")
_TAG = struct.Struct("!HH")
_MAC_RE = re.compile(r"[0-9a-fA-F]{2}([:-])(?:[0-9a-fA-F]{2}\1){4}[0-9a-fA-F]{2}")


class DropReason(enum.StrEnum):
    """Why a frame was not parsed or not answered (values are metric-label friendly)."""

    TOO_SHORT = enum.auto()
    VLAN_TAGGED = enum.auto()
    # ARP
    NOT_ARP = enum.auto()
    BAD_HARDWARE_TYPE = enum.auto()
    BAD_PROTOCOL_TYPE = enum.auto()
    BAD_ADDRESS_LENGTH = enum.auto()
    UNKNOWN_OP = enum.auto()
    NOT_REQUEST = enum.auto()
    # IPv6 / ICMPv6 / NDP
    NOT_IPV6 = enum.auto()
    BAD_IP_VERSION = enum.auto()
    NOT_ICMPV6 = enum.auto()
    BAD_HOP_LIMIT = enum.auto()
    TRUNCATED = enum.auto()
    BAD_LENGTH = enum.auto()
    BAD_CHECKSUM = enum.auto()
    NOT_NDP = enum.auto()
    BAD_CODE = enum.auto()
    NOT_SOLICITATION = enum.auto()
    BAD_TARGET = enum.auto()
    BAD_SOURCE = enum.auto()
    BAD_DESTINATION = enum.auto()
    BAD_OPTION = enum.auto()
    BAD_FLAGS = enum.auto()
    # responder decisions (the frame was valid, we just must not answer it)
    NOT_OWNED = enum.auto()
    WRONG_ETH_DST = enum.auto()
    FROM_SELF = enum.auto()
    SENDER_IP_CONFLICT = enum.auto()


def parse_mac(text: str) -> bytes:
    """'aa:bb:cc:dd:ee:ff' (or dash-separated, any case) -> 6 bytes; ValueError otherwise."""
    if not _MAC_RE.fullmatch(text):
        raise ValueError(f"not a MAC address: {text!r}")
    return bytes.fromhex(text.replace(text[2], ""))


def format_mac(mac: bytes) -> str:
    """6 bytes -> 'aa:bb:cc:dd:ee:ff' (lower case, the form Kubernetes and `ip` print)."""
    if len(mac) != 6:
        raise ValueError(f"a MAC is 6 bytes, got {len(mac)}")
    return mac.hex(":")


def is_multicast_mac(mac: bytes) -> bool:
    """The I/G bit: set for group (multicast and broadcast) addresses."""
    return bool(mac[0] & 1)


def ipv6_multicast_mac(addr: bytes) -> bytes:
    """RFC 2464 §7: an IPv6 multicast group maps to 33:33 + its last 32 bits."""
    if len(addr) != 16:
        raise ValueError(f"an IPv6 address is 16 bytes, got {len(addr)}")
    return b"\x33\x33" + addr[12:]


class VlanTag(NamedTuple):
    """One 802.1Q/802.1ad tag as it sits on the wire."""

    tpid: int
    tci: int

    @property
    def vid(self) -> int:
        return self.tci & 0x0FFF

    @property
    def pcp(self) -> int:
        return self.tci >> 13


@dataclass(frozen=True, slots=True)
class EthernetHeader:
    """An Ethernet II header; `ethertype` is the inner one when VLAN tags are present."""

    dst: bytes
    src: bytes
    ethertype: int
    tags: tuple[VlanTag, ...] = ()

    @property
    def length(self) -> int:
        """Bytes before the payload, so callers can slice `frame[header.length:]`."""
        return ETH_HLEN + 4 * len(self.tags)


def pack_ethernet(header: EthernetHeader) -> bytes:
    """Serialise a header (tags outermost first); the payload is appended by the caller."""
    if len(header.dst) != 6 or len(header.src) != 6:
        raise ValueError("MAC addresses are 6 bytes")
    if not header.tags:
        return _HEADER.pack(header.dst, header.src, header.ethertype)
    out = [header.dst, header.src]
    out.extend(_TAG.pack(tag.tpid, tag.tci) for tag in header.tags)
    out.append(header.ethertype.to_bytes(2, "big"))
    return b"".join(out)


def parse_ethernet(frame: bytes) -> EthernetHeader | DropReason:
    """Parse the header, stepping over any stacked VLAN tags; never raises."""
    if len(frame) < ETH_HLEN:
        return DropReason.TOO_SHORT
    dst, src, ethertype = _HEADER.unpack_from(frame)
    tags: list[VlanTag] = []
    offset = 12
    while ethertype in VLAN_TPIDS:
        if len(frame) < offset + 6:
            return DropReason.TOO_SHORT
        tpid, tci = _TAG.unpack_from(frame, offset)
        tags.append(VlanTag(tpid, tci))
        offset += 4
        ethertype = int.from_bytes(frame[offset : offset + 2], "big")
    return EthernetHeader(dst, src, ethertype, tuple(tags))

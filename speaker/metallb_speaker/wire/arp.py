"""ARP over Ethernet for IPv4 (RFC 826, RFC 5227), as pure bytes in and bytes out.

Two layers: `parse_arp`/`build_arp` are the general, VLAN-tolerant pair used for
conflict detection and tests; `arp_answer` is the responder's hot path, which works on
untagged frames with fixed offsets and slices only what it must, because it runs once
per ARP request seen on the segment. Addresses are raw `bytes` (4-byte IPv4, 6-byte MAC)
so the owned-address set can be probed with a frame slice without converting anything.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Container
from dataclasses import dataclass

from metallb_speaker.wire.ethernet import (
    BROADCAST_MAC,
    ETH_P_ARP,
    ETH_P_IP,
    VLAN_TPIDS,
    ZERO_MAC,
    DropReason,
    parse_ethernet,
)

__all__ = [
    "ARP_FRAME_LEN",
    "ZERO_IP",
    "ArpOp",
    "ArpPacket",
    "DropReason",
    "arp_answer",
    "arp_probe",
    "arp_reply",
    "arp_request",
    "build_arp",
    "gratuitous_arp_reply",
    "gratuitous_arp_request",
    "parse_arp",
]

ARP_FRAME_LEN = 42  # 14 Ethernet + 28 ARP; senders pad to 60, we never do
ZERO_IP = bytes(4)
_HTYPE_ETHERNET = 1

_ARP = struct.Struct("!HHBBH6s4s6s4s")
# Bytes 12..22 of an untagged frame: ethertype, htype, ptype, hlen, plen, op.
_REQUEST_PREFIX = bytes.fromhex("0806 0001 0800 06 04 0001")
_REPLY_PREFIX = bytes.fromhex("0806 0001 0800 06 04 0002")


class ArpOp(enum.IntEnum):
    REQUEST = 1
    REPLY = 2


@dataclass(frozen=True, slots=True)
class ArpPacket:
    """One Ethernet/IPv4 ARP packet with the Ethernet addresses it travelled with."""

    op: ArpOp
    sender_mac: bytes
    sender_ip: bytes
    target_mac: bytes
    target_ip: bytes
    eth_src: bytes
    eth_dst: bytes

    @property
    def is_gratuitous(self) -> bool:
        """Sender announces its own address (both forms MetalLB sends look like this)."""
        return self.sender_ip == self.target_ip

    @property
    def is_probe(self) -> bool:
        """RFC 5227 probe: someone checks whether `target_ip` is free before using it."""
        return self.op is ArpOp.REQUEST and self.sender_ip == ZERO_IP


def parse_arp(frame: bytes) -> ArpPacket | DropReason:
    """Validate and decode any ARP frame (VLAN tags skipped); never raises."""
    header = parse_ethernet(frame)
    if isinstance(header, DropReason):
        return header
    if header.ethertype != ETH_P_ARP:
        return DropReason.NOT_ARP
    offset = header.length
    if len(frame) < offset + _ARP.size:
        return DropReason.TOO_SHORT
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(frame, offset)
    if htype != _HTYPE_ETHERNET:
        return DropReason.BAD_HARDWARE_TYPE
    if ptype != ETH_P_IP:
        return DropReason.BAD_PROTOCOL_TYPE
    if hlen != 6 or plen != 4:
        return DropReason.BAD_ADDRESS_LENGTH
    if op not in (ArpOp.REQUEST, ArpOp.REPLY):
        return DropReason.UNKNOWN_OP
    return ArpPacket(ArpOp(op), sha, spa, tha, tpa, header.src, header.dst)


def build_arp(packet: ArpPacket) -> bytes:
    """Serialise an untagged, unpadded (42-byte) frame; inverse of `parse_arp`."""
    macs = (packet.sender_mac, packet.target_mac, packet.eth_src, packet.eth_dst)
    if any(len(m) != 6 for m in macs):
        raise ValueError("MAC addresses are 6 bytes")
    if len(packet.sender_ip) != 4 or len(packet.target_ip) != 4:
        raise ValueError("IPv4 addresses are 4 bytes")
    return b"".join(
        (
            packet.eth_dst,
            packet.eth_src,
            _REQUEST_PREFIX[:8],
            int(packet.op).to_bytes(2, "big"),
            packet.sender_mac,
            packet.sender_ip,
            packet.target_mac,
            packet.target_ip,
        )
    )


def arp_answer(frame: bytes, owned: Container[bytes], our_mac: bytes) -> bytes | DropReason:
    """Hot path: the reply to an ARP request for an address we own, or why there is none.

    `frame` is an untagged frame as read from the packet socket (must be `bytes`, so its
    slices hash); `owned` holds 4-byte addresses. Requests for owned addresses are
    answered even when they are RFC 5227 probes (sender 0.0.0.0): that is how the prober
    learns the address is taken. A request whose *sender* IP is one we own comes from
    another host claiming our address, so it is reported as a conflict, not answered.
    """
    if len(frame) < ARP_FRAME_LEN or frame[12:22] != _REQUEST_PREFIX:
        return _why_not_request(frame)
    target_ip = frame[38:42]
    if target_ip not in owned:
        return DropReason.NOT_OWNED
    eth_dst = frame[0:6]
    if eth_dst not in (BROADCAST_MAC, our_mac):
        return DropReason.WRONG_ETH_DST
    sender_mac = frame[22:28]
    if sender_mac == our_mac:
        return DropReason.FROM_SELF
    sender_ip = frame[28:32]
    if sender_ip in owned:
        return DropReason.SENDER_IP_CONFLICT
    return b"".join((sender_mac, our_mac, _REPLY_PREFIX, our_mac, target_ip, sender_mac, sender_ip))


def _why_not_request(frame: bytes) -> DropReason:
    """Slow path of `arp_answer`: name the reason a frame failed the length or
    fixed-prefix test (the parser's reason, so both report drops alike)."""
    if int.from_bytes(frame[12:14], "big") in VLAN_TPIDS:
        return DropReason.VLAN_TAGGED
    parsed = parse_arp(frame)
    if isinstance(parsed, DropReason):
        return parsed
    return DropReason.NOT_REQUEST


def _frame(
    op: ArpOp,
    eth_dst: bytes,
    sender_mac: bytes,
    sender_ip: bytes,
    target_mac: bytes,
    target_ip: bytes,
) -> bytes:
    packet = ArpPacket(op, sender_mac, sender_ip, target_mac, target_ip, sender_mac, eth_dst)
    return build_arp(packet)


def arp_request(
    sender_mac: bytes,
    sender_ip: bytes,
    target_ip: bytes,
    *,
    eth_dst: bytes = BROADCAST_MAC,
    target_mac: bytes = ZERO_MAC,
) -> bytes:
    """Plain who-has request (load generators, tests; a unicast `eth_dst` makes it a
    refresh probe like the ones Linux sends for stale neighbours)."""
    return _frame(ArpOp.REQUEST, eth_dst, sender_mac, sender_ip, target_mac, target_ip)


def arp_reply(sender_mac: bytes, sender_ip: bytes, target_mac: bytes, target_ip: bytes) -> bytes:
    """Unicast is-at reply to `target_mac` (the same bytes `arp_answer` produces)."""
    return _frame(ArpOp.REPLY, target_mac, sender_mac, sender_ip, target_mac, target_ip)


def gratuitous_arp_request(mac: bytes, ip: bytes) -> bytes:
    """Request-form announcement (RFC 5227 §3): hosts that ignore unsolicited replies
    still update an existing cache entry from a broadcast request."""
    return _frame(ArpOp.REQUEST, BROADCAST_MAC, mac, ip, ZERO_MAC, ip)


def gratuitous_arp_reply(mac: bytes, ip: bytes) -> bytes:
    """Reply-form announcement, sent alongside the request form as MetalLB does, for
    stacks that only learn from replies."""
    return _frame(ArpOp.REPLY, BROADCAST_MAC, mac, ip, BROADCAST_MAC, ip)


def arp_probe(mac: bytes, ip: bytes) -> bytes:
    """RFC 5227 probe: sender IP 0.0.0.0 so no cache is polluted while we ask whether
    `ip` is already in use; any reply (or request with sender `ip`) means conflict."""
    return _frame(ArpOp.REQUEST, BROADCAST_MAC, mac, ZERO_IP, ZERO_MAC, ip)

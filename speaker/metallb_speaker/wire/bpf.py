"""Classic BPF socket filters for the speaker's packet sockets, as pure data.

The kernel runs these on every frame of the interface before it is queued to our socket,
so a busy node only wakes the speaker for frames it might answer. Programs are tuples of
`Insn` (struct sock_filter) and `pack` turns them into the bytes SO_ATTACH_FILTER takes.
Offsets are fixed for untagged frames: packet sockets see VLAN tags stripped into
metadata on offloading NICs, and a tagged frame simply fails the ethertype test.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from metallb_speaker.wire.ethernet import ETH_P_ARP, ETH_P_IPV6

__all__ = [
    "ACCEPT",
    "REJECT",
    "Insn",
    "Program",
    "arp_all",
    "arp_requests",
    "jeq",
    "ldb",
    "ldh",
    "ndp_all",
    "ndp_solicitations",
    "pack",
    "ret",
]

# Opcode pieces from linux/filter.h (only the ones these programs use, plus the classes
# a reader needs to decode them).
BPF_LD = 0x00
BPF_JMP = 0x05
BPF_RET = 0x06
BPF_W = 0x00
BPF_H = 0x08
BPF_B = 0x10
BPF_ABS = 0x20
BPF_JA = 0x00
BPF_JEQ = 0x10
BPF_K = 0x00
BPF_MAXINSNS = 4096

ACCEPT = 0x40000  # snap length: more than any frame, so the whole frame is kept
REJECT = 0

_INSN = struct.Struct("=HBBI")  # host byte order, as the kernel reads it


class Insn(NamedTuple):
    """struct sock_filter: jt/jf are forward skips counted from the next instruction."""

    code: int
    jt: int
    jf: int
    k: int


Program = tuple[Insn, ...]


def ldh(offset: int) -> Insn:
    """A <- big-endian u16 at `offset`."""
    return Insn(BPF_LD | BPF_H | BPF_ABS, 0, 0, offset)


def ldb(offset: int) -> Insn:
    """A <- u8 at `offset`."""
    return Insn(BPF_LD | BPF_B | BPF_ABS, 0, 0, offset)


def jeq(k: int, jt: int, jf: int) -> Insn:
    """if A == k skip `jt` else skip `jf` instructions."""
    return Insn(BPF_JMP | BPF_JEQ | BPF_K, jt, jf, k)


def ret(k: int) -> Insn:
    """Accept `k` bytes of the frame (0 drops it)."""
    return Insn(BPF_RET | BPF_K, 0, 0, k)


_ETHERTYPE = 12
_ARP_OP = 14 + 6
_IPV6_NEXT_HEADER = 14 + 6
_ICMPV6_TYPE = 14 + 40
_ICMPV6 = 58
_NS = 135
_NA = 136


def arp_all() -> Program:
    """Every ARP frame: for conflict detection, which must see replies too."""
    return (
        ldh(_ETHERTYPE),
        jeq(ETH_P_ARP, 0, 1),
        ret(ACCEPT),
        ret(REJECT),
    )


def arp_requests() -> Program:
    """ARP requests only: what the responder answers. Also hides our own outgoing
    replies, which a packet socket would otherwise read back."""
    return (
        ldh(_ETHERTYPE),
        jeq(ETH_P_ARP, 0, 3),
        ldh(_ARP_OP),
        jeq(1, 0, 1),
        ret(ACCEPT),
        ret(REJECT),
    )


def ndp_solicitations() -> Program:
    """IPv6 + ICMPv6 (no extension headers) Neighbor Solicitations: what the responder
    answers; our own advertisements stay out."""
    return (
        ldh(_ETHERTYPE),
        jeq(ETH_P_IPV6, 0, 5),
        ldb(_IPV6_NEXT_HEADER),
        jeq(_ICMPV6, 0, 3),
        ldb(_ICMPV6_TYPE),
        jeq(_NS, 0, 1),
        ret(ACCEPT),
        ret(REJECT),
    )


def ndp_all() -> Program:
    """Neighbor Solicitations and Advertisements: for conflict detection."""
    return (
        ldh(_ETHERTYPE),
        jeq(ETH_P_IPV6, 0, 6),
        ldb(_IPV6_NEXT_HEADER),
        jeq(_ICMPV6, 0, 4),
        ldb(_ICMPV6_TYPE),
        jeq(_NS, 1, 0),
        jeq(_NA, 0, 1),
        ret(ACCEPT),
        ret(REJECT),
    )


def pack(program: Program) -> bytes:
    """The sock_filter array for SO_ATTACH_FILTER, after the structural checks the kernel
    would otherwise reject with a bare EINVAL."""
    if not 0 < len(program) <= BPF_MAXINSNS:
        raise ValueError(f"a program has 1..{BPF_MAXINSNS} instructions, got {len(program)}")
    last = len(program) - 1
    for pc, insn in enumerate(program):
        if insn.code & 0x07 != BPF_JMP:
            continue
        skip = insn.k if insn.code & 0xF0 == BPF_JA else max(insn.jt, insn.jf)
        if pc + 1 + skip > last:
            raise ValueError(f"instruction {pc} jumps past the end")
    if program[last].code & 0x07 != BPF_RET:
        raise ValueError("a program must end with a return")
    return b"".join(_INSN.pack(*insn) for insn in program)

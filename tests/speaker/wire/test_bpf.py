"""cBPF programs, run by a small interpreter over scapy-built frames of every kind."""

from __future__ import annotations

import struct
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    ICMPv6MLReport2,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RS,
    IPv6,
    IPv6ExtHdrHopByHop,
    RouterAlert,
)
from scapy.layers.l2 import ARP, Dot1Q, Ether

from metallb_speaker.wire import bpf
from metallb_speaker.wire.bpf import ACCEPT, REJECT, Insn, Program

pytestmark = pytest.mark.unit

MAC = "02:00:5e:00:00:02"
BCAST = "ff:ff:ff:ff:ff:ff"


def run(program: Program, frame: bytes) -> int:
    """Classic BPF semantics for the instructions the programs may use: loads past the
    end of the frame reject it, as in the kernel."""
    a = x = 0
    pc = 0
    while True:
        code, jt, jf, k = program[pc]
        pc += 1
        cls = code & 0x07
        if cls == bpf.BPF_RET:
            assert code & 0x18 == bpf.BPF_K, "only constant returns are modelled"
            return k
        if cls == bpf.BPF_LD:
            assert code & 0xE0 == bpf.BPF_ABS, "only absolute loads are modelled"
            size = {bpf.BPF_W: 4, bpf.BPF_H: 2, bpf.BPF_B: 1}[code & 0x18]
            if k + size > len(frame):
                return 0
            a = int.from_bytes(frame[k : k + size], "big")
        elif cls == bpf.BPF_JMP:
            op = code & 0xF0
            operand = x if code & 0x08 else k
            if op == bpf.BPF_JA:
                pc += k
                continue
            taken = {
                0x10: a == operand,  # JEQ
                0x20: a > operand,  # JGT
                0x30: a >= operand,  # JGE
                0x40: bool(a & operand),  # JSET
            }[op]
            pc += jt if taken else jf
        else:
            raise AssertionError(f"unmodelled instruction class {cls}")


def eth(dst: str = BCAST) -> Ether:
    return Ether(dst=dst, src=MAC)


def v6() -> IPv6:
    return IPv6(src="fd00:7::2", dst="fd00:7::100", hlim=255)


ARP_REQUEST = bytes(eth() / ARP(op=1, hwsrc=MAC, psrc="198.18.0.2", pdst="198.18.0.100"))
FRAMES: dict[str, bytes] = {
    "arp-request": ARP_REQUEST,
    "arp-reply": bytes(eth() / ARP(op=2, hwsrc=MAC, psrc="198.18.0.2", pdst="198.18.0.100")),
    "arp-op3": bytes(eth() / ARP(op=3, hwsrc=MAC, psrc="198.18.0.2", pdst="198.18.0.100")),
    "ns": bytes(eth("33:33:ff:00:01:00") / v6() / ICMPv6ND_NS(tgt="fd00:7::100")),
    "na": bytes(eth() / v6() / ICMPv6ND_NA(tgt="fd00:7::100")),
    "rs": bytes(eth() / v6() / ICMPv6ND_RS()),
    "echo6": bytes(eth() / v6() / ICMPv6EchoRequest()),
    "udp6": bytes(eth() / v6() / UDP()),
    "mld-hbh": bytes(
        eth("33:33:00:00:00:16")
        / IPv6(src="fd00:7::2", dst="ff02::16", hlim=1)
        / IPv6ExtHdrHopByHop(options=[RouterAlert()])
        / ICMPv6MLReport2()
    ),
    "ping4": bytes(eth() / IP(src="198.18.0.2", dst="198.18.0.100") / ICMP()),
    "udp4-135": bytes(eth() / IP(src="198.18.0.2", dst="198.18.0.100") / UDP(sport=135)),
    "vlan-arp": bytes(
        eth() / Dot1Q(vlan=5) / ARP(op=1, hwsrc=MAC, psrc="198.18.0.2", pdst="198.18.0.100")
    ),
    "vlan-ns": bytes(eth() / Dot1Q(vlan=5) / v6() / ICMPv6ND_NS(tgt="fd00:7::100")),
    "runt-arp": ARP_REQUEST[:18],
    "runt-v6": bytes(eth() / v6() / ICMPv6ND_NS(tgt="fd00:7::100"))[:54],
    "empty": b"",
}

ACCEPTS = {
    "arp_requests": {"arp-request"},
    "arp_all": {"arp-request", "arp-reply", "arp-op3", "runt-arp"},
    "ndp_solicitations": {"ns"},
    "ndp_all": {"ns", "na"},
}


@pytest.mark.parametrize("program_name", sorted(ACCEPTS))
@pytest.mark.parametrize("frame_name", sorted(FRAMES))
def test_accept_table(program_name: str, frame_name: str) -> None:
    program: Program = getattr(bpf, program_name)()
    verdict = run(program, FRAMES[frame_name])
    expected = ACCEPT if frame_name in ACCEPTS[program_name] else REJECT
    assert verdict == expected


@pytest.mark.parametrize("program_name", sorted(ACCEPTS))
@given(frame=st.binary(max_size=100))
def test_programs_terminate_with_a_verdict(program_name: str, frame: bytes) -> None:
    assert run(getattr(bpf, program_name)(), frame) in (ACCEPT, REJECT)


@pytest.mark.parametrize("program_name", sorted(ACCEPTS))
def test_pack_layout(program_name: str) -> None:
    program: Program = getattr(bpf, program_name)()
    packed = bpf.pack(program)
    assert len(packed) == 8 * len(program)
    assert [Insn(*fields) for fields in struct.iter_unpack("=HBBI", packed)] == list(program)


@pytest.mark.skipif(sys.byteorder != "little", reason="checks the x86/arm64 layout")
def test_pack_is_host_order_sock_filter() -> None:
    assert bpf.pack((bpf.ldh(12), bpf.ret(ACCEPT))) == bytes.fromhex(
        "2800 00 00 0c000000  0600 00 00 00000400"
    )


@pytest.mark.parametrize(
    "program",
    [
        (),
        (bpf.ldh(12),),
        (bpf.ldh(12), bpf.jeq(1, 0, 2), bpf.ret(ACCEPT), bpf.ret(REJECT)),
        (Insn(bpf.BPF_JMP | bpf.BPF_JA, 0, 0, 1), bpf.ret(ACCEPT)),
        (bpf.ret(ACCEPT),) * (bpf.BPF_MAXINSNS + 1),
    ],
    ids=["empty", "no-return", "jump-past-end", "ja-past-end", "too-long"],
)
def test_pack_rejects_malformed(program: Program) -> None:
    with pytest.raises(ValueError):
        bpf.pack(program)

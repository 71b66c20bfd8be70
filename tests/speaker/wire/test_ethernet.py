"""Ethernet framing and MAC helpers, checked byte-for-byte against scapy."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether
from scapy.utils6 import in6_getnsmac

from metallb_speaker.wire.ethernet import (
    BROADCAST_MAC,
    ETH_P_8021AD,
    ETH_P_8021Q,
    ETH_P_ARP,
    ETH_P_IPV6,
    DropReason,
    EthernetHeader,
    VlanTag,
    format_mac,
    ipv6_multicast_mac,
    is_multicast_mac,
    pack_ethernet,
    parse_ethernet,
    parse_mac,
)

pytestmark = pytest.mark.unit

MAC_A = "02:00:5e:10:00:01"
MAC_B = "0a:1b:2c:3d:4e:5f"

macs = st.binary(min_size=6, max_size=6)
tags = st.builds(
    VlanTag,
    st.sampled_from([ETH_P_8021Q, ETH_P_8021AD, 0x9100]),
    st.integers(0, 0xFFFF),
)
ethertypes = st.integers(0, 0xFFFF).filter(lambda t: t not in (0x8100, 0x88A8, 0x9100))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("02:00:5e:10:00:01", bytes.fromhex("02005e100001")),
        ("0A:1B:2C:3D:4E:5F", bytes.fromhex("0a1b2c3d4e5f")),
        ("0a-1b-2c-3d-4e-5f", bytes.fromhex("0a1b2c3d4e5f")),
        ("ff:ff:ff:ff:ff:ff", BROADCAST_MAC),
    ],
)
def test_parse_mac(text: str, expected: bytes) -> None:
    assert parse_mac(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "02:00:5e:10:00",
        "02:00:5e:10:00:01:02",
        "02:00:5e-10:00:01",
        "0g:00:00:00:00:00",
        "2:0:5e:10:0:1",
        "02:00:5e:10:00:01\n",
        "02005e100001",
    ],
)
def test_parse_mac_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_mac(text)


@given(macs)
def test_mac_text_round_trip(mac: bytes) -> None:
    assert parse_mac(format_mac(mac)) == mac
    assert format_mac(mac) == format_mac(parse_mac(format_mac(mac).upper()))


def test_format_mac_rejects_wrong_length() -> None:
    with pytest.raises(ValueError):
        format_mac(bytes(5))


@pytest.mark.parametrize(
    ("mac", "multicast"),
    [
        (BROADCAST_MAC, True),
        (parse_mac("33:33:00:00:00:01"), True),
        (parse_mac("01:00:5e:00:00:01"), True),
        (parse_mac(MAC_A), False),
    ],
)
def test_is_multicast_mac(mac: bytes, multicast: bool) -> None:
    assert is_multicast_mac(mac) is multicast


@pytest.mark.parametrize(
    "group", ["ff02::1", "ff02::1:ff00:1234", "ff02::1:ffab:cdef", "ff05::1:3"]
)
def test_ipv6_multicast_mac_matches_scapy(group: str) -> None:
    packed = ipaddress.IPv6Address(group).packed
    assert format_mac(ipv6_multicast_mac(packed)) == in6_getnsmac(packed)


def test_ipv6_multicast_mac_rejects_ipv4() -> None:
    with pytest.raises(ValueError):
        ipv6_multicast_mac(bytes(4))


@pytest.mark.parametrize(
    ("header", "oracle"),
    [
        (
            EthernetHeader(BROADCAST_MAC, parse_mac(MAC_A), ETH_P_ARP),
            Ether(dst="ff:ff:ff:ff:ff:ff", src=MAC_A, type=ETH_P_ARP),
        ),
        (
            EthernetHeader(parse_mac(MAC_B), parse_mac(MAC_A), ETH_P_IPV6),
            Ether(dst=MAC_B, src=MAC_A, type=ETH_P_IPV6),
        ),
        (
            EthernetHeader(
                parse_mac(MAC_B), parse_mac(MAC_A), ETH_P_ARP, (VlanTag(ETH_P_8021Q, 0x6064),)
            ),
            Ether(dst=MAC_B, src=MAC_A) / Dot1Q(prio=3, vlan=100, type=ETH_P_ARP),
        ),
        (
            EthernetHeader(
                BROADCAST_MAC,
                parse_mac(MAC_A),
                ETH_P_IPV6,
                (VlanTag(ETH_P_8021AD, 7), VlanTag(ETH_P_8021Q, 42)),
            ),
            Ether(dst="ff:ff:ff:ff:ff:ff", src=MAC_A)
            / Dot1AD(vlan=7)
            / Dot1Q(vlan=42, type=ETH_P_IPV6),
        ),
    ],
)
def test_pack_matches_scapy(header: EthernetHeader, oracle: Ether) -> None:
    assert pack_ethernet(header) == bytes(oracle)
    assert parse_ethernet(bytes(oracle) + b"payload") == header


def test_header_length_and_vlan_fields() -> None:
    tag = VlanTag(ETH_P_8021Q, 0x6064)
    assert (tag.pcp, tag.vid) == (3, 100)
    header = EthernetHeader(BROADCAST_MAC, BROADCAST_MAC, ETH_P_ARP, (tag, tag))
    assert header.length == 22


@pytest.mark.parametrize(
    "frame",
    [b"", bytes(13), bytes(12) + b"\x81\x00" + bytes(3), bytes(12) + b"\x81\x00\x00\x01\x88"],
)
def test_parse_too_short(frame: bytes) -> None:
    assert parse_ethernet(frame) is DropReason.TOO_SHORT


def test_pack_rejects_bad_mac() -> None:
    with pytest.raises(ValueError):
        pack_ethernet(EthernetHeader(bytes(5), bytes(6), ETH_P_ARP))


@given(macs, macs, ethertypes, st.lists(tags, max_size=3), st.binary(max_size=64))
def test_round_trip(
    dst: bytes, src: bytes, ethertype: int, vlans: list[VlanTag], payload: bytes
) -> None:
    header = EthernetHeader(dst, src, ethertype, tuple(vlans))
    frame = pack_ethernet(header) + payload
    assert parse_ethernet(frame) == header
    assert frame[header.length :] == payload


@given(st.binary(max_size=80))
def test_parse_never_raises(frame: bytes) -> None:
    result = parse_ethernet(frame)
    assert isinstance(result, EthernetHeader | DropReason)


def test_drop_reasons_are_label_friendly() -> None:
    assert str(DropReason.NOT_ARP) == "not_arp"
    assert all(r.value.isidentifier() and r.value.islower() for r in DropReason)

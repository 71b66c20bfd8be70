"""Address entries: IP, IPRange, parse_entry, parse_ip and the .0/.255 counting."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metallb_api.addresses import IP, AddressError, Family, IPRange, parse_entry, parse_ip

pytestmark = pytest.mark.unit

V4, V6 = Family.V4, Family.V6


def v4(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def v6(text: str) -> int:
    return int(ipaddress.IPv6Address(text))


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("10.0.0.0/24", IPRange(V4, v4("10.0.0.0"), v4("10.0.0.255"))),
        ("10.0.0.5/24", IPRange(V4, v4("10.0.0.0"), v4("10.0.0.255"))),  # host bits ok
        ("10.0.0.7/32", IPRange(V4, v4("10.0.0.7"), v4("10.0.0.7"))),
        ("0.0.0.0/0", IPRange(V4, 0, 2**32 - 1)),
        ("10.0.0.0/8", IPRange(V4, v4("10.0.0.0"), v4("10.255.255.255"))),
        ("  192.168.1.0/30  ", IPRange(V4, v4("192.168.1.0"), v4("192.168.1.3"))),
        ("10.0.0.1-10.0.0.9", IPRange(V4, v4("10.0.0.1"), v4("10.0.0.9"))),
        ("10.0.0.1 - 10.0.0.9", IPRange(V4, v4("10.0.0.1"), v4("10.0.0.9"))),
        ("10.0.0.1 -10.0.0.9", IPRange(V4, v4("10.0.0.1"), v4("10.0.0.9"))),
        ("10.0.0.5-10.0.0.5", IPRange(V4, v4("10.0.0.5"), v4("10.0.0.5"))),
        ("fd00::/64", IPRange(V6, v6("fd00::"), v6("fd00::ffff:ffff:ffff:ffff"))),
        ("fd00::1/64", IPRange(V6, v6("fd00::"), v6("fd00::ffff:ffff:ffff:ffff"))),
        ("fd00::1-fd00::ff", IPRange(V6, v6("fd00::1"), v6("fd00::ff"))),
        ("fd00::1 - fd00::ff", IPRange(V6, v6("fd00::1"), v6("fd00::ff"))),
        ("FD00::A-FD00::B", IPRange(V6, v6("fd00::a"), v6("fd00::b"))),
        ("::/0", IPRange(V6, 0, 2**128 - 1)),
    ],
)
def test_parse_entry_valid(entry: str, expected: IPRange) -> None:
    assert parse_entry(entry) == expected


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("10.0.0.1", "expected a CIDR"),
        ("fd00::1", "expected a CIDR"),
        ("10.0.0.9-10.0.0.1", "start is after end"),
        ("10.0.0.1-fd00::1", "different families"),
        ("10.0.0.1-10.0.0.2-10.0.0.3", "exactly one '-'"),
        ("10.0.0.1-", "invalid range"),
        ("-10.0.0.1", "invalid range"),
        ("10.0.0.300-10.0.0.301", "invalid range"),
        ("10.0.0.0/33", "invalid CIDR"),
        ("10.0.0.0/abc", "invalid CIDR"),
        ("fd00::/129", "invalid CIDR"),
        ("bogus/24", "invalid CIDR"),
        ("::ffff:10.0.0.1-::ffff:10.0.0.5", "IPv4-mapped"),
        ("fe80::1%eth0-fe80::5%eth0", "zoned"),
        # CIDRs follow the same rule: what a pool hands out must parse back from status
        ("::ffff:10.0.0.0/120", "IPv4-mapped"),
        ("fe80::%eth0/64", "zoned"),
    ],
)
def test_parse_entry_invalid_names_the_entry(entry: str, message: str) -> None:
    with pytest.raises(AddressError, match=message) as info:
        parse_entry(entry)
    if entry.strip():
        assert repr(entry) in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.1", IP(V4, v4("10.0.0.1"))),
        (" 10.0.0.1 ", IP(V4, v4("10.0.0.1"))),
        ("fd00::1", IP(V6, 0xFD00 << 112 | 1)),
        ("FD00:0:0::1", IP(V6, 0xFD00 << 112 | 1)),
    ],
)
def test_parse_ip(text: str, expected: IP) -> None:
    assert parse_ip(text) == expected
    assert IP.parse(text) == expected


@pytest.mark.parametrize(
    "text", ["", "10.0.0.256", "10.0.0", "010.0.0.1", "10.0.0.0/24", "::ffff:1.2.3.4",
             "fe80::1%eth0", "host.example"],
)
def test_parse_ip_invalid(text: str) -> None:
    with pytest.raises(AddressError, match="invalid IP address"):
        parse_ip(text)


def test_ip_is_cheap_tuple_ordered_v4_before_v6() -> None:
    a, b, c = IP.parse("10.0.0.2"), IP.parse("200.0.0.1"), IP.parse("::1")
    assert sorted([c, b, a]) == [a, b, c]
    assert a == (V4, v4("10.0.0.2"))
    assert hash(a) == hash(IP.parse("10.0.0.2"))
    assert IP(V4, 1) != IP(V6, 1)


@pytest.mark.parametrize(
    ("text", "shown"), [("10.0.0.1", "10.0.0.1"), ("FD00:0::01", "fd00::1"), ("::", "::")],
)
def test_ip_str_is_canonical(text: str, shown: str) -> None:
    assert str(IP.parse(text)) == shown


@pytest.mark.parametrize(
    ("text", "buggy"),
    [("10.0.0.0", True), ("10.0.0.255", True), ("10.0.1.0", True), ("10.0.0.1", False),
     ("10.0.0.254", False), ("fd00::", False), ("fd00::ff", False)],
)
def test_is_buggy(text: str, buggy: bool) -> None:
    assert IP.parse(text).is_buggy is buggy


def test_family_properties() -> None:
    assert (V4.label, V4.bits, V6.label, V6.bits) == ("IPv4", 32, "IPv6", 128)


def test_range_contains_overlaps_size() -> None:
    r = parse_entry("10.0.0.10-10.0.0.20")
    assert r.size == 11
    assert r.contains(IP.parse("10.0.0.10")) and r.contains(IP.parse("10.0.0.20"))
    assert not r.contains(IP.parse("10.0.0.21"))
    assert not r.contains(IP(V6, r.first))  # same int, other family
    assert r.overlaps(parse_entry("10.0.0.20-10.0.0.30"))
    assert r.overlaps(parse_entry("10.0.0.0/24"))
    assert not r.overlaps(parse_entry("10.0.0.21-10.0.0.30"))  # adjacent is no overlap
    assert not r.overlaps(IPRange(V6, r.first, r.last))
    assert parse_entry("fd00::/64").size == 2**64


def test_range_rejects_reversed_bounds() -> None:
    with pytest.raises(ValueError, match="after its end"):
        IPRange(V4, 5, 4)


@pytest.mark.parametrize(
    ("entry", "shown"),
    [("10.0.0.0/30", "10.0.0.0-10.0.0.3"), ("10.0.0.7/32", "10.0.0.7"),
     ("fd00::1-fd00::2", "fd00::1-fd00::2")],
)
def test_range_str(entry: str, shown: str) -> None:
    assert str(parse_entry(entry)) == shown


@pytest.mark.parametrize(
    ("entry", "count"),
    [
        ("10.0.0.0/24", 2),
        ("10.0.0.1-10.0.0.254", 0),
        ("10.0.0.255-10.0.1.0", 2),
        ("10.0.0.0/32", 1),
        ("10.0.0.255/32", 1),
        ("10.0.0.0/23", 4),
        ("10.0.0.0/8", 2 * 2**16),
        ("0.0.0.0/0", 2 * 2**24),
        ("fd00::/64", 0),
    ],
)
def test_buggy_count(entry: str, count: int) -> None:
    assert parse_entry(entry).buggy_count() == count


MAX4 = 2**32 - 1


@settings(max_examples=300, deadline=None)
@given(st.integers(0, MAX4), st.integers(0, 2000))
def test_buggy_count_matches_brute_force(first: int, length: int) -> None:
    last = min(first + length, MAX4)
    r = IPRange(V4, first, last)
    brute = sum(1 for x in range(first, last + 1) if IP(V4, x).is_buggy)
    assert r.buggy_count() == brute


@settings(max_examples=200, deadline=None)
@given(st.integers(0, MAX4), st.integers(0, MAX4))
def test_range_entries_round_trip(a: int, b: int) -> None:
    lo, hi = min(a, b), max(a, b)
    first, last = IP(V4, lo), IP(V4, hi)
    assert parse_entry(f"{first}-{last}") == IPRange(V4, lo, hi)
    assert parse_entry(f" {first} - {last} ") == IPRange(V4, lo, hi)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**128 - 1), st.integers(0, 128))
def test_cidr_entries_cover_their_network(value: int, prefix: int) -> None:
    text = f"{ipaddress.IPv6Address(value)}/{prefix}"
    net = ipaddress.IPv6Network(text, strict=False)
    if (net.network_address.ipv4_mapped is not None
            or net.broadcast_address.ipv4_mapped is not None):
        with pytest.raises(AddressError, match="IPv4-mapped"):
            parse_entry(text)  # as for a-b ranges: an end would not parse back
        return
    r = parse_entry(text)
    assert (r.first, r.last, r.size) == (int(net.network_address), int(net.broadcast_address),
                                         net.num_addresses)
    assert r.contains(IP(V6, value))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_parse_entry_never_raises_anything_but_address_error(text: str) -> None:
    try:
        r = parse_entry(text)
    except AddressError:
        return
    assert r.first <= r.last

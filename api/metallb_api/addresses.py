"""Address entries of an IPAddressPool: parse `CIDR` or `start-end` into integer ranges.

IPs are plain ints tagged with a family (4 or 6) everywhere in the pure core: cheap to
compare, hash and do arithmetic on, and an IPv6 /64 is just two ints. `ipaddress`
objects are only used at the edges (parsing, formatting).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple


class Family(IntEnum):
    V4 = 4
    V6 = 6

    @property
    def label(self) -> str:
        return "IPv4" if self is Family.V4 else "IPv6"

    @property
    def bits(self) -> int:
        return 32 if self is Family.V4 else 128


class IP(NamedTuple):
    """An address as (family, int); orders IPv4 before IPv6, then numerically.

    A NamedTuple, not a dataclass: the allocator creates these on its hot path."""

    family: Family
    value: int

    @classmethod
    def parse(cls, text: str) -> IP:
        addr = ipaddress.ip_address(text.strip())
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            raise ValueError(f"{text!r}: IPv4-mapped IPv6 addresses are not allowed")
        if isinstance(addr, ipaddress.IPv6Address) and addr.scope_id:
            raise ValueError(f"{text!r}: zoned IPv6 addresses are not allowed")
        return cls(Family(addr.version), int(addr))

    def __str__(self) -> str:
        if self.family is Family.V4:
            return str(ipaddress.IPv4Address(self.value))
        return str(ipaddress.IPv6Address(self.value))

    @property
    def is_buggy(self) -> bool:
        """IPv4 .0 and .255 confuse some CPE firmwares' smurf protection."""
        return self.family is Family.V4 and (self.value & 0xFF) in (0, 255)


@dataclass(frozen=True, order=True)
class IPRange:
    """Inclusive range [first, last] of one family."""

    family: Family
    first: int
    last: int

    def __post_init__(self) -> None:
        if self.first > self.last:
            raise ValueError("range start is after its end")

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def contains(self, ip: IP) -> bool:
        return ip.family == self.family and self.first <= ip.value <= self.last

    def overlaps(self, other: IPRange) -> bool:
        return (
            self.family == other.family
            and self.first <= other.last
            and other.first <= self.last
        )

    def buggy_count(self) -> int:
        """How many IPv4 .0/.255 addresses lie in this range (O(1))."""
        if self.family is not Family.V4:
            return 0
        return _count_mod(self.first, self.last, 0) + _count_mod(self.first, self.last, 255)

    def __str__(self) -> str:
        first, last = IP(self.family, self.first), IP(self.family, self.last)
        return str(first) if self.first == self.last else f"{first}-{last}"


def _count_mod(first: int, last: int, residue: int) -> int:
    """Count x in [first, last] with x % 256 == residue."""

    def upto(n: int) -> int:  # count in [0, n]
        return 0 if n < residue else (n - residue) // 256 + 1

    return upto(last) - upto(first - 1)


class AddressError(ValueError):
    """A pool address entry that cannot be parsed; the message names the entry."""


def parse_entry(entry: str) -> IPRange:
    """Parse one `addresses` entry: a CIDR (host bits allowed, as MetalLB) or `a-b`."""
    text = entry.strip()
    if not text:
        raise AddressError("empty address entry")
    if "-" in text:
        parts = text.split("-")
        if len(parts) != 2:
            raise AddressError(f"invalid range {entry!r}: expected exactly one '-'")
        try:
            first, last = IP.parse(parts[0]), IP.parse(parts[1])
        except ValueError as exc:
            raise AddressError(f"invalid range {entry!r}: {exc}") from None
        if first.family != last.family:
            raise AddressError(f"invalid range {entry!r}: start and end are different families")
        if first.value > last.value:
            raise AddressError(f"invalid range {entry!r}: start is after end")
        return IPRange(first.family, first.value, last.value)
    if "/" not in text:
        raise AddressError(
            f"invalid address {entry!r}: expected a CIDR (192.168.10.0/24) or a range (a-b)"
        )
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise AddressError(f"invalid CIDR {entry!r}: {exc}") from None
    if isinstance(net, ipaddress.IPv6Network):
        # The same rule as for `a-b` ranges (IP.parse): addresses handed out from here
        # must be readable back from a Service's status, or a restart would forget them.
        lo, hi = net.network_address, net.broadcast_address
        if lo.scope_id or hi.scope_id:
            raise AddressError(f"invalid CIDR {entry!r}: zoned IPv6 addresses are not allowed")
        if lo.ipv4_mapped is not None or hi.ipv4_mapped is not None:
            raise AddressError(
                f"invalid CIDR {entry!r}: IPv4-mapped IPv6 addresses are not allowed")
    return IPRange(Family(net.version), int(net.network_address), int(net.broadcast_address))


def parse_ip(text: str) -> IP:
    try:
        return IP.parse(text)
    except ValueError as exc:
        raise AddressError(f"invalid IP address {text!r}: {exc}") from None

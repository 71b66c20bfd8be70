"""Rate of the pure ARP/NDP answer functions on the hot path (owned-address case, 1,000
owned addresses), without sockets: what the data plane can answer at most per core
before any kernel cost. Was printed by two unit tests; a figure belongs here.

Run: .venv/bin/python -m bench.responders
"""

from __future__ import annotations

import ipaddress
import timeit

from bench.common import write
from metallb_speaker.wire.arp import arp_answer, arp_request
from metallb_speaker.wire.ethernet import parse_mac
from metallb_speaker.wire.ndp import ndp_answer, neighbor_solicitation

OUR_MAC = parse_mac("02:00:00:00:00:01")
PEER_MAC = parse_mac("02:00:00:00:00:02")
CALLS = 50_000


def _v4(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


def _v6(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def rate(fn: object) -> float:
    best = min(timeit.repeat(fn, number=CALLS, repeat=5))  # type: ignore[arg-type]
    return CALLS / best


def main() -> int:
    owned4 = {_v4(f"198.18.{i // 250}.{i % 250 + 1}") for i in range(1000)}
    request4 = arp_request(PEER_MAC, _v4("198.18.100.2"), _v4("198.18.0.1"))
    assert isinstance(arp_answer(request4, owned4, OUR_MAC), bytes)
    owned6 = {_v6(f"fd00:7::{i:x}") for i in range(1, 1001)}
    request6 = neighbor_solicitation(PEER_MAC, _v6("fd00:7::ffff"), _v6("fd00:7::1"))
    assert isinstance(ndp_answer(request6, owned6, OUR_MAC), bytes)
    out = {"owned_addresses": 1000,
           "arp_answer_per_s": rate(lambda: arp_answer(request4, owned4, OUR_MAC)),
           "ndp_answer_per_s": rate(lambda: ndp_answer(request6, owned6, OUR_MAC))}
    print(f"arp_answer (owned, 1,000 owned addresses): {out['arp_answer_per_s']:,.0f} calls/s")
    print(f"ndp_answer (owned, 1,000 owned addresses): {out['ndp_answer_per_s']:,.0f} calls/s")
    write("responders", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""FRR's session JSON (shapes captured from FRR 8.4.4) read into sessions, and exported
with MetalLB's FRR-mode metric names and labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from metallb_speaker.frr.apply import _decode_all
from metallb_speaker.frr.state import BFDSession, BGPSession, parse_bfd, parse_neighbors
from metallb_speaker.metrics import BGPCollector

pytestmark = pytest.mark.unit

NEIGHBORS = {
    "default": {
        "vrfId": 0, "vrfName": "default",
        "10.99.0.2": {
            "remoteAs": 64513, "bgpState": "Established", "portForeign": 179,
            "messageStats": {"depthOutq": 0, "opensSent": 2, "opensRecv": 1,
                             "notificationsSent": 0, "updatesSent": 7, "updatesRecv": 2,
                             "keepalivesSent": 4, "keepalivesRecv": 5,
                             "routeRefreshSent": 0, "totalSent": 13, "totalRecv": 8},
            "addressFamilyInfo": {"ipv4Unicast": {"sentPrefixCounter": 3},
                                  "ipv6Unicast": {"sentPrefixCounter": 1}}},
        "10.99.0.3": {"bgpState": "Active", "messageStats": {}},
    },
    "red": {"vrfId": 5, "vrfName": "red",
            "fd00::1": {"bgpState": "Connect", "portForeign": 1179}},
}
BFD = [{"peer": "10.99.0.2", "vrf": "default", "status": "up"},
       {"peer": "10.99.0.3", "vrf": "default", "status": "down"}]
COUNTERS = [{"peer": "10.99.0.2", "vrf": "default", "control-packet-input": 10,
             "control-packet-output": 11, "session-up": 1, "session-down": 0}]


def test_parse() -> None:
    sessions = parse_neighbors(NEIGHBORS)
    assert [(s.peer, s.vrf, s.up, s.label) for s in sessions] == [
        ("10.99.0.2", "default", True, "10.99.0.2:179"),
        ("10.99.0.3", "default", False, "10.99.0.3:179"),
        ("fd00::1", "red", False, "fd00::1:1179")]
    first = sessions[0]
    assert (first.prefixes_sent, first.updates_sent, first.opens_received) == (4, 7, 1)
    bfd = parse_bfd(BFD, COUNTERS)
    assert [(b.peer, b.up, b.control_packet_input) for b in bfd] == [
        ("10.99.0.2", True, 10), ("10.99.0.3", False, 0)]
    assert parse_neighbors([]) == [] and parse_bfd({}) == []


def test_several_documents_from_one_vtysh() -> None:
    assert _decode_all('{"a": 1}\n[\n 2\n]\n\n[]\n') == [{"a": 1}, [2], []]


@dataclass
class Applier:
    sessions: list[BGPSession]
    bfd: list[BFDSession]
    status: str = "synced"
    pushes: dict[str, int] = field(default_factory=lambda: {"prefixes": 3})
    push_seconds: dict[str, float] = field(default_factory=dict)
    losses: int = 1
    refusals: int = 0


def _samples(a: Any) -> str:
    r = CollectorRegistry()
    r.register(BGPCollector(lambda: a))
    return generate_latest(r).decode()


def test_metallb_metric_names_and_labels() -> None:
    text = _samples(Applier(parse_neighbors(NEIGHBORS), parse_bfd(BFD, COUNTERS)))
    for line in [
        'metallb_bgp_session_up{peer="10.99.0.2:179",vrf="default"} 1.0',
        'metallb_bgp_session_up{peer="10.99.0.3:179",vrf="default"} 0.0',
        'metallb_bgp_session_up{peer="fd00::1:1179",vrf="red"} 0.0',
        'metallb_bgp_announced_prefixes_total{peer="10.99.0.2:179",vrf="default"} 4.0',
        'metallb_bgp_updates_total{peer="10.99.0.2:179",vrf="default"} 7.0',
        'metallb_bgp_opens_sent{peer="10.99.0.2:179",vrf="default"} 2.0',
        'metallb_bgp_updates_total_received{peer="10.99.0.2:179",vrf="default"} 2.0',
        'metallb_bfd_session_up{peer="10.99.0.2",vrf="default"} 1.0',
        'metallb_bfd_control_packet_input{peer="10.99.0.2",vrf="default"} 10.0',
        "metallb_speaker_frr_up 1.0",
        'metallb_speaker_frr_status{status="synced"} 1.0',
        'metallb_speaker_frr_pushes_total{kind="prefixes"} 3.0',
        "metallb_speaker_frr_losses_total 1.0",
    ]:
        assert line in text, line
    assert "metallb_speaker_frr_up 0.0" in _samples(Applier([], [], status="unavailable"))

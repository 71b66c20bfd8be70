"""Which Services this node announces over BGP, to which peers, and why not: the cases
of MetalLB's speaker/bgp_controller_test.go (TestBGPSpeaker, TestNodeSelectors,
exclude-from-external-load-balancers) restated as (objects, node, Service) -> reason."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from tests.operator.builders import pool

from metallb_api.bgp import build_bgp_config
from metallb_api.config import build_config
from metallb_speaker.bgp.announce import BGPReason, announcement, decide, decide_all
from metallb_speaker.election import EXCLUDE_LABEL, NodeState, ServiceState

pytestmark = pytest.mark.unit
ME = "iris1"


def _obj(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": name}, "spec": spec}


def peer(name: str, address: str = "1.2.3.4", **spec: Any) -> dict[str, Any]:
    return _obj("BGPPeer", name, {"myASN": 64512, "peerASN": 64513,
                                  "peerAddress": address} | spec)


def adv(name: str, **spec: Any) -> dict[str, Any]:
    return _obj("BGPAdvertisement", name, spec)


ZONE_A = [{"matchLabels": {"zone": "a"}}]
ZONE_B = [{"matchLabels": {"zone": "b"}}]
POOLS = [pool("default", "10.20.30.0/24"), pool("v6", "2001:db8::/64"),
         pool("quiet", "10.20.40.0/24")]


@dataclass
class Case:
    reason: BGPReason
    peers: list[dict[str, Any]] = field(default_factory=lambda: [peer("p1")])
    advs: list[dict[str, Any]] = field(
        default_factory=lambda: [adv("all", ipAddressPools=["default", "v6"])])
    labels: dict[str, str] = field(default_factory=lambda: {"zone": "a"})
    unavailable: bool = False
    ips: tuple[str, ...] = ("10.20.30.1",)
    local: bool = False
    endpoint_nodes: frozenset[str] = frozenset({ME})
    has_endpoints: bool = True
    honor_exclude: bool = True
    # announced: str(prefix) -> peers
    want: dict[str, set[str]] = field(default_factory=dict)


CASES: dict[str, Case] = {
    "it's an LB": Case(BGPReason.ANNOUNCED, want={"10.20.30.1/32": {"p1"}}),
    "local policy, endpoint not on our node": Case(
        BGPReason.NO_LOCAL_ENDPOINTS, local=True, endpoint_nodes=frozenset({"iris2"})),
    "local policy, endpoint on our node": Case(
        BGPReason.ANNOUNCED, local=True, want={"10.20.30.1/32": {"p1"}}),
    "cluster policy, endpoint only elsewhere": Case(
        BGPReason.ANNOUNCED, endpoint_nodes=frozenset({"iris2"}),
        want={"10.20.30.1/32": {"p1"}}),
    "endpoint list empty": Case(BGPReason.NO_ENDPOINTS, endpoint_nodes=frozenset(),
                                has_endpoints=False),
    "local policy, no endpoint anywhere": Case(
        BGPReason.NO_LOCAL_ENDPOINTS, local=True, endpoint_nodes=frozenset(),
        has_endpoints=False),
    "no ingress address": Case(BGPReason.NO_ADDRESS, ips=()),
    "address from no pool": Case(BGPReason.NO_POOL, ips=("192.0.2.1",)),
    "pool with no BGPAdvertisement": Case(BGPReason.NO_ADVERTISEMENT,
                                          ips=("10.20.40.1",)),
    "advertisement for another node": Case(
        BGPReason.NOT_SELECTED, advs=[adv("b", ipAddressPools=["default"],
                                          nodeSelectors=ZONE_B)]),
    "multiple advertisements, one only for my node": Case(
        BGPReason.ANNOUNCED,
        advs=[adv("agg", ipAddressPools=["default"], aggregationLength=24,
                  nodeSelectors=ZONE_B),
              adv("mine", ipAddressPools=["default"], nodeSelectors=ZONE_A,
                  communities=["1234:2345"])],
        want={"10.20.30.1/32": {"p1"}}),
    "multiple advertisements: aggregated and host routes": Case(
        BGPReason.ANNOUNCED,
        advs=[adv("host", ipAddressPools=["default"]),
              adv("agg", ipAddressPools=["default"], aggregationLength=24)],
        want={"10.20.30.1/32": {"p1"}, "10.20.30.0/24": {"p1"}}),
    "advertisement with peer selector": Case(
        BGPReason.ANNOUNCED, peers=[peer("p1"), peer("p2", "1.2.3.5")],
        advs=[adv("to-p2", ipAddressPools=["default"], peers=["p2"])],
        want={"10.20.30.1/32": {"p2"}}),
    "multiple peers": Case(
        BGPReason.ANNOUNCED, peers=[peer("p1"), peer("p2", "1.2.3.5")],
        want={"10.20.30.1/32": {"p1", "p2"}}),
    "peer for another node only": Case(
        BGPReason.NO_PEER, peers=[peer("p1", nodeSelectors=ZONE_B)]),
    "IPv6 address, IPv4-only session": Case(BGPReason.NO_PEER, ips=("2001:db8::5",)),
    "IPv6 address, dual-stack session": Case(
        BGPReason.ANNOUNCED, ips=("2001:db8::5",),
        peers=[peer("p1", dualStackAddressFamily=True)], want={"2001:db8::5/128": {"p1"}}),
    "network unavailable": Case(BGPReason.NETWORK_UNAVAILABLE, unavailable=True),
    "excluded by label": Case(BGPReason.EXCLUDED_BY_LABEL,
                              labels={"zone": "a", EXCLUDE_LABEL: ""}),
    "excluded by label, ignored (--ignore-exclude-lb)": Case(
        BGPReason.ANNOUNCED, labels={"zone": "a", EXCLUDE_LABEL: ""}, honor_exclude=False,
        want={"10.20.30.1/32": {"p1"}}),
}


def _inputs(c: Case) -> tuple[Any, Any, NodeState, ServiceState]:
    pools = build_config(POOLS)
    config = build_bgp_config(pools, c.peers, c.advs)
    assert not config.problems, config.problems
    node = NodeState(ME, c.labels, c.unavailable)
    svc = ServiceState("ns/svc", c.ips, None, c.local, c.endpoint_nodes, c.has_endpoints)
    return config, pools, node, svc


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_decide(case: Case) -> None:
    config, pools, node, svc = _inputs(case)
    d = decide(config, pools, node, svc, honor_exclude_label=case.honor_exclude)
    assert d.reason is case.reason
    got: dict[str, set[str]] = {}
    for a in d.advertised:
        got.setdefault(str(a.prefix), set()).update(a.peers)
    assert got == case.want
    assert d.announced == (case.reason is BGPReason.ANNOUNCED)
    assert d.peers == frozenset().union(*case.want.values()) if case.want else not d.peers


def test_node_labels_select_peers_and_advertisements() -> None:
    """MetalLB's TestNodeSelectors: relabelling the node moves it in and out."""
    c = Case(BGPReason.ANNOUNCED,
             peers=[peer("a", nodeSelectors=ZONE_A), peer("b", "1.2.3.5", nodeSelectors=ZONE_B)])
    config, pools, node, svc = _inputs(c)
    assert decide(config, pools, node, svc).peers == {"a"}
    moved = replace(node, labels={"zone": "b"})
    assert decide(config, pools, moved, svc).peers == {"b"}
    nowhere = replace(node, labels={})
    assert decide(config, pools, nowhere, svc).reason is BGPReason.NO_PEER


def test_announcement_of_several_services() -> None:
    c = Case(BGPReason.ANNOUNCED,
             advs=[adv("agg", ipAddressPools=["default"], aggregationLength=24)])
    config, pools, node, svc = _inputs(c)
    other = replace(svc, key="ns/other", ips=("10.20.30.2",))
    gone = replace(svc, key="ns/gone", has_endpoints=False, endpoint_nodes=frozenset())
    decisions = decide_all(config, pools, node, {s.key: s for s in (svc, other, gone)})
    assert decisions["ns/gone"].reason is BGPReason.NO_ENDPOINTS
    prefixes = [str(a.prefix) for a in announcement(decisions.values())]
    assert prefixes == ["10.20.30.0/24", "10.20.30.0/24"]  # merged by the renderer

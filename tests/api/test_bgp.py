"""build_bgp_config: BGPPeer / BGPAdvertisement / BFDProfile / Community parsed and
validated, single-object rules (as the CRDs' CEL) and cross-object rules (MetalLB's
config parse and FRR-mode validation); what a node announces (aggregation, de-dup)."""

from __future__ import annotations

from typing import Any

import pytest
from tests.operator.builders import pool

from metallb_api.addresses import IP, Family
from metallb_api.bgp import (
    ADVERTISEMENT,
    COMMUNITY,
    PEER,
    Advertised,
    BGPConfig,
    BGPNoteReason,
    BGPProblemReason,
    Community,
    CommunityError,
    Prefix,
    advertised_for,
    build_bgp_config,
    merge,
    parse_community,
    parse_duration_ns,
    timers,
)
from metallb_api.config import build_config

pytestmark = pytest.mark.unit

R = BGPProblemReason
ZONE_A = {"matchLabels": {"zone": "a"}}
ZONE_B = {"matchLabels": {"zone": "b"}}


def obj(kind: str, name: str, spec: dict[str, Any], generation: int = 1) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": name, "generation": generation}, "spec": spec}


def peer(name: str, **spec: Any) -> dict[str, Any]:
    body = {"myASN": 64512, "peerASN": 64513, "peerAddress": "198.18.0.1"} | spec
    return obj(PEER, name, {k: v for k, v in body.items() if v is not None})


def adv(name: str, **spec: Any) -> dict[str, Any]:
    return obj(ADVERTISEMENT, name, spec)


def build(peers: list[dict[str, Any]] = (), advs: list[dict[str, Any]] = (),  # type: ignore[assignment]
          bfd: list[dict[str, Any]] = (), communities: list[dict[str, Any]] = (),  # type: ignore[assignment]
          pools: list[dict[str, Any]] | None = None) -> BGPConfig:
    cfg = build_config(pools if pools is not None else [
        pool("v4", "198.51.100.0/24", labels={"bgp": "yes"}),
        pool("v6", "2001:db8::/120"),
        pool("range", "203.0.113.10-203.0.113.20"),
    ])
    return build_bgp_config(cfg, peers, advs, bfd, communities)


def reasons(cfg: BGPConfig) -> dict[tuple[str, str], BGPProblemReason]:
    return {(p.kind, p.name): p.reason for p in cfg.problems}


# -- single objects -----------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "message"), [
    ({"dynamicASN": "external"}, "spec.peerASN, spec.dynamicASN: exactly one of them must be set"),
    ({"peerASN": None}, "spec.peerASN, spec.dynamicASN: exactly one of them must be set"),
    ({"peerASN": 0}, "spec.peerASN, spec.dynamicASN: exactly one"),
    ({"myASN": 0}, "spec.myASN: Input should be greater than or equal to 1"),
    ({"myASN": 2**32}, "spec.myASN"),
    ({"peerASN": 64512, "ebgpMultiHop": True}, "spec.ebgpMultiHop: not allowed for an iBGP peer"),
    ({"peerAddress": None}, "spec.peerAddress, spec.interface: exactly one"),
    ({"interface": "eth0"}, "spec.peerAddress, spec.interface: exactly one"),
    ({"peerAddress": "198.18.0.300"}, "spec.peerAddress: '198.18.0.300' is not an IPv4"),
    ({"sourceAddress": "eth0"}, "spec.sourceAddress"),
    ({"routerID": "r1"}, "spec.routerID: 'r1' is not an IP address"),
    ({"password": "x", "passwordSecret": {"name": "s"}},
     "spec.password, spec.passwordSecret: at most one of them may be set"),
    ({"holdTime": "2s"}, "spec.holdTime: '2s' must be 0 or at least 3s"),
    ({"holdTime": "2999ms"}, "holdTime: '2999ms' must be 0 or at least 3s"),
    ({"holdTime": "-3s"}, "holdTime: '-3s' must be 0 or at least 3s"),
    ({"holdTime": "9s", "keepaliveTime": "10s"}, "keepaliveTime: '10s' must not be longer"),
    ({"keepaliveTime": "900ms"},
     "spec.keepaliveTime: without holdTime the hold time is three keepalives"),
    ({"holdTime": "ninety"}, "spec.holdTime: invalid duration 'ninety'"),
    ({"connectTime": "1500ms"}, "spec.connectTime: must be a whole number of seconds"),
    ({"connectTime": "0s"}, "connectTime: must be between 1s and 65535s"),
    ({"dynamicASN": "both", "peerASN": None}, "spec.dynamicASN"),
    ({"nodeSelectors": [ZONE_A, ZONE_A]}, "spec.nodeSelectors[1]: duplicate of [0]"),
    ({"password": "two words"}, "spec.password"),
    ({"password": "x\nrouter bgp 1"}, "spec.password"),
    ({"password": "x" * 81}, "spec.password"),
    ({"vrf": "red vrf"}, "spec.vrf"),
    ({"peerAddress": None, "interface": "eth0\n"}, "spec.interface"),
])
def test_invalid_peer(spec: dict[str, Any], message: str) -> None:
    cfg = build([peer("p", **spec)])
    assert [(p.reason, p.kind) for p in cfg.problems] == [(R.INVALID_SPEC, PEER)]
    assert message in cfg.problems[0].message
    assert cfg.peers == {}


@pytest.mark.parametrize(("spec", "hold_s", "keepalive_s"), [
    ({}, None, None),
    ({"holdTime": "90s"}, 90, 30),
    ({"holdTime": "10s"}, 10, 3.333333333),  # keepalive a third of hold, as MetalLB
    ({"keepaliveTime": "3s"}, 9, 3),
    ({"holdTime": "3s", "keepaliveTime": "1s"}, 3, 1),
    ({"holdTime": "90s", "keepaliveTime": "90s"}, 90, 90),  # equal is allowed
    ({"holdTime": "0s"}, 0, 0),
    ({"keepaliveTime": "300ms"}, 0.9, 0.3),  # hold 0.9 s rounds to 0 s: allowed (MetalLB)
    ({"holdTime": "1m30s"}, 90, 30),
])
def test_timers(spec: dict[str, Any], hold_s: float | None, keepalive_s: float | None) -> None:
    cfg = build([peer("p", **spec)])
    assert cfg.problems == ()
    p = cfg.peers["p"]
    if hold_s is None:
        assert (p.hold_time_ns, p.keepalive_time_ns) == (None, None)
    else:
        assert p.hold_time_ns == pytest.approx(hold_s * 1e9)
        assert p.keepalive_time_ns == pytest.approx(keepalive_s * 1e9)  # type: ignore[operator]


@pytest.mark.parametrize(("text", "ns"), [
    ("0", 0), ("90s", 90 * 10**9), ("1m30s", 90 * 10**9), ("300ms", 300 * 10**6),
    ("1.5s", 1_500_000_000), ("-3s", -3 * 10**9), ("1h", 3600 * 10**9), ("10us", 10_000),
])
def test_parse_duration(text: str, ns: int) -> None:
    assert parse_duration_ns(text) == ns


@pytest.mark.parametrize("text", ["", "s", "90", "1x", "1s2", "--1s", "1 s"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration_ns(text)


def test_timers_without_either_leave_frr_defaults() -> None:
    assert timers(None, None) == (None, None)


def test_full_peer() -> None:
    cfg = build([peer("p", peerAddress="2001:db8::1", sourceAddress="2001:db8::2",
                      routerID="10.0.0.1", holdTime="9s", connectTime="5s",
                      passwordSecret={"name": "s"}, bfdProfile="fast", ebgpMultiHop=True,
                      enableGracefulRestart=True, vrf="red", dualStackAddressFamily=True,
                      nodeSelectors=[ZONE_A], peerPort=1179)],
                bfd=[obj("BFDProfile", "fast", {"receiveInterval": 100})])
    assert cfg.problems == ()
    p = cfg.peers["p"]
    assert (p.address, p.source_address, p.router_id, p.port, p.connect_time_s) == (
        "2001:db8::1", "2001:db8::2", "10.0.0.1", 1179, 5)
    assert (p.password_secret, p.bfd_profile, p.ebgp_multihop, p.graceful_restart, p.vrf) == (
        "s", "fast", True, True, "red")
    assert p.family is Family.V6 and p.families() == {Family.V4, Family.V6}
    assert p.selects_node({"zone": "a"}) and not p.selects_node({"zone": "b"})
    assert not p.ibgp


@pytest.mark.parametrize(("spec", "ibgp"), [
    ({"peerASN": 64512}, True), ({"peerASN": 64513}, False),
    ({"peerASN": None, "dynamicASN": "internal"}, True),
    ({"peerASN": None, "dynamicASN": "external"}, False),
    ({"peerASN": 64700, "localASN": 64700}, True),  # the AS the peer sees is localASN
    ({"peerASN": 64512, "localASN": 64700}, False),
])
def test_ibgp(spec: dict[str, Any], ibgp: bool) -> None:
    assert build([peer("p", **spec)]).peers["p"].ibgp is ibgp


@pytest.mark.parametrize(("spec", "message"), [
    ({"receiveInterval": 9}, "spec.receiveInterval"),
    ({"transmitInterval": 60001}, "spec.transmitInterval"),
    ({"detectMultiplier": 1}, "spec.detectMultiplier"),
    ({"echoInterval": 5}, "spec.echoInterval"),
    ({"minimumTtl": 255}, "spec.minimumTtl"),
])
def test_invalid_bfd_profile(spec: dict[str, Any], message: str) -> None:
    cfg = build(bfd=[obj("BFDProfile", "b", spec)])
    assert [p.reason for p in cfg.problems] == [R.INVALID_SPEC]
    assert message in cfg.problems[0].message and cfg.bfd_profiles == {}


@pytest.mark.parametrize(("text", "expected"), [
    ("0:0", (False, (0, 0))), ("65535:65535", (False, (65535, 65535))),
    ("large:4294967295:0:1", (True, (4294967295, 0, 1))),
])
def test_parse_community(text: str, expected: tuple[bool, tuple[int, ...]]) -> None:
    c = parse_community(text)
    assert (c.large, c.parts) == expected and str(c) == text


@pytest.mark.parametrize(("text", "alias_like"), [
    ("65536:1", False), ("1:x", False), ("-1:2", False), ("big:1:2:3", False),
    ("large:1:2:4294967296", False), ("gold", True), ("large:1:2", True), ("1:2:3:4:5", True),
])
def test_parse_community_refuses(text: str, alias_like: bool) -> None:
    with pytest.raises(CommunityError) as exc:
        parse_community(text)
    assert exc.value.alias_like is alias_like


def test_communities_order_as_metallb() -> None:
    # a standard community a:b sorts as the large (a<<16|b):0:0
    values = [parse_community(t) for t in ("large:65536:0:1", "1:0", "0:7", "large:1:0:0")]
    assert [str(c) for c in sorted(values)] == ["large:1:0:0", "0:7", "1:0", "large:65536:0:1"]


@pytest.mark.parametrize(("spec", "message"), [
    ({"communities": ["65536:1"]}, "spec.communities[0]: '65536:1' is not a community"),
    ({"communities": ["1:2", "1:2"]}, "spec.communities[1]: duplicate value '1:2'"),
    ({"aggregationLength": 33}, "spec.aggregationLength"),
    ({"aggregationLengthV6": 0}, "spec.aggregationLengthV6"),
    ({"localPref": -1}, "spec.localPref"),
    ({"peers": ["a", "a"]}, "spec.peers[1]: duplicate value 'a'"),
    ({"ipAddressPools": ["v4", "v4"]}, "spec.ipAddressPools[1]: duplicate"),
    ({"nodeSelectors": [{"matchLabels": {"bad key": "x"}}]}, "spec.nodeSelectors[0]"),
])
def test_invalid_advertisement(spec: dict[str, Any], message: str) -> None:
    cfg = build(advs=[adv("a", **spec)])
    assert [p.reason for p in cfg.problems] == [R.INVALID_SPEC]
    assert message in cfg.problems[0].message, cfg.problems[0].message


@pytest.mark.parametrize(("spec", "message"), [
    ({"communities": [{"name": "gold", "value": "1:2:3"}]}, "is neither a:b nor"),
    ({"communities": [{"name": "gold", "value": "70000:1"}]}, "'70000' is not a number"),
    ({"communities": [{"name": "gold", "value": "1:1"}, {"name": "gold", "value": "1:2"}]},
     "duplicate value 'gold'"),
    ({"communities": [{"name": "", "value": "1:1"}]}, "spec.communities[0].name"),
])
def test_invalid_community(spec: dict[str, Any], message: str) -> None:
    cfg = build(communities=[obj(COMMUNITY, "c", spec)])
    assert [p.reason for p in cfg.problems] == [R.INVALID_SPEC]
    assert message in cfg.problems[0].message, cfg.problems[0].message


# -- cross-object rules -------------------------------------------------------------------

@pytest.mark.parametrize(("peers", "refused", "reason", "message"), [
    # myASN: peers that can meet on a node must agree; the name sorting first wins
    ([peer("a"), peer("b", myASN=64600, peerAddress="198.18.0.2")], "b",
     R.CONFLICTING_MY_ASN, "spec.myASN: 64600 differs from 64512 of BGPPeer 'a'"),
    ([peer("a", nodeSelectors=[ZONE_A]),
      peer("b", myASN=64600, peerAddress="198.18.0.2",
           nodeSelectors=[{"matchExpressions": [
               {"key": "zone", "operator": "In", "values": ["a", "c"]}]}])],
     "b", R.CONFLICTING_MY_ASN, "which can select the same nodes"),
    ([peer("a", routerID="10.0.0.1"),
      peer("b", routerID="10.0.0.2", peerAddress="198.18.0.2")],
     "b", R.CONFLICTING_ROUTER_ID, "spec.routerID: 10.0.0.2 differs from 10.0.0.1"),
    ([peer("a", routerID="10.0.0.1"), peer("b", peerAddress="198.18.0.2")],
     "b", R.CONFLICTING_ROUTER_ID, "spec.routerID: (none) differs from 10.0.0.1"),
    ([peer("b"), peer("a", peerAddress="198.18.0.1", peerASN=64999)],
     "b", R.DUPLICATE_PEER, "spec.peerAddress: BGPPeer 'a' already peers with 198.18.0.1"),
    ([peer("a", vrf="red"), peer("b", vrf="red")], "b", R.DUPLICATE_PEER, "in VRF 'red'"),
    ([peer("a", peerAddress=None, interface="eth0"),
      peer("b", peerAddress=None, interface="eth0")],
     "b", R.DUPLICATE_PEER, "spec.interface: BGPPeer 'a' already peers with eth0"),
    ([peer("a", bfdProfile="missing")], "a", R.BFD_PROFILE_NOT_FOUND,
     "spec.bfdProfile: no BFDProfile named 'missing'"),
])
def test_peer_conflicts(peers: list[dict[str, Any]], refused: str, reason: BGPProblemReason,
                        message: str) -> None:
    cfg = build(peers)
    assert reasons(cfg) == {(PEER, refused): reason}
    assert message in cfg.problems[0].message, cfg.problems[0].message
    assert refused not in cfg.peers and len(cfg.peers) == len(peers) - 1


@pytest.mark.parametrize("peers", [
    # disjoint nodes: each node has one local AS and router ID
    [peer("a", nodeSelectors=[ZONE_A]),
     peer("b", myASN=64600, routerID="10.0.0.9", peerAddress="198.18.0.2",
          nodeSelectors=[ZONE_B])],
    [peer("a", nodeSelectors=[ZONE_A]),
     peer("b", myASN=64600, peerAddress="198.18.0.2", nodeSelectors=[
         {"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}])],
    # another VRF is another BGP router; the same address too
    [peer("a"), peer("b", myASN=64600, routerID="10.0.0.9", vrf="red")],
    # same AS and router ID: fine
    [peer("a", routerID="10.0.0.1"), peer("b", routerID="10.0.0.1", peerAddress="fd00::1")],
])
def test_peers_that_coexist(peers: list[dict[str, Any]]) -> None:
    cfg = build(peers)
    assert cfg.problems == () and len(cfg.peers) == 2


def test_bfd_profile_that_exists() -> None:
    cfg = build([peer("a", bfdProfile="fast")], bfd=[obj("BFDProfile", "fast", {})])
    assert cfg.problems == () and cfg.peers["a"].bfd_profile == "fast"


def test_duplicate_community_alias_refuses_the_later_object() -> None:
    cfg = build(communities=[
        obj(COMMUNITY, "b", {"communities": [{"name": "gold", "value": "1:2"}]}),
        obj(COMMUNITY, "a", {"communities": [{"name": "gold", "value": "3:4"},
                                             {"name": "silver", "value": "5:6"}]}),
    ])
    assert reasons(cfg) == {(COMMUNITY, "b"): R.DUPLICATE_COMMUNITY}
    assert "'gold' is already defined by Community 'a'" in cfg.problems[0].message
    assert {k: str(v) for k, v in cfg.communities.items()} == {"gold": "3:4", "silver": "5:6"}


GOLD = obj(COMMUNITY, "c", {"communities": [{"name": "gold", "value": "large:1:2:3"},
                                            {"name": "1:1", "value": "9:9"}]})


@pytest.mark.parametrize(("spec", "expected"), [
    ({"communities": ["gold", "7:7"]}, ["large:1:2:3", "7:7"]),  # 1 < 7<<16|7
    ({"communities": ["1:1"]}, ["9:9"]),  # an alias is looked up first, as in MetalLB
    ({"communities": ["7:7", "large:7:7:7"]}, ["large:7:7:7", "7:7"]),
])
def test_communities_resolved(spec: dict[str, Any], expected: list[str]) -> None:
    cfg = build(advs=[adv("a", **spec)], communities=[GOLD])
    assert cfg.problems == ()
    assert [str(c) for c in cfg.advertisements["a"].communities] == expected


@pytest.mark.parametrize(("advs", "pools", "refused", "reason", "message"), [
    ([adv("a", communities=["silver"])], None, "a", R.UNKNOWN_COMMUNITY,
     "spec.communities[0]: 'silver' is neither a community"),
    ([adv("a", ipAddressPools=["nope"])], None, "a", R.POOL_NOT_FOUND,
     "spec.ipAddressPools: no IPAddressPool named 'nope'"),
    # MetalLB's validateBGPAdvPerPool: aggregation shorter than a pool's prefix
    ([adv("a", aggregationLength=23, ipAddressPools=["v4"])], None, "a",
     R.AGGREGATION_TOO_SHORT,
     "spec.aggregationLength: 23 is shorter than the /24 prefix of 198.51.100.0-198.51.100.255"
     " in IPAddressPool 'v4'"),
    ([adv("a", aggregationLengthV6=119, ipAddressPools=["v6"])], None, "a",
     R.AGGREGATION_TOO_SHORT, "spec.aggregationLengthV6: 119 is shorter than the /120"),
    # a range is summarised in CIDRs: .10-.20 is /31 /30 /30 /32 -> the shortest is /30
    ([adv("a", aggregationLength=29, ipAddressPools=["range"])], None, "a",
     R.AGGREGATION_TOO_SHORT, "29 is shorter than the /30 prefix of 203.0.113.10-203.0.113.20"),
    # every pool (none named): the range pool refuses a /24
    ([adv("a", aggregationLength=24)], None, "a", R.AGGREGATION_TOO_SHORT,
     "IPAddressPool 'range'"),
    # localPref: two advertisements that can send the same update
    ([adv("a", localPref=100), adv("b", localPref=200)], None, "b", R.CONFLICTING_LOCAL_PREF,
     "spec.localPref: 200 differs from 100 of BGPAdvertisement 'a'"),
    ([adv("a", localPref=100, peers=["p"]), adv("b", localPref=200, peers=["p", "q"])], None,
     "b", R.CONFLICTING_LOCAL_PREF, "IPAddressPool"),
])
def test_advertisement_conflicts(advs: list[dict[str, Any]], pools: Any, refused: str,
                                 reason: BGPProblemReason, message: str) -> None:
    cfg = build([peer("p")], advs, communities=[GOLD], pools=pools)
    assert reasons(cfg) == {(ADVERTISEMENT, refused): reason}
    assert message in cfg.problems[0].message, cfg.problems[0].message
    assert refused not in cfg.advertisements


@pytest.mark.parametrize("advs", [
    [adv("a", aggregationLength=24, aggregationLengthV6=120, ipAddressPools=["v4", "v6"])],
    [adv("a", aggregationLength=30, ipAddressPools=["range"])],
    # localPref differs, but never for the same update (MetalLB's compatible cases)
    [adv("a", localPref=100, aggregationLength=32),
     adv("b", localPref=200, aggregationLength=24, aggregationLengthV6=120,
         ipAddressPools=["v4", "v6"])],
    [adv("a", localPref=100, peers=["p"]), adv("b", localPref=200, peers=["q"])],
    [adv("a", localPref=100, nodeSelectors=[ZONE_A]),
     adv("b", localPref=200, nodeSelectors=[ZONE_B])],
    [adv("a", localPref=100, ipAddressPools=["v4"]),
     adv("b", localPref=200, ipAddressPools=["v6"])],
    [adv("a", localPref=100), adv("b", localPref=100)],
])
def test_advertisements_accepted(advs: list[dict[str, Any]]) -> None:
    cfg = build([peer("p", peerASN=64512)], advs)
    assert cfg.problems == () and set(cfg.advertisements) == {a["metadata"]["name"]
                                                               for a in advs}


def test_bfd_echo_mode_with_an_ipv6_pool() -> None:
    bfd = [obj("BFDProfile", "echo", {"echoMode": True})]
    cfg = build([peer("p", bfdProfile="echo")], [adv("a", ipAddressPools=["v6"]),
                                                 adv("b", ipAddressPools=["v4"])], bfd=bfd)
    assert reasons(cfg) == {(ADVERTISEMENT, "a"): R.BFD_ECHO_WITH_IPV6}
    assert "BGPPeer 'p' uses BFDProfile 'echo' with echoMode" in cfg.problems[0].message


@pytest.mark.parametrize(("peers", "spec", "notes"), [
    ([peer("e")], {"localPref": 50}, [BGPNoteReason.LOCAL_PREF_NOT_SENT_TO_EBGP]),
    ([peer("i", peerASN=64512)], {"localPref": 50}, []),
    ([peer("e")], {"localPref": 50, "peers": ["x"]}, [BGPNoteReason.PEER_NOT_FOUND]),
    ([peer("i", peerASN=64512)], {"ipAddressPoolSelectors": [{"matchLabels": {"no": "pool"}}]},
     [BGPNoteReason.NO_MATCHING_POOLS]),
])
def test_notes(peers: list[dict[str, Any]], spec: dict[str, Any],
               notes: list[BGPNoteReason]) -> None:
    cfg = build(peers, [adv("a", **spec)])
    assert cfg.problems == ()
    assert [n.reason for n in cfg.notes_for(ADVERTISEMENT, "a")] == notes
    assert "a" in cfg.advertisements


@pytest.mark.parametrize(("spec", "pools"), [
    ({}, {"v4", "v6", "range"}),  # none: every pool
    ({"ipAddressPools": ["v6"]}, {"v6"}),
    ({"ipAddressPoolSelectors": [{"matchLabels": {"bgp": "yes"}}]}, {"v4"}),
    ({"ipAddressPools": ["v6"], "ipAddressPoolSelectors": [{"matchLabels": {"bgp": "yes"}}]},
     {"v4", "v6"}),
])
def test_pools_selected(spec: dict[str, Any], pools: set[str]) -> None:
    assert build(advs=[adv("a", **spec)]).advertisements["a"].pools == pools


# -- what a node announces ----------------------------------------------------------------

def _ips(*texts: str) -> list[IP]:
    return [IP.parse(t) for t in texts]


@pytest.mark.parametrize(("ip", "length", "text"), [
    ("198.51.100.77", 32, "198.51.100.77/32"), ("198.51.100.77", 24, "198.51.100.0/24"),
    ("2001:db8::42", 64, "2001:db8::/64"), ("2001:db8::42", 128, "2001:db8::42/128"),
])
def test_prefix(ip: str, length: int, text: str) -> None:
    assert str(Prefix.of(IP.parse(ip), length)) == text


def test_advertised_for_a_node() -> None:
    cfg = build(
        [peer("v4peer", nodeSelectors=[ZONE_A]), peer("v6peer", peerAddress="fd00::1"),
         peer("ds", peerAddress="198.18.0.9", dualStackAddressFamily=True)],
        [adv("agg", aggregationLength=24, communities=["1:1"], peers=["v4peer", "v6peer"],
             ipAddressPools=["v4"]),
         adv("host", communities=["2:2"], localPref=0, nodeSelectors=[ZONE_A])])
    got = advertised_for(cfg, "v4", _ips("198.51.100.7", "198.51.100.8"), {"zone": "a"})
    by = {(a.prefix.length, str(a.prefix)): (sorted(a.peers), [str(c) for c in a.communities])
          for a in got}
    assert by == {
        (24, "198.51.100.0/24"): (["v4peer"], ["1:1"]),  # the v6 session carries no IPv4
        (32, "198.51.100.7/32"): (["ds", "v4peer"], ["2:2"]),
        (32, "198.51.100.8/32"): (["ds", "v4peer"], ["2:2"]),
    }
    # a node in zone b: the host advertisement and v4peer do not select it
    assert advertised_for(cfg, "v4", _ips("198.51.100.7"), {"zone": "b"}) == []
    # IPv6: the IPv4-only session does not carry it, the dual-stack one does
    v6 = advertised_for(cfg, "v6", _ips("2001:db8::5"), {"zone": "a"})
    assert [(str(a.prefix), sorted(a.peers)) for a in v6] == [
        ("2001:db8::5/128", ["ds", "v6peer"])]


def test_merge_deduplicates_aggregates() -> None:
    p24 = Prefix.of(IP.parse("198.51.100.1"), 24)
    c1, c2 = Community.of(False, (1, 1)), Community.of(False, (2, 2))
    merged = merge([Advertised(p24, frozenset({"a", "b"}), frozenset({c1}), 100),
                    Advertised(p24, frozenset({"a"}), frozenset({c2}), 200)])
    assert merged == {
        ("a", p24): Advertised(p24, frozenset({"a"}), frozenset({c1, c2}), 200),
        ("b", p24): Advertised(p24, frozenset({"b"}), frozenset({c1}), 100),
    }

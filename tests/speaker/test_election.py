"""Owner election: every candidate filter and reason, the sha256 rule against an
independent computation, shared IPs, interfaces and the ranking cache."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metallb_api.config import Config, build_config
from metallb_speaker.election import (
    EXCLUDE_LABEL,
    Election,
    Inputs,
    NodeState,
    Reason,
    ServiceState,
    Takeover,
    pool_of,
)

pytestmark = pytest.mark.unit

NODES = ("n1", "n2", "n3", "n4", "n5")
ALL = frozenset(NODES)
WEB_IP = "192.168.10.7"
WEB_SVC = ServiceState("ns/web", (WEB_IP,), "web")


def pool(name: str, *addresses: str, labels: Mapping[str, str] | None = None
         ) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": dict(labels or {})},
            "spec": {"addresses": list(addresses)}}


def l2(name: str, pools: tuple[str, ...] = (), node_selectors: tuple[dict[str, Any], ...] = (),
       interfaces: tuple[str, ...] = (), pool_selectors: tuple[dict[str, Any], ...] = ()
       ) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if pools:
        spec["ipAddressPools"] = list(pools)
    if pool_selectors:
        spec["ipAddressPoolSelectors"] = list(pool_selectors)
    if node_selectors:
        spec["nodeSelectors"] = list(node_selectors)
    if interfaces:
        spec["interfaces"] = list(interfaces)
    return {"metadata": {"name": name}, "spec": spec}


POOLS = [
    pool("web", "192.168.10.0/24", labels={"tier": "web"}),
    pool("db", "192.168.20.0/24"),
    pool("v6", "fd00::/120"),
]
ZONES = {"n1": "a", "n2": "a", "n3": "b", "n4": "b", "n5": "c"}


def config(*advs: dict[str, Any]) -> Config:
    cfg = build_config(POOLS, advs)
    assert cfg.problems == (), cfg.problems
    return cfg


def ref_owner(candidates: frozenset[str] | set[str], ip: str) -> str | None:
    """Independent MetalLB rule: the smallest sha256(node + "#" + ip)."""
    if not candidates:
        return None
    return min(candidates, key=lambda n: hashlib.sha256((n + "#" + ip).encode()).hexdigest())


@dataclass
class Case:
    id: str
    candidates: frozenset[str]  # the expected pool the owner is drawn from
    reasons: dict[str, Reason] = field(default_factory=dict)  # others: owner / notOwner
    advs: tuple[dict[str, Any], ...] = (l2("all"),)
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    net_down: frozenset[str] = frozenset()
    live: frozenset[str] = ALL
    ready: frozenset[str] = ALL
    svc: ServiceState = WEB_SVC
    honor_exclude: bool = True


def _ex(**labels: str) -> dict[str, str]:
    return labels


EXCL = {EXCLUDE_LABEL: ""}
NO_ADV = Reason.NO_MATCHING_ADVERTISEMENT
CASES = [
    Case("plain", ALL),
    Case("exclude-label", ALL - {"n2"}, {"n2": Reason.EXCLUDED_BY_LABEL}, labels={"n2": EXCL}),
    Case("exclude-label-any-value", ALL - {"n2", "n5"},
         {"n2": Reason.EXCLUDED_BY_LABEL, "n5": Reason.EXCLUDED_BY_LABEL},
         labels={"n2": {EXCLUDE_LABEL: "true"}, "n5": {EXCLUDE_LABEL: "false"}}),
    Case("exclude-label-switched-off", ALL, labels={"n2": EXCL}, honor_exclude=False),
    Case("network-unavailable", ALL - {"n3"}, {"n3": Reason.NETWORK_UNAVAILABLE},
         net_down=frozenset({"n3"})),
    Case("excluded-and-network-unavailable", ALL - {"n3"}, {"n3": Reason.EXCLUDED_BY_LABEL},
         labels={"n3": EXCL}, net_down=frozenset({"n3"})),
    Case("not-live", ALL - {"n4"}, {"n4": Reason.NOT_LIVE}, live=ALL - {"n4"}),
    Case("node-selector-match-labels", frozenset({"n1", "n2"}),
         {"n3": NO_ADV, "n4": NO_ADV, "n5": NO_ADV},
         advs=(l2("za", node_selectors=({"matchLabels": {"zone": "a"}},)),)),
    Case("node-selector-expression", frozenset({"n3", "n4", "n5"}),
         {"n1": NO_ADV, "n2": NO_ADV},
         advs=(l2("notA", node_selectors=({"matchExpressions": [
             {"key": "zone", "operator": "NotIn", "values": ["a"]}]},)),)),
    Case("node-selectors-are-ored", frozenset({"n1", "n2", "n5"}),
         {"n3": NO_ADV, "n4": NO_ADV},
         advs=(l2("ac", node_selectors=({"matchLabels": {"zone": "a"}},
                                        {"matchLabels": {"zone": "c"}})),)),
    Case("advertisements-are-unioned", frozenset({"n1", "n2", "n3", "n4"}), {"n5": NO_ADV},
         advs=(l2("za", ("web",), ({"matchLabels": {"zone": "a"}},)),
               l2("zb", ("web",), ({"matchLabels": {"zone": "b"}},)))),
    Case("selector-matching-nobody", frozenset(), dict.fromkeys(NODES, NO_ADV),
         advs=(l2("zz", node_selectors=({"matchLabels": {"zone": "zz"}},)),)),
    Case("advertisement-for-another-pool", frozenset(), dict.fromkeys(NODES, NO_ADV),
         advs=(l2("db-only", ("db",)),)),
    Case("no-advertisement-at-all", frozenset(), dict.fromkeys(NODES, NO_ADV), advs=()),
    Case("advertisement-by-pool-selector", ALL,
         advs=(l2("by-label", pool_selectors=({"matchLabels": {"tier": "web"}},)),)),
    Case("advertisement-by-pool-selector-for-other-pool", frozenset(),
         dict.fromkeys(NODES, NO_ADV), svc=ServiceState("ns/db", ("192.168.20.3",), "db"),
         advs=(l2("by-label", pool_selectors=({"matchLabels": {"tier": "web"}},)),)),
    Case("pool-found-from-ip-without-annotation", frozenset({"n1", "n2"}),
         {"n3": NO_ADV, "n4": NO_ADV, "n5": NO_ADV},
         svc=ServiceState("ns/web", (WEB_IP,), None),
         advs=(l2("za", ("web",), ({"matchLabels": {"zone": "a"}},)), l2("db", ("db",)))),
    Case("pool-found-from-second-ip", ALL,
         svc=ServiceState("ns/web", ("not-an-ip", "fd00::5"), None), advs=(l2("v6", ("v6",)),)),
    Case("ip-in-no-pool", frozenset(), dict.fromkeys(NODES, NO_ADV),
         svc=ServiceState("ns/x", ("10.99.0.1",), None)),
    Case("etp-local-with-endpoints", frozenset({"n2", "n4"}),
         {"n1": Reason.NO_LOCAL_ENDPOINTS, "n3": Reason.NO_LOCAL_ENDPOINTS,
          "n5": Reason.NO_LOCAL_ENDPOINTS},
         svc=ServiceState("ns/web", (WEB_IP,), "web", True, frozenset({"n2", "n4"}))),
    Case("etp-local-without-endpoints", frozenset(),
         dict.fromkeys(NODES, Reason.NO_LOCAL_ENDPOINTS),
         svc=ServiceState("ns/web", (WEB_IP,), "web", True)),
    Case("etp-local-endpoint-on-excluded-node", frozenset({"n4"}),
         {"n1": Reason.NO_LOCAL_ENDPOINTS, "n2": Reason.EXCLUDED_BY_LABEL,
          "n3": Reason.NO_LOCAL_ENDPOINTS, "n5": Reason.NO_LOCAL_ENDPOINTS},
         labels={"n2": EXCL},
         svc=ServiceState("ns/web", (WEB_IP,), "web", True, frozenset({"n2", "n4"}))),
    Case("etp-cluster-ignores-endpoints", ALL,
         svc=ServiceState("ns/web", (WEB_IP,), "web", False, frozenset({"n2"}))),
    # MetalLB's rule: no serving endpoint anywhere, nobody announces (any policy).
    Case("etp-cluster-no-serving-endpoint", frozenset(),
         dict.fromkeys(NODES, Reason.NO_ENDPOINTS),
         svc=ServiceState("ns/web", (WEB_IP,), "web", False, frozenset(), False)),
    Case("etp-local-no-serving-endpoint", frozenset(),
         dict.fromkeys(NODES, Reason.NO_ENDPOINTS),
         svc=ServiceState("ns/web", (WEB_IP,), "web", True, frozenset(), False)),
    Case("etp-cluster-endpoints-without-node-names", ALL,
         svc=ServiceState("ns/web", (WEB_IP,), "web", False, frozenset(), True)),
    Case("no-advertisement-named-before-no-endpoints", frozenset(),
         dict.fromkeys(NODES, NO_ADV), advs=(),
         svc=ServiceState("ns/web", (WEB_IP,), "web", False, frozenset(), False)),
    Case("hold-down-prefers-ready", ALL - {"n1", "n3"},
         {"n1": Reason.HOLD_DOWN, "n3": Reason.HOLD_DOWN}, ready=ALL - {"n1", "n3"}),
    Case("hold-down-nobody-ready-takes-all-live", ALL, ready=frozenset()),
    Case("hold-down-only-ineligible-are-ready", ALL - {"n5"}, {"n5": Reason.EXCLUDED_BY_LABEL},
         labels={"n5": EXCL}, ready=frozenset({"n5"})),
    Case("hold-down-ready-but-not-live", frozenset({"n3", "n4", "n5"}),
         {"n1": Reason.NOT_LIVE, "n2": Reason.HOLD_DOWN},
         live=ALL - {"n1"}, ready=frozenset({"n1", "n3", "n4", "n5"})),
    Case("no-candidates-nobody-live", frozenset(), dict.fromkeys(NODES, Reason.NOT_LIVE),
         live=frozenset()),
    Case("no-address", frozenset(), dict.fromkeys(NODES, Reason.NO_ADDRESS),
         svc=ServiceState("ns/pending", (), "web")),
]


def inputs(c: Case) -> Inputs:
    nodes = {n: NodeState(n, {"zone": ZONES[n], **c.labels.get(n, {})}, n in c.net_down)
             for n in NODES}
    return Inputs(nodes, c.live, c.ready, config(*c.advs), c.honor_exclude)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_filters_and_reasons(case: Case) -> None:
    inp = inputs(case)
    ip = case.svc.ips[0] if case.svc.ips else ""
    owner = ref_owner(case.candidates, ip) if case.svc.ips else None
    election = Election()
    for me in NODES:
        d = election.decide(me, case.svc, inp)
        assert d.owner == owner, me
        assert set(election.candidates(case.svc, inp)) == case.candidates, me
        assert d.service == case.svc.key
        assert d.ips == case.svc.ips
        expected = case.reasons.get(me) or (Reason.OWNER if me == owner else Reason.NOT_OWNER)
        assert d.reason is expected, me
        # why_not agrees with the per-node reasons of the filters
        if case.svc.ips:
            wn = election.why_not(me, case.svc, inp)
            assert (wn is None) == (expected in (Reason.OWNER, Reason.NOT_OWNER,
                                                 Reason.HOLD_DOWN))
    owners = [me for me in NODES if election.decide(me, case.svc, inp).reason is Reason.OWNER]
    assert owners == ([owner] if owner else [])  # exactly one node announces, or none


def test_a_node_unknown_to_the_node_list_can_still_own() -> None:
    cfg = config(l2("all"))
    inp = Inputs({}, frozenset({"x1", "x2"}), frozenset({"x1", "x2"}), cfg)
    d = Election().decide("x1", ServiceState("ns/a", (WEB_IP,), "web"), inp)
    assert d.owner == ref_owner({"x1", "x2"}, WEB_IP)


def test_node_selectors_need_node_labels() -> None:
    cfg = config(l2("za", node_selectors=({"matchLabels": {"zone": "a"}},)))
    inp = Inputs({}, ALL, ALL, cfg)  # no NodeState known: no labels, selected by nobody
    d = Election().decide("n1", ServiceState("ns/a", (WEB_IP,), "web"), inp)
    assert d.owner is None
    assert d.reason is Reason.NO_MATCHING_ADVERTISEMENT


def test_exclude_label_switch_can_be_flipped_on_the_same_election() -> None:
    c = CASES[1]
    election = Election()
    honoured = election.decide("n2", c.svc, inputs(c))
    ignored = election.decide("n2", c.svc, replace(inputs(c), honor_exclude_label=False))
    assert honoured.reason is Reason.EXCLUDED_BY_LABEL
    assert "n2" not in election.candidates(c.svc, inputs(c))
    assert "n2" in election.candidates(c.svc, replace(inputs(c), honor_exclude_label=False))
    assert ignored.owner == ref_owner(ALL, WEB_IP)


# -- the sha256 rule ----------------------------------------------------------------
node_names = st.text(st.characters(categories=["Ll", "Nd"], include_characters="-."),
                     min_size=1, max_size=12)
ipv4 = st.integers(0, 2**32 - 1).map(lambda i: ".".join(str(i >> s & 255)
                                                         for s in (24, 16, 8, 0)))


@settings(max_examples=200)
@given(st.sets(node_names, min_size=1, max_size=12), ipv4)
def test_owner_is_min_sha256_of_node_hash_ip(nodes: set[str], ip: str) -> None:
    cfg = build_config([pool("all4", "0.0.0.0/0")], [l2("all")])
    inp = Inputs({}, frozenset(nodes), frozenset(nodes), cfg)
    svc = ServiceState("ns/s", (ip,), "all4")
    election = Election()
    d = election.decide(sorted(nodes)[0], svc, inp)
    assert d.owner == ref_owner(nodes, ip)
    expected_order = sorted(nodes, key=lambda n: hashlib.sha256(f"{n}#{ip}".encode()).digest())
    assert list(election.candidates(svc, inp)) == expected_order


def test_owner_matches_known_metallb_vectors() -> None:
    """A few fixed values so a change of the hashing scheme cannot go unnoticed."""
    nodes = frozenset({"node-a", "node-b", "node-c"})
    digests = {n: hashlib.sha256(f"{n}#{WEB_IP}".encode()).hexdigest() for n in nodes}
    expected = min(digests, key=digests.__getitem__)
    inp = Inputs({}, nodes, nodes, config(l2("all")))
    assert Election().decide("node-a", ServiceState("ns/a", (WEB_IP,), "web"), inp).owner \
        == expected


def test_services_sharing_an_ip_share_an_owner() -> None:
    cfg = config(l2("all"))
    nodes = {n: NodeState(n, {"zone": ZONES[n]}) for n in NODES}
    inp = Inputs(nodes, ALL, ALL, cfg)
    owners = set()
    for i in range(1, 60):
        ip = f"192.168.10.{i}"
        a = ServiceState("ns/tcp", (ip,), "web")
        b = ServiceState("ns/udp", (ip, "fd00::9"), "web")
        da = Election().decide("n1", a, inp)
        db = Election().decide("n3", b, inp)
        assert da.owner == db.owner == ref_owner(ALL, ip)
        owners.add(da.owner)
    assert owners == set(NODES)  # and different IPs spread over the nodes


def test_owner_only_moves_when_it_must() -> None:
    """Removing a node that is not the owner never moves an address (consistent hashing)."""
    cfg = config(l2("all"))
    for i in range(1, 40):
        svc = ServiceState("ns/a", (f"192.168.10.{i}",), "web")
        owner = Election().decide("n1", svc, Inputs({}, ALL, ALL, cfg)).owner
        assert owner is not None
        for gone in ALL - {owner}:
            less = ALL - {gone}
            assert Election().decide("n1", svc, Inputs({}, less, less, cfg)).owner == owner


# -- interfaces ---------------------------------------------------------------------
IFACE_CASES = [
    ("no-list-means-all", (l2("a"),), ()),
    ("one-list", (l2("a", interfaces=("eth1", "eth0")),), ("eth0", "eth1")),
    ("union-of-lists", (l2("a", interfaces=("eth1",)), l2("b", interfaces=("eth0", "eth1"))),
     ("eth0", "eth1")),
    ("empty-list-wins", (l2("a", interfaces=("eth1",)), l2("b")), ()),
    ("other-pool-ignored", (l2("a", ("web",), interfaces=("eth1",)),
                            l2("b", ("db",), interfaces=("eth9",))), ("eth1",)),
    ("other-pool-without-list-ignored", (l2("a", ("web",), interfaces=("eth1",)),
                                         l2("b", ("db",))), ("eth1",)),
    ("advert-not-selecting-owner-ignored",
     (l2("a", interfaces=("eth1",)),
      l2("b", interfaces=("eth7",), node_selectors=({"matchLabels": {"zone": "nowhere"}},))),
     ("eth1",)),
]


@pytest.mark.parametrize(("advs", "expected"), [(a, e) for _, a, e in IFACE_CASES],
                         ids=[c[0] for c in IFACE_CASES])
def test_interfaces_are_the_union_of_matching_advertisements(
        advs: tuple[dict[str, Any], ...], expected: tuple[str, ...]) -> None:
    inp = Inputs({n: NodeState(n, {"zone": ZONES[n]}) for n in NODES}, ALL, ALL, config(*advs))
    for me in NODES:
        d = Election().decide(me, ServiceState("ns/web", (WEB_IP,), "web"), inp)
        assert d.interfaces == expected


def test_interfaces_are_those_of_the_owner() -> None:
    """Per-zone advertisements with different interfaces: the owner's zone decides."""
    advs = (l2("za", ("web",), ({"matchLabels": {"zone": "a"}},), ("bond0",)),
            l2("zb", ("web",), ({"matchLabels": {"zone": "b"}},), ("eth2",)))
    nodes = {n: NodeState(n, {"zone": ZONES[n]}) for n in NODES}
    cfg = config(*advs)
    seen = set()
    for i in range(1, 40):
        svc = ServiceState("ns/web", (f"192.168.10.{i}",), "web")
        d = Election().decide("n5", svc, Inputs(nodes, ALL, ALL, cfg))
        assert d.owner is not None
        assert d.interfaces == ({"a": ("bond0",), "b": ("eth2",)}[ZONES[d.owner]])
        seen.add(d.interfaces)
    assert len(seen) == 2


def test_pool_of() -> None:
    cfg = config(l2("all"))
    assert pool_of(ServiceState("k", ("192.168.20.1",), "db"), cfg) == "db"
    assert pool_of(ServiceState("k", ("192.168.20.1",), None), cfg) == "db"
    assert pool_of(ServiceState("k", ("192.168.20.1",), "gone"), cfg) == "db"  # stale name
    assert pool_of(ServiceState("k", ("fd00::1",), None), cfg) == "v6"
    assert pool_of(ServiceState("k", ("10.0.0.1",), None), cfg) is None
    # the operator writes "a,b" for a Service with addresses from two pools
    assert pool_of(ServiceState("k", ("fd00::1", "192.168.20.1"), "db,v6"), cfg) == "v6"


# -- ranking cache --------------------------------------------------------------------
@settings(max_examples=100)
@given(st.lists(st.tuples(st.integers(1, 30), st.frozensets(st.sampled_from(NODES)),
                          st.frozensets(st.sampled_from(NODES))), min_size=1, max_size=25))
def test_cached_ranking_equals_recomputation(
        steps: list[tuple[int, frozenset[str], frozenset[str]]]) -> None:
    cfg = config(l2("all"))
    nodes = {n: NodeState(n) for n in NODES}
    cached = Election()
    for last_octet, live, ready in steps:
        svc = ServiceState("ns/a", (f"192.168.10.{last_octet}",), "web")
        inp = Inputs(nodes, live, ready, cfg)
        for me in NODES:
            assert cached.decide(me, svc, inp) == Election().decide(me, svc, inp)
        pool = (live & ready) or live
        assert cached.ranking(svc.ips[0], pool) == tuple(
            sorted(pool, key=lambda n: hashlib.sha256(f"{n}#{svc.ips[0]}".encode()).digest()))


def test_ranking_cache_is_bounded() -> None:
    e = Election()
    for i in range(5):
        e.ranking(f"10.0.0.{i}", ALL)
    assert len(e._rankings) == 5
    e._rankings.update({(str(i), ALL): () for i in range(200_001)})
    assert e.ranking("10.0.0.1", ALL)[0] == ref_owner(ALL, "10.0.0.1")  # still cached
    assert e.ranking("10.0.0.9", ALL)[0] == ref_owner(ALL, "10.0.0.9")  # a miss clears
    assert len(e._rankings) == 1


@pytest.mark.parametrize(("case", "previous", "live", "departed", "svc", "labels", "want"), [
    ("nobody owned it", None, ALL, frozenset(), WEB_SVC, {}, Takeover.FIRST),
    ("we owned it already", "n1", ALL, frozenset(), WEB_SVC, {}, Takeover.FIRST),
    ("reclaim from a live, eligible node", "n2", ALL, frozenset(), WEB_SVC, {},
     Takeover.QUIET),
    ("its speaker left gracefully (restart, drain)", "n2", ALL - {"n2"}, frozenset({"n2"}),
     WEB_SVC, {}, Takeover.QUIET),
    ("its node failed", "n2", ALL - {"n2"}, frozenset(), WEB_SVC, {}, Takeover.FAILED),
    ("ETP Local, it has no endpoint left: it would drop", "n2", ALL, frozenset(),
     ServiceState("ns/web", (WEB_IP,), "web", local=True,
                  endpoint_nodes=frozenset({"n1"})), {}, Takeover.INELIGIBLE),
    ("ETP Local, it still has one", "n2", ALL, frozenset(),
     ServiceState("ns/web", (WEB_IP,), "web", local=True,
                  endpoint_nodes=frozenset({"n1", "n2"})), {}, Takeover.QUIET),
    ("its endpoints are all gone: nobody forwards", "n2", ALL, frozenset(),
     ServiceState("ns/web", (WEB_IP,), "web", has_endpoints=False), {}, Takeover.INELIGIBLE),
    ("it was excluded from load balancers", "n2", ALL, frozenset(), WEB_SVC,
     {"n2": {EXCLUDE_LABEL: ""}}, Takeover.INELIGIBLE),
    ("left, and excluded", "n2", ALL - {"n2"}, frozenset({"n2"}), WEB_SVC,
     {"n2": {EXCLUDE_LABEL: ""}}, Takeover.INELIGIBLE),
])
def test_takeover_is_quiet_only_while_the_previous_node_still_forwards(
        case: str, previous: str | None, live: frozenset[str], departed: frozenset[str],
        svc: ServiceState, labels: dict[str, dict[str, str]], want: Takeover) -> None:
    nodes = {n: NodeState(n, labels.get(n, {})) for n in NODES}
    inp = Inputs(nodes, live, live, config(l2("all")))
    assert Election().takeover("n1", previous, svc, inp, departed) is want, case

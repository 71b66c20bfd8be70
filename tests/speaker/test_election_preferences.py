"""L2Advertisement `serviceSelectors` and `preferredNodeSelectors` in the election.

MetalLB's speaker tests are the oracle (speaker/layer2_controller_test.go and
internal/config/preferred_node_test.go, v0.15): the cases below mirror them by name, and
the expected orders are MetalLB's own (same sha256 rule, so the same answers)."""

from __future__ import annotations

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
    known_pools,
    shares_ip,
    static_key,
)

pytestmark = pytest.mark.unit

IP = "10.20.30.1"
POOLS = [{"metadata": {"name": "default"}, "spec": {"addresses": ["10.20.30.0/24"]}},
         {"metadata": {"name": "hash"}, "spec": {"addresses": ["10.0.0.0/24"]}}]


def adv(name: str, nodes: tuple[str, ...] = (), prefer: tuple[tuple[int, str], ...] = (),
        services: tuple[str, ...] = ()) -> dict[str, Any]:
    """`nodes`/`prefer`/`services` as `key=value` label selectors."""
    spec: dict[str, Any] = {}
    if nodes:
        spec["nodeSelectors"] = [_sel(s) for s in nodes]
    if prefer:
        spec["preferredNodeSelectors"] = [{"weight": w, "preference": _sel(s)}
                                          for w, s in prefer]
    if services:
        spec["serviceSelectors"] = [_sel(s) for s in services]
    return {"metadata": {"name": name}, "spec": spec}


def _sel(text: str) -> dict[str, Any]:
    return {"matchLabels": dict(kv.split("=") for kv in text.split(","))} if text else {}


def config(*advs: dict[str, Any]) -> Config:
    cfg = build_config(POOLS, advs)
    assert cfg.problems == (), cfg.problems
    return cfg


def node(name: str, **labels: str) -> NodeState:
    return NodeState(name, labels)


# -- ranking: MetalLB's TestSortL2Candidates (same names, same expected orders) ------------
@pytest.mark.parametrize(("desc", "candidates", "ip", "scores", "want"), [
    ("single candidate", ["node-a"], "10.0.0.1", {}, ["node-a"]),
    ("no scores: stable hash order independent of input order",
     ["node-a", "node-b", "node-c"], "10.0.0.1", {}, ["node-b", "node-a", "node-c"]),
    ("no scores: hash order depends on the IP",
     ["node-a", "node-b", "node-c"], "10.0.0.2", {}, ["node-b", "node-c", "node-a"]),
    ("highest score wins regardless of hash", ["edge-a", "edge-b", "worker-a", "worker-b"],
     "10.20.30.1", {"edge-a": 100}, ["edge-a", "edge-b", "worker-a", "worker-b"]),
    ("equal non-zero scores fall through to hash", ["node-a", "node-b"], "10.20.30.1",
     {"node-a": 100, "node-b": 100}, ["node-b", "node-a"]),
    ("preferred group sorted by hash, unpreferred trail", ["edge-a", "edge-b", "worker-a"],
     "10.20.30.1", {"edge-a": 100, "edge-b": 100}, ["edge-b", "edge-a", "worker-a"]),
])
def test_ranking_by_score_then_hash(desc: str, candidates: list[str], ip: str,
                                    scores: dict[str, int], want: list[str]) -> None:
    election = Election()
    got = election.ranking(ip, frozenset(candidates), tuple(sorted(scores.items())))
    assert list(got) == want, desc
    # cached: the same tuple again, and the hash-only ranking is not disturbed
    assert election.ranking(ip, frozenset(candidates), tuple(sorted(scores.items()))) is got
    assert list(election.ranking(ip, frozenset(candidates))) == sorted(
        want, key=lambda n: election.ranking(ip, frozenset(candidates)).index(n))


# -- scores: MetalLB's TestPreferredNodeScores and TestPreferredScoresFor -------------------
SCORE_NODES = {
    "edge-a": node("edge-a", role="edge", zone="primary"),
    "edge-b": node("edge-b", role="edge", zone="secondary"),
    "worker-a": node("worker-a", role="worker", zone="primary"),
    "worker-b": node("worker-b", role="worker"),
}


@pytest.mark.parametrize(("desc", "advs", "want"), [
    ("no preferences returns nil", (adv("a"),), {}),
    ("single selector scores matching eligible nodes", (adv("a", prefer=((100, "role=edge"),)),),
     {"edge-a": 100, "edge-b": 100}),
    ("cumulative weights sum",
     (adv("a", prefer=((60, "zone=primary"), (50, "role=edge"))),),
     {"edge-a": 110, "edge-b": 50, "worker-a": 60}),
    ("preferences do not score ineligible nodes",
     (adv("a", nodes=("role=edge",), prefer=((100, "zone=primary"),)),), {"edge-a": 100}),
    ("empty preference matches every eligible node", (adv("a", prefer=((10, ""),)),),
     dict.fromkeys(SCORE_NODES, 10)),
    ("no matches returns nil", (adv("a", prefer=((50, "role=gpu"),)),), {}),
    # TestPreferredScoresFor: summed across the advertisements that match the Service.
    ("preferences across ads sum",
     (adv("a", prefer=((70, "role=edge,zone=primary"),)),
      adv("b", prefer=((30, "role=edge,zone=primary"), (50, "role=edge,zone=secondary")))),
     {"edge-a": 100, "edge-b": 50}),
    # An advertisement's preferences score only the nodes it selects, even when another
    # advertisement makes the others candidates (MetalLB's preferredNodeScores `eligible`).
    ("ads without preferences", (adv("a", nodes=("role=edge",)), adv("b")), {}),
    ("preferences of an advertisement for other nodes",
     (adv("edges", nodes=("role=edge",), prefer=((5, "zone=primary"),)), adv("all")),
     {"edge-a": 5}),
    ("preferences of an advertisement not matching the Service do not count",
     (adv("all", prefer=((5, "role=worker"),)),
      adv("other", services=("app=other",), prefer=((100, "role=edge"),))),
     {"worker-a": 5, "worker-b": 5}),
])
def test_scores(desc: str, advs: tuple[dict[str, Any], ...], want: dict[str, int]) -> None:
    inp = Inputs(SCORE_NODES, frozenset(SCORE_NODES), frozenset(SCORE_NODES), config(*advs))
    svc = ServiceState("ns/web", (IP,), "default", labels={"app": "web"})
    election = Election()
    static = election.static_candidates(svc, inp)
    assert dict(election.scores(svc, inp, static)) == want, desc


# -- whole decisions: MetalLB's ShouldAnnounce tests ---------------------------------------
EDGE_WORKER = ("edge-a", "edge-b", "worker-a", "worker-b")


@dataclass
class Case:
    desc: str  # MetalLB's test and case name
    advs: tuple[dict[str, Any], ...]
    owner: str | None
    nodes: tuple[str, ...] = EDGE_WORKER
    live: tuple[str, ...] | None = None  # None: every node
    labels: dict[str, str] = field(default_factory=dict)  # the Service's
    annotations: dict[str, str] = field(default_factory=dict)
    local_endpoints: tuple[str, ...] | None = None  # ETP=Local with endpoints there
    reason: Reason | None = None  # every non-owner's reason, when all share one
    ip: str = IP


EDGE = {"edge-a": {"role": "edge"}, "edge-b": {"role": "edge"}}
SHARED = {"metallb.io/allow-shared-ip": "key"}
CASES = [
    Case("TestShouldAnnouncePreferredNode/preferred node with highest score wins",
         (adv("a", prefer=((100, "kubernetes.io/hostname=edge-a"),)),), "edge-a"),
    Case("TestShouldAnnouncePreferredNode/ETP Local drops preferred node without local "
         "endpoints", (adv("a", prefer=((100, "kubernetes.io/hostname=edge-a"),)),),
         "worker-a", nodes=("edge-a", "worker-a"), local_endpoints=("worker-a",)),
    Case("TestShouldAnnounceSplitBrainWithMixedAds", (
        adv("edge", nodes=("kubernetes.io/hostname=edge-a",),
            prefer=((100, "kubernetes.io/hostname=edge-a"),)),
        adv("all"),
        # MetalLB's 1000 is past the CRD's maximum: two weights of 100 outscore edge-a too
        adv("poison", prefer=((100, "kubernetes.io/hostname=worker-a"),) * 2,
            services=("app=does-not-match",))), "edge-a", nodes=("edge-a", "worker-a")),
    Case("TestShouldAnnouncePreferredNodeFailover/preferred node pruned leaves remaining "
         "preferred as winner", (adv("a", prefer=((100, "role=edge"),)),), "edge-b",
         nodes=("edge-a", "edge-b", "worker-a"), live=("edge-b", "worker-a")),
    Case("TestShouldAnnouncePreferredNodeFailover/preferred node returns and reclaims via "
         "sha256 tie-break", (adv("a", prefer=((100, "role=edge"),)),), "edge-b",
         nodes=("edge-a", "edge-b", "worker-a")),
    Case("TestShouldAnnouncePreferredNodeFailover/all preferred unavailable falls through to "
         "hash across zero-score survivors", (adv("a", prefer=((100, "role=edge"),)),),
         "worker-a", live=("worker-a", "worker-b")),
    Case("TestL2ServiceSelectors/Empty selector matches all", (adv("a"),), "edge-b",
         labels={"app": "nginx"}),
    Case("TestL2ServiceSelectors/Matching selector allows announcement",
         (adv("a", services=("app=nginx",)),), "edge-b", labels={"app": "nginx"}),
    Case("TestL2ServiceSelectors/Non-matching selector prevents announcement",
         (adv("a", services=("app=nginx",)),), None, labels={"app": "apache"},
         reason=Reason.NO_MATCHING_ADVERTISEMENT),
    Case("TestL2ServiceSelectors/Multiple selectors - OR logic - one matches",
         (adv("a", services=("app=nginx", "app=apache")),), "edge-b",
         labels={"app": "apache"}),
    Case("TestL2SharedIPWithServiceSelectors/allow-shared-ip with serviceSelectors is denied",
         (adv("a", services=("app=nginx",)),), None, labels={"app": "nginx"},
         annotations=SHARED, reason=Reason.SHARED_IP_WITH_SERVICE_SELECTOR),
    Case("TestL2SharedIPWithServiceSelectors/allow-shared-ip without serviceSelectors is "
         "allowed", (adv("a"),), "edge-b", labels={"app": "nginx"}, annotations=SHARED),
    Case("TestL2SharedIPWithServiceSelectors/no allow-shared-ip with serviceSelectors is "
         "allowed", (adv("a", services=("app=nginx",)),), "edge-b", labels={"app": "nginx"}),
    Case("TestL2SharedIPWithServiceSelectors/deprecated allow-shared-ip with serviceSelectors "
         "is denied", (adv("a", services=("app=nginx",)),), None, labels={"app": "nginx"},
         annotations={"metallb.universe.tf/allow-shared-ip": ""},
         reason=Reason.SHARED_IP_WITH_SERVICE_SELECTOR),
    Case("TestL2SharedIPWithServiceSelectors/allow-shared-ip with mixed ads (one with "
         "selectors) is denied", (adv("plain"), adv("sel", services=("app=nginx",))), None,
         labels={"app": "nginx"}, annotations=SHARED,
         reason=Reason.SHARED_IP_WITH_SERVICE_SELECTOR),
    # A service-selecting advertisement that does not match the Service is not one of its
    # advertisements (MetalLB's l2AdsForService): no guard.
    Case("shared IP, service-selecting advertisement for other Services", (
        adv("plain"), adv("sel", services=("app=other",))), "edge-b",
        labels={"app": "nginx"}, annotations=SHARED),
    Case("TestL2ServiceSelectorFiltersCandidateNodes/svc-foo matches only iris1's adv, iris1 "
         "must announce", (adv("foo", nodes=("kubernetes.io/hostname=iris1",),
                               services=("app=foo",)),
                           adv("bar", nodes=("kubernetes.io/hostname=iris2",),
                               services=("app=bar",))),
         "iris1", nodes=("iris1", "iris2"), labels={"app": "foo"}),
    Case("TestL2ServiceSelectorFiltersCandidateNodes/svc-bar matches only iris2's adv, iris2 "
         "must announce", (adv("foo", nodes=("kubernetes.io/hostname=iris1",),
                               services=("app=foo",)),
                           adv("bar", nodes=("kubernetes.io/hostname=iris2",),
                               services=("app=bar",))),
         "iris2", nodes=("iris1", "iris2"), labels={"app": "bar"}),
]


def _inputs(c: Case) -> Inputs:
    nodes = {n: node(n, **{"kubernetes.io/hostname": n, **EDGE.get(n, {})}) for n in c.nodes}
    live = frozenset(c.live if c.live is not None else c.nodes)
    return Inputs(nodes, live, live, config(*c.advs))


def _service(c: Case) -> ServiceState:
    local = c.local_endpoints is not None
    return ServiceState("ns/svc", (c.ip,), "default", local, frozenset(c.local_endpoints or ()),
                        True, c.labels, shares_ip(c.annotations))


@pytest.mark.parametrize("case", CASES, ids=[c.desc for c in CASES])
def test_decisions(case: Case) -> None:
    inp, svc = _inputs(case), _service(case)
    election = Election()
    decisions = {me: election.decide(me, svc, inp) for me in case.nodes}
    assert {d.owner for d in decisions.values()} == {case.owner}
    owners = [me for me, d in decisions.items() if d.reason is Reason.OWNER]
    assert owners == ([case.owner] if case.owner else [])  # exactly one announces
    if case.reason is not None:
        assert {d.reason for me, d in decisions.items() if me != case.owner} == {case.reason}
    # decide_all agrees with decide (the verdict memo keys on what the filters read)
    for me in case.nodes:
        assert election.decide_all(me, {svc.key: svc}, inp)[svc.key] == decisions[me]


def test_a_preferred_node_in_hold_down_does_not_take_over_until_ready() -> None:
    """Ready members first (our hold-down), then score: a preferred node that just
    (re)joined reclaims the address once it is past its hold-down, not before."""
    c = CASES[0]
    inp, svc = _inputs(c), _service(c)
    joining = replace(inp, ready=inp.live - {"edge-a"})
    election = Election()
    assert election.decide("edge-a", svc, joining).reason is Reason.HOLD_DOWN
    assert election.decide("edge-a", svc, joining).owner == "edge-b"  # hash among the rest
    assert election.decide("edge-a", svc, inp).reason is Reason.OWNER


def test_preference_follows_node_label_changes_between_rounds() -> None:
    cfg = config(adv("a", prefer=((10, "fast=yes"),)))
    svc = ServiceState("ns/svc", (IP,), "default")
    election = Election()
    every = frozenset(EDGE_WORKER)
    nodes = {n: node(n) for n in EDGE_WORKER}
    assert election.decide("x", svc, Inputs(nodes, every, every, cfg)).owner == "edge-b"
    nodes["worker-b"] = node("worker-b", fast="yes")  # the same dict, edited in place
    assert election.decide("x", svc, Inputs(nodes, every, every, cfg)).owner == "worker-b"


def test_static_key_reads_labels_only_where_advertisements_select_services() -> None:
    plain = known_pools(config(adv("a", prefer=((1, "x=y"),))))
    selecting = known_pools(config(adv("a"), adv("web", services=("app=web",))))
    web = ServiceState("ns/a", (IP,), "default", labels={"app": "web"})
    db = replace(web, labels={"app": "db"})
    other = replace(web, labels={"app": "db", "team": "x"})
    shared = replace(web, shared_ip=True)
    assert static_key(web, plain) == static_key(db, plain) == static_key(shared, plain)
    assert static_key(web, selecting) != static_key(db, selecting)
    assert static_key(db, selecting) == static_key(other, selecting)  # same verdicts
    assert static_key(web, selecting) != static_key(shared, selecting)


def test_shares_ip_reads_the_key_not_the_value() -> None:
    assert shares_ip({"metallb.io/allow-shared-ip": ""})
    assert shares_ip({"metallb.universe.tf/allow-shared-ip": "k"})
    assert not shares_ip({"metallb.io/address-pool": "x"})


# -- decide_all with service selectors and preferences --------------------------------------
PNODES = ("n1", "n2", "n3", "n4")
PCONFIG = build_config(POOLS, [
    adv("all"),
    adv("web", services=("app=web",), prefer=((30, "edge=yes"),)),
    adv("edges", nodes=("edge=yes",), prefer=((20, "fast=yes"), (5, ""))),
    adv("db-on-fast", nodes=("fast=yes",), services=("app=db",)),
])
psvcs = st.lists(st.tuples(
    st.sampled_from(["default", "hash"]),
    st.sampled_from(["10.20.30.1", "10.20.30.2", "10.0.0.1", "10.0.0.2"]),
    st.sampled_from([{}, {"app": "web"}, {"app": "db"}]),
    st.booleans(),  # allow-shared-ip
    st.booleans(),  # externalTrafficPolicy: Local
    st.frozensets(st.sampled_from(PNODES)),
), max_size=20)


@settings(max_examples=300, deadline=None)
@given(svcs=psvcs, edge=st.frozensets(st.sampled_from(PNODES)),
       fast=st.frozensets(st.sampled_from(PNODES)),
       excluded=st.frozensets(st.sampled_from(PNODES), max_size=1),
       live=st.frozensets(st.sampled_from(PNODES)), me=st.sampled_from(PNODES))
def test_decide_all_equals_deciding_each_with_selectors_and_preferences(
        svcs: list[tuple[str, str, dict[str, str], bool, bool, frozenset[str]]],
        edge: frozenset[str], fast: frozenset[str], excluded: frozenset[str],
        live: frozenset[str], me: str) -> None:
    nodes = {n: NodeState(n, {**({"edge": "yes"} if n in edge else {}),
                              **({"fast": "yes"} if n in fast else {}),
                              **({EXCLUDE_LABEL: ""} if n in excluded else {})})
             for n in PNODES}
    inp = Inputs(nodes, live, live, PCONFIG)
    state = {f"ns/s{i}": ServiceState(f"ns/s{i}", (ip,), pool, local, eps, True, labels, shared)
             for i, (pool, ip, labels, shared, local, eps) in enumerate(svcs)}
    election = Election()
    got = election.decide_all(me, state, inp)
    assert got == {k: Election().decide(me, s, inp) for k, s in state.items()}
    after = Inputs(nodes, live - {"n1"}, live - {"n1"}, PCONFIG)
    again = election.decide_all(me, state, after, got)
    assert again == {k: Election().decide(me, s, after) for k, s in state.items()}

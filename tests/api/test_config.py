"""build_config: validation, overlap rules (older pool wins), held ranges, L2Advertisements."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.operator.builders import l2adv, pool, ts

from metallb_api.addresses import Family, parse_entry
from metallb_api.config import (
    Acceptance,
    Config,
    NoteReason,
    ProblemReason,
    acceptance,
    build_config,
)

pytestmark = pytest.mark.unit

P = ProblemReason


def reasons(cfg: Config) -> dict[tuple[str, str], ProblemReason]:
    return {(p.kind, p.name): p.reason for p in cfg.problems}


def test_valid_pool() -> None:
    cfg = build_config([pool("a", "10.0.0.0/24", "fd00::1-fd00::ff", avoid_buggy=True,
                             auto_assign=False, labels={"zone": "x"}, created=ts(3),
                             generation=7)])
    assert cfg.problems == ()
    p = cfg.pools["a"]
    assert p.ranges == (parse_entry("10.0.0.0/24"), parse_entry("fd00::1-fd00::ff"))
    assert (p.auto_assign, p.avoid_buggy_ips, p.created, p.generation) == (
        False, True, ts(3), 7)
    assert p.labels == {"zone": "x"}
    assert p.allocation is None
    assert p.families == frozenset({Family.V4, Family.V6})
    assert p.size(Family.V4) == 254 and p.size(Family.V6) == 255 and p.size() == 509
    assert cfg.held_ranges["a"] == p.ranges
    assert cfg.generations[("IPAddressPool", "a")] == 7


def test_service_allocation_is_parsed() -> None:
    cfg = build_config([pool("a", "10.0.0.0/24", priority=3, namespaces=["x", "y"],
                             namespace_selectors=[{"matchLabels": {"team": "a"}}],
                             service_selectors=[{"matchLabels": {"tier": "web"}}])])
    alloc = cfg.pools["a"].allocation
    assert alloc is not None
    assert alloc.priority == 3
    assert alloc.namespaces == frozenset({"x", "y"})
    assert alloc.namespace_selectors[0].matches({"team": "a"})
    assert alloc.service_selectors[0].matches({"tier": "web"})


@pytest.mark.parametrize(
    ("spec", "held", "message"),
    [
        ({"addresses": ["10.0.0.0/24", "nonsense"]}, ["10.0.0.0/24"], "spec.addresses:"),
        ({"addresses": ["10.0.0.9-10.0.0.1", "fd00::/120"]}, ["fd00::/120"],
         "start is after end"),
        ({"addresses": []}, [], "spec.addresses"),
        ({}, [], "spec.addresses: Field required"),
        ({"addresses": ["10.0.0.0/24"], "serviceAllocation": {"priority": -3}},
         ["10.0.0.0/24"], "spec.serviceAllocation.priority"),
        ({"addresses": ["10.0.0.0/24", "10.0.0.0/24"]}, ["10.0.0.0/24", "10.0.0.0/24"],
         "duplicate entry"),
        ({"addresses": ["10.0.0.0/24"], "autoAssign": "sometimes"}, ["10.0.0.0/24"],
         "spec.autoAssign"),
        # shapes a CRD schema would reject, e.g. written before the CRD had validation
        ({"addresses": "10.0.0.0/24"}, [], "spec.addresses"),
        ({"addresses": 5}, [], "spec.addresses"),
        ({"addresses": None}, [], "spec.addresses"),
        ({"addresses": [5, "10.0.0.0/24"]}, ["10.0.0.0/24"], "spec.addresses"),
    ],
)
def test_invalid_pool_is_reported_not_ready_but_holds(
    spec: dict[str, Any], held: list[str], message: str
) -> None:
    cfg = build_config([pool("bad", spec=spec), pool("good", "192.168.0.0/24")])
    assert "bad" not in cfg.pools and "good" in cfg.pools
    [problem] = cfg.problems
    assert (problem.kind, problem.name, problem.reason) == ("IPAddressPool", "bad",
                                                            P.INVALID_SPEC)
    assert message in problem.message, problem.message
    assert sorted(cfg.held_ranges["bad"]) == sorted(parse_entry(h) for h in held)


def test_pool_without_spec() -> None:
    obj = pool("bad", "10.0.0.0/24")
    del obj["spec"]
    cfg = build_config([obj])
    assert reasons(cfg) == {("IPAddressPool", "bad"): P.INVALID_SPEC}
    assert cfg.held_ranges["bad"] == ()


@pytest.mark.parametrize(
    "addresses",
    [
        ("10.0.0.0/24", "10.0.0.128/25"),
        ("10.0.0.0-10.0.0.10", "10.0.0.10-10.0.0.20"),
        ("fd00::/64", "fd00::5-fd00::9"),
        ("10.0.0.5-10.0.0.6", "10.0.1.0/24", "10.0.0.0/29"),
    ],
)
def test_self_overlap(addresses: tuple[str, ...]) -> None:
    cfg = build_config([pool("a", *addresses)])
    [problem] = cfg.problems
    assert problem.reason == P.OVERLAPS_ITSELF
    assert "in the same pool" in problem.message
    assert "a" not in cfg.pools
    assert len(cfg.held_ranges["a"]) == len(addresses)


@pytest.mark.parametrize(
    "addresses",
    [
        ("10.0.0.0-10.0.0.10", "10.0.0.11-10.0.0.20"),  # adjacent is fine
        ("10.0.0.0/24", "::a00:0/120"),  # same ints, other family
    ],
)
def test_no_self_overlap(addresses: tuple[str, ...]) -> None:
    assert build_config([pool("a", *addresses)]).problems == ()


OVERLAP_CASES = [
    # (pools as (name, created, addresses), expected winners, {loser: older})
    pytest.param([("old", ts(1), "10.0.0.0/24"), ("new", ts(2), "10.0.0.128/25")],
                 {"old"}, {"new": "old"}, id="older-by-timestamp"),
    pytest.param([("zz", ts(1), "10.0.0.0/24"), ("aa", ts(2), "10.0.0.128/25")],
                 {"zz"}, {"aa": "zz"}, id="timestamp-beats-name"),
    pytest.param([("b", ts(1), "10.0.0.0/24"), ("a", ts(1), "10.0.0.10-10.0.0.20")],
                 {"a"}, {"b": "a"}, id="same-timestamp-name-order"),
    pytest.param([("a", ts(1), "10.0.0.0/24"), ("b", ts(2), "10.0.1.0/24")],
                 {"a", "b"}, {}, id="disjoint"),
    pytest.param([("a", ts(1), "10.0.0.0-10.0.0.9"), ("b", ts(2), "10.0.0.10-10.0.0.19")],
                 {"a", "b"}, {}, id="adjacent"),
    pytest.param([("a", ts(1), "fd00::/64"), ("b", ts(2), "fd00::/48"),
                  ("c", ts(3), "fd00:1::/64")],
                 {"a", "c"}, {"b": "a"}, id="ipv6"),
    pytest.param([("a", ts(1), "10.0.0.0/24"), ("b", ts(2), "10.0.0.0/24"),
                  ("c", ts(3), "10.0.0.7/32")],
                 {"a"}, {"b": "a", "c": "a"}, id="two-losers"),
]


@pytest.mark.parametrize(("pools", "ready", "losers"), OVERLAP_CASES)
def test_overlap_between_pools_older_wins(
    pools: list[tuple[str, str, str]], ready: set[str], losers: dict[str, str]
) -> None:
    for order in itertools.permutations(pools):
        cfg = build_config([pool(name, addr, created=created) for name, created, addr in order])
        assert set(cfg.pools) == ready
        got = {p.name: p.related for p in cfg.problems}
        assert got == losers
        for p in cfg.problems:
            assert p.reason == P.OVERLAPS_POOL
            assert f"IPAddressPool {p.related!r}" in p.message and "older" in p.message
        for name, _, addr in pools:
            assert cfg.held_ranges[name] == (parse_entry(addr),)


def with_status(obj: dict[str, Any], state: str) -> dict[str, Any]:
    """state: "accepted" (Ready=True for this generation), "edited" (Ready=True for an
    older one), "refused" (Ready=False), "new" (no status)."""
    gen = obj["metadata"]["generation"]
    if state == "new":
        return obj
    ready = {"type": "Ready", "status": "False" if state == "refused" else "True",
             "reason": "x", "message": "", "lastTransitionTime": ts(0),
             "observedGeneration": gen - 1 if state == "edited" else gen}
    return {**obj, "status": {"conditions": [
        {"type": "AddressConflict", "status": "True"}, ready]}}


EDIT_CASES = [
    # (pools as (name, created, addresses, state)), the pool flagged, the winner, wording
    pytest.param([("old", ts(1), "10.0.0.0/23", "edited"),
                  ("new", ts(2), "10.0.1.0/24", "accepted")],
                 "old", "new", "was accepted before this pool's edit (generation 2)",
                 id="edited-older-pool-loses-to-accepted-newer"),
    pytest.param([("old", ts(1), "10.0.0.0/23", "accepted"),
                  ("new", ts(2), "10.0.1.0/24", "edited")],
                 "new", "old", "was accepted before this pool's edit (generation 2)",
                 id="edited-newer-pool-loses-to-accepted-older"),
    pytest.param([("old", ts(1), "10.0.0.0/23", "refused"),
                  ("new", ts(2), "10.0.1.0/24", "edited")],
                 "old", "new", "was accepted first",
                 id="flagged-stays-flagged-when-the-winner-is-edited-later"),
    pytest.param([("old", ts(1), "10.0.0.0/23", "refused"),
                  ("new", ts(2), "10.0.1.0/24", "accepted")],
                 "old", "new", "was accepted first", id="after-the-status-write"),
    pytest.param([("old", ts(1), "10.0.0.0/23", "edited"),
                  ("new", ts(2), "10.0.1.0/24", "new")],
                 "new", "old", "was accepted first", id="new-pool-loses-to-edited"),
    pytest.param([("old", ts(1), "10.0.0.0/23", "new"),
                  ("new", ts(2), "10.0.1.0/24", "new")],
                 "new", "old", "is older", id="no-status-older-wins"),
    pytest.param([("old", ts(1), "10.0.0.0/23", "edited"),
                  ("new", ts(2), "10.0.1.0/24", "edited")],
                 "new", "old", "is older", id="both-edited-older-wins"),
    pytest.param([("old", ts(1), "10.0.0.0/23", "accepted"),
                  ("new", ts(2), "10.0.1.0/24", "accepted")],
                 "new", "old", "is older", id="both-accepted-older-wins"),
]


@pytest.mark.parametrize(("pools", "flagged", "winner", "why"), EDIT_CASES)
def test_overlap_after_an_edit_flags_the_edited_pool(
        pools: list[tuple[str, str, str, str]], flagged: str, winner: str, why: str) -> None:
    objs = [with_status(pool(name, addr, created=created, generation=2), state)
            for name, created, addr, state in pools]
    for order in itertools.permutations(objs):
        cfg = build_config(order)
        assert set(cfg.pools) == {winner}
        [problem] = cfg.problems
        assert (problem.name, problem.reason, problem.related) == (
            flagged, P.OVERLAPS_POOL, winner)
        assert f"of IPAddressPool {winner!r}, which {why} and keeps" in problem.message
        assert set(cfg.held_ranges) == {"old", "new"}


@pytest.mark.parametrize(("status", "expected"), [
    (None, Acceptance.NEW_OR_REFUSED),
    ({}, Acceptance.NEW_OR_REFUSED),
    ({"conditions": "junk"}, Acceptance.NEW_OR_REFUSED),
    ({"conditions": [{"type": "Ready", "status": "Unknown", "observedGeneration": 3}]},
     Acceptance.NEW_OR_REFUSED),
    ({"conditions": [{"type": "Ready", "status": "True", "observedGeneration": 3}]},
     Acceptance.ACCEPTED),
    ({"conditions": [{"type": "Ready", "status": "True", "observedGeneration": 2}]},
     Acceptance.ACCEPTED_THEN_EDITED),
    ({"conditions": [{"type": "Ready", "status": "True"}]}, Acceptance.ACCEPTED_THEN_EDITED),
    ({"conditions": [{"type": "Ready", "status": "True", "observedGeneration": "x"}]},
     Acceptance.ACCEPTED_THEN_EDITED),
])
def test_acceptance_read_from_the_status(status: Any, expected: Acceptance) -> None:
    obj = pool("p", "10.0.0.0/24", generation=3)
    if status is not None:
        obj["status"] = status
    assert acceptance(obj) is expected


def test_overlap_with_a_not_ready_pool_does_not_count() -> None:
    """Only Ready pools keep addresses: a pool that overlaps only an older pool that is
    itself not Ready is accepted (the not-Ready one still holds what it assigned)."""
    cfg = build_config([
        pool("a", "10.0.0.0/24", created=ts(1)),
        pool("b", "10.0.0.0/23", created=ts(2)),  # overlaps a: not Ready
        pool("c", "10.0.1.0/24", created=ts(3)),  # overlaps only b
    ])
    assert set(cfg.pools) == {"a", "c"}
    assert reasons(cfg) == {("IPAddressPool", "b"): P.OVERLAPS_POOL}


def test_invalid_pool_does_not_block_valid_overlapping_pool() -> None:
    cfg = build_config([
        pool("old-bad", "10.0.0.0/24", "junk", created=ts(1)),
        pool("new", "10.0.0.0/24", created=ts(2)),
    ])
    assert set(cfg.pools) == {"new"}
    assert cfg.held_ranges["old-bad"] == (parse_entry("10.0.0.0/24"),)


def test_problems_for_and_generations() -> None:
    cfg = build_config([pool("a", "x", generation=4)], [l2adv("l", ["nope"], generation=2)])
    assert [p.reason for p in cfg.problems_for("IPAddressPool", "a")] == [P.INVALID_SPEC]
    assert [p.reason for p in cfg.problems_for("L2Advertisement", "l")] == [P.POOL_NOT_FOUND]
    assert cfg.problems_for("IPAddressPool", "l") == []
    assert cfg.generations == {("IPAddressPool", "a"): 4, ("L2Advertisement", "l"): 2}


# -- L2Advertisements ----------------------------------------------------------------

POOLS = [
    pool("a", "10.0.0.0/24", labels={"zone": "x"}, created=ts(1)),
    pool("b", "10.0.1.0/24", labels={"zone": "y"}, created=ts(2)),
    pool("broken", "oops", labels={"zone": "x"}, created=ts(3)),
]


@pytest.mark.parametrize(
    ("adv", "pools", "reason"),
    [
        (l2adv("all"), {"a", "b"}, None),
        (l2adv("all-empty-lists", [], pool_selectors=[]), {"a", "b"}, None),
        (l2adv("named", ["b"]), {"b"}, None),
        (l2adv("missing", ["a", "nope", "gone"]), {"a"}, P.POOL_NOT_FOUND),
        # Selecting nothing (yet) is valid, as in MetalLB: a note, not a problem.
        (l2adv("not-ready", ["broken"]), set(), None),
        (l2adv("selector", pool_selectors=[{"matchLabels": {"zone": "x"}}]), {"a"}, None),
        (l2adv("selector-none", pool_selectors=[{"matchLabels": {"zone": "z"}}]), set(),
         None),
        (l2adv("both", ["b"], pool_selectors=[{"matchLabels": {"zone": "x"}}]), {"a", "b"},
         None),
        (l2adv("bad", interfaces=["way-too-long-interface"]), None, P.INVALID_SPEC),
        (l2adv("bad-selector", pool_selectors=[{"matchExpressions": [
            {"key": "zone", "operator": "In"}]}]), None, P.INVALID_SPEC),
    ],
)
def test_l2advertisement(adv: dict[str, Any], pools: set[str] | None,
                         reason: ProblemReason | None) -> None:
    cfg = build_config(POOLS, [adv])
    name = adv["metadata"]["name"]
    got = [p for p in cfg.problems if p.kind == "L2Advertisement"]
    assert [p.reason for p in got] == ([reason] if reason else [])
    if pools is None:
        assert name not in cfg.l2advertisements
    else:
        assert cfg.l2advertisements[name].pools == frozenset(pools)
        assert cfg.advertised_pools() == frozenset(pools)


@pytest.mark.parametrize(("selector", "field"), [
    ({"matchLabels": {"kubernetes.io/host name": "n1"}}, "matchLabels: invalid label key"),
    ({"matchLabels": {"kubernetes.io/hostname": "n1 "}},
     "matchLabels[kubernetes.io/hostname]: invalid label value"),
    ({"matchExpressions": [{"key": "Zone.Example/x", "operator": "Exists"}]},
     "matchExpressions[0].key: invalid label key"),
    ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b/c"]}]},
     "matchExpressions[0].values[1]: invalid label value"),
])
@pytest.mark.parametrize("where", ["nodeSelectors", "ipAddressPoolSelectors"])
def test_l2advertisement_with_a_selector_that_can_never_match_is_not_accepted(
        selector: dict[str, Any], field: str, where: str) -> None:
    """A label no object can carry: the advertisement is refused (not Ready, announces
    nothing) with the field named, instead of silently selecting no node or pool."""
    good = {"matchLabels": {"kubernetes.io/hostname": "n1"}}
    adv = l2adv("l", **{"node_selectors" if where == "nodeSelectors" else "pool_selectors":
                        [good, selector]})
    cfg = build_config(POOLS, [adv])
    assert "l" not in cfg.l2advertisements
    [problem] = cfg.problems_for("L2Advertisement", "l")
    assert problem.reason is P.INVALID_SPEC
    assert problem.message.startswith(f"spec.{where}[1].{field}"), problem.message


NEVER = {"matchLabels": {"zone": "a"}, "matchExpressions": [
    {"key": "zone", "operator": "NotIn", "values": ["a"]}]}


@pytest.mark.parametrize(("selectors", "refused"), [
    ([NEVER], True),
    ([NEVER, {"matchExpressions": [{"key": "x", "operator": "Exists"},
                                   {"key": "x", "operator": "DoesNotExist"}]}], True),
    ([NEVER, {"matchLabels": {"zone": "b"}}], False),  # the other one can match
    ([], False),
])
def test_l2advertisement_whose_node_selectors_never_match_is_not_accepted(
        selectors: list[dict[str, Any]], refused: bool) -> None:
    cfg = build_config(POOLS, [l2adv("l", node_selectors=selectors)])
    assert ("l" not in cfg.l2advertisements) is refused
    problems = cfg.problems_for("L2Advertisement", "l")
    if not refused:
        assert problems == []
        return
    [problem] = problems
    assert problem.reason is P.NEVER_MATCHES_NODES
    assert problem.message.startswith(
        "spec.nodeSelectors: no node can match: [0]: no value of key 'zone' satisfies all "
        "of its requirements"), problem.message
    assert cfg.advertised_pools() == frozenset()


@pytest.mark.parametrize("where", ["namespace_selectors", "service_selectors"])
def test_pool_with_an_invalid_service_allocation_selector_is_not_ready_but_holds(
        where: str) -> None:
    cfg = build_config([pool("p", "10.0.0.0/24", **{where: [{"matchLabels": {"team": "-a"}}]})])
    assert "p" not in cfg.pools and cfg.held_ranges["p"] == (parse_entry("10.0.0.0/24"),)
    [problem] = cfg.problems_for("IPAddressPool", "p")
    field = "namespaceSelectors" if where == "namespace_selectors" else "serviceSelectors"
    assert problem.message.startswith(
        f"spec.serviceAllocation.{field}[0].matchLabels[team]: invalid label value '-a'")


def test_pool_not_found_names_the_missing_pools() -> None:
    cfg = build_config(POOLS, [l2adv("l", ["a", "nope", "gone"])])
    [problem] = cfg.problems_for("L2Advertisement", "l")
    assert problem.related == "nope"
    assert "'nope', 'gone'" in problem.message


def test_l2advertisement_node_selectors_and_interfaces() -> None:
    cfg = build_config(POOLS, [l2adv("l", node_selectors=[
        {"matchLabels": {"kubernetes.io/hostname": "n1"}}], interfaces=["eth0", "eth1"])])
    adv = cfg.l2advertisements["l"]
    assert adv.interfaces == ("eth0", "eth1")
    assert adv.selects_node({"kubernetes.io/hostname": "n1"})
    assert not adv.selects_node({"kubernetes.io/hostname": "n2"})
    assert build_config(POOLS, [l2adv("m")]).l2advertisements["m"].selects_node({})


def test_advertised_pools_union() -> None:
    cfg = build_config(POOLS, [l2adv("l1", ["a"]), l2adv("l2", ["b"])])
    assert cfg.advertised_pools() == frozenset({"a", "b"})
    assert build_config(POOLS).advertised_pools() == frozenset()


@pytest.mark.parametrize("adv", [
    l2adv("named-broken", ["broken"]),
    l2adv("pool-selector", pool_selectors=[{"matchLabels": {"zone": "nowhere"}}]),
])
def test_selectors_that_match_nothing_yet_are_valid_with_a_note(adv: dict[str, Any]) -> None:
    name = adv["metadata"]["name"]
    cfg = build_config(POOLS, [adv])
    assert cfg.problems_for("L2Advertisement", name) == []
    assert cfg.l2advertisements[name].pools == frozenset()
    [note] = cfg.notes_for("L2Advertisement", name)
    assert note.reason is NoteReason.NO_MATCHING_POOLS
    # Nodes and Services are not known here: selectors for them never make a note.
    cfg = build_config(POOLS, [l2adv("s", service_selectors=[{"matchLabels": {"x": "y"}}],
                                     node_selectors=[{"matchLabels": {"x": "y"}}],
                                     preferred=[(5, {"matchLabels": {"x": "y"}})])])
    assert (cfg.problems_for("L2Advertisement", "s"), cfg.notes) == ([], ())


def test_service_selectors_and_preferences_are_parsed() -> None:
    cfg = build_config(POOLS, [
        l2adv("l", node_selectors=[{"matchLabels": {"role": "edge"}},
                                   {"matchLabels": {"role": "core"}}],
              service_selectors=[{"matchLabels": {"app": "web"}},
                                 {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}],
              # Repeated preferences are allowed and summed, as in MetalLB.
              preferred=[(60, {"matchLabels": {"zone": "primary"}}),
                         (50, {"matchLabels": {"role": "edge"}}),
                         (1, {"matchLabels": {"role": "edge"}}), (10, {})]),
        l2adv("plain"),
    ])
    adv = cfg.l2advertisements["l"]
    assert adv.selects_service({"app": "web"}) and adv.selects_service({"tier": "x"})
    assert not adv.selects_service({"app": "db"}) and not adv.selects_service({})
    assert cfg.l2advertisements["plain"].selects_service({})
    # The weights of the selectors a node matches, summed (MetalLB's TestPreferredNodeScores
    # "cumulative weights sum", "empty preference matches every eligible node").
    assert adv.preference({"role": "edge", "zone": "primary"}) == 121
    assert adv.preference({"role": "worker"}) == 10
    assert cfg.service_selecting == (adv,)
    assert cfg.has_preferences
    assert not build_config(POOLS, [l2adv("plain")]).has_preferences


DUP = {"matchLabels": {"zone": "a"}}
EXPR = {"key": "zone", "operator": "In", "values": ["a", "b"]}


# MetalLB's config parse (validateLabelSelectorDuplicate, validateDuplicate) refuses these;
# the CRDs refuse the same (lists of type set). Field, value, message.
@pytest.mark.parametrize(("field", "value", "message"), [
    ("nodeSelectors", [DUP, {"matchLabels": {"zone": "b"}}, DUP],
     "spec.nodeSelectors[2]: duplicate of [0]"),
    ("ipAddressPoolSelectors", [DUP, DUP], "spec.ipAddressPoolSelectors[1]: duplicate of [0]"),
    ("serviceSelectors", [{"matchExpressions": [EXPR]}, {"matchExpressions": [EXPR]}],
     "spec.serviceSelectors[1]: duplicate of [0]"),
    ("nodeSelectors", [{"matchExpressions": [EXPR, EXPR]}],
     "spec.nodeSelectors[0].matchExpressions[1]: duplicate of matchExpressions[0]"),
    ("nodeSelectors", [{"matchExpressions": [{"key": "k", "operator": "In",
                                              "values": ["x", "y", "x"]}]}],
     "spec.nodeSelectors[0].matchExpressions[0].values[2]: duplicate value 'x'"),
    ("preferredNodeSelectors", [{"weight": 1, "preference": {"matchExpressions": [
        {"key": "k", "operator": "NotIn", "values": ["x", "x"]}]}}],
     "spec.preferredNodeSelectors[0].preference.matchExpressions[0].values[1]: "
     "duplicate value 'x'"),
    ("ipAddressPools", ["a", "b", "a"], "spec.ipAddressPools[2]: duplicate value 'a'"),
    ("preferredNodeSelectors", [{"weight": 0, "preference": {}}],
     "spec.preferredNodeSelectors[0].weight: Input should be greater than or equal to 1"),
    ("preferredNodeSelectors", [{"weight": 101, "preference": {}}],
     "spec.preferredNodeSelectors[0].weight: Input should be less than or equal to 100"),
    ("preferredNodeSelectors", [{"weight": 5}],
     "spec.preferredNodeSelectors[0].preference: Field required"),
])
def test_l2advertisement_duplicates_and_bad_preferences_are_refused(
        field: str, value: list[Any], message: str) -> None:
    adv = l2adv("l")
    adv["spec"][field] = value
    cfg = build_config(POOLS, [adv])
    assert "l" not in cfg.l2advertisements
    [problem] = cfg.problems_for("L2Advertisement", "l")
    assert problem.reason is P.INVALID_SPEC
    assert problem.message.startswith(message), problem.message


@pytest.mark.parametrize("value", [
    [DUP, {"matchLabels": {"zone": "a", "x": "y"}}],
    # As written: values in another order are another entry for the API server's set
    # (MetalLB sorts them first: a documented difference).
    [{"matchExpressions": [EXPR]}, {"matchExpressions": [EXPR | {"values": ["b", "a"]}]}],
    [{"matchExpressions": [EXPR]}, {"matchExpressions": [EXPR | {"operator": "NotIn"}]}],
    [{}, {"matchLabels": {}}],  # absent and empty differ, as for the API server
])
def test_distinct_selectors_are_not_duplicates(value: list[Any]) -> None:
    cfg = build_config(POOLS, [l2adv("l", node_selectors=value)])
    assert cfg.problems_for("L2Advertisement", "l") == []


@pytest.mark.parametrize(("field", "value", "message"), [
    ("namespaces", ["a", "b", "a"],
     "spec.serviceAllocation.namespaces[2]: duplicate value 'a' (first at [0])"),
    ("namespaceSelectors", [DUP, DUP], "spec.serviceAllocation.namespaceSelectors[1]: "
     "duplicate of [0]"),
    ("serviceSelectors", [{"matchExpressions": [{"key": "k", "operator": "In",
                                                 "values": ["v", "v"]}]}],
     "spec.serviceAllocation.serviceSelectors[0].matchExpressions[0].values[1]: "
     "duplicate value 'v'"),
])
def test_pool_duplicates_are_refused(field: str, value: list[Any], message: str) -> None:
    cfg = build_config([pool("p") | {"spec": {"addresses": ["10.0.0.0/24"],
                                              "serviceAllocation": {field: value}}}])
    assert "p" not in cfg.pools
    [problem] = cfg.problems_for("IPAddressPool", "p")
    assert problem.message.startswith(message), problem.message


# -- never raises ----------------------------------------------------------------------

junk = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 300) | st.text(max_size=12)
    | st.sampled_from(["10.0.0.0/24", "fd00::/120", "10.0.0.1-10.0.0.2", "In", "Exists"]),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["addresses", "autoAssign", "avoidBuggyIPs",
                                       "serviceAllocation", "priority", "namespaces",
                                       "namespaceSelectors", "serviceSelectors",
                                       "matchLabels", "matchExpressions", "key",
                                       "operator", "values", "ipAddressPools",
                                       "ipAddressPoolSelectors", "nodeSelectors",
                                       "interfaces", "serviceSelectors",
                                       "preferredNodeSelectors", "weight", "preference"]),
                      children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(junk, max_size=3), st.lists(junk, max_size=2))
def test_build_config_never_raises_on_junk_specs(pool_specs: list[Any],
                                                 adv_specs: list[Any]) -> None:
    pools = [pool(f"p{i}", spec={}) | {"spec": s} for i, s in enumerate(pool_specs)]
    advs = [l2adv(f"l{i}") | {"spec": s} for i, s in enumerate(adv_specs)]
    cfg = build_config(pools, advs)
    for i in range(len(pool_specs)):
        name = f"p{i}"
        assert (name in cfg.pools) != bool(cfg.problems_for("IPAddressPool", name))
        assert name in cfg.held_ranges

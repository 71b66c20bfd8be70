"""Pool/L2Advertisement status: counters, conditions and condition bookkeeping."""

from __future__ import annotations

from typing import Any

import pytest
from tests.operator.builders import allocator, config, ensure, l2adv, pool, service, ts

from metallb_api.addresses import Family
from metallb_api.bgp import build_bgp_config
from metallb_api.conditions import ConditionSpec
from metallb_operator.allocator import PoolUsage
from metallb_operator.status import INT64_MAX, l2adv_conditions, pool_conditions, pool_status

pytestmark = pytest.mark.unit

V4, V6 = Family.V4, Family.V6


def by_type(specs: list[ConditionSpec]) -> dict[str, ConditionSpec]:
    return {c.type: c for c in specs}


def test_pool_conditions_ready_and_advertised() -> None:
    cfg = config(pool("a", "10.0.0.0/24", "fd00::/64"), advs=[l2adv("z"), l2adv("y", ["a"])])
    conds = by_type(pool_conditions(cfg, "a"))
    assert [c.type for c in pool_conditions(cfg, "a")] == ["Ready", "Advertised",
                                                           "AssignmentsStable"]
    assert conds["Ready"] == ConditionSpec("Ready", True, "Accepted",
                                           "2 address range(s) accepted")
    assert conds["Advertised"].status
    assert conds["Advertised"].reason == "L2AdvertisementSelectsPool"
    assert conds["Advertised"].message == "announced by L2Advertisement y, z"
    assert conds["AssignmentsStable"] == ConditionSpec(
        "AssignmentsStable", True, "NoServicesMoved", "no assigned Service had to move")


def test_pool_conditions_not_advertised() -> None:
    cfg = config(pool("a", "10.0.0.0/24"), pool("b", "10.0.1.0/24"), advs=[l2adv("l", ["b"])])
    adv = by_type(pool_conditions(cfg, "a"))["Advertised"]
    assert (adv.status, adv.reason) == (False, "NoL2Advertisement")
    assert "unreachable" in adv.message


def bgpadv(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
            "metadata": {"name": name, "namespace": "metallb-system"}, "spec": spec}


def community(name: str, **aliases: str) -> dict[str, Any]:
    return {"apiVersion": "metallb.io/v1beta1", "kind": "Community",
            "metadata": {"name": name, "namespace": "metallb-system"},
            "spec": {"communities": [{"name": k, "value": v} for k, v in aliases.items()]}}


NOT_ANNOUNCED = ("no L2Advertisement or BGPAdvertisement selects this pool: its addresses "
                 "are assigned but not announced, so they are unreachable")


@pytest.mark.parametrize(
    ("l2advs", "bgpadvs", "communities", "expected"),
    [
        pytest.param([], [bgpadv("b", ipAddressPools=["a"])], [],
                     (True, "BGPAdvertisementSelectsPool", "announced by BGPAdvertisement b"),
                     id="bgp-by-name"),
        pytest.param([], [bgpadv("all")], [],
                     (True, "BGPAdvertisementSelectsPool", "announced by BGPAdvertisement all"),
                     id="bgp-no-pools-means-all"),
        pytest.param([], [bgpadv("sel", ipAddressPoolSelectors=[
                         {"matchLabels": {"mode": "bgp"}}])], [],
                     (True, "BGPAdvertisementSelectsPool", "announced by BGPAdvertisement sel"),
                     id="bgp-by-selector"),
        pytest.param([], [bgpadv("other", ipAddressPools=["b"]),
                          bgpadv("sel", ipAddressPoolSelectors=[
                              {"matchLabels": {"mode": "l2"}}])], [],
                     (False, "NoL2Advertisement", NOT_ANNOUNCED),
                     id="bgp-selects-other-pools"),
        pytest.param([l2adv("l", ["a"])], [bgpadv("y", ipAddressPools=["a"]), bgpadv("x")], [],
                     (True, "L2AdvertisementSelectsPool",
                      "announced by L2Advertisement l; BGPAdvertisement x, y"),
                     id="both-modes"),
        pytest.param([l2adv("l", ["b"])], [], [],
                     (False, "NoL2Advertisement", NOT_ANNOUNCED), id="nothing"),
        # A refused BGPAdvertisement announces nothing (the speakers leave it out too).
        pytest.param([], [bgpadv("short", aggregationLength=16)], [],
                     (False, "NoL2Advertisement", NOT_ANNOUNCED), id="bgp-refused"),
        pytest.param([], [bgpadv("c", communities=["no-export"])], [],
                     (False, "NoL2Advertisement", NOT_ANNOUNCED), id="bgp-unknown-alias"),
        pytest.param([], [bgpadv("c", communities=["no-export"])],
                     [community("aliases", **{"no-export": "65535:65281"})],
                     (True, "BGPAdvertisementSelectsPool", "announced by BGPAdvertisement c"),
                     id="bgp-alias-from-community"),
    ],
)
def test_pool_advertised_by_l2_or_bgp(l2advs: list[dict[str, Any]],
                                      bgpadvs: list[dict[str, Any]],
                                      communities: list[dict[str, Any]],
                                      expected: tuple[bool, str, str]) -> None:
    cfg = config(pool("a", "10.0.0.0/24", labels={"mode": "bgp"}),
                 pool("b", "10.0.1.0/24", labels={"mode": "l2"}), advs=l2advs)
    bgp = build_bgp_config(cfg, advertisements=bgpadvs, communities=communities)
    adv = by_type(pool_conditions(cfg, "a", bgp=bgp))["Advertised"]
    assert (adv.status, adv.reason, adv.message) == expected


@pytest.mark.parametrize(
    ("pools", "reason", "fragment"),
    [
        ([pool("a", "10.0.0.9-10.0.0.1")], "InvalidSpec", "start is after end"),
        ([pool("a", "10.0.0.0/24", "10.0.0.5/32")], "OverlappingAddresses", "same pool"),
        ([pool("old", "10.0.0.0/24", created=ts(1)), pool("a", "10.0.0.0/25", created=ts(2))],
         "OverlapsPool", "'old'"),
    ],
)
def test_pool_conditions_not_ready(pools: list[dict[str, Any]], reason: str,
                                   fragment: str) -> None:
    ready = by_type(pool_conditions(config(*pools), "a"))["Ready"]
    assert (ready.status, ready.reason) == (False, reason)
    assert fragment in ready.message


def test_pool_conditions_moved() -> None:
    cfg = config(pool("a", "10.0.0.0/24"))
    stable = by_type(pool_conditions(cfg, "a", moved="2 Services moved to pool b"))[
        "AssignmentsStable"]
    assert stable == ConditionSpec("AssignmentsStable", False, "ServicesMoved",
                                   "2 Services moved to pool b")


def test_pool_status_counts() -> None:
    a = allocator(pool("p", "10.0.0.0/24", "fd00::/120"))
    ensure(a, service("s1", families="46", policy="RequireDualStack"))
    ensure(a, service("s2"))
    ensure(a, service("s3", share="k", ports=[("TCP", 1)]))
    ensure(a, service("s4", share="k", ports=[("TCP", 2)]))
    assert pool_status(a.usage("p")) == {
        "assignedIPv4": 3, "assignedIPv6": 1,
        "availableIPv4": 253, "availableIPv6": 255,
        "assignedTotal": 4, "availableTotal": "508",
    }


def test_pool_status_is_exact_for_huge_pools_and_saturates_int64() -> None:
    a = allocator(pool("p", "10.0.0.0/8", "fd00::/64"))
    ensure(a, service("s", families="6"))
    status = pool_status(a.usage("p"))
    assert status["availableIPv4"] == 2**24
    assert status["availableIPv6"] == INT64_MAX  # 2**64 - 1 does not fit an int64
    assert status["assignedIPv6"] == 1
    assert status["availableTotal"] == str(2**24 + 2**64 - 1)
    assert int(status["availableTotal"]) == 2**24 + 2**64 - 1


def test_pool_status_never_negative() -> None:
    usage = PoolUsage(assigned={V4: 5}, total={V4: 0, V6: 0})  # a not-Ready pool
    status = pool_status(usage)
    assert status["availableIPv4"] == 0 and status["availableTotal"] == "0"
    assert status["assignedIPv4"] == 5 and status["assignedIPv6"] == 0


def test_pool_status_of_not_ready_pool_from_allocator() -> None:
    a = allocator(pool("p", "10.0.0.0/24"))
    ensure(a, service("s"))
    a.set_config(config(pool("p", "10.0.0.0/24", "junk")))
    status = pool_status(a.usage("p"))
    assert status["assignedIPv4"] == 1
    assert status["availableIPv4"] == 0


def test_l2adv_conditions() -> None:
    cfg = config(pool("b", "10.0.1.0/24"), pool("a", "10.0.0.0/24"),
                 advs=[l2adv("all"), l2adv("missing", ["nope"]), l2adv("none", ["x"]),
                       l2adv("bad", interfaces=["a/b"])])
    assert l2adv_conditions(cfg, "all") == [
        ConditionSpec("Ready", True, "Accepted", "announces pools: a, b")]
    [missing] = l2adv_conditions(cfg, "missing")
    assert (missing.status, missing.reason) == (False, "PoolNotFound")
    assert "'nope'" in missing.message
    [bad] = l2adv_conditions(cfg, "bad")
    assert (bad.status, bad.reason) == (False, "InvalidSpec")


def test_l2adv_conditions_with_no_ready_pool_selected() -> None:
    # Valid, as in MetalLB: Ready, and the message says nothing is announced yet.
    cfg = config(pool("broken", "junk"), advs=[l2adv("l", ["broken"])])
    [ready] = l2adv_conditions(cfg, "l")
    assert (ready.status, ready.reason) == (True, "Accepted")
    assert ready.message == ("announces pools: none; no Ready IPAddressPool is selected "
                             "(yet): nothing is announced")
    cfg = config(advs=[l2adv("l")])
    assert l2adv_conditions(cfg, "l") == [
        ConditionSpec("Ready", True, "Accepted", "announces pools: none")]

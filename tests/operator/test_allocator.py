"""Table-driven tests of the allocator's MetalLB rules.

Each table case is: pools, Services created in order, and for each Service the expected
addresses (comma-joined, in the order the allocator returns them: the Service's
ipFamilies order) or the expected FailureReason.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from tests.operator.builders import (
    allocator,
    config,
    ensure,
    ips_of,
    outcome,
    pool,
    request_of,
    service,
    ts,
    with_ingress,
)

from metallb_api.addresses import IP, Family
from metallb_api.service import service_view
from metallb_operator.allocator import (
    Allocated,
    AllocationFailure,
    Allocator,
    FailureReason,
    restore_order,
    wanted_families,
)

pytestmark = pytest.mark.unit

R = FailureReason
NS_SEL_TEAM_A = {"matchLabels": {"team": "a"}}
SVC_SEL_WEB = {"matchLabels": {"tier": "web"}}


def run(
    pools: Sequence[Mapping[str, Any]],
    services: Sequence[Mapping[str, Any]],
    ns_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> tuple[Allocator, list[str | FailureReason]]:
    a = allocator(*pools, ns_labels=ns_labels)
    return a, [outcome(ensure(a, s)) for s in services]


def case(id_: str, pools: list[dict[str, Any]], services: list[dict[str, Any]],
         expected: list[str | FailureReason],
         ns_labels: dict[str, dict[str, str]] | None = None) -> Any:
    return pytest.param(pools, services, expected, ns_labels, id=id_)


REQUESTED = [
    case("annotation-ip", [pool("a", "10.0.0.0/24")],
         [service("s", ips="10.0.0.7")], ["10.0.0.7"]),
    case("annotation-ip-with-spaces", [pool("a", "10.0.0.0/24")],
         [service("s", ips=" 10.0.0.7 ")], ["10.0.0.7"]),
    case("spec-loadBalancerIP", [pool("a", "10.0.0.0/24")],
         [service("s", lb_ip="10.0.0.9")], ["10.0.0.9"]),
    case("legacy-annotation-ip", [pool("a", "10.0.0.0/24")],
         [service("s", ips="10.0.0.8", legacy=True)], ["10.0.0.8"]),
    case("requested-not-in-any-pool", [pool("a", "10.0.0.0/24")],
         [service("s", ips="10.9.9.9")], [R.REQUESTED_IP_NOT_IN_POOL]),
    case("requested-in-use", [pool("a", "10.0.0.0/24")],
         [service("s1", ips="10.0.0.5"), service("s2", ips="10.0.0.5", ports=[("TCP", 81)])],
         ["10.0.0.5", R.REQUESTED_IP_IN_USE]),
    case("auto-then-requested-in-use", [pool("a", "10.0.0.0/24")],
         [service("s1"), service("s2", ips="10.0.0.0")],
         ["10.0.0.0", R.REQUESTED_IP_IN_USE]),
    case("requested-skips-taken-for-next-auto", [pool("a", "10.0.0.0/30")],
         [service("s1", ips="10.0.0.0"), service("s2")], ["10.0.0.0", "10.0.0.1"]),
    case("requested-v6-on-v4-single-stack", [pool("a", "10.0.0.0/24", "fd00::/120")],
         [service("s", ips="fd00::5")], [R.FAMILY_MISMATCH]),
    case("requested-v4-on-v6-single-stack", [pool("a", "10.0.0.0/24", "fd00::/120")],
         [service("s", ips="10.0.0.5", families="6")], [R.FAMILY_MISMATCH]),
    case("requested-two-families-on-single-stack", [pool("a", "10.0.0.0/24", "fd00::/120")],
         [service("s", ips="10.0.0.5,fd00::5")], [R.FAMILY_MISMATCH]),
    case("require-dual-with-one-requested", [pool("a", "10.0.0.0/24", "fd00::/120")],
         [service("s", ips="10.0.0.5", families="46", policy="RequireDualStack")],
         [R.FAMILY_MISMATCH]),
    case("require-dual-with-both-requested", [pool("a", "10.0.0.0/24", "fd00::/120")],
         [service("s", ips="fd00::5, 10.0.0.5", families="46", policy="RequireDualStack")],
         ["10.0.0.5,fd00::5"]),
    case("require-dual-requested-from-two-pools",
         [pool("a", "10.0.0.0/24"), pool("b", "fd00::/120")],
         [service("s", ips="10.0.0.5,fd00::5", families="46", policy="RequireDualStack")],
         [R.REQUESTED_IPS_IN_DIFFERENT_POOLS]),
    case("prefer-dual-requested-from-two-pools",
         [pool("a", "10.0.0.0/24", "fd00::/120"), pool("b", "fd01::/120")],
         [service("s", ips="10.0.0.5,fd01::5", families="46", policy="PreferDualStack"),
          service("t", ips="10.0.0.5,fd00::5", families="46", policy="PreferDualStack")],
         [R.REQUESTED_IPS_IN_DIFFERENT_POOLS, "10.0.0.5,fd00::5"]),
    case("prefer-dual-with-one-requested", [pool("a", "10.0.0.0/24", "fd00::/120")],
         [service("s", ips="fd00::5", families="46", policy="PreferDualStack")],
         ["fd00::5"]),
    case("requested-in-auto-assign-false-pool",
         [pool("a", "10.0.0.0/24", auto_assign=False)],
         [service("s", ips="10.0.0.3")], ["10.0.0.3"]),
    case("requested-ip-and-matching-pool", [pool("a", "10.0.0.0/24"), pool("b", "10.0.1.0/24")],
         [service("s", ips="10.0.1.4", pool="b")], ["10.0.1.4"]),
    case("requested-ip-not-in-requested-pool",
         [pool("a", "10.0.0.0/24"), pool("b", "10.0.1.0/24")],
         [service("s", ips="10.0.0.4", pool="b")], [R.REQUESTED_IP_NOT_IN_POOL]),
    case("requested-ip-in-invalid-pool",
         [pool("bad", "10.0.0.0/24", "nonsense")],
         [service("s", ips="10.0.0.4")], [R.REQUESTED_POOL_NOT_READY]),
    case("requested-ip-in-overlapping-newer-pool-goes-to-older",
         [pool("old", "10.0.0.0/25", created=ts(1)), pool("new", "10.0.0.0/24", created=ts(2))],
         [service("s1", ips="10.0.0.4"), service("s2", ips="10.0.0.200")],
         ["10.0.0.4", R.REQUESTED_POOL_NOT_READY]),
    case("requested-ip-pool-not-allowed",
         [pool("a", "10.0.0.0/24", namespaces=["other"])],
         [service("s", ips="10.0.0.4")], [R.POOL_NOT_ALLOWED]),
    case("requested-buggy-ip-in-avoid-buggy-pool",
         [pool("a", "10.0.0.0/24", avoid_buggy=True)],
         [service("s1", ips="10.0.0.255"), service("s2", ips="10.0.0.0"),
          service("s3", ips="10.0.0.254")],
         [R.REQUESTED_IP_NOT_IN_POOL, R.REQUESTED_IP_NOT_IN_POOL, "10.0.0.254"]),
    case("requested-buggy-ip-without-avoid-buggy", [pool("a", "10.0.0.0/24")],
         [service("s", ips="10.0.0.255")], ["10.0.0.255"]),
]

POOL_BY_NAME = [
    case("address-pool-annotation", [pool("a", "10.0.0.0/24"), pool("b", "10.0.1.0/24")],
         [service("s", pool="b")], ["10.0.1.0"]),
    case("legacy-address-pool-annotation",
         [pool("a", "10.0.0.0/24"), pool("b", "10.0.1.0/24")],
         [service("s", pool="b", legacy=True)], ["10.0.1.0"]),
    case("address-pool-missing", [pool("a", "10.0.0.0/24")],
         [service("s", pool="nope")], [R.REQUESTED_POOL_NOT_FOUND]),
    case("address-pool-not-ready", [pool("a", "10.0.0.0/24"), pool("b", "10.0.1.0/24", "x")],
         [service("s", pool="b")], [R.REQUESTED_POOL_NOT_READY]),
    case("address-pool-auto-assign-false",
         [pool("a", "10.0.0.0/24"), pool("manual", "10.0.9.0/24", auto_assign=False)],
         [service("s", pool="manual"), service("t")], ["10.0.9.0", "10.0.0.0"]),
    case("address-pool-not-allowed",
         [pool("a", "10.0.0.0/24", service_selectors=[SVC_SEL_WEB])],
         [service("s", pool="a"), service("t", pool="a", labels={"tier": "web"})],
         [R.POOL_NOT_ALLOWED, "10.0.0.0"]),
    case("address-pool-exhausted",
         [pool("a", "10.0.0.0/31"), pool("b", "10.0.1.0/24")],
         [service("s1", pool="a"), service("s2", pool="a"), service("s3", pool="a")],
         ["10.0.0.0", "10.0.0.1", R.POOL_EXHAUSTED]),
    case("address-pool-wrong-family", [pool("a", "fd00::/120"), pool("b", "10.0.1.0/24")],
         [service("s", pool="a")], [R.FAMILY_MISMATCH]),
    case("address-pool-priority-ignored", [
        pool("a", "10.0.0.0/24", priority=1), pool("b", "10.0.1.0/24", priority=9)],
         [service("s", pool="b")], ["10.0.1.0"]),
]

AUTO_ASSIGN = [
    case("only-auto-assign-false-pool", [pool("a", "10.0.0.0/24", auto_assign=False)],
         [service("s")], [R.NO_POOLS]),
    case("auto-assign-false-skipped",
         [pool("a", "10.0.0.0/24", auto_assign=False), pool("b", "10.0.1.0/24")],
         [service("s")], ["10.0.1.0"]),
    case("auto-assign-false-with-allocation-skipped",
         [pool("a", "10.0.0.0/24", auto_assign=False, priority=1),
          pool("b", "10.0.1.0/24")],
         [service("s")], ["10.0.1.0"]),
    case("no-pools", [], [service("s")], [R.NO_POOLS]),
    case("only-invalid-pools", [pool("a", "bogus")], [service("s")], [R.NO_POOLS]),
]

ORDER = [
    case("name-order", [pool("b", "10.0.1.0/24"), pool("a", "10.0.0.0/24")],
         [service("s")], ["10.0.0.0"]),
    case("name-order-then-next-pool-when-exhausted",
         [pool("b", "10.0.1.0/31"), pool("a", "10.0.0.0/31")],
         [service(f"s{i}") for i in range(5)],
         ["10.0.0.0", "10.0.0.1", "10.0.1.0", "10.0.1.1", R.POOL_EXHAUSTED]),
    case("priority-lower-first-then-rest",
         [pool("aaa", "10.0.0.0/31"),
          pool("p2", "10.0.2.0/32", priority=2),
          pool("p1", "10.0.1.0/32", priority=1)],
         [service(f"s{i}") for i in range(4)],
         ["10.0.1.0", "10.0.2.0", "10.0.0.0", "10.0.0.1"]),
    case("priority-zero-after-positive-before-rest",
         [pool("aaa", "10.0.0.0/32"),
          pool("zero", "10.0.3.0/32", namespaces=["default"]),
          pool("p7", "10.0.7.0/32", priority=7)],
         [service(f"s{i}") for i in range(4)],
         ["10.0.7.0", "10.0.3.0", "10.0.0.0", R.POOL_EXHAUSTED]),
    case("equal-priority-name-order",
         [pool("y", "10.0.2.0/32", priority=3), pool("x", "10.0.1.0/32", priority=3)],
         [service("s1"), service("s2")], ["10.0.1.0", "10.0.2.0"]),
    case("namespaces-match",
         [pool("aaa", "10.0.0.0/24"), pool("zzz", "10.0.9.0/24", namespaces=["team"])],
         [service("s", "team"), service("t", "other")], ["10.0.9.0", "10.0.0.0"]),
    case("namespaces-restrict",
         [pool("only", "10.0.9.0/24", namespaces=["team"])],
         [service("s", "other"), service("t", "team")], [R.NO_POOLS, "10.0.9.0"]),
    case("namespace-selector",
         [pool("aaa", "10.0.0.0/24"),
          pool("zzz", "10.0.9.0/24", namespace_selectors=[NS_SEL_TEAM_A])],
         [service("s", "ns-a"), service("t", "ns-b"), service("u", "unknown")],
         ["10.0.9.0", "10.0.0.0", "10.0.0.1"],
         ns_labels={"ns-a": {"team": "a"}, "ns-b": {"team": "b"}}),
    case("namespaces-or-namespace-selector",
         [pool("only", "10.0.9.0/24", namespaces=["listed"],
               namespace_selectors=[NS_SEL_TEAM_A])],
         [service("s", "listed"), service("t", "ns-a"), service("u", "ns-b")],
         ["10.0.9.0", "10.0.9.1", R.NO_POOLS],
         ns_labels={"ns-a": {"team": "a"}, "ns-b": {"team": "b"}}),
    case("service-selector",
         [pool("aaa", "10.0.0.0/24"),
          pool("zzz", "10.0.9.0/24", service_selectors=[SVC_SEL_WEB])],
         [service("s", labels={"tier": "web"}), service("t", labels={"tier": "db"}),
          service("u")],
         ["10.0.9.0", "10.0.0.0", "10.0.0.1"]),
    case("service-selector-expression",
         [pool("only", "10.0.9.0/24", service_selectors=[
             {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]}])],
         [service("s", labels={"tier": "web"}), service("t", labels={"tier": "db"}),
          service("u")],
         ["10.0.9.0", R.NO_POOLS, "10.0.9.1"]),
    case("namespace-and-service-selector-both-needed",
         [pool("only", "10.0.9.0/24", namespaces=["team"], service_selectors=[SVC_SEL_WEB])],
         [service("s", "team"), service("t", "other", labels={"tier": "web"}),
          service("u", "team", labels={"tier": "web"})],
         [R.NO_POOLS, R.NO_POOLS, "10.0.9.0"]),
    case("matching-priority-pool-exhausted-falls-back",
         [pool("aaa", "10.0.0.0/24"), pool("pin", "10.0.9.0/32", priority=1,
                                            namespaces=["team"])],
         [service("s", "team"), service("t", "team")], ["10.0.9.0", "10.0.0.0"]),
]

LOWEST_FREE = [
    case("lowest-then-next", [pool("a", "10.0.0.1-10.0.0.3")],
         [service(f"s{i}") for i in range(4)],
         ["10.0.0.1", "10.0.0.2", "10.0.0.3", R.POOL_EXHAUSTED]),
    case("ranges-in-listed-order", [pool("a", "10.0.1.0/31", "10.0.0.0/31")],
         [service(f"s{i}") for i in range(5)],
         ["10.0.1.0", "10.0.1.1", "10.0.0.0", "10.0.0.1", R.POOL_EXHAUSTED]),
    case("network-address-used-without-avoid-buggy", [pool("a", "10.0.0.0/24")],
         [service("s")], ["10.0.0.0"]),
    case("avoid-buggy-skips-dot-zero", [pool("a", "10.0.0.0/24", avoid_buggy=True)],
         [service("s")], ["10.0.0.1"]),
    case("avoid-buggy-across-boundary",
         [pool("a", "10.0.0.254-10.0.1.1", avoid_buggy=True)],
         [service(f"s{i}") for i in range(3)],
         ["10.0.0.254", "10.0.1.1", R.POOL_EXHAUSTED]),
    case("avoid-buggy-only-buggy-addresses",
         [pool("a", "10.0.0.255-10.0.1.0", avoid_buggy=True), pool("b", "10.0.5.0/24")],
         [service("s")], ["10.0.5.0"]),
    case("avoid-buggy-ignores-ipv6", [pool("a", "fd00::/120", avoid_buggy=True)],
         [service("s", families="6")], ["fd00::"]),
    case("ipv6-lowest", [pool("a", "fd00::10-fd00::12")],
         [service(f"s{i}", families="6") for i in range(3)],
         ["fd00::10", "fd00::11", "fd00::12"]),
]

FAMILIES = [
    case("single-stack-v6-in-dual-pool", [pool("a", "10.0.0.0/24", "fd00::/120")],
         [service("s", families="6")], ["fd00::"]),
    case("single-stack-first-family-only", [pool("a", "10.0.0.0/24", "fd00::/120")],
         [service("s", families="64", policy="SingleStack")], ["fd00::"]),
    case("single-stack-v4-no-v4-pool", [pool("a", "fd00::/120")],
         [service("s")], [R.FAMILY_MISMATCH]),
    case("require-dual", [pool("a", "10.0.0.0/24", "fd00::/120")],
         [service("s", families="46", policy="RequireDualStack")], ["10.0.0.0,fd00::"]),
    case("require-dual-v6-first", [pool("a", "10.0.0.0/24", "fd00::/120")],
         [service("s", families="64", policy="RequireDualStack")], ["fd00::,10.0.0.0"]),
    case("require-dual-from-one-pool",
         [pool("a", "10.0.0.0/24"), pool("b", "10.0.1.0/24", "fd00::/120")],
         [service("s", families="46", policy="RequireDualStack")], ["10.0.1.0,fd00::"]),
    case("require-dual-never-split-across-pools",
         [pool("a", "10.0.0.0/24"), pool("b", "fd00::/120")],
         [service("s", families="46", policy="RequireDualStack")], [R.FAMILY_MISMATCH]),
    case("require-dual-one-family-exhausted",
         [pool("a", "10.0.0.0/24", "fd00::/128")],
         [service("s1", families="46", policy="RequireDualStack"),
          service("s2", families="46", policy="RequireDualStack"),
          service("s3")],
         ["10.0.0.0,fd00::", R.POOL_EXHAUSTED, "10.0.0.1"]),
    case("prefer-dual-both", [pool("a", "10.0.0.0/24", "fd00::/120")],
         [service("s", families="46", policy="PreferDualStack")], ["10.0.0.0,fd00::"]),
    case("prefer-dual-pool-with-both-wins-over-name-order",
         [pool("a", "10.0.0.0/24"), pool("b", "10.0.1.0/24", "fd00::/120")],
         [service("s", families="46", policy="PreferDualStack")], ["10.0.1.0,fd00::"]),
    case("prefer-dual-only-v4-pools", [pool("a", "10.0.0.0/24"), pool("b", "10.0.1.0/24")],
         [service("s", families="46", policy="PreferDualStack")], ["10.0.0.0"]),
    case("prefer-dual-only-v6", [pool("z", "fd00::/120")],
         [service("s", families="46", policy="PreferDualStack")], ["fd00::"]),
    case("prefer-dual-v6-exhausted-falls-back-to-v4",
         [pool("a", "10.0.0.0/24", "fd00::/128")],
         [service("s1", families="46", policy="PreferDualStack"),
          service("s2", families="46", policy="PreferDualStack")],
         ["10.0.0.0,fd00::", "10.0.0.1"]),
    case("prefer-dual-no-pools", [pool("a", "10.0.0.0/24", auto_assign=False)],
         [service("s", families="46", policy="PreferDualStack")], [R.NO_POOLS]),
]

SHARING = [
    case("share-same-key-different-ports", [pool("a", "10.0.0.0/24")],
         [service("s1", share="k", ports=[("TCP", 80)]),
          service("s2", share="k", ports=[("TCP", 443)])],
         ["10.0.0.0", "10.0.0.0"]),
    case("share-same-port-not-allowed", [pool("a", "10.0.0.0/24")],
         [service("s1", share="k", ports=[("TCP", 80)]),
          service("s2", share="k", ports=[("TCP", 80), ("TCP", 81)])],
         ["10.0.0.0", "10.0.0.1"]),
    case("share-tcp-and-udp-same-port", [pool("a", "10.0.0.0/24")],
         [service("dns-tcp", share="dns", ports=[("TCP", 53)]),
          service("dns-udp", share="dns", ports=[("UDP", 53)])],
         ["10.0.0.0", "10.0.0.0"]),
    case("share-three-ways", [pool("a", "10.0.0.0/24")],
         [service("s1", share="k", ports=[("TCP", 1)]),
          service("s2", share="k", ports=[("TCP", 2)]),
          service("s3", share="k", ports=[("TCP", 3)]),
          service("s4", share="k", ports=[("TCP", 2)])],
         ["10.0.0.0", "10.0.0.0", "10.0.0.0", "10.0.0.1"]),
    case("share-different-keys", [pool("a", "10.0.0.0/24")],
         [service("s1", share="k1", ports=[("TCP", 80)]),
          service("s2", share="k2", ports=[("TCP", 443)])],
         ["10.0.0.0", "10.0.0.1"]),
    case("share-needs-key-on-both", [pool("a", "10.0.0.0/24")],
         [service("s1", ports=[("TCP", 80)]),
          service("s2", share="k", ports=[("TCP", 443)]),
          service("s3", ips="10.0.0.0", share="k", ports=[("TCP", 444)])],
         ["10.0.0.0", "10.0.0.1", R.REQUESTED_IP_IN_USE]),
    case("share-empty-key-is-no-key", [pool("a", "10.0.0.0/24")],
         [service("s1", share="", ports=[("TCP", 80)]),
          service("s2", share="", ports=[("TCP", 443)])],
         ["10.0.0.0", "10.0.0.1"]),
    case("share-local-same-selector", [pool("a", "10.0.0.0/24")],
         [service("s1", share="k", etp="Local", selector={"app": "x"}, ports=[("TCP", 80)]),
          service("s2", share="k", etp="Local", selector={"app": "x"}, ports=[("TCP", 443)])],
         ["10.0.0.0", "10.0.0.0"]),
    case("share-local-different-selector", [pool("a", "10.0.0.0/24")],
         [service("s1", share="k", etp="Local", selector={"app": "x"}, ports=[("TCP", 80)]),
          service("s2", share="k", etp="Local", selector={"app": "y"}, ports=[("TCP", 443)])],
         ["10.0.0.0", "10.0.0.1"]),
    case("share-local-and-cluster", [pool("a", "10.0.0.0/24")],
         [service("s1", share="k", etp="Local", selector={"app": "x"}, ports=[("TCP", 80)]),
          service("s2", share="k", etp="Cluster", selector={"app": "x"},
                  ports=[("TCP", 443)])],
         ["10.0.0.0", "10.0.0.1"]),
    case("share-requested-ip", [pool("a", "10.0.0.0/24")],
         [service("s1", ips="10.0.0.9", share="k", ports=[("TCP", 80)]),
          service("s2", ips="10.0.0.9", share="k", ports=[("TCP", 443)]),
          service("s3", ips="10.0.0.9", share="k", ports=[("TCP", 443)]),
          service("s4", ips="10.0.0.9", share="other", ports=[("TCP", 8080)])],
         ["10.0.0.9", "10.0.0.9", R.REQUESTED_IP_IN_USE, R.REQUESTED_IP_IN_USE]),
    case("share-lowest-of-free-or-shareable", [pool("a", "10.0.0.0/24")],
         [service("s1", ips="10.0.0.9", share="k", ports=[("TCP", 80)]),
          service("s2", share="k", ports=[("TCP", 443)])],
         ["10.0.0.9", "10.0.0.0"]),
    case("share-shareable-below-first-free", [pool("a", "10.0.0.0/24")],
         [service("s1", share="k", ports=[("TCP", 80)]),
          service("s2", ports=[("TCP", 80)]),
          service("s3", share="k", ports=[("TCP", 443)])],
         ["10.0.0.0", "10.0.0.1", "10.0.0.0"]),
    case("share-legacy-and-stable-key", [pool("a", "10.0.0.0/24")],
         [service("s1", share="k", legacy=True, ports=[("TCP", 80)]),
          service("s2", share="k", ports=[("TCP", 443)])],
         ["10.0.0.0", "10.0.0.0"]),
    case("share-only-within-candidate-pool",
         [pool("a", "10.0.0.0/24"), pool("b", "10.0.1.0/24")],
         [service("s1", pool="b", share="k", ports=[("TCP", 80)]),
          service("s2", share="k", ports=[("TCP", 443)]),
          service("s3", pool="b", share="k", ports=[("TCP", 444)])],
         ["10.0.1.0", "10.0.0.0", "10.0.1.0"]),
    case("share-in-full-pool", [pool("a", "10.0.0.0/32")],
         [service("s1", share="k", ports=[("TCP", 80)]),
          service("s2", share="k", ports=[("TCP", 443)]),
          service("s3", share="k", ports=[("TCP", 80)])],
         ["10.0.0.0", "10.0.0.0", R.POOL_EXHAUSTED]),
    case("share-dual-stack", [pool("a", "10.0.0.0/24", "fd00::/120")],
         [service("s1", share="k", families="46", policy="RequireDualStack",
                  ports=[("TCP", 80)]),
          service("s2", share="k", families="46", policy="RequireDualStack",
                  ports=[("TCP", 443)])],
         ["10.0.0.0,fd00::", "10.0.0.0,fd00::"]),
]


@pytest.mark.parametrize(
    ("pools", "services", "expected", "ns_labels"),
    REQUESTED + POOL_BY_NAME + AUTO_ASSIGN + ORDER + LOWEST_FREE + FAMILIES + SHARING,
)
def test_allocation_table(
    pools: list[dict[str, Any]], services: list[dict[str, Any]],
    expected: list[str | FailureReason], ns_labels: dict[str, dict[str, str]] | None,
) -> None:
    _, got = run(pools, services, ns_labels)
    assert got == expected


# -- keeping, moving and clearing --------------------------------------------------


def test_keeps_addresses_on_re_ensure() -> None:
    a = allocator(pool("a", "10.0.0.0/24"))
    first = ensure(a, service("s"))
    again = ensure(a, service("s", ports=[("TCP", 80), ("TCP", 443)]))
    assert isinstance(first, Allocated) and first.changed
    assert again == Allocated(first.ips, ("a",), False, first.ips)


def test_keeps_addresses_when_a_better_pool_appears() -> None:
    a = allocator(pool("b", "10.0.1.0/24"))
    assert ips_of(ensure(a, service("s"))) == ("10.0.1.0",)
    assert a.set_config(config(pool("a", "10.0.0.0/24", priority=1),
                               pool("b", "10.0.1.0/24"))) == []
    result = ensure(a, service("s"))
    assert isinstance(result, Allocated) and not result.changed
    assert ips_of(result) == ("10.0.1.0",)


def test_keeps_address_from_pool_switched_to_auto_assign_false() -> None:
    a = allocator(pool("a", "10.0.0.0/24"))
    ensure(a, service("s"))
    assert a.set_config(config(pool("a", "10.0.0.0/24", auto_assign=False))) == []
    assert ips_of(ensure(a, service("s"))) == ("10.0.0.0",)
    assert outcome(ensure(a, service("t"))) == R.NO_POOLS


def test_pool_shrink_moves_only_affected_services() -> None:
    a = allocator(pool("a", "10.0.0.0/29"))
    for i in range(4):
        ensure(a, service(f"s{i}"))  # .0 .1 .2 .3
    affected = a.set_config(config(pool("a", "10.0.0.0-10.0.0.1", "10.0.0.4-10.0.0.7")))
    assert sorted(affected) == ["default/s2", "default/s3"]
    moved = ensure(a, service("s2"))
    assert isinstance(moved, Allocated)
    assert moved.changed and ips_of(moved) == ("10.0.0.4",)
    assert moved.previous == (IP.parse("10.0.0.2"),)
    assert ips_of(ensure(a, service("s3"))) == ("10.0.0.5",)
    assert ips_of(ensure(a, service("s0"))) == ("10.0.0.0",)


def test_pool_grow_affects_nobody_and_adds_capacity() -> None:
    a = allocator(pool("a", "10.0.0.0/32"))
    ensure(a, service("s1"))
    assert outcome(ensure(a, service("s2"))) == R.POOL_EXHAUSTED
    assert a.set_config(config(pool("a", "10.0.0.0/31"))) == []
    assert ips_of(ensure(a, service("s2"))) == ("10.0.0.1",)


def test_pool_deletion_clears_when_nothing_else_fits() -> None:
    a = allocator(pool("a", "10.0.0.0/24"))
    ensure(a, service("s"))
    assert a.set_config(config()) == ["default/s"]
    result = ensure(a, service("s"))
    assert isinstance(result, AllocationFailure)
    assert result.reason == R.NO_POOLS
    assert result.cleared == (IP.parse("10.0.0.0"),)
    assert a.holding("default/s") is None
    assert a.users(IP.parse("10.0.0.0")) == ()


def test_pool_deletion_moves_to_another_pool() -> None:
    a = allocator(pool("a", "10.0.0.0/24"), pool("b", "10.0.1.0/24"))
    ensure(a, service("s"))
    assert a.set_config(config(pool("b", "10.0.1.0/24"))) == ["default/s"]
    result = ensure(a, service("s"))
    assert isinstance(result, Allocated) and result.changed
    assert result.pools == ("b",)
    assert a.usage("b").assigned[Family.V4] == 1


def test_pool_made_invalid_keeps_holding_but_stops_handing_out() -> None:
    a = allocator(pool("a", "10.0.0.0/24"))
    ensure(a, service("s"))
    bad = pool("a", "10.0.0.0/24", "10.0.0.7-10.0.0.1")
    assert a.set_config(config(bad)) == []
    kept = ensure(a, service("s"))
    assert isinstance(kept, Allocated) and not kept.changed and kept.pools == ("a",)
    assert outcome(ensure(a, service("t"))) == R.NO_POOLS
    assert outcome(ensure(a, service("u", pool="a"))) == R.REQUESTED_POOL_NOT_READY
    assert a.usage("a").assigned[Family.V4] == 1
    assert a.usage("a").total[Family.V4] == 0


def test_newer_overlapping_pool_does_not_steal() -> None:
    a = allocator(pool("old", "10.0.0.0/30", created=ts(1)))
    ensure(a, service("s"))
    cfg = config(pool("old", "10.0.0.0/30", created=ts(1)),
                 pool("new", "10.0.0.0/24", created=ts(2)))
    assert "new" not in cfg.pools
    assert a.set_config(cfg) == []
    for i in range(3):
        ensure(a, service(f"t{i}"))
    assert outcome(ensure(a, service("t3"))) == R.POOL_EXHAUSTED


def test_avoid_buggy_edit_moves_dot_zero() -> None:
    a = allocator(pool("a", "10.0.0.0/24"))
    assert ips_of(ensure(a, service("s"))) == ("10.0.0.0",)
    assert a.set_config(config(pool("a", "10.0.0.0/24", avoid_buggy=True))) == ["default/s"]
    assert ips_of(ensure(a, service("s"))) == ("10.0.0.1",)


def test_service_allocation_edit_moves_excluded_services() -> None:
    a = allocator(pool("a", "10.0.0.0/24"), pool("b", "10.0.1.0/24"))
    ensure(a, service("s", "team"))
    ensure(a, service("t", "other"))
    affected = a.set_config(config(pool("a", "10.0.0.0/24", namespaces=["team"]),
                                   pool("b", "10.0.1.0/24")))
    assert affected == ["other/t"]
    assert ips_of(ensure(a, service("t", "other"))) == ("10.0.1.0",)


def test_namespace_label_change_moves_services() -> None:
    a = allocator(pool("pin", "10.0.9.0/24", namespace_selectors=[NS_SEL_TEAM_A]),
                  pool("rest", "10.0.0.0/24"), ns_labels={"ns": {"team": "a"}})
    assert ips_of(ensure(a, service("s", "ns"))) == ("10.0.9.0",)
    assert a.set_namespace_labels("other", {"team": "b"}) == []
    assert a.set_namespace_labels("ns", {"team": "a", "extra": "x"}) == []
    assert a.set_namespace_labels("ns", {"team": "b"}) == ["ns/s"]
    assert ips_of(ensure(a, service("s", "ns"))) == ("10.0.0.0",)
    assert a.set_namespace_labels("ns", None) == []


def test_service_label_change_moves_service() -> None:
    a = allocator(pool("only", "10.0.9.0/24", service_selectors=[SVC_SEL_WEB]))
    ensure(a, service("s", labels={"tier": "web"}))
    result = ensure(a, service("s", labels={"tier": "db"}))
    assert isinstance(result, AllocationFailure)
    assert result.reason == R.NO_POOLS and result.cleared == (IP.parse("10.0.9.0"),)


def test_requested_ip_change_moves() -> None:
    a = allocator(pool("a", "10.0.0.0/24"))
    assert ips_of(ensure(a, service("s", ips="10.0.0.5"))) == ("10.0.0.5",)
    result = ensure(a, service("s", ips="10.0.0.6"))
    assert isinstance(result, Allocated) and result.changed
    assert ips_of(result) == ("10.0.0.6",)
    assert a.users(IP.parse("10.0.0.5")) == ()
    # dropping the request keeps the address (it is still valid)
    kept = ensure(a, service("s"))
    assert isinstance(kept, Allocated) and not kept.changed and ips_of(kept) == ("10.0.0.6",)


def test_requested_pool_change_moves() -> None:
    a = allocator(pool("a", "10.0.0.0/24"), pool("b", "10.0.1.0/24"))
    ensure(a, service("s"))
    result = ensure(a, service("s", pool="b"))
    assert isinstance(result, Allocated) and ips_of(result) == ("10.0.1.0",)


def test_requested_ip_taken_keeps_the_old_address() -> None:
    """A move the Service's own request asks for and that cannot be met keeps what it
    has (still valid): nothing is cleared, and nobody else can take it meanwhile."""
    a = allocator(pool("a", "10.0.0.0/24"))
    ensure(a, service("s1"))  # .0
    ensure(a, service("s2"))  # .1
    result = ensure(a, service("s2", ips="10.0.0.0"))
    assert isinstance(result, AllocationFailure)
    assert result.reason == R.REQUESTED_IP_IN_USE
    assert result.kept == (IP.parse("10.0.0.1"),) and result.cleared == ()
    assert a.users(IP.parse("10.0.0.0")) == ("default/s1",)
    assert a.users(IP.parse("10.0.0.1")) == ("default/s2",)
    assert ips_of(ensure(a, service("s3"))) == ("10.0.0.2",)
    # Once the requested address is free, the retry moves it.
    a.release("default/s1")
    moved = ensure(a, service("s2", ips="10.0.0.0"))
    assert isinstance(moved, Allocated) and moved.changed and ips_of(moved) == ("10.0.0.0",)
    assert moved.requested and a.users(IP.parse("10.0.0.1")) == ()


@pytest.mark.parametrize(("before", "after", "reason"), [
    ({}, {"ips": "10.9.9.9"}, R.REQUESTED_IP_NOT_IN_POOL),
    ({}, {"pool": "nope"}, R.REQUESTED_POOL_NOT_FOUND),
    ({}, {"pool": "full"}, R.POOL_EXHAUSTED),
    ({"ips": "10.0.0.5"}, {"ips": "10.0.0.6", "pool": "full"}, R.REQUESTED_IP_NOT_IN_POOL),
    ({"families": "46", "policy": "RequireDualStack"},
     {"families": "46", "policy": "RequireDualStack", "ips": "10.0.0.5,fd01::5"},
     R.REQUESTED_IPS_IN_DIFFERENT_POOLS),
])
def test_failed_requested_move_keeps_the_old_addresses(
        before: dict[str, Any], after: dict[str, Any], reason: FailureReason) -> None:
    a = allocator(pool("a", "10.0.0.0/24", "fd00::/120"), pool("full", "10.0.1.0/32"),
                  pool("v6", "fd01::/120", auto_assign=False))
    ensure(a, service("filler", pool="full"))
    first = ensure(a, service("s", **before))
    assert isinstance(first, Allocated)
    result = ensure(a, service("s", **after))
    assert isinstance(result, AllocationFailure) and result.reason == reason, result
    assert result.kept == first.ips and result.cleared == ()
    assert a.pools_of("default/s") == frozenset({"a"})
    # At start-up (the status shows the addresses, the allocator holds nothing) alike.
    b = allocator(pool("a", "10.0.0.0/24", "fd00::/120"), pool("full", "10.0.1.0/32"),
                  pool("v6", "fd01::/120", auto_assign=False))
    ensure(b, service("filler", pool="full"))
    shown = [str(ip) for ip in first.ips]
    again = ensure(b, service("s", ingress=shown, **after))
    assert isinstance(again, AllocationFailure) and again.kept == first.ips


@pytest.mark.parametrize("after", [{"ips": "10.0.0.5"}, {"ips": "10.9.9.9"}])
def test_failed_move_forced_by_the_configuration_still_clears(after: dict[str, Any]) -> None:
    """The pool is gone: the old address is not valid any more, whatever was requested."""
    a = allocator(pool("a", "10.0.0.0/24"))
    ensure(a, service("s", ips="10.0.0.5"))
    a.set_config(config(pool("b", "10.0.1.0/24")))
    result = ensure(a, service("s", **after))
    assert isinstance(result, AllocationFailure)
    assert result.cleared == (IP.parse("10.0.0.5"),) and result.kept == ()
    assert a.holding("default/s") is None


def test_addresses_found_in_two_pools_move_to_one() -> None:
    """An older version allowed requested addresses from two pools; after an upgrade
    (or a pool edit that splits them) the Service moves into a single pool."""
    a = allocator(pool("a", "10.0.0.0/24", "fd00::/120"), pool("b", "fd01::/120"))
    view = service("s", families="46", policy="RequireDualStack",
                   ingress=["10.0.0.5", "fd01::5"])
    result = ensure(a, view)
    assert isinstance(result, Allocated) and result.changed and not result.requested
    assert ips_of(result) == ("10.0.0.0", "fd00::")
    assert a.pools_of("default/s") == frozenset({"a"})


def test_family_policy_change_adds_second_family() -> None:
    a = allocator(pool("a", "10.0.0.0/24", "fd00::/120"))
    ensure(a, service("s"))
    result = ensure(a, service("s", families="46", policy="RequireDualStack"))
    assert isinstance(result, Allocated) and result.changed
    assert ips_of(result) == ("10.0.0.0", "fd00::")


def test_prefer_dual_keeps_single_family_when_second_appears() -> None:
    a = allocator(pool("a", "10.0.0.0/24"))
    ensure(a, service("s", families="46", policy="PreferDualStack"))
    assert a.set_config(config(pool("a", "10.0.0.0/24", "fd00::/120"))) == []
    kept = ensure(a, service("s", families="46", policy="PreferDualStack"))
    assert isinstance(kept, Allocated) and ips_of(kept) == ("10.0.0.0",)


def test_port_change_that_clashes_moves_the_changed_service() -> None:
    a = allocator(pool("a", "10.0.0.0/24"))
    ensure(a, service("s1", share="k", ports=[("TCP", 80)]))
    ensure(a, service("s2", share="k", ports=[("TCP", 443)]))
    moved = ensure(a, service("s2", share="k", ports=[("TCP", 80)]))
    assert ips_of(moved) == ("10.0.0.1",)
    assert a.users(IP.parse("10.0.0.0")) == ("default/s1",)


def test_sharing_key_change_while_shared_moves() -> None:
    a = allocator(pool("a", "10.0.0.0/24"))
    ensure(a, service("s1", share="k", ports=[("TCP", 80)]))
    ensure(a, service("s2", share="k", ports=[("TCP", 443)]))
    moved = ensure(a, service("s2", share="other", ports=[("TCP", 443)]))
    assert ips_of(moved) == ("10.0.0.1",)
    moved = ensure(a, service("s1", etp="Local", share="k", ports=[("TCP", 80)]))
    assert ips_of(moved) == ("10.0.0.0",)  # alone now: kept


def test_sharing_key_change_while_alone_lets_others_share_under_new_key() -> None:
    """A Service alone on an address may change its sharing key and keep the address;
    afterwards that address is shareable under the *new* key (lowest free or shareable),
    and no longer under the old one."""
    a = allocator(pool("a", "10.0.0.0/24"))
    ensure(a, service("s1", share="old", ports=[("TCP", 80)]))
    kept = ensure(a, service("s1", share="new", ports=[("TCP", 80)]))
    assert ips_of(kept) == ("10.0.0.0",)
    assert ips_of(ensure(a, service("s2", share="new", ports=[("TCP", 443)]))) == (
        "10.0.0.0",)
    assert ips_of(ensure(a, service("s3", share="old", ports=[("TCP", 443)]))) == (
        "10.0.0.1",)


def test_sharing_key_added_while_alone_lets_others_share() -> None:
    a = allocator(pool("a", "10.0.0.0/24"))
    ensure(a, service("s1", ports=[("TCP", 80)]))
    ensure(a, service("s1", share="k", ports=[("TCP", 80)]))
    assert ips_of(ensure(a, service("s2", share="k", ports=[("TCP", 443)]))) == (
        "10.0.0.0",)


def test_release_frees_lowest_again() -> None:
    a = allocator(pool("a", "10.0.0.0/24"))
    for i in range(3):
        ensure(a, service(f"s{i}"))
    assert a.release("default/s1") == (IP.parse("10.0.0.1"),)
    assert a.release("default/s1") == ()
    assert ips_of(ensure(a, service("s3"))) == ("10.0.0.1",)
    assert ips_of(ensure(a, service("s4"))) == ("10.0.0.3",)


def test_release_of_shared_address_keeps_it_for_the_other() -> None:
    a = allocator(pool("a", "10.0.0.0/24"))
    ensure(a, service("s1", share="k", ports=[("TCP", 80)]))
    ensure(a, service("s2", share="k", ports=[("TCP", 443)]))
    a.release("default/s1")
    ip = IP.parse("10.0.0.0")
    assert a.users(ip) == ("default/s2",)
    assert a.usage("a").assigned[Family.V4] == 1
    assert ips_of(ensure(a, service("s3"))) == ("10.0.0.1",)
    assert ips_of(ensure(a, service("s4", share="k", ports=[("TCP", 80)]))) == ("10.0.0.0",)
    a.release("default/s2")
    a.release("default/s4")
    assert a.users(ip) == ()
    assert a.usage("a").assigned[Family.V4] == 1  # s3


def test_failure_leaves_no_trace() -> None:
    a = allocator(pool("a", "10.0.0.0/32"))
    ensure(a, service("s1"))
    assert outcome(ensure(a, service("s2"))) == R.POOL_EXHAUSTED
    assert a.holding("default/s2") is None
    assert a.pools_of("default/s2") == frozenset()
    assert a.pools_of("default/s1") == frozenset({"a"})


# -- usage and big pools -------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "avoid_buggy", "family", "total"),
    [
        ("10.0.0.0/24", False, Family.V4, 256),
        ("10.0.0.0/24", True, Family.V4, 254),
        ("10.0.0.0/8", False, Family.V4, 2**24),
        ("10.0.0.0/8", True, Family.V4, 2**24 - 2 * 2**16),
        ("10.0.0.255-10.0.1.0", True, Family.V4, 0),
        ("fd00::/64", False, Family.V6, 2**64),
        ("fd00::/64", True, Family.V6, 2**64),
        ("fd00::/8", False, Family.V6, 2**120),
        ("::/0", False, Family.V6, 2**128),
    ],
)
def test_usage_totals_are_exact(entry: str, avoid_buggy: bool, family: Family,
                                total: int) -> None:
    a = allocator(pool("p", entry, avoid_buggy=avoid_buggy))
    usage = a.usage("p")
    assert usage.total[family] == total
    assert usage.available(family) == total
    other = Family.V6 if family is Family.V4 else Family.V4
    assert usage.total[other] == 0


def test_usage_counts_distinct_addresses_per_family() -> None:
    a = allocator(pool("p", "10.0.0.0/24", "fd00::/64"))
    ensure(a, service("s1", families="46", policy="RequireDualStack", share="k"))
    ensure(a, service("s2", families="46", policy="RequireDualStack", share="k",
                      ports=[("TCP", 81)]))
    ensure(a, service("s3", families="6"))
    usage = a.usage("p")
    assert usage.assigned == {Family.V4: 1, Family.V6: 2}
    assert usage.available(Family.V6) == 2**64 - 2
    assert usage.available(Family.V4) == 255
    assert a.usage("missing").total == {Family.V4: 0, Family.V6: 0}


def test_big_pools_are_instant() -> None:
    started = time.perf_counter()
    a = allocator(pool("v6", "fd00::/64"), pool("v4", "10.0.0.0/8", avoid_buggy=True))
    for i in range(2000):
        assert isinstance(ensure(a, service(f"s6-{i}", families="6")), Allocated)
        assert isinstance(ensure(a, service(f"s4-{i}")), Allocated)
    # an address at the very end of the /64, then the lowest free again
    last = ensure(a, service("end", ips="fd00::ffff:ffff:ffff:ffff", families="6"))
    assert ips_of(last) == ("fd00::ffff:ffff:ffff:ffff",)
    assert ips_of(ensure(a, service("next", families="6"))) == ("fd00::7d0",)
    assert a.usage("v6").available(Family.V6) == 2**64 - 2002
    assert a.usage("v4").available(Family.V4) == 2**24 - 2 * 2**16 - 2000
    assert time.perf_counter() - started < 5.0


def test_buggy_skip_is_cheap_in_a_long_avoid_buggy_pool() -> None:
    # every .255/.0 boundary of a /16 crossed by sequential allocation
    a = allocator(pool("v4", "10.1.0.0/16", avoid_buggy=True))
    got = [ips_of(ensure(a, service(f"s{i}")))[0] for i in range(600)]
    assert got[0] == "10.1.0.1"
    assert got[253] == "10.1.0.254"
    assert got[254] == "10.1.1.1"
    assert not any(ip.endswith((".0", ".255")) for ip in got)


# -- start-up replay -----------------------------------------------------------------


def _replay(a: Allocator, objs: list[dict[str, Any]]) -> dict[str, Allocated | AllocationFailure]:
    views = [service_view(o) for o in objs]
    out = {}
    for view in restore_order(views):
        out[view.key] = a.ensure(view, request_of(view), view.ingress_ips())
    return out


def test_restart_replay_reproduces_everything_with_zero_changes() -> None:
    pools = [pool("pin", "10.0.9.0/30", priority=1, namespaces=["team"]),
             pool("a", "10.0.0.0/24", "fd00::/120", avoid_buggy=True),
             pool("manual", "10.0.5.0/24", auto_assign=False)]
    objs = [
        service("s1", "team", created=ts(1)),
        service("s2", share="k", ports=[("TCP", 80)], created=ts(2)),
        service("s3", share="k", ports=[("TCP", 443)], created=ts(3)),
        service("s4", families="46", policy="RequireDualStack", created=ts(4)),
        service("s5", ips="10.0.0.77", created=ts(5)),
        service("s6", pool="manual", created=ts(6)),
        service("s7", families="64", policy="PreferDualStack", created=ts(7)),
    ]
    first = allocator(*pools)
    shown = [with_ingress(o, ips_of(ensure(first, o))) for o in objs]
    second = allocator(*pools)
    results = _replay(second, list(reversed(shown)))
    for o in shown:
        view = service_view(o)
        r = results[view.key]
        assert isinstance(r, Allocated) and not r.changed, (view.key, r)
        assert set(r.ips) == set(view.ingress_ips())
    for name in ("pin", "a", "manual"):
        assert second.usage(name) == first.usage(name)


def test_restart_conflicting_claim_is_moved_not_double_assigned() -> None:
    a = allocator(pool("a", "10.0.0.0/24"))
    older = service("older", ingress=["10.0.0.5"], created=ts(1))
    newer = service("newer", ingress=["10.0.0.5"], created=ts(2))
    results = _replay(a, [newer, older])
    assert isinstance(results["default/older"], Allocated)
    assert not results["default/older"].changed
    moved = results["default/newer"]
    assert isinstance(moved, Allocated) and moved.changed
    assert ips_of(moved) == ("10.0.0.0",)
    assert a.users(IP.parse("10.0.0.5")) == ("default/older",)


def test_restart_conflicting_requested_claim_is_refused() -> None:
    a = allocator(pool("a", "10.0.0.0/24"))
    older = service("older", ingress=["10.0.0.5"], created=ts(1))
    newer = service("newer", ips="10.0.0.5", ingress=["10.0.0.5"], created=ts(2))
    results = _replay(a, [newer, older])
    refused = results["default/newer"]
    assert isinstance(refused, AllocationFailure)
    assert refused.reason == R.REQUESTED_IP_IN_USE
    assert refused.cleared == (IP.parse("10.0.0.5"),)
    assert a.users(IP.parse("10.0.0.5")) == ("default/older",)


def test_restart_claim_outside_any_pool_is_moved() -> None:
    a = allocator(pool("a", "10.0.0.0/24"))
    results = _replay(a, [service("s", ingress=["192.168.0.1"])])
    r = results["default/s"]
    assert isinstance(r, Allocated) and r.changed and ips_of(r) == ("10.0.0.0",)
    assert r.previous == (IP.parse("192.168.0.1"),)


def test_restart_claim_in_not_ready_pool_is_kept() -> None:
    a = allocator(pool("a", "10.0.0.0/24", "broken"))
    results = _replay(a, [service("s", ingress=["10.0.0.3"])])
    r = results["default/s"]
    assert isinstance(r, Allocated) and not r.changed and r.pools == ("a",)


def test_restart_illegal_sharing_claim_is_moved() -> None:
    a = allocator(pool("a", "10.0.0.0/24"))
    s1 = service("s1", share="k", ports=[("TCP", 80)], ingress=["10.0.0.5"], created=ts(1))
    s2 = service("s2", share="k", ports=[("TCP", 80)], ingress=["10.0.0.5"], created=ts(2))
    results = _replay(a, [s1, s2])
    kept = results["default/s1"]
    assert isinstance(kept, Allocated) and not kept.changed
    assert ips_of(results["default/s2"]) == ("10.0.0.0",)


def test_restore_order() -> None:
    views = [service_view(o) for o in [
        service("new-without", created=ts(1)),
        service("b-with", ingress=["10.0.0.2"], created=ts(5)),
        service("a-with", ingress=["10.0.0.1"], created=ts(5)),
        service("old-with", ingress=["10.0.0.3"], created=ts(2)),
        service("old-without", created=ts(0)),
    ]]
    assert [v.name for v in restore_order(views)] == [
        "old-with", "a-with", "b-with", "old-without", "new-without"]


@pytest.mark.parametrize(
    ("families", "policy", "wanted", "strict"),
    [
        ("4", "SingleStack", (Family.V4,), True),
        ("6", "SingleStack", (Family.V6,), True),
        ("64", "SingleStack", (Family.V6,), True),
        ("46", "RequireDualStack", (Family.V4, Family.V6), True),
        ("64", "RequireDualStack", (Family.V6, Family.V4), True),
        ("4", "RequireDualStack", (Family.V4, Family.V6), True),
        ("46", "PreferDualStack", (Family.V4, Family.V6), False),
        ("6", "PreferDualStack", (Family.V6,), False),
    ],
)
def test_wanted_families(families: str, policy: str, wanted: tuple[Family, ...],
                         strict: bool) -> None:
    view = service_view(service("s", families=families, policy=policy))
    assert wanted_families(view) == (wanted, strict)


def _accepted(obj: dict[str, Any], observed: int | None = None) -> dict[str, Any]:
    """The pool with the Ready=True the operator wrote for generation `observed`."""
    gen = obj["metadata"]["generation"]
    return {**obj, "status": {"conditions": [{
        "type": "Ready", "status": "True", "reason": "Accepted", "message": "",
        "lastTransitionTime": ts(0), "observedGeneration": gen if observed is None
        else observed}]}}


@pytest.mark.parametrize("requested_pool", [None, "new"])
def test_edit_making_an_older_pool_overlap_takes_nothing_from_the_newer(
        requested_pool: str | None) -> None:
    """Pool `old` (created first) is edited to cover `new`'s range while `new`'s Services
    use it: `old` is the one flagged, `new` keeps its Services and addresses (also those
    that asked for it by name), and no other Service is given them."""
    old = _accepted(pool("old", "10.0.0.0/30", created=ts(1), generation=1))
    new = _accepted(pool("new", "10.0.1.0/30", created=ts(2), generation=1))
    a = allocator(old, new)
    users = [service(f"n{i}", pool=requested_pool) for i in range(2)]  # None: by name
    shown = {}
    for obj in users:
        shown[obj["metadata"]["name"]] = ips_of(ensure(a, obj))
    assert shown == {"n0": ("10.0.1.0",), "n1": ("10.0.1.1",)}
    mine = ips_of(ensure(a, service("o", pool="old")))
    edited = pool("old", "10.0.0.0/23", created=ts(1), generation=2)
    cfg = config(_accepted(edited, observed=1), new)
    assert set(cfg.pools) == {"new"}
    assert [(p.name, p.related) for p in cfg.problems] == [("old", "new")]
    assert a.set_config(cfg) == []  # nobody has to move
    for obj in users:
        result = ensure(a, with_ingress(obj, shown[obj["metadata"]["name"]]))
        assert isinstance(result, Allocated) and not result.changed
        assert result.pools == ("new",)
    assert ips_of(ensure(a, with_ingress(service("o", pool="old"), mine))) == mine
    assert a.pool_of(IP.parse("10.0.1.0")) == "new"
    # New Services get new's free addresses, never its used ones, and nothing from old.
    assert ips_of(ensure(a, service("x"))) == ("10.0.1.2",)
    assert ips_of(ensure(a, service("y"))) == ("10.0.1.3",)
    assert outcome(ensure(a, service("z"))) == FailureReason.POOL_EXHAUSTED
    assert outcome(ensure(a, service("w", ips="10.0.1.0"))) == FailureReason.REQUESTED_IP_IN_USE
    assert outcome(ensure(a, service("v", pool="old"))) == \
        FailureReason.REQUESTED_POOL_NOT_READY

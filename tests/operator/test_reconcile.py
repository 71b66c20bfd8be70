"""plan_service: what the controller writes for a Service, and which Events."""

from __future__ import annotations

from typing import Any

import pytest
from tests.operator.builders import allocator, config, pool, service, ts, with_ingress

from metallb_api.addresses import IP
from metallb_api.service import ALLOCATED_FROM_POOL, service_view
from metallb_operator.allocator import Allocator, restore_order
from metallb_operator.reconcile import (
    NORMAL,
    WARNING,
    EventSpec,
    Outcome,
    ServicePlan,
    handles,
    plan_service,
    reserve_shown,
)

pytestmark = pytest.mark.unit


def plan(a: Allocator, obj: dict[str, Any], lb_class: str | None = None) -> ServicePlan:
    return plan_service(service_view(obj), a, lb_class)


def written(obj: dict[str, Any], p: ServicePlan) -> dict[str, Any]:
    """The Service as it looks after the controller executed the plan."""
    out = with_ingress(obj, p.ingress) if p.ingress is not None else dict(obj)
    patch = p.annotation_patch(service_view(obj))
    if patch:
        ann = dict(out["metadata"].get("annotations") or {})
        for k, v in patch.items():
            if v is None:
                ann.pop(k, None)
            else:
                ann[k] = v
        out = {**out, "metadata": {**out["metadata"], "annotations": ann}}
    return out


def reasons(p: ServicePlan) -> list[str]:
    return [e.reason for e in p.events]


@pytest.mark.parametrize(
    ("kw", "lb_class", "handled"),
    [
        ({}, None, True),
        ({"svc_type": "ClusterIP"}, None, False),
        ({"svc_type": "NodePort"}, None, False),
        ({"lb_class": "other.io/lb"}, None, False),
        ({"lb_class": "metallb.io/py"}, "metallb.io/py", True),
        ({}, "metallb.io/py", False),
    ],
)
def test_handles(kw: dict[str, Any], lb_class: str | None, handled: bool) -> None:
    assert handles(service_view(service("s", **kw)), lb_class) is handled


def test_new_service_is_allocated() -> None:
    a = allocator(pool("a", "10.0.0.0/24"))
    p = plan(a, service("s"))
    assert p.outcome == Outcome.ALLOCATED
    assert p.ingress == ("10.0.0.0",)
    assert p.pool_annotation == "a" and p.pools == frozenset({"a"})
    assert p.events == (EventSpec(NORMAL, "IPAllocated", 'Assigned IP ["10.0.0.0"]'),)
    view = service_view(service("s"))
    assert p.status_differs(view)
    assert p.annotation_patch(view) == {ALLOCATED_FROM_POOL: "a"}


def test_second_pass_after_write_is_unchanged_and_quiet() -> None:
    a = allocator(pool("a", "10.0.0.0/24"))
    obj = service("s")
    obj = written(obj, plan(a, obj))
    p = plan(a, obj)
    assert p.outcome == Outcome.UNCHANGED
    assert p.events == ()
    assert not p.status_differs(service_view(obj))
    assert p.annotation_patch(service_view(obj)) is None


def test_dual_stack_ingress_follows_ip_families_order() -> None:
    a = allocator(pool("a", "10.0.0.0/24", "fd00::/120"))
    p = plan(a, service("s", families="64", policy="RequireDualStack"))
    assert p.ingress == ("fd00::", "10.0.0.0")
    assert p.events[-1].message == 'Assigned IP ["fd00::", "10.0.0.0"]'
    p = plan(a, service("t", families="46", policy="RequireDualStack"))
    assert p.ingress == ("10.0.0.1", "fd00::1")


def test_requested_ips_from_two_pools_are_refused() -> None:
    a = allocator(pool("b", "10.0.0.0/24"), pool("a", "fd00::/120"))
    p = plan(a, service("s", ips="10.0.0.5,fd00::5", families="46",
                        policy="RequireDualStack"))
    assert p.outcome == Outcome.FAILED and p.reason == "RequestedIPsInDifferentPools"
    assert p.ingress is None and p.pool_annotation is None
    [ev] = p.events
    assert (ev.type, ev.reason) == (WARNING, "AllocationFailed")
    assert "10.0.0.5 is in pool 'b', fd00::5 is in pool 'a'" in ev.message, ev.message
    assert a.holding("default/s") is None


def test_status_differs_normalizes_ipv6_text() -> None:
    a = allocator(pool("a", "fd00::/120"))
    p = plan(a, service("s", families="6"))
    assert p.ingress == ("fd00::",)
    assert not p.status_differs(service_view(service("s", families="6",
                                                     ingress=["FD00:0:0::0"])))
    assert p.status_differs(service_view(service("s", families="6", ingress=["fd00::1"])))


def test_not_ours_is_ignored() -> None:
    a = allocator(pool("a", "10.0.0.0/24"))
    assert plan(a, service("s", svc_type="ClusterIP")).outcome == Outcome.IGNORED
    assert plan(a, service("s", lb_class="x")).outcome == Outcome.IGNORED
    assert a.holdings() == {}


def test_type_change_releases_and_clears_status() -> None:
    a = allocator(pool("a", "10.0.0.0/24"))
    obj = written(service("s"), plan(a, service("s")))
    gone = {**obj, "spec": {**obj["spec"], "type": "ClusterIP"}}
    p = plan(a, gone)
    assert p.outcome == Outcome.RELEASED
    assert p.ingress == () and p.drop_pool_annotation
    assert p.pools == frozenset({"a"})
    assert p.annotation_patch(service_view(gone)) == {ALLOCATED_FROM_POOL: None}
    assert a.holding("default/s") is None
    assert plan(a, written(gone, p)).outcome == Outcome.IGNORED


@pytest.mark.parametrize("new_type", ["ClusterIP", "NodePort", "ExternalName"])
def test_type_change_drops_the_annotation_after_the_apiserver_cleared_the_status(
        new_type: str) -> None:
    """What the API server does on the type change: status.loadBalancer and
    loadBalancerClass go, annotations stay. Ours must go too, and the address is freed."""
    a = allocator(pool("a", "10.0.0.0/32"))
    obj = written(service("s"), plan(a, service("s")))
    gone = {**obj, "spec": {**obj["spec"], "type": new_type}, "status": {}}
    p = plan(a, gone)
    assert p.outcome == Outcome.RELEASED
    assert p.ingress is None  # nothing to clear
    assert p.annotation_patch(service_view(gone)) == {ALLOCATED_FROM_POOL: None}
    assert plan(a, service("next")).ingress == ("10.0.0.0",)


def test_stale_annotation_on_a_non_load_balancer_is_dropped_without_holding() -> None:
    """E.g. changed while the operator was down: it never held it in this process."""
    a = allocator(pool("a", "10.0.0.0/24"))
    stale = service("s", svc_type="ClusterIP", annotations={ALLOCATED_FROM_POOL: "a"})
    p = plan(a, stale)
    assert p.outcome == Outcome.RELEASED
    assert p.annotation_patch(service_view(stale)) == {ALLOCATED_FROM_POOL: None}
    assert plan(a, written(stale, p)).outcome == Outcome.IGNORED
    # A LoadBalancer of another class keeps what its controller wrote.
    foreign = service("f", lb_class="other.io/lb", annotations={ALLOCATED_FROM_POOL: "x"})
    assert plan(a, foreign).outcome == Outcome.IGNORED


def test_release_leaves_foreign_status_alone() -> None:
    """A Service handed to another class keeps the status the other controller wrote."""
    a = allocator(pool("a", "10.0.0.0/24"))
    plan(a, service("s"))  # held, not yet written
    other = service("s", lb_class="other.io/lb", ingress=["192.0.2.1"])
    p = plan(a, other)
    assert p.outcome == Outcome.RELEASED
    assert p.ingress is None and not p.drop_pool_annotation


def test_deprecated_annotations_produce_events() -> None:
    a = allocator(pool("a", "10.0.0.0/24"))
    p = plan(a, service("s", pool="a", share="k", legacy=True))
    assert p.outcome == Outcome.ALLOCATED
    deprecated = [e for e in p.events if e.reason == "deprecatedAnnotation"]
    assert [e.type for e in deprecated] == [WARNING, WARNING]
    assert deprecated[0].message == (
        "annotation metallb.universe.tf/address-pool is deprecated, use "
        "metallb.io/address-pool")
    assert "metallb.io/allow-shared-ip" in deprecated[1].message


def test_allocation_failure_for_a_new_service() -> None:
    a = allocator(pool("a", "10.0.0.0/32"))
    written(service("s1"), plan(a, service("s1")))
    p = plan(a, service("s2"))
    assert p.outcome == Outcome.FAILED
    assert p.reason == "PoolExhausted"
    assert p.ingress is None  # nothing shown, nothing to clear
    assert reasons(p) == ["AllocationFailed"]
    assert p.events[0].type == WARNING
    assert p.events[0].message.startswith("Failed to allocate IP for 'default/s2': ")


def test_move_after_pool_edit() -> None:
    a = allocator(pool("a", "10.0.0.0/24"))
    obj = written(service("s"), plan(a, service("s")))
    assert a.set_config(config(pool("a", "10.0.1.0/24"))) == ["default/s"]
    p = plan(a, obj)
    assert p.outcome == Outcome.ALLOCATED
    assert p.ingress == ("10.0.1.0",)
    assert reasons(p) == ["ClearAssignment", "IPAllocated"]
    assert p.events[0].message.startswith("moved from 10.0.0.0")


def test_clear_after_pool_deletion() -> None:
    a = allocator(pool("a", "10.0.0.0/24"))
    obj = written(service("s"), plan(a, service("s")))
    a.set_config(config())
    p = plan(a, obj)
    assert p.outcome == Outcome.FAILED and p.reason == "NoPoolAvailable"
    assert p.ingress == ()
    assert p.drop_pool_annotation
    assert p.annotation_patch(service_view(obj)) == {ALLOCATED_FROM_POOL: None}
    assert reasons(p) == ["ClearAssignment", "AllocationFailed"]
    assert p.events[0].message.startswith("cleared 10.0.0.0: ")


@pytest.mark.parametrize(("change", "why"), [
    ({"ips": "10.0.0.7"}, "the Service requests 10.0.0.7"),
    ({"ips": "10.0.0.7", "legacy": True}, "the Service requests 10.0.0.7"),
    ({"pool": "b"}, "the Service requests pool 'b'"),
])
def test_requested_move_is_a_normal_event(change: dict[str, Any], why: str) -> None:
    """The user changed loadBalancerIPs or address-pool: as in MetalLB, nothing to warn
    about."""
    a = allocator(pool("a", "10.0.0.0/24"), pool("b", "10.0.1.0/24"))
    obj = written(service("s"), plan(a, service("s")))
    p = plan(a, service("s", ingress=["10.0.0.0"], annotations=obj["metadata"]["annotations"],
                        **change))
    assert p.outcome == Outcome.ALLOCATED
    assert [(e.type, e.reason) for e in p.events if e.reason != "deprecatedAnnotation"] == [
        (NORMAL, "ClearAssignment"), (NORMAL, "IPAllocated")]
    assert p.events[-2].message == f"moved from 10.0.0.0: {why}"


@pytest.mark.parametrize(("change", "fragment"), [
    ({"ips": "10.0.0.1"}, "10.0.0.1 is in use by default/other"),
    ({"ips": "10.9.9.9"}, "requested 10.9.9.9 is not in any IPAddressPool"),
    ({"pool": "nope"}, "requested pool 'nope' does not exist"),
    ({"ips": "10.0.0.7,fd01::7", "families": "46", "policy": "PreferDualStack"},
     "10.0.0.7 is in pool 'a', fd01::7 is in pool 'b'"),
])
def test_failed_requested_move_keeps_the_address_and_says_so(
        change: dict[str, Any], fragment: str) -> None:
    a = allocator(pool("a", "10.0.0.0/24"), pool("b", "fd01::/120"))
    obj = written(service("s"), plan(a, service("s")))
    written(service("other"), plan(a, service("other")))  # 10.0.0.1
    p = plan(a, service("s", ingress=["10.0.0.0"], annotations=obj["metadata"]["annotations"],
                        **change))
    assert p.outcome == Outcome.FAILED
    assert p.ingress == ("10.0.0.0",) and not p.status_differs(service_view(obj))
    assert p.annotation_patch(service_view(obj)) is None and not p.drop_pool_annotation
    [ev] = p.events
    assert (ev.type, ev.reason) == (WARNING, "AllocationFailed")
    assert fragment in ev.message and ev.message.endswith("; kept 10.0.0.0"), ev.message
    assert "moved" not in ev.message and "cleared" not in ev.message
    assert a.users(IP.parse("10.0.0.0")) == ("default/s",)
    assert plan(a, service("t")).ingress == ("10.0.0.2",)


def test_restart_replays_a_failed_requested_move_without_stealing() -> None:
    """Before the restart, older Service a asked for b's address and kept its own. On
    replay (oldest first) every shown address is reserved before any request is judged,
    so a does not take 10.0.0.1 before b is replayed."""
    pools = [pool("p", "10.0.0.0/24")]
    objs = [service("a", ips="10.0.0.1", ingress=["10.0.0.0"], created=ts(1)),
            service("b", ingress=["10.0.0.1"], created=ts(2))]
    fresh = allocator(*pools)
    views = restore_order([service_view(o) for o in objs])
    for view in views:
        reserve_shown(view, fresh, None)
    plans = {v.name: plan_service(v, fresh, None) for v in views}
    assert plans["b"].outcome == Outcome.UNCHANGED and plans["b"].events == ()
    assert plans["a"].outcome == Outcome.FAILED and plans["a"].ingress == ("10.0.0.0",)
    msg = plans["a"].events[-1].message
    assert "10.0.0.1 is in use by default/b" in msg and msg.endswith("; kept 10.0.0.0")
    assert fresh.users(IP.parse("10.0.0.1")) == ("default/b",)


def test_request_error_keeps_a_working_address() -> None:
    a = allocator(pool("a", "10.0.0.0/24"))
    obj = written(service("s"), plan(a, service("s")))
    broken = {**obj, "spec": {**obj["spec"], "loadBalancerIP": "10.0.0.9"},
              "metadata": {**obj["metadata"], "annotations": {
                  **obj["metadata"]["annotations"], "metallb.io/loadBalancerIPs": "10.0.0.9"}}}
    p = plan(a, broken)
    assert p.outcome == Outcome.FAILED and p.reason == "ConflictingRequest"
    assert p.ingress is None and not p.drop_pool_annotation
    assert reasons(p) == ["AllocationFailed"]
    assert a.users(IP.parse("10.0.0.0")) == ("default/s",)
    # others still cannot take it
    assert plan(a, service("t")).ingress == ("10.0.0.1",)


@pytest.mark.parametrize(("annotations", "reason", "fragment"), [
    ({"metallb.io/address-pool": "a "}, "InvalidRequestedPool",
     "annotation metallb.io/address-pool: 'a ' has blanks around the name"),
    ({"metallb.io/loadBalancerIPs": "10.0.0.0,", "metallb.io/address-pool": "A"},
     "InvalidRequestedIP", "item 2 of '10.0.0.0,' is empty"),
    ({"metallb.universe.tf/loadBalancerIPs": "10.0.0.0,10.0.0.0"}, "DuplicateRequestedIP",
     "annotation metallb.universe.tf/loadBalancerIPs: 10.0.0.0 is listed twice"),
])
def test_malformed_annotation_keeps_a_working_address(
        annotations: dict[str, str], reason: str, fragment: str) -> None:
    """A typo in an annotation is reported (the message names the annotation and the
    item) and takes nothing away: the address stays, and stays reserved."""
    a = allocator(pool("a", "10.0.0.0/24"))
    obj = written(service("s"), plan(a, service("s")))
    broken = {**obj, "metadata": {**obj["metadata"], "annotations": {
        **obj["metadata"]["annotations"], **annotations}}}
    p = plan(a, broken)
    assert p.outcome == Outcome.FAILED and p.reason == reason
    assert p.ingress is None and not p.drop_pool_annotation
    [failed] = [e for e in p.events if e.reason == "AllocationFailed"]
    assert fragment in failed.message, failed.message
    assert a.users(IP.parse("10.0.0.0")) == ("default/s",)
    assert plan(a, service("t")).ingress == ("10.0.0.1",)


def test_request_error_at_start_up_still_reserves_the_shown_address() -> None:
    """After a restart, a Service with a broken annotation keeps its status; its address
    must stay reserved or the next Service would get it too."""
    a = allocator(pool("a", "10.0.0.0/24"))
    bad = service("bad", ips="10.0.0.300", ingress=["10.0.0.0"], created=ts(1))
    p = plan(a, bad)
    assert p.outcome == Outcome.FAILED and p.reason == "InvalidRequestedIP"
    assert p.ingress is None
    assert a.users(IP.parse("10.0.0.0")) == ("default/bad",)
    assert plan(a, service("new", created=ts(2))).ingress == ("10.0.0.1",)


def test_request_error_at_start_up_does_not_keep_a_taken_address() -> None:
    a = allocator(pool("a", "10.0.0.0/24"))
    plan(a, service("owner", ingress=["10.0.0.0"], created=ts(1)))
    bad = service("bad", ips="10.0.0.1,10.0.0.2", ingress=["10.0.0.0"], created=ts(2))
    p = plan(a, bad)
    assert p.outcome == Outcome.FAILED and p.reason == "TooManyIPsPerFamily"
    assert p.ingress == ()  # the address is someone else's: stop showing it
    assert a.users(IP.parse("10.0.0.0")) == ("default/owner",)
    assert a.holding("default/bad") is None


def test_request_error_after_pool_deletion_clears() -> None:
    """A broken annotation must not pin an address that left every pool."""
    a = allocator(pool("a", "10.0.0.0/24"))
    obj = written(service("s"), plan(a, service("s")))
    broken = {**obj, "metadata": {**obj["metadata"], "annotations": {
        **obj["metadata"]["annotations"], "metallb.io/loadBalancerIPs": "bogus"}}}
    assert a.set_config(config(pool("b", "10.0.1.0/24"))) == ["default/s"]
    p = plan(a, broken)
    assert p.outcome == Outcome.FAILED and p.reason == "InvalidRequestedIP"
    assert p.ingress == () and p.drop_pool_annotation
    assert "ClearAssignment" in reasons(p)
    assert a.holding("default/s") is None
    assert a.users(IP.parse("10.0.0.0")) == ()


def test_start_up_decision_written_later_still_gets_its_event() -> None:
    a = allocator(pool("a", "10.0.0.0/24"))
    plan(a, service("s"))  # decided, write failed
    p = plan(a, service("s"))
    assert p.outcome == Outcome.ALLOCATED
    assert reasons(p) == ["IPAllocated"]


def test_restart_replay_is_quiet() -> None:
    pools = [pool("a", "10.0.0.0/24", "fd00::/120")]
    first = allocator(*pools)
    objs = [service("s1", created=ts(1)),
            service("s2", families="64", policy="RequireDualStack", created=ts(2)),
            service("s3", share="k", ports=[("TCP", 1)], created=ts(3)),
            service("s4", share="k", ports=[("TCP", 2)], created=ts(4))]
    objs = [written(o, plan(first, o)) for o in objs]
    second = allocator(*pools)
    for o in objs:
        p = plan(second, o)
        assert p.outcome == Outcome.UNCHANGED and p.events == ()
        assert not p.status_differs(service_view(o))
        assert p.annotation_patch(service_view(o)) is None

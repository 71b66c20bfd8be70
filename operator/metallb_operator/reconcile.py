"""What to write for one Service: a pure decision on top of the allocator.

`plan_service` asks the allocator and turns its answer into a `ServicePlan`: the
desired `status.loadBalancer.ingress`, the pool annotation, and Events. The controller
executes plans; tests assert on them directly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from enum import StrEnum

from metallb_api.addresses import IP
from metallb_api.service import (
    ADDRESS_POOL,
    ALLOCATED_FROM_POOL,
    LB_IPS,
    LEGACY,
    STABLE,
    AddressRequest,
    RequestError,
    ServiceView,
    parse_request,
)
from metallb_operator.allocator import Allocated, Allocator

NORMAL, WARNING = "Normal", "Warning"


class Outcome(StrEnum):
    IGNORED = "ignored"  # not ours: another class, not a LoadBalancer
    RELEASED = "released"  # was ours, is not any more
    UNCHANGED = "unchanged"
    ALLOCATED = "allocated"
    FAILED = "failed"


@dataclass(frozen=True)
class EventSpec:
    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class ServicePlan:
    key: str
    outcome: Outcome
    ingress: tuple[str, ...] | None = None  # desired ingress IPs; None: leave status alone
    pool_annotation: str | None = None  # desired annotation; None: leave it alone
    drop_pool_annotation: bool = False
    events: tuple[EventSpec, ...] = ()
    reason: str = ""
    pools: frozenset[str] = field(default_factory=frozenset)

    def status_differs(self, view: ServiceView) -> bool:
        if self.ingress is None:
            return False
        return _normalize(view.ingress) != _normalize(self.ingress)

    def annotation_patch(self, view: ServiceView) -> dict[str, str | None] | None:
        current = view.annotations.get(ALLOCATED_FROM_POOL)
        if self.pool_annotation is not None and current != self.pool_annotation:
            return {ALLOCATED_FROM_POOL: self.pool_annotation}
        if self.drop_pool_annotation and current is not None:
            return {ALLOCATED_FROM_POOL: None}
        return None


def _normalize(ips: tuple[str, ...]) -> tuple[str, ...]:
    out = []
    for raw in ips:
        try:
            out.append(str(IP.parse(raw)))
        except ValueError:
            out.append(raw)
    return tuple(out)


def handles(view: ServiceView, load_balancer_class: str | None) -> bool:
    """MetalLB rule: a configured class handles only that class; no class configured
    handles only Services without one."""
    return view.is_load_balancer and view.load_balancer_class == load_balancer_class


def stale_pool_annotation(view: ServiceView) -> bool:
    """A Service that is no longer a LoadBalancer but still carries the pool annotation
    (the API server clears its status.loadBalancer and loadBalancerClass on the type
    change, not annotations): whoever wrote it, it is wrong now, as in MetalLB, which
    clears both for every Service that is not a LoadBalancer."""
    return not view.is_load_balancer and ALLOCATED_FROM_POOL in view.annotations


def _ordered(view: ServiceView, ips: tuple[IP, ...]) -> tuple[str, ...]:
    order = {fam: i for i, fam in enumerate(view.ip_families)}
    return tuple(str(ip) for ip in sorted(ips, key=lambda ip: (order.get(ip.family, 9), ip)))


def _without_addresses(view: ServiceView) -> AddressRequest:
    """The Service's request minus requested addresses and pool: its sharing key, which
    never fails to parse."""
    dropped = {STABLE + LB_IPS, LEGACY + LB_IPS, STABLE + ADDRESS_POOL, LEGACY + ADDRESS_POOL}
    rest = parse_request(replace(
        view, load_balancer_ip="",
        annotations={k: v for k, v in view.annotations.items() if k not in dropped}))
    assert not isinstance(rest, RequestError)
    return rest


def reserve_shown(view: ServiceView, allocator: Allocator, load_balancer_class: str | None
                  ) -> None:
    """Start-up, first pass over every Service: hold the addresses its status shows
    while the configuration allows them, whatever it requests now (`plan_service`, in
    the second pass, moves it if its request can be met)."""
    if handles(view, load_balancer_class) and view.ingress:
        allocator.reserve(view, _without_addresses(view), view.ingress_ips())


def _plan_request_error(view: ServiceView, allocator: Allocator, error: RequestError
                        ) -> ServicePlan:
    """Keep what the Service has while it is still valid: a bad annotation must not take
    a working address away. But it must not pin an address that is no longer valid
    either, and at start-up the address the status shows must be reserved again, or the
    next Service would be given it too."""
    key = view.key
    failed = EventSpec(WARNING, "AllocationFailed",
                       f"Failed to allocate IP for {key!r}: {error.message}")
    held = allocator.holding(key)
    current = held.ips if held is not None else view.ingress_ips()
    if not current:
        return ServicePlan(key, Outcome.FAILED, reason=str(error.reason), events=(failed,))
    # No move on a broken request (it is not known where to): keep what the
    # configuration still allows, under what still parses (the sharing key).
    rest = _without_addresses(view)
    result = allocator.ensure(view, rest, current)
    if isinstance(result, Allocated) and not result.changed:
        return ServicePlan(key, Outcome.FAILED, reason=str(error.reason), events=(failed,),
                           pools=frozenset(result.pools))
    if isinstance(result, Allocated):
        allocator.release(key)  # never hand out new addresses on a broken request
        why = "no longer valid under the current configuration"
    else:
        why = result.message
    cleared = EventSpec(WARNING, "ClearAssignment",
                        f"cleared {', '.join(str(i) for i in current)}: {why}")
    return ServicePlan(
        key, Outcome.FAILED, ingress=() if view.ingress else None, drop_pool_annotation=True,
        events=(cleared, failed), reason=str(error.reason),
    )


def plan_service(view: ServiceView, allocator: Allocator, load_balancer_class: str | None
                 ) -> ServicePlan:
    key = view.key
    if not handles(view, load_balancer_class):
        held = allocator.holding(key)
        if held is None:
            if stale_pool_annotation(view):
                return ServicePlan(key, Outcome.RELEASED, ingress=() if view.ingress else None,
                                   drop_pool_annotation=True)
            return ServicePlan(key, Outcome.IGNORED)
        pools = frozenset(p for p in (allocator.pool_of(ip) for ip in held.ips) if p)
        allocator.release(key)
        ours = {str(ip) for ip in held.ips}
        clear = bool(ours & set(_normalize(view.ingress)))
        # The API server has usually cleared the status already (type changed): the
        # annotation must go all the same.
        return ServicePlan(key, Outcome.RELEASED, ingress=() if clear else None,
                           drop_pool_annotation=clear or not view.is_load_balancer,
                           pools=pools)

    request = parse_request(view)
    if isinstance(request, RequestError):
        return _plan_request_error(view, allocator, request)
    events = [
        EventSpec(WARNING, "deprecatedAnnotation",
                  f"annotation {legacy} is deprecated, use "
                  f"{STABLE + legacy.split('/', 1)[1]}")
        for legacy in request.deprecated
    ]
    shown = view.ingress_ips()
    result = allocator.ensure(view, request, shown)
    if isinstance(result, Allocated):
        ingress = _ordered(view, result.ips)
        pools = frozenset(result.pools)
        # Events follow what the Service *shows* changing, not the allocator's memory:
        # a decision made at start-up and written later still gets its Event.
        changed = set(result.ips) != set(shown)
        if changed:
            if shown and result.requested:
                # The user asked for it (changed loadBalancerIPs / address-pool): as
                # MetalLB, a Normal event, not a Warning.
                events.append(EventSpec(
                    NORMAL, "ClearAssignment",
                    f"moved from {', '.join(str(i) for i in shown)}: {result.requested}"))
            elif shown:
                events.append(EventSpec(
                    WARNING, "ClearAssignment",
                    f"moved from {', '.join(str(i) for i in shown)}: no longer valid "
                    f"under the current configuration"))
            events.append(EventSpec(NORMAL, "IPAllocated", f"Assigned IP {json.dumps(ingress)}"))
        return ServicePlan(
            key, Outcome.ALLOCATED if changed else Outcome.UNCHANGED,
            ingress=ingress, pool_annotation=",".join(sorted(pools)), events=tuple(events),
            pools=pools,
        )
    if result.kept:
        # A requested move that failed: say what stays, never that anything moved.
        kept = _ordered(view, result.kept)
        pools = frozenset(p for p in (allocator.pool_of(ip) for ip in result.kept) if p)
        events.append(EventSpec(
            WARNING, "AllocationFailed",
            f"Failed to allocate IP for {key!r}: {result.message}; kept "
            f"{', '.join(kept)}"))
        return ServicePlan(
            key, Outcome.FAILED, ingress=kept, pool_annotation=",".join(sorted(pools)),
            events=tuple(events), reason=str(result.reason), pools=pools,
        )
    if result.cleared:
        events.append(EventSpec(
            WARNING, "ClearAssignment",
            f"cleared {', '.join(str(i) for i in result.cleared)}: {result.message}"))
    events.append(EventSpec(WARNING, "AllocationFailed",
                            f"Failed to allocate IP for {key!r}: {result.message}"))
    return ServicePlan(
        key, Outcome.FAILED, ingress=() if view.ingress else None,
        drop_pool_annotation=True, events=tuple(events), reason=str(result.reason),
    )

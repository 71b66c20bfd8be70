"""Hypothesis state machine over the allocator, driven the way the controller drives it.

Random sequences of: Service create/update (requests, pools, sharing keys, ports,
traffic policy, families), Service deletion, pool create/edit/delete (grow, shrink,
overlap, invalid, serviceAllocation, autoAssign, avoidBuggyIPs), namespace label changes
and operator restarts (a fresh allocator replaying every Service's status).

After every step, checked against an independent recount from the model:
- no address has two holders unless they all legally share it;
- every held address lies inside a present pool (never a buggy one of an
  avoidBuggyIPs pool, never outside every pool);
- `usage()` equals a recount from the holdings, and totals are exact;
- a Service never holds two addresses of one family, and holds the families it wants;
- requests (addresses, pool) and serviceAllocation restrictions are honoured;
- the allocator's holdings are exactly what the Services' statuses show.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from tests.operator.builders import pool, request_of, service, ts, with_ingress

from metallb_api.addresses import IP, Family
from metallb_api.config import Config, PoolConfig, build_config
from metallb_api.service import ServiceView, service_view
from metallb_operator.allocator import (
    Allocated,
    Allocator,
    restore_order,
    wanted_families,
)
from metallb_operator.reconcile import Outcome, plan_service, reserve_shown

pytestmark = pytest.mark.unit

V4_ENTRIES = ["10.0.0.250-10.0.0.253", "10.0.0.252-10.0.1.1", "10.0.0.254/31",
              "10.0.1.0-10.0.1.3", "10.0.0.255-10.0.1.0", "10.0.1.4/31"]
V6_ENTRIES = ["fd00::-fd00::3", "fd00::2-fd00::5", "fd00::4/127", "fd00::6-fd00::7"]
BAD_ENTRIES = ["bogus", "10.0.0.9-10.0.0.1"]
V4_REQUESTS = ["10.0.0.250", "10.0.0.255", "10.0.1.0", "10.0.1.2", "10.0.2.1"]
V6_REQUESTS = ["fd00::1", "fd00::5", "fd00::9"]
POOL_NAMES = ["a", "b", "c"]
NAMESPACES = ["n0", "n1"]
SERVICE_NAMES = ["s0", "s1", "s2", "s3", "s4"]
PORTS = [("TCP", 80), ("TCP", 443), ("UDP", 80), ("TCP", 8080)]
MODES = {
    "v4": ("4", "SingleStack"), "v6": ("6", "SingleStack"),
    "req46": ("46", "RequireDualStack"), "req64": ("64", "RequireDualStack"),
    "pref46": ("46", "PreferDualStack"), "pref64": ("64", "PreferDualStack"),
}

allocations = st.one_of(
    st.none(), st.none(), st.none(),
    st.fixed_dictionaries({
        "priority": st.integers(0, 3),
        "namespaces": st.one_of(st.none(), st.lists(st.sampled_from(NAMESPACES),
                                                    max_size=1)),
        "namespace_selectors": st.one_of(st.none(),
                                         st.just([{"matchLabels": {"team": "a"}}])),
        "service_selectors": st.one_of(st.none(), st.just([{"matchLabels": {"tier": "web"}}])),
    }),
)

pool_specs = st.fixed_dictionaries({
    "addresses": st.lists(st.sampled_from(V4_ENTRIES * 3 + V6_ENTRIES * 2 + BAD_ENTRIES),
                          min_size=1, max_size=3, unique=True),
    "auto_assign": st.sampled_from([None, None, True, False]),
    "avoid_buggy": st.booleans(),
    "allocation": allocations,
})


@dataclass(frozen=True)
class SvcSpec:
    ns: str
    name: str
    mode: str = "v4"
    v4: str | None = None
    v6: str | None = None
    pool: str | None = None
    share: str | None = None
    ports: tuple[tuple[str, int], ...] = (("TCP", 80),)
    etp: str = "Cluster"
    app: str = "x"
    web: bool = False
    broken: str | None = None  # a request parse_request refuses (plan-driven machine only)

    @property
    def key(self) -> str:
        return f"{self.ns}/{self.name}"

    def obj(self, created: str, ingress: tuple[str, ...] = ()) -> dict[str, Any]:
        families, policy = MODES[self.mode]
        requested = [ip for ip in (self.v4, self.v6) if ip]
        ips = ",".join(requested) if requested else None
        lb_ip = None
        if self.broken == "too-many":
            ips = "10.0.0.250,10.0.1.0"
        elif self.broken == "conflict":
            ips, lb_ip = ips or "10.0.0.250", "10.0.0.250"
        elif self.broken == "junk":
            ips = "not-an-ip"
        return with_ingress(service(
            self.name, self.ns, ips=ips, lb_ip=lb_ip, pool=self.pool, share=self.share,
            families=families, policy=policy,
            etp=self.etp, selector={"app": self.app}, ports=self.ports,
            labels={"tier": "web"} if self.web else None, created=created,
        ), ingress)

    @property
    def sharing(self) -> str | None:
        return (self.share or "").strip() or None

    @property
    def backend(self) -> str:
        return f"Local:app={self.app}" if self.etp == "Local" else "Cluster"


svc_specs = st.builds(
    SvcSpec,
    ns=st.sampled_from(NAMESPACES),
    name=st.sampled_from(SERVICE_NAMES),
    mode=st.sampled_from(["v4"] * 6 + list(MODES)),
    v4=st.sampled_from([None] * 5 + V4_REQUESTS),
    v6=st.sampled_from([None] * 5 + V6_REQUESTS),
    pool=st.sampled_from([None] * 6 + ["a", "b", "zzz"]),
    share=st.sampled_from([None, "k1", "k1", "k1", "k2", ""]),
    ports=st.lists(st.sampled_from(PORTS), min_size=0, max_size=2, unique=True).map(tuple),
    etp=st.sampled_from(["Cluster", "Local"]),
    app=st.sampled_from(["x", "y"]),
    web=st.booleans(),
    broken=st.sampled_from([None] * 8 + ["too-many", "conflict", "junk"]),
)


@dataclass
class SvcState:
    spec: SvcSpec
    created: str
    status: tuple[str, ...] = ()
    # Its last reconcile failed (it keeps `status` if its own request asked for a move
    # that could not be made): retried whenever addresses or pools change.
    failed: bool = False
    kept: bool = False  # ... and it kept its addresses

    def view(self) -> ServiceView:
        return service_view(self.spec.obj(self.created, self.status))


@dataclass
class Model:
    pools: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    services: dict[str, SvcState] = field(default_factory=dict)
    ns_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    clock: int = 0

    def tick(self) -> str:
        self.clock += 1
        return ts(self.clock)

    def config(self) -> Config:
        objs = []
        for name, (created, spec) in self.pools.items():
            alloc = spec["allocation"] or {}
            objs.append(pool(name, *spec["addresses"], auto_assign=spec["auto_assign"],
                             avoid_buggy=spec["avoid_buggy"], created=created, **alloc))
        return build_config(objs)


def _in_ready_pool(p: PoolConfig, ip: IP) -> bool:
    return any(r.contains(ip) for r in p.ranges) and not (p.avoid_buggy_ips and ip.is_buggy)


def _brute_size(p: PoolConfig, fam: Family) -> int:
    return sum(1 for r in p.ranges if r.family == fam
               for v in range(r.first, r.last + 1)
               if not (p.avoid_buggy_ips and IP(fam, v).is_buggy))


def _compatible(p: PoolConfig, view: ServiceView, ns_labels: Mapping[str, str]) -> bool:
    alloc = p.allocation
    if alloc is None:
        return True
    if (alloc.namespaces or alloc.namespace_selectors) and not (
        view.namespace in alloc.namespaces
        or any(s.matches(ns_labels) for s in alloc.namespace_selectors)
    ):
        return False
    return not alloc.service_selectors or any(
        s.matches(view.labels) for s in alloc.service_selectors)


def _counts(a: Allocator, name: str) -> tuple[tuple[int, int, int], ...]:
    usage = a.usage(name)
    return tuple((usage.assigned.get(f, 0), usage.total.get(f, 0), usage.available(f))
                 for f in Family)


class AllocatorMachine(RuleBasedStateMachine):
    BROKEN_REQUESTS = False

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.alloc = Allocator(self.model.config())

    # -- driving the allocator like the controller does -------------------------
    def _ensure(self, key: str) -> bool:
        """Reconcile one Service and write its status; True if the addresses changed."""
        state = self.model.services[key]
        view = state.view()
        result = self.alloc.ensure(view, request_of(view), view.ingress_ips())
        held = self.alloc.holding(key)
        before = set(view.ingress_ips())
        if isinstance(result, Allocated):
            assert held is not None and held.ips == result.ips
            assert len(result.pools) == len(result.ips)
            assert result.changed == (set(result.ips) != before) or not before
            state.status = tuple(str(ip) for ip in result.ips)
        elif result.kept:
            # The Service's own request asked for a move that failed: it keeps what it
            # had, which is what its status shows or what the allocator held.
            assert held is not None and held.ips == result.kept and not result.cleared
            state.status = tuple(str(ip) for ip in result.kept)
        else:
            assert held is None, "a failure must not leave a holding"
            assert set(result.cleared) <= before
            state.status = ()
        state.failed = not isinstance(result, Allocated)
        state.kept = not isinstance(result, Allocated) and bool(result.kept)
        return {IP.parse(i) for i in state.status} != before

    def _retry_failed(self) -> None:
        """As the controller: failed Services again, until no addresses move."""
        for _ in range(len(self.model.services) + 1):
            moved = False
            for key, state in list(self.model.services.items()):
                if state.failed or not state.status:
                    before = bool(state.status)
                    moved |= self._ensure(key) and before
            if not moved:
                return

    def _apply_config(self) -> None:
        for key in self.alloc.set_config(self.model.config()):
            self._ensure(key)
        self._retry_failed()

    # -- rules ------------------------------------------------------------------
    @initialize(spec=pool_specs)
    def first_pool(self, spec: dict[str, Any]) -> None:
        """Start with a plain dual-stack pool most of the time, so allocation happens."""
        self.model.pools["a"] = (self.model.tick(), {
            **spec, "addresses": ["10.0.0.250-10.0.1.3", "fd00::-fd00::7"],
            "allocation": None, "auto_assign": None})
        self._apply_config()

    @rule(spec=svc_specs)
    def put_service(self, spec: SvcSpec) -> None:
        if not self.BROKEN_REQUESTS:
            spec = replace(spec, broken=None)
        old = self.model.services.get(spec.key)
        if old is None:
            self.model.services[spec.key] = SvcState(spec, self.model.tick())
        else:
            old.spec = spec
        if self._ensure(spec.key):
            self._retry_failed()

    @precondition(lambda self: self.model.services)
    @rule(data=st.data())
    def touch_service(self, data: st.DataObject) -> None:
        """Re-ensuring an unchanged Service keeps what it has (zero changes)."""
        key = data.draw(st.sampled_from(sorted(self.model.services)))
        before = self.model.services[key].status
        changed = self._ensure(key)
        if before:
            assert not changed

    @precondition(lambda self: self.model.services)
    @rule(data=st.data(), ports=st.lists(st.sampled_from(PORTS), max_size=2, unique=True),
          share=st.sampled_from([None, "k1", "k2"]))
    def change_ports_or_key(self, data: st.DataObject, ports: list[tuple[str, int]],
                            share: str | None) -> None:
        key = data.draw(st.sampled_from(sorted(self.model.services)))
        state = self.model.services[key]
        state.spec = replace(state.spec, ports=tuple(ports), share=share)
        if self._ensure(key):
            self._retry_failed()

    @precondition(lambda self: self.BROKEN_REQUESTS and self.model.services)
    @rule(data=st.data(), broken=st.sampled_from([None, "too-many", "conflict", "junk"]))
    def break_or_fix_request(self, data: st.DataObject, broken: str | None) -> None:
        """Only the request annotation changes (a typo, then its fix)."""
        key = data.draw(st.sampled_from(sorted(self.model.services)))
        state = self.model.services[key]
        state.spec = replace(state.spec, broken=broken)
        if self._ensure(key):
            self._retry_failed()

    @precondition(lambda self: self.model.services)
    @rule(data=st.data())
    def delete_service(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.model.services)))
        state = self.model.services.pop(key)
        released = self.alloc.release(key)
        assert {str(ip) for ip in released} == set(state.status)
        assert self.alloc.holding(key) is None
        self._retry_failed()

    @rule(name=st.sampled_from(POOL_NAMES), spec=pool_specs)
    def put_pool(self, name: str, spec: dict[str, Any]) -> None:
        created = self.model.pools[name][0] if name in self.model.pools else self.model.tick()
        self.model.pools[name] = (created, spec)
        self._apply_config()

    @precondition(lambda self: self.model.pools)
    @rule(data=st.data())
    def delete_pool(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.model.pools)))
        del self.model.pools[name]
        self._apply_config()

    @rule(ns=st.sampled_from(NAMESPACES),
          labels=st.sampled_from([None, {}, {"team": "a"}, {"team": "b"}]))
    def namespace_labels(self, ns: str, labels: dict[str, str] | None) -> None:
        if labels is None:
            self.model.ns_labels.pop(ns, None)
        else:
            self.model.ns_labels[ns] = labels
        for key in self.alloc.set_namespace_labels(ns, labels):
            assert key.startswith(ns + "/")
            self._ensure(key)
        self._retry_failed()

    @rule()
    def restart(self) -> None:
        """A fresh allocator replays every Service (status first, oldest first): the
        ones with addresses keep them with zero changes."""
        old = self.alloc
        self.alloc = Allocator(self.model.config())
        for ns, labels in self.model.ns_labels.items():
            self.alloc.set_namespace_labels(ns, labels)
        by_key = {s.spec.key: s for s in self.model.services.values()}
        views = restore_order([s.view() for s in by_key.values()])
        for view in views:  # as the controller: every shown address held first
            reserve_shown(view, self.alloc, None)
        for view in views:
            before = by_key[view.key].status
            changed = self._ensure(view.key)
            if before:
                assert not changed, (view.key, before, by_key[view.key].status)
        if all(s.status for s in self.model.services.values()):
            for name in self.model.pools:
                assert _counts(self.alloc, name) == _counts(old, name)

    # -- invariants ---------------------------------------------------------------
    @invariant()
    def holdings_match_statuses(self) -> None:
        holdings = self.alloc.holdings()
        assert set(holdings) <= set(self.model.services)
        for key, state in self.model.services.items():
            held = holdings.get(key)
            shown = {IP.parse(i) for i in state.status}
            assert (set(held.ips) if held else set()) == shown, key

    @invariant()
    def sharing_is_legal(self) -> None:
        holders: dict[IP, list[SvcState]] = defaultdict(list)
        for state in self.model.services.values():
            for raw in state.status:
                holders[IP.parse(raw)].append(state)
        for ip, states in holders.items():
            assert self.alloc.users(ip) == tuple(sorted(s.spec.key for s in states))
            if len(states) < 2:
                continue
            keys = {s.spec.sharing for s in states}
            assert len(keys) == 1 and None not in keys, (ip, [s.spec for s in states])
            assert len({s.spec.backend for s in states}) == 1, ip
            seen: set[tuple[str, int]] = set()
            for s in states:
                assert not (seen & set(s.spec.ports)), (ip, "port clash")
                seen |= set(s.spec.ports)

    @invariant()
    def addresses_lie_in_pools_and_respect_requests(self) -> None:
        cfg = self.alloc.config
        for state in self.model.services.values():
            if not state.status:
                continue
            view = state.view()
            ips = [IP.parse(raw) for raw in state.status]
            fams = [ip.family for ip in ips]
            wanted, strict = wanted_families(view)
            assert len(set(fams)) == len(fams), "two addresses of one family"
            assert set(fams) <= set(wanted)
            if strict:
                assert set(fams) == set(wanted)
            owners: set[str] = set()
            requested = {IP.parse(r) for r in (state.spec.v4, state.spec.v6) if r}
            # Honoured unless it cannot be parsed or its move failed (it kept its own).
            honoured = not state.spec.broken and not state.kept
            if requested and honoured:
                assert set(ips) == requested
            for ip in ips:
                ready = [p for p in cfg.pools.values() if _in_ready_pool(p, ip)]
                assert len(ready) <= 1
                if ready:
                    owner = ready[0].name
                    assert _compatible(ready[0], view,
                                       self.model.ns_labels.get(view.namespace, {}))
                else:
                    held = [n for n, rs in cfg.held_ranges.items()
                            if n not in cfg.pools and any(r.contains(ip) for r in rs)]
                    assert held, f"{ip} of {view.key} lies in no pool"
                    owner = held[0]
                assert self.alloc.pool_of(ip) == owner
                owners.add(owner)
                if state.spec.pool and honoured:
                    assert owner == state.spec.pool
            assert len(owners) == 1, (view.key, "addresses from two pools")

    @invariant()
    def usage_matches_a_recount(self) -> None:
        cfg = self.alloc.config
        distinct = {IP.parse(raw) for s in self.model.services.values() for raw in s.status}
        assigned_sum = {Family.V4: 0, Family.V6: 0}
        for name in cfg.held_ranges:
            usage = self.alloc.usage(name)
            p = cfg.pools.get(name)
            for fam in Family:
                assigned_sum[fam] += usage.assigned.get(fam, 0)
                if p is None:
                    assert usage.total[fam] == 0
                    continue
                assert usage.total[fam] == _brute_size(p, fam)
                mine = sum(1 for ip in distinct if ip.family == fam and _in_ready_pool(p, ip))
                assert usage.assigned.get(fam, 0) == mine, (name, fam)
                assert usage.available(fam) == usage.total[fam] - mine
        for fam in Family:
            assert assigned_sum[fam] == sum(1 for ip in distinct if ip.family == fam)


AllocatorMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=30, deadline=None)
test_allocator_machine = AllocatorMachine.TestCase


class PlanMachine(AllocatorMachine):
    """The same, driven through `plan_service` (what the controller executes), with some
    Services carrying requests that parse_request refuses (a bad annotation keeps a valid
    address, never pins an invalid one, and is reserved again after a restart)."""

    BROKEN_REQUESTS = True

    def _ensure(self, key: str) -> bool:
        state = self.model.services[key]
        view = state.view()
        p = plan_service(view, self.alloc, None)
        assert p.outcome in (Outcome.ALLOCATED, Outcome.UNCHANGED, Outcome.FAILED)
        if p.ingress is not None:
            state.status = p.ingress
        kept = False
        if p.outcome == Outcome.FAILED:
            kept = any(e.message.endswith("; kept " + ", ".join(p.ingress or ()))
                       for e in p.events)
            assert p.ingress in (None, ()) or kept, p
        state.failed = p.outcome == Outcome.FAILED
        state.kept = state.failed and bool(p.ingress) and kept
        held = self.alloc.holding(key)
        shown = {IP.parse(i) for i in state.status}
        assert (set(held.ips) if held else set()) == shown, (key, p)
        changed = shown != set(view.ingress_ips())
        assert changed == (p.outcome == Outcome.ALLOCATED) or p.outcome == Outcome.FAILED
        return changed


PlanMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=30, deadline=None)
test_plan_machine = PlanMachine.TestCase


def test_universe_is_what_the_machine_assumes() -> None:
    """The generators cross .255/.0 and make overlaps likely."""
    v4 = [ipaddress.ip_address(x) for x in V4_REQUESTS]
    assert any(int(x) & 0xFF == 255 for x in v4) and any(int(x) & 0xFF == 0 for x in v4)
    assert build_config([pool("a", *V4_ENTRIES[:2])]).problems  # self-overlap

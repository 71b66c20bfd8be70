"""The address allocator: MetalLB's rules, no Kubernetes.

Input is the validated `Config` (pools), a `ServiceView` and its `AddressRequest`;
output is `Allocated` or `AllocationFailure(reason=...)`. The controller feeds it
every Service (assigned ones first on start-up) and writes what it returns.

Rules (MetalLB-compatible):
- A Service keeps its current addresses while they are still valid: inside a pool
  (a Ready pool, or one that is present but not Ready - see config.py), allowed for the
  Service, matching its request and IP families, and legally shared.
- All addresses of one Service come from one pool: requested addresses in two pools
  are refused, and addresses found in two pools (an edit, or an older version) move.
- A move the Service's own request asks for (changed `loadBalancerIPs` or
  `address-pool`) that cannot be met keeps the old addresses, which are still valid;
  a move the configuration forces clears them when nothing else fits.
- Otherwise: requested addresses (`loadBalancerIPs`), else the requested pool
  (`address-pool`), else pools whose serviceAllocation matches the Service, by
  priority (lower positive first, 0 last), then every other autoAssign pool by name.
- Within a pool, the lowest free address of each range in listed order; a Service with
  a sharing key may instead join an earlier address held under the same key.
- Sharing needs the same non-empty key, the same backend key and no common
  (protocol, port).

Complexity: picking an address is O(R log k) for R ranges of the pool and k runs of
taken addresses (see taken.py); memory is O(allocated addresses + services).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

from metallb_api.addresses import IP, Family
from metallb_api.config import Config, PoolConfig
from metallb_api.service import PREFER_DUAL, REQUIRE_DUAL, AddressRequest, Port, ServiceView
from metallb_operator.allocator.reasons import (
    Allocated,
    AllocationFailure,
    FailureReason,
    Result,
)
from metallb_operator.allocator.taken import TakenSet

EMPTY_CONFIG = Config(pools={}, held_ranges={}, l2advertisements={}, problems=())


class SharingKey(NamedTuple):
    sharing: str | None
    backend: str


class Holding(NamedTuple):
    """What one Service holds. NamedTuples here: built on every allocation."""

    view: ServiceView
    request: AddressRequest
    ips: tuple[IP, ...]
    key: SharingKey


@dataclass(frozen=True)
class PoolUsage:
    assigned: Mapping[Family, int]
    total: Mapping[Family, int]

    def available(self, family: Family) -> int:
        return max(self.total.get(family, 0) - self.assigned.get(family, 0), 0)


def wanted_families(view: ServiceView) -> tuple[tuple[Family, ...], bool]:
    """Families to assign, in the Service's order, and whether all are required."""
    fams = view.ip_families
    if view.ip_family_policy == REQUIRE_DUAL:
        return (fams if len(fams) == 2 else (Family.V4, Family.V6)), True
    if view.ip_family_policy == PREFER_DUAL:
        return fams, False
    return fams[:1], True


def _fail(reason: FailureReason, message: str) -> AllocationFailure:
    return AllocationFailure(reason, message)


class Allocator:
    def __init__(self, config: Config = EMPTY_CONFIG) -> None:
        self._config = config
        self._ns_labels: dict[str, Mapping[str, str]] = {}
        self._taken = {Family.V4: TakenSet(), Family.V6: TakenSet()}
        # ip -> keys of the Services on it. Tuples of str, not dicts: the GC untracks
        # them, which matters at 100k+ addresses.
        self._users: dict[IP, tuple[str, ...]] = {}
        self._ip_pool: dict[IP, str] = {}
        self._in_use: dict[str, dict[Family, int]] = {}
        self._holdings: dict[str, Holding] = {}
        self._sharing_ips: dict[str, set[IP]] = {}
        self._pinned: list[PoolConfig] = []
        self._rest: list[PoolConfig] = []
        self._order_pools()

    # -- queries ------------------------------------------------------------------
    @property
    def config(self) -> Config:
        return self._config

    def holding(self, key: str) -> Holding | None:
        return self._holdings.get(key)

    def holdings(self) -> Mapping[str, Holding]:
        return self._holdings

    def users(self, ip: IP) -> tuple[str, ...]:
        return tuple(sorted(self._users.get(ip, ())))

    def pool_of(self, ip: IP) -> str | None:
        return self._ip_pool.get(ip)

    def pools_of(self, key: str) -> frozenset[str]:
        held = self._holdings.get(key)
        if held is None:
            return frozenset()
        return frozenset(p for p in (self._ip_pool.get(ip) for ip in held.ips) if p)

    def usage(self, pool: str) -> PoolUsage:
        cfg = self._config.pools.get(pool)
        totals: dict[Family, int] = {}
        for fam in Family:
            if cfg is not None:
                totals[fam] = cfg.size(fam)
            else:  # present but not Ready: it hands nothing out
                totals[fam] = 0
        return PoolUsage(dict(self._in_use.get(pool, {})), totals)

    # -- configuration ------------------------------------------------------------
    def set_config(self, config: Config) -> list[str]:
        """Install a new configuration; return Services whose addresses no longer fit
        (the caller re-runs `ensure` for each, which moves or clears them)."""
        self._config = config
        self._order_pools()
        self._in_use = {}
        for ip in self._users:
            pool = self._locate(ip) or ""
            self._ip_pool[ip] = pool
            self._count(pool, ip.family, +1)
        return [k for k, h in self._holdings.items() if self._keep_problem(h) is not None]

    def set_namespace_labels(self, namespace: str, labels: Mapping[str, str] | None) -> list[str]:
        if labels is None:
            self._ns_labels.pop(namespace, None)
        else:
            self._ns_labels[namespace] = dict(labels)
        return [
            k for k, h in self._holdings.items()
            if h.view.namespace == namespace and self._keep_problem(h) is not None
        ]

    # -- the decision -------------------------------------------------------------
    def ensure(
        self, view: ServiceView, request: AddressRequest, current: Sequence[IP] = ()
    ) -> Result:
        """Keep the Service's valid addresses or give it new ones.

        `current` is what the Service's status shows; it is used when this allocator
        does not hold the Service yet (start-up, or after a release)."""
        key = view.key
        held = self._holdings.get(key)
        cur = held.ips if held is not None else tuple(current)
        skey = SharingKey(request.sharing_key, view.backend_key)
        if not cur:  # the common case for a new Service: nothing to keep or release
            return self._allocate_new(view, request, skey)
        candidate = Holding(view, request, cur, skey)
        requested = self._request_problem(candidate)
        problem = self._keep_problem(candidate, honour_request=False)
        if requested is None and problem is None:
            if held is not None and held.ips == cur:
                self._replace(candidate)
            else:
                if held is not None:
                    self._release(key)
                self._record(candidate)
            return Allocated(cur, tuple(self._ip_pool[ip] for ip in cur), False, cur)
        if held is not None:
            self._release(key)
        result = self._allocate_new(view, request, skey)
        if isinstance(result, AllocationFailure):
            if problem is None:
                # Only the Service's own request wanted the move and it cannot be met:
                # what it has is still valid, so it keeps it (MetalLB clears it).
                self._record(candidate)
                return replace(result, kept=cur)
            return replace(result, cleared=cur)
        return result._replace(previous=cur, changed=result.ips != cur,
                               requested=requested or "")

    def reserve(self, view: ServiceView, request: AddressRequest, current: Sequence[IP]
                ) -> str | None:
        """Start-up, before any `ensure`: hold what the Service's status shows if the
        configuration, its families and sharing allow it; None if held, else why not.
        Its request is judged later by `ensure`, once every address in use is held: a
        Service whose requested move failed before the restart must not take, on replay,
        an address whose holder has not been replayed yet."""
        if view.key in self._holdings or not current:
            return "already held" if current else "no addresses"
        h = Holding(view, request, tuple(current),
                    SharingKey(request.sharing_key, view.backend_key))
        problem = self._keep_problem(h, honour_request=False)
        if problem is None:
            self._record(h)
        return problem

    def release(self, key: str) -> tuple[IP, ...]:
        held = self._holdings.get(key)
        if held is None:
            return ()
        self._release(key)
        return held.ips

    # -- internals ----------------------------------------------------------------
    def _locate(self, ip: IP) -> str | None:
        """The pool an address belongs to: a Ready pool first, else a held one."""
        for pool in self._config.pools.values():
            for r in pool.ranges:
                if r.family == ip.family and r.first <= ip.value <= r.last:
                    if pool.avoid_buggy_ips and ip.is_buggy:
                        break
                    return pool.name
        for name, ranges in self._config.held_ranges.items():
            if name not in self._config.pools and any(r.contains(ip) for r in ranges):
                return name
        return None

    def _compatible(self, pool: PoolConfig, view: ServiceView) -> bool:
        alloc = pool.allocation
        if alloc is None:
            return True
        if alloc.namespaces or alloc.namespace_selectors:
            ns_labels = self._ns_labels.get(view.namespace, {})
            if view.namespace not in alloc.namespaces and not any(
                s.matches(ns_labels) for s in alloc.namespace_selectors
            ):
                return False
        return not alloc.service_selectors or any(
            s.matches(view.labels) for s in alloc.service_selectors
        )

    def _sharing_problem(self, svc: str, ip: IP, skey: SharingKey, ports: frozenset[Port]
                         ) -> str | None:
        users = self._users.get(ip)
        if not users:
            return None
        others = [self._holdings[k] for k in users if k != svc]
        if not others:
            return None
        other = others[0]
        who = other.view.key
        if skey.sharing is None or other.key.sharing is None:
            return f"{ip} is in use by {who} and sharing needs metallb.io/allow-shared-ip on both"
        if skey.sharing != other.key.sharing:
            return (f"{ip} is shared under key {other.key.sharing!r} by {who}, "
                    f"not {skey.sharing!r}")
        if skey.backend != other.key.backend:
            return (f"{ip} is used by {who} with a different externalTrafficPolicy/selector "
                    f"({other.key.backend} vs {skey.backend})")
        for h in others:
            clash = ports & h.view.ports
            if clash:
                return f"port {min(clash)} on {ip} is already used by {h.view.key}"
        return None

    def _request_problem(self, h: Holding) -> str | None:
        """Why the Service's own request (loadBalancerIPs, address-pool) asks it to move."""
        request, ips = h.request, h.ips
        if request.ips and set(request.ips) != set(ips):
            want = ", ".join(str(ip) for ip in request.ips)
            return f"the Service requests {want}"
        if request.pool:
            for ip in ips:
                pool_name = self._ip_pool.get(ip) if ip in self._users else None
                if (pool_name or self._locate(ip)) != request.pool:
                    return f"the Service requests pool {request.pool!r}"
        return None

    def _keep_problem(self, h: Holding, honour_request: bool = True) -> str | None:
        """Why the Service may not keep `h.ips`; with honour_request=False, only what the
        configuration, its IP families and sharing say (not its own request)."""
        view, ips = h.view, h.ips
        if not ips:
            return "no addresses"
        fams = [ip.family for ip in ips]
        wanted, strict = wanted_families(view)
        if len(set(fams)) != len(fams) or not set(fams) <= set(wanted):
            return "addresses do not match the Service's IP families"
        if strict and set(fams) != set(wanted):
            return "the Service needs an address of each IP family"
        if honour_request:
            requested = self._request_problem(h)
            if requested:
                return requested
        pools: dict[str, IP] = {}
        for ip in ips:
            pool_name = self._ip_pool.get(ip) if ip in self._users else self._locate(ip)
            if pool_name is None:
                pool_name = self._locate(ip)
            if not pool_name:
                return f"{ip} is in no IPAddressPool"
            pools.setdefault(pool_name, ip)
            pool = self._config.pools.get(pool_name)
            if pool is not None and not self._compatible(pool, view):
                return f"pool {pool_name} no longer allows this Service"
            problem = self._sharing_problem(view.key, ip, h.key, view.ports)
            if problem:
                return problem
        if len(pools) > 1:
            where = ", ".join(f"{ip} in {name!r}" for name, ip in sorted(pools.items()))
            return f"its addresses are in different pools ({where})"
        return None

    def _order_pools(self) -> None:
        """Pool preference order is fixed per config; computed once, not per Service."""
        pools = self._config.pools.values()
        self._pinned = sorted(
            (p for p in pools if p.allocation is not None and p.auto_assign),
            key=lambda p: (p.allocation is None or p.allocation.priority == 0,
                           p.allocation.priority if p.allocation else 0, p.name),
        )
        self._rest = sorted(
            (p for p in pools if p.allocation is None and p.auto_assign), key=lambda p: p.name
        )

    def _candidate_pools(self, view: ServiceView) -> list[PoolConfig]:
        if not self._pinned:
            return self._rest
        return [p for p in self._pinned if self._compatible(p, view)] + self._rest

    def _first_free(self, pool: PoolConfig, family: Family) -> tuple[int, IP] | None:
        first_free = self._taken[family].first_free
        skip_buggy = pool.avoid_buggy_ips and family is Family.V4
        for index, r in enumerate(pool.ranges):
            if r.family != family:
                continue
            x = first_free(r.first, r.last)
            # .0 and .255 are never taken, so skipping them is O(1) extra steps.
            while skip_buggy and x is not None and (x & 0xFF) in (0, 255):
                x = first_free(x + 1, r.last)
            if x is not None:
                return index, IP(family, x)
        return None

    def _shared_candidate(self, pool: PoolConfig, family: Family, view: ServiceView,
                          skey: SharingKey) -> tuple[int, IP] | None:
        if skey.sharing is None:
            return None
        best: tuple[int, IP] | None = None
        for ip in self._sharing_ips.get(skey.sharing, ()):
            if ip.family != family or self._ip_pool.get(ip) != pool.name:
                continue
            if self._sharing_problem(view.key, ip, skey, view.ports) is not None:
                continue
            index = next(i for i, r in enumerate(pool.ranges) if r.contains(ip))
            if best is None or (index, ip) < best:
                best = (index, ip)
        return best

    def _from_pool(self, pool: PoolConfig, view: ServiceView, skey: SharingKey,
                   wanted: tuple[Family, ...], require_all: bool) -> tuple[IP, ...] | None:
        ips: list[IP] = []
        for fam in wanted:
            free = self._first_free(pool, fam)
            shared = self._shared_candidate(pool, fam, view, skey) if skey.sharing else None
            if shared is not None and (free is None or shared < free):
                free = shared
            if free is not None:
                ips.append(free[1])
            elif require_all:
                return None
        return tuple(ips) or None

    def _allocate_new(self, view: ServiceView, request: AddressRequest,
                      skey: SharingKey) -> Allocated | AllocationFailure:
        wanted, strict = wanted_families(view)
        if request.ips:
            return self._assign_requested(view, request, skey, wanted, strict)
        if request.pool:
            pool = self._config.pools.get(request.pool)
            if pool is None:
                if request.pool in self._config.held_ranges:
                    return _fail(FailureReason.REQUESTED_POOL_NOT_READY,
                                 f"requested pool {request.pool!r} is not Ready")
                return _fail(FailureReason.REQUESTED_POOL_NOT_FOUND,
                             f"requested pool {request.pool!r} does not exist")
            if not self._compatible(pool, view):
                return _fail(FailureReason.POOL_NOT_ALLOWED,
                             f"pool {pool.name!r} serviceAllocation does not allow {view.key}")
            candidates = [pool]
        else:
            candidates = self._candidate_pools(view)
            if not candidates:
                return _fail(FailureReason.NO_POOLS,
                             "no IPAddressPool is available to this Service (no Ready "
                             "autoAssign pool, and no serviceAllocation matches it)")
        for require_all in ((True,) if strict else (True, False)):
            for pool in candidates:
                ips = self._from_pool(pool, view, skey, wanted, require_all)
                if ips:
                    self._record(Holding(view, request, ips, skey), pool.name)
                    return Allocated(ips, (pool.name,) * len(ips), True)
        names = ", ".join(p.name for p in candidates)
        fam_names = "/".join(f.label for f in wanted)
        if not any(set(wanted) & p.families if not strict else set(wanted) <= p.families
                   for p in candidates):
            return _fail(FailureReason.FAMILY_MISMATCH,
                         f"no candidate pool ({names}) has {fam_names} addresses")
        return _fail(FailureReason.POOL_EXHAUSTED,
                     f"no available {fam_names} address in pool(s) {names}")

    def _assign_requested(self, view: ServiceView, request: AddressRequest, skey: SharingKey,
                          wanted: tuple[Family, ...], strict: bool
                          ) -> Allocated | AllocationFailure:
        fams = {ip.family for ip in request.ips}
        if not fams <= set(wanted) or (strict and fams != set(wanted)):
            got = ", ".join(str(ip) for ip in request.ips)
            return _fail(FailureReason.FAMILY_MISMATCH,
                         f"requested {got} but the Service's ipFamilies/ipFamilyPolicy "
                         f"want {'/'.join(f.label for f in wanted)}")
        located = [(ip, self._locate(ip)) for ip in request.ips]
        for ip, name in located:
            if not name:
                return _fail(FailureReason.REQUESTED_IP_NOT_IN_POOL,
                             f"requested {ip} is not in any IPAddressPool")
        if len({name for _, name in located}) > 1:
            # MetalLB's rule: one Service, one pool (its ip-allocated-from-pool names one).
            where = ", ".join(f"{ip} is in pool {name!r}" for ip, name in located)
            return _fail(FailureReason.REQUESTED_IPS_IN_DIFFERENT_POOLS,
                         f"requested addresses are in different pools ({where}); all "
                         f"addresses of a Service must come from one IPAddressPool")
        name = located[0][1]
        pool = self._config.pools.get(name) if name else None
        if pool is None:
            return _fail(FailureReason.REQUESTED_POOL_NOT_READY,
                         f"requested {located[0][0]} belongs to pool {name!r}, which is not "
                         f"Ready")
        if request.pool and pool.name != request.pool:
            got = ", ".join(str(ip) for ip in request.ips)
            return _fail(FailureReason.REQUESTED_IP_NOT_IN_POOL,
                         f"requested {got} is not in the requested pool {request.pool!r}")
        if not self._compatible(pool, view):
            return _fail(FailureReason.POOL_NOT_ALLOWED,
                         f"pool {pool.name!r} serviceAllocation does not allow {view.key}")
        for ip in request.ips:
            problem = self._sharing_problem(view.key, ip, skey, view.ports)
            if problem:
                return _fail(FailureReason.REQUESTED_IP_IN_USE, problem)
        self._record(Holding(view, request, request.ips, skey), pool.name)
        return Allocated(request.ips, (pool.name,) * len(request.ips), True)

    # -- bookkeeping --------------------------------------------------------------
    def _count(self, pool: str, family: Family, delta: int) -> None:
        counts = self._in_use.get(pool)
        if counts is None:
            counts = self._in_use[pool] = {Family.V4: 0, Family.V6: 0}
        counts[family] += delta

    def _record(self, h: Holding, pool_hint: str | None = None) -> None:
        key = h.view.key
        self._holdings[key] = h
        for ip in h.ips:
            users = self._users.get(ip)
            if users is not None:
                if key not in users:
                    self._users[ip] = (*users, key)
            else:
                self._users[ip] = (key,)
                self._taken[ip.family].add(ip.value)
                pool = pool_hint or self._locate(ip) or ""
                self._ip_pool[ip] = pool
                counts = self._in_use.get(pool)
                if counts is None:
                    counts = self._in_use[pool] = {Family.V4: 0, Family.V6: 0}
                counts[ip.family] += 1
                if h.key.sharing is not None:
                    self._sharing_ips.setdefault(h.key.sharing, set()).add(ip)

    def _replace(self, h: Holding) -> None:
        old = self._holdings[h.view.key]
        self._holdings[h.view.key] = h
        if old.key.sharing != h.key.sharing:
            # Kept under a new sharing key (only possible while alone on its addresses):
            # index them under the new key so others can join, and not under the old one.
            for ip in h.ips:
                if old.key.sharing is not None:
                    shared = self._sharing_ips.get(old.key.sharing)
                    if shared is not None:
                        shared.discard(ip)
                        if not shared:
                            del self._sharing_ips[old.key.sharing]
                if h.key.sharing is not None:
                    self._sharing_ips.setdefault(h.key.sharing, set()).add(ip)

    def _release(self, key: str) -> None:
        h = self._holdings.pop(key)
        for ip in h.ips:
            users = tuple(k for k in self._users[ip] if k != key)
            if users:
                self._users[ip] = users
                continue
            del self._users[ip]
            self._taken[ip.family].remove(ip.value)
            self._count(self._ip_pool.pop(ip), ip.family, -1)
            if h.key.sharing is not None:
                shared = self._sharing_ips.get(h.key.sharing)
                if shared is not None:
                    shared.discard(ip)
                    if not shared:
                        del self._sharing_ips[h.key.sharing]


def restore_order(views: Iterable[ServiceView]) -> list[ServiceView]:
    """Start-up order: Services that already have addresses first (oldest first), so
    nobody new can take an address that is already in use."""
    return sorted(views, key=lambda v: (not v.ingress, v.created, v.key))

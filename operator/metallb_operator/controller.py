"""The operator's shell: caches what the watches deliver, runs plans through a keyed
work queue, and writes them with optimistic concurrency. Decisions live in
`reconcile`/`allocator`/`status`; this module only moves data and handles API errors.

Start-up (`bootstrap`) lists pools, advertisements, namespaces and every Service, and
replays Services that already show an address *first*, so the allocation table equals
the cluster's before anything new is handed out: a restart changes zero addresses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from metallb_api import API_VERSION
from metallb_api.bgp import BGPConfig, build_bgp_config
from metallb_api.conditions import ConditionSpec, merge_conditions, now_rfc3339
from metallb_api.config import Config, Problem, build_config
from metallb_api.service import ServiceView, service_view
from metallb_kube.client import ApiError, KubeClient
from metallb_kube.events import EventRecorder, ObjectRef
from metallb_kube.informer import Informer
from metallb_kube.status import patch_status
from metallb_kube.supervise import Backoff, spawn
from metallb_operator.allocator import Allocator, restore_order
from metallb_operator.metrics import OperatorMetrics
from metallb_operator.reconcile import (
    WARNING,
    Outcome,
    ServicePlan,
    handles,
    plan_service,
    reserve_shown,
    stale_pool_annotation,
)
from metallb_operator.settings import OperatorSettings
from metallb_operator.status import l2adv_conditions, pool_conditions, pool_status
from metallb_operator.workqueue import WorkQueue

log = logging.getLogger("metallb.controller")
POOLS = "ipaddresspools"
L2ADVS = "l2advertisements"
# BGP mode's objects that decide which pools BGPAdvertisements announce (the pools'
# Advertised condition). Not BGPPeers/BFDProfiles: their only effect on that is an echo-mode
# BFD profile refusing an advertisement of IPv6 pools, and BGPPeers may carry passwords.
BGPADVS = "bgpadvertisements"
COMMUNITIES = "communities"
BGP_KINDS = (BGPADVS, COMMUNITIES)


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _ns(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("namespace", ""))


def _status_builder(base: dict[str, Any], wanted: list[ConditionSpec], generation: int,
                    now: str) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """Our status fields, and our conditions merged into the object's current ones
    (the speakers' AddressConflict is kept as it is)."""
    def build(current: Mapping[str, Any]) -> dict[str, Any]:
        return {**base, "conditions": merge_conditions(current.get("conditions") or [],
                                                       wanted, generation, now)}
    return build


def _svc_path(view: ServiceView) -> str:
    return f"/api/v1/namespaces/{view.namespace}/services/{view.name}"


class Controller:
    def __init__(self, settings: OperatorSettings, client: KubeClient,
                 recorder: EventRecorder, metrics: OperatorMetrics,
                 writable: asyncio.Event | None = None) -> None:
        self.settings = settings
        # Cleared while the Lease cannot be renewed: nothing is written, state is kept.
        self.writable = writable or asyncio.Event()
        if writable is None:
            self.writable.set()
        self.client = client
        self.recorder = recorder
        self.metrics = metrics
        self.allocator = Allocator()
        self.pools: dict[str, Mapping[str, Any]] = {}
        self.l2advs: dict[str, Mapping[str, Any]] = {}
        self.bgp_objs: dict[str, dict[str, Mapping[str, Any]]] = {k: {} for k in BGP_KINDS}
        self.bgp: BGPConfig = build_bgp_config(self.allocator.config)
        self._bgp_served: dict[str, bool] = {}
        self.services: dict[str, ServiceView] = {}
        self.queue = WorkQueue()
        self.synced = asyncio.Event()
        self._failed: dict[str, tuple[str, str]] = {}
        self._warned: dict[str, set[str]] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._moved: dict[str, tuple[int, list[str]]] = {}  # pool -> (generation, services)
        self._moving: dict[str, frozenset[str]] = {}  # service -> pools it is leaving
        # resourceVersions our own writes replaced: their watch events are older than
        # what we already hold, and acting on them would only cause 409s.
        self._superseded: dict[str, set[str]] = {}
        self._problems_reported: set[Problem] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._informer: Informer | None = None
        self._crd_path = f"/apis/{API_VERSION}/namespaces/{settings.namespace}"

    # -- start-up -----------------------------------------------------------------
    async def bootstrap(self) -> None:
        started = time.monotonic()
        self._replace_configuration(*await self._list_configuration())
        namespaces, _ = await self.client.list_all("/api/v1/namespaces")
        for ns in namespaces:
            labels = (ns.get("metadata") or {}).get("labels") or {}
            self.allocator.set_namespace_labels(_name(ns), labels)
        self._rebuild_config()
        # Services: our informer (kopf's per-object machinery is too heavy at 10k+). Its
        # first list comes back as one batch to _restore, before any watch event.
        self._informer = Informer(self.client, "/api/v1/services", name="services",
                                  on_list=self._restore, on_event=self.on_service_event,
                                  page=1000)
        self._tasks.append(spawn("services-informer", self._informer.run))
        await self._informer.synced.wait()
        self._mark_all_dirty()
        self.synced.set()
        self.metrics.synced.set(1)
        log.info("synced", extra={"event": "synced", "count": len(self.services),
                                  "seconds": round(time.monotonic() - started, 3),
                                  "reason": f"{len(self.queue)} Services need writes"})

    async def resync_configuration(self) -> None:
        """Pools and advertisements listed afresh (deletions missed while not watching
        included); waits while the CRDs are not served."""
        self._replace_configuration(*await self._list_configuration())
        self._rebuild_config()
        log.info("configuration listed again", extra={"event": "resynced",
                                                      "count": len(self.pools)})

    def _replace_configuration(self, pools: list[Any], advs: list[Any],
                               bgp: dict[str, list[Any]]) -> None:
        fresh = {_name(p): p for p in pools}
        for gone in self.pools.keys() - fresh.keys():
            self.metrics.forget_pool(gone)
        self.pools = fresh
        self.l2advs = {_name(a): a for a in advs}
        self.bgp_objs = {k: {_name(o): o for o in bgp.get(k, [])} for k in BGP_KINDS}

    async def _list_configuration(self) -> tuple[list[Any], list[Any], dict[str, list[Any]]]:
        """Pools and advertisements; waits, quietly, while their CRDs are not served
        (installed after us, or being replaced) or the API is away."""
        backoff = Backoff(0.5, 2.0)
        waiting = ""
        while True:
            try:
                pools, _ = await self.client.list_all(f"{self._crd_path}/{POOLS}")
                advs, _ = await self.client.list_all(f"{self._crd_path}/{L2ADVS}")
            except ApiError as exc:
                why = (f"the {API_VERSION} CRDs are not installed" if exc.not_found
                       else f"cannot list the configuration: {exc}")
                self.metrics.crds_missing.set(1 if exc.not_found else 0)
                if why != waiting:
                    waiting = why
                    log.warning("waiting for the configuration", extra={
                        "event": "crdMissing" if exc.not_found else "apiError",
                        "reason": why})
                await asyncio.sleep(backoff.next())
                continue
            self.metrics.crds_missing.set(0)
            if waiting:
                log.info("configuration available", extra={"event": "crdFound"})
            try:
                bgp = {k: await self._list_bgp(k) for k in BGP_KINDS}
            except ApiError as exc:
                log.warning("cannot list the BGP configuration", extra={
                    "event": "apiError", "reason": str(exc)})
                await asyncio.sleep(backoff.next())
                continue
            return pools, advs, bgp

    async def _list_bgp(self, plural: str) -> list[Any]:
        """BGP mode's kinds are optional: CRDs from before BGP mode lack them and layer 2
        works on (an empty list, said once; kopf does not watch a kind it did not find
        at its start, so CRDs added later count from kopf's next start)."""
        try:
            objs, _ = await self.client.list_all(f"{self._crd_path}/{plural}")
        except ApiError as exc:
            if not exc.not_found:
                raise
            if self._bgp_served.get(plural, True):
                log.warning("BGP kind not served: only L2Advertisements make pools "
                            "Advertised", extra={
                                "event": "bgpCrdMissing", "reason": f"{plural}.{API_VERSION} "
                                "is not installed (CRDs older than BGP mode?)"})
            self._bgp_served[plural] = False
            return []
        if self._bgp_served.get(plural) is False:
            log.info("BGP kind served", extra={"event": "bgpCrdFound", "reason": plural})
        self._bgp_served[plural] = True
        return objs

    def _restore(self, services: list[Mapping[str, Any]]) -> None:
        """Replay every Service in restore order: already-assigned ones first, so the
        table equals the cluster's before anything new is handed out."""
        views = [v for v in (service_view(s) for s in services)
                 if handles(v, self.settings.load_balancer_class) or stale_pool_annotation(v)]
        ordered = restore_order(views)
        for view in ordered:  # every shown address held before any request is judged
            reserve_shown(view, self.allocator, self.settings.load_balancer_class)
        for view in ordered:
            self.services[view.key] = view
            plan = plan_service(view, self.allocator, self.settings.load_balancer_class)
            if plan.status_differs(view) or plan.annotation_patch(view) or plan.events:
                self.queue.add(view.key)

    def start(self) -> None:
        for i in range(self.settings.workers):
            self._tasks.append(spawn(f"worker-{i}", self._worker))
        self._tasks.append(spawn("status-flusher", self._status_loop))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    # -- watch events (called by the kopf handlers) -------------------------------
    def on_service_event(self, kind: str | None, obj: Mapping[str, Any]) -> None:
        if kind != "DELETED" and self._seen(obj):
            return
        view = service_view(obj)
        key = view.key
        if kind == "DELETED":
            self._superseded.pop(key, None)
            if self.services.pop(key, None) is not None or self.allocator.holding(key):
                self.queue.add(key)
            return
        if not handles(view, self.settings.load_balancer_class) and not (
                self.allocator.holding(key) or stale_pool_annotation(view)):
            self.services.pop(key, None)
            return
        stale = self._superseded.get(key)
        if stale is not None:
            if view.resource_version in stale:
                return
            del self._superseded[key]
        self.services[key] = view
        self.queue.add(key)

    def _seen(self, obj: Mapping[str, Any]) -> bool:
        """A version we hold already (the echo of our own write, whose response we
        keep) or one our writes replaced: nothing to parse, nothing to do."""
        meta = obj.get("metadata") or {}
        rv = str(meta.get("resourceVersion", ""))
        key = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
        current = self.services.get(key)
        if rv and current is not None and current.resource_version == rv:
            self._superseded.pop(key, None)  # watch events come in order: none older
            return True
        return rv in self._superseded.get(key, ())

    def on_pool_event(self, kind: str | None, obj: Mapping[str, Any]) -> None:
        if _ns(obj) != self.settings.namespace:
            return
        name = _name(obj)
        if kind == "DELETED":
            self.pools.pop(name, None)
            self.metrics.forget_pool(name)
        else:
            old = self.pools.get(name)
            self.pools[name] = obj
            labels = (obj.get("metadata") or {}).get("labels")
            if old is not None and old.get("spec") == obj.get("spec") and (
                (old.get("metadata") or {}).get("labels") == labels
            ):
                return  # our own status write coming back
        self._rebuild_config()

    def on_l2adv_event(self, kind: str | None, obj: Mapping[str, Any]) -> None:
        if _ns(obj) != self.settings.namespace:
            return
        name = _name(obj)
        if kind == "DELETED":
            self.l2advs.pop(name, None)
        else:
            old = self.l2advs.get(name)
            self.l2advs[name] = obj
            if old is not None and old.get("spec") == obj.get("spec"):
                return
        self._rebuild_config()

    def on_bgp_event(self, plural: str, kind: str | None, obj: Mapping[str, Any]) -> None:
        """A BGPAdvertisement or Community: which pools are announced over BGP."""
        if _ns(obj) != self.settings.namespace:
            return
        objs = self.bgp_objs[plural]
        name = _name(obj)
        if kind == "DELETED":
            if objs.pop(name, None) is None:
                return
        else:
            old = objs.get(name)
            objs[name] = obj
            if old is not None and old.get("spec") == obj.get("spec"):
                return
        self._rebuild_bgp(self.allocator.config)
        self._dirty |= {(POOLS, n) for n in self.pools}

    def on_namespace_event(self, kind: str | None, obj: Mapping[str, Any]) -> None:
        labels = None if kind == "DELETED" else ((obj.get("metadata") or {}).get("labels") or {})
        for key in self.allocator.set_namespace_labels(_name(obj), labels):
            self.queue.add(key)
        self._retry_failed()

    # -- configuration --------------------------------------------------------------
    def _rebuild_config(self) -> None:
        config = build_config(self.pools.values(), self.l2advs.values())
        before = {k: self.allocator.pools_of(k) for k in self.allocator.holdings()}
        for key in self.allocator.set_config(config):
            self._moving[key] = before.get(key, frozenset())
            self.queue.add(key)
        self._retry_failed()
        for problem in config.problems:
            if problem not in self._problems_reported:
                self._problems_reported.add(problem)
                objs = self.pools if problem.kind == "IPAddressPool" else self.l2advs
                obj = objs.get(problem.name)
                if obj is not None:
                    self.recorder.warning(ObjectRef.of(obj, API_VERSION, problem.kind),
                                          str(problem.reason), problem.message)
                log.warning("configuration problem", extra={
                    "event": "configProblem", "pool": problem.name, "reason": problem.reason,
                    "error": problem.message})
        self._problems_reported &= set(config.problems)
        self._rebuild_bgp(config)
        self._mark_all_dirty()

    def _rebuild_bgp(self, config: Config) -> None:
        # Only the pools its accepted advertisements select are used (Advertised).
        self.bgp = build_bgp_config(
            config, advertisements=self.bgp_objs[BGPADVS].values(),
            communities=self.bgp_objs[COMMUNITIES].values())

    def _retry_failed(self) -> None:
        for key in list(self._failed):
            self.queue.add(key)

    def _mark_all_dirty(self) -> None:
        self._dirty |= {(POOLS, n) for n in self.pools} | {(L2ADVS, n) for n in self.l2advs}

    # -- the work loop ------------------------------------------------------------
    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                await self.writable.wait()
                await self._process(key)
            except ApiError as exc:
                self.metrics.api_errors.labels("write").inc()
                log.warning("API error, retrying", extra={"event": "apiError", "service": key,
                                                          "error": str(exc)})
                self.queue.add_after(key, 2.0 if exc.status == 0 else 1.0)
            except (TimeoutError, OSError) as exc:
                log.warning("API unreachable, retrying", extra={
                    "event": "apiError", "service": key, "error": str(exc)})
                self.queue.add_after(key, 2.0)
            except Exception:
                log.exception("reconcile failed", extra={"event": "reconcileError",
                                                         "service": key})
                self.queue.add_after(key, 5.0)
            finally:
                self.queue.done(key)
                self.metrics.queue_depth.set(len(self.queue))

    async def _process(self, key: str) -> None:
        view = self.services.get(key)
        if view is None:
            held = self.allocator.holding(key)
            if held is not None:
                pools = {self.allocator.pool_of(ip) for ip in held.ips}
                self.allocator.release(key)
                self._dirty |= {(POOLS, p) for p in pools if p}
                log.info("released", extra={"event": "released", "service": key,
                                            "ip": ",".join(str(i) for i in held.ips)})
                self._retry_failed()
            self._failed.pop(key, None)
            self._warned.pop(key, None)
            return
        plan = plan_service(view, self.allocator, self.settings.load_balancer_class)
        await self._execute(view, plan)

    async def _execute(self, view: ServiceView, plan: ServicePlan) -> None:
        rv = view.resource_version
        annotations = plan.annotation_patch(view)
        if plan.status_differs(view):
            assert plan.ingress is not None
            meta: dict[str, Any] = {"resourceVersion": rv}
            if annotations:
                # Services' /status keeps metadata changes (only spec is reset), so the
                # pool annotation rides along: one write per allocation, not two.
                meta["annotations"] = annotations
            body = {"metadata": meta, "status": {"loadBalancer": {"ingress": [
                {"ip": ip, "ipMode": "VIP"} for ip in plan.ingress]}}}
            fresh = await self._write(view, "/status", body)
            if fresh is None:
                return
            rv = fresh.resource_version
            annotations = plan.annotation_patch(fresh)  # None unless it was dropped
        if annotations:
            fresh = await self._write(view, "", {
                "metadata": {"resourceVersion": rv, "annotations": annotations}})
            if fresh is None:
                return
        self._record_outcome(view, plan)

    async def _write(self, view: ServiceView, sub: str, body: dict[str, Any]) -> ServiceView | None:
        """Merge-patch with resourceVersion; on 409 re-read and requeue (never ignore)."""
        try:
            obj = await self.client.merge_patch(_svc_path(view) + sub, body)
        except ApiError as exc:
            if exc.conflict:
                self.metrics.api_conflicts.inc()
                log.info("write conflict, re-reading", extra={
                    "event": "conflict", "service": view.key, "reason": sub or "metadata",
                    "error": exc.message})
                try:
                    latest = await self.client.get(_svc_path(view))
                except ApiError as get_exc:
                    if get_exc.not_found:
                        self.services.pop(view.key, None)
                        self.queue.add(view.key)
                        return None
                    raise
                self.services[view.key] = service_view(latest)
                self.queue.add(view.key)
                return None
            if exc.not_found:
                self.services.pop(view.key, None)
                self.queue.add(view.key)
                return None
            raise
        fresh = service_view(obj)
        self._superseded.setdefault(view.key, set()).add(str(body["metadata"]["resourceVersion"]))
        current = self.services.get(view.key)
        if current is not None and current.resource_version in self._superseded[view.key]:
            self.services[view.key] = fresh
        return fresh

    def _record_outcome(self, view: ServiceView, plan: ServicePlan) -> None:
        key = view.key
        ref = ObjectRef("v1", "Service", view.namespace, view.name, view.uid)
        warned = self._warned.setdefault(key, set())
        if plan.outcome is Outcome.FAILED:
            failure = next(((e.reason, e.message) for e in plan.events
                            if e.reason == "AllocationFailed"), ("", ""))
            repeat = self._failed.get(key) == failure
            self._failed[key] = failure
            if not repeat:
                self.metrics.failures.labels(plan.reason).inc()
                log.warning("allocation failed", extra={
                    "event": "allocationFailed", "service": key, "reason": plan.reason,
                    "error": failure[1]})
        else:
            repeat = False
            self._failed.pop(key, None)
        for ev in plan.events:
            if ev.reason == "deprecatedAnnotation":
                if ev.message in warned:
                    continue
                warned.add(ev.message)
            elif repeat:
                continue
            if ev.type == WARNING:
                self.recorder.warning(ref, ev.reason, ev.message)
            else:
                self.recorder.normal(ref, ev.reason, ev.message)
        if plan.outcome is Outcome.ALLOCATED:
            for pool in plan.pools:
                self.metrics.allocations.labels(pool).inc()
            log.info("allocated", extra={"event": "ipAllocated", "service": key,
                                         "pool": ",".join(sorted(plan.pools)),
                                         "ip": ",".join(plan.ingress or ())})
        leaving = self._moving.pop(key, frozenset())
        if plan.outcome in (Outcome.ALLOCATED, Outcome.FAILED) and plan.status_differs(view):
            # A pool edit moved or cleared it: the old pool's AssignmentsStable says so
            # (only if its addresses really changed: a failed move keeps them).
            for pool_name in leaving:
                pool_obj = self.pools.get(pool_name)
                if pool_obj is None:
                    continue
                gen = int((pool_obj.get("metadata") or {}).get("generation") or 0)
                moved = self._moved.get(pool_name)
                items = moved[1] if moved and moved[0] == gen else []
                items.append(f"{key} ({', '.join(view.ingress)})")
                self._moved[pool_name] = (gen, items)
                self.recorder.warning(ObjectRef.of(pool_obj, API_VERSION, "IPAddressPool"),
                                      "ServiceMoved",
                                      f"{key} lost {', '.join(view.ingress)} after this pool "
                                      f"changed")
        if view.ingress and plan.status_differs(view):
            self._retry_failed()  # it left addresses: a Service waiting for one may fit
        if plan.outcome in (Outcome.ALLOCATED, Outcome.RELEASED, Outcome.FAILED):
            self._dirty |= {(POOLS, p) for p in plan.pools} | {(POOLS, n) for n in self.pools}

    # -- pool / advertisement status ------------------------------------------------
    async def _status_loop(self) -> None:
        delay = self.settings.status_flush_interval
        while True:
            await asyncio.sleep(delay)
            await self.writable.wait()
            try:
                ok = await self.flush_status()
            except Exception:
                log.exception("status flush failed", extra={"event": "statusError"})
                ok = False
            # Back off while writes fail (e.g. RBAC forbids them): no log flood.
            delay = self.settings.status_flush_interval if ok else min(delay * 2, 30.0)

    async def flush_status(self) -> bool:
        """Write changed pool/advertisement statuses; False if any write failed."""
        dirty, self._dirty = self._dirty, set()
        ok = True
        if not dirty:
            return ok
        per_pool: dict[str, int] = {}
        for holding in self.allocator.holdings().values():
            for pool in {self.allocator.pool_of(ip) for ip in holding.ips}:
                if pool:
                    per_pool[pool] = per_pool.get(pool, 0) + 1
        config = self.allocator.config
        now = now_rfc3339()
        for plural, name in sorted(dirty):
            objs = self.pools if plural == POOLS else self.l2advs
            obj = objs.get(name)
            if obj is None:
                continue
            generation = int((obj.get("metadata") or {}).get("generation") or 0)
            if plural == POOLS:
                usage = self.allocator.usage(name)
                self.metrics.set_pool(name, usage, per_pool.get(name, 0))
                moved = self._moved.get(name)
                moved_msg = None
                if moved and moved[0] == generation:
                    moved_msg = (f"generation {generation} moved {len(moved[1])} Service(s): "
                                 + ", ".join(moved[1][:10]))
                base: dict[str, Any] = pool_status(usage)
                wanted = pool_conditions(config, name, moved_msg, bgp=self.bgp)
            else:
                base = {}
                wanted = l2adv_conditions(config, name)
            try:
                written = await patch_status(
                    self.client, f"{self._crd_path}/{plural}/{name}", obj,
                    _status_builder(base, wanted, generation, now))
                if name in objs:  # (deleted meanwhile: keep it deleted)
                    objs[name] = written  # the freshest copy: the next write starts here
            except ApiError as exc:
                if not exc.not_found:
                    ok = False
                    self._dirty.add((plural, name))
                    log.warning("status write failed", extra={"event": "statusError",
                                                              "pool": name, "error": str(exc)})
        return ok

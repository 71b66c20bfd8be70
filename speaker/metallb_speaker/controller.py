"""The speaker's shell on the main asyncio loop: Kubernetes inputs in, announcements
out. Decisions are `election.Election`'s; membership comes from the gossip thread via
`on_view` (called thread-safely). A change of membership, Nodes or configuration re-runs
the election for all Services; a change of Services or their EndpointSlices only for
those Services (coalesced into one run per loop iteration), so an event costs what it
touches, not the number of Services.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from metallb_api import API_VERSION
from metallb_api.addresses import IP, AddressError, parse_ip
from metallb_api.conditions import ConditionSpec, merge_conditions, now_rfc3339
from metallb_api.config import Config, build_config
from metallb_api.service import ALLOCATED_FROM_POOL, service_view
from metallb_kube.client import ApiError, KubeClient
from metallb_kube.events import EventRecorder, ObjectRef
from metallb_kube.informer import Informer, object_key
from metallb_kube.status import delete_if_present, patch_status, put_owned_status
from metallb_kube.supervise import fire, spawn
from metallb_speaker.announce import Announcer
from metallb_speaker.datapath import DataPathCheck
from metallb_speaker.dataplane.policy import ConflictEvent
from metallb_speaker.election import (
    Decision,
    Election,
    Inputs,
    NodeState,
    Reason,
    ServiceState,
    StaticKey,
    Takeover,
    known_pools,
    shares_ip,
    static_key,
)
from metallb_speaker.membership import Change, View
from metallb_speaker.metrics import SpeakerMetrics
from metallb_speaker.quiet import QuietTakeovers
from metallb_speaker.settings import SpeakerSettings

log = logging.getLogger("metallb.speaker")
SLICE_SERVICE_LABEL = "kubernetes.io/service-name"
QUIET_RECHECK = 0.5  # how often a quiet takeover re-checks the previous node's data path
SLOW_RECOMPUTE = 0.1  # a recompute of Kubernetes inputs this slow is logged (seconds)
# More ownership changes than this in one recompute are logged as one summary line per
# outcome (each Service's line at debug level): 5,000 lines after a node failure cost
# more than the election, and say less.
LOG_EACH = 20


@functools.lru_cache(maxsize=1 << 16)
def _ip(text: str) -> IP | None:
    try:
        return parse_ip(text)
    except AddressError:
        return None


STATUS_WRITERS = 4  # ServiceL2Status writes in flight (after a takeover of thousands)


def l2status_name(node: str, service_key: str) -> str:
    return "l2-" + hashlib.sha256(f"{node}/{service_key}".encode()).hexdigest()[:16]


def status_labels(node: str, service_key: str) -> dict[str, str]:
    """MetalLB's labels on a ServiceL2Status / ServiceBGPStatus."""
    ns, _, svc = service_key.partition("/")
    return {"metallb.io/node": node, "metallb.io/service-name": svc,
            "metallb.io/service-namespace": ns}


def node_state(obj: Mapping[str, Any]) -> NodeState:
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    conditions = status.get("conditions") or []
    unavailable = any(c.get("type") == "NetworkUnavailable" and c.get("status") == "True"
                      for c in conditions)
    address = next((str(a["address"]) for a in status.get("addresses") or []
                    if a.get("type") == "InternalIP" and a.get("address")), None)
    return NodeState(str(meta.get("name")), dict(meta.get("labels") or {}), unavailable,
                     address)


def slice_endpoints(obj: Mapping[str, Any]) -> tuple[frozenset[str], bool]:
    """(nodes with a serving endpoint, whether any endpoint serves). Serving as MetalLB
    reads it: `serving` when set, else `ready`, which unset means ready (per the API)."""
    nodes, serving = set(), False
    for ep in obj.get("endpoints") or []:
        cond = ep.get("conditions") or {}
        flag = cond.get("serving")
        if flag is None:
            flag = cond.get("ready")
        if flag is False:
            continue
        serving = True
        if ep.get("nodeName"):
            nodes.add(str(ep["nodeName"]))
    return frozenset(nodes), serving


class _StatusQueue:
    """ServiceL2Status writes to make: Service -> present. A Service queued again
    before its write is taken keeps its place and only its latest wish (a failover of
    thousands of Services queues each once, cheaply)."""

    def __init__(self) -> None:
        self._pending: dict[str, bool] = {}
        self._busy: set[str] = set()  # being written: several writers, one per Service
        self._ready = asyncio.Event()

    def put_nowait(self, item: tuple[str, bool]) -> None:
        self._pending[item[0]] = item[1]
        self._ready.set()

    async def get(self) -> tuple[str, bool]:
        """The oldest wish for a Service no other writer is busy with; call `done`."""
        while True:
            key = next((k for k in self._pending if k not in self._busy), None)
            if key is not None:
                self._busy.add(key)
                return key, self._pending.pop(key)
            self._ready.clear()
            await self._ready.wait()

    def done(self, key: str) -> None:
        self._busy.discard(key)
        if self._pending:
            self._ready.set()

    def qsize(self) -> int:
        return len(self._pending)


class SpeakerController:
    def __init__(self, settings: SpeakerSettings, client: KubeClient, recorder: EventRecorder,
                 metrics: SpeakerMetrics, announcer: Announcer) -> None:
        self.s = settings
        self.client = client
        self.recorder = recorder
        self.metrics = metrics
        self.announcer = announcer
        self.election = Election()
        self.nodes: dict[str, NodeState] = {}
        self.services: dict[str, ServiceState] = {}
        self._svc_refs: dict[str, ObjectRef] = {}
        # EndpointSlices: slice -> (its Service, serving nodes, any serving), and the
        # index Service -> its slices, so an event costs O(that Service's slices).
        self._slices: dict[str, tuple[str, frozenset[str], bool]] = {}
        self._slices_of: dict[str, set[str]] = {}
        # ServiceL2Statuses as watched: Service -> {object name: (its node, status)}
        self._l2_index: dict[str, dict[str, tuple[str, Mapping[str, Any]]]] = {}
        self._pools: dict[str, Mapping[str, Any]] = {}
        self._advs: dict[str, Mapping[str, Any]] = {}
        self.config: Config = build_config([], [])
        self.view = View(frozenset(), frozenset(), -1, joined=False)
        self.decisions: dict[str, Decision] = {}
        # What the next recompute must re-decide: Services whose inputs changed, or
        # everything (membership, Nodes, configuration).
        self._dirty: set[str] = set()
        self._full = True
        # Membership changed: re-decide the groups of equal decisions, not every Service.
        self._membership = False
        self.status_errors = 0  # ServiceL2Status writes that failed (and were retried)
        # The addresses we announce (what the announcer was last given), and how many
        # of our owned Services hold each one (a shared address may have several).
        self._owned: dict[IP, tuple[str, ...]] = {}
        self._holders: dict[IP, int] = {}
        self._rebuild_owned = False
        self._counts: Counter[Reason] = Counter()  # decisions by reason
        self._assigned_message = f'announcing from node "{settings.node_name}" with ' \
                                 f'protocol "layer2"'
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._informers: list[Informer] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._status_q = _StatusQueue()
        self.synced = asyncio.Event()
        self._seen_owned: set[str] = set()  # addresses any node announced before
        self._reassert = False
        self.peer_macs: dict[str, frozenset[str]] = {}
        self._conflicts: dict[str, set[str]] = {}  # ip -> foreign MACs
        # Quiet takeovers: address -> the node whose data path still carries its clients.
        self.datapath = DataPathCheck(settings.kube_proxy_healthz_port)
        self._departed: set[str] = set()  # speakers that left gracefully, not failed
        self._quiet: dict[IP, str] = {}
        self._quiet_check = asyncio.Event()
        self._quiet_rule = QuietTakeovers(recheck=QUIET_RECHECK)
        self._clock = time.monotonic
        # Other modes reading the same inputs (BGP): told (Service or everything) on
        # every change this controller schedules a recompute for.
        self.input_listeners: list[Callable[[str | None, bool], None]] = []

    # -- wiring -------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        ns = self.s.namespace
        crd = f"/apis/{API_VERSION}/namespaces/{ns}"
        self._informers = [
            Informer(self.client, "/api/v1/nodes", on_event=self._node_event, name="nodes"),
            Informer(self.client, "/api/v1/services", on_event=self._service_event,
                     name="services", page=1000),
            Informer(self.client, "/apis/discovery.k8s.io/v1/endpointslices",
                     on_event=self._slice_event, name="endpointslices", page=1000),
            Informer(self.client, f"{crd}/ipaddresspools", on_event=self._pool_event,
                     name="ipaddresspools"),
            Informer(self.client, f"{crd}/l2advertisements", on_event=self._adv_event,
                     name="l2advertisements"),
        ]
        # Every node's ServiceL2Statuses, indexed by Service: ours are written only
        # when they differ (one request, not a create + patch + list per write), one
        # removed while we still announce is written again, and a dead node's is
        # removed by the Service's new owner.
        self._informers.append(Informer(
            self.client, self._l2path, on_event=self._l2status_event, name="l2statuses"))
        for inf in self._informers:
            self._tasks.append(spawn(f"informer-{inf.name}", inf.run))
        await asyncio.gather(*(inf.synced.wait() for inf in self._informers))
        self.metrics.status_pending.set_function(self._status_q.qsize)
        self.metrics.node = self.s.node_name
        self.metrics.announced_source = self._announced
        for i in range(STATUS_WRITERS):
            self._tasks.append(spawn(f"l2status-writer-{i}", self._status_writer))
        self._tasks.append(spawn("quiet-takeovers", self._watch_quiet))
        self._clean_stale_statuses()
        self.synced.set()
        self.metrics.synced.set(1)
        self._schedule(full=True)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        await self.datapath.close()

    def on_view(self, view: View, changes: list[Change]) -> None:
        """Called from the gossip thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._apply_view, view, changes)

    def _apply_view(self, view: View, changes: list[Change]) -> None:
        old, self.view = self.view, view
        for c in changes:
            self.metrics.member_changes.labels(c.reason).inc()
            if c.reason == "left":
                self._departed.add(c.name)
            else:  # rejoined, or declared failed: no longer a graceful departure
                self._departed.discard(c.name)
            if c.name == self.s.node_name and c.reason == "refuted":
                # Others thought we were gone (stall, partition) and may have announced
                # our addresses meanwhile: claim them again on the wire and in the API.
                self._reassert = True
                # Cut off, our watches may be stalled without knowing it: resume them.
                for inf in self._informers:
                    inf.restart()
        self.metrics.members.labels("alive").set(len(view.alive))
        self.metrics.members.labels("ready").set(len(view.ready))
        if (view.alive, view.ready, view.joined) == (old.alive, old.ready, old.joined) \
                and not self._reassert:
            return  # e.g. a member suspected or cleared: the election's inputs are the same
        self._membership = True
        self._recompute("membership")  # failover path: no coalescing delay

    # -- watch events ---------------------------------------------------------------
    def _node_event(self, kind: str, obj: Mapping[str, Any]) -> None:
        name = str((obj.get("metadata") or {}).get("name"))
        if kind == "DELETED":
            self.nodes.pop(name, None)
        else:
            self.nodes[name] = node_state(obj)
        self._schedule(full=True)

    def _service_event(self, kind: str, obj: Mapping[str, Any]) -> None:
        key = object_key(obj)
        if kind == "DELETED":
            if self.services.pop(key, None) is not None:
                self._schedule(key)
            return
        view = service_view(obj)
        if not view.is_load_balancer or view.load_balancer_class != self.s.load_balancer_class \
                or not view.ingress:
            if self.services.pop(key, None) is not None:
                self._schedule(key)
            return
        old = self.services.get(key)
        for text in view.ingress:
            _ip(text)  # parsed here once, not on the failover path
        local = view.external_traffic_policy == "Local"
        nodes, serving = self._endpoints_of(key)
        state = ServiceState(key, view.ingress, view.annotations.get(ALLOCATED_FROM_POOL),
                             local, nodes, serving, view.labels, shares_ip(view.annotations))
        self._svc_refs[key] = ObjectRef("v1", "Service", view.namespace, view.name, view.uid)
        if state != old:
            self.services[key] = state
            self._schedule(key)

    def _endpoints_of(self, svc_key: str) -> tuple[frozenset[str], bool]:
        nodes: set[str] = set()
        serving = False
        for slice_key in self._slices_of.get(svc_key, ()):
            _, n, any_serving = self._slices[slice_key]
            nodes |= n
            serving = serving or any_serving
        return frozenset(nodes), serving

    def _slice_event(self, kind: str, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        svc = (meta.get("labels") or {}).get(SLICE_SERVICE_LABEL)
        key = object_key(obj)
        touched = set()
        before = self._slices.pop(key, None)
        if before is not None:
            touched.add(before[0])
            self._slices_of[before[0]].discard(key)
            if not self._slices_of[before[0]]:
                del self._slices_of[before[0]]
        if kind != "DELETED" and svc:
            svc_key = f"{meta.get('namespace')}/{svc}"
            self._slices[key] = (svc_key, *slice_endpoints(obj))
            self._slices_of.setdefault(svc_key, set()).add(key)
            touched.add(svc_key)
        for svc_key in touched:
            state = self.services.get(svc_key)
            if state is None:
                continue
            nodes, serving = self._endpoints_of(svc_key)
            if (nodes, serving) != (state.endpoint_nodes, state.has_endpoints):
                self.services[svc_key] = replace(state, endpoint_nodes=nodes,
                                                 has_endpoints=serving)
                self._schedule(svc_key)

    def _l2status_event(self, kind: str, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        ns, svc = labels.get("metallb.io/service-namespace"), labels.get("metallb.io/service-name")
        key, name = f"{ns}/{svc}", str(meta.get("name"))
        node = str(labels.get("metallb.io/node") or "")
        held = self._l2_index.setdefault(key, {})
        if kind != "DELETED":
            held[name] = (node, obj.get("status") or {})
            return
        held.pop(name, None)
        if not held:
            del self._l2_index[key]
        d = self.decisions.get(key)
        if node == self.s.node_name and d is not None and d.reason is Reason.OWNER:
            self._status_q.put_nowait((key, True))

    def _pool_event(self, kind: str, obj: Mapping[str, Any]) -> None:
        self._crd_event(self._pools, kind, obj)

    def _adv_event(self, kind: str, obj: Mapping[str, Any]) -> None:
        self._crd_event(self._advs, kind, obj)

    def _crd_event(self, store: dict[str, Mapping[str, Any]], kind: str,
                   obj: Mapping[str, Any]) -> None:
        name = str((obj.get("metadata") or {}).get("name"))
        old = store.get(name)
        if kind == "DELETED":
            store.pop(name, None)
        else:
            store[name] = obj
            if old is not None and old.get("spec") == obj.get("spec") and \
                    (old.get("metadata") or {}).get("labels") == \
                    (obj.get("metadata") or {}).get("labels"):
                return  # a status-only update
        self.config = build_config(self._pools.values(), self._advs.values())
        self._schedule(full=True)

    # -- election -----------------------------------------------------------------
    def _schedule(self, service: str | None = None, full: bool = False) -> None:
        """Re-decide `service` (or everything) soon: once per loop iteration."""
        for listener in self.input_listeners:
            listener(service, full)
        if full:
            self._full = True
        elif service is not None:
            self._dirty.add(service)
        if not self._scheduled and self._loop is not None and self.synced.is_set():
            self._scheduled = True
            self._loop.call_soon(self._recompute)

    def _recompute(self, trigger: str = "inputs") -> None:
        """Re-run the election; timed (`metallb_speaker_recompute_seconds`), and logged
        (`recomputed`) after a membership change or when slow."""
        started, cpu = time.perf_counter(), time.thread_time()
        # No collector pass inside: after a failure thousands of Decisions are made and
        # a full pass over what was built since start-up (statuses, their index) costs
        # tens of ms; it runs right after, once the addresses are announced.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._recompute_now()
        finally:
            if collecting:
                gc.enable()
        took = time.perf_counter() - started
        self.metrics.recompute.labels(trigger).observe(took)
        self.metrics.recompute_cpu.labels(trigger).observe(time.thread_time() - cpu)
        if trigger == "membership" or took >= SLOW_RECOMPUTE:
            log.info("recomputed", extra={"event": "recomputed", "reason": trigger,
                                          "seconds": round(took, 5),
                                          "count": len(self.services)})

    def _recompute_now(self) -> None:
        self._scheduled = False
        if not self.synced.is_set():
            return
        assert self._loop is not None
        me = self.s.node_name
        if not self.view.joined:
            self.announcer.set_owned({})
            self._owned, self._holders = {}, {}
            self._full = True  # joining decides everything again
            self._rebuild_owned = True  # and announces what is still ours
            return
        inp = Inputs(self.nodes, self.view.alive, self.view.ready, self.config,
                     self.s.honor_exclude_label)
        old_decisions: Mapping[str, Decision]
        incremental = False
        membership, self._membership = self._membership, False
        if self._full or self._reassert or (membership and not self.election.grouped(inp)):
            self._full = False
            self._dirty.clear()
            decisions = self.election.decide_all(me, self.services, inp, self.decisions,
                                                 complete=True)
            old_decisions = self.decisions
            gone = [k for k in old_decisions if k not in decisions]
            self.decisions = decisions
        else:  # only Services whose inputs changed: no work for the others
            # After a membership change, first the Services whose decision it changed
            # (once per group of equal decisions); then those with new inputs, which
            # join their groups as decided with the new membership.
            decisions = self.election.redecide(me, inp) if membership else {}
            dirty, self._dirty = self._dirty, set()
            decisions.update(self.election.decide_all(
                me, {k: self.services[k] for k in dirty if k in self.services}, inp,
                self.decisions))
            # Read as the previous round's until the hand-off below is done, then updated
            # (no copy of thousands of entries on the failover path).
            old_decisions, incremental = self.decisions, True
            gone = [k for k in dirty if k in old_decisions and k not in self.services]
            for key in gone:
                self.election.forget(key)
                decisions.pop(key, None)
        takeovers: dict[tuple[str | None, StaticKey], Takeover] = {}
        known = known_pools(self.config)
        modes: Counter[Takeover] = Counter()
        probe: set[IP] = set()
        quiet: set[IP] = set()
        departed = frozenset(self._departed)
        changes: list[tuple[str, Decision | None, Decision | None, Takeover | None]] = []
        owned_changed = False
        # Thousands of iterations after a failover: attribute look-ups hoisted.
        seen, holders, owned, services = self._seen_owned, self._holders, self._owned, \
            self.services
        owner_reason, quiet_mode = Reason.OWNER, Takeover.QUIET
        for key, d in decisions.items():
            old = old_decisions.get(key)
            if old is d:
                continue  # the common case after a membership change: nothing to do
            if old is not None and old.owner == d.owner and old.reason is d.reason \
                    and old.ips == d.ips and old.interfaces == d.interfaces:
                continue  # the common case after a membership change: nothing to do
            mode: Takeover | None = None
            if old is not None and old.reason is owner_reason:
                owned_changed |= self._release(key, old)
            if d.reason is owner_reason:
                if old is None or old.reason is not owner_reason:
                    svc = services[key]
                    # The verdict depends on the previous node and the static filters only
                    tk = (old.owner if old else None, static_key(svc, known))
                    mode = takeovers.get(tk)
                    if mode is None:
                        mode = self.election.takeover(me, tk[0], svc, inp, departed)
                        if mode is quiet_mode and not self.datapath.enabled:
                            mode = Takeover.FAILED  # no way to tell it still forwards
                        takeovers[tk] = mode
                    modes[mode] += 1
                for text in d.ips:
                    ip = _ip(text)
                    if ip is None:
                        continue
                    holders[ip] = holders.get(ip, 0) + 1
                    owned[ip] = d.interfaces
                    owned_changed = True
                    if text not in seen:
                        # Nobody announced it before (a new allocation, or a cold start):
                        # probe for a foreign user first. Failovers skip this: no delay.
                        seen.add(text)
                        probe.add(ip)
                    elif mode is quiet_mode and old and old.owner:
                        quiet.add(ip)
                        self._quiet[ip] = old.owner
            elif d.owner:
                seen.update(d.ips)  # announced by another node: not new when it comes here
            if old is None or old.reason is not d.reason or old.owner != d.owner:
                changes.append((key, old, d, mode))
        for key in gone:
            old = old_decisions[key]
            owned_changed |= self._release(key, old)
            changes.append((key, old, None, None))
        if incremental:  # the previous round's decisions are read no more: update them
            self.decisions.update(decisions)
            for key in gone:
                del self.decisions[key]
        if self._rebuild_owned:  # back from not being joined: what is ours, again
            self._rebuild_owned = False
            self._owned, self._holders = {}, {}
            for d in self.decisions.values():
                if d.reason is Reason.OWNER:
                    for ip in filter(None, map(_ip, d.ips)):
                        self._holders[ip] = self._holders.get(ip, 0) + 1
                        self._owned[ip] = d.interfaces
            owned_changed = True
        # A quiet takeover ends when the address is gone. When the node still carrying
        # its clients is declared dead, check its data path at once: a speaker that
        # was starved or restarting is declared dead too, while its node forwards.
        for ip, node in list(self._quiet.items()):
            if ip not in self._owned:
                del self._quiet[ip]
            elif node not in inp.live and node not in departed:
                self._quiet_check.set()
        if owned_changed or probe or quiet:
            self.announcer.set_owned(self._owned, frozenset(probe), frozenset(quiet))
        if quiet:
            self._quiet_check.set()  # check that node's data path now, not in a second
        if self._reassert:
            self._reassert = False
            self._quiet.clear()
            self.announcer.reannounce()
            for key, d in decisions.items():
                if d.reason is Reason.OWNER:
                    self._status_q.put_nowait((key, True))
        if changes or modes:
            # The addresses are on the wire (or off it) now; the paperwork (Events,
            # ServiceL2Status writes, metrics, logs) runs next, out of the failover's path.
            self._loop.call_soon(self._paperwork, changes, modes)

    def _paperwork(self, changes: list[tuple[str, Decision | None, Decision | None,
                                             Takeover | None]],
                   modes: Counter[Takeover]) -> None:
        for mode, count in modes.items():
            self.metrics.takeovers.labels(str(mode)).inc(count)
        if changes:
            for _, old, new, _ in changes:
                if old is not None:
                    self._counts[old.reason] -= 1
                if new is not None:
                    self._counts[new.reason] += 1
            for reason in Reason:
                self.metrics.decisions.labels(str(reason)).set(self._counts[reason])
            self._log_changes(changes)
        for key, old, new, _ in changes:
            self._changed(key, old, new)

    def _release(self, key: str, old: Decision | None) -> bool:
        """`key` no longer holds the addresses of its previous decision (unless
        another Service holding one still owns it). True if an owned address went."""
        if old is None or old.reason is not Reason.OWNER:
            return False
        went = False
        for text in old.ips:
            ip = _ip(text)
            if ip is None or ip not in self._holders:
                continue
            if self._holders[ip] > 1:
                self._holders[ip] -= 1
            else:
                del self._holders[ip]
                self._owned.pop(ip, None)
                went = True
        return went

    def _log_changes(self, changes: list[tuple[str, Decision | None, Decision | None,
                                               Takeover | None]]) -> None:
        each = len(changes) <= LOG_EACH
        if not each and not log.isEnabledFor(logging.DEBUG):
            elections = Counter((new.reason, new.owner) for _, _, new, _ in changes
                                if new is not None)
            takeovers = Counter((mode, old.owner if old else None)
                                for _, old, _, mode in changes
                                if mode is not None and mode is not Takeover.FIRST)
            summary = sorted([("elections", str(r), n or "", c)
                              for (r, n), c in elections.items()]
                             + [("takeovers", str(m), n or "", c)
                                for (m, n), c in takeovers.items()])
            for event, reason, node, count in summary:
                log.info(event, extra={"event": event, "reason": reason, "node": node,
                                       "count": count})
            return
        emit = log.info if each else log.debug
        for key, old, new, mode in changes:
            if mode is not None and mode is not Takeover.FIRST and new is not None:
                emit("takeover", extra={"event": "takeover", "service": key,
                                        "reason": str(mode), "node": old.owner if old
                                        and old.owner else "", "ip": ",".join(new.ips)})
            if new is not None:
                emit("election", extra={"event": "election", "service": key,
                                        "reason": str(new.reason), "node": new.owner or "",
                                        "ip": ",".join(new.ips)})

    def _changed(self, key: str, old: Decision | None, new: Decision | None) -> None:
        was_owner = old is not None and old.reason is Reason.OWNER
        is_owner = new is not None and new.reason is Reason.OWNER
        if is_owner and not was_owner:
            ref = self._svc_refs.get(key)
            if ref is not None:
                self.recorder.normal(ref, "nodeAssigned", self._assigned_message)
            self._status_q.put_nowait((key, True))
        elif was_owner and not is_owner:
            self._status_q.put_nowait((key, False))

    def service_ref(self, key: str) -> ObjectRef | None:
        return self._svc_refs.get(key)

    def _announced(self) -> list[tuple[str, str]]:
        """(Service, address) this node announces, for `metallb_speaker_announced`."""
        return [(key, ip) for key, d in self.decisions.items() if d.reason is Reason.OWNER
                for ip in d.ips]

    # -- quiet takeovers ------------------------------------------------------------
    async def _watch_quiet(self) -> None:
        """Every QUIET_RECHECK (sooner while a node is silent, and at once after a quiet
        takeover): does the node that still carries the clients of a quietly taken-over
        address forward? If not (quiet.py's rule), announce it."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._quiet_check.wait(),
                                       self._quiet_rule.next_check())
            self._quiet_check.clear()
            try:
                nodes = sorted(set(self._quiet.values()))
                self._quiet_rule.keep_only(set(nodes))
                verdicts = await asyncio.gather(*(
                    self.datapath.check((self.nodes.get(n) or NodeState(n)).address)
                    for n in nodes))
                now = self._clock()
                for node, seen in zip(nodes, verdicts, strict=True):
                    # Silent and declared dead by the other speakers: two witnesses.
                    dead = node not in self.view.alive and node not in self._departed
                    why = self._quiet_rule.observe(
                        node, replace(seen, definitive=True) if seen.down and dead else seen,
                        now)
                    if why is not None:
                        self._announce_loudly(node, why)
            except Exception:  # one failed round must not end the watch
                log.exception("quiet takeover check failed", extra={"event": "quietCheck"})

    def _announce_loudly(self, node: str, why: str) -> None:
        ips = frozenset(ip for ip, n in self._quiet.items() if n == node)
        if not ips:
            return
        for ip in ips:
            del self._quiet[ip]
        self.announcer.announce(ips)
        self.metrics.quiet_ended.inc(len(ips))
        log.info("announcing: the previous owner stopped forwarding", extra={
            "event": "quietEnded", "node": node, "reason": why,
            "ip": ",".join(sorted(str(i) for i in ips))})

    # -- ServiceL2Status ------------------------------------------------------------
    @property
    def _l2path(self) -> str:
        return f"/apis/{API_VERSION}/namespaces/{self.s.namespace}/servicel2statuses"

    async def _status_writer(self) -> None:
        while True:
            key, present = await self._status_q.get()
            try:
                await self._write_status(key, present)
            except ApiError as exc:
                self.status_errors += 1  # metallb_k8s_client_update_errors_total
                log.warning("ServiceL2Status write failed", extra={
                    "event": "l2StatusError", "service": key, "error": str(exc)})
                await asyncio.sleep(1.0)
                still = self.decisions.get(key)
                if (still is not None and still.reason is Reason.OWNER) == present:
                    self._status_q.put_nowait((key, present))
            finally:
                self._status_q.done(key)

    async def _write_status(self, key: str, present: bool) -> None:
        name = l2status_name(self.s.node_name, key)
        path = f"{self._l2path}/{name}"
        held = self._l2_index.get(key, {})
        if not present:
            # Always asked: the watch may not have shown our own create yet.
            await delete_if_present(self.client, path)
            return
        ns, _, svc = key.partition("/")
        interfaces: set[str] = set()
        d = self.decisions.get(key)
        for text in d.ips if d else ():
            try:
                interfaces |= set(self.announcer.interfaces_for(parse_ip(text)))
            except AddressError:
                continue
        wanted = {"node": self.s.node_name, "serviceName": svc, "serviceNamespace": ns,
                  "interfaces": [{"name": i} for i in sorted(interfaces)]}
        await put_owned_status(
            self.client, self._l2path, API_VERSION, "ServiceL2Status", name,
            status_labels(self.s.node_name, key), wanted,
            held[name][1] if name in held else None)
        # A node that died could not remove its status: the new owner does, so
        # `kubectl get servicel2statuses` shows who really announces.
        for other, (node, _) in list(held.items()):
            if node and node != self.s.node_name and node not in self.view.alive:
                with contextlib.suppress(ApiError):
                    await self.client.delete(f"{self._l2path}/{other}")

    def _clean_stale_statuses(self) -> None:
        """Statuses this node left behind in a previous life (crash) are removed; the
        first recompute wants back those it still announces (the queue keeps the
        latest wish). The synced l2statuses informer has listed them all already."""
        me = self.s.node_name
        for key, held in self._l2_index.items():
            if any(node == me for node, _ in held.values()):
                self._status_q.put_nowait((key, False))

    # -- peers and conflicts --------------------------------------------------------
    def on_peer_macs(self, node: str, macs: frozenset[str]) -> None:
        self.peer_macs[node] = macs
        known = frozenset().union(*self.peer_macs.values()) if self.peer_macs else frozenset()
        setattr(self.announcer, "known_macs", known)  # noqa: B010 - only the data plane has it

    def on_conflict(self, ev: ConflictEvent) -> None:
        """Called from the data plane thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._conflict, ev)

    def _conflict(self, ev: ConflictEvent) -> None:
        macs = self._conflicts.setdefault(ev.ip, set())
        if ev.started:
            macs.add(ev.mac)
        else:
            macs.discard(ev.mac)
        for key, svc in self.services.items():
            if ev.ip in svc.ips and (ref := self._svc_refs.get(key)) is not None:
                if ev.started:
                    self.recorder.warning(ref, "IPConflict",
                                          f"{ev.ip} is also claimed by MAC {ev.mac} on "
                                          f"{ev.interface} (seen by node {self.s.node_name}); "
                                          f"another host uses this load-balancer address")
                pool = self._pool_name(svc)
                if pool is not None:
                    fire(f"conflict-condition-{pool}", self._pool_condition(pool))

    def _pool_name(self, svc: ServiceState) -> str | None:
        from metallb_speaker.election import pool_of

        return pool_of(svc, self.config)

    async def _pool_condition(self, pool: str) -> None:
        """Condition `AddressConflict` on the pool (the operator keeps foreign condition
        types when it writes its own)."""
        obj = self._pools.get(pool)
        if obj is None:
            return
        ranges = self.config.held_ranges.get(pool, ())
        mine = sorted(f"{ip} (MAC {', '.join(sorted(m))})" for ip, m in self._conflicts.items()
                      if m and any(r.contains(parse_ip(ip)) for r in ranges))
        spec = ConditionSpec(
            "AddressConflict", bool(mine), "IPConflict" if mine else "NoConflict",
            ("claimed by another host: " + "; ".join(mine)) if mine
            else "no foreign host claims these addresses")
        generation = int((obj.get("metadata") or {}).get("generation") or 0)
        now = now_rfc3339()

        def build(current: Mapping[str, Any]) -> dict[str, Any]:
            return {"conditions": merge_conditions(current.get("conditions") or [], [spec],
                                                   generation, now)}

        path = f"/apis/{API_VERSION}/namespaces/{self.s.namespace}/ipaddresspools/{pool}"
        try:
            written = await patch_status(self.client, path, obj, build)
            if pool in self._pools:  # (deleted meanwhile: keep it deleted)
                self._pools[pool] = written
        except ApiError as exc:
            log.warning("pool conflict condition not written", extra={
                "event": "conflictConditionError", "pool": pool, "error": str(exc)})

    async def withdraw_all(self) -> None:
        """Graceful shutdown: stop announcing and remove our statuses."""
        self.announcer.set_owned({})
        for key, d in self.decisions.items():
            if d.reason is Reason.OWNER:
                with contextlib.suppress(ApiError):
                    await self._write_status(key, False)

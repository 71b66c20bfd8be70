"""BGP mode's shell on the speaker's asyncio loop.

Inputs: the BGP objects (BGPPeer v1beta2, BGPAdvertisement, BFDProfile, Community),
the Secrets peers take passwords from, and - shared with layer 2, read from its
`SpeakerController` - Services, their endpoints, Nodes and the pools. Every change
re-decides (`announce.decide`) the Services it touches (everything after a change of
configuration or Nodes), renders frr.conf (`frr.render`) and hands it to the
`FRRApplier`, which pushes the difference. Outputs besides FRR: one ServiceBGPStatus
per announced Service (node, service, peers: MetalLB's), a `nodeAssigned` Event when
this node starts announcing a Service, MetalLB's BGP and BFD metrics read from FRR, and
one BGPSessionState per peer selecting this node (bgp/sessions.py), refreshed after
every FRR probe that changed something, with Events when a session goes up or down or
FRR is lost.

Layer 2 is untouched: a pool may have both an L2Advertisement and a BGPAdvertisement,
and each mode decides on its own.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import ipaddress
import logging
import time
from collections.abc import Mapping
from typing import Any

from metallb_api import API_VERSION, GROUP
from metallb_api.bgp import BGPConfig, build_bgp_config
from metallb_api.conditions import now_rfc3339
from metallb_api.config import Config
from metallb_kube.client import ApiError, KubeClient
from metallb_kube.events import EventRecorder, ObjectRef
from metallb_kube.informer import Informer
from metallb_kube.status import delete_if_present, put_owned_status
from metallb_kube.supervise import spawn
from metallb_speaker.bgp import sessions as session_model
from metallb_speaker.bgp.announce import BGPDecision, BGPReason, announcement, decide
from metallb_speaker.bgp.sessions import (
    FRRView,
    SessionState,
    Transition,
    same,
    session_states,
    transition,
)
from metallb_speaker.controller import SpeakerController, _StatusQueue, status_labels
from metallb_speaker.election import NodeState
from metallb_speaker.frr.apply import FRRApplier, FRRStatus
from metallb_speaker.frr.render import render
from metallb_speaker.settings import SpeakerSettings

log = logging.getLogger("metallb.speaker.bgp")
STATUS_WRITERS = 4
COALESCE = 0.05  # seconds: a burst of Service events is one recompute, one render
# A render of 10,000 prefixes takes ~0.1 s of the loop layer 2's failovers also run on:
# the next one waits at least twice as long as the last took (at most a third of the
# loop goes to BGP under a stream of Service events), capped.
COALESCE_MAX = 1.0
PEER_VERSION = f"{GROUP}/v1beta2"


def bgpstatus_name(node: str, service_key: str) -> str:
    return "bgp-" + hashlib.sha256(f"{node}/{service_key}".encode()).hexdigest()[:16]


def ipv4_or_empty(address: str | None) -> str:
    """A router ID is an IPv4 address: the node's, if it has one (an IPv6-only node
    leaves it to FRR, or to the peers' routerID)."""
    try:
        return str(ipaddress.IPv4Address(address or ""))
    except ValueError:
        return ""


def secret_password(obj: Mapping[str, Any]) -> str | None:
    """The password of a basic-auth Secret (MetalLB reads `data.password`)."""
    raw = (obj.get("data") or {}).get("password")
    if not raw:
        return None
    try:
        return base64.b64decode(raw).decode()
    except (ValueError, UnicodeDecodeError):
        return None


class BGPController:
    def __init__(self, settings: SpeakerSettings, client: KubeClient, recorder: EventRecorder,
                 l2: SpeakerController, applier: FRRApplier) -> None:
        self.s = settings
        self.client = client
        self.recorder = recorder
        self.l2 = l2
        self.applier = applier
        self._objs: dict[str, dict[str, Mapping[str, Any]]] = {
            k: {} for k in ("bgppeers", "bgpadvertisements", "bfdprofiles", "communities")}
        self._secrets: dict[str, Mapping[str, Any]] = {}
        self._built_from: Config | None = None
        self.config: BGPConfig = build_bgp_config(l2.config)
        self.passwords: dict[str, str] = {}
        self.decisions: dict[str, BGPDecision] = {}
        self._statuses: dict[str, Mapping[str, Any]] = {}  # our ServiceBGPStatus by Service
        self._dirty: set[str] = set()
        self._full = True
        self._scheduled = False
        self._delay = COALESCE
        self._withdrawn = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._informers: list[Informer] = []
        self._session_informer: Informer | None = None  # set by start()
        self._tasks: list[asyncio.Task[Any]] = []
        self._status_q = _StatusQueue()
        self.status_errors = 0
        # BGPSessionState: wanted (by object name), ours as watched, as last written,
        # Events waiting for the write (they name the object's uid).
        self.sessions: dict[str, SessionState] = {}
        self._session_objs: dict[str, Mapping[str, Any]] = {}
        self._session_written: dict[str, SessionState] = {}
        self._session_events: dict[str, Transition] = {}
        self._session_q = _StatusQueue()
        self._decided = False  # a first recompute built the BGP configuration
        self.synced = asyncio.Event()
        self._message = f'announcing from node "{settings.node_name}" with protocol "bgp"'

    # -- wiring -------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        ns = self.s.namespace
        base = f"/apis/{API_VERSION}/namespaces/{ns}"
        self._informers = [
            Informer(self.client, f"/apis/{PEER_VERSION}/namespaces/{ns}/bgppeers",
                     on_event=self._crd("bgppeers"), name="bgppeers"),
            Informer(self.client, f"{base}/bgpadvertisements",
                     on_event=self._crd("bgpadvertisements"), name="bgpadvertisements"),
            Informer(self.client, f"{base}/bfdprofiles", on_event=self._crd("bfdprofiles"),
                     name="bfdprofiles"),
            Informer(self.client, f"{base}/communities", on_event=self._crd("communities"),
                     name="communities"),
            Informer(self.client, f"/api/v1/namespaces/{ns}/secrets",
                     on_event=self._secret_event, name="secrets"),
            Informer(self.client, self._status_path, on_event=self._status_event,
                     name="bgpstatuses", label_selector=f"metallb.io/node={self.s.node_name}"),
        ]
        # Not waited for: a CRD set without BGPSessionState (older metallb-py CRDs) must
        # not keep BGP mode from starting; the states are written once it is there.
        self._session_informer = Informer(
            self.client, self._session_path, on_event=self._session_event,
            on_list=self._session_list, name="bgpsessionstates",
            label_selector=f"metallb.io/node={self.s.node_name}")
        for inf in self._informers:
            self._tasks.append(spawn(f"informer-{inf.name}", inf.run))
        await asyncio.gather(*(inf.synced.wait() for inf in self._informers))
        self._tasks.append(spawn("frr", self.applier.run))
        for i in range(STATUS_WRITERS):
            self._tasks.append(spawn(f"bgpstatus-writer-{i}", self._status_writer))
        self._tasks.append(spawn("informer-bgpsessionstates", self._session_informer.run))
        self._tasks.append(spawn("bgpsessionstate-writer", self._session_writer))
        self.applier.on_change = self._refresh_sessions
        self.l2.input_listeners.append(self._inputs_changed)
        # Statuses of a previous life: removed unless the first recompute wants them.
        for key in self._statuses:
            self._status_q.put_nowait((key, False))
        self.synced.set()
        self._schedule(full=True)

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.l2.input_listeners.remove(self._inputs_changed)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()

    def _inputs_changed(self, service: str | None, full: bool) -> None:
        self._schedule(service, full)

    # -- events ---------------------------------------------------------------------
    def _crd(self, kind: str) -> Any:
        store = self._objs[kind]

        def on_event(event: str, obj: Mapping[str, Any]) -> None:
            name = str((obj.get("metadata") or {}).get("name"))
            old = store.get(name)
            if event == "DELETED":
                store.pop(name, None)
            else:
                store[name] = obj
                if old is not None and old.get("spec") == obj.get("spec"):
                    return  # status-only
            self._built_from = None
            self._schedule(full=True)

        return on_event

    def _secret_event(self, event: str, obj: Mapping[str, Any]) -> None:
        name = str((obj.get("metadata") or {}).get("name"))
        if event == "DELETED":
            self._secrets.pop(name, None)
        else:
            self._secrets[name] = obj
        if any(p.password_secret == name for p in self.config.peers.values()):
            self._schedule(full=True)

    def _status_event(self, event: str, obj: Mapping[str, Any]) -> None:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        key = (f"{labels.get('metallb.io/service-namespace')}/"
               f"{labels.get('metallb.io/service-name')}")
        if event == "DELETED":
            self._statuses.pop(key, None)
            d = self.decisions.get(key)
            if d is not None and d.announced and not self._withdrawn:
                self._status_q.put_nowait((key, True))  # removed by someone: write it again
        else:
            self._statuses[key] = obj

    # -- decisions --------------------------------------------------------------------
    def _schedule(self, service: str | None = None, full: bool = False) -> None:
        if full:
            self._full = True
        elif service is not None:
            self._dirty.add(service)
        if not self._scheduled and self._loop is not None and self.synced.is_set():
            self._scheduled = True
            self._loop.call_later(self._delay, self._recompute)

    def _node(self) -> NodeState:
        return self.l2.nodes.get(self.s.node_name) or NodeState(self.s.node_name)

    def _recompute(self) -> None:
        self._scheduled = False
        if self._withdrawn:
            return
        started = time.perf_counter()
        try:
            self._recompute_now()
        finally:
            took = time.perf_counter() - started
            self._delay = min(COALESCE_MAX, max(COALESCE, 2 * took))

    def _recompute_now(self) -> None:
        if self._built_from is not self.l2.config:
            self._built_from = self.l2.config
            self.config = build_bgp_config(self.l2.config, *(
                self._objs[k].values() for k in
                ("bgppeers", "bgpadvertisements", "bfdprofiles", "communities")))
            self._full = True
        self.passwords = {}
        for p in self.config.peers.values():
            if p.password_secret:
                pw = secret_password(self._secrets.get(p.password_secret) or {})
                if pw is not None:
                    self.passwords[p.name] = pw
        node = self._node()
        services = self.l2.services
        keys = set(services) | set(self.decisions) if self._full else set(self._dirty)
        self._full = False
        self._dirty.clear()
        for key in keys:
            old = self.decisions.get(key)
            svc = services.get(key)
            new = decide(self.config, self.l2.config, node, svc,
                         honor_exclude_label=self.s.honor_exclude_label) \
                if svc is not None else None
            if new is None:
                self.decisions.pop(key, None)
            else:
                self.decisions[key] = new
            self._changed(key, old, new)
        self._push(node)
        self._decided = True
        self._refresh_sessions()

    def _push(self, node: NodeState) -> None:
        advertised = [] if self._withdrawn else announcement(self.decisions.values())
        self.applier.want(render(self.config, self.s.node_name, node.labels, advertised,
                                 passwords=self.passwords,
                                 node_router_id=ipv4_or_empty(node.address)))

    def _changed(self, key: str, old: BGPDecision | None, new: BGPDecision | None) -> None:
        was = old is not None and old.announced
        now = new is not None and new.announced
        if now and not was:
            ref = self.l2.service_ref(key)
            if ref is not None:
                self.recorder.normal(ref, "nodeAssigned", self._message)
            log.info("announcing over BGP", extra={
                "event": "bgpAnnounced", "service": key,
                "peer": ",".join(sorted(new.peers)) if new else ""})
        elif was and not now:
            log.info("not announcing over BGP", extra={
                "event": "bgpWithdrawn", "service": key,
                "reason": str(new.reason) if new else "serviceDeleted"})
        if (now or was) and (old is None or new is None or old.peers != new.peers
                             or was != now):
            self._status_q.put_nowait((key, now))

    def announced(self) -> list[tuple[str, str]]:
        """(Service, address) announced over BGP, for `metallb_speaker_announced`."""
        services = self.l2.services
        return [(key, ip) for key, d in self.decisions.items() if d.announced
                for ip in (services[key].ips if key in services else ())]

    def counts(self) -> dict[BGPReason, int]:
        out: dict[BGPReason, int] = {}
        for d in self.decisions.values():
            out[d.reason] = out.get(d.reason, 0) + 1
        return out

    # -- ServiceBGPStatus -------------------------------------------------------------
    @property
    def _status_path(self) -> str:
        return f"/apis/{API_VERSION}/namespaces/{self.s.namespace}/servicebgpstatuses"

    async def _status_writer(self) -> None:
        while True:
            key, present = await self._status_q.get()
            try:
                await self._write_status(key, present)
            except ApiError as exc:
                self.status_errors += 1
                log.warning("ServiceBGPStatus write failed", extra={
                    "event": "bgpStatusError", "service": key, "error": str(exc)})
                await asyncio.sleep(1.0)
                d = self.decisions.get(key)
                if (d is not None and d.announced and not self._withdrawn) == present:
                    self._status_q.put_nowait((key, present))
            finally:
                self._status_q.done(key)

    async def _write_status(self, key: str, present: bool) -> None:
        name = bgpstatus_name(self.s.node_name, key)
        path = f"{self._status_path}/{name}"
        d = self.decisions.get(key)
        if not present or d is None or not d.announced or self._withdrawn:
            await delete_if_present(self.client, path)
            return
        ns, _, svc = key.partition("/")
        wanted = {"node": self.s.node_name, "serviceName": svc, "serviceNamespace": ns,
                  "peers": sorted(d.peers)}
        held = self._statuses.get(key)
        await put_owned_status(
            self.client, self._status_path, API_VERSION, "ServiceBGPStatus", name,
            status_labels(self.s.node_name, key), wanted,
            None if held is None else held.get("status") or {})

    # -- BGPSessionState ---------------------------------------------------------------
    @property
    def _session_path(self) -> str:
        return f"/apis/{API_VERSION}/namespaces/{self.s.namespace}/bgpsessionstates"

    def _session_event(self, event: str, obj: Mapping[str, Any]) -> None:
        name = str((obj.get("metadata") or {}).get("name"))
        if event == "DELETED":
            self._session_objs.pop(name, None)
            self._session_written.pop(name, None)
            if name in self.sessions:  # removed by someone (or our old Pod's GC): again
                self._session_q.put_nowait((name, True))
        else:
            self._session_objs[name] = obj

    def _session_list(self, items: list[Mapping[str, Any]]) -> None:
        for obj in items:
            self._session_objs[str((obj.get("metadata") or {}).get("name"))] = obj
        # synced is set right after this: then the first states (and removals of those a
        # previous life wrote for peers gone since) can go out.
        asyncio.get_running_loop().call_soon(self._refresh_sessions)

    def _refresh_sessions(self) -> None:
        """Recompute this node's session states (after an FRR probe that changed
        something, or a recompute); queue the writes that change something."""
        inf = self._session_informer
        if not (self._decided and inf is not None and inf.synced.is_set()) \
                or self.applier.status is FRRStatus.STARTING:
            # The peers not known yet (no recompute since the start), or FRR not probed
            # yet: what a previous speaker wrote stands until then.
            return
        view = FRRView(self.applier.problem(), self.applier.sessions, self.applier.bfd)
        new = session_states(self.s.node_name, self.config.peers_for_node(self._node().labels),
                             view, self.passwords)
        for name, st in new.items():
            t = transition(self.sessions.get(name), st)
            if t is not None:
                self._session_events[name] = t
                log.log(logging.WARNING if t.warning else logging.INFO, t.message, extra={
                    "event": "bgpSession", "peer": st.peer, "reason": t.reason})
            if self._session_written.get(name) != st or name in self._session_events:
                self._session_q.put_nowait((name, True))
        for name in (set(self.sessions) | set(self._session_objs)) - set(new):
            self._session_q.put_nowait((name, False))
        self.sessions = new

    def _owners(self) -> list[dict[str, Any]]:
        if not (self.s.pod_name and self.s.pod_uid):
            return []
        return [{"apiVersion": "v1", "kind": "Pod", "name": self.s.pod_name,
                 "uid": self.s.pod_uid}]

    async def _session_writer(self) -> None:
        while True:
            name, _ = await self._session_q.get()
            try:
                await self._write_session(name)
            except ApiError as exc:
                self.status_errors += 1
                log.warning("BGPSessionState write failed", extra={
                    "event": "bgpSessionStateError", "name": name, "error": str(exc)})
                await asyncio.sleep(1.0)
                self._session_q.put_nowait((name, name in self.sessions))
            finally:
                self._session_q.done(name)

    async def _write_session(self, name: str) -> None:
        st = self.sessions.get(name)
        held = self._session_objs.get(name)
        if st is None:
            self._session_events.pop(name, None)
            if held is not None or name in self._session_written:
                await delete_if_present(self.client, f"{self._session_path}/{name}")
                self._session_written.pop(name, None)
            return
        held_status = None if held is None else held.get("status") or {}
        owners = self._owners()
        written: Mapping[str, Any] | None = held
        if not same(held_status, st):
            written = await put_owned_status(
                self.client, self._session_path, API_VERSION, session_model.KIND, name,
                {"metallb.io/node": self.s.node_name, "metallb.io/peer": st.peer},
                st.full_status(held_status, now_rfc3339()), held_status, owners) or held
        if held is not None and owners and \
                (held.get("metadata") or {}).get("ownerReferences") != owners:
            # Created by this node's previous speaker: ours now, or the garbage
            # collector would take it away with that Pod.
            written = await self.client.merge_patch(
                f"{self._session_path}/{name}", {"metadata": {"ownerReferences": owners}})
        self._session_written[name] = st
        t = self._session_events.pop(name, None)
        if t is not None and written is not None:
            ref = ObjectRef.of({**written, "metadata": {
                **(written.get("metadata") or {}), "namespace": self.s.namespace}},
                API_VERSION, session_model.KIND)
            (self.recorder.warning if t.warning else self.recorder.normal)(
                ref, t.reason, t.message)

    # -- shutdown ---------------------------------------------------------------------
    async def withdraw_all(self) -> bool:
        """SIGTERM: withdraw every prefix first (the router moves traffic to the other
        nodes while we still forward), then remove our statuses. True if FRR confirmed
        the withdrawals within the bound."""
        self._withdrawn = True
        self._push(self._node())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.applier.s.withdraw_timeout
        done = await self.applier.wait_synced(deadline - loop.time()) and \
            await self.applier.drained(max(0.0, deadline - loop.time()))
        log.info("BGP announcements withdrawn", extra={
            "event": "bgpWithdrawAll", "reason": "confirmed" if done else "timeout"})
        for key, d in list(self.decisions.items()):
            if d.announced or key in self._statuses:
                with contextlib.suppress(ApiError):
                    await self._write_status(key, False)
        return done

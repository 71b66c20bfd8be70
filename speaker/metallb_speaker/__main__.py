"""metallb-speaker entry point: settings once, then three parts that never block each
other - the asyncio loop (Kubernetes), the gossip thread (pyzmq) and the data plane
thread (AF_PACKET)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import Sequence

from metallb_kube import logs
from metallb_kube.client import ApiError, Connection, KubeClient
from metallb_kube.events import EventRecorder
from metallb_kube.health import Health, Heartbeat, TLSFiles, serve
from metallb_kube.supervise import Backoff, spawn
from metallb_speaker.announce import Announcer, MembershipOnly
from metallb_speaker.bgp.controller import BGPController
from metallb_speaker.controller import SpeakerController
from metallb_speaker.dataplane.plane import Counters, DataPlane
from metallb_speaker.discovery import Discovery
from metallb_speaker.frr.apply import FRRApplier, Vtysh
from metallb_speaker.metrics import (
    BGPCollector,
    DataPlaneCollector,
    GossipCollector,
    SpeakerMetrics,
)
from metallb_speaker.settings import SpeakerSettings, parse_args
from metallb_speaker.transport import GossipThread

log = logging.getLogger("metallb.speaker")
HANDOFF_GRACE = 0.5  # keep answering after LEAVE while the new owner takes over


async def read_secret(client: KubeClient, s: SpeakerSettings) -> bytes:
    path = f"/api/v1/namespaces/{s.namespace}/secrets/{s.secret_name}"
    while True:
        try:
            obj = await client.get(path)
            raw = (obj.get("data") or {}).get(s.secret_key)
            if raw:
                return base64.b64decode(raw)
            log.warning("memberlist secret has no key", extra={"event": "secretMissing",
                                                               "reason": s.secret_key})
        except ApiError as exc:
            log.warning("waiting for memberlist secret", extra={"event": "secretMissing",
                                                               "error": str(exc)})
        await asyncio.sleep(2.0)


async def node_address(client: KubeClient, node: str) -> str:
    backoff = Backoff(0.5, 5.0)
    while True:
        try:
            obj = await client.get(f"/api/v1/nodes/{node}")
        except ApiError as exc:  # API away at start-up: wait for it, no traceback
            log.warning("waiting for this node's object", extra={
                "event": "nodeUnknown", "node": node, "error": str(exc)})
            await asyncio.sleep(backoff.next())
            continue
        for addr in (obj.get("status") or {}).get("addresses") or []:
            if addr.get("type") == "InternalIP":
                return str(addr["address"])
        raise RuntimeError(f"node {node} has no InternalIP; pass --advertise-address")


def make_announcer(s: SpeakerSettings) -> Announcer:
    if not s.dataplane:
        return MembershipOnly()
    plane = DataPlane(s.node_name, exclude=s.interfaces_exclude,
                      conflict_mode=s.conflict_mode)
    plane.start()
    return plane


async def start_bgp(s: SpeakerSettings, client: KubeClient, recorder: EventRecorder,
                    controller: SpeakerController, metrics: SpeakerMetrics,
                    health: Health) -> BGPController | None:
    """BGP mode, when FRR's socket directory is given: FRR driven from the BGP
    objects; ready only while FRR answers (and, after a start, once the sessions are
    up and the updates sent)."""
    if not s.frr_socket_dir:
        return None
    applier = FRRApplier(Vtysh(s.frr_socket_dir), s.frr)
    bgp = BGPController(s, client, recorder, controller, applier)
    metrics.registry.register(BGPCollector(lambda: applier))
    metrics.bgp_announced_source = bgp.announced
    health.ready["frr"] = applier.ready_problem
    await bgp.start()
    log.info("BGP mode on", extra={"event": "bgpStarted", "reason": s.frr_socket_dir})
    return bgp


async def run(s: SpeakerSettings) -> int:
    conn = await Connection.load(s.kubeconfig)
    # 7 watches (6 informers, discovery) hold a connection each for their whole life:
    # with 8, status writes, Events and Lease renewals shared one and timed out waiting
    # for it after a takeover of thousands of Services.
    client = KubeClient(conn, limit=16, user_agent=f"metallb-py-speaker/{s.node_name}")
    metrics = SpeakerMetrics()
    # Ready = synced with the API and joined to the other speakers: a DaemonSet rollout
    # moves to the next node only then, so two nodes are never rejoining at once.
    heartbeat = Heartbeat()
    health = Health(live={"loop": heartbeat.check})
    phase = ["waiting for the memberlist Secret " + s.secret_name]
    health.ready["started"] = lambda: phase[0] or None
    if s.metrics_port:
        serve(s.metrics_host, s.metrics_port, metrics.registry, health)
    if s.secure_metrics_port:
        serve(s.metrics_host, s.secure_metrics_port, metrics.registry, health,
              TLSFiles(s.tls_cert_file, s.tls_key_file))
    beating = spawn("heartbeat", heartbeat.run)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    secret = await read_secret(client, s)
    phase[0] = "waiting for this node's address"
    advertise = s.advertise_address or await node_address(client, s.node_name)
    announcer = make_announcer(s)
    recorder = EventRecorder(client, "metallb-speaker", host=s.node_name)
    recorder.start()
    controller = SpeakerController(s, client, recorder, metrics, announcer)
    if isinstance(announcer, DataPlane):
        announcer.on_conflict = controller.on_conflict
    # Without a data plane the layer-2 series are still there (no samples: nothing sent).
    metrics.registry.register(DataPlaneCollector(
        announcer.counters if isinstance(announcer, DataPlane) else Counters()))
    metrics.client.config_loaded = controller.synced.is_set
    metrics.client.update_errors = lambda: controller.status_errors
    metrics.client.config_stale = lambda: bool(controller.config.problems)
    gossip = GossipThread(s.node_name, advertise, s.bind_address, s.gossip_port, secret,
                          s.membership, controller.on_view, tick=s.tick)
    metrics.registry.register(GossipCollector(gossip.counters, gossip.membership.stats))
    health.live["gossip"] = lambda: f"gossip thread stopped: {gossip.error}" \
        if gossip.stopped.is_set() else None
    if isinstance(announcer, DataPlane):
        plane = announcer
        health.live["dataplane"] = lambda: None if plane.is_alive() else \
            "data plane thread stopped"
    health.ready.update(health.live)
    health.ready["membership"] = lambda: None if controller.view.joined else \
        "not joined to the other speakers yet"
    phase[0] = "syncing with the API server (informers)"
    await controller.start()
    bgp = await start_bgp(s, client, recorder, controller, metrics, health)
    # What the initial sync built (thousands of Services, slices, decisions) lives as
    # long as we do: out of the collector's full passes, which otherwise walk all of it
    # in the middle of a failover's recompute (~0.1-0.2 s at 10,000 Services).
    gc.freeze()
    phase[0] = ""
    gossip.start()
    await loop.run_in_executor(None, gossip.bound.wait, 10)
    def on_peer(node: str, endpoint: str, macs: frozenset[str]) -> None:
        gossip.seed(node, endpoint)
        controller.on_peer_macs(node, macs)

    own_macs = tuple(announcer.own_macs()) if isinstance(announcer, DataPlane) else ()
    discovery = Discovery(client, s.namespace, s.node_name, gossip.endpoint,
                          on_peer, gossip.forget, renew=s.lease_renew, macs=own_macs,
                          on_synced=gossip.discovered)
    disc_task = spawn("discovery", discovery.run)
    log.info("speaker running", extra={"event": "started", "node": s.node_name,
                                       "peer": gossip.endpoint})

    async def gossip_died() -> None:
        await loop.run_in_executor(None, gossip.stopped.wait)

    async def dataplane_died() -> None:
        # A data plane that stopped must not leave a speaker that wins elections but
        # answers nothing: exit, and let the DaemonSet restart us.
        while not isinstance(announcer, DataPlane) or announcer.is_alive():
            await asyncio.sleep(1.0)

    died = asyncio.create_task(gossip_died())
    plane_died = asyncio.create_task(dataplane_died())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({died, stopping, plane_died}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if plane_died.done():
        log.error("data plane stopped", extra={"event": "dataplaneDied"})
        code = 1
    if gossip.stopped.is_set() and not stop.is_set():
        log.error("gossip thread stopped", extra={"event": "gossipDied",
                                                  "error": str(gossip.error)})
        code = 1
    if bgp is not None:
        # BGP first: the routers move the traffic to the other nodes while this one
        # still forwards; only then does the process go (lossless rolling updates).
        await bgp.withdraw_all()
    # Graceful: tell peers first (they take over at once), keep answering a moment.
    gossip.leave()
    await loop.run_in_executor(None, gossip.stopped.wait, 2.0)
    await asyncio.sleep(HANDOFF_GRACE)
    await controller.withdraw_all()
    announcer.close()
    disc_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await disc_task
    await discovery.withdraw()
    await controller.stop()
    if bgp is not None:
        await bgp.stop()
    await recorder.flush(timeout=2)
    await recorder.stop()
    await client.close()
    died.cancel()
    plane_died.cancel()
    beating.cancel()
    log.info("speaker stopped", extra={"event": "stopped", "node": s.node_name})
    return code


def main(argv: Sequence[str] | None = None) -> int:
    s = parse_args(argv)
    logs.configure(s.log_level)
    return asyncio.run(run(s))


if __name__ == "__main__":
    sys.exit(main())

"""metallb-operator entry point: settings once, then the async run."""

from __future__ import annotations

# isort: off
import metallb_operator._slim  # noqa: F401  (first: before anything imports kopf)

# isort: on

import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

import kopf

from metallb_kube import logs
from metallb_kube.client import Connection, KubeClient
from metallb_kube.events import EventRecorder
from metallb_kube.health import Health, Heartbeat, TLSFiles, serve
from metallb_kube.supervise import Backoff, spawn
from metallb_operator.controller import Controller
from metallb_operator.handlers import (
    build_registry,
    kopf_settings,
    quiet_kopf_when_a_kind_goes_away,
)
from metallb_operator.leader import LeaderElector
from metallb_operator.metrics import OperatorMetrics
from metallb_operator.settings import OperatorSettings, parse_args
from metallb_operator.webhook import Webhook

log = logging.getLogger("metallb.operator")


def tune_gc() -> None:
    """The allocation table is many small long-lived objects; CPython's default gen-0
    threshold (700) makes the cyclic GC rescan them constantly. Measured in
    bench/allocator: ~1.5x allocation throughput at 100k+ addresses."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


async def run(settings: OperatorSettings) -> int:
    conn = await Connection.load(settings.kubeconfig)
    client = KubeClient(conn, limit=settings.api_concurrency, user_agent="metallb-py-operator")
    metrics = OperatorMetrics()
    # Live: the event loop turns. Ready: a standby replica is ready (it only waits for
    # the Lease); the leader once its start-up sync rebuilt the allocation table.
    heartbeat = Heartbeat()
    leading: list[Controller] = []
    health = Health(live={"loop": heartbeat.check})
    health.ready = {"loop": heartbeat.check, "synced": lambda: next(
        ("leader, start-up sync not done yet" for c in leading if not c.synced.is_set()),
        None)}
    if settings.metrics_port:
        serve(settings.metrics_host, settings.metrics_port, metrics.registry, health)
    if settings.secure_metrics_port:
        serve(settings.metrics_host, settings.secure_metrics_port, metrics.registry, health,
              TLSFiles(settings.tls_cert_file, settings.tls_key_file))
    beating = spawn("heartbeat", heartbeat.run)
    # The admission webhook is served by every replica, standby included (as MetalLB's).
    webhook_client = KubeClient(conn, limit=4, user_agent="metallb-py-operator/webhook")
    webhook: asyncio.Task[None] | None = None
    hook: Webhook | None = None
    if settings.webhook.port:
        hook = Webhook(settings.webhook, settings.namespace, webhook_client)
        health.ready["webhook"] = hook.check
        webhook = spawn("webhook", hook.run)
    loop = asyncio.get_running_loop()
    drained_at: float | None = None

    def begin_drain() -> None:
        """Shutting down: not ready from now on, still answering reviews until
        `drained_at` (called on our signal, or when kopf stopped on its own)."""
        nonlocal drained_at
        if hook is not None and drained_at is None:
            hook.drain()
            drained_at = loop.time() + settings.webhook.drain

    async def stop_webhook() -> None:
        if webhook is not None:
            begin_drain()
            assert drained_at is not None
            await asyncio.sleep(max(0.0, drained_at - loop.time()))
            webhook.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await webhook
        await webhook_client.close()

    stop = asyncio.Event()

    def on_signal() -> None:
        begin_drain()
        stop.set()

    def own_signals() -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)

    own_signals()

    # The Lease gets its own connection: bulk allocation work must never starve the
    # renewals (a starved renewal looks like a lost Lease and stops the operator).
    lease_client = KubeClient(conn, limit=2, user_agent="metallb-py-operator/lease")
    elector = LeaderElector(lease_client, settings.namespace, settings.lease_name,
                            settings.identity,
                            lease_duration=settings.lease_duration,
                            retry_period=settings.renew_period)
    if settings.leader_election:
        acquire = asyncio.create_task(elector.acquire())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({acquire, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            acquire.cancel()
            beating.cancel()
            await stop_webhook()
            await client.close()
            await lease_client.close()
            return 0
        stopping.cancel()

    # Events are paced while Services are queued: users wait for addresses, not Events.
    recorder = EventRecorder(client, "metallb-controller", host=settings.identity,
                             defer_while=lambda: len(controller.queue) > 0)
    recorder.start()
    metrics.events_pending.set_function(lambda: recorder.pending)
    controller = Controller(settings, client, recorder, metrics,
                            writable=elector.leading if settings.leader_election else None)
    metrics.leading.set_function(lambda: float(controller.writable.is_set()))
    # MetalLB's k8s client series: Service passes of the work queue and their retries;
    # the configuration loaded once the start-up sync read it, stale while some pool or
    # advertisement is refused (MetalLB refuses the whole configuration instead).
    metrics.client.updates = lambda: controller.queue.processed
    metrics.client.update_errors = lambda: controller.queue.retried
    metrics.client.config_loaded = controller.synced.is_set
    metrics.client.config_stale = lambda: bool(controller.allocator.config.problems)
    leading.append(controller)
    stopping = asyncio.create_task(stop.wait())
    holder = asyncio.create_task(elector.hold()) if settings.leader_election else None
    ends = {stopping} | ({holder} if holder is not None else set())
    # The start-up sync and the controller's tasks live outside kopf: kopf cancels the
    # tasks started in its handlers when it stops, and it may be started again.
    boot = asyncio.create_task(controller.bootstrap())
    await asyncio.wait({boot, *ends}, return_when=asyncio.FIRST_COMPLETED)
    if boot.done() and boot.exception() is None:
        controller.start()
        await serve_kopf(build_registry(controller, conn), ends, own_signals)
        begin_drain()
    elif boot.done():
        log.error("start-up sync failed", extra={"event": "syncFailed",
                                                 "error": repr(boot.exception())})
    else:
        boot.cancel()
    code = 0
    if holder is not None and holder.done():
        log.error("another replica holds the Lease, exiting", extra={"event": "leaderLost"})
        code = 1
    await controller.stop()
    await recorder.flush(timeout=3)
    await recorder.stop()
    if holder is not None:
        holder.cancel()
    await elector.release()
    await lease_client.close()
    await client.close()
    await stop_webhook()
    beating.cancel()
    log.info("stopped", extra={"event": "stopped"})
    return code


async def serve_kopf(registry: kopf.OperatorRegistry, ends: set[asyncio.Task[Any]],
                     own_signals: Callable[[], None] = lambda: None) -> None:
    """Run kopf until one of `ends` is done or kopf stops on a signal. kopf ends
    itself when a kind it watches goes away (404: our CRDs deleted, e.g. for a
    reinstall): it is started again, and its start-up handler waits for the CRDs.
    Our state (the allocation table; Service status is the truth) stays.
    `own_signals` puts our signal handlers back once kopf installed its own (they stop
    kopf through `ends`, after what must happen at once on SIGTERM)."""
    backoff = Backoff(1.0, 10.0)
    while True:
        kopf_stop = asyncio.Event()
        kopf_ready = asyncio.Event()
        operator = asyncio.create_task(kopf.operator(
            registry=registry, settings=kopf_settings(), clusterwide=True, standalone=True,
            stop_flag=kopf_stop, ready_flag=kopf_ready, memo=kopf.Memo()))
        ready = asyncio.create_task(kopf_ready.wait())
        ready.add_done_callback(lambda t: None if t.cancelled() else own_signals())
        try:
            await asyncio.wait({operator, *ends}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        if not operator.done():
            kopf_stop.set()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(operator, timeout=10)
            return
        error = None if operator.cancelled() else operator.exception()
        if error is None:
            return  # kopf handles SIGTERM/SIGINT itself (its handlers replace ours)
        delay = backoff.next()
        log.warning("kopf stopped, starting it again", extra={
            "event": "kopfRestarted", "error": str(error), "seconds": delay})
        await asyncio.wait(ends, timeout=delay)
        if any(t.done() for t in ends):
            return


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    logs.configure(settings.log_level)
    quiet_kopf_when_a_kind_goes_away()
    tune_gc()
    log.info("starting", extra={"event": "starting", "node": settings.identity,
                                "pool": settings.namespace})
    return asyncio.run(run(settings))


if __name__ == "__main__":
    sys.exit(main())

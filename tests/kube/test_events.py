"""EventRecorder against the real apiserver: deferral while its owner is busy, the
deferral's upper bound, and aggregation of repeats into `count`."""

from __future__ import annotations

import asyncio
import time

import pytest

from metallb_kube.client import Connection, KubeClient
from metallb_kube.events import EventRecorder, ObjectRef
from metallb_lab.controlplane import ControlPlane
from metallb_lab.kube import create_namespace

pytestmark = pytest.mark.cluster


async def _events(client: KubeClient, ns: str) -> list[dict[str, object]]:
    items, _ = await client.list_all(f"/api/v1/namespaces/{ns}/events")
    return items


async def _wait_events(client: KubeClient, ns: str, n: int, timeout: float = 10.0
                       ) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = await _events(client, ns)
        if len(items) >= n:
            return items
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{n} Events not posted in {ns}")


async def _deferred(cp: ControlPlane, ns: str) -> tuple[int, float, dict[str, object]]:
    busy = True
    async with KubeClient(await Connection.load(str(cp.kubeconfig))) as client:
        rec = EventRecorder(client, "test", defer_while=lambda: busy, max_defer=30.0)
        rec.start()
        ref = ObjectRef("v1", "Service", ns, "web")
        rec.normal(ref, "IPAllocated", "Assigned IP [198.18.0.1]")
        await asyncio.sleep(0.5)
        while_busy = len(await _events(client, ns))
        busy = False
        t = time.monotonic()
        items = await _wait_events(client, ns, 1)
        rec.normal(ref, "IPAllocated", "Assigned IP [198.18.0.1]")  # a repeat
        await rec.flush()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            items = await _events(client, ns)
            if items and items[0].get("count") == 2:
                break
            await asyncio.sleep(0.05)
        await rec.stop()
    return while_busy, time.monotonic() - t, items[0]


def test_events_wait_while_busy_then_post_and_aggregate(control_plane: ControlPlane) -> None:
    ns = create_namespace(control_plane, "ev")
    while_busy, _, event = asyncio.run(_deferred(control_plane, ns))
    assert while_busy == 0
    assert event["reason"] == "IPAllocated"
    assert event["count"] == 2  # the repeat bumped count, no second Event


async def _bounded(cp: ControlPlane, ns: str) -> float:
    async with KubeClient(await Connection.load(str(cp.kubeconfig))) as client:
        rec = EventRecorder(client, "test", defer_while=lambda: True, max_defer=0.5)
        rec.start()
        t = time.monotonic()
        rec.warning(ObjectRef("v1", "Service", ns, "web"), "AllocationFailed", "no pool")
        await _wait_events(client, ns, 1)
        await rec.stop()
        return time.monotonic() - t


def test_deferral_is_bounded(control_plane: ControlPlane) -> None:
    ns = create_namespace(control_plane, "evb")
    waited = asyncio.run(_bounded(control_plane, ns))
    assert 0.45 <= waited < 10.0  # waited for the bound, then posted although busy

"""EventRecorder against the real apiserver: pacing while its owner is busy, none while
it is idle, and aggregation of repeats into `count`."""

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


async def _paced(cp: ControlPlane, ns: str) -> tuple[int, int, dict[str, object]]:
    busy = True
    async with KubeClient(await Connection.load(str(cp.kubeconfig))) as client:
        rec = EventRecorder(client, "test", defer_while=lambda: busy, busy_rate=1.0)
        rec.start()
        for i in range(5):
            rec.normal(ObjectRef("v1", "Service", ns, f"web-{i}"), "IPAllocated",
                       f"Assigned IP [198.18.0.{i}]")
        await asyncio.sleep(1.5)  # busy at 1 Event/s: the first at once, one more after 1 s
        while_busy = len(await _events(client, ns))
        busy = False
        items = await _wait_events(client, ns, 5, timeout=3.0)  # idle: the rest at once
        ref = ObjectRef("v1", "Service", ns, "web-0")
        rec.normal(ref, "IPAllocated", "Assigned IP [198.18.0.0]")  # a repeat
        await rec.flush()
        deadline = time.monotonic() + 10
        first: dict[str, object] = {}
        while time.monotonic() < deadline:
            items = await _events(client, ns)
            first = next(e for e in items
                         if e["involvedObject"]["name"] == "web-0")  # type: ignore[index]
            if first.get("count") == 2:
                break
            await asyncio.sleep(0.05)
        await rec.stop()
    return while_busy, len(items), first


def test_events_are_paced_while_busy_then_flow_and_aggregate(
        control_plane: ControlPlane) -> None:
    ns = create_namespace(control_plane, "ev")
    while_busy, total, first = asyncio.run(_paced(control_plane, ns))
    assert while_busy == 2
    assert total == 5  # the repeat bumped count, no sixth Event
    assert first["reason"] == "IPAllocated"
    assert first["count"] == 2


async def _unpaced(cp: ControlPlane, ns: str) -> float:
    async with KubeClient(await Connection.load(str(cp.kubeconfig))) as client:
        # The owner is idle: even at a busy rate of 1 per 10 s nothing waits.
        rec = EventRecorder(client, "test", defer_while=lambda: False, busy_rate=0.1)
        rec.start()
        t = time.monotonic()
        for i in range(20):
            rec.warning(ObjectRef("v1", "Service", ns, f"web-{i}"), "AllocationFailed",
                        "no pool")
        await _wait_events(client, ns, 20)
        await rec.stop()
        return time.monotonic() - t


def test_events_are_not_paced_while_the_owner_is_idle(control_plane: ControlPlane) -> None:
    ns = create_namespace(control_plane, "evb")
    assert asyncio.run(_unpaced(control_plane, ns)) < 10.0  # paced: 190 s

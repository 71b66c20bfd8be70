"""Informer against the real apiserver: a restarted watch resumes from the last
resourceVersion (no relist, nothing missed, nothing repeated); cancelling the informer
still ends it. The relist after 410 Gone is in test_informer_relist.py."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from metallb_kube.client import Connection, KubeClient
from metallb_kube.informer import Informer
from metallb_lab.controlplane import ControlPlane

pytestmark = pytest.mark.cluster


async def _scenario(cp: ControlPlane, ns: str) -> tuple[list[tuple[str, str]], Informer,
                                                         asyncio.Task[None]]:
    seen: list[tuple[str, str]] = []

    def on_event(kind: str, obj: Mapping[str, Any]) -> None:
        seen.append((kind, obj["metadata"]["name"]))

    async with KubeClient(await Connection.load(str(cp.kubeconfig))) as client:
        path = f"/api/v1/namespaces/{ns}/configmaps"
        await client.create(path, {"metadata": {"name": "before"}})
        inf = Informer(client, path, on_event=on_event, name="configmaps")
        task = asyncio.create_task(inf.run())
        await asyncio.wait_for(inf.synced.wait(), 10)
        for i in range(3):
            await asyncio.sleep(0.2)  # the watch is open
            inf.restart()
            await client.create(path, {"metadata": {"name": f"after-{i}"}})
        # Watch events come in order: once a marker made afterwards is seen, anything
        # repeated (a relist: MODIFIED for every object) would have come before it.
        await client.create(path, {"metadata": {"name": "marker"}})
        async with asyncio.timeout(10):
            while ("ADDED", "marker") not in seen:
                await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    return seen, inf, task


def test_a_restarted_watch_resumes_where_it_was(control_plane: ControlPlane,
                                                namespace: str) -> None:
    seen, inf, task = asyncio.run(_scenario(control_plane, namespace))
    assert seen == [("ADDED", "before"), ("ADDED", "after-0"), ("ADDED", "after-1"),
                    ("ADDED", "after-2"), ("ADDED", "marker")]
    assert inf.restarts == 3
    assert task.cancelled()

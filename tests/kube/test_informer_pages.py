"""Informer against the real apiserver: the list is handed over a page at a time (the
speaker at 10,000 Services must not hold them all at once), and every object once."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from metallb_kube.client import Connection, KubeClient
from metallb_kube.informer import Informer
from metallb_lab.controlplane import ControlPlane

pytestmark = pytest.mark.cluster


class CountingClient(KubeClient):
    requests = 0

    async def request(self, method: str, path: str, **kw: Any) -> Any:
        self.requests += 1
        return await super().request(method, path, **kw)


async def _scenario(cp: ControlPlane, ns: str) -> list[tuple[str, str, int]]:
    seen: list[tuple[str, str, int]] = []
    client = CountingClient(await Connection.load(str(cp.kubeconfig)))
    async with client:
        path = f"/api/v1/namespaces/{ns}/configmaps"
        for i in range(5):
            await client.create(path, {"metadata": {"name": f"cm-{i}"}})

        def on_event(kind: str, obj: Mapping[str, Any]) -> None:
            seen.append((kind, obj["metadata"]["name"], client.requests))

        client.requests = 0
        inf = Informer(client, path, on_event=on_event, name="configmaps", page=2)
        task = asyncio.create_task(inf.run())
        await asyncio.wait_for(inf.synced.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    return seen


def test_the_list_is_handed_over_page_by_page(control_plane: ControlPlane,
                                              namespace: str) -> None:
    seen = asyncio.run(_scenario(control_plane, namespace))
    names = sorted(n for _, n, _ in seen if n.startswith("cm-"))
    assert names == [f"cm-{i}" for i in range(5)]  # each once
    assert {k for k, _, _ in seen} == {"ADDED"}
    # the first page's objects arrive before the second page is asked for
    assert [r for _, _, r in seen][:2] == [1, 1], seen
    assert max(r for _, _, r in seen) >= 3, seen

"""Two components writing conditions on one pool at once, against the real API server:
with resourceVersion-carrying patches and retry on conflict, neither erases the other's
condition, and an unchanged status keeps its lastTransitionTime."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from metallb_api.conditions import ConditionSpec, merge_conditions
from metallb_kube.client import Connection, KubeClient
from metallb_kube.status import patch_status
from metallb_lab.controlplane import ControlPlane

pytestmark = pytest.mark.cluster
ROUNDS = 25


def stamp(ctype: str, i: int) -> str:
    return f"2026-01-01T00:{i:02d}:{'00' if ctype == 'Ready' else '30'}Z"


async def _race(cp: ControlPlane, path: str) -> tuple[Mapping[str, Any], int]:
    conn = await Connection.load(str(cp.kubeconfig))
    conflicts = 0

    async def writer(client: KubeClient, ctype: str, flips: bool) -> None:
        nonlocal conflicts
        obj = await client.get(path)
        for i in range(ROUNDS):
            status = bool(i % 2) if flips else True
            spec = ConditionSpec(ctype, status, "Round", f"round {i}")
            calls = 0

            def build(current: Mapping[str, Any], spec: ConditionSpec = spec,
                      now: str = stamp(ctype, i)) -> dict[str, Any]:
                nonlocal calls
                calls += 1
                return {"conditions": merge_conditions(current.get("conditions") or [],
                                                       [spec], 1, now)}

            # Start from a copy that is stale on purpose (as an informer's may be).
            obj = await patch_status(client, path, obj, build)
            conflicts += calls - 1
            await asyncio.sleep(0)

    async with KubeClient(conn) as a, KubeClient(conn) as b:
        await asyncio.gather(writer(a, "Ready", True), writer(b, "AddressConflict", False))
        return await a.get(path), conflicts


def test_concurrent_condition_writers_keep_each_others_conditions(
        control_plane: ControlPlane, namespace: str) -> None:
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input="""
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: shared}
spec: {addresses: ["198.18.40.0/28"]}
""")
    path = f"/apis/metallb.io/v1beta1/namespaces/{namespace}/ipaddresspools/shared"
    final, conflicts = asyncio.run(_race(control_plane, path))
    conds = {c["type"]: c for c in final["status"]["conditions"]}
    assert set(conds) == {"Ready", "AddressConflict"}, conds
    last = ROUNDS - 1
    assert conds["Ready"]["message"] == f"round {last}"
    assert conds["Ready"]["status"] == ("True" if last % 2 else "False")
    assert conds["Ready"]["lastTransitionTime"] == stamp("Ready", last)  # it flipped each round
    assert conds["AddressConflict"]["message"] == f"round {last}"
    # Never flipped: the time of its first write stays.
    assert conds["AddressConflict"]["lastTransitionTime"] == stamp("AddressConflict", 0)
    assert conflicts > 0, "the writers never raced: the test shows nothing"

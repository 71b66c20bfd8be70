"""LeaderElector against the real apiserver with an injected clock per replica (no
waiting for a Lease to expire): a live holder keeps the Lease; a holder that stops
renewing loses it once the other replica has seen the record unchanged for
leaseDurationSeconds *by its own clock*; a clean release hands over at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from metallb_kube.client import Connection, KubeClient
from metallb_lab.controlplane import ControlPlane
from metallb_operator.leader import LeaderElector

pytestmark = pytest.mark.cluster


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def _scenario(cp: ControlPlane, ns: str) -> tuple[list[tuple[str, bool]], dict[str, Any]]:
    steps: list[tuple[str, bool]] = []
    async with KubeClient(await Connection.load(str(cp.kubeconfig))) as client:
        clock_a, clock_b = Clock(), Clock()
        a = LeaderElector(client, ns, "lease", "a", lease_duration=15.0, clock=clock_a)
        b = LeaderElector(client, ns, "lease", "b", lease_duration=15.0, clock=clock_b)

        async def step(name: str, who: LeaderElector) -> None:
            steps.append((name, await who.try_acquire_or_renew()))

        await step("a creates the Lease", a)
        await step("b: held", b)
        clock_b.now = 14.0
        await step("b: 14 s unchanged, still held", b)
        clock_a.now = 15.0
        await step("a renews", a)
        clock_b.now = 20.0
        await step("b: renewed since, held", b)
        clock_b.now = 35.5  # 15.5 s since b saw the last renewal
        await asyncio.wait_for(b.acquire(), 5)  # at once: no retry period waited
        steps.append(("b: expired by b's clock, taken", b.leading.is_set()))
        await step("a: b holds it now", a)
        await b.release()
        await step("a: released, taken at once", a)
        lease = await client.get(
            f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/lease")
    return steps, lease["spec"]


def test_lease_expiry_follows_the_observers_clock(control_plane: ControlPlane,
                                                  namespace: str) -> None:
    steps, spec = asyncio.run(_scenario(control_plane, namespace))
    assert steps == [
        ("a creates the Lease", True),
        ("b: held", False),
        ("b: 14 s unchanged, still held", False),
        ("a renews", True),
        ("b: renewed since, held", False),
        ("b: expired by b's clock, taken", True),
        ("a: b holds it now", False),
        ("a: released, taken at once", True),
    ]
    assert spec["holderIdentity"] == "a"
    assert spec["leaseTransitions"] == 2  # a -> b -> a

"""EventRecorder's timing under an injected clock (no sleeping): while its owner is
busy, Events go out at most `busy_rate` per second across all posters; idle, at once;
an object's repeats within the aggregation window bump `count` on one Event. The real
API's side of it is in test_events.py."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping
from typing import Any

import pytest

from metallb_kube.events import AGGREGATE_SECONDS, EventRecorder, ObjectRef

pytestmark = pytest.mark.unit


class FakeTime:
    """A clock the test moves forward (`run_for`); sleepers wake once it passed their
    deadline."""

    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        deadline = self.now + seconds
        while self.now < deadline - 1e-9:
            await asyncio.sleep(0)

    async def run_for(self, seconds: float, step: float = 0.01) -> None:
        for _ in range(round(seconds / step)):
            for _ in range(5):  # let every task run up to its next wait
                await asyncio.sleep(0)
            self.now += step


class Recording:
    """Stands in for KubeClient's two write calls; records when each was made."""

    def __init__(self, time: FakeTime) -> None:
        self.time = time
        self.created: list[tuple[float, str, str]] = []  # (at, object, reason)
        self.patched: list[tuple[float, str, Mapping[str, Any]]] = []

    async def create(self, path: str, body: Mapping[str, Any], read: bool = True) -> None:
        self.created.append((self.time.now, body["involvedObject"]["name"], body["reason"]))

    async def merge_patch(self, path: str, body: Mapping[str, Any], read: bool = True) -> None:
        self.patched.append((self.time.now, path.rsplit("/", 1)[1], body))


async def _posts(busy_for: float, n: int, rate: float, posters: int
                 ) -> list[tuple[float, str, str]]:
    t = FakeTime()
    api = Recording(t)
    start = t.now
    rec = EventRecorder(api, "test", defer_while=lambda: t.now - start < busy_for,  # type: ignore[arg-type]
                        busy_rate=rate, posters=posters, clock=t.clock, sleep=t.sleep)
    rec.start()
    for i in range(n):
        rec.normal(ObjectRef("v1", "Service", "ns", f"s{i}"), "IPAllocated", f"ip {i}")
    await t.run_for(5.0)
    await rec.stop()
    return [(round(at - start, 2), name, reason) for at, name, reason in api.created]


@pytest.mark.parametrize(("busy_for", "n", "rate", "posters", "gaps"), [
    # idle: all at once, whatever the rate
    (0.0, 4, 1.0, 4, [0.0, 0.0, 0.0]),
    # busy at 1/s: one at once, then one a second, over all posters together
    (10.0, 3, 1.0, 4, [1.0, 1.0]),
    (10.0, 3, 1.0, 1, [1.0, 1.0]),
    (10.0, 4, 4.0, 4, [0.25, 0.25, 0.25]),
    # busy for 1.5 s at 1/s: two paced, the rest as soon as the owner is idle
    (1.5, 4, 1.0, 4, [1.0, 0.5, 0.0]),
])
def test_pacing(busy_for: float, n: int, rate: float, posters: int,
                gaps: list[float]) -> None:
    posts = asyncio.run(_posts(busy_for, n, rate, posters))
    times = sorted(at for at, _, _ in posts)
    assert times[0] == 0.0
    # Never sooner than the rate allows; late by at most one poll (20 ms) + a step.
    assert [b - a for a, b in itertools.pairwise(times)] == pytest.approx(
        gaps, abs=0.035)
    assert all(b - a >= g - 1e-6 for a, b, g in zip(times, times[1:], gaps, strict=False))
    assert sorted(name for _, name, _ in posts) == [f"s{i}" for i in range(n)]


def test_repeats_aggregate_within_the_window_only() -> None:
    async def run() -> Recording:
        t = FakeTime()
        api = Recording(t)
        rec = EventRecorder(api, "test", clock=t.clock, sleep=t.sleep)  # type: ignore[arg-type]
        rec.start()
        ref = ObjectRef("v1", "Service", "ns", "web")

        async def post_and_wait(total: int) -> None:
            rec.warning(ref, "AllocationFailed", "no pool")
            for _ in range(1000):
                if len(api.created) + len(api.patched) == total:
                    return
                await asyncio.sleep(0)
            raise AssertionError("not posted")

        await post_and_wait(1)
        t.now += 1.0
        await post_and_wait(2)  # a repeat: count 2 on the same Event
        t.now += AGGREGATE_SECONDS + 1
        await post_and_wait(3)  # too late to aggregate: a new Event
        await rec.stop()
        return api

    api = asyncio.run(run())
    assert [name for _, name, _ in api.created] == ["web", "web"]
    assert [body["count"] for _, _, body in api.patched] == [2]

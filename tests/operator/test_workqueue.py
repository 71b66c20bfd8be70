"""The keyed work queue: a key is handed to one worker at a time, repeats coalesce,
an add during processing means exactly one more pass, and add_after goes through the
injected scheduler (no sleeping)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from metallb_operator.workqueue import WorkQueue

pytestmark = pytest.mark.unit


def _drain(q: WorkQueue) -> list[str]:
    """Keys ready now, in order, without finishing them."""
    async def run() -> list[str]:
        out = []
        while True:
            try:
                out.append(await asyncio.wait_for(q.get(), 0.01))
            except TimeoutError:
                return out
    return asyncio.run(run())


@pytest.mark.parametrize(("adds", "ready", "length"), [
    (["a"], ["a"], 1),
    (["a", "a", "a"], ["a"], 1),  # repeats coalesce
    (["a", "b", "a", "c"], ["a", "b", "c"], 3),  # first-come order
])
def test_adds_coalesce(adds: list[str], ready: list[str], length: int) -> None:
    q = WorkQueue()
    for key in adds:
        q.add(key)
    assert len(q) == length
    assert _drain(q) == ready


@pytest.mark.parametrize(("adds_while_processing", "passes"), [
    (0, 1),
    (1, 2),
    (5, 2),  # many events during one pass: one more pass, not five
])
def test_adds_while_processing_mean_one_more_pass(adds_while_processing: int,
                                                  passes: int) -> None:
    async def run() -> tuple[int, bool]:
        q = WorkQueue()
        q.add("k")
        got = 0
        concurrent = False
        key = await q.get()
        got += 1
        for _ in range(adds_while_processing):
            q.add("k")
        # Not handed to a second worker while the first holds it.
        try:
            await asyncio.wait_for(q.get(), 0.01)
            concurrent = True
        except TimeoutError:
            pass
        q.done(key)
        while True:
            try:
                key = await asyncio.wait_for(q.get(), 0.01)
            except TimeoutError:
                break
            got += 1
            q.done(key)
        return got, concurrent

    got, concurrent = asyncio.run(run())
    assert not concurrent
    assert got == passes


def test_add_after_uses_the_injected_scheduler() -> None:
    scheduled: list[tuple[float, Callable[[str], None], str]] = []
    q = WorkQueue(call_later=lambda d, fn, key: scheduled.append((d, fn, key)))
    q.add_after("k", 2.0)
    assert len(q) == 0  # not before its time
    assert [(d, key) for d, _, key in scheduled] == [(2.0, "k")]
    _delay, fn, key = scheduled[0]
    fn(key)  # the time has come
    assert len(q) == 1 and _drain(q) == ["k"]

"""No background task dies silently (kopf's guarded tasks).

`supervised(name, run)` runs a long-lived coroutine and, when it raises (or returns,
which a loop never should), logs why and starts it again after a backoff that doubles
up to `cap` and resets once a run has lasted `healthy_after`. Tasks whose death leaves
the process useless are not restarted here: the caller waits on them and exits, so the
kubelet restarts the container (see each `__main__`).

`Backoff` is pure and the shell takes its clock and sleep, so the timing is unit-tested
without sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("metallb.tasks")


@dataclass
class Backoff:
    """Delays 2^n * initial, capped; `reset()` after a healthy run."""

    initial: float = 0.5
    cap: float = 30.0
    _next: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self._next = self.initial

    def next(self) -> float:
        delay, self._next = self._next, min(self._next * 2, self.cap)
        return delay

    def reset(self) -> None:
        self._next = self.initial


async def supervised(name: str, run: Callable[[], Awaitable[None]], *,
                     backoff: Backoff | None = None, healthy_after: float = 60.0,
                     clock: Callable[[], float] = time.monotonic,
                     sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
    """Run `run()` forever; only cancellation stops it."""
    backoff = backoff or Backoff()
    while True:
        started = clock()
        try:
            await run()
            error = "returned (a background loop must not end)"
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = repr(exc)
            log.debug("task crash", exc_info=True)
        if clock() - started >= healthy_after:
            backoff.reset()
        delay = backoff.next()
        log.error("background task died, restarting", extra={
            "event": "taskRestarted", "reason": name, "error": error,
            "seconds": round(delay, 3)})
        await sleep(delay)


def spawn(name: str, run: Callable[[], Coroutine[Any, Any, None]], **kw: Any
          ) -> asyncio.Task[None]:
    """`asyncio.create_task` of a supervised loop: the only way our packages start a
    long-lived task (tests/kube/test_supervise.py checks that)."""
    return asyncio.create_task(supervised(name, run, **kw), name=name)


_running: set[asyncio.Task[Any]] = set()  # one-shot tasks, referenced until done


def fire(name: str, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """A one-shot background task (e.g. one condition write) whose failure is logged,
    never lost with the task object."""
    task = asyncio.create_task(coro, name=name)
    _running.add(task)
    task.add_done_callback(_finished)
    return task


def _finished(task: asyncio.Task[Any]) -> None:
    _running.discard(task)
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("background task failed", exc_info=exc, extra={
            "event": "taskFailed", "reason": task.get_name(), "error": repr(exc)})

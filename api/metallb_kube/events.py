"""Kubernetes Events (core/v1) posted in the background, so a slow API never blocks a
decision. Same (object, reason, message) within the aggregation window bumps `count`
on the existing Event instead of creating a new one, like client-go's recorder.

A few posters work side by side (one request at a time costs ~40 % more CPU per Event
than a few in flight: every response is a wake-up of its own); an object's Events
always go through the same poster, so they stay in order and repeats aggregate."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from metallb_kube.client import ApiError, KubeClient
from metallb_kube.supervise import spawn

log = logging.getLogger(__name__)
AGGREGATE_SECONDS = 600.0
# While the owner is busy with work users wait for (allocations), Events are posted at
# most this often: each one costs the apiserver about what a status write does, and
# Events are informational while status writes are not. Idle: as fast as the API takes
# them. Under sustained load they still flow, slowly (or drop once the queue is full).
BUSY_EVENTS_PER_SECOND = 10.0
POSTERS = 4


@dataclass(frozen=True)
class ObjectRef:
    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str = ""

    @classmethod
    def of(cls, obj: Mapping[str, Any], api_version: str, kind: str) -> ObjectRef:
        meta = obj.get("metadata") or {}
        return cls(api_version, kind, str(meta.get("namespace") or ""), str(meta.get("name")),
                   str(meta.get("uid") or ""))


@dataclass
class _Posted:
    name: str
    count: int
    at: float


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


_Item = tuple[ObjectRef, str, str, str]


class EventRecorder:
    def __init__(self, client: KubeClient, component: str, host: str = "",
                 queue_size: int = 10000, defer_while: Callable[[], bool] | None = None,
                 busy_rate: float = BUSY_EVENTS_PER_SECOND, posters: int = POSTERS,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._client = client
        self._defer_while = defer_while
        self._busy_interval = 1.0 / busy_rate
        self._clock = clock
        self._sleep = sleep
        self._last_post = float("-inf")
        self._component = component
        self._host = host
        self._queues: list[asyncio.Queue[_Item]] = [
            asyncio.Queue(max(1, queue_size // posters)) for _ in range(posters)]
        self._posted: dict[tuple[ObjectRef, str, str], _Posted] = {}
        self._seq = 0  # Event names: unique within one recorder
        self._tasks: list[asyncio.Task[None]] = []
        self.dropped = 0

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [spawn(f"event-recorder-{i}", functools.partial(self._run, q))
                           for i, q in enumerate(self._queues)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def flush(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    @property
    def pending(self) -> int:
        """Events queued but not yet posted (a backlog after bulk allocation)."""
        return sum(q.qsize() for q in self._queues)

    def normal(self, ref: ObjectRef, reason: str, message: str) -> None:
        self._put(ref, "Normal", reason, message)

    def warning(self, ref: ObjectRef, reason: str, message: str) -> None:
        self._put(ref, "Warning", reason, message)

    def _put(self, ref: ObjectRef, type_: str, reason: str, message: str) -> None:
        # One object, one poster (its Events stay in order). The name alone picks it:
        # a failover records thousands, and hashing the whole reference costs more.
        queue = self._queues[hash(ref.name) % len(self._queues)]
        try:
            queue.put_nowait((ref, type_, reason, message[:1024]))
        except asyncio.QueueFull:
            self.dropped += 1

    async def _run(self, queue: asyncio.Queue[_Item]) -> None:
        while True:
            ref, type_, reason, message = await queue.get()
            await self._pace()
            self._last_post = self._clock()
            try:
                await self._post(ref, type_, reason, message)
            except (TimeoutError, ApiError, OSError) as exc:
                log.warning("event not posted", extra={"event": "eventPostFailed",
                                                       "reason": reason, "error": str(exc)})
            except Exception:  # never let the recorder die
                log.exception("event recorder error")

    async def _pace(self) -> None:
        """Return when this Event may be posted: at once when the owner is idle, else
        once `busy_interval` has passed since the previous post."""
        if self._defer_while is None:
            return
        while self._defer_while():
            if self._clock() - self._last_post >= self._busy_interval:
                return
            await self._sleep(0.02)

    async def _post(self, ref: ObjectRef, type_: str, reason: str, message: str) -> None:
        key = (ref, reason, message)
        now = self._clock()
        ns = ref.namespace or "default"
        prev = self._posted.get(key)
        if prev is not None and now - prev.at < AGGREGATE_SECONDS:
            prev.count += 1
            prev.at = now
            with contextlib.suppress(ApiError):
                await self._client.merge_patch(
                    f"/api/v1/namespaces/{ns}/events/{prev.name}",
                    {"count": prev.count, "lastTimestamp": _now()}, read=False)
                return
        stamp = _now()
        # client-go's naming: the object's name and a timestamp in hex (unique enough
        # with the counter; uuid4 cost more than the rest of the body)
        self._seq += 1
        name = f"{ref.name}.{time.time_ns() // 1000 + self._seq:x}"
        body = {
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": {
                "apiVersion": ref.api_version, "kind": ref.kind, "name": ref.name,
                "namespace": ref.namespace, "uid": ref.uid,
            },
            "reason": reason,
            "message": message,
            "type": type_,
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "source": {"component": self._component, "host": self._host},
            "reportingComponent": self._component,
            "reportingInstance": self._host or self._component,
        }
        await self._client.create(f"/api/v1/namespaces/{ns}/events", body, read=False)
        self._posted[key] = _Posted(name, 1, now)
        if len(self._posted) > 20000:  # bound memory: drop the oldest half
            for old in sorted(self._posted, key=lambda k: self._posted[k].at)[:10000]:
                del self._posted[old]

"""Kubernetes Events (core/v1) posted in the background, so a slow API never blocks a
decision. Same (object, reason, message) within the aggregation window bumps `count`
on the existing Event instead of creating a new one, like client-go's recorder."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Mapping
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
    first: str
    at: float


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    def __init__(self, client: KubeClient, component: str, host: str = "",
                 queue_size: int = 10000, defer_while: Callable[[], bool] | None = None,
                 busy_rate: float = BUSY_EVENTS_PER_SECOND) -> None:
        self._client = client
        self._defer_while = defer_while
        self._busy_interval = 1.0 / busy_rate
        self._last_post = float("-inf")
        self._component = component
        self._host = host
        self._queue: asyncio.Queue[tuple[ObjectRef, str, str, str]] = asyncio.Queue(queue_size)
        self._posted: dict[tuple[ObjectRef, str, str], _Posted] = {}
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def start(self) -> None:
        if self._task is None:
            self._task = spawn("event-recorder", self._run)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def flush(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not self._queue.empty() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    @property
    def pending(self) -> int:
        """Events queued but not yet posted (a backlog after bulk allocation)."""
        return self._queue.qsize()

    def normal(self, ref: ObjectRef, reason: str, message: str) -> None:
        self._put(ref, "Normal", reason, message)

    def warning(self, ref: ObjectRef, reason: str, message: str) -> None:
        self._put(ref, "Warning", reason, message)

    def _put(self, ref: ObjectRef, type_: str, reason: str, message: str) -> None:
        try:
            self._queue.put_nowait((ref, type_, reason, message[:1024]))
        except asyncio.QueueFull:
            self.dropped += 1

    async def _run(self) -> None:
        while True:
            ref, type_, reason, message = await self._queue.get()
            await self._pace()
            self._last_post = time.monotonic()
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
            if time.monotonic() - self._last_post >= self._busy_interval:
                return
            await asyncio.sleep(0.02)

    async def _post(self, ref: ObjectRef, type_: str, reason: str, message: str) -> None:
        key = (ref, reason, message)
        now = time.monotonic()
        ns = ref.namespace or "default"
        prev = self._posted.get(key)
        if prev is not None and now - prev.at < AGGREGATE_SECONDS:
            prev.count += 1
            prev.at = now
            with contextlib.suppress(ApiError):
                await self._client.merge_patch(
                    f"/api/v1/namespaces/{ns}/events/{prev.name}",
                    {"count": prev.count, "lastTimestamp": _now()},
                )
                return
        stamp = _now()
        name = f"{ref.name}.{uuid.uuid4().hex[:12]}"
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
        await self._client.create(f"/api/v1/namespaces/{ns}/events", body)
        self._posted[key] = _Posted(name, 1, stamp, now)
        if len(self._posted) > 20000:  # bound memory: drop the oldest half
            for old in sorted(self._posted, key=lambda k: self._posted[k].at)[:10000]:
                del self._posted[old]

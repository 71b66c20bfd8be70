"""One active operator at a time, through a coordination.k8s.io Lease (client-go's
leader-election algorithm).

Why a Lease and not kopf peering: kopf peering pauses lower-priority operators but does
not guarantee exclusion between equal priorities, and it needs its own CRDs. A Lease
with optimistic concurrency (resourceVersion) lets exactly one holder win each write.

Expiry is judged from *our* clock: a record is expired when it has not changed for
leaseDurationSeconds since we first saw it, so clock skew between nodes does not matter.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

from metallb_kube.client import ApiError, KubeClient
from metallb_operator.tenure import Attempt, Standing, Tenure

log = logging.getLogger(__name__)


def _micro_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(self, client: KubeClient, namespace: str, name: str, identity: str,
                 lease_duration: float = 15.0, retry_period: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self._name = name
        self.identity = identity
        self._duration = lease_duration
        self._retry = retry_period
        self._clock = clock
        self._observed: tuple[str, str] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0
        self.leading = asyncio.Event()  # set while we hold the Lease and may write
        self._held = False  # acquired at some point (paused or not): release it on exit

    def _spec(self, transitions: int, acquire: str | None = None) -> dict[str, Any]:
        now = _micro_now()
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(int(self._duration), 1),
            "acquireTime": acquire or now,
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    async def try_acquire_or_renew(self) -> bool:
        try:
            lease = await self._client.get(f"{self._path}/{self._name}")
        except ApiError as exc:
            if not exc.not_found:
                raise
            try:
                await self._client.create(self._path, {
                    "metadata": {"name": self._name}, "spec": self._spec(0)})
            except ApiError as create_exc:
                if create_exc.conflict or create_exc.status == 409:
                    return False
                raise
            return True
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, str(spec.get("renewTime")))
        now = self._clock()
        if record != self._observed:
            self._observed, self._observed_at = record, now
        duration = float(spec.get("leaseDurationSeconds") or self._duration)
        expired = not holder or now - self._observed_at > duration
        if holder != self.identity and not expired:
            return False
        transitions = int(spec.get("leaseTransitions") or 0) + (holder != self.identity)
        acquire = spec.get("acquireTime") if holder == self.identity else None
        try:
            await self._client.merge_patch(f"{self._path}/{self._name}", {
                "metadata": {"resourceVersion": lease["metadata"]["resourceVersion"]},
                "spec": self._spec(transitions, acquire),
            })
        except ApiError as exc:
            if exc.conflict:
                return False
            raise
        return True

    async def acquire(self) -> None:
        """Block until we hold the Lease."""
        while True:
            try:
                if await self.try_acquire_or_renew():
                    self._held = True
                    self.leading.set()
                    log.info("became leader", extra={"event": "leaderElected",
                                                     "node": self.identity})
                    return
            except (TimeoutError, ApiError, OSError) as exc:
                log.warning("lease error", extra={"event": "leaseError", "error": str(exc)})
            await asyncio.sleep(self._retry)

    async def hold(self) -> None:
        """Renew every retry period; return only when another replica holds the Lease.
        While renewals fail for too long (the API is away) `leading` is cleared: the
        controller stops writing but keeps its state, and resumes once renewed."""
        tenure = Tenure(self._duration, self._clock())
        while True:
            await asyncio.sleep(self._retry)
            error = ""
            try:
                attempt = Attempt.RENEWED if await self.try_acquire_or_renew() \
                    else Attempt.TAKEN
            except (TimeoutError, ApiError, OSError) as exc:
                attempt, error = Attempt.FAILED, str(exc)
            before = tenure.standing
            standing = tenure.record(attempt, self._clock())
            if error and standing is before:
                log.warning("lease renew failed", extra={"event": "leaseError",
                                                         "error": error})
            if standing is before:
                continue
            if standing is Standing.PAUSED:
                self.leading.clear()
                log.error("cannot renew the Lease: writes paused, state kept", extra={
                    "event": "leaderPaused", "node": self.identity, "error": error,
                    "seconds": round(tenure.pause_after, 1)})
            elif standing is Standing.LEADING:
                self.leading.set()
                log.info("Lease renewed again: writes resumed", extra={
                    "event": "leaderResumed", "node": self.identity})
            else:
                self.leading.clear()
                log.error("lease taken by another operator", extra={
                    "event": "leaderLost", "node": self.identity})
                return

    async def release(self) -> None:
        """Hand over at once on a clean shutdown instead of making the standby wait."""
        if not self._held:
            return
        try:
            lease = await self._client.get(f"{self._path}/{self._name}")
            if (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                await self._client.merge_patch(f"{self._path}/{self._name}", {
                    "metadata": {"resourceVersion": lease["metadata"]["resourceVersion"]},
                    "spec": {"holderIdentity": "", "leaseDurationSeconds": 1},
                })
        except (TimeoutError, ApiError, OSError) as exc:
            log.warning("lease release failed", extra={"event": "leaseError", "error": str(exc)})
        self._held = False
        self.leading.clear()

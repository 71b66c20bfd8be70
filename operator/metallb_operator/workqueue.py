"""A keyed work queue (client-go style): a key is never processed by two workers at
once, and events arriving while it is processed coalesce into one more pass."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

Later = Callable[[float, Callable[[str], None], str], Any]


class WorkQueue:
    def __init__(self, call_later: Later | None = None) -> None:
        # `call_later(delay, fn, key)`: the running loop's unless given (tests).
        self._call_later = call_later
        self._ready: asyncio.Queue[str] = asyncio.Queue()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        # Passes done, and keys put back after a failed pass (`add_after` is the retry
        # path): MetalLB's metallb_k8s_client_updates_total / _update_errors_total.
        self.processed = 0
        self.retried = 0

    def __len__(self) -> int:
        return len(self._dirty) + len(self._processing)

    def add(self, key: str) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._ready.put_nowait(key)

    def add_after(self, key: str, delay: float) -> None:
        self.retried += 1
        later = self._call_later or asyncio.get_running_loop().call_later
        later(delay, self.add, key)

    async def get(self) -> str:
        key = await self._ready.get()
        self._dirty.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: str) -> None:
        self.processed += 1
        self._processing.discard(key)
        if key in self._dirty:
            self._ready.put_nowait(key)

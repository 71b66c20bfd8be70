"""Status writes that never erase another writer's part: the patch carries the
resourceVersion it was computed from, and a conflict means re-read, recompute, retry.

(A JSON merge patch replaces lists whole, so a `conditions` list computed from a stale
copy would drop a condition another component wrote meanwhile.)
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from typing import Any

from metallb_kube.client import ApiError, KubeClient

Build = Callable[[Mapping[str, Any]], dict[str, Any]]


def _unchanged(current: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    return all(current.get(k) == v for k, v in status.items())


async def patch_status(client: KubeClient, path: str, obj: Mapping[str, Any], build: Build,
                       attempts: int = 8) -> Mapping[str, Any]:
    """Write `build(current status)` to `path`'s status, starting from `obj` (e.g. the
    informer's copy). Returns the object as written, or as read when nothing changed.
    Raises the last ApiError when every attempt conflicted, or any other ApiError."""
    for attempt in range(attempts):
        current = obj.get("status") or {}
        status = build(current)
        if _unchanged(current, status):
            return obj
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        try:
            written: Mapping[str, Any] = await client.merge_patch(
                f"{path}/status", {"metadata": {"resourceVersion": rv}, "status": status})
            return written
        except ApiError as exc:
            if not exc.conflict or attempt == attempts - 1:
                raise
        # Another writer got there first: a jittered pause lets two of us interleave
        # instead of colliding again on every retry.
        await asyncio.sleep(random.uniform(0, 0.01 * 2**attempt))
        obj = await client.get(path)
    raise AssertionError("unreachable")

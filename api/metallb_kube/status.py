"""Status writes that never erase another writer's part: the patch carries the
resourceVersion it was computed from, and a conflict means re-read, recompute, retry.

(A JSON merge patch replaces lists whole, so a `conditions` list computed from a stale
copy would drop a condition another component wrote meanwhile.)
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping, Sequence
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


async def delete_if_present(client: KubeClient, path: str) -> None:
    """DELETE `path`; already gone is fine."""
    try:
        await client.delete(path)
    except ApiError as exc:
        if not exc.not_found:
            raise


async def put_owned_status(client: KubeClient, collection: str, api_version: str, kind: str,
                           name: str, labels: Mapping[str, str], status: Mapping[str, Any],
                           held: Mapping[str, Any] | None,
                           owners: Sequence[Mapping[str, Any]] = (),
                           ) -> Mapping[str, Any] | None:
    """One status-only object this writer alone owns (a speaker's ServiceL2Status,
    ServiceBGPStatus or BGPSessionState): create it unless `held` (its status as the
    writer's watch last showed it) says it exists, then write `status` unless `held`
    already equals it. Gone meanwhile (deleted, and the watch has not told us yet):
    created again. `owners`: ownerReferences given at creation. Returns the object as
    written, None when nothing was written."""
    if held is not None and held == status:
        return None

    async def create() -> None:
        meta: dict[str, Any] = {"name": name, "labels": dict(labels)}
        if owners:
            meta["ownerReferences"] = [dict(o) for o in owners]
        try:
            await client.create(collection, {
                "apiVersion": api_version, "kind": kind, "metadata": meta, "spec": {}})
        except ApiError as exc:
            if exc.status != 409:
                raise

    if held is None:
        await create()
    path = f"{collection}/{name}/status"
    written: Mapping[str, Any]
    try:
        written = await client.merge_patch(path, {"status": status})
    except ApiError as exc:
        if not exc.not_found:
            raise
        await create()
        written = await client.merge_patch(path, {"status": status})
    return written

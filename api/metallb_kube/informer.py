"""List + watch with resourceVersion (a client-go style informer, minus the cache).

The first list is delivered as one batch (`on_list`) so the caller can order it (the
operator replays Services that already have addresses first). Afterwards every change
comes through `on_event(type, obj)`. A watch that ends is resumed from the last
resourceVersion (bookmarks keep it fresh); 410 Gone triggers a relist whose differences
(including deletions missed while disconnected) are delivered as events.

Only keys are kept, not objects: the caller keeps the small views it needs.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from metallb_kube.client import ApiError, KubeClient
from metallb_kube.supervise import Backoff

log = logging.getLogger(__name__)

# Retrying every few seconds at most: after an API outage, changes made meanwhile
# (Services created during an upgrade) are seen within seconds of its return.
MAX_BACKOFF = 4.0
OnList = Callable[[list[Mapping[str, Any]]], None]
OnEvent = Callable[[str, Mapping[str, Any]], None]


def object_key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


class Informer:
    def __init__(self, client: KubeClient, path: str, *, on_event: OnEvent,
                 on_list: OnList | None = None, name: str = "", page: int = 500,
                 watch_timeout: int = 300, label_selector: str | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._client = client
        self._sleep = sleep
        self._path = path
        self._on_event = on_event
        self._on_list = on_list
        self.name = name or path
        self._page = page
        self._watch_timeout = watch_timeout
        self._selector = {"labelSelector": label_selector} if label_selector else None
        self._keys: set[str] = set()
        self._rv = ""
        self.synced = asyncio.Event()
        self._watching: asyncio.Task[None] | None = None
        self.restarts = 0

    async def _list(self) -> None:
        if self._on_list is not None and not self.synced.is_set():
            items, rv = await self._client.list_all(self._path, page=self._page,
                                                    selector=self._selector)
            fresh = {object_key(o) for o in items}
            self._on_list(items)
        else:
            fresh, rv = await self._list_pages()
        if self._keys:  # a relist (or a first list that failed half-way before)
            for gone in self._keys - fresh:
                ns, _, name = gone.rpartition("/")
                meta = {"name": name, **({"namespace": ns} if ns else {})}
                self._on_event("DELETED", {"metadata": meta})
        self._keys = fresh
        self._rv = rv
        self.synced.set()

    async def _list_pages(self) -> tuple[set[str], str]:
        """Hand each page's objects over as it arrives: a page at a time is alive, not
        the whole list (10,000 Services at once cost the speaker ~70 MB of RSS that
        stayed, the parsed objects interleaved with the ones it keeps)."""
        first = not self.synced.is_set()
        fresh: set[str] = set()
        cont = ""
        try:
            while True:
                params = {"limit": str(self._page), **(self._selector or {})}
                if cont:
                    params["continue"] = cont
                doc = await self._client.request("GET", self._path, params=params,
                                                 timeout=120)
                for obj in doc.get("items") or []:
                    fresh.add(object_key(obj))
                    self._on_event("ADDED" if first else "MODIFIED", obj)
                meta = doc.get("metadata") or {}
                cont = meta.get("continue") or ""
                if not cont:
                    return fresh, str(meta.get("resourceVersion", ""))
        except BaseException:
            self._keys |= fresh  # handed over already: the next list removes the gone
            raise

    def restart(self) -> None:
        """Drop the current watch and resume from the last resourceVersion. For when
        the connection may be stale without knowing it (we were cut off the network:
        the server's TCP retransmissions back off for seconds after the link is back)."""
        if self._watching is not None and not self._watching.done():
            self.restarts += 1
            self._watching.cancel()

    async def _watch(self) -> None:
        async for kind, obj in self._client.watch(self._path, self._rv,
                                                  self._watch_timeout, self._selector):
            meta = obj.get("metadata") or {}
            if meta.get("resourceVersion"):
                self._rv = str(meta["resourceVersion"])
            if kind == "BOOKMARK":
                continue
            key = object_key(obj)
            if kind == "DELETED":
                self._keys.discard(key)
            else:
                self._keys.add(key)
            self._on_event(kind, obj)

    async def run(self) -> None:
        backoff = Backoff(0.2, MAX_BACKOFF)
        need_list = True
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                restarts = self.restarts
                self._watching = asyncio.create_task(self._watch())
                try:
                    await self._watching
                except asyncio.CancelledError:
                    if self.restarts == restarts:
                        raise  # we are being cancelled, not restarted
                    log.info("watch restarted", extra={"event": "watchRestarted",
                                                       "reason": self.name})
                finally:
                    self._watching.cancel()
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except ApiError as exc:
                if exc.gone:
                    need_list = True
                    continue
                log.warning("watch failed", extra={"event": "watchError", "reason": self.name,
                                                   "error": str(exc)})
                # Before the first list succeeded there is nothing to resume from; 429 is
                # "storage (re)initializing" right after a CRD is created.
                need_list = need_list or exc.status >= 500 or exc.status in (401, 403, 429)
                await self._sleep(backoff.next() * (1 + random.random() / 2))
            except (TimeoutError, OSError, ValueError) as exc:
                log.warning("watch interrupted", extra={"event": "watchError",
                                                        "reason": self.name, "error": str(exc)})
                await self._sleep(backoff.next() * (1 + random.random() / 2))

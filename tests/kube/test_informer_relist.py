"""The informer's recovery paths, driven by a scripted client and an injected sleep
(no API server, no waiting): 410 Gone relists at once and delivers the differences
(deletions missed included); a 5xx relists after a backoff; a watch the server ends
resumes from the last resourceVersion without a relist. The happy path against the
real API server is in test_informer.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from metallb_kube.client import ApiError
from metallb_kube.informer import Informer

pytestmark = pytest.mark.unit

Obj = dict[str, Any]
Step = tuple[str, Obj] | ApiError


def cm(name: str, rv: str) -> Obj:
    return {"metadata": {"namespace": "ns", "name": name, "resourceVersion": rv}}


class ScriptedApi:
    """Answers the informer's list pages and watches from a script; a watch beyond the
    script stays open (quiet) until cancelled."""

    def __init__(self, lists: list[tuple[list[Obj], str]], watches: list[list[Step]]) -> None:
        self.lists = lists
        self.watches = watches
        self.watched_from: list[str] = []
        self.quiet = asyncio.Event()

    async def request(self, method: str, path: str, **_: Any) -> Obj:
        items, rv = self.lists.pop(0)
        return {"items": items, "metadata": {"resourceVersion": rv}}

    async def watch(self, path: str, rv: str, *_: Any) -> AsyncIterator[tuple[str, Obj]]:
        self.watched_from.append(rv)
        if not self.watches:
            self.quiet.set()
            await asyncio.Event().wait()
        for step in self.watches.pop(0):
            if isinstance(step, ApiError):
                raise step
            yield step


async def _run(api: ScriptedApi) -> tuple[list[tuple[str, str]], list[float]]:
    seen: list[tuple[str, str]] = []
    sleeps: list[float] = []

    def on_event(kind: str, obj: Mapping[str, Any]) -> None:
        seen.append((kind, obj["metadata"]["name"]))

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    inf = Informer(api, "/api/v1/configmaps", on_event=on_event, sleep=sleep)  # type: ignore[arg-type]
    task = asyncio.create_task(inf.run())
    await asyncio.wait_for(api.quiet.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return seen, sleeps


GONE = ApiError(410, "Expired", "too old resource version")
BROKEN = ApiError(500, "InternalError", "etcd away")


@pytest.mark.parametrize(("case", "lists", "watches", "seen", "watched_from", "sleeps"), [
    ("410 relists at once, missed deletion delivered",
     [([cm("a", "1"), cm("b", "1")], "1"), ([cm("a", "7"), cm("c", "6")], "7")],
     [[("MODIFIED", cm("a", "3")), GONE]],
     [("ADDED", "a"), ("ADDED", "b"), ("MODIFIED", "a"),
      ("MODIFIED", "a"), ("MODIFIED", "c"), ("DELETED", "b")],
     ["1", "7"], 0),
    ("5xx relists after a backoff",
     [([cm("a", "1")], "1"), ([cm("a", "1")], "4")],
     [[BROKEN]],
     [("ADDED", "a"), ("MODIFIED", "a")],
     ["1", "4"], 1),
    ("a watch the server ends resumes, no relist",
     [([cm("a", "1")], "1")],
     [[("ADDED", cm("b", "2")), ("BOOKMARK", {"metadata": {"resourceVersion": "5"}})]],
     [("ADDED", "a"), ("ADDED", "b")],
     ["1", "5"], 0),
])
def test_recovery(case: str, lists: list[tuple[list[Obj], str]], watches: list[list[Step]],
                  seen: list[tuple[str, str]], watched_from: list[str], sleeps: int) -> None:
    api = ScriptedApi(lists, watches)
    got, slept = asyncio.run(_run(api))
    assert got == seen
    assert api.watched_from == watched_from
    assert len(slept) == sleeps
    assert not api.lists  # every scripted list was used: no extra, none missing

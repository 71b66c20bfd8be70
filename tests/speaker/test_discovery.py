"""Discovery against the real apiserver, its renewal timer injected (no waiting): two
speakers find each other's gossip endpoint and MACs through their Leases, never
themselves; the first list is reported once it seeded every peer; a withdrawn Lease is
a peer gone; a published Lease is renewed every `renew` seconds."""

from __future__ import annotations

import asyncio

import pytest

from metallb_kube.client import Connection, KubeClient
from metallb_lab.controlplane import ControlPlane
from metallb_speaker.discovery import Discovery

pytestmark = pytest.mark.cluster


class Seen:
    def __init__(self) -> None:
        self.peers: list[tuple[str, str, frozenset[str]]] = []
        self.gone: list[str] = []
        self.synced_with: list[str] | None = None
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.Event().wait()  # the test ends long before any renewal


async def _until(cond: object, what: str) -> None:
    async with asyncio.timeout(10):
        while not cond():  # type: ignore[operator]
            await asyncio.sleep(0.02)


async def _scenario(cp: ControlPlane, ns: str) -> tuple[Seen, Seen]:
    async with KubeClient(await Connection.load(str(cp.kubeconfig))) as client:
        seen: dict[str, Seen] = {"a": Seen(), "b": Seen()}

        def make(node: str, endpoint: str, macs: tuple[str, ...]) -> Discovery:
            s = seen[node]
            d: Discovery
            d = Discovery(
                client, ns, node, endpoint,
                on_peer=lambda n, e, m: s.peers.append((n, e, m)),
                on_gone=s.gone.append, renew=30.0, macs=macs,
                on_synced=lambda: setattr(s, "synced_with", [p[0] for p in s.peers]),
                sleep=s.sleep)
            return d

        a = make("a", "198.18.0.1:7946", ("02:00:00:00:00:0a",))
        await a.publish()  # a is there before b starts: b's first list must hold it
        b = make("b", "198.18.0.2:7946", ("02:00:00:00:00:0b", "02:00:00:00:00:0c"))
        tasks = [asyncio.create_task(d.run()) for d in (a, b)]
        await _until(lambda: seen["a"].peers and seen["b"].peers
                     and seen["a"].synced_with is not None
                     and seen["b"].synced_with is not None, "both see each other")
        await b.withdraw()
        await _until(lambda: seen["a"].gone, "a sees b gone")
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return seen["a"], seen["b"]


def test_speakers_find_each_other_and_see_a_withdrawal(control_plane: ControlPlane,
                                                       namespace: str) -> None:
    a, b = asyncio.run(_scenario(control_plane, namespace))
    assert a.peers[0] == ("b", "198.18.0.2:7946",
                          frozenset({"02:00:00:00:00:0b", "02:00:00:00:00:0c"}))
    assert b.peers[0] == ("a", "198.18.0.1:7946", frozenset({"02:00:00:00:00:0a"}))
    assert all(p[0] != "a" for p in a.peers) and all(p[0] != "b" for p in b.peers)
    assert b.synced_with == ["a"]  # reported synced only after the list seeded a
    assert a.gone == ["b"]
    assert a.sleeps == [30.0] and b.sleeps == [30.0]  # published, renewal in `renew`

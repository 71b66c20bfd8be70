"""The FRR shell's loop with a stand-in for vtysh (no FRR, no sleeping): the first push
is full, prefix moves follow as differences, a lost FRR is reported (status, readiness,
loss count) and gets our whole configuration, after deleting what it holds, when it
answers again; a restart (new pid files) does the same; a refused batch is followed
by a full push."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from tests.speaker.frr.test_frr_plan import conf

from metallb_speaker.frr.apply import FRRApplier, FRRRefused, FRRStatus, FRRUnavailable
from metallb_speaker.frr.plan import ApplySettings, PushKind
from metallb_speaker.frr.state import BFDSession, BGPSession

pytestmark = pytest.mark.unit


class FakeVtysh:
    def __init__(self) -> None:
        self.up = True
        self.refuse = False
        self.batches: list[str] = []
        self.running = ""  # what FRR reports as its running configuration
        self.gen: tuple[tuple[str, int, int], ...] = (("bgpd", 1, 1),)

    async def probe(self) -> tuple[list[BGPSession], list[BFDSession]]:
        if not self.up:
            raise FRRUnavailable("bgpd not running")
        return [], []

    async def show(self, *commands: str) -> str:
        if not self.up:
            raise FRRUnavailable("failed to connect to any daemons")
        return self.running

    async def apply(self, text: str) -> None:
        if not self.up:
            raise FRRUnavailable("failed to connect to any daemons")
        if self.refuse:
            self.refuse = False
            raise FRRRefused("line 3: % Unknown command")
        self.batches.append(text)

    def generation(self) -> tuple[tuple[str, int, int], ...]:
        return self.gen


@pytest.fixture
async def shell() -> AsyncIterator[tuple[FRRApplier, FakeVtysh]]:
    fake = FakeVtysh()
    applier = FRRApplier(fake, ApplySettings(debounce=0.0, probe_interval=3600.0,  # type: ignore[arg-type]
                                              retry_min=0.0))
    task = asyncio.create_task(applier.run())
    yield applier, fake
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_pushes_loss_and_recovery(shell: tuple[FRRApplier, FakeVtysh]) -> None:
    applier, fake = shell
    applier.want(conf(["10.0.0.1/32"]))
    assert await applier.wait_synced(2)
    assert applier.status is FRRStatus.SYNCED and applier.pushes[PushKind.FULL] == 1
    assert "  network 10.0.0.1/32" in fake.batches[-1]

    applier.want(conf(["10.0.0.1/32", "10.0.0.2/32"]))
    assert await applier.wait_synced(2)
    assert applier.pushes[PushKind.PREFIXES] == 1
    assert "network 10.0.0.1/32" not in fake.batches[-1]  # only the difference

    fake.up = False
    await applier.probe()
    assert applier.status is FRRStatus.UNAVAILABLE and applier.losses == 1
    assert applier.problem() == "FRR unavailable: bgpd not running"
    applier.want(conf(["10.0.0.2/32"]))  # changes meanwhile wait for FRR
    await asyncio.sleep(0)
    assert not await applier.wait_synced(0.05)

    fake.up = True
    fake.running = "router bgp 64512\n neighbor 1.2.3.4 remote-as 1\nexit\n"
    await applier.probe()
    applier.want(conf(["10.0.0.2/32"]))  # (a kick; the wanted text is the same)
    assert await applier.wait_synced(2)
    assert applier.problem() is None and applier.pushes[PushKind.FULL] == 2
    full = fake.batches[-1]
    # what FRR held is deleted first, then everything is written
    assert full.index("no router bgp 64512") < full.index("router bgp 64512\n")
    assert "  network 10.0.0.2/32" in full

    fake.gen = (("bgpd", 2, 2),)  # restarted between two probes
    await applier.probe()
    applier.want(conf(["10.0.0.2/32"]))
    assert await applier.wait_synced(2)
    assert applier.pushes[PushKind.FULL] == 3


async def test_refused_difference_is_followed_by_a_full_push(
        shell: tuple[FRRApplier, FakeVtysh]) -> None:
    applier, fake = shell
    applier.want(conf([]))
    assert await applier.wait_synced(2)
    fake.refuse = True
    applier.want(conf([], hold=9))
    assert await applier.wait_synced(2)
    assert applier.refusals == 1 and applier.pushes[PushKind.FULL] == 2

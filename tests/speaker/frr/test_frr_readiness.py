"""Readiness after a start in BGP mode (frr.state.sessions_problem): not before every
session is up and its updates are out, unless the grace period has passed."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

import pytest
from tests.speaker.frr.test_frr_plan import conf

from metallb_speaker.frr.apply import FRRApplier
from metallb_speaker.frr.plan import ApplySettings
from metallb_speaker.frr.state import BGPSession, sessions_problem

pytestmark = pytest.mark.unit
UP = BGPSession(peer="198.18.0.254", vrf="default", port=179, state="Established",
                prefixes_sent=1, updates_sent=1, opens_sent=1, opens_received=1,
                notifications_sent=0, updates_received=0, keepalives_sent=1,
                keepalives_received=1, route_refresh_sent=0, total_sent=3,
                total_received=2, out_queue=0)
V6 = replace(UP, peer="fd00:18::fe")


@pytest.mark.parametrize(("sessions", "configured", "age", "want"), [
    ([UP, V6], True, 1.0, None),
    ([], True, 1.0, None),  # no BGPPeer for this node: nothing to wait for
    ([UP, replace(V6, state="Active")], True, 5.0,
     "BGP sessions not established yet: fd00:18::fe:179"),
    ([replace(UP, state="Connect"), replace(V6, state="Idle")], True, 5.0,
     "BGP sessions not established yet: 198.18.0.254:179, fd00:18::fe:179"),
    ([UP, replace(V6, out_queue=3)], True, 5.0, "BGP updates not sent yet: fd00:18::fe:179"),
    ([], False, 5.0, "FRR does not hold the BGP configuration yet"),
    # a peer that stays down does not block rollouts past the grace period
    ([UP, replace(V6, state="Active")], True, 60.0, None),
    ([], False, 61.0, None),
])
def test_ready_once_the_sessions_are_back(sessions: list[BGPSession], configured: bool,
                                          age: float, want: str | None) -> None:
    assert sessions_problem(sessions, configured, age, grace=60.0) == want


class _Sessions:
    """A stand-in vtysh whose only state is the session list (see test_frr_apply)."""

    def __init__(self) -> None:
        self.sessions = [replace(UP, state="Active")]

    async def probe(self) -> tuple[list[BGPSession], list[object]]:
        return list(self.sessions), []

    async def show(self, *commands: str) -> str:
        return ""

    async def apply(self, text: str) -> None:
        pass

    def generation(self) -> tuple[tuple[str, int, int], ...]:
        return (("bgpd", 1, 1),)


async def test_the_session_gate_holds_after_a_start_only() -> None:
    now = [0.0]
    fake = _Sessions()
    applier = FRRApplier(fake, ApplySettings(debounce=0.0, ready_grace=60.0),  # type: ignore[arg-type]
                         clock=lambda: now[0])
    assert applier.ready_problem() == "FRR not probed yet"
    applier.want(conf(["10.0.0.1/32"]))
    await applier.probe()
    assert applier.ready_problem() == "FRR does not hold the BGP configuration yet"
    task = asyncio.create_task(applier.run())
    try:
        assert await applier.wait_synced(2)
        await applier.probe()
        assert applier.ready_problem() == \
            "BGP sessions not established yet: 198.18.0.254:179"
        fake.sessions = [UP]
        await applier.probe()
        settling = "BGP sessions just established: letting the peers install the routes"
        assert applier.ready_problem() == settling
        now[0] += 1.0
        fake.sessions = [replace(UP, state="Connect")]  # it went down again: anew
        await applier.probe()
        assert applier.ready_problem() == \
            "BGP sessions not established yet: 198.18.0.254:179"
        fake.sessions = [UP]
        await applier.probe()
        now[0] += 2.0
        await applier.probe()
        assert applier.ready_problem() == settling  # 2 s since it came up again
        now[0] += 0.5
        await applier.probe()
        assert applier.ready_problem() is None
        # a session down later (a peer added, a router restarting) does not make a
        # running speaker unready: the gate is for rollouts, after a start
        fake.sessions = [UP, replace(V6, state="Connect")]
        await applier.probe()
        assert applier.ready_problem() is None
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

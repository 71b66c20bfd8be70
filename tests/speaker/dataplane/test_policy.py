"""The data plane's timers: probing before first use, gratuitous announcements, and
quiet takeovers that announce only when told to."""

from __future__ import annotations

import pytest

from metallb_speaker.dataplane.policy import (
    GARP_OFFSETS,
    PROBE_OFFSETS,
    PROBE_WAIT,
    OwnedAddress,
    Phase,
)

pytestmark = pytest.mark.unit


def run(addr: OwnedAddress, until: float, step: float = 0.05) -> tuple[int, int, list[float]]:
    """Drive the timers like the data plane thread: (probes, announcements, when)."""
    probes = garps = 0
    when: list[float] = []
    t = addr.since
    while t <= until + 1e-9:
        p, g, _ = addr.due(t)
        probes += p
        garps += g
        when += [round(t, 2)] * g
        t = round(t + step, 6)
    return probes, garps, when


@pytest.mark.parametrize(("probe", "quiet", "phase", "probes", "garps", "first"), [
    ("takeover", False, Phase.ANNOUNCING, 0, len(GARP_OFFSETS), 0.0),
    ("new address", False, Phase.PROBING, len(PROBE_OFFSETS), len(GARP_OFFSETS), PROBE_WAIT),
    ("quiet takeover", True, Phase.ANNOUNCING, 0, 0, None),
    # New to the network beats quiet: nobody has a path to keep, probe and announce.
    ("new and quiet", True, Phase.PROBING, len(PROBE_OFFSETS), len(GARP_OFFSETS),
     PROBE_WAIT),
])
def test_start(probe: str, quiet: bool, phase: Phase, probes: int, garps: int,
               first: float | None) -> None:
    addr = OwnedAddress.start(0.0, probe.startswith("new"), quiet)
    assert addr.phase is phase
    sent_probes, sent_garps, when = run(addr, 10.0)
    assert (sent_probes, sent_garps) == (probes, garps)
    assert (when[0] if when else None) == first
    assert addr.phase is Phase.ANNOUNCING  # answering requests in every case
    assert addr.next_due() is None


def test_a_quiet_address_announces_when_told() -> None:
    addr = OwnedAddress.start(0.0, probe=False, quiet=True)
    assert run(addr, 3.0)[1] == 0
    addr.announce(3.0)
    _, garps, when = run(OwnedAddress(addr.phase, 3.0, addr.garp_due), 10.0)
    assert garps == len(GARP_OFFSETS)
    assert when == [round(3.0 + o, 2) for o in GARP_OFFSETS]


def test_announce_while_probing_changes_nothing() -> None:
    addr = OwnedAddress.start(0.0, probe=True)
    addr.announce(0.05)
    assert addr.phase is Phase.PROBING and addr.garp_due == []

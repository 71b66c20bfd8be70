"""The controller's one-time requests to the data plane (probe this new address, take
that one over quietly) survive until the data plane thread applies them, even when a
newer ownership state replaces the one that carried them."""

from __future__ import annotations

from pathlib import Path

import pytest

from metallb_api.addresses import parse_ip
from metallb_speaker.dataplane.plane import DataPlane

pytestmark = pytest.mark.unit
A, B, C = (parse_ip(f"198.18.0.{i}") for i in (100, 101, 102))


@pytest.mark.parametrize(("calls", "want_probe", "want_quiet"), [
    ([({A: ()}, {A}, set()), ({A: (), B: ()}, set(), set())], {A}, set()),
    ([({A: ()}, set(), {A}), ({A: (), B: ()}, set(), {B})], set(), {A, B}),
    # An address no longer owned takes its request with it.
    ([({A: ()}, set(), {A}), ({B: ()}, set(), set())], set(), set()),
    ([({A: (), C: ()}, {C}, {A}), ({A: (), C: ()}, set(), set())], {C}, {A}),
])
def test_unapplied_requests_are_merged(tmp_path: Path, calls: list[tuple[dict, set, set]],
                                       want_probe: set, want_quiet: set) -> None:
    plane = DataPlane("n1", sys_net=tmp_path)  # not started: nothing applies them
    plane._desired = None  # the initial state was applied
    for owned, probe, quiet in calls:
        plane.set_owned(owned, frozenset(probe), frozenset(quiet))
    assert plane._desired is not None
    _, probe_now, quiet_now = plane._desired
    assert (set(probe_now), set(quiet_now)) == (want_probe, want_quiet)
    plane.close()

"""Smoke run of bench/speaker_scale.py with 20 Services against the session's real
API server: both speakers run, every figure the report relies on is produced and sane.
Not performance (that is the bench's job, and this machine is shared)."""

from __future__ import annotations

import asyncio

import pytest
from bench.speaker_scale import GOALS, Setup, measure, verdicts

from metallb_lab.controlplane import ControlPlane

pytestmark = pytest.mark.cluster


def test_speaker_scale_smoke(control_plane: ControlPlane) -> None:
    out = asyncio.run(measure(control_plane, Setup.unique(), n=20, changes=1, events=4,
                              verbose=False))
    assert out["services"] == 20
    assert 0 < out["to_synced_s"] <= out["to_decided_s"] <= out["to_ready_with_peer_s"]
    # one kill + restart of the peer: declared failed, joined, ready again
    m = out["membership_recompute_ms"]
    assert m["n"] >= 2, m
    assert 0 < m["p50"] <= m["max"] < 5000, m
    assert out["service_event_recomputes"] >= 1
    assert 0 < out["service_event_recompute_ms_mean"] < 5000
    # with the peer dead every Service is ours, and its ServiceL2Status written
    assert out["statuses_of_owner"] == out["services_serving"] >= 18
    assert 0 < out["status_catch_up_s"] < 600
    for key in ("rss_mb_synced", "rss_mb", "peer_rss_mb"):
        assert 10 < out[key] < 1000, (key, out[key])
    assert set(verdicts(out)) == set(GOALS)

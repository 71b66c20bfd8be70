"""Smoke test of bench.membership part (a): the simulated measurements at N=10 run and
produce the keys the report relies on, with sane values."""

from __future__ import annotations

import math

import pytest
from bench.membership import goals, simulated

pytestmark = pytest.mark.unit


def test_simulated_n10_smoke() -> None:
    res = simulated(sizes=(10,), trial_sizes=(10,), trials=3, window=1.0, warmup=0.5,
                    verbose=False)
    assert set(res) >= {"config", "sizes", "trials"}
    size = res["sizes"]["10"]
    for key in ("msgs_per_s_per_node", "bytes_per_s_per_node"):
        assert set(size[key]) == {"mean", "max", "min"}
        assert size[key]["mean"] > 0
        assert size[key]["max"] >= size[key]["mean"] >= size[key]["min"]
    assert size["msgs_per_s_total"] > 0
    kill = size["kill"]
    assert kill["observers"] == 9
    assert kill["missed"] == 0
    assert kill["false_declarations"] == 0
    assert set(kill["latency_ms"]) >= {"n", "p50", "p90", "p99", "max", "mean"}
    assert kill["latency_ms"]["n"] == 9
    assert 0 < kill["latency_ms"]["p50"] <= kill["latency_ms"]["max"] < 1000
    assert kill["all_declared_ms"] < 1000

    trials = res["trials"]["10"]
    assert trials["trials"] == 3
    assert len(trials["per_trial"]) == 3
    assert trials["observer_latency_ms"]["n"] == 27
    assert 0 < trials["observer_latency_ms"]["max"] < 1000
    assert trials["all_declared_ms"]["max"] < 1000
    assert trials["missed"] == 0
    assert trials["false_declarations"] == 0
    for t in trials["per_trial"]:
        assert math.isfinite(t["all_declared_ms"])

    g = goals({"simulated": res})
    assert "sim_detection_p99_ms" in g
    assert "sim_traffic_sublinear" in g

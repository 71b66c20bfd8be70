"""The pure parts of bench/versus.py: the client's outage from the prober's records, the
side-by-side table (which system is better, by how much), and the retries of the lab
API server's transient failures."""

from __future__ import annotations

import io
import math
import urllib.error
from email.message import Message
from typing import Any

import pytest
from bench.versus import advantage, table
from bench.versus_failover import client_outage

from bench import versus, versus_scale

pytestmark = pytest.mark.unit


def probes(*oks: int, step: float = 0.2) -> list[dict[str, Any]]:
    return [{"t": round(i * step, 4), "ok": bool(ok), "node": "web", "ms": 1.0}
            for i, ok in enumerate(oks)]


@pytest.mark.parametrize(("case", "records", "want"), [
    ("no gap", probes(1, 1, 1, 1), (0.2, True)),
    ("a gap, then answered again", probes(1, 0, 0, 0, 1, 1), (0.8, True)),
    # the case the first skeleton reported as a few ms: never answered again
    ("never answered again: until the end, a lower bound", probes(1, 1, 0, 0, 0, 0, 0),
     (1.0, False)),
    ("never answered at all", probes(0, 0, 0), (0.4, False)),
    ("a longer gap before an unanswered end", probes(1, 0, 0, 0, 0, 1, 0, 0, 0, 0),
     (1.0, False)),
    ("one unanswered request at the very end", probes(1, 1, 1, 1, 0), (0.2, True)),
])
def test_client_outage(case: str, records: list[dict[str, Any]],
                       want: tuple[float, bool]) -> None:
    outage, recovered = client_outage(records)
    assert (outage, recovered) == (pytest.approx(want[0]), want[1]), case


def test_client_outage_of_nothing() -> None:
    outage, recovered = client_outage([])
    assert math.isnan(outage) and not recovered


@pytest.mark.parametrize(("theirs", "ours", "lower_better", "want"), [
    (5000.0, 500.0, True, "10.00"),     # MetalLB's outage 10x longer
    (3.0, 24.0, True, "0.12"),          # MetalLB's CPU lower: below 1
    (5000.0, 25000.0, False, "5.00"),   # ARP rate: higher is better
    (25000.0, 5000.0, False, "0.20"),
    (3.0, 0.0, True, "inf"),
    (0.0, 0.0, True, "="),
    (None, 1.0, True, "n/a"),
    (2.0, 1.0, None, "n/a"),            # informative only
])
def test_advantage(theirs: float | None, ours: float | None, lower_better: bool | None,
                   want: str) -> None:
    assert advantage(theirs, ours, lower_better) == want


def test_table_names_the_better_system_honestly() -> None:
    def results(outage: float, cpu: float) -> dict[str, Any]:
        return {"link-down": {"outage_ms": {"p50": outage, "p99": outage, "max": outage}},
                "idle": {"speaker_cpu_millicores": {"mean": cpu}}}

    out = {"results": {"metallb": results(5000.0, 3.0), "metallb-py": results(450.0, 24.0)}}
    rows = {r["figure"]: r for r in table(out, [])}
    assert rows["link-down: outage p50"]["better"] == "metallb-py"
    assert rows["speaker CPU, idle (mean of nodes)"]["better"] == "MetalLB"
    # figures neither system has are left out
    assert "rolling: longest gap max" not in rows


@pytest.mark.parametrize(("case", "codes", "tolerate", "calls", "raises"), [
    ("transient 500s, then done", [500, 500, None], 409, 3, False),
    ("a retried create finds its first attempt done", [500, 409], 409, 2, False),
    ("429 is retried too", [429, None], 404, 2, False),
    ("a client error is not retried", [422], 409, 1, True),
    ("gives up after the last attempt", [503] * 6, 409, 6, True),
])
def test_retried(monkeypatch: pytest.MonkeyPatch, case: str, codes: list[int | None],
                 tolerate: int, calls: int, raises: bool) -> None:
    monkeypatch.setattr(versus_scale.time, "sleep", lambda _: None)
    seen = []

    def call() -> None:
        code = codes[len(seen)]
        seen.append(code)
        if code is not None:
            raise urllib.error.HTTPError("https://lab/api", code, "x", Message(),
                                         io.BytesIO(b'{"kind": "Status"}'))

    if raises:
        with pytest.raises(RuntimeError, match=f"^{codes[-1]} "):
            versus_scale.retried(call, tolerate=tolerate)
    else:
        versus_scale.retried(call, tolerate=tolerate)
    assert len(seen) == calls, case


def test_cases_for_a_system_and_keeping_an_earlier_runs_cases() -> None:
    args = versus.parse(["--cases-for", "metallb=scale", "--services", "1000"])
    assert args.cases_for == {"metallb": ["scale"]}
    assert args.cases == list(versus.CASES)
    with pytest.raises(SystemExit):
        versus.parse(["--cases-for", "metallb=nope"])
    out: dict[str, Any] = {"results": {"metallb": {"scale": {"1000": {}}},
                                       "metallb-py": {"idle": {"x": 1}}}}
    old = {"when": "2026-12-06T18:39:00Z", "results": {"metallb": {
        "idle": {"x": 2}, "scale": {"error": "stuck"}, "rolling": {"error": "boom"},
        "link-down": {"outage_ms": {}}}}}
    versus.keep(out, old)
    # measured now wins; an earlier error is not kept; the rest is, and named
    assert out["results"]["metallb"] == {"scale": {"1000": {}}, "idle": {"x": 2},
                                         "link-down": {"outage_ms": {}}}
    assert out["results"]["metallb-py"] == {"idle": {"x": 1}}
    assert out["kept_from"] == {"metallb": {"idle": "2026-12-06T18:39:00Z",
                                            "link-down": "2026-12-06T18:39:00Z"}}

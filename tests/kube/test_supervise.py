"""Supervised background tasks: restart with backoff (injected clock and sleep, no real
waiting), one-shot failures logged, and no package starting an unsupervised task."""

from __future__ import annotations

import ast
import asyncio
import logging
from pathlib import Path

import pytest

from metallb_kube.supervise import Backoff, fire, supervised

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("initial", "cap", "expected"), [
    (0.5, 30.0, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]),
    (1.0, 5.0, [1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0, 5.0]),
    (2.0, 2.0, [2.0] * 8),
])
def test_backoff_doubles_up_to_its_cap(initial: float, cap: float,
                                       expected: list[float]) -> None:
    b = Backoff(initial, cap)
    assert [b.next() for _ in expected] == expected
    b.reset()
    assert b.next() == initial


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.mark.parametrize(("case", "runs", "expected_sleeps"), [
    # (how long each run lasts before it fails)
    ("crash loop backs off", [0.0, 0.0, 0.0, 0.0], [0.5, 1.0, 2.0, 4.0]),
    ("a healthy run resets the backoff", [0.0, 0.0, 120.0, 0.0], [0.5, 1.0, 0.5, 1.0]),
])
def test_a_dying_task_is_restarted_with_backoff(
        case: str, runs: list[float], expected_sleeps: list[float],
        caplog: pytest.LogCaptureFixture) -> None:
    t = FakeTime()
    started: list[float] = []

    async def body() -> None:
        started.append(t.now)
        if len(started) > len(runs):
            raise asyncio.CancelledError  # end of the table: stop the supervisor
        t.now += runs[len(started) - 1]
        if len(started) % 2:
            raise RuntimeError("boom")
        # returning is also a death: a background loop must never end

    async def main() -> None:
        with pytest.raises(asyncio.CancelledError):
            await supervised("job", body, clock=t.clock, sleep=t.sleep)

    with caplog.at_level(logging.ERROR, "metallb.tasks"):
        asyncio.run(main())
    assert t.slept == expected_sleeps, case
    events = [r for r in caplog.records if getattr(r, "event", "") == "taskRestarted"]
    assert [r.reason for r in events] == ["job"] * len(runs)  # type: ignore[attr-defined]
    assert "boom" in events[0].error  # type: ignore[attr-defined]
    assert "returned" in events[1].error  # type: ignore[attr-defined]


def test_a_failed_one_shot_task_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def fails() -> None:
        raise ValueError("bad write")

    async def main() -> None:
        task = fire("write-condition", fails())
        with pytest.raises(ValueError):
            await task

    with caplog.at_level(logging.ERROR, "metallb.tasks"):
        asyncio.run(main())
    (rec,) = [r for r in caplog.records if getattr(r, "event", "") == "taskFailed"]
    assert rec.reason == "write-condition"  # type: ignore[attr-defined]
    assert "bad write" in rec.error  # type: ignore[attr-defined]


# Where a bare create_task is allowed, and why.
ALLOWED = {
    "api/metallb_kube/supervise.py": "the supervisor itself",
    "api/metallb_kube/informer.py": "the watch sub-task is awaited in place (restartable)",
    "operator/metallb_operator/__main__.py": "tasks the main wait ends the process on",
    "speaker/metallb_speaker/__main__.py": "tasks the main wait ends the process on",
}


def _bare_task_calls(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in ("create_task", "ensure_future"):
            lines.append(node.lineno)
    return lines


def test_no_package_starts_an_unsupervised_task() -> None:
    offenders = []
    for package in ("api", "operator", "speaker"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            if rel in ALLOWED:
                continue
            offenders += [f"{rel}:{line}" for line in _bare_task_calls(path)]
    assert offenders == [], "use metallb_kube.supervise.spawn/fire: " + ", ".join(offenders)
    for rel in ALLOWED:
        assert (ROOT / rel).exists(), rel

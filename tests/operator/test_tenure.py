"""The Lease holder's standing after each renewal attempt: an API away for a while
pauses the writes, it never ends the leadership; only another holder does."""

from __future__ import annotations

import pytest

from metallb_operator.tenure import Attempt, Standing, Tenure

pytestmark = pytest.mark.unit
R, T, F = Attempt.RENEWED, Attempt.TAKEN, Attempt.FAILED
LEADING, PAUSED, LOST = Standing.LEADING, Standing.PAUSED, Standing.LOST


@pytest.mark.parametrize(("case", "attempts", "expected"), [
    ("renewals keep it", [(R, 2), (R, 4), (R, 6)], [LEADING, LEADING, LEADING]),
    ("a few failures within 2/3 of the lease are tolerated",
     [(F, 2), (F, 4), (F, 8), (R, 10)], [LEADING, LEADING, LEADING, LEADING]),
    ("failing past 2/3 of the lease pauses the writes",
     [(F, 2), (F, 8), (F, 11)], [LEADING, LEADING, PAUSED]),
    ("an outage of minutes stays paused, then resumes on renewal",
     [(F, 11), (F, 60), (F, 120), (R, 122), (F, 124)], [PAUSED, PAUSED, PAUSED, LEADING, LEADING]),
    ("another holder while paused: lost", [(F, 11), (T, 40)], [PAUSED, LOST]),
    ("another holder while leading: lost", [(R, 2), (T, 4)], [LEADING, LOST]),
    ("lost is final", [(T, 2), (R, 4), (F, 30)], [LOST, LOST, LOST]),
    ("the pause clock restarts at each renewal",
     [(F, 9), (R, 10), (F, 19), (F, 20.5)], [LEADING, LEADING, LEADING, PAUSED]),
])
def test_standing_after_each_attempt(case: str, attempts: list[tuple[Attempt, float]],
                                     expected: list[Standing]) -> None:
    tenure = Tenure(lease_duration=15.0, last_renewed=0.0)
    assert [tenure.record(a, now) for a, now in attempts] == expected, case

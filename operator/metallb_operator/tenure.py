"""What the Lease holder may do after each renewal attempt (pure; the shell is
`leader.LeaderElector.hold`).

An API server that is away for a while (an upgrade: 30 s, minutes) is not a lost
election. Once renewals have failed for 2/3 of the lease duration another replica may
soon see the Lease expired, so the holder *pauses*: it stops writing but keeps its
allocation table and keeps trying. A successful renewal (the Lease still ours) resumes
it; finding another holder is the only real loss (exit; a restart re-syncs from the
cluster, whose Service status is the truth).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Standing(Enum):
    LEADING = "leading"  # renewed recently: write
    PAUSED = "paused"  # cannot renew: write nothing, keep state, keep trying
    LOST = "lost"  # another replica holds the Lease: stop


class Attempt(Enum):
    RENEWED = "renewed"
    TAKEN = "taken"  # the Lease has another live holder
    FAILED = "failed"  # no answer, or an error: we do not know


@dataclass
class Tenure:
    lease_duration: float
    last_renewed: float
    standing: Standing = Standing.LEADING

    @property
    def pause_after(self) -> float:
        # Others judge expiry after a full duration from when *they* last saw a change;
        # a third of it is our margin for clock rates and in-flight writes.
        return self.lease_duration * 2 / 3

    def record(self, attempt: Attempt, now: float) -> Standing:
        if self.standing is Standing.LOST:
            return self.standing
        if attempt is Attempt.RENEWED:
            self.last_renewed = now
            self.standing = Standing.LEADING
        elif attempt is Attempt.TAKEN:
            self.standing = Standing.LOST
        elif now - self.last_renewed > self.pause_after:
            self.standing = Standing.PAUSED
        return self.standing

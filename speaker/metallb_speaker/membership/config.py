"""Membership timers. Defaults meet the goal "a hard-dead speaker is declared dead by
all others within 500 ms" while tolerating 250 ms stalls of a peer's event loop:

    detection <= suspect_after + probe_timeout + tick + dissemination
              ~= 0.28 + 0.15 + 0.01 + a few ms  (< 0.5 s)
    a stalled peer is convicted only if silent > suspect_after + probe_timeout (0.43 s),
    because it answers the direct/indirect probes as soon as it runs again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class MembershipConfig:
    heartbeat_interval: float = 0.05  # each node -> its k monitors
    monitors: int = 3  # k: how many ring successors watch each node
    suspect_after: float = 0.28  # silence before a monitor starts probing
    probe_timeout: float = 0.15  # direct + indirect probes must all fail within this
    indirect_probes: int = 2  # helpers asked to ping the suspect (SWIM ping-req)
    fanout: int = 0  # dissemination fan-out; 0 = max(3, ceil(log2 n))
    sync_interval: float = 1.0  # anti-entropy digest exchange with one random peer
    dead_probe_interval: float = 1.0  # contact one dead/unknown peer (partition heal)
    join_wait: float = 1.0  # how long a new node waits for the cluster's state
    hold_down: float = 3.0  # a (re)started node takes addresses only after this
    lag_guard: float = 0.1  # our own loop lateness above which we convict no one
    left_retention: float = 30.0
    dead_retention: float = 600.0

    def fanout_for(self, n: int) -> int:
        if self.fanout:
            return self.fanout
        return max(3, math.ceil(math.log2(max(n, 2))))

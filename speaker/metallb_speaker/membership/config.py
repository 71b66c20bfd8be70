"""Membership timers. Defaults meet "a hard-dead speaker is declared dead by all others
within 500 ms" (and a client-visible failover p50 under 400 ms) while tolerating 250 ms
stalls of a peer's event loop:

    detection <= suspect_after + probe_timeout + tick + dissemination
              ~= 0.20 + 0.13 + 0.01 + a few ms  (~0.33 s)
    a stalled peer is convicted only if silent > suspect_after + probe_timeout (0.33 s),
    because it answers the direct/indirect probes as soon as it runs again; a 250 ms
    stall silences it for at most 250 ms + one heartbeat interval (0.275 s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class MembershipConfig:
    heartbeat_interval: float = 0.025  # each node -> its k monitors
    monitors: int = 3  # k: how many ring successors watch each node
    suspect_after: float = 0.20  # silence before a monitor starts probing
    probe_timeout: float = 0.13  # direct + indirect probes must all fail within this
    indirect_probes: int = 2  # helpers asked to ping the suspect (SWIM ping-req)
    fanout: int = 0  # dissemination fan-out; 0 = max(3, ceil(log2 n))
    sync_interval: float = 1.0  # anti-entropy digest exchange with one random peer
    dead_probe_interval: float = 1.0  # contact one dead/unknown peer (partition heal)
    join_wait: float = 1.0  # how long a new node waits for the cluster's state
    # ... when discovery knows no other speaker. When it does, a new node waits to hear
    # from one (a starved new process must not think it is alone and take every
    # address); this long at most, in case every speaker it knows of is gone.
    alone_after: float = 10.0
    hold_down: float = 3.0  # a (re)started node takes addresses only after this
    lag_guard: float = 0.1  # our own loop lateness above which we convict no one
    left_retention: float = 30.0
    dead_retention: float = 600.0

    def fanout_for(self, n: int) -> int:
        if self.fanout:
            return self.fanout
        return max(3, math.ceil(math.log2(max(n, 2))))

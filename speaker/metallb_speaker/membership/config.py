"""Membership timers. Defaults meet "a hard-dead speaker is declared dead by all others
within 500 ms" while tolerating 250 ms stalls of a peer's event loop without even a
suspicion, and longer ones without moving an address:

    suspicion <= suspect_after + probe_timeout + tick  ~= 0.18 + 0.12 + 0.01  (~0.31 s)
    detection <= suspicion + suspicion_min + dissemination  (~0.46 s) when the node's
              other monitors confirm it (they all watch the same heartbeats, so a dead
              node is confirmed by all of them within a few ms);
              up to suspicion + suspicion_max when its accuser is alone in suspecting it
              (the accuser may be the sick one: Lifeguard's dynamic suspicion timeout).
    a stalled peer is suspected only if silent > suspect_after + probe_timeout (0.30 s),
    because it answers the direct/indirect probes as soon as it runs again (a 250 ms
    stall silences it for at most 250 ms + one heartbeat interval = 0.275 s); a longer
    stall is refuted as soon as the peer runs and reads that it is suspected, before
    anyone moves its addresses if that is within suspicion_min.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class MembershipConfig:
    heartbeat_interval: float = 0.025  # each node -> its k monitors
    monitors: int = 3  # k: how many ring successors watch each node
    suspect_after: float = 0.18  # silence before a monitor starts probing
    probe_timeout: float = 0.12  # direct + indirect probes must all fail within this
    # A failed probe makes the node SUSPECT (still alive, keeps its addresses); it is
    # declared DEAD after a timeout that shrinks from suspicion_max to suspicion_min as
    # independent accusers (the node's other monitors) confirm it. The suspect refutes
    # with a higher incarnation as soon as it hears of it.
    # 0.15: a woken process needs tens of ms to read its backlog and refute (0.10 let
    # 2 of 10 stalls of 350 ms through in the soak, bench.membership).
    suspicion_min: float = 0.15
    suspicion_max: float = 1.0
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

    def suspicion_timeout(self, accusers: int, watchers: int) -> float:
        """Lifeguard's timeout: max(min, max - (max - min) * log(c + 1) / log(k + 1)),
        c = confirmations beyond the first accuser, k = how many are possible: the
        subject's monitors in good standing (not suspected themselves: when a rack goes
        down, its nodes' other monitors go with it) other than the first accuser."""
        possible = watchers - 1
        if possible < 1:
            return self.suspicion_min
        c = min(max(accusers - 1, 0), possible)
        shrink = math.log(c + 1) / math.log(possible + 1)
        return max(self.suspicion_min,
                   self.suspicion_max - (self.suspicion_max - self.suspicion_min) * shrink)

    def fanout_for(self, n: int) -> int:
        if self.fanout:
            return self.fanout
        return max(3, math.ceil(math.log2(max(n, 2))))

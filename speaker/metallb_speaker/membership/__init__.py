"""Node liveness among speakers, leaderless and O(k) messages per node (pure core).

See docs/gossip-protocol.md. `Membership` is a state machine: the shell feeds it
received messages and clock ticks and sends what it returns; the simulator does the
same with a simulated network, so tests and benches run the real protocol code.
"""

from metallb_speaker.membership.config import MembershipConfig
from metallb_speaker.membership.protocol import Change, Membership, Send, View

__all__ = ["Change", "Membership", "MembershipConfig", "Send", "View"]

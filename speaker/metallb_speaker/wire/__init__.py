"""Pure L2 wire formats of the speaker: Ethernet, ARP, NDP and the cBPF socket filters.

No sockets or event loops here (an import-linter contract keeps it so): everything is
bytes in, bytes or a `DropReason` out, so it is tested byte-for-byte and fuzzed. The
responder hot paths are `arp.arp_answer` and `ndp.ndp_answer`.
"""

from metallb_speaker.wire.arp import arp_answer
from metallb_speaker.wire.ethernet import DropReason
from metallb_speaker.wire.ndp import ndp_answer

__all__ = ["DropReason", "arp_answer", "ndp_answer"]

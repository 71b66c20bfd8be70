"""Pure address allocator (no Kubernetes, kopf, zmq or socket imports)."""

from metallb_operator.allocator.allocator import (
    Allocator,
    Holding,
    PoolUsage,
    SharingKey,
    restore_order,
    wanted_families,
)
from metallb_operator.allocator.reasons import (
    Allocated,
    AllocationFailure,
    FailureReason,
    Result,
)
from metallb_operator.allocator.taken import TakenSet

__all__ = [
    "Allocated",
    "AllocationFailure",
    "Allocator",
    "FailureReason",
    "Holding",
    "PoolUsage",
    "Result",
    "SharingKey",
    "TakenSet",
    "restore_order",
    "wanted_families",
]

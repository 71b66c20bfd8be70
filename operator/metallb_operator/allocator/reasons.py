"""Why an allocation did not happen: reasons, not bools. Reasons are stable strings that
go into logs (`reason` key), Events and the failure metric's label."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from metallb_api.addresses import IP


class FailureReason(StrEnum):
    NO_POOLS = "NoPoolAvailable"
    POOL_EXHAUSTED = "PoolExhausted"
    REQUESTED_POOL_NOT_FOUND = "RequestedPoolNotFound"
    REQUESTED_POOL_NOT_READY = "RequestedPoolNotReady"
    REQUESTED_IP_NOT_IN_POOL = "RequestedIPNotInPool"
    REQUESTED_IP_IN_USE = "RequestedIPInUse"
    REQUESTED_IPS_IN_DIFFERENT_POOLS = "RequestedIPsInDifferentPools"
    POOL_NOT_ALLOWED = "PoolNotAllowedForService"
    FAMILY_MISMATCH = "IPFamilyMismatch"


@dataclass(frozen=True)
class AllocationFailure:
    reason: FailureReason
    message: str
    cleared: tuple[IP, ...] = ()  # addresses the Service held before and has now lost
    # Addresses it still holds: a move its own request asked for failed, and what it had
    # is otherwise still valid (never both cleared and kept).
    kept: tuple[IP, ...] = ()


class Allocated(NamedTuple):
    """Success. A NamedTuple because one is built per allocation (hot path)."""

    ips: tuple[IP, ...]
    pools: tuple[str, ...]  # pool of each ip, same order
    changed: bool
    previous: tuple[IP, ...] = ()
    # Why `previous` was left when the Service's own request (loadBalancerIPs,
    # address-pool) asked for the move; "" when the configuration moved it.
    requested: str = ""


Result = Allocated | AllocationFailure

"""Who watches whom: members on a hash ring; each node is monitored by its k
successors. Every node sends heartbeats to k monitors and watches ~k subjects, so the
per-node message rate is O(k), independent of cluster size."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def ring_order(names: Iterable[str]) -> list[str]:
    return sorted(names, key=lambda n: hashlib.sha256(n.encode()).digest())


def monitors_of(name: str, ring: list[str], k: int) -> list[str]:
    """The k successors of `name` on the ring (fewer if the ring is small)."""
    if name not in ring or len(ring) < 2:
        return []
    i = ring.index(name)
    n = len(ring)
    return [ring[(i + j) % n] for j in range(1, min(k, n - 1) + 1)]


def subjects_of(name: str, ring: list[str], k: int) -> list[str]:
    """The k predecessors: the nodes `name` is a monitor of."""
    if name not in ring or len(ring) < 2:
        return []
    i = ring.index(name)
    n = len(ring)
    return [ring[(i - j) % n] for j in range(1, min(k, n - 1) + 1)]

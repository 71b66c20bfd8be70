"""Taken addresses of one IP family as sorted, disjoint, non-adjacent intervals.

Memory is O(k) where k is the number of maximal runs of taken addresses (k <= number of
taken addresses), never O(pool size): an IPv6 /64 or an IPv4 /8 costs nothing until
addresses are handed out.

Complexity (k = runs): `contains` O(log k); `first_free` O(log k), because runs are
merged, the address right after a run is always free; `add`/`remove` O(log k) to find
the run plus an O(k) memmove only when a run is created, split or merged (extending a
run at either end, the common case for lowest-free allocation, moves nothing).
"""

from __future__ import annotations

from bisect import bisect_right


class TakenSet:
    __slots__ = ("_count", "_ends", "_starts")

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def runs(self) -> int:
        return len(self._starts)

    def contains(self, x: int) -> bool:
        i = bisect_right(self._starts, x) - 1
        return i >= 0 and self._ends[i] >= x

    def first_free(self, lo: int, hi: int) -> int | None:
        """Lowest address in [lo, hi] that is not taken, or None."""
        i = bisect_right(self._starts, lo) - 1
        x = lo
        if i >= 0 and self._ends[i] >= x:
            x = self._ends[i] + 1
        return x if x <= hi else None

    def add(self, x: int) -> None:
        starts, ends = self._starts, self._ends
        i = bisect_right(starts, x)  # first run starting after x
        if i > 0 and ends[i - 1] >= x:
            raise ValueError(f"{x} is already taken")
        joins_left = i > 0 and ends[i - 1] == x - 1
        joins_right = i < len(starts) and starts[i] == x + 1
        if joins_left and joins_right:
            ends[i - 1] = ends[i]
            del starts[i]
            del ends[i]
        elif joins_left:
            ends[i - 1] = x
        elif joins_right:
            starts[i] = x
        else:
            starts.insert(i, x)
            ends.insert(i, x)
        self._count += 1

    def remove(self, x: int) -> None:
        starts, ends = self._starts, self._ends
        i = bisect_right(starts, x) - 1
        if i < 0 or ends[i] < x:
            raise ValueError(f"{x} is not taken")
        s, e = starts[i], ends[i]
        if s == e:
            del starts[i]
            del ends[i]
        elif x == s:
            starts[i] = x + 1
        elif x == e:
            ends[i] = x - 1
        else:
            ends[i] = x - 1
            starts.insert(i + 1, x + 1)
            ends.insert(i + 1, e)
        self._count -= 1

    def count_in(self, lo: int, hi: int) -> int:
        """Taken addresses in [lo, hi]; O(log k + runs inside)."""
        starts, ends = self._starts, self._ends
        i = max(bisect_right(starts, lo) - 1, 0)
        total = 0
        while i < len(starts) and starts[i] <= hi:
            a, b = max(starts[i], lo), min(ends[i], hi)
            if a <= b:
                total += b - a + 1
            i += 1
        return total

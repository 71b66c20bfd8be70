"""Drop replayed or stale gossip: per sender, (boot, seq) must move forward.

`boot` is the sender's process start (milliseconds << 16 | random), so a restarted
speaker is accepted at once while messages of its previous life are refused."""

from __future__ import annotations

from enum import StrEnum

from metallb_speaker.wire.gossip import Header


class ReplayDrop(StrEnum):
    REPLAY = "replay"
    STALE_BOOT = "stale_boot"


class ReplayGuard:
    def __init__(self) -> None:
        self._last: dict[str, tuple[int, int]] = {}

    def check(self, h: Header) -> ReplayDrop | None:
        last = self._last.get(h.sender)
        if last is not None:
            boot, seq = last
            if h.boot < boot:
                return ReplayDrop.STALE_BOOT
            if h.boot == boot and h.seq <= seq:
                return ReplayDrop.REPLAY
        self._last[h.sender] = (h.boot, h.seq)
        return None

    def forget(self, sender: str) -> None:
        self._last.pop(sender, None)

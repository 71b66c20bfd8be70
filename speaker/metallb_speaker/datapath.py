"""Does another node still forward Service traffic? Its kube-proxy says so: `/healthz`
answers 200 while its rules are in sync, 503 when they are stale or the node is going
away, and nothing at all when the node is down.

A speaker that takes an address over from a node whose speaker left gracefully (a
rolling restart) or which now ranks lower (a reclaim) asks this first: if that node
still forwards, established clients keep sending there and nobody's connection breaks
(an ARP/NDP move resets every connection in flight). The takeover turns loud - the
gratuitous ARP/NA - the moment that node stops forwarding.
"""

from __future__ import annotations

import aiohttp

from metallb_speaker.quiet import FORWARDS, PathVerdict


class DataPathCheck:
    def __init__(self, port: int, timeout: float = 0.3) -> None:
        self.port = port
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    @property
    def enabled(self) -> bool:
        return self.port > 0

    async def check(self, address: str | None) -> PathVerdict:
        """Does the node at `address` forward? A 503 is its kube-proxy's own verdict;
        silence is weaker evidence (quiet.py decides how long it must last)."""
        if not self.enabled:
            return PathVerdict("data path checks are off", definitive=True)
        if not address:
            return PathVerdict("the node has no InternalIP", definitive=True)
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        host = f"[{address}]" if ":" in address else address
        try:
            async with self._session.get(f"http://{host}:{self.port}/healthz") as resp:
                if resp.status == 200:
                    return FORWARDS
                return PathVerdict(f"its kube-proxy /healthz answered {resp.status}",
                                   definitive=True)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return PathVerdict(f"its kube-proxy /healthz did not answer "
                               f"({type(exc).__name__})")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

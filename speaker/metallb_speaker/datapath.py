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


class DataPathCheck:
    def __init__(self, port: int, timeout: float = 0.3) -> None:
        self.port = port
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    @property
    def enabled(self) -> bool:
        return self.port > 0

    async def down(self, address: str | None) -> str | None:
        """None if the node at `address` forwards, else why we think it does not."""
        if not self.enabled:
            return "data path checks are off"
        if not address:
            return "the node has no InternalIP"
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        host = f"[{address}]" if ":" in address else address
        try:
            async with self._session.get(f"http://{host}:{self.port}/healthz") as resp:
                if resp.status == 200:
                    return None
                return f"its kube-proxy /healthz answered {resp.status}"
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return f"its kube-proxy /healthz did not answer ({type(exc).__name__})"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

"""The boundary between the speaker's brain and its data plane.

The controller decides "this node owns IP X on interfaces Y" and calls
`Announcer.set_owned`; the data plane (ARP/NDP responders) makes it true on the wire.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from metallb_api.addresses import IP


class Announcer(Protocol):
    def set_owned(self, owned: Mapping[IP, tuple[str, ...]],
                  probe: frozenset[IP] = frozenset(), quiet: frozenset[IP] = frozenset()
                  ) -> None:
        """Owned addresses -> interfaces to announce on (() = every eligible one).
        Addresses in `probe` are new to the cluster: check nobody else uses them first.
        Addresses in `quiet` are taken over from a node that still forwards: answer
        requests, but send no gratuitous announcements until `announce()`."""

    def interfaces_for(self, ip: IP) -> tuple[str, ...]:
        """Where `ip` is actually being announced right now."""

    def reannounce(self) -> None:
        """Announce every owned address again (someone may have taken them meanwhile)."""

    def announce(self, ips: frozenset[IP]) -> None:
        """Start the gratuitous announcements of quietly taken-over addresses."""

    def close(self) -> None: ...


class MembershipOnly:
    """`--no-dataplane`: decide and report, but put nothing on the wire. For running
    speakers without root (membership tests and benches)."""

    def __init__(self) -> None:
        self.owned: dict[IP, tuple[str, ...]] = {}
        self.quiet: set[IP] = set()

    def set_owned(self, owned: Mapping[IP, tuple[str, ...]],
                  probe: frozenset[IP] = frozenset(), quiet: frozenset[IP] = frozenset()
                  ) -> None:
        self.quiet = (self.quiet | quiet) & set(owned)
        self.owned = dict(owned)

    def interfaces_for(self, ip: IP) -> tuple[str, ...]:
        return self.owned.get(ip, ())

    def reannounce(self) -> None:
        self.quiet.clear()

    def announce(self, ips: frozenset[IP]) -> None:
        self.quiet -= ips

    def close(self) -> None:
        self.owned = {}

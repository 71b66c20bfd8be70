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
                  probe: frozenset[IP] = frozenset()) -> None:
        """Owned addresses -> interfaces to announce on (() = every eligible one).
        Addresses in `probe` are new to the cluster: check nobody else uses them first."""

    def interfaces_for(self, ip: IP) -> tuple[str, ...]:
        """Where `ip` is actually being announced right now."""

    def reannounce(self) -> None:
        """Announce every owned address again (someone may have taken them meanwhile)."""

    def close(self) -> None: ...


class MembershipOnly:
    """`--no-dataplane`: decide and report, but put nothing on the wire. For running
    speakers without root (membership tests and benches)."""

    def __init__(self) -> None:
        self.owned: dict[IP, tuple[str, ...]] = {}

    def set_owned(self, owned: Mapping[IP, tuple[str, ...]],
                  probe: frozenset[IP] = frozenset()) -> None:
        self.owned = dict(owned)

    def interfaces_for(self, ip: IP) -> tuple[str, ...]:
        return self.owned.get(ip, ())

    def reannounce(self) -> None:
        pass

    def close(self) -> None:
        self.owned = {}

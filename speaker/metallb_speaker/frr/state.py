"""FRR's session state, parsed from `show bgp vrf all neighbors json` and `show bfd peers
json` (FRR 8.x shapes, as MetalLB's internal/bgp/frr/parse.go reads them). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BGPSession:
    peer: str  # the neighbor's address (or interface)
    vrf: str  # "default" for the default VRF, as FRR and MetalLB's metrics say
    port: int
    state: str  # FRR's bgpState: Established, Active, Connect, Idle, ...
    prefixes_sent: int
    updates_sent: int
    opens_sent: int
    opens_received: int
    notifications_sent: int
    updates_received: int
    keepalives_sent: int
    keepalives_received: int
    route_refresh_sent: int
    total_sent: int
    total_received: int
    out_queue: int  # messages not yet sent (depthOutq)

    @property
    def up(self) -> bool:
        return self.state == "Established"

    @property
    def label(self) -> str:
        """MetalLB's `peer` label: address:port."""
        return f"{self.peer}:{self.port}"


@dataclass(frozen=True)
class BFDSession:
    peer: str
    vrf: str
    status: str  # up, down, init, ...
    control_packet_input: int = 0
    control_packet_output: int = 0
    echo_packet_input: int = 0
    echo_packet_output: int = 0
    session_up_events: int = 0
    session_down_events: int = 0
    zebra_notifications: int = 0

    @property
    def up(self) -> bool:
        return self.status == "up"


def _int(v: Any) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def parse_neighbors(doc: Any) -> list[BGPSession]:
    """`show bgp vrf all neighbors json`: {vrf: {"vrfId", "vrfName", peer: {...}}}."""
    out: list[BGPSession] = []
    if not isinstance(doc, Mapping):
        return out
    for vrf, body in sorted(doc.items()):
        if not isinstance(body, Mapping):
            continue
        for peer, n in sorted(body.items()):
            if not isinstance(n, Mapping) or "bgpState" not in n:
                continue
            stats = n.get("messageStats") or {}
            families = n.get("addressFamilyInfo") or {}
            sent = sum(_int((f or {}).get("sentPrefixCounter")) for f in families.values()
                       if isinstance(f, Mapping))
            out.append(BGPSession(
                peer=str(peer), vrf=str(body.get("vrfName") or vrf),
                port=_int(n.get("portForeign")) or 179, state=str(n.get("bgpState")),
                prefixes_sent=sent, updates_sent=_int(stats.get("updatesSent")),
                opens_sent=_int(stats.get("opensSent")),
                opens_received=_int(stats.get("opensRecv")),
                notifications_sent=_int(stats.get("notificationsSent")),
                updates_received=_int(stats.get("updatesRecv")),
                keepalives_sent=_int(stats.get("keepalivesSent")),
                keepalives_received=_int(stats.get("keepalivesRecv")),
                route_refresh_sent=_int(stats.get("routeRefreshSent")),
                total_sent=_int(stats.get("totalSent")),
                total_received=_int(stats.get("totalRecv")),
                out_queue=_int(stats.get("depthOutq"))))
    return out


def parse_bfd(peers: Any, counters: Any = None) -> list[BFDSession]:
    """`show bfd peers json` (a list), with `show bfd peers counters json` if given."""
    if not isinstance(peers, list):
        return []
    counts: dict[tuple[str, str], Mapping[str, Any]] = {}
    for c in counters if isinstance(counters, list) else []:
        if isinstance(c, Mapping):
            counts[(str(c.get("peer")), str(c.get("vrf") or "default"))] = c
    out = []
    for p in peers:
        if not isinstance(p, Mapping) or "peer" not in p:
            continue
        key = (str(p["peer"]), str(p.get("vrf") or "default"))
        c = counts.get(key, {})
        out.append(BFDSession(
            key[0], key[1], str(p.get("status")),
            _int(c.get("control-packet-input")), _int(c.get("control-packet-output")),
            _int(c.get("echo-packet-input")), _int(c.get("echo-packet-output")),
            _int(c.get("session-up")), _int(c.get("session-down")),
            _int(c.get("zebra-notifications"))))
    return sorted(out, key=lambda s: (s.vrf, s.peer))


def sessions_problem(sessions: list[BGPSession], configured: bool, age: float,
                     grace: float) -> str | None:
    """For readiness after a (re)start: why this node does not carry its announcements
    yet. A DaemonSet rollout moves to the next node when this one is Ready; Ready before
    its sessions are back would let the rollout take the next node's routes away while
    this one's are still missing (seen: every next hop gone at once, for seconds). A
    peer that stays down must not block rollouts forever: after `grace` seconds of life
    the sessions no longer count. `configured`: FRR holds the wanted configuration (its
    neighbors are all listed, even those not up)."""
    if age >= grace:
        return None
    if not configured:
        return "FRR does not hold the BGP configuration yet"
    down = sorted(s.label for s in sessions if not s.up)
    if down:
        return f"BGP sessions not established yet: {', '.join(down)}"
    busy = sorted(s.label for s in sessions if s.out_queue)
    if busy:
        return f"BGP updates not sent yet: {', '.join(busy)}"
    return None

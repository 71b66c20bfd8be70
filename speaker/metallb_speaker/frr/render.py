"""The whole frr.conf for one node, from the BGP model and what the node announces.

Pure and deterministic (everything sorted), so a changed configuration is a changed text
and golden files pin it down. The FRR statements are those of MetalLB's FRR mode (its
templates in internal/bgp/frr, learnt from, not copied): one `router bgp` per VRF with
the same global switches (`no bgp ebgp-requires-policy`, `no bgp network
import-check`, `no bgp default ipv4-unicast` + `activate` per address family), a deny-all
inbound route-map and an outbound one per neighbor that permits only the prefixes meant
for it and attaches their communities and local preference, and BFD profiles.

Deliberate differences (docs/compatibility.md, BGP section):
- graceful restart is advertised only to peers that ask for it (enableGracefulRestart):
  every other neighbor gets `graceful-restart-disable`. FRR otherwise advertises it by
  default, and a peer then keeps a hung node as next hop for hold + restart time (122 s
  measured) even with BFD.
- LOCAL_PREF is set only towards iBGP neighbors (eBGP never carries it; FRR drops it).
- only the BFD profiles this node's sessions use are written.
- logs go to stdout (the container's log), not /etc/frr/frr.log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from metallb_api.addresses import Family
from metallb_api.bgp import (
    Advertised,
    BFDProfileConfig,
    BGPConfig,
    PeerConfig,
    Prefix,
    merge,
    usable_password,
)

NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class FRRSettings:
    log_level: str = "informational"


def _afi(family: Family) -> str:
    return "ipv4" if family is Family.V4 else "ipv6"


def _ip_kw(family: Family) -> str:
    """`ip` or `ipv6`, as in `ip prefix-list` and `match ipv6 address`."""
    return "ip" if family is Family.V4 else "ipv6"


@dataclass(frozen=True)
class _Neighbor:
    peer: PeerConfig
    password: str
    # per family: prefix -> (communities as "a:b" / "large:a:b:c", local preference)
    prefixes: Mapping[Family, Mapping[Prefix, Advertised]]

    @property
    def where(self) -> str:
        """How FRR names the neighbor: its address, or the interface of an unnumbered
        session."""
        return self.peer.address or self.peer.interface

    @property
    def id(self) -> str:
        """Prefix of its prefix-list and route-map names (unique per node)."""
        return self.where + (f"-{self.peer.vrf}" if self.peer.vrf else "")

    @property
    def remote_as(self) -> str:
        return self.peer.dynamic_asn or str(self.peer.peer_asn)

    def disable_connected_check(self) -> bool:
        """MetalLB's rule: a single-hop eBGP session over IPv6 alone (not dual-stack, not
        unnumbered) peers with an address FRR might not consider connected."""
        p = self.peer
        return (p.family is Family.V6 and not p.dual_stack and not p.ebgp_multihop
                and not p.ibgp)


def render(config: BGPConfig, node_name: str, node_labels: Mapping[str, str],
           advertised: Iterable[Advertised], *, passwords: Mapping[str, str] | None = None,
           settings: FRRSettings = FRRSettings()) -> str:
    """frr.conf for `node_name`: a session to each peer selecting the node, announcing
    `advertised` (from `metallb_api.bgp.advertised_for`; entries naming other peers or
    a family the session does not carry are ignored).

    `passwords` holds the passwords read from the peers' passwordSecrets (by peer name):
    a peer whose Secret could not be read, or holds a password frr.conf cannot carry
    (blanks, over 80 characters), gets no session rather than one without it."""
    passwords = passwords or {}
    peers = [p for p in config.peers_for_node(node_labels)
             if not p.password_secret or usable_password(passwords.get(p.name, ""))]
    by_peer: dict[str, dict[Family, dict[Prefix, Advertised]]] = {}
    for (peer_name, prefix), adv in merge(advertised).items():
        by_peer.setdefault(peer_name, {}).setdefault(prefix.family, {})[prefix] = adv
    neighbors = []
    for p in peers:
        fams = {f: by_peer.get(p.name, {}).get(f, {}) for f in sorted(p.families())}
        neighbors.append(_Neighbor(p, p.password or passwords.get(p.name, ""), fams))
    neighbors.sort(key=lambda n: (n.peer.vrf, n.id))

    out = [
        f"! frr.conf for node {node_name}, rendered by metallb-py's speaker: do not edit",
        f"hostname {node_name}",
        f"log stdout {settings.log_level}",
        "log timestamp precision 3",
        "ip nht resolve-via-default",
        "ipv6 nht resolve-via-default",
        "!",
    ]
    used = sorted({n.peer.bfd_profile for n in neighbors if n.peer.bfd_profile})
    if used:
        out.append("bfd")
        for name in used:
            out.extend(_bfd_profile(config.bfd_profiles[name]))
        out += ["exit", "!"]
    for n in neighbors:
        out.extend(_policy(n))
    vrfs = sorted({n.peer.vrf for n in neighbors})
    for vrf in vrfs:
        out.extend(_router([n for n in neighbors if n.peer.vrf == vrf]))
    out.append("end")
    return "\n".join(out) + "\n"


def _bfd_profile(p: BFDProfileConfig) -> list[str]:
    lines = [f" profile {p.name}"]
    if p.receive_interval is not None:
        lines.append(f"  receive-interval {p.receive_interval}")
    if p.transmit_interval is not None:
        lines.append(f"  transmit-interval {p.transmit_interval}")
    if p.detect_multiplier is not None:
        lines.append(f"  detect-multiplier {p.detect_multiplier}")
    if p.echo_mode:
        lines.append("  echo-mode")
    if p.echo_interval is not None:
        lines.append(f"  echo receive-interval {p.echo_interval}")
        lines.append(f"  echo transmit-interval {p.echo_interval}")
    if p.passive_mode:
        lines.append("  passive-mode")
    if p.minimum_ttl is not None:
        lines.append(f"  minimum-ttl {p.minimum_ttl}")
    lines.append(" exit")
    return lines


def _policy(n: _Neighbor) -> list[str]:
    """Prefix lists and route-maps of one neighbor: nothing in; out, only its prefixes,
    each with its communities and local preference (entries that set and go on)."""
    out = [f"route-map {n.id}-in deny 20", "exit"]
    maps: list[tuple[list[str], list[str]]] = []  # (prefix-list lines, route-map body)
    for family, prefixes in sorted(n.prefixes.items()):
        fam = _afi(family)
        setters: dict[tuple[int, str, str], list[Prefix]] = {}
        for prefix, adv in sorted(prefixes.items()):
            if adv.local_pref and n.peer.ibgp:
                key = (0, f"localpref-{adv.local_pref}",
                       f"set local-preference {adv.local_pref}")
                setters.setdefault(key, []).append(prefix)
            for c in sorted(adv.communities):
                verb = "large-community" if c.large else "community"
                key = (1, f"community-{c}", f"set {verb} {c.value} additive")
                setters.setdefault(key, []).append(prefix)
        for (_, label, set_line), members in sorted(setters.items()):
            name = f"{n.id}-{label}-{fam}"
            lists = [f"{_ip_kw(family)} prefix-list {name} seq {i} permit {p}"
                     for i, p in enumerate(members, 1)]
            maps.append((lists, [f" match {_ip_kw(family)} address prefix-list {name}",
                                 f" {set_line}", " on-match next"]))
    for family in sorted(n.prefixes):
        name = f"{n.id}-allowed-{_afi(family)}"
        members = sorted(n.prefixes[family])
        lists = ([f"{_ip_kw(family)} prefix-list {name} seq {i} permit {p}"
                  for i, p in enumerate(members, 1)]
                 or [f"{_ip_kw(family)} prefix-list {name} seq 1 deny any"])
        maps.append((lists, [f" match {_ip_kw(family)} address prefix-list {name}"]))
    for seq, (lists, body) in enumerate(maps, 1):
        out.extend(lists)
        out.append(f"route-map {n.id}-out permit {seq}")
        out.extend(body)
        out.append("exit")
    out.append("!")
    return out


def _router(neighbors: list[_Neighbor]) -> list[str]:
    """One `router bgp` (the model guarantees one myASN and routerID per VRF on a node)."""
    first = neighbors[0].peer
    out = [f"router bgp {first.my_asn}" + (f" vrf {first.vrf}" if first.vrf else "")]
    if first.router_id:
        out.append(f" bgp router-id {first.router_id}")
    out += [" no bgp ebgp-requires-policy", " no bgp network import-check",
            " no bgp default ipv4-unicast"]
    if any(n.peer.graceful_restart for n in neighbors):
        out.append(" bgp graceful-restart preserve-fw-state")
    for n in neighbors:
        out.extend(_session(n))
    for family in Family:
        active = [n for n in neighbors if family in n.prefixes]
        if not active:
            continue
        networks = sorted({p for n in active for p in n.prefixes[family]})
        out.append(f" address-family {_afi(family)} unicast")
        out.extend(f"  network {p}" for p in networks)
        for n in active:
            out += [f"  neighbor {n.where} activate",
                    f"  neighbor {n.where} route-map {n.id}-in in",
                    f"  neighbor {n.where} route-map {n.id}-out out"]
        out.append(" exit-address-family")
    out += ["exit", "!"]
    return out


def _session(n: _Neighbor) -> list[str]:
    p, w = n.peer, n.where
    out = [f" neighbor {w} interface remote-as {n.remote_as}" if p.interface
           else f" neighbor {w} remote-as {n.remote_as}"]
    if p.local_asn:
        out.append(f" neighbor {w} local-as {p.local_asn} no-prepend replace-as")
    if p.address:
        out.append(f" neighbor {w} port {p.port}")
    if p.ebgp_multihop:
        out.append(f" neighbor {w} ebgp-multihop")
    if p.source_address:
        out.append(f" neighbor {w} update-source {p.source_address}")
    if n.password:
        out.append(f" neighbor {w} password {n.password}")
    if p.hold_time_ns is not None and p.keepalive_time_ns is not None:
        out.append(f" neighbor {w} timers {p.keepalive_time_ns // NS_PER_S} "
                   f"{p.hold_time_ns // NS_PER_S}")
    if p.connect_time_s is not None:
        out.append(f" neighbor {w} timers connect {p.connect_time_s}")
    if p.bfd_profile:
        out += [f" neighbor {w} bfd", f" neighbor {w} bfd profile {p.bfd_profile}"]
    out.append(f" neighbor {w} graceful-restart" if p.graceful_restart
               else f" neighbor {w} graceful-restart-disable")
    if n.disable_connected_check():
        out.append(f" neighbor {w} disable-connected-check")
    return out

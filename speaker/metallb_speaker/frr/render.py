"""The whole frr.conf for one node, from the BGP model and what the node announces.

Pure and deterministic (everything sorted), so a changed configuration is a changed text
and golden files pin it down. The FRR statements are those of MetalLB's FRR mode (its
templates in internal/bgp/frr, learnt from, not copied): one `router bgp` per VRF with
the same global switches (`no bgp ebgp-requires-policy`, `no bgp network
import-check`, `no bgp default ipv4-unicast` + `activate` per address family), a deny-all
inbound route-map, an outbound one per neighbor that permits only the prefixes meant for
it and attaches their communities and local preference, and BFD profiles.

Which prefixes go to which neighbor with which attributes is carried by a tag, not by
prefix lists (MetalLB's templates list every prefix in a prefix-list per neighbor): each
distinct "class" of prefix (to which peers, with which communities and local preference)
gets a tag, derived from the class itself so it is stable; `network P route-map
mlb-tag-T` sets it when the prefix is originated, and each neighbor's outbound route-map
has one entry per class it receives (`match tag T` + that peer's `set` lines), then
denies the rest. Adding or removing a prefix is then one `network` line: FRR 8.4 takes
~17 s to add 1,000 prefix-list entries through vtysh (and grows faster than linearly:
240 s for 3,000), but ~1 s for 10,000 `network` lines.

Deliberate differences (docs/compatibility.md, BGP section):
- graceful restart is advertised only to peers that ask for it (enableGracefulRestart):
  every other neighbor gets `graceful-restart-disable`. FRR otherwise advertises it by
  default, and a peer then keeps a hung node as next hop for hold + restart time (122 s
  measured) even with BFD.
- LOCAL_PREF is set only towards iBGP neighbors (eBGP never carries it; FRR drops it).
- only the BFD profiles this node's sessions use are written.
- logs go to stdout (the container's log), not /etc/frr/frr.log.
- prefixes are selected per neighbor by tag, not by per-prefix prefix lists (above).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from metallb_api.addresses import Family
from metallb_api.bgp import (
    Advertised,
    BFDProfileConfig,
    BGPConfig,
    Community,
    PeerConfig,
    Prefix,
    merge,
    usable_password,
)

NS_PER_S = 1_000_000_000
DENY_SEQ = 65535  # the outbound route-map's last entry: anything not tagged for it


@dataclass(frozen=True)
class FRRSettings:
    log_level: str = "informational"


def _afi(family: Family) -> str:
    return "ipv4" if family is Family.V4 else "ipv6"


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
           settings: FRRSettings = FRRSettings(), node_router_id: str = "") -> str:
    """frr.conf for `node_name`: a session to each peer selecting the node, announcing
    `advertised` (from `metallb_api.bgp.advertised_for`; entries naming other peers or
    a family the session does not carry are ignored).

    `passwords` holds the passwords read from the peers' passwordSecrets (by peer name):
    a peer whose Secret could not be read, or holds a password frr.conf cannot carry
    (blanks, over 80 characters), gets no session rather than one without it.

    `node_router_id` (the node's IPv4 address) is the default VRF's router ID when no
    peer sets routerID: left to itself, zebra picks the highest address of the node,
    which may be a Service address (kube-proxy's IPVS dummy interface, a VIP on lo) and
    changes when that Service goes, resetting every session."""
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
    tags = _classes(neighbors)

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
    for tag in sorted({t for by_prefix in tags.values() for t in by_prefix.values()}):
        out += [f"route-map mlb-tag-{tag} permit 1", f" set tag {tag}", "exit"]
    if tags:
        out.append("!")
    for n in neighbors:
        out.extend(_policy(n, tags.get(n.peer.vrf, {})))
    vrfs = sorted({n.peer.vrf for n in neighbors})
    for vrf in vrfs:
        out.extend(_router([n for n in neighbors if n.peer.vrf == vrf], tags.get(vrf, {}),
                           "" if vrf else node_router_id))
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


_Class = tuple[tuple[str, tuple[str, ...], int], ...]  # (neighbor id, communities, pref)


def _sent(n: _Neighbor, adv: Advertised) -> tuple[tuple[Community, ...], int]:
    """What neighbor `n` gets with a prefix: its communities, and LOCAL_PREF for iBGP."""
    return tuple(sorted(adv.communities)), adv.local_pref if n.peer.ibgp else 0


def _tag(cls: _Class) -> int:
    """A class's tag: from its content (stable across renders, so a new Service does not
    renumber the others), in FRR's range 1..2^32-1."""
    digest = hashlib.sha256(repr(cls).encode()).digest()
    return int.from_bytes(digest[:4], "big") % (2**32 - 1) + 1


def _classes(neighbors: list[_Neighbor]) -> dict[str, dict[Prefix, int]]:
    """Per VRF: each announced prefix's tag (the class of who gets it, with what)."""
    members: dict[tuple[str, Prefix], list[tuple[str, tuple[str, ...], int]]] = {}
    for n in neighbors:
        for prefixes in n.prefixes.values():
            for prefix, adv in prefixes.items():
                comms, pref = _sent(n, adv)
                members.setdefault((n.peer.vrf, prefix), []).append(
                    (n.id, tuple(str(c) for c in comms), pref))
    out: dict[str, dict[Prefix, int]] = {}
    for (vrf, prefix), cls in members.items():
        out.setdefault(vrf, {})[prefix] = _tag(tuple(sorted(cls)))
    return out


def _policy(n: _Neighbor, tags: Mapping[Prefix, int]) -> list[str]:
    """Route-maps of one neighbor: nothing in; out, one entry per class of prefix it
    receives (by tag), setting its communities and local preference; the rest denied."""
    out = [f"route-map {n.id}-in deny 20", "exit"]
    entries: dict[int, tuple[tuple[Community, ...], int]] = {}
    for prefixes in n.prefixes.values():
        for prefix, adv in prefixes.items():
            entries[tags[prefix]] = _sent(n, adv)
    for seq, (tag, (comms, pref)) in enumerate(sorted(entries.items()), 1):
        out += [f"route-map {n.id}-out permit {seq}", f" match tag {tag}"]
        if pref:
            out.append(f" set local-preference {pref}")
        regular = " ".join(c.value for c in comms if not c.large)
        large = " ".join(c.value for c in comms if c.large)
        if regular:
            out.append(f" set community {regular} additive")
        if large:
            out.append(f" set large-community {large} additive")
        out.append("exit")
    out += [f"route-map {n.id}-out deny {DENY_SEQ}", "exit", "!"]
    return out


def _router(neighbors: list[_Neighbor], tags: Mapping[Prefix, int],
            default_router_id: str) -> list[str]:
    """One `router bgp` (the model guarantees one myASN and routerID per VRF on a node)."""
    first = neighbors[0].peer
    out = [f"router bgp {first.my_asn}" + (f" vrf {first.vrf}" if first.vrf else "")]
    router_id = first.router_id or default_router_id
    if router_id:
        out.append(f" bgp router-id {router_id}")
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
        out.extend(f"  network {p} route-map mlb-tag-{tags[p]}" for p in networks)
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

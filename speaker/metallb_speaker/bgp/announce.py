"""What this node announces over BGP, per Service, with a reason when it does not. Pure.

MetalLB's rules (speaker/bgp_controller.go ShouldAnnounce, checked in this order):
1. a BGPAdvertisement of the Service's pool must select this node ("notOwner" there;
   here split: `noAdvertisement` when no BGPAdvertisement names the pool at all,
   `notSelected` when none of them selects this node);
2. node conditions: `NetworkUnavailable=True`, then the
   `node.kubernetes.io/exclude-from-external-load-balancers` label (unless switched off);
3. endpoints: `externalTrafficPolicy: Local` needs a serving endpoint on this node,
   and whatever the policy, a Service without any serving endpoint is announced by
   no node (`noLocalEndpoints` / `noEndpoints`).
Unlike layer 2 there is no election: every eligible node announces (the router spreads
traffic over them by ECMP). A Service whose advertisements select the node but reach
none of its peers (advertisement `peers`, or an address family no session carries) is
`noPeer`: nothing to send, said so rather than silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from metallb_api.addresses import IP, AddressError, parse_ip
from metallb_api.bgp import Advertised, BGPConfig, advertised_for
from metallb_api.config import Config
from metallb_speaker.election import EXCLUDE_LABEL, NodeState, ServiceState, pool_of


class BGPReason(StrEnum):
    ANNOUNCED = "announced"
    NO_ADDRESS = "noAddress"  # no ingress address we can parse
    NO_POOL = "noPool"  # its addresses belong to no known pool
    NO_ADVERTISEMENT = "noAdvertisement"  # no BGPAdvertisement names the pool
    NOT_SELECTED = "notSelected"  # MetalLB's notOwner: none selects this node
    NETWORK_UNAVAILABLE = "nodeNetworkUnavailable"
    EXCLUDED_BY_LABEL = "nodeLabeledExcludeBalancers"
    NO_LOCAL_ENDPOINTS = "noLocalEndpoints"
    NO_ENDPOINTS = "noEndpoints"
    NO_PEER = "noPeer"  # selected, but no session of this node would carry it


@dataclass(frozen=True)
class BGPDecision:
    service: str
    reason: BGPReason
    pool: str | None = None
    advertised: tuple[Advertised, ...] = ()  # only when ANNOUNCED

    @property
    def announced(self) -> bool:
        return self.reason is BGPReason.ANNOUNCED

    @property
    def peers(self) -> frozenset[str]:
        """The peers this Service is announced to (ServiceBGPStatus `peers`)."""
        out: set[str] = set()
        for a in self.advertised:
            out |= a.peers
        return frozenset(out)


def _ips(texts: Iterable[str]) -> list[IP]:
    out = []
    for text in texts:
        try:
            out.append(parse_ip(text))
        except AddressError:
            continue
    return out


def decide(config: BGPConfig, pools: Config, node: NodeState, svc: ServiceState, *,
           honor_exclude_label: bool = True) -> BGPDecision:
    """Whether `node` announces `svc` over BGP, and what (prefixes, peers, attributes)."""
    key = svc.key
    ips = _ips(svc.ips)
    if not ips:
        return BGPDecision(key, BGPReason.NO_ADDRESS)
    pool = pool_of(svc, pools)
    if pool is None:
        return BGPDecision(key, BGPReason.NO_POOL)
    advs = [a for a in config.advertisements.values() if pool in a.pools]
    if not advs:
        return BGPDecision(key, BGPReason.NO_ADVERTISEMENT, pool)
    if not any(a.selects_node(node.labels) for a in advs):
        return BGPDecision(key, BGPReason.NOT_SELECTED, pool)
    if node.network_unavailable:
        return BGPDecision(key, BGPReason.NETWORK_UNAVAILABLE, pool)
    if honor_exclude_label and EXCLUDE_LABEL in node.labels:
        return BGPDecision(key, BGPReason.EXCLUDED_BY_LABEL, pool)
    if svc.local and node.name not in svc.endpoint_nodes:
        return BGPDecision(key, BGPReason.NO_LOCAL_ENDPOINTS, pool)
    if not svc.has_endpoints:
        return BGPDecision(key, BGPReason.NO_ENDPOINTS, pool)
    advertised = tuple(advertised_for(config, pool, ips, node.labels))
    if not advertised:
        return BGPDecision(key, BGPReason.NO_PEER, pool)
    return BGPDecision(key, BGPReason.ANNOUNCED, pool, advertised)


def decide_all(config: BGPConfig, pools: Config, node: NodeState,
               services: Mapping[str, ServiceState], *,
               honor_exclude_label: bool = True) -> dict[str, BGPDecision]:
    return {key: decide(config, pools, node, svc, honor_exclude_label=honor_exclude_label)
            for key, svc in services.items()}


def announcement(decisions: Iterable[BGPDecision]) -> list[Advertised]:
    """Everything this node announces (for `frr.render`; it merges duplicates)."""
    return [a for d in decisions if d.announced for a in d.advertised]

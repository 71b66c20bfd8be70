"""Which node announces each Service address: pure, deterministic, leaderless.

Every speaker runs the same function on the same gossiped membership and the same
Kubernetes objects, so all of them reach the same answer without talking about it.

Candidates for a Service: live members, minus nodes labelled
`node.kubernetes.io/exclude-from-external-load-balancers` (unless switched off), minus
nodes with `NetworkUnavailable=True`, minus nodes no matching L2Advertisement selects,
none at all when the Service has no serving endpoint (MetalLB's rule), and for
`externalTrafficPolicy: Local` only nodes with a serving endpoint.
An L2Advertisement matches a Service when it announces the Service's pool and, if it
has `serviceSelectors`, one of them matches the Service's labels. A Service with the
`allow-shared-ip` annotation that a service-selecting advertisement matches is announced
by no node (MetalLB's guard: Services sharing an address could otherwise be matched by
different advertisements and disagree on the owner).
Ready members (past their hold-down) are preferred; if none is ready, any live one.
The owner is the candidate with the highest preference score (the weights of the
`preferredNodeSelectors` of every advertisement matching the Service that selects the
node, summed), then the smallest `sha256(node + "#" + first_ip)` (MetalLB's rule), so
Services sharing an address share an owner.

Cost: a Service's ranking depends only on its first address, the nodes that pass
the static filters (labels, conditions, advertisements, endpoints) and their scores, so
it is cached and survives membership changes; after a failure the owner is the first
live (ready) node in the cached ranking - O(position) per Service instead of hashing
every node. Services with the same static key and ranking get the same verdict, so
they are kept in groups: a membership change decides once per group and touches only
the Services of groups whose verdict changed (`redecide`): with 10,000 Services, the
cost of a failover is the Services that move, not the Services there are.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from metallb_api.addresses import AddressError, parse_ip
from metallb_api.config import Config, L2AdvConfig

EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
ALLOW_SHARED_IP = ("metallb.io/allow-shared-ip", "metallb.universe.tf/allow-shared-ip")


class Reason(StrEnum):
    OWNER = "owner"
    NOT_OWNER = "notOwner"
    HOLD_DOWN = "holdDown"  # eligible, but still in its hold-down after (re)joining
    NO_CANDIDATES = "noCandidates"
    NO_ENDPOINTS = "noEndpoints"  # no serving endpoint anywhere
    NO_LOCAL_ENDPOINTS = "noLocalEndpoints"
    NO_MATCHING_ADVERTISEMENT = "noMatchingAdvertisement"
    EXCLUDED_BY_LABEL = "excludedByLabel"
    NETWORK_UNAVAILABLE = "networkUnavailable"
    NOT_LIVE = "notLive"
    NO_ADDRESS = "noAddress"
    # allow-shared-ip and an advertisement with serviceSelectors matching the Service
    SHARED_IP_WITH_SERVICE_SELECTOR = "sharedIPWithServiceSelector"


class Takeover(StrEnum):
    """How a node that just became an address's owner puts it on the wire."""

    FIRST = "first"  # nobody announced it before us (a new allocation, a cold start)
    # The previous owner's node failed (or nothing can tell it still forwards): clients
    # must move at once.
    FAILED = "failed"
    INELIGIBLE = "ineligible"  # the previous owner's node may no longer serve it
    # The previous owner's node still forwards (its speaker restarted and left, or it
    # came back and ranks lower): answer requests, but move no established client.
    QUIET = "quiet"


@dataclass(frozen=True)
class NodeState:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    network_unavailable: bool = False
    address: str | None = None  # InternalIP: where its kube-proxy answers health checks


@dataclass(frozen=True)
class ServiceState:
    key: str
    ips: tuple[str, ...]  # status.loadBalancer.ingress, in order
    pool: str | None = None  # metallb.io/ip-allocated-from-pool
    local: bool = False  # externalTrafficPolicy: Local
    endpoint_nodes: frozenset[str] = frozenset()  # nodes with serving endpoints
    # Any serving endpoint at all (on any node, or none named). Without one no node
    # announces, whatever the traffic policy (MetalLB's rule): clients would be sent
    # to a node that can only refuse them.
    has_endpoints: bool = True
    # For L2Advertisement serviceSelectors (not hashed: a dict; compared).
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    shared_ip: bool = False  # has the allow-shared-ip annotation (any value, as MetalLB)


def shares_ip(annotations: Mapping[str, str]) -> bool:
    """MetalLB's serviceHasSharedIP: the key is present, stable or legacy."""
    return any(k in annotations for k in ALLOW_SHARED_IP)


@dataclass(frozen=True)
class Inputs:
    nodes: Mapping[str, NodeState]
    live: frozenset[str]
    ready: frozenset[str]
    config: Config
    honor_exclude_label: bool = True


class Decision(NamedTuple):
    """A NamedTuple, not a frozen dataclass: a membership change builds thousands, and
    a tuple is made in a fraction of the time."""

    service: str
    ips: tuple[str, ...]
    owner: str | None
    reason: Reason  # from the point of view of the node that asked
    interfaces: tuple[str, ...] = ()  # where the owner announces; () = every eligible one


def rank_key(node: str, ip: str) -> bytes:
    return hashlib.sha256(f"{node}#{ip}".encode()).digest()


Scores = tuple[tuple[str, int], ...]  # (node, score > 0), sorted by node


class Election:
    def __init__(self) -> None:
        # (first_ip, eligible) -> hash order; (first_ip, eligible, scores) -> preference
        # order. One dict: decide_all reads the first kind directly.
        self._rankings: dict[tuple[object, ...], tuple[str, ...]] = {}
        # Scores of one round (one Inputs), by (static candidates, matching adverts).
        self._scores: dict[tuple[frozenset[str], tuple[str, ...]], Scores] = {}
        self._scores_of: Inputs | None = None
        # Services grouped by what their verdict depends on (static key, ranking), as
        # decided by the latest rounds: a membership change re-decides each group once
        # (`redecide`) and touches only the Services of groups whose verdict changed.
        self._groups: dict[tuple[object, tuple[str, ...]], _Group] = {}
        self._group_of: dict[str, _Group] = {}
        # Live members without a Node object pass the static filters as unlabelled
        # nodes: if they change, the groups' static candidates may too.
        self._grouped_extra: frozenset[str] | None = None

    def ranking(self, first_ip: str, eligible: frozenset[str],
                scores: Scores = ()) -> tuple[str, ...]:
        """Highest score first, then the smallest hash (MetalLB's sortL2Candidates)."""
        key: tuple[object, ...] = (first_ip, eligible, scores) if scores else \
            (first_ip, eligible)
        got = self._rankings.get(key)
        if got is None:
            if len(self._rankings) > 200_000:  # bound memory; recomputing is cheap
                self._rankings.clear()
            if scores:
                # A stable sort of the hash order by score = sort by (-score, hash).
                score = dict(scores)
                got = tuple(sorted(self.ranking(first_ip, eligible),
                                   key=lambda n: -score.get(n, 0)))
            else:
                got = tuple(sorted(eligible, key=lambda n: rank_key(n, first_ip)))
            self._rankings[key] = got
        return got

    def scores(self, svc: ServiceState, inp: Inputs, static: frozenset[str]) -> Scores:
        """Each candidate's preference score for `svc`: summed over the advertisements
        that match the Service (all of them, not only those selecting this node, so
        every speaker sees the same scores), each scoring only the nodes it selects
        (MetalLB's preferredScoresFor over preferredNodeScores)."""
        if not inp.config.has_preferences or not static:
            return ()
        advs = tuple(a for a in _matching(svc, inp.config) if a.preferred)
        if not advs:
            return ()
        if self._scores_of is not inp:  # node labels may have changed: a new round
            self._scores_of, self._scores = inp, {}
        key = (static, tuple(a.name for a in advs))
        got = self._scores.get(key)
        if got is None:
            out = []
            for node in sorted(static):
                state = inp.nodes.get(node)
                labels = state.labels if state else {}
                total = sum(a.preference(labels) for a in advs if a.selects_node(labels))
                if total:
                    out.append((node, total))
            got = self._scores[key] = tuple(out)
        return got

    def why_not(self, node: str, svc: ServiceState, inp: Inputs) -> Reason | None:
        """None if `node` may announce `svc`, else the reason it may not."""
        if node not in inp.live:
            return Reason.NOT_LIVE
        return self.why_not_static(node, svc, inp)

    def why_not_static(self, node: str, svc: ServiceState, inp: Inputs) -> Reason | None:
        """The filters that do not depend on liveness (labels, conditions, adverts,
        endpoints): membership changes leave their result, and the ranking, alone."""
        state = inp.nodes.get(node)
        labels = state.labels if state else {}
        if inp.honor_exclude_label and EXCLUDE_LABEL in labels:
            return Reason.EXCLUDED_BY_LABEL
        if state is not None and state.network_unavailable:
            return Reason.NETWORK_UNAVAILABLE
        if svc.shared_ip and inp.config.service_selecting and any(
                a.service_selectors for a in _matching(svc, inp.config)):
            return Reason.SHARED_IP_WITH_SERVICE_SELECTOR
        if not _advertisements_for(node, svc, inp, labels):
            return Reason.NO_MATCHING_ADVERTISEMENT
        if not svc.has_endpoints:
            return Reason.NO_ENDPOINTS
        if svc.local and node not in svc.endpoint_nodes:
            return Reason.NO_LOCAL_ENDPOINTS
        return None

    def takeover(self, me: str, previous: str | None, svc: ServiceState, inp: Inputs,
                 departed: frozenset[str]) -> Takeover:
        """`me` now owns `svc`; `previous` owned it (None: nobody). `departed`: nodes
        whose speakers left the cluster gracefully (a restart, a drain), as opposed to
        failing. Quiet takeovers still need the shell's check that the previous node's
        data path forwards (its kube-proxy answers its health check)."""
        if previous is None or previous == me:
            return Takeover.FIRST
        if self.why_not_static(previous, svc, inp) is not None:
            return Takeover.INELIGIBLE
        if previous in inp.live or previous in departed:
            return Takeover.QUIET
        return Takeover.FAILED

    def decide(self, me: str, svc: ServiceState, inp: Inputs,
               static: frozenset[str] | None = None) -> Decision:
        if not svc.ips:
            return Decision(svc.key, (), None, Reason.NO_ADDRESS)
        if static is None:
            static = self.static_candidates(svc, inp)
        pool = self.candidates(svc, inp, static)
        owner = pool[0] if pool else None
        # `static` already holds the static verdict for us: only a refusal needs the
        # filters again, to name its reason.
        mine = None if me in static and me in inp.live else self.why_not(me, svc, inp)
        if mine is not None:
            reason = mine  # why not me is more useful than "nobody" (e.g. no advertisement)
        elif owner == me:
            reason = Reason.OWNER
        elif me not in pool:
            reason = Reason.HOLD_DOWN
        else:
            reason = Reason.NOT_OWNER
        interfaces: tuple[str, ...] = ()
        if owner is not None:
            owner_state = inp.nodes.get(owner)
            interfaces = _interfaces(owner, svc, inp,
                                     owner_state.labels if owner_state else {})
        return Decision(svc.key, svc.ips, owner, reason, interfaces)

    def candidates(self, svc: ServiceState, inp: Inputs,
                   static: frozenset[str] | None = None) -> tuple[str, ...]:
        """Who may own `svc`, best first: the owner is the first. (Not kept in the
        Decision: it changes with every membership change even where the owner does
        not, and a Decision that stays equal is not rebuilt.)"""
        if not svc.ips:
            return ()
        if static is None:
            static = self.static_candidates(svc, inp)
        # The ranking depends only on the address, the static filters and the scores,
        # so it is cached across membership changes; liveness and readiness are
        # applied to it.
        ranking = self.ranking(svc.ips[0], static, self.scores(svc, inp, static))
        live = tuple(n for n in ranking if n in inp.live)
        return tuple(n for n in live if n in inp.ready) or live  # ready ones preferred

    def static_candidates(self, svc: ServiceState, inp: Inputs) -> frozenset[str]:
        nodes = set(inp.nodes) | inp.live
        return frozenset(n for n in nodes if self.why_not_static(n, svc, inp) is None)

    def decide_all(self, me: str, services: Mapping[str, ServiceState], inp: Inputs,
                   previous: Mapping[str, Decision] | None = None,
                   complete: bool = False) -> dict[str, Decision]:
        """One election round: the static filters are evaluated once per distinct
        (pool, policy, endpoints), not once per Service; and the verdict (owner, reason,
        interfaces) once per distinct (those, ranking): Services that agree
        on both get the same verdict, and with few nodes most of them do. A Service
        whose decision in `previous` equals the new one keeps that very object (after
        a membership change most do), so callers can skip it by identity.

        `complete`: `services` is every Service, decided after a change of the static
        inputs (nodes, configuration): the groups `redecide` uses are rebuilt. Otherwise
        the Services given move to their current group."""
        if complete:
            self._groups.clear()
            self._group_of.clear()
            self._grouped_extra = inp.live - inp.nodes.keys()
        groups, group_of = self._groups, self._group_of
        prev = previous or {}
        memo: dict[StaticKey, frozenset[str]] = {}
        known = known_pools(inp.config)
        verdicts: dict[tuple[object, tuple[str, ...]], Decision] = {}
        out = {}
        for key, svc in services.items():
            if not svc.ips:  # decided without candidates: membership changes nothing
                self.forget(key)
                d = self.decide(me, svc, inp)
                out[key] = d if prev.get(key) != d else prev[key]
                continue
            p = svc.pool
            k = (p if p and p in known else ",".join(svc.ips), svc.local, svc.has_endpoints,
                 svc.endpoint_nodes if svc.local else _NONE,
                 _selection(svc, known.selecting) if known.selecting else _NONE,
                 )  # static_key(), inlined
            static = memo.get(k)
            if static is None:
                static = memo[k] = self.static_candidates(svc, inp)
            ranking = self._rankings.get((svc.ips[0], static))
            vk = (k, ranking if ranking is not None else self.ranking(svc.ips[0], static))
            v = verdicts.get(vk)
            if v is None:
                v = verdicts[vk] = self.decide(me, svc, inp, static)
            g = groups.get(vk)
            if g is None:
                g = groups[vk] = _Group(vk, static, v)
            g.verdict = v  # decided with the current inputs, like every member
            was = group_of.get(key)
            if was is not g:
                if was is not None:
                    was.leave(key, groups)
                group_of[key] = g
            g.members[key] = svc
            old = prev.get(key)
            if old is not None and old.owner == v.owner and old.reason is v.reason and \
                    old.ips == svc.ips and old.interfaces == v.interfaces:
                out[key] = old
            elif v.service == key:
                out[key] = v
            else:
                out[key] = _stamp(v, key, svc.ips)
        return out

    def forget(self, key: str) -> None:
        """`key` is gone: it is no longer in any group."""
        g = self._group_of.pop(key, None)
        if g is not None:
            g.leave(key, self._groups)

    def grouped(self, inp: Inputs) -> bool:
        """Whether `redecide` can answer for `inp`: groups were built, and no live
        member without a Node object came or went since."""
        return self._grouped_extra is not None \
            and inp.live - inp.nodes.keys() == self._grouped_extra

    def redecide(self, me: str, inp: Inputs) -> dict[str, Decision]:
        """After a membership change (static inputs unchanged since the complete
        round, and `grouped(inp)`): the new decision of every Service whose decision
        changed, deciding once per group."""
        out: dict[str, Decision] = {}
        for g in self._groups.values():
            old = g.verdict
            v = self.decide(me, next(iter(g.members.values())), inp, g.static)
            if v.owner == old.owner and v.reason is old.reason \
                    and v.interfaces == old.interfaces:
                continue  # most groups after a failure elsewhere: nothing to touch
            g.verdict = v
            for key, svc in g.members.items():
                out[key] = v if v.service == key else _stamp(v, key, svc.ips)
        return out


class _Group:
    """Services whose decisions are equal but for their names and addresses."""

    __slots__ = ("key", "members", "static", "verdict")

    def __init__(self, key: tuple[object, tuple[str, ...]], static: frozenset[str],
                 verdict: Decision) -> None:
        self.key = key
        self.static = static
        self.members: dict[str, ServiceState] = {}
        self.verdict = verdict

    def leave(self, key: str, groups: dict[tuple[object, tuple[str, ...]], _Group]) -> None:
        del self.members[key]
        if not self.members:
            del groups[self.key]


StaticKey = tuple[str, bool, bool, frozenset[str], object]
_NONE: frozenset[str] = frozenset()


class KnownPools(frozenset[str]):
    """The configured pool names, and the advertisements that select Services by
    label (what of a Service's labels the static filters read)."""

    selecting: tuple[L2AdvConfig, ...] = ()


def known_pools(config: Config) -> KnownPools:
    known = KnownPools(frozenset(config.pools) | frozenset(config.held_ranges))
    known.selecting = config.service_selecting
    return known


def _selection(svc: ServiceState, selecting: tuple[L2AdvConfig, ...]) -> tuple[bool, ...]:
    """What the static filters read of a Service's labels and annotations: which
    service-selecting advertisements match it, and whether it shares its address."""
    return (svc.shared_ip, *(a.selects_service(svc.labels) for a in selecting))


def static_key(svc: ServiceState, known: KnownPools) -> StaticKey:
    """What the static filters read of a Service (`known`: `known_pools`): Services
    with equal keys have the same static candidates (and the same takeover verdict for
    a given previous node). A pool name that is not (or no longer) configured says
    nothing: `pool_of` then goes by the addresses, so the key does too. Labels count
    only where an advertisement selects Services by them."""
    p = svc.pool
    return (p if p and p in known else ",".join(svc.ips), svc.local, svc.has_endpoints,
            svc.endpoint_nodes if svc.local else _NONE,
            _selection(svc, known.selecting) if known.selecting else _NONE)


def _stamp(v: Decision, key: str, ips: tuple[str, ...]) -> Decision:
    """Verdict `v` for another Service (10,000 of them after a membership change)."""
    return Decision(key, ips, v.owner, v.reason, v.interfaces)


def pool_of(svc: ServiceState, config: Config) -> str | None:
    # One pool name: use it. Several ("a,b", addresses from two pools) or a stale name:
    # the pool holding the first address, which is also the one the ranking hashes.
    if svc.pool and (svc.pool in config.pools or svc.pool in config.held_ranges):
        return svc.pool
    for ip_text in svc.ips:
        try:
            ip = parse_ip(ip_text)
        except AddressError:
            continue
        for name, ranges in config.held_ranges.items():
            if any(r.contains(ip) for r in ranges):
                return name
    return None


def _matching(svc: ServiceState, config: Config) -> list[L2AdvConfig]:
    """The advertisements that announce `svc` somewhere (MetalLB's l2AdsForService)."""
    pool = pool_of(svc, config)
    if pool is None:
        return []
    return [adv for adv in config.l2advertisements.values()
            if pool in adv.pools and adv.selects_service(svc.labels)]


def _advertisements_for(node: str, svc: ServiceState, inp: Inputs,
                        labels: Mapping[str, str]) -> list[tuple[str, ...]]:
    return [adv.interfaces for adv in _matching(svc, inp.config)
            if adv.selects_node(labels)]


def _interfaces(node: str, svc: ServiceState, inp: Inputs,
                labels: Mapping[str, str]) -> tuple[str, ...]:
    lists = _advertisements_for(node, svc, inp, labels)
    if any(not ifaces for ifaces in lists):
        return ()  # one advertisement allows every interface
    return tuple(sorted({i for ifaces in lists for i in ifaces}))

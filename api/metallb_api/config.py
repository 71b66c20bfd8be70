"""The one pure function that turns a snapshot of IPAddressPool + L2Advertisement objects
into a validated internal model, with a reason for everything it refuses.

Used by the operator (allocation, conditions), the speaker (which pools/nodes/interfaces
are announced) and the CLI (`metallbctl validate`). Never raises on bad input: a bad
object becomes a `Problem` and is left out, the rest of the configuration still works.

Cross-object rule for overlapping pools (MetalLB refuses overlaps in its webhook; here
both objects exist, so one must give way): an edit never takes addresses from a pool that
is already accepted. Pools are ranked by what their status says the operator last did
with them (`acceptance`):

  1. accepted as they are (Ready=True, observedGeneration == generation),
  2. accepted, but edited since (Ready=True at an older generation),
  3. new, or not Ready;

and within a rank the older pool (creationTimestamp, then name) wins. The loser is not
Ready (reason OverlapsPool, naming the winner). So an edit that makes an older pool
overlap a newer accepted one flags the edited pool, and the newer one keeps its Services
and addresses. Decisions are stable: a status write only improves a winner's rank
(2 -> 1 -> 0 once Ready is written) and only worsens a loser's (Ready=False), and the
operator, the speakers and a restarted operator all read the same status. Manifests
without status (`metallbctl validate` of files) are all rank 3: the older pool wins.

A pool that is present but not Ready still *holds* the addresses already assigned from
it (`held_ranges`) so that a typo never clears working Services; it only stops handing
out new ones.

A selector that matches nothing (yet) is valid, as in MetalLB: an advertisement whose
pool selectors select no Ready pool is accepted and announces nothing until one appears
(a `Note`, not a `Problem`). Service and node selectors are only evaluated by the
speaker's election, against the objects of the moment.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from functools import cached_property
from typing import Any

from metallb_api.addresses import AddressError, Family, IPRange, parse_entry
from metallb_api.models import IPAddressPoolSpec, L2AdvertisementSpec, parse_spec
from metallb_api.selectors import LabelSelector, any_matches


class ProblemReason(StrEnum):
    INVALID_SPEC = "InvalidSpec"
    OVERLAPS_POOL = "OverlapsPool"
    OVERLAPS_ITSELF = "OverlappingAddresses"
    POOL_NOT_FOUND = "PoolNotFound"
    NEVER_MATCHES_NODES = "NodeSelectorsNeverMatch"


class NoteReason(StrEnum):
    """Informational: the object is valid and accepted."""

    NO_MATCHING_POOLS = "NoMatchingPools"


@dataclass(frozen=True)
class Problem:
    kind: str  # "IPAddressPool" | "L2Advertisement"
    name: str
    reason: ProblemReason
    message: str
    related: str | None = None  # the other object, e.g. the pool this one overlaps


@dataclass(frozen=True)
class Note:
    """Something worth saying about a valid object (e.g. its selectors match nothing
    yet); never a reason to refuse it."""

    kind: str
    name: str
    reason: NoteReason
    message: str


@dataclass(frozen=True)
class Allocation:
    """serviceAllocation: restricts a pool to matching Services and orders pools."""

    priority: int = 0
    namespaces: frozenset[str] = frozenset()
    namespace_selectors: tuple[LabelSelector, ...] = ()
    service_selectors: tuple[LabelSelector, ...] = ()


@dataclass(frozen=True)
class PoolConfig:
    name: str
    ranges: tuple[IPRange, ...]
    auto_assign: bool = True
    avoid_buggy_ips: bool = False
    allocation: Allocation | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    created: str = ""
    generation: int = 0

    @property
    def families(self) -> frozenset[Family]:
        return frozenset(r.family for r in self.ranges)

    def size(self, family: Family | None = None) -> int:
        """Exact usable address count (Python ints never overflow)."""
        total = 0
        for r in self.ranges:
            if family is None or r.family == family:
                total += r.size - (r.buggy_count() if self.avoid_buggy_ips else 0)
        return total


@dataclass(frozen=True)
class L2AdvConfig:
    name: str
    pools: frozenset[str]  # resolved pool names this advertisement announces
    node_selectors: tuple[LabelSelector, ...] = ()
    interfaces: tuple[str, ...] = ()
    generation: int = 0
    # Services this advertisement announces; () = every Service of its pools.
    service_selectors: tuple[LabelSelector, ...] = ()
    # (weight, preference): soft node preferences, summed where several match.
    preferred: tuple[tuple[int, LabelSelector], ...] = ()

    def selects_node(self, labels: Mapping[str, str]) -> bool:
        return not self.node_selectors or any_matches(self.node_selectors, labels)

    def selects_service(self, labels: Mapping[str, str]) -> bool:
        return not self.service_selectors or any_matches(self.service_selectors, labels)

    def preference(self, labels: Mapping[str, str]) -> int:
        """Summed weights of the preferences a node's labels match (MetalLB's
        preferredNodeScores). The caller checks the node is eligible (`selects_node`):
        preferences never score a node the advertisement does not select."""
        return sum(w for w, sel in self.preferred if sel.matches(labels))


@dataclass(frozen=True)
class Config:
    pools: Mapping[str, PoolConfig]  # Ready pools: may hand out addresses
    held_ranges: Mapping[str, tuple[IPRange, ...]]  # every present pool's parseable ranges
    l2advertisements: Mapping[str, L2AdvConfig]
    problems: tuple[Problem, ...]
    generations: Mapping[tuple[str, str], int] = field(default_factory=dict)
    notes: tuple[Note, ...] = ()

    def problems_for(self, kind: str, name: str) -> list[Problem]:
        return [p for p in self.problems if p.kind == kind and p.name == name]

    def notes_for(self, kind: str, name: str) -> list[Note]:
        return [n for n in self.notes if n.kind == kind and n.name == name]

    @cached_property
    def service_selecting(self) -> tuple[L2AdvConfig, ...]:
        """Advertisements that announce only some Services (by label), by name."""
        return tuple(a for _, a in sorted(self.l2advertisements.items())
                     if a.service_selectors)

    @cached_property
    def has_preferences(self) -> bool:
        return any(a.preferred for a in self.l2advertisements.values())

    def advertised_pools(self) -> frozenset[str]:
        out: set[str] = set()
        for adv in self.l2advertisements.values():
            out |= adv.pools
        return frozenset(out)


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _parse_pool(
    obj: Mapping[str, Any],
) -> tuple[PoolConfig | None, tuple[IPRange, ...], str | None]:
    """(config or None, ranges that parse anyway, error message or None)."""
    meta = _meta(obj)
    raw_spec = obj.get("spec")
    held: list[IPRange] = []
    entries = raw_spec.get("addresses") if isinstance(raw_spec, Mapping) else None
    if isinstance(entries, list):  # anything else is reported by parse_spec below
        for entry in entries:
            try:
                held.append(parse_entry(str(entry)))
            except AddressError:
                continue
    spec, error = parse_spec(IPAddressPoolSpec, raw_spec)
    if spec is None:
        return None, tuple(held), error
    ranges = tuple(parse_entry(a) for a in spec.addresses)
    alloc = None
    if spec.service_allocation is not None:
        sa = spec.service_allocation
        alloc = Allocation(
            priority=sa.priority,
            namespaces=frozenset(sa.namespaces),
            namespace_selectors=tuple(s.parsed() for s in sa.namespace_selectors),
            service_selectors=tuple(s.parsed() for s in sa.service_selectors),
        )
    pool = PoolConfig(
        name=str(meta.get("name", "")),
        ranges=ranges,
        auto_assign=spec.auto_assign,
        avoid_buggy_ips=spec.avoid_buggy_ips,
        allocation=alloc,
        labels=dict(meta.get("labels") or {}),
        created=str(meta.get("creationTimestamp") or ""),
        generation=int(meta.get("generation") or 0),
    )
    return pool, ranges, None


class Acceptance(IntEnum):
    """What a pool's status says about it; lower wins an overlap."""

    ACCEPTED = 0  # Ready=True for the current generation
    ACCEPTED_THEN_EDITED = 1  # Ready=True for an older generation
    NEW_OR_REFUSED = 2  # no Ready=True condition


def acceptance(obj: Mapping[str, Any]) -> Acceptance:
    status = obj.get("status")
    conditions = status.get("conditions") if isinstance(status, Mapping) else None
    ready = next((c for c in conditions or [] if isinstance(c, Mapping)
                  and c.get("type") == "Ready"), None)
    if ready is None or ready.get("status") != "True":
        return Acceptance.NEW_OR_REFUSED
    try:
        observed = int(ready.get("observedGeneration") or 0)
    except (TypeError, ValueError):
        observed = 0
    if observed == int(_meta(obj).get("generation") or 0):
        return Acceptance.ACCEPTED
    return Acceptance.ACCEPTED_THEN_EDITED


def _self_overlap(ranges: tuple[IPRange, ...]) -> tuple[IPRange, IPRange] | None:
    ordered = sorted(ranges)
    for a, b in itertools.pairwise(ordered):
        if a.overlaps(b):
            return a, b
    return None


def build_config(
    pools: Iterable[Mapping[str, Any]], l2advertisements: Iterable[Mapping[str, Any]] = ()
) -> Config:
    problems: list[Problem] = []
    notes: list[Note] = []
    held: dict[str, tuple[IPRange, ...]] = {}
    generations: dict[tuple[str, str], int] = {}
    candidates: list[PoolConfig] = []
    ranks: dict[str, Acceptance] = {}
    for obj in pools:
        name = str(_meta(obj).get("name", ""))
        generations[("IPAddressPool", name)] = int(_meta(obj).get("generation") or 0)
        pool, ranges, error = _parse_pool(obj)
        held[name] = ranges
        ranks[name] = acceptance(obj)
        if pool is None:
            problems.append(Problem("IPAddressPool", name, ProblemReason.INVALID_SPEC,
                                    error or "invalid spec"))
            continue
        clash = _self_overlap(pool.ranges)
        if clash:
            problems.append(Problem(
                "IPAddressPool", name, ProblemReason.OVERLAPS_ITSELF,
                f"spec.addresses: {clash[0]} overlaps {clash[1]} in the same pool",
            ))
            continue
        candidates.append(pool)

    accepted: dict[str, PoolConfig] = {}
    for pool in sorted(candidates, key=lambda p: (ranks[p.name], p.created, p.name)):
        clash_with = next(
            ((other, a, b) for other in accepted.values()
             for a in pool.ranges for b in other.ranges if a.overlaps(b)),
            None,
        )
        if clash_with:
            other, a, b = clash_with
            if ranks[other.name] == ranks[pool.name]:
                why = "is older"
            elif ranks[pool.name] == Acceptance.ACCEPTED_THEN_EDITED:
                why = f"was accepted before this pool's edit (generation {pool.generation})"
            else:
                why = "was accepted first"
            problems.append(Problem(
                "IPAddressPool", pool.name, ProblemReason.OVERLAPS_POOL,
                f"spec.addresses: {a} overlaps {b} of IPAddressPool {other.name!r}, which "
                f"{why} and keeps those addresses",
                related=other.name,
            ))
            continue
        accepted[pool.name] = pool

    advs: dict[str, L2AdvConfig] = {}
    for obj in l2advertisements:
        meta = _meta(obj)
        name = str(meta.get("name", ""))
        generations[("L2Advertisement", name)] = int(meta.get("generation") or 0)
        spec, error = parse_spec(L2AdvertisementSpec, obj.get("spec"))
        if spec is None:
            problems.append(Problem("L2Advertisement", name, ProblemReason.INVALID_SPEC,
                                    error or "invalid spec"))
            continue
        selected: set[str] = set()
        missing = [p for p in spec.ip_address_pools if p not in held]
        selected |= {p for p in spec.ip_address_pools if p in accepted}
        pool_selectors = [s.parsed() for s in spec.ip_address_pool_selectors]
        for pool in accepted.values():
            if any(s.matches(pool.labels) for s in pool_selectors):
                selected.add(pool.name)
        if not spec.ip_address_pools and not pool_selectors:
            selected = set(accepted)  # neither set: every pool, as in MetalLB
        if missing:
            problems.append(Problem(
                "L2Advertisement", name, ProblemReason.POOL_NOT_FOUND,
                "spec.ipAddressPools: no IPAddressPool named "
                + ", ".join(repr(m) for m in missing),
                related=missing[0],
            ))
        elif not selected and (spec.ip_address_pools or pool_selectors):
            # Valid (MetalLB too): announces nothing until a matching pool is Ready.
            notes.append(Note(
                "L2Advertisement", name, NoteReason.NO_MATCHING_POOLS,
                "no Ready IPAddressPool is selected (yet): nothing is announced",
            ))
        node_selectors = tuple(s.parsed() for s in spec.node_selectors)
        never = [sel.contradiction() for sel in node_selectors]
        if node_selectors and all(never):
            # Valid syntax, but no node can carry labels that match: refused like a
            # syntax error (not Ready, announces nothing), the reason named.
            problems.append(Problem(
                "L2Advertisement", name, ProblemReason.NEVER_MATCHES_NODES,
                "spec.nodeSelectors: no node can match: " + "; ".join(
                    f"[{i}]: {why}" for i, why in enumerate(never)),
            ))
            continue
        advs[name] = L2AdvConfig(
            name=name,
            pools=frozenset(selected),
            node_selectors=node_selectors,
            interfaces=tuple(spec.interfaces),
            generation=int(meta.get("generation") or 0),
            service_selectors=tuple(s.parsed() for s in spec.service_selectors),
            preferred=tuple((p.weight, p.preference.parsed())
                            for p in spec.preferred_node_selectors),
        )
    return Config(accepted, held, advs, tuple(problems), generations, tuple(notes))

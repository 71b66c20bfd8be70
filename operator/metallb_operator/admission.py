"""Admission decisions for IPAddressPool and L2Advertisement (pure: no I/O).

The webhook (`webhook.py`) hands over the AdmissionReview request and the objects that
exist now; `decide` runs the same function the operator runs (`build_config`) on the
current objects with the candidate in place of its old version, and refuses what the
candidate *adds*: problems of the candidate itself, and problems it would cause other
objects (a pool that wins an overlap pushes the other pool out: refused too). Problems
that already existed without the candidate are not its fault and never block it (MetalLB
refuses every change while any object is wrong; here one bad object blocks only itself).

What MetalLB's webhooks check, matched here:
  * IPAddressPool: parsed with the other pools only (no advertisements): invalid or
    self-overlapping addresses, overlaps with another pool. Created outside the
    operator's namespace: refused ("resource must be created in ... namespace").
  * L2Advertisement: parsed with the pools and the other advertisements; refused for
    its own invalid spec. A pool that does not exist (yet) is *not* refused (MetalLB
    neither: `kubectl apply -f` of one file may create the advertisement before the
    pool); it comes back as a warning that kubectl prints. A name that no pool can
    ever have (not an RFC 1123 subdomain) is refused: that is never an ordering issue.
  * DELETE: always allowed (MetalLB registers no DELETE rule for these kinds).
MetalLB has no webhook for Services, so sharing conflicts between requested addresses
are reported by the operator's Events, as there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from metallb_api.addresses import AddressError, parse_entry
from metallb_api.config import Config, Problem, ProblemReason, build_config

POOL_PATH = "/validate-metallb-io-v1beta1-ipaddresspool"
L2ADV_PATH = "/validate-metallb-io-v1beta1-l2advertisement"
KIND_OF_PATH = {POOL_PATH: "IPAddressPool", L2ADV_PATH: "L2Advertisement"}

# Problems that make an object refused at admission. The others (a pool named but not
# there yet) are warnings: the object is fine, what it names may come later.
# tests/operator/test_admission.py makes each new reason a choice.
REFUSED = frozenset({ProblemReason.INVALID_SPEC, ProblemReason.OVERLAPS_ITSELF,
                     ProblemReason.OVERLAPS_POOL, ProblemReason.NEVER_MATCHES_NODES})
WARNED = frozenset(ProblemReason) - REFUSED

# metadata.name of a namespaced custom object: an RFC 1123 subdomain.
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class Operation(StrEnum):
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    CONNECT = "CONNECT"


class Why(StrEnum):
    """Why a request was allowed or refused (logs and metrics label)."""

    VALID = "Valid"
    DELETE = "Delete"
    SPEC_UNCHANGED = "SpecUnchanged"
    WRONG_NAMESPACE = "WrongNamespace"
    WRONG_KIND = "WrongKind"
    PROBLEM = "Problem"
    CAUSES_PROBLEM = "CausesProblem"
    IMPOSSIBLE_POOL_NAME = "ImpossiblePoolName"


@dataclass(frozen=True)
class Request:
    uid: str
    kind: str  # "IPAddressPool" | "L2Advertisement"
    operation: Operation
    obj: Mapping[str, Any]  # the candidate (oldObject for DELETE)
    old: Mapping[str, Any] | None = None

    @property
    def name(self) -> str:
        return str((self.obj.get("metadata") or {}).get("name") or "")

    @property
    def namespace(self) -> str:
        return str((self.obj.get("metadata") or {}).get("namespace") or "")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    why: Why
    message: str = ""
    warnings: tuple[str, ...] = ()


class BadReview(ValueError):
    """Not an admission.k8s.io/v1 AdmissionReview request we can answer."""


def parse_review(body: Any, kind: str) -> Request:
    """The request of an AdmissionReview (v1) posted to the path for `kind`."""
    if not isinstance(body, Mapping) or body.get("apiVersion") != "admission.k8s.io/v1" \
            or body.get("kind") != "AdmissionReview":
        raise BadReview("expected an admission.k8s.io/v1 AdmissionReview")
    req = body.get("request")
    if not isinstance(req, Mapping) or not req.get("uid"):
        raise BadReview("AdmissionReview without request.uid")
    try:
        op = Operation(str(req.get("operation")))
    except ValueError:
        raise BadReview(f"unknown operation {req.get('operation')!r}") from None
    got_kind = str((req.get("kind") or {}).get("kind") or "")
    if got_kind and got_kind != kind:
        raise BadReview(f"{got_kind} sent to the {kind} webhook")
    obj = req.get("oldObject") if op is Operation.DELETE else req.get("object")
    old = req.get("oldObject") if op is Operation.UPDATE else None
    if not isinstance(obj, Mapping):
        raise BadReview(f"{op} without the object")
    return Request(str(req["uid"]), kind, op, obj, old if isinstance(old, Mapping) else None)


def response(uid: str, decision: Decision) -> dict[str, Any]:
    """The AdmissionReview (v1) answer."""
    out: dict[str, Any] = {"uid": uid, "allowed": decision.allowed}
    if not decision.allowed:
        out["status"] = {"code": 403, "reason": "Forbidden", "message": decision.message}
    if decision.warnings:
        out["warnings"] = list(decision.warnings)
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": out}


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _with(current: Iterable[Mapping[str, Any]], candidate: Mapping[str, Any]
          ) -> list[Mapping[str, Any]]:
    """The current objects with the candidate in place of its old version."""
    name = _name(candidate)
    return [o for o in current if _name(o) != name] + [candidate]


def _key(p: Problem) -> tuple[str, str, ProblemReason, str | None]:
    # Messages name ranges and ranks that may differ between the two builds; the same
    # object, reason and counterpart is the same problem.
    return p.kind, p.name, p.reason, p.related


def impossible_pool_names(spec: Any) -> list[str]:
    """ipAddressPools entries no IPAddressPool can ever be named."""
    names = spec.get("ipAddressPools") if isinstance(spec, Mapping) else None
    out = []
    for i, n in enumerate(names if isinstance(names, list) else []):
        if isinstance(n, str) and (len(n) > 253 or not _SUBDOMAIN.match(n)):
            out.append(f"spec.ipAddressPools[{i}]: {n!r} cannot be the name of an "
                       "IPAddressPool (names are lowercase RFC 1123 subdomains), so no pool "
                       "could ever be announced by it")
    return out


def decide(req: Request, namespace: str, pools: Iterable[Mapping[str, Any]],
           l2advs: Iterable[Mapping[str, Any]]) -> Decision:
    """Allow or refuse `req`, given the objects in the operator's namespace now."""
    if req.operation in (Operation.DELETE, Operation.CONNECT):
        return Decision(True, Why.DELETE)
    label = f"{req.kind} {req.name!r}"
    if req.kind not in KIND_OF_PATH.values():
        return Decision(False, Why.WRONG_KIND, f"{req.kind}: not validated by metallb-py")
    if req.namespace != namespace:
        if req.operation is Operation.CREATE:
            return Decision(False, Why.WRONG_NAMESPACE,
                            f"resource must be created in {namespace} namespace")
        # Not ours (the operator ignores it), but refusing edits would only get in the way.
        return Decision(True, Why.WRONG_NAMESPACE, warnings=(
            f"{label} is outside {namespace}: metallb-py ignores it",))
    if req.old is not None and req.old.get("spec") == req.obj.get("spec"):
        # Labels, annotations, finalizers: nothing that could refuse it changed (a pool
        # left not Ready by an overlap can still be labelled or annotated).
        return Decision(True, Why.SPEC_UNCHANGED)

    pools, l2advs = list(pools), list(l2advs)
    if req.kind == "IPAddressPool":
        # As MetalLB: pools are judged among pools; advertisements never block a pool.
        before, after = build_config(pools), build_config(_with(pools, req.obj))
        impossible: list[str] = []
    else:
        before = build_config(pools, l2advs)
        after = build_config(pools, _with(l2advs, req.obj))
        impossible = impossible_pool_names(req.obj.get("spec"))
    return _judge(req, label, before, after, impossible, {_name(p): p for p in pools})


def _entries(obj: Mapping[str, Any] | None) -> list[str]:
    spec = (obj or {}).get("spec")
    found = spec.get("addresses") if isinstance(spec, Mapping) else None
    return [str(e) for e in found] if isinstance(found, list) else []


def overlap_message(name: str, entries: list[str], other: str, other_entries: list[str]
                    ) -> str | None:
    """MetalLB's wording, with the entries as the user wrote them (the config's
    message is about which pool keeps the addresses: nothing is kept at admission)."""
    for a in entries:
        for b in other_entries:
            try:
                if parse_entry(a).overlaps(parse_entry(b)):
                    return (f"CIDR {a!r} in pool {name!r} overlaps with already defined "
                            f"CIDR {b!r} (IPAddressPool {other!r})")
            except AddressError:
                continue
    return None


def _explain(p: Problem, req: Request, pools: Mapping[str, Mapping[str, Any]]) -> str:
    if p.reason is not ProblemReason.OVERLAPS_POOL or p.related is None:
        return p.message
    if p.name == req.name:  # the candidate overlaps an existing pool
        said = overlap_message(req.name, _entries(req.obj), p.related,
                               _entries(pools.get(p.related)))
    else:  # it would push an existing pool out
        said = overlap_message(req.name, _entries(req.obj), p.name, _entries(pools.get(p.name)))
    return said or p.message


def _judge(req: Request, label: str, before: Config, after: Config, impossible: list[str],
           pools: Mapping[str, Mapping[str, Any]]) -> Decision:
    own = after.problems_for(req.kind, req.name)
    refused = [p for p in own if p.reason in REFUSED]
    if refused:
        return Decision(False, Why.PROBLEM, "; ".join(_explain(p, req, pools) for p in refused))
    if impossible:
        return Decision(False, Why.IMPOSSIBLE_POOL_NAME, "; ".join(impossible))
    known = {_key(p) for p in before.problems}
    caused = [p for p in after.problems
              if (p.kind, p.name) != (req.kind, req.name) and p.reason in REFUSED
              and _key(p) not in known]
    if caused:
        return Decision(False, Why.CAUSES_PROBLEM, "; ".join(
            _explain(p, req, pools) if p.related == req.name
            else f"{label} would make {p.kind} {p.name!r} invalid: {p.message}"
            for p in caused))
    return Decision(True, Why.VALID, warnings=tuple(p.message for p in own))

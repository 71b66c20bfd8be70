"""Kubernetes label selectors (matchLabels + matchExpressions), parsed and matched purely.

Keys and values are checked with Kubernetes' own syntax rules (apimachinery's
IsQualifiedName / IsLabelValue): a selector the API server would refuse on a Pod or a
Deployment is refused here too, with the field named, instead of silently matching
nothing. The CRDs carry the same rules (CEL), so this only matters for objects written
before them, or for manifests checked offline (`metallbctl validate`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")

NAME_MAX = 63  # the name part of a key, and a value
PREFIX_MAX = 253  # the DNS subdomain prefix of a key
_NAME_RE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_SUBDOMAIN_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_NAME_RULE = ("alphanumeric characters, '-', '_' or '.', starting and ending with an "
              "alphanumeric character")


class SelectorError(ValueError):
    pass


def label_key_problem(key: str) -> str | None:
    """Why `key` is not a valid label key (a qualified name), or None."""
    parts = key.split("/")
    if len(parts) > 2:
        return "must be a name with an optional DNS subdomain prefix and one '/'"
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            return "prefix part must not be empty"
        if len(prefix) > PREFIX_MAX:
            return f"prefix part must be at most {PREFIX_MAX} characters"
        if not _SUBDOMAIN_RE.fullmatch(prefix):
            return ("prefix part must be a DNS subdomain: lowercase alphanumeric "
                    "characters, '-' or '.', starting and ending with an alphanumeric "
                    "character")
    if not name:
        return "name part must not be empty"
    if len(name) > NAME_MAX:
        return f"name part must be at most {NAME_MAX} characters"
    if not _NAME_RE.fullmatch(name):
        return f"name part must consist of {_NAME_RULE}"
    return None


def label_value_problem(value: str) -> str | None:
    """Why `value` is not a valid label value, or None (the empty string is valid)."""
    if len(value) > NAME_MAX:
        return f"must be at most {NAME_MAX} characters"
    if value and not _NAME_RE.fullmatch(value):
        return f"must be empty or consist of {_NAME_RULE}"
    return None


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return labels.get(self.key) in self.values
        if self.operator == "NotIn":
            return labels.get(self.key) not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels


@dataclass(frozen=True)
class LabelSelector:
    """All requirements must hold. An empty selector matches everything (k8s semantics)."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def contradiction(self) -> str | None:
        """Why no set of labels can match (requirements on one key that exclude each
        other), or None if some can."""
        for key in sorted({r.key for r in self.requirements}):
            on_key = [r for r in self.requirements if r.key == key]
            ops = {r.operator for r in on_key}
            if "DoesNotExist" in ops and ops & {"In", "Exists"}:
                return f"key {key!r} must both exist and not exist"
            allowed: frozenset[str] | None = None
            for r in on_key:
                if r.operator == "In":
                    allowed = r.values if allowed is None else allowed & r.values
            if allowed is None:
                continue
            excluded = frozenset().union(*(r.values for r in on_key if r.operator == "NotIn"))
            if not allowed - excluded:
                return f"no value of key {key!r} satisfies all of its requirements"
        return None

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None, where: str = "selector") -> LabelSelector:
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise SelectorError(f"{where}: must be an object")
        reqs: list[Requirement] = []
        match_labels = raw.get("matchLabels") or {}
        if not isinstance(match_labels, Mapping):
            raise SelectorError(f"{where}.matchLabels: must be a map of strings")
        for key, value in sorted(match_labels.items()):
            if not isinstance(value, str):
                raise SelectorError(f"{where}.matchLabels[{key}]: value must be a string")
            if (why := label_key_problem(str(key))) is not None:
                raise SelectorError(f"{where}.matchLabels: invalid label key {key!r}: {why}")
            if (why := label_value_problem(value)) is not None:
                raise SelectorError(
                    f"{where}.matchLabels[{key}]: invalid label value {value!r}: {why}")
            reqs.append(Requirement(str(key), "In", frozenset([value])))
        seen: dict[tuple[str, str, tuple[str, ...]], int] = {}
        for i, expr in enumerate(raw.get("matchExpressions") or []):
            at = f"{where}.matchExpressions[{i}]"
            if not isinstance(expr, Mapping):
                raise SelectorError(f"{at}: must be an object")
            op = expr.get("operator")
            key = expr.get("key")
            values = expr.get("values") or []
            if not key or not isinstance(key, str):
                raise SelectorError(f"{at}.key: required")
            if (why := label_key_problem(key)) is not None:
                raise SelectorError(f"{at}.key: invalid label key {key!r}: {why}")
            if op not in OPERATORS:
                raise SelectorError(f"{at}.operator: {op!r} is not one of {', '.join(OPERATORS)}")
            if op in ("In", "NotIn") and not values:
                raise SelectorError(f"{at}.values: operator {op} needs at least one value")
            if op in ("Exists", "DoesNotExist") and values:
                raise SelectorError(f"{at}.values: operator {op} must not have values")
            if not isinstance(values, list):
                raise SelectorError(f"{at}.values: must be a list of strings")
            for j, value in enumerate(values):
                if not isinstance(value, str):
                    raise SelectorError(f"{at}.values[{j}]: must be a string")
                if (why := label_value_problem(value)) is not None:
                    raise SelectorError(
                        f"{at}.values[{j}]: invalid label value {value!r}: {why}")
                if value in values[:j]:
                    # MetalLB's config parse refuses repeated values; the CRD too
                    # (a list of type set).
                    raise SelectorError(f"{at}.values[{j}]: duplicate value {value!r}")
            # A repeated expression (as written) is refused, as by MetalLB and the CRD.
            ident = (key, str(op), tuple(str(v) for v in values))
            if ident in seen:
                raise SelectorError(f"{at}: duplicate of matchExpressions[{seen[ident]}]")
            seen[ident] = i
            reqs.append(Requirement(key, str(op), frozenset(str(v) for v in values)))
        return cls(tuple(reqs))


def any_matches(selectors: tuple[LabelSelector, ...], labels: Mapping[str, str]) -> bool:
    """A list of selectors (as in nodeSelectors) matches if any one does."""
    return any(s.matches(labels) for s in selectors)


def selector_identity(raw: Mapping[str, Any]) -> tuple[object, object]:
    """What makes two selectors of one list the same entry: the API server's rule for a
    list of type set (deep equality; an expression's values in their order, matchLabels
    as a map). MetalLB compares values sorted, so it also refuses two selectors whose
    only difference is the order of some expression's values; those pass here."""
    labels = raw.get("matchLabels")
    exprs = raw.get("matchExpressions")
    return (
        None if labels is None else frozenset(dict(labels).items()),
        None if exprs is None else tuple(
            (e.get("key"), e.get("operator"),
             None if e.get("values") is None else tuple(e["values"]))
            for e in exprs if isinstance(e, Mapping)),
    )


def duplicate_entries(raws: list[Mapping[str, Any]]) -> list[tuple[int, int]]:
    """(index, index of its first occurrence) for each repeated selector in a list."""
    first: dict[tuple[object, object], int] = {}
    out = []
    for i, raw in enumerate(raws):
        ident = selector_identity(raw)
        if ident in first:
            out.append((i, first[ident]))
        else:
            first[ident] = i
    return out

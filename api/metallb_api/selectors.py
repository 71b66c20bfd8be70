"""Kubernetes label selectors (matchLabels + matchExpressions), parsed and matched purely."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


class SelectorError(ValueError):
    pass


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
            reqs.append(Requirement(str(key), "In", frozenset([value])))
        for i, expr in enumerate(raw.get("matchExpressions") or []):
            at = f"{where}.matchExpressions[{i}]"
            if not isinstance(expr, Mapping):
                raise SelectorError(f"{at}: must be an object")
            op = expr.get("operator")
            key = expr.get("key")
            values = expr.get("values") or []
            if not key or not isinstance(key, str):
                raise SelectorError(f"{at}.key: required")
            if op not in OPERATORS:
                raise SelectorError(f"{at}.operator: {op!r} is not one of {', '.join(OPERATORS)}")
            if op in ("In", "NotIn") and not values:
                raise SelectorError(f"{at}.values: operator {op} needs at least one value")
            if op in ("Exists", "DoesNotExist") and values:
                raise SelectorError(f"{at}.values: operator {op} must not have values")
            reqs.append(Requirement(key, str(op), frozenset(str(v) for v in values)))
        return cls(tuple(reqs))


def any_matches(selectors: tuple[LabelSelector, ...], labels: Mapping[str, str]) -> bool:
    """A list of selectors (as in nodeSelectors) matches if any one does."""
    return any(s.matches(labels) for s in selectors)

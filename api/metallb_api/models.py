"""Pydantic models of the metallb.io/v1beta1 resources (field names as in MetalLB).

They parse what the API server returns (camelCase JSON) and re-check what a CRD schema
may not have caught (objects written before the CRD had validation, or an installation
without our CRDs), so the operator reports a condition instead of crashing.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from metallb_api.addresses import AddressError, parse_entry
from metallb_api.selectors import LabelSelector as ParsedSelector
from metallb_api.selectors import SelectorError, duplicate_entries


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class LabelSelectorRequirement(_Model):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = Field(default_factory=list)


class LabelSelector(_Model):
    match_labels: dict[str, str] = Field(default_factory=dict, alias="matchLabels")
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, alias="matchExpressions"
    )

    def parsed(self, where: str = "selector") -> ParsedSelector:
        return ParsedSelector.parse(self.model_dump(by_alias=True), where)


def _check_selectors(selectors: list[LabelSelector]) -> list[LabelSelector]:
    for i, sel in enumerate(selectors):
        try:
            sel.parsed(f"[{i}]")
        except SelectorError as exc:
            raise ValueError(str(exc)) from None
    # A repeated selector is refused (MetalLB's validateLabelSelectorDuplicate; the CRD
    # lists are of type set). Compared as written: an absent field differs from an
    # empty one, as for the API server.
    dups = duplicate_entries([s.model_dump(by_alias=True, exclude_unset=True)
                              for s in selectors])
    if dups:
        i, first = dups[0]
        raise ValueError(f"[{i}]: duplicate of [{first}]")
    return selectors


def _check_unique(value: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    for i, item in enumerate(value):
        if item in seen:
            raise ValueError(f"[{i}]: duplicate value {item!r} (first at [{seen[item]}])")
        seen[item] = i
    return value


class ServiceAllocation(_Model):
    priority: int = Field(default=0, ge=0)
    namespaces: list[str] = Field(default_factory=list)
    namespace_selectors: list[LabelSelector] = Field(
        default_factory=list, alias="namespaceSelectors"
    )
    service_selectors: list[LabelSelector] = Field(default_factory=list, alias="serviceSelectors")

    _sel = field_validator("namespace_selectors", "service_selectors")(_check_selectors)
    _ns = field_validator("namespaces")(_check_unique)


class IPAddressPoolSpec(_Model):
    addresses: list[str] = Field(min_length=1)
    auto_assign: bool = Field(default=True, alias="autoAssign")
    avoid_buggy_ips: bool = Field(default=False, alias="avoidBuggyIPs")
    service_allocation: ServiceAllocation | None = Field(default=None, alias="serviceAllocation")

    @field_validator("addresses")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        for entry in value:
            try:
                parse_entry(entry)
            except AddressError as exc:
                raise ValueError(str(exc)) from None
            if entry.strip() in seen:
                raise ValueError(f"duplicate entry {entry!r}")
            seen.add(entry.strip())
        return value


INTERFACE_NAME_MAX = 15
WEIGHT_MIN, WEIGHT_MAX = 1, 100  # MetalLB's PreferredNodeSelector.weight bounds


class PreferredNodeSelector(_Model):
    """A weighted soft preference for announcing nodes (MetalLB v0.15)."""

    weight: int = Field(ge=WEIGHT_MIN, le=WEIGHT_MAX)
    preference: LabelSelector


class L2AdvertisementSpec(_Model):
    ip_address_pools: list[str] = Field(default_factory=list, alias="ipAddressPools")
    ip_address_pool_selectors: list[LabelSelector] = Field(
        default_factory=list, alias="ipAddressPoolSelectors"
    )
    node_selectors: list[LabelSelector] = Field(default_factory=list, alias="nodeSelectors")
    interfaces: list[str] = Field(default_factory=list)
    service_selectors: list[LabelSelector] = Field(default_factory=list, alias="serviceSelectors")
    preferred_node_selectors: list[PreferredNodeSelector] = Field(
        default_factory=list, alias="preferredNodeSelectors"
    )

    _sel = field_validator("ip_address_pool_selectors", "node_selectors",
                           "service_selectors")(_check_selectors)

    @field_validator("preferred_node_selectors")
    @classmethod
    def _preferred(cls, value: list[PreferredNodeSelector]) -> list[PreferredNodeSelector]:
        # Repeats are allowed (MetalLB sums them): only each selector's syntax is checked.
        for i, pref in enumerate(value):
            try:
                pref.preference.parsed(f"[{i}].preference")
            except SelectorError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("interfaces")
    @classmethod
    def _interfaces(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name or len(name) > INTERFACE_NAME_MAX or "/" in name or name.strip() != name:
                raise ValueError(f"invalid interface name {name!r}")
        if len(set(value)) != len(value):
            raise ValueError("duplicate interface names")
        return value

    _pools = field_validator("ip_address_pools")(_check_unique)


class ServiceL2StatusInterface(_Model):
    name: str


class ServiceL2StatusStatus(_Model):
    node: str
    service_name: str = Field(alias="serviceName")
    service_namespace: str = Field(alias="serviceNamespace")
    interfaces: list[ServiceL2StatusInterface] = Field(default_factory=list)


class Condition(_Model):
    """The standard Kubernetes condition shape (metav1.Condition)."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str
    last_transition_time: str = Field(alias="lastTransitionTime")
    observed_generation: int = Field(default=0, alias="observedGeneration")


def describe_validation_error(exc: ValidationError, prefix: str = "spec") -> str:
    """One readable line per problem, each naming the field, e.g.
    `spec.addresses: invalid range '10.0.0.9-10.0.0.1': start is after end`."""
    lines = []
    for err in exc.errors():
        loc = prefix
        for part in err["loc"]:
            loc += f"[{part}]" if isinstance(part, int) else f".{part}"
        msg = str(err["msg"]).removeprefix("Value error, ")
        # Selector errors start with the item's index: spec.nodeSelectors[0].matchLabels...
        lines.append(f"{loc}{msg}" if msg.startswith("[") else f"{loc}: {msg}")
    return "; ".join(lines)


def parse_spec(model: type[_Model], raw: Any) -> tuple[Any, str | None]:
    """(model, None) or (None, readable error naming the field)."""
    try:
        return model.model_validate(raw or {}), None
    except ValidationError as exc:
        return None, describe_validation_error(exc)

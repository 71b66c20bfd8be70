"""Pydantic CRD models: camelCase parsing, defaults, and readable errors naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from metallb_api.models import (
    Condition,
    IPAddressPoolSpec,
    L2AdvertisementSpec,
    LabelSelector,
    ServiceAllocation,
    ServiceL2StatusStatus,
    describe_validation_error,
    parse_spec,
)

pytestmark = pytest.mark.unit


def test_pool_spec_defaults() -> None:
    spec, error = parse_spec(IPAddressPoolSpec, {"addresses": ["10.0.0.0/24"]})
    assert error is None
    assert spec == IPAddressPoolSpec(addresses=["10.0.0.0/24"])
    assert spec.auto_assign is True
    assert spec.avoid_buggy_ips is False
    assert spec.service_allocation is None


def test_pool_spec_camel_case_and_unknown_fields_ignored() -> None:
    spec, error = parse_spec(IPAddressPoolSpec, {
        "addresses": ["10.0.0.0/24", "fd00::1-fd00::9"],
        "autoAssign": False,
        "avoidBuggyIPs": True,
        "somethingNew": {"x": 1},
        "serviceAllocation": {
            "priority": 5,
            "namespaces": ["a", "b"],
            "namespaceSelectors": [{"matchLabels": {"team": "a"}}],
            "serviceSelectors": [{"matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["web"]}]}],
        },
    })
    assert error is None
    assert spec.auto_assign is False and spec.avoid_buggy_ips is True
    sa = spec.service_allocation
    assert sa is not None
    assert (sa.priority, sa.namespaces) == (5, ["a", "b"])
    assert sa.namespace_selectors[0].parsed().matches({"team": "a"})
    assert sa.service_selectors[0].parsed().matches({"tier": "web"})
    assert not sa.service_selectors[0].parsed().matches({"tier": "db"})


def test_models_are_frozen() -> None:
    spec = IPAddressPoolSpec(addresses=["10.0.0.0/24"])
    with pytest.raises(ValidationError):
        spec.auto_assign = False  # type: ignore[misc]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (None, "spec.addresses: Field required"),
        ({}, "spec.addresses: Field required"),
        ({"addresses": []}, "spec.addresses: List should have at least 1 item"),
        ({"addresses": "10.0.0.0/24"}, "spec.addresses: Input should be a valid list"),
        ({"addresses": ["10.0.0.9-10.0.0.1"]},
         "spec.addresses: invalid range '10.0.0.9-10.0.0.1': start is after end"),
        ({"addresses": ["10.0.0.1"]}, "spec.addresses: invalid address '10.0.0.1'"),
        ({"addresses": ["10.0.0.0/24", " 10.0.0.0/24 "]}, "spec.addresses: duplicate entry"),
        ({"addresses": ["10.0.0.0/24"], "autoAssign": "sometimes"}, "spec.autoAssign:"),
        ({"addresses": ["10.0.0.0/24"], "serviceAllocation": {"priority": -1}},
         "spec.serviceAllocation.priority: Input should be greater than or equal to 0"),
        ({"addresses": ["10.0.0.0/24"], "serviceAllocation": {"namespaces": "a"}},
         "spec.serviceAllocation.namespaces: Input should be a valid list"),
        ({"addresses": ["10.0.0.0/24"], "serviceAllocation": {"namespaceSelectors": [
            {"matchExpressions": [{"key": "a", "operator": "In"}]}]}},
         "spec.serviceAllocation.namespaceSelectors[0].matchExpressions[0].values: "
         "operator In needs at least one value"),
        ({"addresses": ["10.0.0.0/24"], "serviceAllocation": {"serviceSelectors": [
            {"matchExpressions": [{"key": "a", "operator": "Near"}]}]}},
         "spec.serviceAllocation.serviceSelectors[0].matchExpressions[0].operator:"),
        ([1, 2], "spec: Input should be a valid dictionary"),
    ],
)
def test_pool_spec_errors_name_the_field(raw: Any, message: str) -> None:
    spec, error = parse_spec(IPAddressPoolSpec, raw)
    assert spec is None
    assert error is not None
    assert message in error, error


def test_several_errors_are_joined() -> None:
    _, error = parse_spec(IPAddressPoolSpec, {"addresses": [], "autoAssign": "maybe"})
    assert error is not None
    parts = error.split("; ")
    assert len(parts) == 2
    assert parts[0].startswith("spec.addresses:")
    assert parts[1].startswith("spec.autoAssign:")


def test_describe_validation_error_prefix_and_indices() -> None:
    with pytest.raises(ValidationError) as info:
        L2AdvertisementSpec.model_validate({"nodeSelectors": [{}, {"matchLabels": "x"}]})
    text = describe_validation_error(info.value, prefix="obj")
    assert text.startswith("obj.nodeSelectors[1].matchLabels:")


def test_service_allocation_defaults() -> None:
    sa = ServiceAllocation()
    assert (sa.priority, sa.namespaces, sa.namespace_selectors, sa.service_selectors) == (
        0, [], [], [])


def test_label_selector_model_round_trips_to_parsed() -> None:
    sel = LabelSelector.model_validate({"matchLabels": {"a": "1"}, "matchExpressions": [
        {"key": "b", "operator": "Exists"}]})
    parsed = sel.parsed()
    assert parsed.matches({"a": "1", "b": ""})
    assert not parsed.matches({"a": "1"})


def test_l2adv_spec_defaults_and_fields() -> None:
    spec, error = parse_spec(L2AdvertisementSpec, None)
    assert error is None and spec == L2AdvertisementSpec()
    spec, error = parse_spec(L2AdvertisementSpec, {
        "ipAddressPools": ["a", "b"],
        "ipAddressPoolSelectors": [{"matchLabels": {"x": "y"}}],
        "nodeSelectors": [{"matchLabels": {"kubernetes.io/hostname": "n1"}}],
        "interfaces": ["eth0", "enp0s31f6", "a" * 15],
    })
    assert error is None
    assert spec.ip_address_pools == ["a", "b"]
    assert spec.node_selectors[0].parsed().matches({"kubernetes.io/hostname": "n1"})
    assert spec.interfaces[-1] == "a" * 15


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"interfaces": ["a" * 16]}, "spec.interfaces: invalid interface name"),
        ({"interfaces": [""]}, "spec.interfaces: invalid interface name ''"),
        ({"interfaces": ["eth/0"]}, "invalid interface name 'eth/0'"),
        ({"interfaces": [" eth0"]}, "invalid interface name ' eth0'"),
        ({"interfaces": ["eth0", "eth0"]}, "spec.interfaces: duplicate interface names"),
        ({"ipAddressPools": ["a", "a"]}, "spec.ipAddressPools[1]: duplicate value 'a'"),
        ({"ipAddressPools": "a"}, "spec.ipAddressPools: Input should be a valid list"),
        ({"nodeSelectors": [{"matchExpressions": [{"key": "k", "operator": "Exists",
                                                   "values": ["v"]}]}]},
         "spec.nodeSelectors[0].matchExpressions[0].values: operator Exists must not"),
        ({"ipAddressPoolSelectors": [{"matchLabels": {"a": 1}}]},
         "spec.ipAddressPoolSelectors[0].matchLabels.a: Input should be a valid string"),
    ],
)
def test_l2adv_spec_errors(raw: Any, message: str) -> None:
    spec, error = parse_spec(L2AdvertisementSpec, raw)
    assert spec is None
    assert error is not None and message in error, error


def test_condition_and_l2_status_models() -> None:
    cond = Condition.model_validate({"type": "Ready", "status": "True", "reason": "Accepted",
                                     "message": "ok", "lastTransitionTime": "t"})
    assert cond.observed_generation == 0
    assert cond.model_dump(by_alias=True)["lastTransitionTime"] == "t"
    with pytest.raises(ValidationError):
        Condition.model_validate({"type": "Ready", "status": "Yes", "reason": "r",
                                  "message": "m", "lastTransitionTime": "t"})
    status = ServiceL2StatusStatus.model_validate({
        "node": "n1", "serviceName": "s", "serviceNamespace": "ns",
        "interfaces": [{"name": "eth0"}]})
    assert status.interfaces[0].name == "eth0"

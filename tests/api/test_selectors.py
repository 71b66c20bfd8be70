"""Kubernetes label selectors: parsing, matching, and errors that name the field."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from metallb_api.selectors import (
    OPERATORS,
    LabelSelector,
    Requirement,
    SelectorError,
    any_matches,
    label_key_problem,
    label_value_problem,
)

CRD_DIR = Path(__file__).resolve().parents[2] / "crds"

pytestmark = pytest.mark.unit


def expr(key: str, op: str, *values: str) -> dict[str, Any]:
    out: dict[str, Any] = {"key": key, "operator": op}
    if values:
        out["values"] = list(values)
    return out


@pytest.mark.parametrize(
    ("raw", "labels", "matches"),
    [
        (None, {}, True),
        ({}, {"a": "b"}, True),
        ({"matchLabels": {}}, {}, True),
        ({"matchLabels": {"app": "web"}}, {"app": "web"}, True),
        ({"matchLabels": {"app": "web"}}, {"app": "web", "x": "y"}, True),
        ({"matchLabels": {"app": "web"}}, {"app": "db"}, False),
        ({"matchLabels": {"app": "web"}}, {}, False),
        ({"matchLabels": {"app": "web", "tier": "1"}}, {"app": "web"}, False),
        ({"matchLabels": {"app": ""}}, {"app": ""}, True),
        ({"matchExpressions": [expr("app", "In", "a", "b")]}, {"app": "b"}, True),
        ({"matchExpressions": [expr("app", "In", "a", "b")]}, {"app": "c"}, False),
        ({"matchExpressions": [expr("app", "In", "a")]}, {}, False),
        ({"matchExpressions": [expr("app", "NotIn", "a")]}, {"app": "b"}, True),
        ({"matchExpressions": [expr("app", "NotIn", "a")]}, {"app": "a"}, False),
        ({"matchExpressions": [expr("app", "NotIn", "a")]}, {}, True),  # k8s: absent key
        ({"matchExpressions": [expr("app", "Exists")]}, {"app": ""}, True),
        ({"matchExpressions": [expr("app", "Exists")]}, {"other": "x"}, False),
        ({"matchExpressions": [expr("app", "DoesNotExist")]}, {}, True),
        ({"matchExpressions": [expr("app", "DoesNotExist")]}, {"app": "x"}, False),
        ({"matchLabels": {"team": "a"}, "matchExpressions": [expr("env", "In", "prod")]},
         {"team": "a", "env": "prod"}, True),
        ({"matchLabels": {"team": "a"}, "matchExpressions": [expr("env", "In", "prod")]},
         {"team": "a", "env": "dev"}, False),
        ({"matchLabels": None, "matchExpressions": None}, {}, True),
    ],
)
def test_matches(raw: dict[str, Any] | None, labels: dict[str, str], matches: bool) -> None:
    assert LabelSelector.parse(raw).matches(labels) is matches


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("app=web", "sel: must be an object"),
        ({"matchLabels": ["app"]}, r"sel.matchLabels: must be a map"),
        ({"matchLabels": {"app": 1}}, r"sel.matchLabels\[app\]: value must be a string"),
        ({"matchExpressions": ["x"]}, r"sel.matchExpressions\[0\]: must be an object"),
        ({"matchExpressions": [{"operator": "Exists"}]}, r"matchExpressions\[0\].key"),
        ({"matchExpressions": [{"key": "", "operator": "Exists"}]}, "key: required"),
        ({"matchExpressions": [expr("a", "Exists"), expr("b", "Equals", "x")]},
         r"matchExpressions\[1\].operator: 'Equals' is not one of"),
        ({"matchExpressions": [expr("a", "In")]}, "needs at least one value"),
        ({"matchExpressions": [expr("a", "NotIn")]}, "needs at least one value"),
        ({"matchExpressions": [expr("a", "Exists", "x")]}, "must not have values"),
        ({"matchExpressions": [expr("a", "DoesNotExist", "x")]}, "must not have values"),
    ],
)
def test_parse_errors_name_the_field(raw: Any, message: str) -> None:
    with pytest.raises(SelectorError, match=message):
        LabelSelector.parse(raw, "sel")


def test_parse_builds_requirements() -> None:
    sel = LabelSelector.parse({"matchLabels": {"b": "2", "a": "1"},
                               "matchExpressions": [expr("c", "In", "x", "y")]})
    assert sel.requirements == (
        Requirement("a", "In", frozenset({"1"})),
        Requirement("b", "In", frozenset({"2"})),
        Requirement("c", "In", frozenset({"x", "y"})),
    )


def test_any_matches_is_or_of_selectors() -> None:
    web = LabelSelector.parse({"matchLabels": {"app": "web"}})
    db = LabelSelector.parse({"matchLabels": {"app": "db"}})
    assert any_matches((web, db), {"app": "db"})
    assert not any_matches((web, db), {"app": "cache"})
    assert not any_matches((), {"app": "web"})


labels_st = st.dictionaries(st.sampled_from("abcde"), st.sampled_from(["1", "2", ""]),
                            max_size=5)


@settings(max_examples=200, deadline=None)
@given(labels_st, labels_st)
def test_match_labels_is_subset(wanted: dict[str, str], labels: dict[str, str]) -> None:
    sel = LabelSelector.parse({"matchLabels": wanted})
    assert sel.matches(labels) == (wanted.items() <= labels.items())


@settings(max_examples=200, deadline=None)
@given(st.sampled_from("abc"), st.lists(st.sampled_from(["1", "2"]), min_size=1, unique=True),
       labels_st)
def test_in_and_not_in_are_complements(key: str, values: list[str],
                                        labels: dict[str, str]) -> None:
    in_ = LabelSelector.parse({"matchExpressions": [expr(key, "In", *values)]})
    not_in = LabelSelector.parse({"matchExpressions": [expr(key, "NotIn", *values)]})
    assert in_.matches(labels) != not_in.matches(labels)
    exists = LabelSelector.parse({"matchExpressions": [expr(key, "Exists")]})
    absent = LabelSelector.parse({"matchExpressions": [expr(key, "DoesNotExist")]})
    assert exists.matches(labels) != absent.matches(labels)


# -- Kubernetes' label syntax (apimachinery IsQualifiedName / IsLabelValue) ---------------

GOOD_KEYS = ["a", "A", "9", "app", "app.kubernetes.io/name", "topology.kubernetes.io/zone",
             "x" * 63, "a-b_c.d", "Z.z", "example.com/" + "n" * 63,
             ".".join(["p" * 63] * 3) + ".abc/k"]  # a 195-character prefix
BAD_KEYS = [
    ("bad key", "name part must consist of"),
    ("-app", "name part must consist of"),
    ("app-", "name part must consist of"),
    ("app_", "name part must consist of"),
    ("x" * 64, "name part must be at most 63 characters"),
    ("/app", "prefix part must not be empty"),
    ("example.com/", "name part must not be empty"),
    ("a/b/c", "one '/'"),
    ("Example.com/app", "prefix part must be a DNS subdomain"),
    ("ex_ample.com/app", "prefix part must be a DNS subdomain"),
    ("example..com/app", "prefix part must be a DNS subdomain"),
    ("x." + "p" * 253 + "/app", "prefix part must be at most 253 characters"),
    ("ünïcode", "name part must consist of"),
    ("app\n", "name part must consist of"),
]
GOOD_VALUES = ["", "a", "A9", "v1.2_3-x", "x" * 63]
BAD_VALUES = [
    ("-a", "must be empty or consist of"),
    ("a-", "must be empty or consist of"),
    ("a b", "must be empty or consist of"),
    ("a/b", "must be empty or consist of"),
    ("x" * 64, "must be at most 63 characters"),
    ("ok\n", "must be empty or consist of"),
]


@pytest.mark.parametrize("key", GOOD_KEYS)
def test_valid_label_keys(key: str) -> None:
    assert label_key_problem(key) is None
    LabelSelector.parse({"matchLabels": {key: "v"},
                         "matchExpressions": [expr(key, "Exists")]})


@pytest.mark.parametrize(("key", "why"), BAD_KEYS)
def test_invalid_label_keys_are_refused_in_both_places(key: str, why: str) -> None:
    problem = label_key_problem(key)
    assert problem is not None and why in problem
    with pytest.raises(SelectorError, match=rf"^sel\.matchLabels: invalid label key .*{why}"):
        LabelSelector.parse({"matchLabels": {key: "v"}}, "sel")
    with pytest.raises(SelectorError,
                       match=rf"^sel\.matchExpressions\[0\]\.key: invalid label key .*{why}"):
        LabelSelector.parse({"matchExpressions": [expr(key, "Exists")]}, "sel")


@pytest.mark.parametrize("value", GOOD_VALUES)
def test_valid_label_values(value: str) -> None:
    assert label_value_problem(value) is None
    LabelSelector.parse({"matchLabels": {"k": value},
                         "matchExpressions": [expr("k", "In", value)]})


@pytest.mark.parametrize(("value", "why"), BAD_VALUES)
def test_invalid_label_values_are_refused_in_both_places(value: str, why: str) -> None:
    problem = label_value_problem(value)
    assert problem is not None and why in problem
    with pytest.raises(SelectorError, match=r"^sel\.matchLabels\[k\]: invalid label value"):
        LabelSelector.parse({"matchLabels": {"k": value}}, "sel")
    with pytest.raises(SelectorError,
                       match=r"^sel\.matchExpressions\[0\]\.values\[1\]: invalid label value"):
        LabelSelector.parse({"matchExpressions": [expr("k", "NotIn", "ok", value)]}, "sel")


def _crd_selector_schema(crd: str) -> dict[str, Any]:
    doc = yaml.safe_load((CRD_DIR / crd).read_text())
    spec = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    if "serviceAllocation" in spec["properties"]:
        sel = spec["properties"]["serviceAllocation"]["properties"]["serviceSelectors"]
    else:
        sel = spec["properties"]["nodeSelectors"]
    return dict(sel["items"]["properties"])


@pytest.mark.parametrize("crd", ["metallb.io_ipaddresspools.yaml",
                                 "metallb.io_l2advertisements.yaml"])
def test_crd_patterns_agree_with_the_pure_rules(crd: str) -> None:
    """The CRDs' patterns (admission) and this module (offline, old objects) accept the
    same keys and values; the CRD's prefix-length rule is CEL, checked here by hand."""
    props = _crd_selector_schema(crd)
    expression = props["matchExpressions"]["items"]["properties"]
    key_re = re.compile(expression["key"]["pattern"])
    value_re = re.compile(expression["values"]["items"]["pattern"])
    assert props["matchLabels"]["additionalProperties"]["pattern"] == value_re.pattern
    cel_key = key_re.pattern.replace("\\", "\\\\")  # a CEL string literal escapes '\\'
    assert cel_key in props["matchLabels"]["x-kubernetes-validations"][0]["rule"]

    def crd_accepts_key(key: str) -> bool:
        return (len(key) <= expression["key"]["maxLength"] and bool(key_re.fullmatch(key))
                and ("/" not in key or key.index("/") <= 253))

    for key in GOOD_KEYS + [k for k, _ in BAD_KEYS]:
        assert crd_accepts_key(key) == (label_key_problem(key) is None), key
    for value in GOOD_VALUES + [v for v, _ in BAD_VALUES]:
        assert bool(value_re.fullmatch(value)) == (label_value_problem(value) is None), value


@pytest.mark.parametrize(("raw", "why"), [
    ({"matchLabels": {"zone": "a"}, "matchExpressions": [expr("zone", "DoesNotExist")]},
     "key 'zone' must both exist and not exist"),
    ({"matchExpressions": [expr("zone", "Exists"), expr("zone", "DoesNotExist")]},
     "key 'zone' must both exist and not exist"),
    ({"matchLabels": {"zone": "a"}, "matchExpressions": [expr("zone", "In", "b", "c")]},
     "no value of key 'zone' satisfies all of its requirements"),
    ({"matchExpressions": [expr("zone", "In", "a", "b"), expr("zone", "NotIn", "b", "a")]},
     "no value of key 'zone' satisfies all of its requirements"),
    ({"matchLabels": {"zone": "a"}, "matchExpressions": [expr("zone", "NotIn", "a")]},
     "no value of key 'zone' satisfies all of its requirements"),
])
def test_contradictory_requirements_are_named(raw: dict[str, Any], why: str) -> None:
    assert LabelSelector.parse(raw).contradiction() == why


@pytest.mark.parametrize("raw", [
    {},
    {"matchLabels": {"zone": "a"}, "matchExpressions": [expr("zone", "In", "a", "b")]},
    {"matchExpressions": [expr("zone", "In", "a", "b"), expr("zone", "NotIn", "a")]},
    {"matchExpressions": [expr("zone", "NotIn", "a"), expr("zone", "DoesNotExist")]},
    {"matchExpressions": [expr("zone", "Exists"), expr("rack", "DoesNotExist")]},
])
def test_satisfiable_selectors_have_no_contradiction(raw: dict[str, Any]) -> None:
    assert LabelSelector.parse(raw).contradiction() is None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("ab"),
                          st.sampled_from(OPERATORS),
                          st.sets(st.sampled_from(["1", "2", "3"]), min_size=1)), max_size=4,
                unique_by=lambda r: (r[0], r[1], frozenset(r[2]) if r[1] in ("In", "NotIn")
                                     else None)))  # repeated expressions are refused
def test_contradiction_means_no_labels_match(reqs: list[tuple[str, str, set[str]]]) -> None:
    """Checked against every label set over the keys and values in play."""
    sel = LabelSelector.parse({"matchExpressions": [
        expr(k, op, *(sorted(v) if op in ("In", "NotIn") else ())) for k, op, v in reqs]})
    choices: list[str | None] = [None, "1", "2", "3", "4"]
    some_match = any(
        sel.matches({k: v for k, v in zip("ab", values, strict=True) if v is not None})
        for values in itertools.product(choices, repeat=2))
    assert (sel.contradiction() is None) == some_match


def _selector_lists(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every list of label selectors in a CRD schema (items with matchLabels)."""
    if isinstance(node, dict):
        items = node.get("items")
        if node.get("type") == "array" and isinstance(items, dict) and \
                "matchLabels" in (items.get("properties") or {}):
            yield path, node
        for key, child in node.items():
            yield from _selector_lists(child, f"{path}.{key}")
    elif isinstance(node, list):
        for child in node:
            yield from _selector_lists(child, path)


@pytest.mark.parametrize("crd", ["metallb.io_ipaddresspools.yaml",
                                 "metallb.io_l2advertisements.yaml"])
def test_crd_refuses_repeated_selectors_expressions_and_values(crd: str) -> None:
    """MetalLB refuses repeated selectors, expressions and values: lists of type set
    (the API server compares entries as written, as `duplicate_entries` does)."""
    doc = yaml.safe_load((CRD_DIR / crd).read_text())
    found = {path.rsplit(".", 1)[-1]: node for path, node in _selector_lists(doc)}
    assert found, crd
    for name, node in found.items():
        assert node.get("x-kubernetes-list-type") == "set", name
        props = node["items"]["properties"]
        assert props["matchExpressions"]["x-kubernetes-list-type"] == "set", name
        assert props["matchExpressions"]["items"]["x-kubernetes-map-type"] == "atomic", name
        values = props["matchExpressions"]["items"]["properties"]["values"]
        assert values["x-kubernetes-list-type"] == "set", name
    expected = ({"namespaceSelectors", "serviceSelectors"} if "pool" in crd else
                {"ipAddressPoolSelectors", "nodeSelectors", "serviceSelectors"})
    assert set(found) == expected

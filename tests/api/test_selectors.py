"""Kubernetes label selectors: parsing, matching, and errors that name the field."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metallb_api.selectors import LabelSelector, Requirement, SelectorError, any_matches

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
@given(st.sampled_from("abc"), st.lists(st.sampled_from(["1", "2"]), min_size=1), labels_st)
def test_in_and_not_in_are_complements(key: str, values: list[str],
                                        labels: dict[str, str]) -> None:
    in_ = LabelSelector.parse({"matchExpressions": [expr(key, "In", *values)]})
    not_in = LabelSelector.parse({"matchExpressions": [expr(key, "NotIn", *values)]})
    assert in_.matches(labels) != not_in.matches(labels)
    exists = LabelSelector.parse({"matchExpressions": [expr(key, "Exists")]})
    absent = LabelSelector.parse({"matchExpressions": [expr(key, "DoesNotExist")]})
    assert exists.matches(labels) != absent.matches(labels)

"""Which endpoints of an EndpointSlice count as serving (MetalLB's reading: `serving`
when set, else `ready`, and an unset `ready` means ready)."""

from __future__ import annotations

from typing import Any

import pytest

from metallb_speaker.controller import slice_endpoints

pytestmark = pytest.mark.unit


def ep(node: str | None = "n1", **conditions: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"addresses": ["198.18.250.1"], "conditions": conditions}
    if node:
        out["nodeName"] = node
    return out


@pytest.mark.parametrize(("case", "endpoints", "nodes", "serving"), [
    ("no endpoints", [], set(), False),
    ("ready", [ep(ready=True)], {"n1"}, True),
    ("conditions unset mean ready", [ep()], {"n1"}, True),
    ("not ready", [ep(ready=False)], set(), False),
    ("terminating but still serving", [ep(ready=False, serving=True, terminating=True)],
     {"n1"}, True),
    ("ready but no longer serving", [ep(ready=True, serving=False)], set(), False),
    ("serving without a node name", [ep(None, ready=True)], set(), True),
    ("mixed", [ep("n1", ready=False), ep("n2", ready=True), ep("n3", serving=True)],
     {"n2", "n3"}, True),
])
def test_serving_endpoints(case: str, endpoints: list[dict[str, Any]], nodes: set[str],
                           serving: bool) -> None:
    assert slice_endpoints({"endpoints": endpoints}) == (frozenset(nodes), serving), case


def test_a_slice_without_endpoints_field() -> None:
    assert slice_endpoints({}) == (frozenset(), False)

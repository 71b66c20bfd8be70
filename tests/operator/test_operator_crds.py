"""Start-up order on a control plane of its own: the operator started before its CRDs
exist waits quietly (a log line and a metric, no traceback, no exit) and works within
seconds of their creation; deleted and recreated CRDs are picked up again. And what the
CRD schemas alone admit or refuse (the shared control plane, no operator)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from metallb_api.config import ProblemReason, build_config
from metallb_lab.controlplane import ControlPlane, ControlPlaneConfig
from metallb_lab.kube import CRD_DIR, Json, apply_crds, apply_manifest, create_namespace, wait_for
from metallb_lab.operator import OperatorProcess
from metallb_lab.pytest_plugin import FAILED

from .conftest import OperatorEnv

pytestmark = pytest.mark.cluster
WITHIN = 20.0  # generous against hangs; the figures are printed


@pytest.fixture
def bare(request: pytest.FixtureRequest) -> Iterator[OperatorEnv]:
    """An API server without our CRDs."""
    with ControlPlane(ControlPlaneConfig()) as cp:
        env = OperatorEnv(cp, create_namespace(cp, "pools"), create_namespace(cp, "apps"),
                          f"metallb.io/c-{uuid.uuid4().hex[:8]}")
        try:
            yield env
        finally:
            if env.operator is not None:
                env.operator.stop()
                if request.node.stash.get(FAILED, False):
                    print(env.operator.logs()[-8000:])


def _assigned_after(env: OperatorEnv, name: str, pool: str, cidr: str) -> float:
    started = time.monotonic()
    wait_for(lambda: _try_pool(env, pool, cidr), timeout=WITHIN, what="pool accepted")
    env.service(name)
    env.wait_ingress(name, timeout=WITHIN)
    return time.monotonic() - started


def _try_pool(env: OperatorEnv, name: str, cidr: str) -> bool:
    return not env.try_apply(f"""
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: {name}}}
spec: {{addresses: ["{cidr}"]}}
""")


def test_operator_started_before_its_crds_waits_for_them(bare: OperatorEnv) -> None:
    env = bare
    op = OperatorProcess(env.cp, env.pool_ns, lb_class=env.lb_class)
    env.operator = op
    op.start(wait=False)
    wait_for(lambda: op.metric("metallb_controller_crds_missing") == 1.0, timeout=WITHIN,
             what="the operator saying it waits for its CRDs")
    time.sleep(3)  # it keeps waiting, quietly
    assert op.proc is not None and op.proc.poll() is None, op.logs()[-3000:]
    waiting = op.log_events("crdMissing")
    assert len(waiting) == 1, f"one line, not one per retry: {waiting}"
    assert "CRDs are not installed" in waiting[0]["reason"]
    assert "Traceback" not in op.logs(), op.logs()[-3000:]

    apply_crds(env.cp)
    first = _assigned_after(env, "first", "p1", "198.18.30.0/28")
    assert op.metric("metallb_controller_crds_missing") == 0.0
    assert env.wait_ingress("first") == ["198.18.30.0"]

    # Deleted and recreated (e.g. reinstalled): pools come back, Services are served.
    env.cp.kubectl("delete", "-f", str(CRD_DIR), "--wait=true")
    time.sleep(2)
    apply_crds(env.cp)
    again = _assigned_after(env, "second", "p2", "198.18.31.0/28")
    # "first" lost its pool with the CRDs (as when a pool is deleted) and is served
    # again from the new one.
    assert {env.wait_ingress(n)[0] for n in ("first", "second")} == {
        "198.18.31.0", "198.18.31.1"}
    assert op.proc.poll() is None, op.logs()[-3000:]
    assert "Traceback" not in op.logs(), op.logs()[-3000:]
    print(f"CRDs created: first Service assigned {first:.1f} s later; "
          f"after a delete + recreate: {again:.1f} s")


# -- admission by the CRD schemas alone (no operator): L2Advertisement serviceSelectors and
# preferredNodeSelectors (MetalLB v0.15), and MetalLB's refusal of repeated entries -------
SEL_A = {"matchLabels": {"zone": "a"}}
EXPR = {"key": "zone", "operator": "In", "values": ["a", "b"]}
PREFERRED = [{"weight": 1, "preference": SEL_A},
             {"weight": 100, "preference": {}},  # empty: every selected node
             {"weight": 1, "preference": SEL_A}]  # repeats are summed, as in MetalLB


def _obj(kind: str, spec: dict[str, Any], name: str = "x") -> dict[str, Any]:
    if kind == "IPAddressPool":
        spec = {"addresses": ["198.18.0.0/24"], "serviceAllocation": spec}
    return {"apiVersion": "metallb.io/v1beta1", "kind": kind, "metadata": {"name": name},
            "spec": spec}


def _apply(cp: ControlPlane, ns: str, obj: dict[str, Any]) -> str:
    proc = apply_manifest(cp, json.dumps(obj), ns, check=False)
    return proc.stderr if proc.returncode else ""


def test_l2advertisement_service_and_preferred_node_selectors_are_kept(
        control_plane: ControlPlane, namespace: str) -> None:
    spec = {"serviceSelectors": [SEL_A, {"matchExpressions": [EXPR]}],
            "preferredNodeSelectors": PREFERRED}
    assert _apply(control_plane, namespace, _obj("L2Advertisement", spec)) == ""
    got = Json(control_plane).get(
        f"/apis/metallb.io/v1beta1/namespaces/{namespace}/l2advertisements/x")
    assert got["spec"] == spec  # nothing pruned


@pytest.mark.parametrize(("kind", "spec", "expected"), [
    # preferredNodeSelectors: MetalLB's schema (weight 1-100, both fields required)
    ("L2Advertisement", {"preferredNodeSelectors": [{"weight": 0, "preference": {}}]},
     "spec.preferredNodeSelectors[0].weight: Invalid value: 0"),
    ("L2Advertisement", {"preferredNodeSelectors": [{"weight": 101, "preference": {}}]},
     "spec.preferredNodeSelectors[0].weight: Invalid value: 101"),
    ("L2Advertisement", {"preferredNodeSelectors": [{"weight": 5}]},
     'spec.preferredNodeSelectors[0].preference: Required value'),
    ("L2Advertisement", {"preferredNodeSelectors": [{"preference": {}}]},
     'spec.preferredNodeSelectors[0].weight: Required value'),
    # the label syntax rules of the other selectors apply to the new ones
    ("L2Advertisement", {"serviceSelectors": [{"matchLabels": {"bad key": "x"}}]},
     'label key "bad key" is not a valid label key'),
    ("L2Advertisement", {"preferredNodeSelectors": [{"weight": 1, "preference": {
        "matchExpressions": [{"key": "zone", "operator": "Exists", "values": ["a"]}]}}]},
     "operator Exists must not have values"),
    # repeated entries (MetalLB's validateLabelSelectorDuplicate / validateDuplicate)
    ("L2Advertisement", {"nodeSelectors": [SEL_A, SEL_A]},
     "spec.nodeSelectors[1]: Duplicate value"),
    ("L2Advertisement", {"ipAddressPoolSelectors": [SEL_A, SEL_A]},
     "spec.ipAddressPoolSelectors[1]: Duplicate value"),
    ("L2Advertisement", {"serviceSelectors": [{"matchExpressions": [EXPR]},
                                              {"matchExpressions": [EXPR]}]},
     "spec.serviceSelectors[1]: Duplicate value"),
    ("L2Advertisement", {"nodeSelectors": [{"matchExpressions": [EXPR, EXPR]}]},
     "spec.nodeSelectors[0].matchExpressions[1]: Duplicate value"),
    ("L2Advertisement", {"nodeSelectors": [{"matchExpressions": [
        {"key": "k", "operator": "In", "values": ["x", "y", "x"]}]}]},
     "spec.nodeSelectors[0].matchExpressions[0].values[2]: Duplicate value: \"x\""),
    ("L2Advertisement", {"ipAddressPools": ["a", "a"]},
     "spec.ipAddressPools[1]: Duplicate value: \"a\""),
    ("IPAddressPool", {"namespaces": ["a", "b", "a"]},
     "spec.serviceAllocation.namespaces[2]: Duplicate value: \"a\""),
    ("IPAddressPool", {"namespaceSelectors": [SEL_A, SEL_A]},
     "spec.serviceAllocation.namespaceSelectors[1]: Duplicate value"),
    ("IPAddressPool", {"serviceSelectors": [SEL_A, {"matchLabels": {"x": "y"}}, SEL_A]},
     "spec.serviceAllocation.serviceSelectors[2]: Duplicate value"),
    ("IPAddressPool", {"serviceSelectors": [{"matchExpressions": [
        {"key": "k", "operator": "NotIn", "values": ["v", "v"]}]}]},
     "spec.serviceAllocation.serviceSelectors[0].matchExpressions[0].values[1]: "
     "Duplicate value"),
])
def test_refused_by_the_apiserver(control_plane: ControlPlane, namespace: str, kind: str,
                                  spec: dict[str, Any], expected: str) -> None:
    err = _apply(control_plane, namespace, _obj(kind, spec))
    assert expected in err, err
    # ... and by the pure rules (`metallbctl validate`, objects written before the CRDs)
    obj = _obj(kind, spec)
    cfg = build_config([obj], []) if kind == "IPAddressPool" else build_config([], [obj])
    assert [p.reason for p in cfg.problems] == [ProblemReason.INVALID_SPEC], cfg.problems


@pytest.mark.parametrize(("kind", "spec"), [
    ("L2Advertisement", {"nodeSelectors": [SEL_A, {"matchLabels": {"zone": "b"}}]}),
    # a selector matching nothing (yet) is valid
    ("L2Advertisement", {"serviceSelectors": [{"matchLabels": {"nobody": "has-this"}}],
                         "ipAddressPoolSelectors": [{"matchLabels": {"no": "pool"}}],
                         "preferredNodeSelectors": [{"weight": 3, "preference": {
                             "matchLabels": {"no": "node"}}}]}),
    ("L2Advertisement", {"serviceSelectors": [{"matchExpressions": [EXPR]},
                                              {"matchExpressions": [EXPR | {
                                                  "operator": "NotIn"}]}]}),
    ("IPAddressPool", {"namespaces": ["a", "b"], "namespaceSelectors": [SEL_A],
                       "serviceSelectors": [SEL_A]}),  # the same selector in two lists
])
def test_accepted_by_the_apiserver(control_plane: ControlPlane, namespace: str, kind: str,
                                   spec: dict[str, Any]) -> None:
    assert _apply(control_plane, namespace, _obj(kind, spec)) == ""
    obj = _obj(kind, spec)
    cfg = build_config([obj], []) if kind == "IPAddressPool" else build_config([], [obj])
    assert cfg.problems == ()

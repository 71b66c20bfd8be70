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

from metallb_api.bgp import BGPConfig, BGPProblemReason, build_bgp_config
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


# -- BGP kinds (issue 10): what their schemas and CEL rules admit or refuse ---------------
BGP_VERSIONS = {"BGPPeer": "metallb.io/v1beta2"}
PEER = {"myASN": 64512, "peerASN": 64513, "peerAddress": "198.18.0.1"}


def _bgp(kind: str, spec: dict[str, Any], ns: str, name: str = "x",
         version: str | None = None) -> dict[str, Any]:
    return {"apiVersion": version or BGP_VERSIONS.get(kind, "metallb.io/v1beta1"),
            "kind": kind, "metadata": {"name": name, "namespace": ns}, "spec": spec}


def _bgp_model(obj: dict[str, Any]) -> BGPConfig:
    lists: dict[str, list[dict[str, Any]]] = {
        "BGPPeer": [], "BGPAdvertisement": [], "BFDProfile": [], "Community": []}
    lists[obj["kind"]].append(obj)
    return build_bgp_config(build_config([]), lists["BGPPeer"], lists["BGPAdvertisement"],
                            lists["BFDProfile"], lists["Community"])


@pytest.mark.parametrize(("kind", "spec", "expected"), [
    ("BGPPeer", PEER | {"dynamicASN": "external"},
     "spec.peerASN, spec.dynamicASN: exactly one of them must be set"),
    ("BGPPeer", {"myASN": 64512, "peerAddress": "198.18.0.1"},
     "spec.peerASN, spec.dynamicASN: exactly one of them must be set"),
    ("BGPPeer", PEER | {"dynamicASN": "both"}, 'spec.dynamicASN: Unsupported value: "both"'),
    ("BGPPeer", PEER | {"myASN": 0}, "spec.myASN: Invalid value: 0"),
    ("BGPPeer", {"myASN": 1, "peerASN": 2}, "spec.peerAddress, spec.interface: exactly one"),
    ("BGPPeer", PEER | {"interface": "eth0"}, "spec.peerAddress, spec.interface: exactly one"),
    ("BGPPeer", PEER | {"peerAddress": "198.18.0.300"},
     "spec.peerAddress: must be an IPv4 or IPv6 address"),
    ("BGPPeer", PEER | {"sourceAddress": "eth0"},
     "spec.sourceAddress: must be an IPv4 or IPv6 address"),
    ("BGPPeer", PEER | {"routerID": "router"}, "spec.routerID: must be an IP address"),
    ("BGPPeer", PEER | {"holdTime": "2s"}, "spec.holdTime: must be 0 or at least 3s"),
    ("BGPPeer", PEER | {"holdTime": "-3s"}, "spec.holdTime: must be 0 or at least 3s"),
    ("BGPPeer", PEER | {"holdTime": "9s", "keepaliveTime": "10s"},
     "spec.keepaliveTime: must not be longer than spec.holdTime"),
    ("BGPPeer", PEER | {"keepaliveTime": "900ms"}, "the hold time is three keepalives"),
    ("BGPPeer", PEER | {"connectTime": "1500ms"},
     "spec.connectTime: must be a whole number of seconds"),
    ("BGPPeer", PEER | {"connectTime": "0s"}, "spec.connectTime: must be between 1s and 65535s"),
    ("BGPPeer", PEER | {"peerASN": 64512, "ebgpMultiHop": True},
     "spec.ebgpMultiHop: not allowed for an iBGP peer"),
    ("BGPPeer", PEER | {"password": "x", "passwordSecret": {"name": "s"}},
     "spec.password, spec.passwordSecret: at most one of them may be set"),
    ("BGPPeer", PEER | {"peerPort": 20000}, "spec.peerPort: Invalid value: 20000"),
    ("BGPPeer", PEER | {"password": "a b"}, "spec.password: Invalid value"),
    ("BGPPeer", PEER | {"vrf": "red\nbgp 1"}, "spec.vrf: Invalid value"),
    ("BGPPeer", {"myASN": 1, "peerASN": 2, "interface": "eth 0"}, "spec.interface: Invalid value"),
    ("BGPPeer", PEER | {"nodeSelectors": [SEL_A, SEL_A]},
     "spec.nodeSelectors[1]: Duplicate value"),
    ("BGPAdvertisement", {"communities": ["65536:1"]},
     '"65536:1" is not a community: a:b needs two numbers from 0 to 65535'),
    ("BGPAdvertisement", {"communities": ["1:x"]}, '"1:x" is not a community'),
    ("BGPAdvertisement", {"communities": ["large:1:2:4294967296"]},
     '"large:1:2:4294967296" is not a large community'),
    ("BGPAdvertisement", {"communities": ["big:1:2:3"]}, '"big:1:2:3" is not a large community'),
    ("BGPAdvertisement", {"communities": ["1:2", "1:2"]},
     'spec.communities[1]: Duplicate value: "1:2"'),
    ("BGPAdvertisement", {"aggregationLength": 33}, "spec.aggregationLength: Invalid value: 33"),
    ("BGPAdvertisement", {"aggregationLength": 0}, "spec.aggregationLength: Invalid value: 0"),
    ("BGPAdvertisement", {"aggregationLengthV6": 129},
     "spec.aggregationLengthV6: Invalid value: 129"),
    ("BGPAdvertisement", {"localPref": -1}, "spec.localPref: Invalid value: -1"),
    ("BGPAdvertisement", {"peers": ["a", "a"]}, 'spec.peers[1]: Duplicate value: "a"'),
    ("BGPAdvertisement", {"ipAddressPoolSelectors": [SEL_A, SEL_A]},
     "spec.ipAddressPoolSelectors[1]: Duplicate value"),
    ("BFDProfile", {"receiveInterval": 9}, "spec.receiveInterval: Invalid value: 9"),
    ("BFDProfile", {"transmitInterval": 60001}, "spec.transmitInterval: Invalid value: 60001"),
    ("BFDProfile", {"detectMultiplier": 1}, "spec.detectMultiplier: Invalid value: 1"),
    ("BFDProfile", {"echoInterval": 5}, "spec.echoInterval: Invalid value: 5"),
    ("BFDProfile", {"minimumTtl": 255}, "spec.minimumTtl: Invalid value: 255"),
    ("Community", {"communities": [{"name": "gold", "value": "1:2:3"}]},
     '"1:2:3" is not a community'),
    ("Community", {"communities": [{"name": "gold", "value": "large:1:2"}]},
     '"large:1:2" is not a community'),
    ("Community", {"communities": [{"name": "gold", "value": "1:2"},
                                   {"name": "gold", "value": "3:4"}]},
     "spec.communities[1]: Duplicate value"),
    ("Community", {"communities": [{"name": "gold"}]},
     "spec.communities[0].value: Required value"),
])
def test_bgp_kinds_refused_by_the_apiserver(control_plane: ControlPlane, namespace: str,
                                            kind: str, spec: dict[str, Any],
                                            expected: str) -> None:
    err = _apply(control_plane, namespace, _bgp(kind, spec, namespace))
    assert expected in err, err
    # ... and by the pure model (`metallbctl validate`, objects written before the CRDs)
    cfg = _bgp_model(_bgp(kind, spec, namespace))
    assert [p.reason for p in cfg.problems] == [BGPProblemReason.INVALID_SPEC], cfg.problems


@pytest.mark.parametrize(("kind", "spec"), [
    ("BGPPeer", PEER),
    ("BGPPeer", {"myASN": 64512, "dynamicASN": "internal", "interface": "eth0"}),
    ("BGPPeer", PEER | {"peerAddress": "fd00::1", "sourceAddress": "fd00::2",
                        "routerID": "198.18.0.9", "holdTime": "3s", "keepaliveTime": "1s",
                        "connectTime": "5s", "passwordSecret": {"name": "s"},
                        "bfdProfile": "fast", "enableGracefulRestart": True,
                        "ebgpMultiHop": True, "vrf": "red", "dualStackAddressFamily": True,
                        "nodeSelectors": [SEL_A], "localASN": 64700}),
    ("BGPPeer", PEER | {"holdTime": "0s"}),  # no keepalives at all (RFC 4271)
    ("BGPPeer", PEER | {"keepaliveTime": "300ms"}),  # hold 0.9 s rounds to 0, as in MetalLB
    ("BGPPeer", PEER | {"holdTime": "90s", "keepaliveTime": "90s"}),
    ("BGPAdvertisement", {"communities": ["65535:65535", "large:4294967295:0:1", "gold",
                                          "no-export"],
                          "aggregationLength": 24, "aggregationLengthV6": 64,
                          "localPref": 4294967295, "peers": ["a", "b"],
                          "ipAddressPools": ["p"], "nodeSelectors": [SEL_A]}),
    ("BFDProfile", {"receiveInterval": 10, "transmitInterval": 60000, "detectMultiplier": 255,
                    "echoInterval": 10, "echoMode": True, "passiveMode": True,
                    "minimumTtl": 1}),
    ("Community", {"communities": [{"name": "gold", "value": "65535:1"},
                                   {"name": "silver", "value": "large:1:2:3"}]}),
])
def test_bgp_kinds_accepted_by_the_apiserver(control_plane: ControlPlane, namespace: str,
                                             kind: str, spec: dict[str, Any]) -> None:
    assert _apply(control_plane, namespace, _bgp(kind, spec, namespace)) == ""
    assert not [p for p in _bgp_model(_bgp(kind, spec, namespace)).problems
                if p.reason == BGPProblemReason.INVALID_SPEC]


def test_bgppeer_v1beta1_is_served_and_read_as_v1beta2(control_plane: ControlPlane,
                                                      namespace: str) -> None:
    legacy = PEER | {"holdTime": "9s", "nodeSelectors": [{"matchExpressions": [EXPR]}]}
    assert _apply(control_plane, namespace,
                  _bgp("BGPPeer", legacy, namespace, version="metallb.io/v1beta1")) == ""
    got = Json(control_plane).get(f"/apis/metallb.io/v1beta2/namespaces/{namespace}/bgppeers/x")
    assert got["apiVersion"] == "metallb.io/v1beta2"
    # the defaults of v1beta2 are applied on read; nothing else changes
    assert got["spec"] == legacy | {"peerPort": 179, "disableMP": False,
                                    "dualStackAddressFamily": False}
    # v1beta1 keeps its own shape: no dynamicASN, so peerASN is required there
    err = _apply(control_plane, namespace, _bgp(
        "BGPPeer", {"myASN": 1, "peerAddress": "198.18.0.1"},
        namespace, name="legacy", version="metallb.io/v1beta1"))
    assert "spec.peerASN: Required value" in err, err
    # read as v1beta1, a v1beta2 peer shows v1beta1's fields only (as MetalLB's conversion)
    assert _apply(control_plane, namespace, _bgp(
        "BGPPeer", {"myASN": 1, "dynamicASN": "external", "peerAddress": "198.18.0.1",
                    "vrf": "red"}, namespace, name="new")) == ""
    old = Json(control_plane).get(f"/apis/metallb.io/v1beta1/namespaces/{namespace}/bgppeers/new")
    assert old["spec"] == {"myASN": 1, "peerAddress": "198.18.0.1", "peerPort": 179}


def test_bgppeer_graceful_restart_is_immutable(control_plane: ControlPlane,
                                               namespace: str) -> None:
    assert _apply(control_plane, namespace, _bgp("BGPPeer", PEER, namespace)) == ""
    err = _apply(control_plane, namespace, _bgp("BGPPeer", PEER | {
        "enableGracefulRestart": True}, namespace))
    assert "spec.enableGracefulRestart: cannot be changed after creation" in err, err

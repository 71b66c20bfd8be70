"""The operator against the real kube-apiserver: what a user sees after `kubectl apply`."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from tests.operator.conftest import OperatorEnv

from metallb_lab.kube import create_namespace, wait_for

pytestmark = pytest.mark.cluster


def test_range_and_cidr_pools_in_both_families(env: OperatorEnv) -> None:
    env.pool("v4range", "198.18.10.10 - 198.18.10.11")
    env.pool("v6cidr", "fd00:10::/126", autoAssign=False)
    env.start()
    env.service("a")
    env.service("b")
    env.service("c")
    assert env.wait_ingress("a") == ["198.18.10.10"]
    assert env.wait_ingress("b") == ["198.18.10.11"]
    msg = env.wait_event("c", "AllocationFailed")
    assert "no available IPv4 address" in msg
    env.service("six", ipFamilies=["IPv6"], ipFamilyPolicy="SingleStack",
                annotations={"metallb.io/address-pool": "v6cidr"})
    assert env.wait_ingress("six") == ["fd00:10::"]
    assert "Assigned IP" in env.wait_event("a", "IPAllocated")
    svc = env.core.read_namespaced_service("a", env.ns)
    assert svc.metadata.annotations["metallb.io/ip-allocated-from-pool"] == "v4range"


def test_requested_ips_annotation_and_spec_field(env: OperatorEnv) -> None:
    env.pool("p", "198.18.11.0/28")
    env.start()
    env.service("by-annotation", annotations={"metallb.io/loadBalancerIPs": "198.18.11.7"})
    env.service("by-field", loadBalancerIP="198.18.11.9")
    env.service("outside", annotations={"metallb.io/loadBalancerIPs": "198.18.99.1"})
    env.service("both", loadBalancerIP="198.18.11.3",
                annotations={"metallb.io/loadBalancerIPs": "198.18.11.4"})
    assert env.wait_ingress("by-annotation") == ["198.18.11.7"]
    assert env.wait_ingress("by-field") == ["198.18.11.9"]
    assert "not in any IPAddressPool" in env.wait_event("outside", "AllocationFailed")
    assert "both set" in env.wait_event("both", "AllocationFailed")
    env.service("taken", annotations={"metallb.io/loadBalancerIPs": "198.18.11.7"})
    assert "in use by" in env.wait_event("taken", "AllocationFailed")
    assert env.ingress("taken") == []


def test_legacy_annotations_are_honoured_with_a_warning(env: OperatorEnv) -> None:
    env.pool("p", "198.18.12.0/28")
    env.start()
    env.service("legacy", annotations={"metallb.universe.tf/loadBalancerIPs": "198.18.12.5"})
    env.service("stable-wins", annotations={
        "metallb.universe.tf/loadBalancerIPs": "198.18.12.6",
        "metallb.io/loadBalancerIPs": "198.18.12.8"})
    assert env.wait_ingress("legacy") == ["198.18.12.5"]
    assert env.wait_ingress("stable-wins") == ["198.18.12.8"]
    msg = env.wait_event("legacy", "deprecatedAnnotation")
    assert "metallb.universe.tf/loadBalancerIPs" in msg and "metallb.io/loadBalancerIPs" in msg


def test_sharing_allowed_and_refused(env: OperatorEnv) -> None:
    env.pool("p", "198.18.13.0/30")
    env.start()
    key = {"metallb.io/allow-shared-ip": "dns"}
    env.service("dns-tcp", annotations={**key, "metallb.io/loadBalancerIPs": "198.18.13.1"},
                ports=[{"port": 53, "protocol": "TCP"}])
    env.service("dns-udp", annotations={**key, "metallb.io/loadBalancerIPs": "198.18.13.1"},
                ports=[{"port": 53, "protocol": "UDP"}])
    assert env.wait_ingress("dns-tcp") == ["198.18.13.1"]
    assert env.wait_ingress("dns-udp") == ["198.18.13.1"]
    # Same port: refused.
    env.service("dns-tcp-2", annotations={**key, "metallb.io/loadBalancerIPs": "198.18.13.1"},
                ports=[{"port": 53, "protocol": "TCP"}])
    assert "port TCP/53" in env.wait_event("dns-tcp-2", "AllocationFailed")
    # No key: refused.
    env.service("nokey", annotations={"metallb.io/loadBalancerIPs": "198.18.13.1"},
                ports=[{"port": 8080}])
    assert "allow-shared-ip" in env.wait_event("nokey", "AllocationFailed")
    # Different backend (Local with another selector): refused.
    env.service("local", annotations={**key, "metallb.io/loadBalancerIPs": "198.18.13.1"},
                ports=[{"port": 9090}], externalTrafficPolicy="Local")
    assert "externalTrafficPolicy" in env.wait_event("local", "AllocationFailed")
    # Auto-allocation with the same key joins the shared address.
    env.service("dns-auto", annotations=key, ports=[{"port": 5353, "protocol": "UDP"}])
    assert env.wait_ingress("dns-auto") == ["198.18.13.0"] or env.ingress("dns-auto") == [
        "198.18.13.1"]


def test_pool_selection_namespace_selector_and_priority(env: OperatorEnv) -> None:
    team_ns = create_namespace(env.cp, "team", labels={"team": "blue"})
    env.pool("general", "198.18.14.0/28")
    env.pool("blue-low", "198.18.15.0/28",
             serviceAllocation={"priority": 20, "namespaceSelectors": [
                 {"matchLabels": {"team": "blue"}}]})
    env.pool("blue-high", "198.18.16.0/28",
             serviceAllocation={"priority": 10, "namespaces": [team_ns]})
    env.pool("by-label", "198.18.17.0/28",
             serviceAllocation={"serviceSelectors": [{"matchLabels": {"tier": "edge"}}]})
    env.start()
    env.service("team-svc", ns=team_ns)
    env.service("plain")
    env.service("edge", labels={"tier": "edge"})
    assert env.wait_ingress("team-svc", ns=team_ns)[0].startswith("198.18.16.")
    assert env.wait_ingress("plain")[0].startswith("198.18.14.")
    assert env.wait_ingress("edge")[0].startswith("198.18.17.")
    # A pool restricted by serviceAllocation refuses other Services asking for it.
    env.service("intruder", annotations={"metallb.io/address-pool": "blue-high"})
    assert "does not allow" in env.wait_event("intruder", "AllocationFailed")


def test_auto_assign_false_only_on_request(env: OperatorEnv) -> None:
    env.pool("reserved", "198.18.18.0/30", autoAssign=False)
    env.start()
    env.service("auto")
    assert "no IPAddressPool is available" in env.wait_event("auto", "AllocationFailed")
    env.service("asks", annotations={"metallb.io/address-pool": "reserved"})
    assert env.wait_ingress("asks") == ["198.18.18.0"]
    env.service("asks-ip", annotations={"metallb.io/loadBalancerIPs": "198.18.18.2"})
    assert env.wait_ingress("asks-ip") == ["198.18.18.2"]
    # A new autoAssign pool makes the waiting Service succeed without touching it.
    env.pool("open", "198.18.19.0/30")
    assert env.wait_ingress("auto") == ["198.18.19.0"]


def test_dual_stack(env: OperatorEnv) -> None:
    env.pool("dual", "198.18.20.0/30", "fd00:20::/126")
    env.pool("only4", "198.18.21.0/30", autoAssign=False)
    env.start()
    env.service("req", ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv6", "IPv4"])
    ips = env.wait_ingress("req", count=2)
    assert ips == ["fd00:20::", "198.18.20.0"]  # ipFamilies order
    env.service("pref", ipFamilyPolicy="PreferDualStack",
                annotations={"metallb.io/address-pool": "only4"})
    assert env.wait_ingress("pref") == ["198.18.21.0"]
    env.service("req-only4", ipFamilyPolicy="RequireDualStack",
                annotations={"metallb.io/address-pool": "only4"})
    assert "IPv4/IPv6" in env.wait_event("req-only4", "AllocationFailed")


def test_load_balancer_class_filtering(env: OperatorEnv) -> None:
    env.pool("p", "198.18.22.0/30")
    env.start()
    env.service("other", lb_class="example.com/other")
    env.service("classless", lb_class=None)
    env.service("cluster-ip", type="ClusterIP", lb_class=None)
    # Created last: the watch delivers it after the others, and Services that are not
    # ours are dropped when their event arrives (nothing is queued for them), so once
    # it has its address the operator has decided about every other one.
    env.service("mine")
    assert env.wait_ingress("mine") == ["198.18.22.0"]
    assert env.ingress("other") == []
    assert env.ingress("classless") == []
    assert env.events("other") == [] and env.events("classless") == []
    assert env.events("cluster-ip") == []


def test_no_class_configured_handles_only_classless_services() -> None:
    """A separate control plane: a class-less operator would otherwise see every other
    test's class-less Services."""
    from metallb_lab.controlplane import ControlPlane
    from metallb_lab.kube import apply_crds

    with ControlPlane() as cp:
        apply_crds(cp)
        pool_ns = create_namespace(cp, "pools")
        env = OperatorEnv(cp, pool_ns, create_namespace(cp, "apps"), lb_class=None)
        env.pool("p", "198.18.29.0/30")
        env.start()
        try:
            env.service("classy", lb_class="example.com/lb")
            env.service("classless", lb_class=None)  # after: see the test above
            assert env.wait_ingress("classless") == ["198.18.29.0"]
            assert env.ingress("classy") == []
        finally:
            env.operator.stop()  # type: ignore[union-attr]


def test_pool_edit_moves_and_deletion_clears(env: OperatorEnv) -> None:
    env.pool("p", "198.18.23.0/29")
    env.pool("spare", "198.18.24.0/30")
    env.start()
    env.service("s1", annotations={"metallb.io/address-pool": "p"})
    env.service("s2", annotations={"metallb.io/address-pool": "p"})
    assert env.wait_ingress("s1") == ["198.18.23.0"]
    assert env.wait_ingress("s2") == ["198.18.23.1"]
    # Shrink the pool so s2's address is no longer in it: s2 moves, s1 stays.
    env.pool("p", "198.18.23.0/32", "198.18.23.4/30")
    assert wait_for(lambda: env.ingress("s2") == ["198.18.23.4"], what="s2 moved")
    assert env.ingress("s1") == ["198.18.23.0"]
    assert "moved from 198.18.23.1" in env.wait_event("s2", "ClearAssignment")
    stable = env.wait_condition("ipaddresspools", "p", "False", ctype="AssignmentsStable")
    assert "s2" in stable["message"]
    # Delete the pool: both lose their addresses (they asked for this pool by name).
    env.delete_pool("p")
    assert wait_for(lambda: env.ingress("s1") == [] and env.ingress("s2") == [],
                    what="cleared")
    assert "cleared 198.18.23.0" in env.wait_event("s1", "ClearAssignment")
    assert "does not exist" in env.wait_event("s1", "AllocationFailed")


def test_overlapping_pools_get_conditions_and_events(env: OperatorEnv) -> None:
    env.pool("first", "198.18.25.0/28")
    env.start()
    env.wait_condition("ipaddresspools", "first", "True")
    env.pool("second", "198.18.25.8 - 198.18.25.20")
    cond = env.wait_condition("ipaddresspools", "second", "False")
    assert cond["reason"] == "OverlapsPool"
    assert "'first'" in cond["message"]
    assert "first" in env.wait_event("second", "OverlapsPool", ns=env.pool_ns,
                                     kind="IPAddressPool")
    assert env.condition("ipaddresspools", "first")["status"] == "True"  # type: ignore[index]
    # The L2Advertisement naming a missing pool is reported too.
    env.apply("""
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: adv}
spec: {ipAddressPools: [first, nosuch]}
""")
    cond = env.wait_condition("l2advertisements", "adv", "False")
    assert cond["reason"] == "PoolNotFound" and "nosuch" in cond["message"]
    adv = env.wait_condition("ipaddresspools", "first", "True", ctype="Advertised")
    assert "adv" in adv["message"]
    # Fixing it clears the condition.
    env.apply("""
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: adv}
spec: {ipAddressPools: [first]}
""")
    env.wait_condition("l2advertisements", "adv", "True")


def test_pool_status_and_printer_columns(env: OperatorEnv) -> None:
    env.pool("big6", "fd00:64::/64")
    env.pool("small", "198.18.26.0/30", avoidBuggyIPs=True)
    env.start()
    env.service("x", annotations={"metallb.io/address-pool": "small"})
    assert env.wait_ingress("x") == ["198.18.26.1"]  # .0 skipped
    def small_status() -> dict[str, int] | None:
        s = env.pool_obj("small").get("status") or {}
        return s if s.get("assignedIPv4") == 1 else None

    status = wait_for(small_status, what="pool status")
    assert status["availableIPv4"] == 2  # .1 .2 .3 minus .1 in use; .0 avoided
    big = wait_for(lambda: env.pool_obj("big6").get("status"), what="big6 status")
    assert big["availableTotal"] == str(2**64)
    assert big["availableIPv6"] == 2**63 - 1  # int64 field saturates, never negative
    out = env.cp.kubectl("get", "ipaddresspools", "-n", env.pool_ns).stdout
    header = out.splitlines()[0]
    for col in ("ADDRESSES", "AUTO ASSIGN", "ASSIGNED", "AVAILABLE", "READY"):
        assert col in header
    assert "18446744073709551616" in out
    metrics = env.operator.metrics()  # type: ignore[union-attr]
    assert 'metallb_allocator_addresses_total{pool="big6"} 1.8446744073709552e+19' in metrics
    assert 'metallb_allocator_addresses_in_use_total{pool="small"} 1.0' in metrics


@pytest.mark.parametrize(("manifest", "expected"), [
    ("addresses: []", "should have at least 1 items"),
    ("addresses: ['198.18.0.0/33']", 'invalid address "198.18.0.0/33"'),
    ("addresses: ['198.18.0.9-198.18.0.1']", "start is after end"),
    ("addresses: ['198.18.0.1-fd00::1']", "same IP family"),
    ("addresses: ['banana']", 'invalid address "banana"'),
    ("addresses: ['198.18.0.0/24', '198.18.0.0/24']", "Duplicate value"),
    ("{addresses: ['198.18.0.0/24'], serviceAllocation: {priority: -1}}",
     "greater than or equal to 0"),
    ("{addresses: ['198.18.0.0/24'], serviceAllocation: {serviceSelectors: "
     "[{matchExpressions: [{key: a, operator: In}]}]}}", "needs at least one value"),
])
def test_bad_pools_rejected_with_readable_messages(env: OperatorEnv, manifest: str,
                                                  expected: str) -> None:
    import yaml
    spec = yaml.safe_load(manifest if manifest.startswith("{") else "{" + manifest + "}")
    err = env.try_apply(yaml.safe_dump({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": "bad"}, "spec": spec}))
    assert expected in err, err


def test_bad_l2advertisement_rejected(env: OperatorEnv) -> None:
    err = env.try_apply("""
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: bad}
spec: {interfaces: ["this-name-is-way-too-long"]}
""")
    assert "spec.interfaces" in err


def test_restart_changes_zero_addresses(env: OperatorEnv) -> None:
    env.pool("p", "198.18.27.0/24")
    op = env.start()
    names = [f"r{i}" for i in range(20)]
    for n in names:
        env.service(n)
    before = {n: env.wait_ingress(n) for n in names}
    op.kill()  # SIGKILL: no graceful anything
    op.proc.wait(timeout=10)  # type: ignore[union-attr]
    # While it is down, a new Service arrives and an old one is deleted.
    env.core.delete_namespaced_service("r3", env.ns)
    env.service("newcomer")
    env.start()
    assert env.wait_ingress("newcomer")[0] not in {ip for v in before.values() for ip in v
                                                   if v != before["r3"]}
    after = {n: env.ingress(n) for n in names if n != "r3"}
    assert after == {n: ips for n, ips in before.items() if n != "r3"}
    allocated = sum(1 for _t, r, _m in env.events("newcomer") if r == "IPAllocated")
    assert allocated == 1


def test_single_active_operator_with_lease(env: OperatorEnv) -> None:
    env.pool("p", "198.18.28.0/28")
    first = env.start(identity="op-a")
    from metallb_lab.operator import OperatorProcess

    second = OperatorProcess(env.cp, env.pool_ns, lb_class=env.lb_class, identity="op-b")
    second.start(wait=False)
    try:
        env.service("one")
        assert env.wait_ingress("one") == ["198.18.28.0"]

        def standby_serving_metrics() -> bool:
            try:
                second.metrics()
            except OSError:
                return False
            return True

        wait_for(standby_serving_metrics, what="standby metrics endpoint")
        assert second.metric("metallb_controller_synced") in (None, 0.0)
        lease = env.cp.kubectl("get", "lease", "-n", env.pool_ns, "metallb-py-operator",
                               "-o", "jsonpath={.spec.holderIdentity}").stdout
        assert lease == "op-a"
        first.stop()  # graceful: releases the Lease, the standby takes over at once
        second.wait_synced(timeout=20)
        env.service("two")
        assert env.wait_ingress("two") == ["198.18.28.1"]
        assert env.ingress("one") == ["198.18.28.0"]
    finally:
        second.stop()


def test_crashed_operator_restarted_in_same_pod_keeps_its_lease(env: OperatorEnv) -> None:
    """A container restart keeps the Pod name, which is the Lease identity: the new
    process renews its own Lease at once instead of waiting for it to expire."""
    env.pool("p", "198.18.29.0/28")
    first = env.start(identity="op-pod-1")
    env.service("kept")
    assert env.wait_ingress("kept") == ["198.18.29.0"]

    def lease() -> dict[str, Any]:
        out = env.cp.kubectl("get", "lease", "-n", env.pool_ns, "metallb-py-operator",
                             "-o", "json").stdout
        return dict(json.loads(out)["spec"])

    before = lease()
    first.kill()
    first.proc.wait(timeout=10)  # type: ignore[union-attr]
    killed = time.monotonic()
    second = env.start(identity="op-pod-1")  # waits until synced
    synced_after = time.monotonic() - killed
    after = lease()
    assert after["holderIdentity"] == "op-pod-1"
    # Same tenure: no transition, no new acquireTime (it did not acquire an expired one).
    assert after.get("leaseTransitions", 0) == before.get("leaseTransitions", 0)
    assert after["acquireTime"] == before["acquireTime"]
    assert synced_after < float(before["leaseDurationSeconds"])
    env.service("after-restart")
    assert env.wait_ingress("after-restart") == ["198.18.29.1"]
    assert env.ingress("kept") == ["198.18.29.0"]
    second.stop()


SEL_FIELDS = [
    ("IPAddressPool", "serviceAllocation.namespaceSelectors"),
    ("IPAddressPool", "serviceAllocation.serviceSelectors"),
    ("L2Advertisement", "nodeSelectors"),
    ("L2Advertisement", "ipAddressPoolSelectors"),
]
BAD_SELECTORS = [
    ({"matchLabels": {"bad key": "x"}}, 'label key "bad key" is not a valid label key'),
    ({"matchLabels": {"Example.com/zone": "x"}}, 'label key "Example.com/zone"'),
    ({"matchLabels": {"/zone": "x"}}, 'label key "/zone"'),
    ({"matchLabels": {"a/b/c": "x"}}, 'label key "a/b/c"'),
    ({"matchLabels": {"z" * 64: "x"}}, "is not a valid label key"),
    # Values and expression keys: the schema's pattern (no CEL cost), the value named.
    ({"matchLabels": {"zone": "-a"}}, 'matchLabels.zone: Invalid value: "-a"'),
    ({"matchLabels": {"zone": "a b"}}, 'matchLabels.zone: Invalid value: "a b"'),
    ({"matchExpressions": [{"key": "zone_", "operator": "Exists"}]},
     'matchExpressions[0].key: Invalid value: "zone_"'),
    ({"matchExpressions": [{"key": "x." + "p" * 253 + "/zone", "operator": "Exists"}]},
     "prefix of a label key must be at most 253 characters"),
    ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["ok", "no!"]}]},
     'matchExpressions[0].values[1]: Invalid value: "no!"'),
    ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["v" * 64]}]},
     "Too long"),
]


def _with_selector(kind: str, field: str, selector: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"addresses": ["198.18.0.0/24"]} if kind == "IPAddressPool" else {}
    outer, _, inner = field.rpartition(".")
    target = spec.setdefault(outer, {}) if outer else spec
    target[inner] = [selector]
    return {"apiVersion": "metallb.io/v1beta1", "kind": kind, "metadata": {"name": "bad"},
            "spec": spec}


@pytest.mark.parametrize(("kind", "field"), SEL_FIELDS)
@pytest.mark.parametrize(("selector", "expected"), BAD_SELECTORS)
def test_bad_selector_labels_rejected_by_the_apiserver(
        env: OperatorEnv, kind: str, field: str, selector: dict[str, Any],
        expected: str) -> None:
    """Kubernetes' label syntax at admission (CEL in the CRDs), the field named."""
    err = env.try_apply(json.dumps(_with_selector(kind, field, selector)))
    assert expected in err, err
    assert "spec." + field in err, err


@pytest.mark.parametrize(("kind", "field"), SEL_FIELDS)
def test_valid_selector_labels_accepted_by_the_apiserver(env: OperatorEnv, kind: str,
                                                         field: str) -> None:
    selector = {"matchLabels": {"example.com/Zone.a_b-1": "", "k": "V.a_b-1" + "x" * 56},
                "matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In",
                                      "values": ["a", ""]},
                                     {"key": "x" * 63, "operator": "Exists"}]}
    assert env.try_apply(json.dumps(_with_selector(kind, field, selector))) == ""


@pytest.mark.parametrize("new_type", ["ClusterIP", "NodePort"])
def test_service_no_longer_load_balancer_loses_address_and_annotation(
        env: OperatorEnv, new_type: str) -> None:
    env.pool("p", "198.18.32.0/32")
    env.start()
    env.service("was-lb")
    assert env.wait_ingress("was-lb") == ["198.18.32.0"]

    def pool_annotation(name: str) -> str | None:
        svc = env.core.read_namespaced_service(name, env.ns)
        return (svc.metadata.annotations or {}).get("metallb.io/ip-allocated-from-pool")

    wait_for(lambda: pool_annotation("was-lb") == "p", what="pool annotation")
    patch: dict[str, Any] = {"spec": {"type": new_type}}
    if new_type == "ClusterIP":
        patch["spec"]["loadBalancerClass"] = None  # only LoadBalancer Services have one
    env.core.patch_namespaced_service("was-lb", env.ns, patch)
    wait_for(lambda: pool_annotation("was-lb") is None, what="pool annotation removed")
    assert env.ingress("was-lb") == []
    # The address is free again: the pool's only address goes to the next Service.
    env.service("next")
    assert env.wait_ingress("next") == ["198.18.32.0"]
    assert pool_annotation("was-lb") is None and env.ingress("was-lb") == []


def test_edit_making_an_older_pool_overlap_a_newer_one_flags_the_edited_pool(
        env: OperatorEnv) -> None:
    env.pool("older", "198.18.33.0/31")
    env.start()
    env.wait_condition("ipaddresspools", "older", "True")
    env.pool("newer", "198.18.34.0/30")
    env.wait_condition("ipaddresspools", "newer", "True")
    env.service("o1", annotations={"metallb.io/address-pool": "older"})
    env.service("n1", annotations={"metallb.io/address-pool": "newer"})
    assert env.wait_ingress("o1") == ["198.18.33.0"]
    assert env.wait_ingress("n1") == ["198.18.34.0"]
    env.service("n2", annotations={"metallb.io/loadBalancerIPs": "198.18.34.1"})
    assert env.wait_ingress("n2") == ["198.18.34.1"]

    def pool_annotation(name: str) -> str | None:
        svc = env.core.read_namespaced_service(name, env.ns)
        return (svc.metadata.annotations or {}).get("metallb.io/ip-allocated-from-pool")

    wait_for(lambda: pool_annotation("n2") == "newer", what="n2 annotated")
    # The edit: the older pool now also covers the newer one's range.
    env.pool("older", "198.18.33.0/31", "198.18.34.0/30")
    cond = env.wait_condition("ipaddresspools", "older", "False")
    assert cond["reason"] == "OverlapsPool", cond
    assert "'newer'" in cond["message"] and "edit" in cond["message"], cond
    assert cond["observedGeneration"] == 2
    assert "'newer'" in env.wait_event("older", "OverlapsPool", ns=env.pool_ns,
                                       kind="IPAddressPool")
    assert env.condition("ipaddresspools", "newer")["status"] == "True"  # type: ignore[index]
    # New Services are given the newer pool's free addresses, never its used ones, and
    # nothing from the flagged pool.
    env.service("fresh1")
    env.service("fresh2")
    fresh = {env.wait_ingress("fresh1")[0], env.wait_ingress("fresh2")[0]}
    assert fresh == {"198.18.34.2", "198.18.34.3"}
    env.service("fresh3")
    assert "no available IPv4 address" in env.wait_event("fresh3", "AllocationFailed")
    env.service("grab", annotations={"metallb.io/loadBalancerIPs": "198.18.34.0"})
    assert "in use by" in env.wait_event("grab", "AllocationFailed")
    # The newer pool's Services kept their addresses and pool; the edited pool's too.
    assert {n: env.ingress(n) for n in ("n1", "n2", "o1")} == {
        "n1": ["198.18.34.0"], "n2": ["198.18.34.1"], "o1": ["198.18.33.0"]}
    assert (pool_annotation("n1"), pool_annotation("n2"), pool_annotation("o1")) == (
        "newer", "newer", "older")
    for name in ("n1", "n2", "o1"):
        assert [r for _t, r, _m in env.events(name) if r == "ClearAssignment"] == [], name
    # A restarted operator reads the same status and decides the same.
    env.operator.stop()  # type: ignore[union-attr]
    env.start()
    env.service("after-restart")
    assert "no available IPv4 address" in env.wait_event("after-restart", "AllocationFailed")
    assert env.condition("ipaddresspools", "older")["reason"] == "OverlapsPool"  # type: ignore[index]
    assert {n: env.ingress(n) for n in ("n1", "n2", "o1")} == {
        "n1": ["198.18.34.0"], "n2": ["198.18.34.1"], "o1": ["198.18.33.0"]}


def test_l2advertisement_whose_node_selectors_never_match_is_not_ready(
        env: OperatorEnv) -> None:
    """Valid syntax (the API server accepts it), but no node can match: not Ready,
    with the reason and the selector named."""
    env.pool("p", "198.18.35.0/30")
    env.start()
    env.apply("""
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: never}
spec:
  nodeSelectors:
  - matchLabels: {kubernetes.io/os: linux}
    matchExpressions: [{key: kubernetes.io/os, operator: NotIn, values: [linux]}]
""")
    cond = env.wait_condition("l2advertisements", "never", "False")
    assert cond["reason"] == "NodeSelectorsNeverMatch", cond
    assert "[0]: no value of key 'kubernetes.io/os'" in cond["message"], cond
    adv = env.wait_condition("ipaddresspools", "p", "False", ctype="Advertised")
    assert adv["reason"] == "NoL2Advertisement"

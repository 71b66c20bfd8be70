"""The admission decision (pure): what the webhook refuses, allows and warns about, from
MetalLB's webhooks (internal/k8s/webhooks/webhookv1beta1) and our build_config."""

from __future__ import annotations

from typing import Any

import pytest
from tests.operator.builders import l2adv, pool, ts

from metallb_api.config import ProblemReason
from metallb_operator.admission import (
    L2ADV_PATH,
    POOL_PATH,
    REFUSED,
    WARNED,
    BadReview,
    Decision,
    Operation,
    Request,
    Why,
    decide,
    impossible_pool_names,
    parse_review,
    response,
)

pytestmark = pytest.mark.unit
NS = "metallb-system"


def ready(obj: dict[str, Any], observed: int = 1) -> dict[str, Any]:
    """The object as the operator left it: Ready=True for generation `observed`."""
    return {**obj, "status": {"conditions": [
        {"type": "Ready", "status": "True", "observedGeneration": observed}]}}


def edited(obj: dict[str, Any], *addresses: str) -> dict[str, Any]:
    """An UPDATE's object: new addresses, generation bumped, status kept."""
    meta = {**obj["metadata"], "generation": obj["metadata"]["generation"] + 1}
    return {**obj, "metadata": meta, "spec": {**obj["spec"], "addresses": list(addresses)}}


def in_ns(obj: dict[str, Any], ns: str) -> dict[str, Any]:
    return {**obj, "metadata": {**obj["metadata"], "namespace": ns}}


def req(obj: dict[str, Any], op: Operation = Operation.CREATE,
        old: dict[str, Any] | None = None) -> Request:
    return Request("uid-1", obj["kind"], op, obj, old)


A = ready(pool("a", "10.0.0.0/24", created=ts(1)))
B = ready(pool("b", "10.0.1.0/24", created=ts(2)))
FRESH_B = pool("b", "10.0.1.0/24", created=ts(2))  # not processed by the operator yet
# b and c overlap already (created while no webhook ran): c lost.
C_LOSER = pool("c", "10.0.1.128/25", created=ts(3))

POOL_CASES: list[tuple[str, Request, list[dict[str, Any]], bool, Why, str]] = [
    ("disjoint pool", req(pool("n", "10.0.9.0/24")), [A, B], True, Why.VALID, ""),
    ("overlaps an accepted pool", req(pool("n", "10.0.0.128-10.0.0.140", created=ts(9))),
     [A, B], False, Why.PROBLEM, "CIDR '10.0.0.128-10.0.0.140' in pool 'n' overlaps with "
     "already defined CIDR '10.0.0.0/24' (IPAddressPool 'a')"),
    ("overlaps itself", req(pool("n", "10.0.5.0/24", "10.0.5.7/32")), [A], False,
     Why.PROBLEM, "in the same pool"),
    ("not an address", req(pool("n", "10.0.5.0/33")), [A], False, Why.PROBLEM,
     "spec.addresses"),
    ("start after end", req(pool("n", "10.0.5.9-10.0.5.1")), [A], False, Why.PROBLEM,
     "spec.addresses"),
    ("created outside the operator's namespace", req(in_ns(pool("n", "10.0.9.0/24"), "x")),
     [A], False, Why.WRONG_NAMESPACE, "resource must be created in metallb-system namespace"),
    ("an accepted pool edited into another accepted pool", req(
        edited(A, "10.0.0.0/23"), Operation.UPDATE, A), [A, B], False, Why.PROBLEM,
     "CIDR '10.0.0.0/23' in pool 'a' overlaps with already defined CIDR '10.0.1.0/24' "
     "(IPAddressPool 'b')"),
    # The edited pool outranks a pool the operator has not accepted yet: it would push b
    # out, so the edit is the one refused (MetalLB refuses any overlap).
    ("an edit that would push another pool out", req(
        edited(A, "10.0.0.0/23"), Operation.UPDATE, A), [A, FRESH_B], False,
     Why.CAUSES_PROBLEM, "CIDR '10.0.0.0/23' in pool 'a' overlaps with already defined CIDR "
     "'10.0.1.0/24' (IPAddressPool 'b')"),
    ("an overlap between others does not block an unrelated pool",
     req(pool("n", "10.0.9.0/24")), [A, B, C_LOSER], True, Why.VALID, ""),
    ("nor an unrelated edit", req(edited(A, "10.0.2.0/24"), Operation.UPDATE, A),
     [A, B, C_LOSER], True, Why.VALID, ""),
    ("but the losing pool's own edit still overlapping is refused",
     req(edited(C_LOSER, "10.0.1.0/26"), Operation.UPDATE, C_LOSER), [A, B, C_LOSER], False,
     Why.PROBLEM, "CIDR '10.0.1.0/26' in pool 'c' overlaps with already defined CIDR "
     "'10.0.1.0/24' (IPAddressPool 'b')"),
    ("a label on the losing pool changes no address",
     req({**C_LOSER, "metadata": {**C_LOSER["metadata"], "labels": {"x": "y"}}},
         Operation.UPDATE, C_LOSER), [A, B, C_LOSER], True, Why.SPEC_UNCHANGED, ""),
    ("delete", req(A, Operation.DELETE), [A], True, Why.DELETE, ""),
    ("an edit outside the namespace is not ours", req(
        in_ns(edited(A, "10.0.1.0/24"), "x"), Operation.UPDATE, in_ns(A, "x")), [A, B], True,
     Why.WRONG_NAMESPACE, ""),
]


@pytest.mark.parametrize(("request_", "pools", "allowed", "why", "says"),
                         [c[1:] for c in POOL_CASES], ids=[c[0] for c in POOL_CASES])
def test_pool_admission(request_: Request, pools: list[dict[str, Any]], allowed: bool,
                        why: Why, says: str) -> None:
    # Advertisements never block a pool (MetalLB validates pools among pools).
    d = decide(request_, NS, pools, [l2adv("any", ["missing"])])
    assert (d.allowed, d.why) == (allowed, why), d
    assert says in d.message


# warnings None: not asserted (whether build_config reports a selector that matches
# nothing yet is its choice; either way it is admitted, as in MetalLB).
ADV_CASES: list[tuple[str, dict[str, Any], bool, Why, str, tuple[str, ...] | None]] = [
    ("names an existing pool", l2adv("l", ["a"]), True, Why.VALID, "", ()),
    ("every pool", l2adv("l"), True, Why.VALID, "", ()),
    # The pool may be the next object of the same `kubectl apply -f` (MetalLB admits it).
    ("names a pool that does not exist yet", l2adv("l", ["a", "later"]), True, Why.VALID, "",
     ("spec.ipAddressPools: no IPAddressPool named 'later'",)),
    ("a selector matching no pool yet",
     l2adv("l", pool_selectors=[{"matchLabels": {"tier": "x"}}]), True, Why.VALID, "", None),
    ("names a pool no object can be named", l2adv("l", ["a", "Pool_1"]), False,
     Why.IMPOSSIBLE_POOL_NAME, "spec.ipAddressPools[1]: 'Pool_1' cannot be the name", ()),
    ("node selectors no node can match", l2adv("l", ["a"], node_selectors=[
        {"matchExpressions": [{"key": "k", "operator": "In", "values": ["x"]},
                              {"key": "k", "operator": "NotIn", "values": ["x"]}]}]),
     False, Why.PROBLEM, "spec.nodeSelectors: no node can match", ()),
    ("an invalid spec", {**l2adv("l"), "spec": {"interfaces": "eth0"}}, False, Why.PROBLEM,
     "interfaces", ()),
    ("created outside the operator's namespace", in_ns(l2adv("l"), "x"), False,
     Why.WRONG_NAMESPACE, "must be created in metallb-system", ()),
]


@pytest.mark.parametrize(("adv", "allowed", "why", "says", "warnings"),
                         [c[1:] for c in ADV_CASES], ids=[c[0] for c in ADV_CASES])
def test_l2advertisement_admission(adv: dict[str, Any], allowed: bool, why: Why, says: str,
                                   warnings: tuple[str, ...] | None) -> None:
    # b and c overlap already: a configuration problem elsewhere blocks no advertisement.
    d = decide(req(adv), NS, [A, B, C_LOSER], [l2adv("other", ["b"])])
    assert (d.allowed, d.why) == (allowed, why), d
    assert says in d.message
    if warnings is not None:
        assert d.warnings == warnings


def test_only_what_may_come_later_is_a_warning() -> None:
    # A new ProblemReason is admitted with a warning until it is added to REFUSED: this
    # makes that a decision (a warning for a broken object would let it in).
    assert {r.value for r in WARNED} <= {"PoolNotFound", "NoMatchingPools"}
    assert set(ProblemReason) == REFUSED | WARNED


@pytest.mark.parametrize(("names", "bad"), [
    (["a", "b.c", "x-1"], []),
    (["A"], [0]), (["a_b"], [1 - 1]), (["ok", "-a"], [1]), (["a" * 254], [0]),
])
def test_impossible_pool_names(names: list[str], bad: list[int]) -> None:
    found = impossible_pool_names({"ipAddressPools": names})
    assert [int(m.split("[")[1].split("]")[0]) for m in found] == bad


def review(op: str = "CREATE", kind: str = "IPAddressPool", **extra: Any) -> dict[str, Any]:
    request = {"uid": "u1", "kind": {"group": "metallb.io", "version": "v1beta1",
                                     "kind": kind},
               "operation": op, "object": pool("a", "10.0.0.0/24"), **extra}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": request}


def test_parse_review_reads_the_candidate_and_the_old_object() -> None:
    old = pool("a", "10.0.0.0/25")
    r = parse_review(review("UPDATE", oldObject=old), "IPAddressPool")
    assert (r.uid, r.operation, r.name, r.namespace, r.old) == (
        "u1", Operation.UPDATE, "a", NS, old)
    gone = parse_review(review("DELETE", object=None, oldObject=old), "IPAddressPool")
    assert gone.obj == old and gone.old is None


@pytest.mark.parametrize(("body", "kind", "says"), [
    ({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}, "IPAddressPool",
     "admission.k8s.io/v1"),
    ({**review(), "request": {"operation": "CREATE"}}, "IPAddressPool", "uid"),
    (review(kind="L2Advertisement"), "IPAddressPool", "L2Advertisement sent to"),
    (review("PATCH"), "IPAddressPool", "unknown operation"),
    (review(object=None), "IPAddressPool", "without the object"),
    ([], "IPAddressPool", "AdmissionReview"),
])
def test_parse_review_refuses_what_it_cannot_answer(body: Any, kind: str, says: str) -> None:
    with pytest.raises(BadReview, match=says):
        parse_review(body, kind)


def test_response_shapes() -> None:
    refused = response("u", Decision(False, Why.PROBLEM, "overlaps"))["response"]
    assert refused == {"uid": "u", "allowed": False,
                       "status": {"code": 403, "reason": "Forbidden", "message": "overlaps"}}
    warned = response("u", Decision(True, Why.VALID, warnings=("w",)))["response"]
    assert warned == {"uid": "u", "allowed": True, "warnings": ["w"]}


def test_paths_are_metallbs() -> None:
    assert POOL_PATH == "/validate-metallb-io-v1beta1-ipaddresspool"
    assert L2ADV_PATH == "/validate-metallb-io-v1beta1-l2advertisement"

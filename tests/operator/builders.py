"""Builders for the raw JSON objects the pure core reads (Service, IPAddressPool,
L2Advertisement) and small helpers around the allocator, shared by the operator tests.

Not a test module (no `test_` prefix): import as `from tests.operator.builders import ...`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from metallb_api.addresses import IP
from metallb_api.config import Config, build_config
from metallb_api.service import (
    LEGACY,
    STABLE,
    AddressRequest,
    RequestError,
    ServiceView,
    parse_request,
    service_view,
)
from metallb_operator.allocator import Allocated, AllocationFailure, Allocator, FailureReason

T0 = "2024-01-01T00:00:00Z"


def ts(n: int) -> str:
    """An RFC 3339 timestamp n seconds after T0 (n < 86400)."""
    return f"2024-01-01T{n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z"


def pool(
    name: str,
    *addresses: str,
    auto_assign: bool | None = None,
    avoid_buggy: bool | None = None,
    priority: int | None = None,
    namespaces: Sequence[str] | None = None,
    namespace_selectors: Sequence[Mapping[str, Any]] | None = None,
    service_selectors: Sequence[Mapping[str, Any]] | None = None,
    created: str = T0,
    labels: Mapping[str, str] | None = None,
    generation: int = 1,
    spec: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An IPAddressPool object as the API server returns it."""
    if spec is None:
        body: dict[str, Any] = {"addresses": list(addresses)}
        if auto_assign is not None:
            body["autoAssign"] = auto_assign
        if avoid_buggy is not None:
            body["avoidBuggyIPs"] = avoid_buggy
        alloc: dict[str, Any] = {}
        if priority is not None:
            alloc["priority"] = priority
        if namespaces is not None:
            alloc["namespaces"] = list(namespaces)
        if namespace_selectors is not None:
            alloc["namespaceSelectors"] = list(namespace_selectors)
        if service_selectors is not None:
            alloc["serviceSelectors"] = list(service_selectors)
        if alloc:
            body["serviceAllocation"] = alloc
    else:
        body = dict(spec)
    meta: dict[str, Any] = {"name": name, "namespace": "metallb-system",
                            "creationTimestamp": created, "generation": generation}
    if labels:
        meta["labels"] = dict(labels)
    return {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": meta,
            "spec": body}


def l2adv(
    name: str,
    pools: Sequence[str] | None = None,
    *,
    pool_selectors: Sequence[Mapping[str, Any]] | None = None,
    node_selectors: Sequence[Mapping[str, Any]] | None = None,
    interfaces: Sequence[str] | None = None,
    service_selectors: Sequence[Mapping[str, Any]] | None = None,
    preferred: Sequence[tuple[int, Mapping[str, Any]]] | None = None,
    generation: int = 1,
) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if service_selectors is not None:
        spec["serviceSelectors"] = list(service_selectors)
    if preferred is not None:
        spec["preferredNodeSelectors"] = [{"weight": w, "preference": dict(sel)}
                                          for w, sel in preferred]
    if pools is not None:
        spec["ipAddressPools"] = list(pools)
    if pool_selectors is not None:
        spec["ipAddressPoolSelectors"] = list(pool_selectors)
    if node_selectors is not None:
        spec["nodeSelectors"] = list(node_selectors)
    if interfaces is not None:
        spec["interfaces"] = list(interfaces)
    return {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
            "metadata": {"name": name, "namespace": "metallb-system", "generation": generation},
            "spec": spec}


FAMILY_NAMES = {"4": "IPv4", "6": "IPv6"}


def service(
    name: str,
    namespace: str = "default",
    *,
    ips: str | None = None,
    pool: str | None = None,
    share: str | None = None,
    legacy: bool = False,
    lb_ip: str | None = None,
    families: str = "4",
    policy: str | None = None,
    etp: str = "Cluster",
    selector: Mapping[str, str] | None = None,
    ports: Iterable[tuple[str, int]] = (("TCP", 80),),
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    ingress: Sequence[str] = (),
    created: str = T0,
    svc_type: str = "LoadBalancer",
    lb_class: str | None = None,
    uid: str | None = None,
) -> dict[str, Any]:
    """A Service object. `families` is "4", "6", "46" or "64" (ipFamilies in order);
    `ips`/`pool`/`share` set the metallb.io annotations (the legacy twins if `legacy`)."""
    prefix = LEGACY if legacy else STABLE
    ann: dict[str, str] = dict(annotations or {})
    if ips is not None:
        ann[prefix + "loadBalancerIPs"] = ips
    if pool is not None:
        ann[prefix + "address-pool"] = pool
    if share is not None:
        ann[prefix + "allow-shared-ip"] = share
    spec: dict[str, Any] = {
        "type": svc_type,
        "ipFamilies": [FAMILY_NAMES[f] for f in families],
        "ipFamilyPolicy": policy or ("SingleStack" if len(families) == 1 else "PreferDualStack"),
        "externalTrafficPolicy": etp,
        "selector": dict(selector or {"app": name}),
        "ports": [{"name": f"{p.lower()}-{n}", "protocol": p, "port": n} for p, n in ports],
    }
    if lb_ip is not None:
        spec["loadBalancerIP"] = lb_ip
    if lb_class is not None:
        spec["loadBalancerClass"] = lb_class
    meta: dict[str, Any] = {"name": name, "namespace": namespace,
                            "uid": uid or f"uid-{namespace}-{name}", "resourceVersion": "1",
                            "creationTimestamp": created}
    if labels:
        meta["labels"] = dict(labels)
    if ann:
        meta["annotations"] = ann
    status: dict[str, Any] = {"loadBalancer": {}}
    if ingress:
        status["loadBalancer"]["ingress"] = [{"ip": ip} for ip in ingress]
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec,
            "status": status}


def with_ingress(obj: Mapping[str, Any], ips: Iterable[str]) -> dict[str, Any]:
    """A copy of a Service object whose status shows `ips`."""
    out = {**obj, "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}}
    if not out["status"]["loadBalancer"]["ingress"]:
        out["status"] = {"loadBalancer": {}}
    return out


def config(*pools: Mapping[str, Any], advs: Iterable[Mapping[str, Any]] = ()) -> Config:
    return build_config(list(pools), list(advs))


def allocator(*pools: Mapping[str, Any], ns_labels: Mapping[str, Mapping[str, str]] | None = None
              ) -> Allocator:
    a = Allocator(config(*pools))
    for ns, labels in (ns_labels or {}).items():
        a.set_namespace_labels(ns, labels)
    return a


def request_of(view: ServiceView) -> AddressRequest:
    req = parse_request(view)
    assert not isinstance(req, RequestError), req
    return req


def ensure(a: Allocator, obj: Mapping[str, Any], current: Sequence[str] | None = None
           ) -> Allocated | AllocationFailure:
    """Run `ensure` as the controller does: current defaults to what the status shows."""
    view = service_view(obj)
    shown = view.ingress_ips() if current is None else tuple(IP.parse(c) for c in current)
    return a.ensure(view, request_of(view), shown)


def outcome(result: Allocated | AllocationFailure) -> str | FailureReason:
    """A comparable summary: the addresses joined with ',' (in result order), or the
    failure reason."""
    if isinstance(result, Allocated):
        return ",".join(str(ip) for ip in result.ips)
    return result.reason


def ips_of(result: Allocated | AllocationFailure) -> tuple[str, ...]:
    assert isinstance(result, Allocated), result
    return tuple(str(ip) for ip in result.ips)

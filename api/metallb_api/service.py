"""What metallb-py reads from a Service, parsed purely from the API's JSON.

`ServiceView` is the subset both sides need; `parse_request` turns annotations and
`spec.loadBalancerIP` into an `AddressRequest` or a `RequestError` with a reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

from metallb_api.addresses import IP, AddressError, Family, parse_ip

STABLE = "metallb.io/"
LEGACY = "metallb.universe.tf/"
LB_IPS = "loadBalancerIPs"
ADDRESS_POOL = "address-pool"
ALLOW_SHARED_IP = "allow-shared-ip"
ALLOCATED_FROM_POOL = STABLE + "ip-allocated-from-pool"

SINGLE_STACK = "SingleStack"
PREFER_DUAL = "PreferDualStack"
REQUIRE_DUAL = "RequireDualStack"


@dataclass(frozen=True, order=True)
class Port:
    protocol: str
    port: int

    def __str__(self) -> str:
        return f"{self.protocol}/{self.port}"


@dataclass(frozen=True)
class ServiceView:
    namespace: str
    name: str
    uid: str = ""
    resource_version: str = ""
    created: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    type: str = "ClusterIP"
    load_balancer_class: str | None = None
    load_balancer_ip: str = ""
    ip_families: tuple[Family, ...] = (Family.V4,)
    ip_family_policy: str = SINGLE_STACK
    external_traffic_policy: str = "Cluster"
    selector: Mapping[str, str] = field(default_factory=dict)
    ports: frozenset[Port] = frozenset()
    ingress: tuple[str, ...] = ()  # raw strings: status may hold anything

    @cached_property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def is_load_balancer(self) -> bool:
        return self.type == "LoadBalancer"

    @cached_property
    def backend_key(self) -> str:
        """Services sharing an IP must send traffic to the same place (MetalLB rule)."""
        if self.external_traffic_policy == "Local":
            return "Local:" + ",".join(f"{k}={v}" for k, v in sorted(self.selector.items()))
        return "Cluster"

    def ingress_ips(self) -> tuple[IP, ...]:
        out = []
        for raw in self.ingress:
            try:
                out.append(parse_ip(raw))
            except AddressError:
                continue
        return tuple(out)


def _family(raw: Any) -> Family | None:
    return {"IPv4": Family.V4, "IPv6": Family.V6}.get(str(raw))


def service_view(obj: Mapping[str, Any]) -> ServiceView:
    """Parse a Service JSON object; missing/odd fields fall back to API defaults."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    families = tuple(f for f in (_family(x) for x in spec.get("ipFamilies") or []) if f)
    ports = frozenset(
        Port(str(p.get("protocol") or "TCP"), int(p.get("port") or 0))
        for p in spec.get("ports") or []
        if isinstance(p, Mapping)
    )
    ingress = tuple(
        str(i["ip"])
        for i in (status.get("loadBalancer") or {}).get("ingress") or []
        if isinstance(i, Mapping) and i.get("ip")
    )
    return ServiceView(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        resource_version=str(meta.get("resourceVersion", "")),
        created=str(meta.get("creationTimestamp") or ""),
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
        type=str(spec.get("type") or "ClusterIP"),
        load_balancer_class=spec.get("loadBalancerClass") or None,
        load_balancer_ip=str(spec.get("loadBalancerIP") or ""),
        ip_families=families or (Family.V4,),
        ip_family_policy=str(spec.get("ipFamilyPolicy") or SINGLE_STACK),
        external_traffic_policy=str(spec.get("externalTrafficPolicy") or "Cluster"),
        selector=dict(spec.get("selector") or {}),
        ports=ports,
        ingress=ingress,
    )


class RequestErrorReason(StrEnum):
    INVALID_IP = "InvalidRequestedIP"
    TOO_MANY_PER_FAMILY = "TooManyIPsPerFamily"
    CONFLICTING_FIELDS = "ConflictingRequest"


@dataclass(frozen=True)
class RequestError:
    reason: RequestErrorReason
    message: str


@dataclass(frozen=True)
class AddressRequest:
    ips: tuple[IP, ...] = ()
    pool: str | None = None
    sharing_key: str | None = None
    deprecated: tuple[str, ...] = ()  # legacy annotation keys the Service used


def _annotation(svc: ServiceView, suffix: str, legacy_used: list[str]) -> str | None:
    """Stable key wins; a legacy-only value is honoured and reported as deprecated."""
    stable = svc.annotations.get(STABLE + suffix)
    legacy = svc.annotations.get(LEGACY + suffix)
    if legacy is not None:
        legacy_used.append(LEGACY + suffix)
    if stable is not None:
        return stable
    return legacy


def parse_request(svc: ServiceView) -> AddressRequest | RequestError:
    legacy: list[str] = []
    raw_ips = _annotation(svc, LB_IPS, legacy)
    pool = (_annotation(svc, ADDRESS_POOL, legacy) or "").strip() or None
    sharing = (_annotation(svc, ALLOW_SHARED_IP, legacy) or "").strip() or None
    if raw_ips is not None and svc.load_balancer_ip:
        return RequestError(
            RequestErrorReason.CONFLICTING_FIELDS,
            f"spec.loadBalancerIP and the {LB_IPS} annotation are both set; use only the "
            "annotation",
        )
    texts = [t.strip() for t in (raw_ips or svc.load_balancer_ip).split(",") if t.strip()]
    ips: list[IP] = []
    for text in texts:
        try:
            ips.append(parse_ip(text))
        except AddressError as exc:
            where = f"annotation {STABLE + LB_IPS}" if raw_ips else "spec.loadBalancerIP"
            return RequestError(RequestErrorReason.INVALID_IP, f"{where}: {exc}")
    if len({ip.family for ip in ips}) != len(ips):
        return RequestError(
            RequestErrorReason.TOO_MANY_PER_FAMILY,
            f"{STABLE + LB_IPS}: at most one address per IP family, got {', '.join(texts)}",
        )
    return AddressRequest(tuple(sorted(ips)), pool, sharing, tuple(legacy))

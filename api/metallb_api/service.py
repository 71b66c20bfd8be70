"""What metallb-py reads from a Service, parsed purely from the API's JSON.

`ServiceView` is the subset both sides need; `parse_request` turns annotations and
`spec.loadBalancerIP` into an `AddressRequest` or a `RequestError` with a reason.
"""

from __future__ import annotations

import re
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
    DUPLICATE_IP = "DuplicateRequestedIP"
    TOO_MANY_PER_FAMILY = "TooManyIPsPerFamily"
    CONFLICTING_FIELDS = "ConflictingRequest"
    INVALID_POOL = "InvalidRequestedPool"


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


_POOL_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
POOL_NAME_MAX = 253


def _annotation(svc: ServiceView, suffix: str, legacy_used: list[str]
                ) -> tuple[str, str | None]:
    """(the key that applies, its value). The stable key wins, even when empty (as in
    MetalLB); a legacy-only value is honoured and reported as deprecated."""
    stable = svc.annotations.get(STABLE + suffix)
    legacy = svc.annotations.get(LEGACY + suffix)
    if legacy is not None:
        legacy_used.append(LEGACY + suffix)
    if stable is not None:
        return STABLE + suffix, stable
    return LEGACY + suffix, legacy


def _parse_ips(where: str, raw: str, items: list[str]) -> tuple[IP, ...] | RequestError:
    """MetalLB's rules for the requested addresses: every comma-separated item is one
    address (blanks around it are ignored, an empty item is an error), no address twice,
    at most one per IP family."""
    ips: list[IP] = []
    for n, item in enumerate(items, 1):
        text = item.strip()
        which = f"item {n} of {raw!r}" if len(items) > 1 else repr(raw)
        if not text:
            return RequestError(RequestErrorReason.INVALID_IP,
                                f"{where}: {which} is empty (a stray comma?)")
        try:
            ip = parse_ip(text)
        except AddressError as exc:
            return RequestError(RequestErrorReason.INVALID_IP, f"{where}: {which}: {exc}")
        if ip in ips:
            return RequestError(RequestErrorReason.DUPLICATE_IP,
                                f"{where}: {ip} is listed twice in {raw!r}")
        same = next((other for other in ips if other.family == ip.family), None)
        if same is not None:
            return RequestError(
                RequestErrorReason.TOO_MANY_PER_FAMILY,
                f"{where}: at most one address per IP family, {raw!r} has two "
                f"{ip.family.label} addresses ({same} and {ip})")
        ips.append(ip)
    return tuple(sorted(ips))


def parse_request(svc: ServiceView) -> AddressRequest | RequestError:
    """The Service's address request, with MetalLB's strictness: an empty annotation is
    unset; anything else must be exactly right, and the error says which annotation (the
    key actually used, stable or legacy), which item and what is wrong."""
    legacy: list[str] = []
    ips_key, raw_ips = _annotation(svc, LB_IPS, legacy)
    pool_key, raw_pool = _annotation(svc, ADDRESS_POOL, legacy)
    _, raw_sharing = _annotation(svc, ALLOW_SHARED_IP, legacy)
    lb_ip = svc.load_balancer_ip
    if raw_ips and lb_ip:
        return RequestError(
            RequestErrorReason.CONFLICTING_FIELDS,
            f"spec.loadBalancerIP and the {ips_key} annotation are both set; use only the "
            "annotation",
        )
    parsed: tuple[IP, ...] | RequestError = ()
    if raw_ips:
        parsed = _parse_ips(f"annotation {ips_key}", raw_ips, raw_ips.split(","))
    elif lb_ip:
        # One address, verbatim (MetalLB parses it as is: no list, no blanks).
        if lb_ip != lb_ip.strip():
            return RequestError(RequestErrorReason.INVALID_IP,
                                f"spec.loadBalancerIP: {lb_ip!r} has blanks around the address")
        if "," in lb_ip:
            return RequestError(
                RequestErrorReason.INVALID_IP,
                f"spec.loadBalancerIP: {lb_ip!r} is a list; it holds one address (use the "
                f"{STABLE + LB_IPS} annotation for one of each IP family)")
        parsed = _parse_ips("spec.loadBalancerIP", lb_ip, [lb_ip])
    if isinstance(parsed, RequestError):
        return parsed
    pool = raw_pool or None
    if pool is not None and (len(pool) > POOL_NAME_MAX or not _POOL_NAME_RE.fullmatch(pool)):
        why = ("has blanks around the name" if pool.strip() != pool and pool.strip()
               else "is not a valid IPAddressPool name (lowercase letters, digits, '-' and "
               "'.')")
        return RequestError(RequestErrorReason.INVALID_POOL,
                            f"annotation {pool_key}: {pool!r} {why}")
    # The sharing key is taken verbatim, as MetalLB does: ' dns' and 'dns' are two keys.
    return AddressRequest(parsed, pool, raw_sharing or None, tuple(legacy))

"""ServiceView parsing and parse_request (annotations, legacy twins, spec.loadBalancerIP)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.operator.builders import service

from metallb_api.addresses import IP, Family
from metallb_api.service import (
    AddressRequest,
    Port,
    RequestError,
    RequestErrorReason,
    ServiceView,
    parse_request,
    service_view,
)

pytestmark = pytest.mark.unit

S, L = "metallb.io/", "metallb.universe.tf/"


def test_service_view_fields() -> None:
    obj = service("web", "shop", families="64", policy="RequireDualStack", etp="Local",
                  selector={"app": "web", "tier": "1"}, labels={"l": "v"},
                  ports=[("TCP", 80), ("UDP", 53)], ingress=["10.0.0.1", "fd00::1"],
                  lb_ip="10.0.0.1", lb_class="example.com/lb", created="T",
                  annotations={"x": "y"})
    view = service_view(obj)
    assert view.key == "shop/web"
    assert (view.namespace, view.name, view.uid, view.resource_version, view.created) == (
        "shop", "web", "uid-shop-web", "1", "T")
    assert view.labels == {"l": "v"} and view.annotations == {"x": "y"}
    assert view.is_load_balancer and view.type == "LoadBalancer"
    assert view.load_balancer_class == "example.com/lb"
    assert view.load_balancer_ip == "10.0.0.1"
    assert view.ip_families == (Family.V6, Family.V4)
    assert view.ip_family_policy == "RequireDualStack"
    assert view.external_traffic_policy == "Local"
    assert view.selector == {"app": "web", "tier": "1"}
    assert view.ports == frozenset({Port("TCP", 80), Port("UDP", 53)})
    assert view.ingress == ("10.0.0.1", "fd00::1")
    assert view.ingress_ips() == (IP.parse("10.0.0.1"), IP.parse("fd00::1"))


def test_service_view_defaults_for_a_sparse_object() -> None:
    view = service_view({"metadata": {"name": "s", "namespace": "n"}})
    assert view == ServiceView(namespace="n", name="s")
    assert view.type == "ClusterIP" and not view.is_load_balancer
    assert view.ip_families == (Family.V4,)
    assert view.ip_family_policy == "SingleStack"
    assert view.external_traffic_policy == "Cluster"
    assert view.load_balancer_class is None
    assert view.ports == frozenset() and view.ingress == ()


def test_service_view_odd_fields() -> None:
    view = service_view({
        "metadata": {"name": "s", "namespace": "n"},
        "spec": {"ipFamilies": ["IPv9", "IPv6"], "ports": [{"port": 8080}, "junk"],
                 "loadBalancerClass": ""},
        "status": {"loadBalancer": {"ingress": [{"hostname": "lb.example"}, {"ip": "junk"},
                                                {"ip": "10.0.0.1"}, "junk"]}},
    })
    assert view.ip_families == (Family.V6,)
    assert view.ports == frozenset({Port("TCP", 8080)})
    assert view.load_balancer_class is None
    assert view.ingress == ("junk", "10.0.0.1")
    assert view.ingress_ips() == (IP.parse("10.0.0.1"),)


@pytest.mark.parametrize(
    ("etp", "selector", "key"),
    [
        ("Cluster", {"app": "x"}, "Cluster"),
        ("Cluster", {}, "Cluster"),
        ("Local", {"b": "2", "a": "1"}, "Local:a=1,b=2"),
        ("Local", {}, "Local:"),
    ],
)
def test_backend_key(etp: str, selector: dict[str, str], key: str) -> None:
    view = ServiceView("n", "s", external_traffic_policy=etp, selector=selector)
    assert view.backend_key == key
    obj = service("s", etp=etp)
    obj["spec"]["selector"] = selector
    assert service_view(obj).backend_key == key


def req(**kw: Any) -> AddressRequest | RequestError:
    return parse_request(service_view(service("s", **kw)))


def ips(*texts: str) -> tuple[IP, ...]:
    return tuple(IP.parse(t) for t in texts)


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({}, AddressRequest()),
        ({"ips": "10.0.0.1"}, AddressRequest(ips("10.0.0.1"))),
        ({"ips": " 10.0.0.1 "}, AddressRequest(ips("10.0.0.1"))),  # blanks: trimmed
        ({"ips": "10.0.0.1 ,\tfd00::1"}, AddressRequest(ips("10.0.0.1", "fd00::1"))),
        ({"ips": "FD00::1"}, AddressRequest(ips("fd00::1"))),
        ({"ips": ""}, AddressRequest()),
        ({"ips": "fd00::1,10.0.0.1"}, AddressRequest(ips("10.0.0.1", "fd00::1"))),
        ({"lb_ip": "10.0.0.2"}, AddressRequest(ips("10.0.0.2"))),
        ({"lb_ip": ""}, AddressRequest()),
        ({"pool": "gold"}, AddressRequest(pool="gold")),
        ({"pool": ""}, AddressRequest()),
        ({"pool": "gold.v2-a"}, AddressRequest(pool="gold.v2-a")),
        ({"share": "k"}, AddressRequest(sharing_key="k")),
        ({"share": " k "}, AddressRequest(sharing_key=" k ")),  # verbatim, as MetalLB
        ({"share": ""}, AddressRequest()),
        ({"ips": "10.0.0.1", "pool": "p", "share": "k"},
         AddressRequest(ips("10.0.0.1"), "p", "k")),
        ({"ips": "10.0.0.1", "pool": "p", "share": "k", "legacy": True},
         AddressRequest(ips("10.0.0.1"), "p", "k",
                        (L + "loadBalancerIPs", L + "address-pool", L + "allow-shared-ip"))),
    ],
)
def test_parse_request(kw: dict[str, Any], expected: AddressRequest) -> None:
    assert req(**kw) == expected


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({S + "address-pool": "new", L + "address-pool": "old"}, "new"),
        ({L + "address-pool": "old"}, "old"),
        ({S + "address-pool": "new"}, "new"),
    ],
)
def test_stable_key_wins_and_legacy_is_reported(annotations: dict[str, str],
                                                expected: str) -> None:
    r = req(annotations=annotations)
    assert isinstance(r, AddressRequest)
    assert r.pool == expected
    assert (L + "address-pool" in r.deprecated) == (L + "address-pool" in annotations)


def test_stable_ips_win_over_legacy_ips() -> None:
    r = req(annotations={S + "loadBalancerIPs": "10.0.0.1",
                         L + "loadBalancerIPs": "10.0.0.2"})
    assert isinstance(r, AddressRequest) and r.ips == ips("10.0.0.1")
    assert r.deprecated == (L + "loadBalancerIPs",)


@pytest.mark.parametrize(
    ("kw", "reason", "fragment"),
    [
        ({"ips": "10.0.0.1", "lb_ip": "10.0.0.1"}, RequestErrorReason.CONFLICTING_FIELDS,
         "spec.loadBalancerIP"),
        ({"ips": "10.0.0.1", "legacy": True, "lb_ip": "10.0.0.2"},
         RequestErrorReason.CONFLICTING_FIELDS, "both set"),
        ({"ips": "10.0.0.1,10.0.0.2"}, RequestErrorReason.TOO_MANY_PER_FAMILY, "10.0.0.2"),
        ({"ips": "fd00::1,fd00::2"}, RequestErrorReason.TOO_MANY_PER_FAMILY, "per IP family"),
        ({"ips": "10.0.0.1,10.0.0.1"}, RequestErrorReason.DUPLICATE_IP,
         "annotation metallb.io/loadBalancerIPs: 10.0.0.1 is listed twice in "
         "'10.0.0.1,10.0.0.1'"),
        ({"ips": "fd00::1, FD00:0::1"}, RequestErrorReason.DUPLICATE_IP,
         "fd00::1 is listed twice"),
        ({"ips": "10.0.0.1,10.0.0.2"}, RequestErrorReason.TOO_MANY_PER_FAMILY,
         "annotation metallb.io/loadBalancerIPs: at most one address per IP family, "
         "'10.0.0.1,10.0.0.2' has two IPv4 addresses (10.0.0.1 and 10.0.0.2)"),
        ({"ips": "10.0.0.1,,fd00::1"}, RequestErrorReason.INVALID_IP,
         "annotation metallb.io/loadBalancerIPs: item 2 of '10.0.0.1,,fd00::1' is empty"),
        ({"ips": "10.0.0.1,"}, RequestErrorReason.INVALID_IP,
         "annotation metallb.io/loadBalancerIPs: item 2 of '10.0.0.1,' is empty"),
        ({"ips": ",10.0.0.1"}, RequestErrorReason.INVALID_IP, "item 1 of ',10.0.0.1' is empty"),
        ({"ips": " "}, RequestErrorReason.INVALID_IP,
         "annotation metallb.io/loadBalancerIPs: ' ' is empty"),
        ({"ips": "10.0.0.1 fd00::1"}, RequestErrorReason.INVALID_IP,
         "annotation metallb.io/loadBalancerIPs: '10.0.0.1 fd00::1': invalid IP address"),
        ({"ips": "10.0.0.1;fd00::1"}, RequestErrorReason.INVALID_IP, "invalid IP address"),
        ({"ips": "10.0.0.1,010.0.0.2"}, RequestErrorReason.INVALID_IP,
         "item 2 of '10.0.0.1,010.0.0.2': invalid IP address '010.0.0.2'"),
        ({"ips": "10.0.0.1,,", "legacy": True}, RequestErrorReason.INVALID_IP,
         "annotation metallb.universe.tf/loadBalancerIPs: item 2"),
        ({"lb_ip": " 10.0.0.1"}, RequestErrorReason.INVALID_IP,
         "spec.loadBalancerIP: ' 10.0.0.1' has blanks around the address"),
        ({"lb_ip": "10.0.0.1,fd00::1"}, RequestErrorReason.INVALID_IP,
         "spec.loadBalancerIP: '10.0.0.1,fd00::1' is a list; it holds one address"),
        ({"pool": " gold"}, RequestErrorReason.INVALID_POOL,
         "annotation metallb.io/address-pool: ' gold' has blanks around the name"),
        ({"pool": "  "}, RequestErrorReason.INVALID_POOL,
         "annotation metallb.io/address-pool: '  ' is not a valid IPAddressPool name"),
        ({"pool": "Gold", "legacy": True}, RequestErrorReason.INVALID_POOL,
         "annotation metallb.universe.tf/address-pool: 'Gold' is not a valid"),
        ({"pool": "a,b"}, RequestErrorReason.INVALID_POOL, "'a,b' is not a valid"),
        ({"ips": "10.0.0.1,fd00::1,10.0.0.3"}, RequestErrorReason.TOO_MANY_PER_FAMILY, ""),
        ({"ips": "10.0.0.300"}, RequestErrorReason.INVALID_IP, "10.0.0.300"),
        ({"ips": "10.0.0.0/24"}, RequestErrorReason.INVALID_IP, "loadBalancerIPs"),
        ({"ips": "::ffff:10.0.0.1"}, RequestErrorReason.INVALID_IP, "IPv4-mapped"),
        ({"lb_ip": "not-an-ip"}, RequestErrorReason.INVALID_IP, "spec.loadBalancerIP"),
    ],
)
def test_request_errors(kw: dict[str, Any], reason: RequestErrorReason, fragment: str) -> None:
    r = req(**kw)
    assert isinstance(r, RequestError)
    assert r.reason == reason
    assert fragment in r.message


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(
    st.sampled_from([S + "loadBalancerIPs", L + "loadBalancerIPs", S + "address-pool",
                     L + "address-pool", S + "allow-shared-ip", L + "allow-shared-ip"]),
    st.text(alphabet="0123456789abcdef.:,/ -", max_size=30), max_size=6),
    st.sampled_from(["", "10.0.0.1", "fd00::1", "junk"]))
def test_parse_request_never_raises(annotations: dict[str, str], lb_ip: str) -> None:
    r = parse_request(service_view(service("s", annotations=annotations, lb_ip=lb_ip)))
    if isinstance(r, AddressRequest):
        assert len({ip.family for ip in r.ips}) == len(r.ips)
        assert list(r.ips) == sorted(r.ips)
        assert r.pool is None or (r.pool and r.pool == r.pool.strip())
        assert r.sharing_key is None or r.sharing_key != ""
        assert all(k.startswith(L) and k in annotations for k in r.deprecated)
    else:  # every message names the annotation or field
        assert r.message.startswith(("annotation metallb.", "spec.loadBalancerIP"))

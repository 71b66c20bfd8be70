"""Cluster-tier fixtures for the operator: a real operator process per test, isolated
by its own pool namespace and its own loadBalancerClass."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from metallb_lab.controlplane import ControlPlane
from metallb_lab.kube import api_client, apply_manifest, create_namespace, wait_for
from metallb_lab.operator import OperatorProcess


class OperatorEnv:
    """One operator + helpers to drive it the way a user would (kubectl apply, Services)."""

    def __init__(self, cp: ControlPlane, pool_ns: str, svc_ns: str, lb_class: str | None) -> None:
        self.cp = cp
        self.pool_ns = pool_ns
        self.ns = svc_ns
        self.lb_class = lb_class
        client = api_client(cp)
        self.core = kubernetes.client.CoreV1Api(client)
        self.custom = kubernetes.client.CustomObjectsApi(client)
        self.operator: OperatorProcess | None = None

    def start(self, **kw: Any) -> OperatorProcess:
        self.operator = OperatorProcess(self.cp, self.pool_ns, lb_class=self.lb_class, **kw)
        self.operator.start()
        return self.operator

    def apply(self, manifest: str) -> None:
        apply_manifest(self.cp, manifest, self.pool_ns)

    def try_apply(self, manifest: str) -> str:
        """Apply and return stderr (for rejected manifests)."""
        proc = apply_manifest(self.cp, manifest, self.pool_ns, check=False)
        return proc.stderr if proc.returncode else ""

    def pool(self, name: str, *addresses: str, **spec: Any) -> None:
        body = {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                "metadata": {"name": name, "namespace": self.pool_ns,
                             "labels": spec.pop("labels", {})},
                "spec": {"addresses": list(addresses), **spec}}
        self.cp.kubectl("apply", "-f", "-", input=json.dumps(body))

    def delete_pool(self, name: str) -> None:
        self.cp.kubectl("delete", "ipaddresspool", "-n", self.pool_ns, name)

    def service(self, name: str, *, ns: str | None = None,
                annotations: dict[str, str] | None = None,
                labels: dict[str, str] | None = None, ports: list[dict[str, Any]] | None = None,
                lb_class: str | bool | None = True, **spec: Any) -> None:
        body: dict[str, Any] = {
            "metadata": {"name": name, "annotations": annotations or {}, "labels": labels or {}},
            "spec": {"type": "LoadBalancer", "selector": {"app": name},
                     "ports": ports or [{"port": 80, "protocol": "TCP"}], **spec},
        }
        cls = self.lb_class if lb_class is True else lb_class
        if cls:
            body["spec"]["loadBalancerClass"] = cls
        self.core.create_namespaced_service(ns or self.ns, body)

    def ingress(self, name: str, ns: str | None = None) -> list[str]:
        svc = self.core.read_namespaced_service(name, ns or self.ns)
        return [i.ip for i in (svc.status.load_balancer.ingress or [])]

    def wait_ingress(self, name: str, ns: str | None = None, timeout: float = 20,
                     count: int = 1) -> list[str]:
        def enough() -> list[str] | None:
            ips = self.ingress(name, ns)
            return ips if len(ips) >= count else None

        return wait_for(enough, timeout=timeout, what=f"ingress of {name}")

    def events(self, name: str, ns: str | None = None,
               kind: str = "Service") -> list[tuple[str, str, str]]:
        out = []
        for ev in self.core.list_namespaced_event(ns or self.ns).items:
            if ev.involved_object.name == name and ev.involved_object.kind == kind:
                out.append((ev.type, ev.reason, ev.message))
        return out

    def wait_event(self, name: str, reason: str, ns: str | None = None, kind: str = "Service",
                   timeout: float = 20) -> str:
        def find() -> str | None:
            for _t, r, m in self.events(name, ns, kind):
                if r == reason:
                    return m
            return None
        return wait_for(find, timeout=timeout, what=f"event {reason} on {name}")

    def pool_obj(self, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
            "metallb.io", "v1beta1", self.pool_ns, "ipaddresspools", name)
        return obj

    def condition(self, kind_plural: str, name: str, ctype: str = "Ready") -> dict[str, Any] | None:
        obj = self.custom.get_namespaced_custom_object(
            "metallb.io", "v1beta1", self.pool_ns, kind_plural, name)
        for c in (obj.get("status") or {}).get("conditions") or []:
            if c["type"] == ctype:
                return dict(c)
        return None

    def wait_condition(self, kind_plural: str, name: str, status: str, ctype: str = "Ready",
                       timeout: float = 20) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            c = self.condition(kind_plural, name, ctype)
            return c if c and c["status"] == status else None

        return wait_for(reached, timeout=timeout, what=f"{ctype}={status} on {kind_plural}/{name}")


@pytest.fixture
def env(control_plane: ControlPlane) -> Iterator[OperatorEnv]:
    pool_ns = create_namespace(control_plane, "pools")
    svc_ns = create_namespace(control_plane, "apps")
    e = OperatorEnv(control_plane, pool_ns, svc_ns, f"metallb.io/t-{uuid.uuid4().hex[:8]}")
    try:
        yield e
    finally:
        if e.operator is not None:
            e.operator.stop()

"""The floor: a real kube-apiserver built from Go modules answers like a cluster."""

from __future__ import annotations

import json
import urllib.request

import kubernetes
import pytest

from metallb_lab.controlplane import ControlPlane
from metallb_lab.kube import api_client, wait_for

pytestmark = pytest.mark.cluster


def test_version_is_stamped(control_plane: ControlPlane) -> None:
    ctx = control_plane.ssl_context()
    with urllib.request.urlopen(f"{control_plane.server}/version", context=ctx) as resp:
        info = json.load(resp)
    assert info["gitVersion"].startswith("v1.")
    assert int(info["minor"]) >= 36


def test_custom_resource_roundtrip(control_plane: ControlPlane, namespace: str) -> None:
    custom = kubernetes.client.CustomObjectsApi(api_client(control_plane))
    body = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "smoke"},
        "spec": {"addresses": ["198.18.100.0/24"]},
    }
    custom.create_namespaced_custom_object("metallb.io", "v1beta1", namespace,
                                           "ipaddresspools", body)
    got = custom.get_namespaced_custom_object("metallb.io", "v1beta1", namespace,
                                              "ipaddresspools", "smoke")
    assert got["spec"]["addresses"] == ["198.18.100.0/24"]
    # Schema defaults are applied by the real API server.
    assert got["spec"]["autoAssign"] is True
    assert got["spec"]["avoidBuggyIPs"] is False


def test_loadbalancer_service_gets_cluster_ip_and_node_port(
    control_plane: ControlPlane, namespace: str
) -> None:
    core = kubernetes.client.CoreV1Api(api_client(control_plane))
    svc = core.create_namespaced_service(namespace, {
        "metadata": {"name": "web"},
        "spec": {"type": "LoadBalancer", "ipFamilyPolicy": "RequireDualStack",
                 "selector": {"app": "web"},
                 "ports": [{"port": 80, "protocol": "TCP"}]},
    })
    assert len(svc.spec.cluster_ips) == 2, "dual-stack service range must be configured"
    assert {":" in ip for ip in svc.spec.cluster_ips} == {True, False}
    assert 30000 <= svc.spec.ports[0].node_port <= 32767
    assert svc.status.load_balancer.ingress is None


def test_lease_and_event(control_plane: ControlPlane, namespace: str) -> None:
    client = api_client(control_plane)
    coord = kubernetes.client.CoordinationV1Api(client)
    coord.create_namespaced_lease(namespace, {
        "metadata": {"name": "node-a"},
        "spec": {"holderIdentity": "node-a", "leaseDurationSeconds": 10},
    })
    assert coord.read_namespaced_lease("node-a", namespace).spec.holder_identity == "node-a"
    core = kubernetes.client.CoreV1Api(client)
    core.create_namespaced_event(namespace, {
        "metadata": {"generateName": "smoke-"},
        "involvedObject": {"kind": "Lease", "name": "node-a", "namespace": namespace,
                           "apiVersion": "coordination.k8s.io/v1"},
        "reason": "Smoke",
        "message": "hello",
        "type": "Normal",
        "source": {"component": "metallb-smoke"},
    })
    listed = core.list_namespaced_event(namespace).items
    assert [e.reason for e in listed] == ["Smoke"]


def test_kubectl_get(control_plane: ControlPlane, namespace: str) -> None:
    core = kubernetes.client.CoreV1Api(api_client(control_plane))
    core.create_namespaced_service(namespace, {
        "metadata": {"name": "shown"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
    })
    out = wait_for(lambda: control_plane.kubectl("get", "svc", "-n", namespace).stdout,
                   what="kubectl get svc")
    assert "shown" in out and "LoadBalancer" in out and "<pending>" in out
    crds = control_plane.kubectl("get", "crds").stdout
    assert "ipaddresspools.metallb.io" in crds

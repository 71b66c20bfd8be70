"""Optimistic concurrency against the real API server: a write based on a stale
resourceVersion is refused (409), re-read and retried - never silently applied."""

from __future__ import annotations

import asyncio

import pytest

from metallb_api.service import service_view
from metallb_kube.client import Connection, KubeClient
from metallb_kube.events import EventRecorder
from metallb_lab.controlplane import ControlPlane
from metallb_lab.kube import Json, create_namespace
from metallb_operator.controller import Controller
from metallb_operator.metrics import OperatorMetrics
from metallb_operator.settings import OperatorSettings

pytestmark = pytest.mark.cluster


async def _run(cp: ControlPlane, pool_ns: str, app_ns: str) -> tuple[float, list[str], str]:
    api = Json(cp)
    api.create(f"/apis/metallb.io/v1beta1/namespaces/{pool_ns}/ipaddresspools", {
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": "p"}, "spec": {"addresses": ["198.18.60.0/30"]}})
    svc_path = f"/api/v1/namespaces/{app_ns}/services"
    api.create(svc_path, {"metadata": {"name": "web"}, "spec": {
        "type": "LoadBalancer", "loadBalancerClass": "metallb.io/conflict-test",
        "ports": [{"port": 80}]}})
    stale = api.get(f"{svc_path}/web")
    # Someone else changes the Service after we read it: our copy is now stale.
    api.merge_patch(f"{svc_path}/web", {"metadata": {"labels": {"touched": "yes"}}})

    settings = OperatorSettings(namespace=pool_ns, load_balancer_class="metallb.io/conflict-test",
                                workers=1, metrics_port=0)
    async with KubeClient(await Connection.load(str(cp.kubeconfig))) as client:
        metrics = OperatorMetrics()
        recorder = EventRecorder(client, "test")
        ctl = Controller(settings, client, recorder, metrics)
        pools, _ = await client.list_all(
            f"/apis/metallb.io/v1beta1/namespaces/{pool_ns}/ipaddresspools")
        for p in pools:
            ctl.on_pool_event("ADDED", p)
        view = service_view(stale)
        ctl.services[view.key] = view
        await ctl._process(view.key)  # writes with the stale resourceVersion -> 409
        conflicts = metrics.api_conflicts._value.get()
        assert ctl.queue  # requeued with the fresh copy
        key = await asyncio.wait_for(ctl.queue.get(), 5)
        await ctl._process(key)
        ctl.queue.done(key)
    final = api.get(f"{svc_path}/web")
    ips = [i["ip"] for i in final["status"]["loadBalancer"]["ingress"]]
    return conflicts, ips, final["metadata"]["labels"]["touched"]


def test_stale_write_is_refused_reread_and_retried(control_plane: ControlPlane) -> None:
    pool_ns = create_namespace(control_plane, "cpool")
    app_ns = create_namespace(control_plane, "capp")
    conflicts, ips, touched = asyncio.run(_run(control_plane, pool_ns, app_ns))
    assert conflicts == 1.0
    assert ips == ["198.18.60.0"]
    assert touched == "yes"  # the other writer's change survived

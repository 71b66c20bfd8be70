"""Real speaker processes and the real API server: an L2Advertisement's serviceSelectors
restrict which Services are announced, its preferredNodeSelectors pick the owner, and a
label change on a Service or a Node re-ranks at once."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from metallb_lab.controlplane import ControlPlane
from metallb_lab.kube import create_namespace, wait_for

from .test_speaker_cluster import Cluster, expected_owner

pytestmark = pytest.mark.cluster


@pytest.fixture
def speakers(control_plane: ControlPlane) -> Iterator[Cluster]:
    c = Cluster(control_plane, create_namespace(control_plane, "sel"))
    try:
        yield c
    finally:
        c.stop_all()


def test_service_selectors_and_preferred_nodes(speakers: Cluster) -> None:
    c = speakers
    nodes = [c.node(f"s{i}") for i in range(3)]
    # An address whose hash owner is not the node we are going to prefer.
    ip = next(f"{c.pool}.{i}" for i in range(10, 60)
              if expected_owner(nodes, f"{c.pool}.{i}") != nodes[2])
    other_ip = f"{c.pool}.200"
    fast = nodes[2]
    c.api.merge_patch(f"/api/v1/nodes/{fast}", {"metadata": {"labels": {"fast": "yes"}}})
    c.cp.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
        "metadata": {"name": "all", "namespace": c.ns},
        "spec": {"serviceSelectors": [{"matchLabels": {"app": "web"}}],
                 "preferredNodeSelectors": [
                     {"weight": 50, "preference": {"matchLabels": {"fast": "yes"}}}]}}))
    for n in nodes:
        c.start(n)
    c.wait_members(len(nodes))
    svcs = f"/api/v1/namespaces/{c.ns}/services"
    c.service("web", ip)
    c.api.merge_patch(f"{svcs}/web", {"metadata": {"labels": {"app": "web"}}})
    c.service("other", other_ip)
    wait_for(lambda: c.announcers().get("web") == [fast], timeout=20,
             what="the preferred node announces the selected Service")
    # Not selected: announced by nobody (and every speaker says why).
    assert "other" not in c.announcers()
    # Its labels change: re-ranked, and the preferred node takes it too.
    c.api.merge_patch(f"{svcs}/other", {"metadata": {"labels": {"app": "web"}}})
    wait_for(lambda: c.announcers().get("other") == [fast], timeout=20,
             what="a Service that gained the selected label is announced")
    # The preference goes with the node label: back to the sha256 owner.
    c.api.merge_patch(f"/api/v1/nodes/{fast}", {"metadata": {"labels": {"fast": None}}})
    wait_for(lambda: c.announcers().get("web") == [expected_owner(nodes, ip)], timeout=20,
             what="the hash owner once no node is preferred")
    # allow-shared-ip on a Service that a service-selecting advertisement matches:
    # announced by nobody (MetalLB's guard).
    c.api.merge_patch(f"{svcs}/web", {"metadata": {"annotations": {
        "metallb.io/allow-shared-ip": "k"}}})
    wait_for(lambda: "web" not in c.announcers(), timeout=20,
             what="shared-IP Service with a service-selecting advertisement withdrawn")
    assert any(c.speakers[n].metric("metallb_speaker_election_decisions",
                                    'reason="sharedIPWithServiceSelector"') for n in nodes)

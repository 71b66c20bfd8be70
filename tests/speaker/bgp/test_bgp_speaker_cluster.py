"""BGP mode against the real API server, no FRR (cluster tier, no root): speakers write
ServiceBGPStatus as MetalLB does - every eligible node, not one owner - beside layer 2's
ServiceL2Status for a pool advertised both ways; peer and advertisement nodeSelectors,
externalTrafficPolicy Local and endpoints decide which nodes; FRR missing is reported by
readiness and the metric, without stopping the decisions."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.speaker.test_speaker_cluster import Cluster

from metallb_lab.controlplane import ControlPlane
from metallb_lab.kube import create_namespace, wait_for

pytestmark = pytest.mark.cluster


@pytest.fixture
def cluster(control_plane: ControlPlane, tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(control_plane, create_namespace(control_plane, "bgp"))
    c.cp.kubectl("apply", "-n", c.ns, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
             "metadata": {"name": "rack-a"},
             "spec": {"myASN": 64512, "peerASN": 64513, "peerAddress": "198.18.0.250",
                      "nodeSelectors": [{"matchLabels": {"rack": "a"}}]}},
            {"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
             "metadata": {"name": "spine"},
             "spec": {"myASN": 64512, "peerASN": 64514, "peerAddress": "198.18.0.251"}},
            {"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
             "metadata": {"name": "p"}, "spec": {"ipAddressPools": ["p"]}}]}))
    try:
        yield c
    finally:
        c.stop_all()


def bgp_statuses(c: Cluster) -> dict[str, dict[str, list[str]]]:
    """service -> node -> peers."""
    items = c.api.get(f"/apis/metallb.io/v1beta1/namespaces/{c.ns}/servicebgpstatuses")["items"]
    out: dict[str, dict[str, list[str]]] = {}
    for obj in items:
        st = obj.get("status") or {}
        if st.get("serviceName"):
            out.setdefault(st["serviceName"], {})[st["node"]] = st.get("peers", [])
    return out


def test_statuses_from_every_eligible_node(cluster: Cluster, tmp_path: Path) -> None:
    c = cluster
    a = c.node("a", {"rack": "a"})
    b = c.node("b", {"rack": "b"})
    speakers = {n: c.start(n, f"--frr-socket-dir={tmp_path / 'no-frr'}") for n in (a, b)}
    c.wait_members(2)
    c.service("web", f"{c.pool}.10")

    def both() -> dict[str, list[str]] | None:
        got = bgp_statuses(c).get("web", {})
        return got if len(got) == 2 else None

    # each node to the peers selecting it; layer 2 still elects one owner
    assert wait_for(both, timeout=20, what="two ServiceBGPStatus") == {
        a: ["rack-a", "spine"], b: ["spine"]}
    assert len(wait_for(lambda: c.announcers().get("web"), timeout=10, what="L2")) == 1

    # Local: only the node with an endpoint
    c.api.merge_patch(f"/api/v1/namespaces/{c.ns}/services/web",
                      {"spec": {"externalTrafficPolicy": "Local"}})
    c.endpoints("web", [b])
    wait_for(lambda: bgp_statuses(c).get("web") == {b: ["spine"]}, timeout=20,
             what="only the node with a local endpoint")
    # no serving endpoint: nobody
    c.endpoints("web", [b], ready=False)
    wait_for(lambda: "web" not in bgp_statuses(c), timeout=20, what="no status")

    # FRR is missing: not ready, and said why
    for sp in speakers.values():
        assert sp.metric("metallb_speaker_frr_up") == 0.0
        try:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{sp.metrics_port}/readyz", timeout=2) as resp:
                body = resp.read().decode()
        except urllib.error.HTTPError as exc:
            body = exc.read().decode()
        assert "FRR unavailable" in body

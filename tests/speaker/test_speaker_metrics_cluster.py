"""A running speaker's /metrics (plain and HTTPS) against MetalLB's series list. No data
plane here (cluster tier): the layer-2 families are listed without samples, their labels
are checked in test_metrics.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.fixtures.metallb_series import differences
from tests.fixtures.tls import https_get, write_cert
from tests.speaker.test_speaker_cluster import Cluster, cluster  # noqa: F401  (fixture)

from metallb_lab.controlplane import free_port
from metallb_lab.kube import wait_for

pytestmark = pytest.mark.cluster


def test_metallb_series_on_the_live_endpoints(cluster: Cluster,  # noqa: F811
                                              tmp_path: Path) -> None:
    certs = write_cert(tmp_path, "speaker-metrics")
    secure = free_port()
    node = cluster.node("m0")
    sp = cluster.start(node, f"--secure-metrics-port={secure}",
                       f"--tls-cert-file={certs.cert}", f"--tls-private-key-file={certs.key}")
    cluster.wait_members(1)
    ip = f"{cluster.pool}.20"
    cluster.service("web", ip)
    labels = f'ip="{ip}",node="{node}",protocol="layer2",service="{cluster.ns}/web"'
    wait_for(lambda: sp.metric("metallb_speaker_announced", labels) == 1.0, timeout=20,
             what="the announced gauge")
    wanted = {"metallb_speaker_announced", "metallb_k8s_client_updates_total",
              "metallb_k8s_client_config_loaded_bool", "process_cpu_seconds_total"}
    assert differences(sp.metrics(), "speaker", wanted) == []
    assert sp.metric("metallb_k8s_client_config_loaded_bool") == 1.0
    assert (sp.metric("metallb_k8s_client_updates_total") or 0) >= 1
    status, body, presented = https_get(secure, "/metrics", certs.cert)
    assert (status, presented) == (200, "speaker-metrics")
    assert differences(body, "speaker", wanted) == []
    assert https_get(secure, "/livez", certs.cert)[0] == 200

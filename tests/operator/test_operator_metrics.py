"""A running operator's /metrics (plain and HTTPS) against MetalLB's series list."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.fixtures.metallb_series import differences, metallb_series
from tests.fixtures.tls import https_get, write_cert
from tests.operator.conftest import OperatorEnv

from metallb_lab.controlplane import free_port
from metallb_lab.kube import wait_for

pytestmark = pytest.mark.cluster


def test_metallb_series_on_the_live_endpoints(env: OperatorEnv, tmp_path: Path) -> None:
    certs = write_cert(tmp_path, "operator-metrics")
    secure = free_port()
    env.pool("p", "198.18.14.0/30")
    op = env.start(extra_args=(f"--secure-metrics-port={secure}",
                               f"--tls-cert-file={certs.cert}",
                               f"--tls-private-key-file={certs.key}"))
    env.service("web")
    env.wait_ingress("web")
    wait_for(lambda: op.metric("metallb_allocator_addresses_in_use_total", 'pool="p"') == 1.0,
             timeout=20, what="pool gauges")
    every = {s.name for s in metallb_series("controller")}
    assert differences(op.metrics(), "controller", every) == []
    assert op.metric("metallb_k8s_client_config_loaded_bool") == 1.0
    assert op.metric("metallb_k8s_client_config_stale_bool") == 0.0
    assert (op.metric("metallb_k8s_client_updates_total") or 0) >= 1
    status, body, presented = https_get(secure, "/metrics", certs.cert)
    assert (status, presented) == (200, "operator-metrics")
    assert differences(body, "controller", every) == []
    assert https_get(secure, "/readyz", certs.cert)[:2] == (200, "loop: ok\nsynced: ok\n")

    # A refused pool (overlapping the first): MetalLB's stale-configuration gauge.
    env.pool("q", "198.18.14.2/31")
    wait_for(lambda: op.metric("metallb_k8s_client_config_stale_bool") == 1.0,
             timeout=20, what="stale configuration")

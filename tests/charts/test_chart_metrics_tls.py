"""The optional HTTPS metrics port: this chart's keys and MetalLB's
(prometheus.secureMetricsPort, *MetricsTLSSecret), the Secret mounted where the
components read it, monitors scraping it; plain HTTP stays the default."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from tests.charts.test_chart import (
    FULLNAME,
    OPERATOR,
    SPEAKER,
    by_kind,
    container,
    helm_env,
    render,
    render_fails,
)
from tests.charts.test_chart_metallb_values import (
    METALLB_VALUES,
    args_of,
    pod_spec,
    with_values,
    workloads,
)

__all__ = ["helm_env"]  # the module-scoped fixture, shared with test_chart
pytestmark = pytest.mark.unit
CERT, KEY = "--tls-cert-file=/etc/metrics/tls.crt", "--tls-private-key-file=/etc/metrics/tls.key"


def https_of(workload: dict[str, Any]) -> tuple[int | None, str | None]:
    """(the metricshttps containerPort, the Secret mounted at /etc/metrics)."""
    c = container(workload)
    port = next((p["containerPort"] for p in c["ports"] if p["name"] == "metricshttps"), None)
    mount = next((m["name"] for m in c.get("volumeMounts", [])
                  if m["mountPath"] == "/etc/metrics"), None)
    secret = next((v["secret"]["secretName"] for v in pod_spec(workload)["volumes"]
                   if v["name"] == mount), None)
    if port is not None:
        assert f"--secure-metrics-port={port}" in args_of(c)
        assert {CERT, KEY} <= set(args_of(c))
    return port, secret


def test_plain_http_is_the_default(helm_env: dict[str, str]) -> None:
    docs = render(helm_env)
    for workload in workloads(docs):
        assert https_of(workload) == (None, None)
        assert not [a for a in args_of(container(workload)) if "secure" in a or "tls" in a]
    assert not [s for s in by_kind(docs, "Secret").values()
                if s.get("type") == "kubernetes.io/tls" and "metrics" in s["metadata"]["name"]]


@pytest.mark.parametrize(("values", "want_op", "want_sp"), [
    ({"operator": {"metrics": {"securePort": 9120, "tlsSecret": "op-certs"}},
      "speaker": {"metrics": {"securePort": 9121, "tlsSecret": "sp-certs"}}},
     (9120, "op-certs"), (9121, "sp-certs")),
    # MetalLB v0.15's layout: one port for both, a Secret per component.
    ({"prometheus": {"secureMetricsPort": 9120, "controllerMetricsTLSSecret": "c",
                     "speakerMetricsTLSSecret": "s"}}, (9120, "c"), (9120, "s")),
    # v0.16's tls.* Secrets.
    ({"prometheus": {"secureMetricsPort": 9120},
      "tls": {"controllerMetricsTLSSecret": "c2", "speakerMetricsTLSSecret": "s2"}},
     (9120, "c2"), (9120, "s2")),
    # Ours win over MetalLB's.
    ({"prometheus": {"secureMetricsPort": 9120, "speakerMetricsTLSSecret": "s"},
      "speaker": {"metrics": {"securePort": 9443, "tlsSecret": "mine"}}},
     (9120, f"{FULLNAME}-operator-metrics-tls"), (9443, "mine")),
], ids=["ours", "metallb-v0.15", "metallb-v0.16-tls", "ours-win"])
def test_secure_port_mounts_the_secret(helm_env: dict[str, str], tmp_path: Path,
                                       values: dict[str, Any], want_op: tuple[int, str],
                                       want_sp: tuple[int, str]) -> None:
    docs = with_values(helm_env, tmp_path, values, "-f", str(METALLB_VALUES))
    op, sp = workloads(docs)
    assert (https_of(op), https_of(sp)) == (want_op, want_sp)
    services = by_kind(docs, "Service")
    for svc, (port, _) in ((f"{OPERATOR}-metrics", want_op), (f"{SPEAKER}-metrics", want_sp)):
        assert {"name": "metricshttps", "port": port, "targetPort": "metricshttps",
                "protocol": "TCP"} in services[svc]["spec"]["ports"]


def test_without_a_secret_the_chart_makes_a_self_signed_one(helm_env: dict[str, str],
                                                            tmp_path: Path) -> None:
    docs = with_values(helm_env, tmp_path, {"prometheus": {"secureMetricsPort": 9120}})
    secrets = by_kind(docs, "Secret")
    for workload, component in zip(workloads(docs), ("operator", "speaker"), strict=True):
        name = f"{FULLNAME}-{component}-metrics-tls"
        assert https_of(workload) == (9120, name)
        secret = secrets[name]
        assert secret["type"] == "kubernetes.io/tls"
        cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert f"{FULLNAME}-{component}-metrics.metallb-system.svc" in \
            san.get_values_for_type(x509.DNSName)
        assert base64.b64decode(secret["data"]["tls.key"]).startswith(b"-----BEGIN")


@pytest.mark.parametrize("monitor", ["serviceMonitor", "podMonitor"])
def test_monitors_scrape_https(helm_env: dict[str, str], tmp_path: Path, monitor: str) -> None:
    tls = {"insecureSkipVerify": False, "ca": {"secret": {"name": "ca", "key": "ca.crt"}}}
    prom: dict[str, Any] = {"secureMetricsPort": 9120, monitor: {"enabled": True}}
    if monitor == "serviceMonitor":
        prom[monitor]["controller"] = {"tlsConfig": tls}
    else:
        prom[monitor]["tlsConfig"] = tls
    docs = with_values(helm_env, tmp_path, {"prometheus": prom})
    kind = "ServiceMonitor" if monitor == "serviceMonitor" else "PodMonitor"
    field = "endpoints" if monitor == "serviceMonitor" else "podMetricsEndpoints"
    for name, obj in by_kind(docs, kind).items():
        (endpoint,) = obj["spec"][field]
        assert (endpoint["port"], endpoint["scheme"]) == ("metricshttps", "https")
        # As MetalLB's chart: skip verification unless told otherwise.
        custom = monitor == "podMonitor" or name.endswith("-operator")
        assert endpoint["tlsConfig"] == (tls if custom else {"insecureSkipVerify": True})


def test_rendered_tls_flags_parse(helm_env: dict[str, str], tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from metallb_operator.settings import parse_args as operator_args
    from metallb_speaker.settings import parse_args as speaker_args

    op, sp = workloads(with_values(helm_env, tmp_path, {"prometheus": {
        "secureMetricsPort": 9120, "controllerMetricsTLSSecret": "c",
        "speakerMetricsTLSSecret": "s"}}))
    monkeypatch.setenv("METALLB_NODE_NAME", "node-a")
    for s in (operator_args(args_of(container(op))), speaker_args(args_of(container(sp)))):
        assert (s.secure_metrics_port, s.tls_cert_file, s.tls_key_file) == (
            9120, "/etc/metrics/tls.crt", "/etc/metrics/tls.key")


@pytest.mark.parametrize(("values", "message"), [
    ({"operator": {"metrics": {"securePort": 7472}}}, "operator.metrics.securePort"),
    ({"prometheus": {"secureMetricsPort": 7473}}, "speaker.metrics.port"),
    ({"speaker": {"metrics": {"securePort": 7946}}}, "gossip port"),
])
def test_a_secure_port_that_clashes_is_refused(helm_env: dict[str, str], tmp_path: Path,
                                               values: dict[str, Any], message: str) -> None:
    f = tmp_path / "values.yaml"
    f.write_text(yaml.safe_dump(values))
    assert message in render_fails(helm_env, "-f", str(f))

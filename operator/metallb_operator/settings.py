"""Operator settings: loaded once in __main__ (flags, then METALLB_* environment), passed
down explicitly. No globals."""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class WebhookSettings:
    """The validating admission webhook (see webhook.py); port 0: not served."""

    host: str = "0.0.0.0"
    port: int = 0
    cert_dir: str = "/tmp/k8s-webhook-server/serving-certs"  # MetalLB's --cert-dir
    list_timeout: float = 5.0  # under the apiserver's default webhook timeout (10 s)
    reload_period: float = 10.0  # how often a renewed certificate is looked for
    # After SIGTERM: not ready (the Service's endpoints drop us) but still answering this
    # long, so the apiserver's requests on kept-alive connections are not cut (EOF).
    drain: float = 10.0

    @property
    def cert_file(self) -> Path:
        return Path(self.cert_dir) / "tls.crt"

    @property
    def key_file(self) -> Path:
        return Path(self.cert_dir) / "tls.key"


@dataclass(frozen=True)
class OperatorSettings:
    namespace: str = "metallb-system"
    load_balancer_class: str | None = None
    kubeconfig: str | None = None
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 7472
    # The same endpoints over HTTPS (0: off), certificate and key from files (a Secret).
    secure_metrics_port: int = 0
    tls_cert_file: str = "/etc/metrics/tls.crt"
    tls_key_file: str = "/etc/metrics/tls.key"
    leader_election: bool = True
    lease_name: str = "metallb-py-operator"
    lease_duration: float = 15.0
    renew_period: float = 2.0
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    workers: int = 24
    api_concurrency: int = 32  # > workers: Events and status writes always get a slot
    status_flush_interval: float = 0.5
    log_level: str = "info"
    webhook: WebhookSettings = field(default_factory=WebhookSettings)


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"METALLB_{name}", default)


def parse_args(argv: Sequence[str] | None = None) -> OperatorSettings:
    d = OperatorSettings()
    p = argparse.ArgumentParser(prog="metallb-operator", description=__doc__)
    p.add_argument("--namespace", default=_env("NAMESPACE", d.namespace),
                   help="namespace holding IPAddressPools and L2Advertisements")
    p.add_argument("--lb-class", default=_env("LB_CLASS"),
                   help="spec.loadBalancerClass to handle (unset: Services without a class)")
    p.add_argument("--kubeconfig", default=_env("KUBECONFIG_PATH"))
    p.add_argument("--metrics-host", default=_env("METRICS_HOST", d.metrics_host))
    p.add_argument("--metrics-port", type=int, default=int(_env("METRICS_PORT") or d.metrics_port))
    p.add_argument("--secure-metrics-port", type=int,
                   default=int(_env("SECURE_METRICS_PORT") or d.secure_metrics_port),
                   help="also serve /metrics, /livez, /readyz over HTTPS here; 0: off")
    p.add_argument("--tls-cert-file", default=_env("TLS_CERT_FILE", d.tls_cert_file))
    p.add_argument("--tls-private-key-file",
                   default=_env("TLS_PRIVATE_KEY_FILE", d.tls_key_file))
    p.add_argument("--no-leader-election", action="store_true",
                   default=_env("LEADER_ELECTION", "true") == "false")
    p.add_argument("--lease-name", default=_env("LEASE_NAME", d.lease_name))
    p.add_argument("--lease-duration", type=float, default=d.lease_duration)
    p.add_argument("--identity", default=_env("IDENTITY") or d.identity)
    p.add_argument("--workers", type=int, default=d.workers)
    p.add_argument("--log-level", default=_env("LOG_LEVEL", d.log_level))
    w = d.webhook
    p.add_argument("--webhook-port", type=int, default=int(_env("WEBHOOK_PORT") or w.port),
                   help="serve the validating admission webhook (HTTPS) on this port; 0: off")
    p.add_argument("--webhook-host", default=_env("WEBHOOK_HOST", w.host))
    p.add_argument("--webhook-cert-dir", default=_env("WEBHOOK_CERT_DIR", w.cert_dir),
                   help="directory with tls.crt and tls.key (re-read when they change)")
    a = p.parse_args(argv)
    return OperatorSettings(
        namespace=a.namespace,
        load_balancer_class=a.lb_class or None,
        kubeconfig=a.kubeconfig,
        metrics_host=a.metrics_host,
        metrics_port=a.metrics_port,
        secure_metrics_port=a.secure_metrics_port,
        tls_cert_file=a.tls_cert_file,
        tls_key_file=a.tls_private_key_file,
        leader_election=not a.no_leader_election,
        lease_name=a.lease_name,
        lease_duration=a.lease_duration,
        identity=a.identity,
        workers=a.workers,
        log_level=a.log_level,
        webhook=WebhookSettings(host=a.webhook_host, port=a.webhook_port,
                                cert_dir=a.webhook_cert_dir),
    )

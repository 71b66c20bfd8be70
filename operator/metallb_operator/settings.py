"""Operator settings: loaded once in __main__ (flags, then METALLB_* environment), passed
down explicitly. No globals."""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class OperatorSettings:
    namespace: str = "metallb-system"
    load_balancer_class: str | None = None
    kubeconfig: str | None = None
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 7472
    leader_election: bool = True
    lease_name: str = "metallb-py-operator"
    lease_duration: float = 15.0
    renew_period: float = 2.0
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    workers: int = 24
    api_concurrency: int = 32  # > workers: Events and status writes always get a slot
    status_flush_interval: float = 0.5
    log_level: str = "info"


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
    p.add_argument("--no-leader-election", action="store_true",
                   default=_env("LEADER_ELECTION", "true") == "false")
    p.add_argument("--lease-name", default=_env("LEASE_NAME", d.lease_name))
    p.add_argument("--lease-duration", type=float, default=d.lease_duration)
    p.add_argument("--identity", default=_env("IDENTITY") or d.identity)
    p.add_argument("--workers", type=int, default=d.workers)
    p.add_argument("--log-level", default=_env("LOG_LEVEL", d.log_level))
    a = p.parse_args(argv)
    return OperatorSettings(
        namespace=a.namespace,
        load_balancer_class=a.lb_class or None,
        kubeconfig=a.kubeconfig,
        metrics_host=a.metrics_host,
        metrics_port=a.metrics_port,
        leader_election=not a.no_leader_election,
        lease_name=a.lease_name,
        lease_duration=a.lease_duration,
        identity=a.identity,
        workers=a.workers,
        log_level=a.log_level,
    )

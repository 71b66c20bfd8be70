"""Speaker settings: flags, then METALLB_* environment (the chart sets them from the
downward API). Loaded once in __main__ and passed down."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from metallb_speaker.frr.plan import ApplySettings
from metallb_speaker.membership import MembershipConfig


@dataclass(frozen=True)
class SpeakerSettings:
    node_name: str
    namespace: str = "metallb-system"
    kubeconfig: str | None = None
    advertise_address: str | None = None  # gossip endpoint host; default: Node InternalIP
    bind_address: str = "0.0.0.0"
    gossip_port: int = 7946
    secret_name: str = "metallb-py-memberlist"
    secret_key: str = "secretkey"
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 7473
    # The same endpoints over HTTPS (0: off), certificate and key from files (a Secret).
    secure_metrics_port: int = 0
    tls_cert_file: str = "/etc/metrics/tls.crt"
    tls_key_file: str = "/etc/metrics/tls.key"
    load_balancer_class: str | None = None
    honor_exclude_label: bool = True
    dataplane: bool = True
    conflict_mode: str = "defend"  # or "back-off": stop announcing a conflicted address
    interfaces_exclude: tuple[str, ...] = ("docker*", "veth*", "cali*", "kube-ipvs*", "lxc*",
                                          "cni*", "flannel*", "vxlan*", "tunl*", "lo")
    log_level: str = "info"
    lease_renew: float = 30.0
    # kube-proxy's health port on every node; 0: every takeover announces at once.
    kube_proxy_healthz_port: int = 10256
    membership: MembershipConfig = field(default_factory=MembershipConfig)
    tick: float = 0.05  # longest sleep of the gossip loop; timers usually wake it sooner
    # BGP mode: the directory of FRR's vty sockets (shared with the FRR container);
    # "" turns BGP mode off (BGP objects are then ignored).
    frr_socket_dir: str = ""
    frr: ApplySettings = field(default_factory=ApplySettings)
    # This speaker's Pod (the chart passes them): owner of its BGPSessionStates, so they
    # go with it (uninstall, node deleted) instead of showing a stale state. "": none.
    pod_name: str = ""
    pod_uid: str = ""


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"METALLB_{name}", default)


def parse_args(argv: Sequence[str] | None = None) -> SpeakerSettings:
    p = argparse.ArgumentParser(prog="metallb-speaker")
    p.add_argument("--node-name", default=_env("NODE_NAME"))
    p.add_argument("--namespace", default=_env("NAMESPACE", "metallb-system"))
    p.add_argument("--kubeconfig", default=_env("KUBECONFIG_PATH"))
    p.add_argument("--advertise-address", default=_env("HOST_IP"))
    p.add_argument("--bind-address", default=_env("BIND_ADDRESS", "0.0.0.0"))
    p.add_argument("--gossip-port", type=int, default=int(_env("GOSSIP_PORT") or 7946))
    p.add_argument("--secret-name", default=_env("SECRET_NAME", "metallb-py-memberlist"))
    p.add_argument("--metrics-host", default=_env("METRICS_HOST", "0.0.0.0"))
    p.add_argument("--metrics-port", type=int, default=int(_env("METRICS_PORT") or 7473))
    p.add_argument("--secure-metrics-port", type=int,
                   default=int(_env("SECURE_METRICS_PORT") or 0),
                   help="also serve /metrics, /livez, /readyz over HTTPS here; 0: off")
    p.add_argument("--tls-cert-file", default=_env("TLS_CERT_FILE", "/etc/metrics/tls.crt"))
    p.add_argument("--tls-private-key-file",
                   default=_env("TLS_PRIVATE_KEY_FILE", "/etc/metrics/tls.key"))
    p.add_argument("--lb-class", default=_env("LB_CLASS"))
    p.add_argument("--ignore-exclude-lb", action="store_true",
                   default=_env("IGNORE_EXCLUDE_LB", "false") == "true",
                   help="announce from nodes labelled exclude-from-external-load-balancers")
    p.add_argument("--no-dataplane", action="store_true",
                   help="membership and election only (no ARP/NDP; no root needed)")
    p.add_argument("--on-conflict", choices=("defend", "back-off"),
                   default=_env("ON_CONFLICT", "defend"),
                   help="when another host claims one of our addresses: keep announcing "
                        "(default, and report loudly) or stop announcing it")
    p.add_argument("--hold-down", type=float, default=MembershipConfig.hold_down)
    p.add_argument("--kube-proxy-healthz-port", type=int,
                   default=int(_env("KUBE_PROXY_HEALTHZ_PORT") or 10256),
                   help="where every node's kube-proxy answers /healthz. Taking over from "
                        "a node whose kube-proxy answers (a restarted speaker) sends no "
                        "gratuitous ARP/NA, so established clients keep their path; "
                        "0: always announce at once")
    p.add_argument("--log-level", default=_env("LOG_LEVEL", "info"))
    p.add_argument("--frr-socket-dir", default=_env("FRR_SOCKET_DIR", ""),
                   help="BGP mode: where FRR's vty sockets are (e.g. /var/run/frr); "
                        "empty: BGP mode off")
    p.add_argument("--frr-debounce", type=float, default=ApplySettings.debounce,
                   help="seconds a changed FRR configuration (peers, BFD, timers) must be "
                        "quiet before it is pushed; prefix changes are pushed at once")
    p.add_argument("--frr-withdraw-timeout", type=float,
                   default=ApplySettings.withdraw_timeout,
                   help="on SIGTERM, how long to wait for FRR to send the withdrawals")
    p.add_argument("--bgp-ready-grace", type=float, default=ApplySettings.ready_grace,
                   help="after a start, Ready only once every BGP session is established "
                        "and its updates sent, or after this many seconds")
    p.add_argument("--pod-name", default=_env("POD_NAME", ""))
    p.add_argument("--pod-uid", default=_env("POD_UID", ""))
    a = p.parse_args(argv)
    if not a.node_name:
        p.error("--node-name (or METALLB_NODE_NAME) is required")
    return SpeakerSettings(
        node_name=a.node_name, namespace=a.namespace, kubeconfig=a.kubeconfig,
        advertise_address=a.advertise_address, bind_address=a.bind_address,
        gossip_port=a.gossip_port, secret_name=a.secret_name, metrics_host=a.metrics_host,
        metrics_port=a.metrics_port, load_balancer_class=a.lb_class or None,
        secure_metrics_port=a.secure_metrics_port, tls_cert_file=a.tls_cert_file,
        tls_key_file=a.tls_private_key_file,
        honor_exclude_label=not a.ignore_exclude_lb, dataplane=not a.no_dataplane,
        log_level=a.log_level, membership=MembershipConfig(hold_down=a.hold_down),
        conflict_mode=a.on_conflict, kube_proxy_healthz_port=a.kube_proxy_healthz_port,
        frr_socket_dir=a.frr_socket_dir,
        frr=ApplySettings(debounce=a.frr_debounce, withdraw_timeout=a.frr_withdraw_timeout,
                          ready_grace=a.bgp_ready_grace),
        pod_name=a.pod_name, pod_uid=a.pod_uid,
    )

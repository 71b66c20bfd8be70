"""A real Kubernetes control plane (etcd + kube-apiserver) for tests, demos and benches.

The binaries are built from Go modules by `e2e/tools/build-control-plane` and cached;
`KUBEBUILDER_ASSETS` (the envtest convention) points at other binaries instead. The flag
set follows controller-runtime's envtest: RBAC authorization, ServiceAccount admission
off, service-account issuer and keys, plus a dual-stack service range.

With `for_nodes=True` (the real-node cluster, see `metallb_lab.cluster`) it is a real
cluster's control plane instead: it runs inside a network namespace on the lab LAN,
authorizes kubelets with the Node authorizer, admits Pods with their ServiceAccount
tokens, reaches kubelets by InternalIP and admission webhooks at their Service's Pod
endpoints, and `start_controllers()` adds kube-controller-manager and kube-scheduler.
Tests reach it through a relay on the host's loopback (nothing is added to the host's
own network namespace).

Usage::

    with ControlPlane() as cp:
        subprocess.run(cp.kubectl_cmd("get", "ns"))
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from metallb_lab import cgroups
from metallb_lab.netns import NETNS_DIR, Forwarder, run_in_ns
from metallb_lab.pki import CertificateAuthority, CertPair, write_service_account_key

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "e2e" / "tools" / "build-control-plane"
# Service ranges kept inside the project's lab space (never routed anywhere).
DEFAULT_SERVICE_CIDRS = ("198.19.0.0/16", "fd00:10:96::/112")
FALLBACK_ADVERTISE = "198.18.255.254"


class ControlPlaneError(RuntimeError):
    pass


def cache_dir() -> Path:
    base = os.environ.get("METALLB_PY_CACHE")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "metallb-py"


def find_assets(build: bool = True) -> Path:
    """Directory holding kube-apiserver and etcd (and helm, when built by us)."""
    env = os.environ.get("KUBEBUILDER_ASSETS")
    if env:
        path = Path(env)
        missing = [b for b in ("kube-apiserver", "etcd") if not (path / b).exists()]
        if missing:
            raise ControlPlaneError(f"KUBEBUILDER_ASSETS={env} lacks {', '.join(missing)}")
        return path
    current = cache_dir() / "k8s" / "current"
    if (current / "kube-apiserver").exists() and (current / "etcd").exists():
        return current.resolve()
    if not build or not BUILD_SCRIPT.exists():
        raise ControlPlaneError(
            "no control-plane binaries: run e2e/tools/build-control-plane "
            "or set KUBEBUILDER_ASSETS"
        )
    out = subprocess.run([str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def find_tool(name: str) -> str:
    """A CLI tool (kubectl, helm): the assets directory first, then PATH."""
    with contextlib.suppress(ControlPlaneError):
        candidate = find_assets(build=False) / name
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if not found:
        raise ControlPlaneError(f"{name} not found (assets dir or PATH)")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def default_advertise_address() -> str:
    """First global IPv4 address of this host; the apiserver rejects loopback."""
    try:
        out = subprocess.run(
            ["ip", "-j", "-4", "addr", "show", "scope", "global"],
            check=True, capture_output=True, text=True,
        ).stdout
        for link in json.loads(out):
            for addr in link.get("addr_info", []):
                if not ipaddress.ip_address(addr["local"]).is_loopback:
                    return str(addr["local"])
    except (OSError, subprocess.CalledProcessError, ValueError, KeyError):
        pass
    # No global address (and usually no default route): any non-loopback address works;
    # it is only published in the `kubernetes` Endpoints, never dialled by our tests.
    return FALLBACK_ADVERTISE


@dataclass
class ControlPlaneConfig:
    bind_address: str = "127.0.0.1"
    advertise_address: str | None = None
    extra_sans: tuple[str, ...] = ()
    service_cidrs: tuple[str, ...] = DEFAULT_SERVICE_CIDRS
    assets: Path | None = None
    work_dir: Path | None = None
    keep_work_dir: bool = False
    extra_apiserver_flags: tuple[str, ...] = ()
    ready_timeout: float = 120.0
    # Run etcd and the apiserver (and later the controllers) in this network namespace.
    netns: str | None = None
    secure_port: int | None = None  # None: a free port
    # A real cluster's control plane (Node authorizer, ServiceAccount admission, kubelet
    # client certificate) instead of envtest's.
    for_nodes: bool = False
    # A cgroup (created by the caller) for every process: the real-node lab's control
    # plane competes for CPU as one machine, not as dozens of threads at the root.
    cgroup: str | None = None


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    argv: list[str]


@dataclass
class ControlPlane:
    """etcd + kube-apiserver on free ports; a context manager that always cleans up."""

    config: ControlPlaneConfig = field(default_factory=ControlPlaneConfig)
    work_dir: Path = field(init=False)
    kubeconfig: Path = field(init=False)
    server: str = field(init=False)
    ca: CertificateAuthority = field(init=False)
    admin: CertPair = field(init=False)
    # The URL clients inside the cluster (kubelets, Pods' `kubernetes` Service) use.
    cluster_server: str = field(init=False)
    service_account_key: Path = field(init=False)
    assets: Path = field(init=False)
    _procs: list[_Proc] = field(default_factory=list, init=False)
    _owns_work_dir: bool = field(default=False, init=False)
    _relay: Forwarder | None = field(default=None, init=False)
    _stopped_apiserver: list[str] = field(default_factory=list, init=False)

    # -- lifecycle ----------------------------------------------------------------
    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        cfg = self.config
        assets = self.assets = cfg.assets or find_assets()
        if cfg.work_dir is None:
            self.work_dir = Path(tempfile.mkdtemp(prefix="metallb-cp-"))
            self._owns_work_dir = True
        else:
            self.work_dir = cfg.work_dir
            self.work_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._start(assets)
        except BaseException:
            self.stop()
            raise

    def _start(self, assets: Path) -> None:
        cfg = self.config
        pki = self.work_dir / "pki"
        self.ca = CertificateAuthority(pki)
        advertise = cfg.advertise_address or default_advertise_address()
        first_service_ip = str(next(ipaddress.ip_network(cfg.service_cidrs[0]).hosts()))
        sans = {"127.0.0.1", "::1", advertise, first_service_ip, *cfg.extra_sans}
        if cfg.bind_address not in ("0.0.0.0", "::"):
            sans.add(cfg.bind_address)
        serving = self.ca.issue(
            "apiserver", "kube-apiserver",
            dns_names=("localhost", "kubernetes", "kubernetes.default",
                       "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"),
            ip_addresses=tuple(sorted(sans)), server=True,
        )
        self.admin = self.ca.issue(
            "admin", "admin", organizations=("system:masters",), client=True
        )
        sa_key, sa_pub = write_service_account_key(pki)
        self.service_account_key = sa_key

        # Inside a namespace of its own every port is free; on the host, pick free ones.
        etcd_port, peer_port = (2379, 2380) if cfg.netns else (free_port(), free_port())
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        self._spawn("etcd", [
            str(assets / "etcd"),
            f"--data-dir={self.work_dir / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync",
            "--quota-backend-bytes=8589934592",
            "--log-level=warn",
        ])
        # etcd listens on the loopback of the control plane's namespace, if it has one.
        self._wait_http(f"{etcd_url}/health", "etcd", context=None, in_netns=True)

        host = cfg.bind_address
        port = cfg.secure_port or free_port("127.0.0.1" if host in ("0.0.0.0", "::") else host)
        url_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        self.server = f"https://{_bracket(url_host)}:{port}"
        self.cluster_server = f"https://{_bracket(advertise)}:{port}"
        if cfg.netns:
            self._relay = Forwarder(("127.0.0.1", 0), (url_host, port), target_ns=cfg.netns)
            self._relay.start()
            self.server = f"https://127.0.0.1:{self._relay.port}"
        self._spawn("kube-apiserver", [
            str(assets / "kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            f"--cert-dir={pki}",
            f"--secure-port={port}",
            f"--bind-address={host}",
            f"--advertise-address={advertise}",
            f"--tls-cert-file={serving.cert}",
            f"--tls-private-key-file={serving.key}",
            f"--client-ca-file={self.ca.cert_path}",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={sa_pub}",
            f"--service-account-signing-key-file={sa_key}",
            f"--service-cluster-ip-range={','.join(cfg.service_cidrs)}",
            "--allow-privileged=true",
            "--v=1",
            *self._mode_flags(),
            *cfg.extra_apiserver_flags,
        ])
        self.kubeconfig = self.work_dir / "kubeconfig"
        self.write_kubeconfig(self.kubeconfig, self.admin, user="admin")
        ctx = self.ssl_context()
        self._wait_http(f"{self.server}/readyz", "kube-apiserver", context=ctx)
        # /readyz passes before the bootstrap controller has created `default`.
        self._wait_http(f"{self.server}/api/v1/namespaces/default", "default ns", context=ctx)

    def _mode_flags(self) -> list[str]:
        if not self.config.for_nodes:
            return ["--authorization-mode=RBAC", "--disable-admission-plugins=ServiceAccount"]
        kubelet_client = self.ca.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                                       organizations=("system:masters",), client=True)
        return [
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            # Kubelets are reached by address: there is no DNS for node names here.
            "--kubelet-preferred-address-types=InternalIP",
            # No kube-proxy runs in the control plane's namespace, so a ClusterIP leads
            # nowhere from here: admission webhooks (and aggregated APIs) are called at a
            # Ready endpoint of their Service instead, a Pod address this namespace routes
            # to (kube-apiserver's EndpointServiceResolver, as in clusters whose control
            # plane is not on the Pod network).
            "--enable-aggregator-routing=true",
            f"--kubelet-client-certificate={kubelet_client.cert}",
            f"--kubelet-client-key={kubelet_client.key}",
        ]

    def start_controllers(self, cluster_cidrs: Sequence[str], node_mask_v4: int = 24,
                          node_mask_v6: int = 64) -> None:
        """kube-controller-manager (node IPAM, endpoint slices, workload and token
        controllers) and kube-scheduler; started after /readyz so RBAC's bootstrap
        roles exist when they first ask."""
        cfg = self.config
        kcm = self.issue_kubeconfig("system:kube-controller-manager",
                                    server=self.cluster_server)
        sched = self.issue_kubeconfig("system:kube-scheduler", server=self.cluster_server)
        self._spawn("kube-controller-manager", [
            str(self.assets / "kube-controller-manager"),
            f"--kubeconfig={kcm}",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={self.service_account_key}",
            f"--root-ca-file={self.ca.cert_path}",
            "--allocate-node-cidrs=true",
            f"--cluster-cidr={','.join(cluster_cidrs)}",
            f"--node-cidr-mask-size-ipv4={node_mask_v4}",
            f"--node-cidr-mask-size-ipv6={node_mask_v6}",
            f"--service-cluster-ip-range={','.join(cfg.service_cidrs)}",
            "--bind-address=127.0.0.1",
            "--v=1",
        ])
        self._spawn("kube-scheduler", [
            str(self.assets / "kube-scheduler"),
            f"--kubeconfig={sched}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--v=1",
        ])

    def stop(self) -> None:
        if self._relay is not None:
            self._relay.close()
            self._relay = None
        for proc in reversed(self._procs):
            if proc.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGTERM)
                try:
                    proc.popen.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.popen.pid, signal.SIGKILL)
                    proc.popen.wait(timeout=10)
        self._procs.clear()
        if self._owns_work_dir and not self.config.keep_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    # -- helpers ------------------------------------------------------------------
    def _spawn(self, name: str, argv: Sequence[str]) -> None:
        log = self.work_dir / f"{name}.log"
        run = list(argv)
        if self.config.netns:  # nsenter execs in place: the pid and PDEATHSIG stay ours
            run = ["nsenter", f"--net={NETNS_DIR}/{self.config.netns}", "--", *run]
        preexec = cgroups.joining(self.config.cgroup)
        with log.open("ab") as out:
            popen = subprocess.Popen(
                run, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=preexec,
            )
        self._procs.append(_Proc(name, popen, log, list(argv)))

    def stop_apiserver(self) -> None:
        """The API goes away (as in an upgrade): clients get connection refused."""
        (proc,) = [p for p in self._procs if p.name == "kube-apiserver"]
        self._procs.remove(proc)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.popen.pid, signal.SIGKILL)
        proc.popen.wait(timeout=10)
        self._stopped_apiserver = proc.argv

    def start_apiserver(self) -> None:
        """Back with the same flags, port and data; returns once /readyz passes."""
        argv, self._stopped_apiserver = self._stopped_apiserver, []
        assert argv, "stop_apiserver() first"
        self._spawn("kube-apiserver", argv)
        self._wait_http(f"{self.server}/readyz", "kube-apiserver", context=self.ssl_context())

    def _wait_http(self, url: str, what: str, context: ssl.SSLContext | None,
                   in_netns: bool = False) -> None:
        deadline = time.monotonic() + self.config.ready_timeout
        last = ""
        while time.monotonic() < deadline:
            for proc in self._procs:
                if proc.popen.poll() is not None:
                    raise ControlPlaneError(
                        f"{proc.name} exited with {proc.popen.returncode}:\n{self.tail(proc.name)}"
                    )
            try:
                if self._get_status(url, context, in_netns) == 200:
                    return
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            time.sleep(0.1)
        raise ControlPlaneError(f"{what} not ready at {url}: {last}\n{self.tail()}")

    def _get_status(self, url: str, context: ssl.SSLContext | None, in_netns: bool) -> int:
        def get() -> int:
            with urllib.request.urlopen(url, timeout=2, context=context) as resp:
                return int(resp.status)

        return run_in_ns(self.config.netns, get) if in_netns and self.config.netns else get()

    def tail(self, name: str | None = None, lines: int = 40) -> str:
        out = []
        for proc in self._procs:
            if name is None or proc.name == name:
                text = proc.log.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {proc.name} ---\n" + "\n".join(text))
        return "\n".join(out)

    def ssl_context(self, cert: CertPair | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca.cert_path))
        pair = cert or self.admin
        ctx.load_cert_chain(str(pair.cert), str(pair.key))
        return ctx

    def write_kubeconfig(
        self, path: Path, cert: CertPair, user: str, server: str | None = None
    ) -> Path:
        doc: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "lab", "cluster": {
                "server": server or self.server,
                "certificate-authority": str(self.ca.cert_path),
            }}],
            "users": [{"name": user, "user": {
                "client-certificate": str(cert.cert),
                "client-key": str(cert.key),
            }}],
            "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": user}}],
            "current-context": "lab",
        }
        path.write_text(yaml.safe_dump(doc))
        path.chmod(0o600)
        return path

    def issue_kubeconfig(
        self, user: str, groups: tuple[str, ...] = (), server: str | None = None
    ) -> Path:
        """A kubeconfig for another identity, e.g. a ServiceAccount user for RBAC tests."""
        stem = user.replace(":", "_")
        cert = self.ca.issue(stem, user, organizations=groups, client=True)
        return self.write_kubeconfig(self.work_dir / f"{stem}.kubeconfig", cert, user, server)

    def env(self) -> dict[str, str]:
        """Environment for child processes (kubectl, helm, operator) to use this cluster."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        return env

    def kubectl_cmd(self, *args: str) -> list[str]:
        return [find_tool("kubectl"), f"--kubeconfig={self.kubeconfig}", *args]

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            self.kubectl_cmd(*args), input=input, capture_output=True, text=True, check=False
        )
        if check and proc.returncode != 0:
            raise ControlPlaneError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}"
            )
        return proc

    def processes(self) -> Iterator[tuple[str, int]]:
        for proc in self._procs:
            yield proc.name, proc.popen.pid


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host

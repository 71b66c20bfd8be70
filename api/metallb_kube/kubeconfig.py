"""kubeconfig and in-cluster configuration: where the apiserver is and how to authenticate.

Why our own loader (decided for issue 12): the maintained loaders do not fit. The
`kubernetes` package's loader is synchronous (urllib3), imports the generated client
(~50 MB RSS) and writes `*-data` keys to temp files it removes only at exit; kopf's
login helper reads one context without exec plugins or `tls-server-name` and also goes
through temp files. This follows client-go's rules; its merge/selection part is a pure
function (`resolve_connection`) with table tests, and no decoded key touches a disk.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import ssl
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import yaml

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
SA_TOKEN = SA_DIR / "token"
EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
# An exec credential is renewed this long before it expires (at most a fifth of its life).
EXEC_RENEW_MARGIN = 60.0


class KubeconfigError(Exception):
    """A kubeconfig we cannot use; the message names the file, context or field."""


# -- kubeconfig: pure part ---------------------------------------------------------------


@dataclass(frozen=True)
class ExecPlugin:
    """A `users[].user.exec` stanza (client.authentication.k8s.io ExecCredential)."""

    command: str
    api_version: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    provide_cluster_info: bool = False
    cluster_info: Mapping[str, Any] = field(default_factory=dict)
    install_hint: str = ""


@dataclass(frozen=True)
class Connection:
    """Where the apiserver is and how to authenticate: data only (no I/O happened to build
    it from kubeconfig documents). `*_data` fields hold decoded PEM, kept in memory."""

    server: str
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    token: str | None = None
    token_file: str | None = None
    verify: bool = True
    ca_data: str | None = None
    cert_data: bytes | None = None
    key_data: bytes | None = None
    tls_server_name: str | None = None
    proxy_url: str | None = None
    exec_plugin: ExecPlugin | None = None
    namespace: str | None = None

    @classmethod
    async def load(cls, kubeconfig: str | None = None) -> Connection:
        """From a kubeconfig path (or an os.pathsep list), else $KUBECONFIG, else
        in-cluster, else ~/.kube/config (controller-runtime's order)."""
        return load_connection(kubeconfig)

    def ssl_context(self, cert_pem: bytes | None = None,
                    key_pem: bytes | None = None) -> ssl.SSLContext:
        """TLS for this connection; `cert_pem`/`key_pem` (from an exec plugin) replace the
        kubeconfig's client certificate."""
        ctx = ssl.create_default_context(cafile=self.ca_file, cadata=self.ca_data)
        cert = cert_pem or self.cert_data
        key = key_pem if cert_pem else self.key_data
        if cert and key:
            _load_cert_chain_from_memory(ctx, cert, key)
        elif self.cert_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


@dataclass(frozen=True)
class KubeconfigFile:
    """One parsed kubeconfig file; relative paths in it resolve against its directory."""

    path: PurePath
    doc: Mapping[str, Any]


@dataclass(frozen=True)
class Entry:
    """A named cluster, user or context and the file that defined it (first one wins)."""

    value: Mapping[str, Any]
    origin: PurePath


@dataclass(frozen=True)
class MergedKubeconfig:
    clusters: Mapping[str, Entry]
    users: Mapping[str, Entry]
    contexts: Mapping[str, Entry]
    current_context: str


def kubeconfig_paths(kubeconfig_env: str) -> list[str]:
    """$KUBECONFIG's files in order: empty entries dropped, repeats dropped (client-go)."""
    return list(dict.fromkeys(p for p in kubeconfig_env.split(os.pathsep) if p))


def _named(doc: Mapping[str, Any], section: str, item: str, path: PurePath
           ) -> list[tuple[str, Mapping[str, Any]]]:
    entries = doc.get(section) or []
    if not isinstance(entries, list):
        raise KubeconfigError(f"{path}: {section}: expected a list")
    out = []
    for i, e in enumerate(entries):
        if not isinstance(e, Mapping) or not isinstance(e.get("name"), str) or not e["name"]:
            raise KubeconfigError(f"{path}: {section}[{i}]: expected a mapping with a name")
        value = e.get(item) or {}
        if not isinstance(value, Mapping):
            raise KubeconfigError(f"{path}: {section}[{i}] ({e['name']}): {item}: "
                                  f"expected a mapping")
        out.append((e["name"], value))
    return out


def merge_kubeconfigs(files: Sequence[KubeconfigFile]) -> MergedKubeconfig:
    """kubectl's merge rules: for each map key (a cluster, user or context name) the first
    file that defines it wins, whole (no field-by-field merge); `current-context` comes
    from the first file that sets it."""
    sections: dict[str, dict[str, Entry]] = {"clusters": {}, "users": {}, "contexts": {}}
    current = ""
    for f in files:
        if not isinstance(f.doc, Mapping):
            raise KubeconfigError(f"{f.path}: expected a kubeconfig mapping")
        for section, item in (("clusters", "cluster"), ("users", "user"),
                              ("contexts", "context")):
            for name, value in _named(f.doc, section, item, f.path):
                sections[section].setdefault(name, Entry(value, f.path))
        if not current and f.doc.get("current-context"):
            current = str(f.doc["current-context"])
    return MergedKubeconfig(sections["clusters"], sections["users"], sections["contexts"],
                            current)


def _resolve(path: Any, origin: PurePath) -> str | None:
    if not path:
        return None
    p = PurePath(os.path.expanduser(str(path)))
    return str(p if p.is_absolute() else origin.parent / p)


def _b64(value: Any, where: str) -> bytes | None:
    if not value:
        return None
    try:
        return base64.b64decode(str(value), validate=False)
    except ValueError as exc:
        raise KubeconfigError(f"{where}: not base64: {exc}") from None


def _exec_plugin(spec: Mapping[str, Any], origin: PurePath, where: str,
                 cluster: Mapping[str, Any]) -> ExecPlugin:
    api_version = str(spec.get("apiVersion") or "")
    if api_version not in EXEC_API_VERSIONS:
        raise KubeconfigError(f"{where}: exec: apiVersion {api_version!r} is not supported "
                              f"(use {' or '.join(EXEC_API_VERSIONS)})")
    command = str(spec.get("command") or "")
    if not command:
        raise KubeconfigError(f"{where}: exec: command is required")
    mode = spec.get("interactiveMode")
    if mode is None and api_version.endswith("/v1"):
        raise KubeconfigError(f"{where}: exec: interactiveMode is required for {api_version}")
    if mode == "Always":
        # A controller has no terminal: a plugin that must prompt can never work here.
        raise KubeconfigError(f"{where}: exec: interactiveMode Always needs a terminal; "
                              f"this client never runs plugins interactively")
    if mode not in (None, "Never", "IfAvailable", "Always"):
        raise KubeconfigError(f"{where}: exec: interactiveMode {mode!r} is not one of "
                              f"Never, IfAvailable, Always")
    # client-go: a command with a path separator is relative to the kubeconfig's directory;
    # a bare name is looked up in $PATH.
    if os.sep in command and not PurePath(command).is_absolute():
        command = str(origin.parent / command)
    env = tuple((str(e.get("name")), str(e.get("value", ""))) for e in spec.get("env") or []
                if isinstance(e, Mapping) and e.get("name"))
    info: dict[str, Any] = {}
    if spec.get("provideClusterInfo"):
        info = {k: cluster[k] for k in ("server", "tls-server-name", "insecure-skip-tls-verify",
                                        "certificate-authority-data", "proxy-url")
                if k in cluster}
        ext = {e.get("name"): e.get("extension") for e in cluster.get("extensions") or []
               if isinstance(e, Mapping)}
        if "client.authentication.k8s.io/exec" in ext:
            info["config"] = ext["client.authentication.k8s.io/exec"]
    return ExecPlugin(command=command, api_version=api_version,
                      args=tuple(str(a) for a in spec.get("args") or []), env=env,
                      provide_cluster_info=bool(spec.get("provideClusterInfo")),
                      cluster_info=info, install_hint=str(spec.get("installHint") or ""))


def resolve_connection(files: Sequence[KubeconfigFile], context: str | None = None
                       ) -> Connection:
    """The Connection a kubeconfig (one file or several merged) selects: `context`, else
    the current context. Pure: paths are resolved but not read, `*-data` decoded."""
    merged = merge_kubeconfigs(files)
    origin = ", ".join(str(f.path) for f in files) or "kubeconfig"
    name = context or merged.current_context
    if not name:
        raise KubeconfigError(f"{origin}: current-context is not set (pass a context)")
    ctx = merged.contexts.get(name)
    if ctx is None:
        raise KubeconfigError(f"{origin}: context {name!r} not found")
    cluster_name = str(ctx.value.get("cluster") or "")
    cl = merged.clusters.get(cluster_name)
    if cl is None:
        raise KubeconfigError(f"{origin}: context {name!r}: cluster {cluster_name!r} not found")
    user_name = str(ctx.value.get("user") or "")
    us = merged.users.get(user_name) if user_name else None
    if user_name and us is None:
        raise KubeconfigError(f"{origin}: context {name!r}: user {user_name!r} not found")
    cluster, user = cl.value, us.value if us else {}
    cwhere = f"{cl.origin}: cluster {cluster_name!r}"
    uwhere = f"{us.origin if us else origin}: user {user_name!r}"
    server = str(cluster.get("server") or "").rstrip("/")
    if not server:
        raise KubeconfigError(f"{cwhere}: server is not set")
    if user.get("auth-provider"):
        raise KubeconfigError(f"{uwhere}: auth-provider plugins were removed from client-go; "
                              f"use an exec credential plugin")
    proxy = str(cluster.get("proxy-url") or "") or None
    if proxy and not proxy.startswith(("http://", "https://")):
        raise KubeconfigError(f"{cwhere}: proxy-url {proxy!r}: only http(s) proxies are "
                              f"supported")
    ca_data = _b64(cluster.get("certificate-authority-data"), cwhere)
    cert_data = _b64(user.get("client-certificate-data"), uwhere)
    key_data = _b64(user.get("client-key-data"), uwhere)
    insecure = bool(cluster.get("insecure-skip-tls-verify", False))
    ca_file = None if ca_data else _resolve(cluster.get("certificate-authority"), cl.origin)
    if insecure and (ca_data or ca_file):
        # client-go refuses this combination too: which one did the user mean?
        raise KubeconfigError(f"{cwhere}: insecure-skip-tls-verify and a certificate "
                              f"authority are both set")
    exec_spec = user.get("exec")
    return Connection(
        server=server,
        ca_file=ca_file,
        ca_data=ca_data.decode() if ca_data else None,
        cert_file=None if cert_data else _resolve(user.get("client-certificate"), us.origin)
        if us else None,
        key_file=None if key_data else _resolve(user.get("client-key"), us.origin)
        if us else None,
        cert_data=cert_data,
        key_data=key_data,
        token=str(user["token"]) if user.get("token") else None,
        token_file=_resolve(user.get("tokenFile"), us.origin) if us else None,
        verify=not insecure,
        tls_server_name=str(cluster.get("tls-server-name") or "") or None,
        proxy_url=proxy,
        exec_plugin=_exec_plugin(exec_spec, us.origin, uwhere, cluster)
        if us and isinstance(exec_spec, Mapping) else None,
        namespace=str(ctx.value.get("namespace") or "") or None,
    )


def in_cluster_connection(env: Mapping[str, str], sa_dir: Path = SA_DIR) -> Connection:
    """A Pod's connection: the `kubernetes` Service from the environment, the projected
    ServiceAccount token (re-read by `Authenticator`, the kubelet rotates it)."""
    host = env["KUBERNETES_SERVICE_HOST"]
    port = env.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:
        host = f"[{host}]"
    return Connection(server=f"https://{host}:{port}", ca_file=str(sa_dir / "ca.crt"),
                      token_file=str(sa_dir / "token"))


def parse_exec_credential(output: bytes, plugin: ExecPlugin, now: float) -> Credential:
    """A plugin's stdout -> Credential, checked as client-go checks it."""
    where = f"exec plugin {plugin.command}"
    try:
        doc = json.loads(output)
    except ValueError as exc:
        raise KubeconfigError(f"{where}: output is not JSON: {exc}") from None
    if not isinstance(doc, Mapping) or doc.get("kind") != "ExecCredential":
        raise KubeconfigError(f"{where}: output is not an ExecCredential")
    if doc.get("apiVersion") != plugin.api_version:
        raise KubeconfigError(f"{where}: answered apiVersion {doc.get('apiVersion')!r}, "
                              f"asked for {plugin.api_version}")
    status = doc.get("status")
    if not isinstance(status, Mapping):
        raise KubeconfigError(f"{where}: ExecCredential has no status")
    token = status.get("token") or None
    cert, key = status.get("clientCertificateData"), status.get("clientKeyData")
    if bool(cert) != bool(key):
        raise KubeconfigError(f"{where}: clientCertificateData and clientKeyData must come "
                              f"together")
    if not token and not cert:
        raise KubeconfigError(f"{where}: ExecCredential has neither token nor client "
                              f"certificate")
    expires: float | None = None
    stamp = status.get("expirationTimestamp")
    if stamp:
        try:
            expires = datetime.datetime.fromisoformat(str(stamp)).timestamp()
        except ValueError:
            raise KubeconfigError(f"{where}: expirationTimestamp {stamp!r} is not "
                                  f"RFC 3339") from None
    renew_at = None
    if expires is not None:
        renew_at = expires - min(EXEC_RENEW_MARGIN, max(0.0, expires - now) / 5)
    return Credential(token=str(token) if token else None,
                      cert_pem=str(cert).encode() if cert else None,
                      key_pem=str(key).encode() if key else None,
                      renew_at=renew_at, expires_at=expires)


def exec_info(plugin: ExecPlugin) -> str:
    """KUBERNETES_EXEC_INFO for the plugin: never interactive; cluster when asked."""
    spec: dict[str, Any] = {"interactive": False}
    if plugin.provide_cluster_info:
        spec["cluster"] = dict(plugin.cluster_info)
    return json.dumps({"apiVersion": plugin.api_version, "kind": "ExecCredential",
                       "spec": spec})


# -- kubeconfig: I/O ----------------------------------------------------------------------


def read_kubeconfig(path: str) -> KubeconfigFile:
    p = Path(path).expanduser()
    try:
        doc = yaml.safe_load(p.read_text()) or {}
    except OSError as exc:
        raise KubeconfigError(f"{p}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise KubeconfigError(f"{p}: invalid YAML: {' '.join(str(exc).split())}") from None
    return KubeconfigFile(p.absolute(), doc)


def load_connection(kubeconfig: str | None = None, context: str | None = None, *,
                    env: Mapping[str, str] | None = None, sa_dir: Path = SA_DIR,
                    home: Path | None = None) -> Connection:
    """An explicit path (or os.pathsep list: every file must exist), else $KUBECONFIG
    (missing files skipped, as kubectl does), else in-cluster, else ~/.kube/config."""
    env = os.environ if env is None else env
    if kubeconfig:
        files = [read_kubeconfig(p) for p in kubeconfig_paths(kubeconfig)]
    elif env.get("KUBECONFIG"):
        paths = [p for p in kubeconfig_paths(env["KUBECONFIG"]) if Path(p).expanduser().exists()]
        if not paths:
            raise KubeconfigError(f"none of the files in KUBECONFIG={env['KUBECONFIG']} exist")
        files = [read_kubeconfig(p) for p in paths]
    elif env.get("KUBERNETES_SERVICE_HOST") and (sa_dir / "token").exists():
        return in_cluster_connection(env, sa_dir)
    else:
        files = [read_kubeconfig(str((home or Path.home()) / ".kube" / "config"))]
    return resolve_connection(files, context)


def _load_cert_chain_from_memory(ctx: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """`SSLContext.load_cert_chain` reads only files: give it an anonymous memory file
    (memfd: never on a filesystem); without memfd or /proc, a private temp file removed
    as soon as it is loaded."""
    pem = cert_pem.rstrip(b"\n") + b"\n" + key_pem
    memfd = getattr(os, "memfd_create", None)
    if memfd is not None and os.path.isdir("/proc/self/fd"):
        fd = memfd("metallb-kube-cert", getattr(os, "MFD_CLOEXEC", 0))
        try:
            view = memoryview(pem)
            while view:
                view = view[os.write(fd, view):]
            ctx.load_cert_chain(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="metallb-kube-") as tmp:
        path = Path(tmp) / "client.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
            ctx.load_cert_chain(str(path))
        finally:
            path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Credential:
    """What one request authenticates with; `renew_at` (wall clock) is when to fetch a new
    one, ahead of `expires_at`."""

    token: str | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    renew_at: float | None = None
    expires_at: float | None = None

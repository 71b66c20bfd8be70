"""A small async Kubernetes REST client over one aiohttp session, and its kubeconfig loader.

Why not a generated client (kubernetes_asyncio): it deserializes every object into model
classes (slow at 10k Services), picks strategic-merge for dict patches, and importing it
costs ~50 MB RSS. We speak JSON: merge patches with `metadata.resourceVersion` give
optimistic concurrency (409 on a stale write), which callers retry.

Why our own kubeconfig loader (decided for issue 12): the maintained loaders do not fit.
The `kubernetes` package's loader is synchronous (urllib3), imports the generated client
(the RSS above) and writes `*-data` keys to temp files it removes only at exit; kopf's
login helper reads one context without exec plugins or `tls-server-name` and also goes
through temp files. The client is the hot path of both components, so it stays on
aiohttp; the loader is ~300 lines following client-go's rules, its merge/selection part a
pure function (`resolve_connection`) with table tests.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import os
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import yaml

from metallb_kube.http1 import ConnectionLost, Http1Pool

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
SA_TOKEN = SA_DIR / "token"
MERGE_PATCH = "application/merge-patch+json"
EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
# client-go re-reads a bound ServiceAccount token file every minute (the kubelet rotates it).
TOKEN_FILE_REREAD = 60.0
# An exec credential is renewed this long before it expires (at most a fifth of its life).
EXEC_RENEW_MARGIN = 60.0


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def gone(self) -> bool:
        return self.status == 410

    @property
    def unauthorized(self) -> bool:
        return self.status == 401


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


# -- credentials ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Credential:
    """What one request authenticates with; `renew_at` (wall clock) is when to fetch a new
    one, ahead of `expires_at`."""

    token: str | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    renew_at: float | None = None
    expires_at: float | None = None


async def run_exec_plugin(plugin: ExecPlugin, timeout: float = 60.0) -> bytes:
    """Run the plugin (its env on top of ours, no stdin: never interactive)."""
    env = dict(os.environ)
    env.update(plugin.env)
    env["KUBERNETES_EXEC_INFO"] = exec_info(plugin)
    try:
        proc = await asyncio.create_subprocess_exec(
            plugin.command, *plugin.args, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    except OSError as exc:
        hint = f" ({plugin.install_hint.strip()})" if plugin.install_hint else ""
        raise KubeconfigError(f"exec plugin {plugin.command}: cannot run: "
                              f"{exc.strerror or exc}{hint}") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise KubeconfigError(f"exec plugin {plugin.command}: no answer in {timeout:g} s"
                              ) from None
    if proc.returncode != 0:
        raise KubeconfigError(f"exec plugin {plugin.command}: exit {proc.returncode}: "
                              f"{err.decode(errors='replace').strip()[:500]}")
    return out


class Authenticator:
    """The current Credential of a Connection: static token and certificate; a token file
    re-read every `token_reread` seconds (bound ServiceAccount tokens rotate); an exec
    plugin re-run before its credential expires. `renew()` after a 401.

    `clock` is wall time (exec expiry is an RFC 3339 instant); `run_exec` and `read_file`
    are injectable for tests."""

    def __init__(self, conn: Connection, *, clock: Callable[[], float] = time.time,
                 token_reread: float = TOKEN_FILE_REREAD,
                 run_exec: Callable[[ExecPlugin], Awaitable[bytes]] = run_exec_plugin,
                 read_file: Callable[[str], str] = lambda p: Path(p).read_text()) -> None:
        self.conn = conn
        self._clock = clock
        self._token_reread = token_reread
        self._run_exec = run_exec
        self._read_file = read_file
        self._lock = asyncio.Lock()
        self._current: Credential | None = None
        self._token_read_at: float | None = None
        self.fetches = 0  # exec runs and token file reads, for tests and metrics

    def _due(self, cred: Credential | None, now: float) -> bool:
        if cred is None:
            return True
        if self.conn.token_file:
            # A clock stepped back counts as due too: the next read is never postponed.
            age = now - (self._token_read_at or 0.0)
            return age >= self._token_reread or age < 0
        if self.conn.token is None and self.conn.exec_plugin is not None:
            return cred.renew_at is not None and now >= cred.renew_at
        return False

    async def credential(self) -> Credential:
        cred = self._current
        if not self._due(cred, self._clock()):
            assert cred is not None
            return cred
        async with self._lock:
            if self._due(self._current, self._clock()):
                self._current = await self._fetch()
            assert self._current is not None
            return self._current

    async def renew(self, stale: Credential | None = None) -> Credential:
        """A fresh credential (after a 401 with `stale`): concurrent callers that saw the
        same stale one share one fetch."""
        async with self._lock:
            if self._current is None or stale is None or self._current is stale:
                self._current = await self._fetch()
            return self._current

    @property
    def renewable(self) -> bool:
        return bool(self.conn.token_file or (self.conn.exec_plugin and not self.conn.token))

    async def _fetch(self) -> Credential:
        conn = self.conn
        now = self._clock()
        # client-go: a static token wins over an exec plugin's (the plugin is not run).
        if conn.token_file or conn.token:
            token = conn.token
            if conn.token_file:
                token = self._read_file(conn.token_file).strip()
                self._token_read_at = now
                self.fetches += 1
                # Not an expiry: when to read the file again (kopf re-logins then too).
                return Credential(token=token, renew_at=now + self._token_reread)
            return Credential(token=token)
        if conn.exec_plugin is not None:
            out = await self._run_exec(conn.exec_plugin)
            self.fetches += 1
            return parse_exec_credential(out, conn.exec_plugin, self._clock())
        return Credential()


# -- client ---------------------------------------------------------------------------------


class KubeClient:
    """One connection pool; `limit` concurrent requests (the apiserver's APF decides
    fairness beyond that). Credentials come from an `Authenticator`: renewed before they
    expire, and once on a 401 (the request is then retried once)."""

    # A retired session (its client certificate was replaced) is closed this long after,
    # when its watches have ended on their own (server timeout + slack).
    RETIRED_SESSION_GRACE = 600.0

    def __init__(self, conn: Connection, limit: int = 32, user_agent: str = "metallb-py",
                 auth: Authenticator | None = None) -> None:
        self.conn = conn
        self.auth = auth or Authenticator(conn)
        self._limit = limit
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None
        self._session_cert: tuple[bytes | None, bytes | None] = (None, None)
        self._retired: list[tuple[float, aiohttp.ClientSession]] = []
        # Request/response calls go over our own HTTP/1.1 connections (half aiohttp's
        # CPU per call, which the operator pays per Service); watches and proxied
        # connections stay on aiohttp.
        self._pool: Http1Pool | None = None
        self._pool_cert: tuple[bytes | None, bytes | None] = (None, None)
        url = urlsplit(conn.server)
        self._direct = not conn.proxy_url and url.scheme in ("http", "https") \
            and url.hostname is not None
        self._host = url.hostname or ""
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._tls = url.scheme == "https"
        self._base = url.path.rstrip("/")

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _sess(self, cred: Credential) -> aiohttp.ClientSession:
        cert = (cred.cert_pem, cred.key_pem)
        if self._session is not None and not self._session.closed and cert != self._session_cert:
            # A new client certificate needs new TLS connections; requests in flight (watches)
            # finish on the old pool.
            self._retired.append((time.monotonic(), self._session))
            self._session = None
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._limit, ssl=self.conn.ssl_context(cred.cert_pem, cred.key_pem))
            self._session = aiohttp.ClientSession(
                connector=connector, read_bufsize=2**21, proxy=self.conn.proxy_url,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            )
            self._session_cert = cert
        now = time.monotonic()
        while self._retired and now - self._retired[0][0] > self.RETIRED_SESSION_GRACE:
            await self._retired.pop(0)[1].close()
        return self._session

    def _h1(self, cred: Credential) -> Http1Pool:
        cert = (cred.cert_pem, cred.key_pem)
        if self._pool is not None and cert != self._pool_cert:
            self._pool.close()  # a new client certificate needs new TLS connections
            self._pool = None
        if self._pool is None:
            self._pool = Http1Pool(
                self._host, self._port,
                self.conn.ssl_context(cred.cert_pem, cred.key_pem) if self._tls else None,
                server_hostname=self.conn.tls_server_name, limit=self._limit)
            self._pool_cert = cert
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        for _, sess in self._retired:
            await sess.close()
        self._retired.clear()
        if self._session is not None:
            await self._session.close()

    def _headers(self, cred: Credential, content_type: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": self._user_agent}
        if cred.token:
            headers["Authorization"] = f"Bearer {cred.token}"
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def _credential(self) -> Credential:
        try:
            return await self.auth.credential()
        except (KubeconfigError, OSError) as exc:
            raise ApiError(401, "Unauthorized", f"no credential: {exc}") from exc

    async def _renew(self, stale: Credential) -> Credential:
        try:
            return await self.auth.renew(stale)
        except (KubeconfigError, OSError) as exc:
            raise ApiError(401, "Unauthorized", f"no credential: {exc}") from exc

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
        read: bool = True,
    ) -> Any:
        """The response's JSON; None when `read` is False (a write whose answer the
        caller does not need: its body is not parsed)."""
        data = None if body is None else json.dumps(body, separators=(",", ":"))
        cred = await self._credential()
        for attempt in (1, 2):
            if self._direct:
                target = self._base + path + (f"?{urlencode(params)}" if params else "")
                try:
                    status, raw = await self._h1(cred).request(
                        method, target,
                        self._headers(cred, content_type if data is not None else None),
                        None if data is None else data.encode(), timeout)
                except (TimeoutError, OSError, ConnectionLost) as exc:
                    raise ApiError(0, "Unreachable", f"{method} {path}: {exc!r}") from exc
                if status == 401 and attempt == 1 and self.auth.renewable:
                    cred = await self._renew(cred)
                    continue
                break
            try:
                async with (await self._sess(cred)).request(
                    method, self.conn.server + path, params=params, data=data,
                    headers=self._headers(cred, content_type if data is not None else None),
                    timeout=aiohttp.ClientTimeout(total=timeout),
                    server_hostname=self.conn.tls_server_name,
                ) as resp:
                    raw = await resp.read()
                    status = resp.status
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise ApiError(0, "Unreachable", f"{method} {path}: {exc!r}") from exc
            if status == 401 and attempt == 1 and self.auth.renewable:
                cred = await self._renew(cred)
                continue
            break
        if status >= 400:
            try:
                doc = json.loads(raw)
                reason, message = str(doc.get("reason", "")), str(doc.get("message", ""))
            except (ValueError, AttributeError):
                reason, message = "", raw[:500].decode(errors="replace")
            raise ApiError(status, reason, message)
        return json.loads(raw) if raw and read else None

    async def get(self, path: str) -> Any:
        return await self.request("GET", path)

    async def create(self, path: str, body: Mapping[str, Any], read: bool = True) -> Any:
        return await self.request("POST", path, body=body, read=read)

    async def merge_patch(self, path: str, body: Mapping[str, Any], read: bool = True) -> Any:
        return await self.request("PATCH", path, body=body, content_type=MERGE_PATCH,
                                  read=read)

    async def delete(self, path: str) -> Any:
        return await self.request("DELETE", path)

    async def list_all(self, path: str, page: int = 500,
                       selector: Mapping[str, str] | None = None) -> tuple[list[Any], str]:
        """All items (paginated) and the list's resourceVersion, to start a watch at."""
        items: list[Any] = []
        cont = ""
        while True:
            params = {"limit": str(page), **(selector or {})}
            if cont:
                params["continue"] = cont
            doc = await self.request("GET", path, params=params, timeout=120)
            items.extend(doc.get("items") or [])
            meta = doc.get("metadata") or {}
            cont = meta.get("continue") or ""
            if not cont:
                return items, str(meta.get("resourceVersion", ""))

    async def watch(
        self, path: str, resource_version: str, timeout_seconds: int = 300,
        selector: Mapping[str, str] | None = None,
    ) -> AsyncIterator[tuple[str, Any]]:
        """Yield (type, object) from a watch; ends on server timeout. Raises ApiError(410)
        when the resourceVersion is too old (caller relists)."""
        params = {
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
            **(selector or {}),
        }
        cred = await self._credential()
        try:
            for attempt in (1, 2):
                async with (await self._sess(cred)).get(
                    self.conn.server + path, params=params, headers=self._headers(cred),
                    timeout=aiohttp.ClientTimeout(total=timeout_seconds + 30,
                                                  sock_read=timeout_seconds + 30),
                    server_hostname=self.conn.tls_server_name,
                ) as resp:
                    if resp.status == 401 and attempt == 1 and self.auth.renewable:
                        cred = await self._renew(cred)
                        continue
                    if resp.status >= 400:
                        raise ApiError(resp.status, "", (await resp.text())[:500])
                    async for line in resp.content:
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        kind = event.get("type")
                        obj = event.get("object") or {}
                        if kind == "ERROR":
                            raise ApiError(int(obj.get("code") or 500),
                                           str(obj.get("reason", "")),
                                           str(obj.get("message", "")))
                        yield str(kind), obj
                    return
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ApiError(0, "Unreachable", f"watch {path}: {exc!r}") from exc

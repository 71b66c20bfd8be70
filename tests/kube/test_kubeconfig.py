"""kubeconfig loading, pure part: kubectl's merge rules, context selection, exec
credentials and their renewal under a fake clock, in-memory client keys."""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
from pathlib import Path, PurePath
from typing import Any

import pytest

from metallb_kube.credentials import Authenticator
from metallb_kube.kubeconfig import (
    Connection,
    Credential,
    ExecPlugin,
    KubeconfigError,
    KubeconfigFile,
    exec_info,
    kubeconfig_paths,
    load_connection,
    merge_kubeconfigs,
    parse_exec_credential,
    resolve_connection,
)
from metallb_lab.pki import CertificateAuthority

pytestmark = pytest.mark.unit

V1 = "client.authentication.k8s.io/v1"
V1BETA1 = "client.authentication.k8s.io/v1beta1"


def kc(current: str | None = None, clusters: dict[str, dict[str, Any]] | None = None,
       users: dict[str, dict[str, Any]] | None = None,
       contexts: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "clusters": [{"name": n, "cluster": c} for n, c in (clusters or {}).items()],
        "users": [{"name": n, "user": u} for n, u in (users or {}).items()],
        "contexts": [{"name": n, "context": c} for n, c in (contexts or {}).items()],
    }
    if current is not None:
        doc["current-context"] = current
    return doc


def files(*docs: dict[str, Any]) -> list[KubeconfigFile]:
    return [KubeconfigFile(PurePath(f"/cfg/{i}/config"), d) for i, d in enumerate(docs)]


A = {"server": "https://a:6443"}
B = {"server": "https://b:6443"}
CTX_A = {"cluster": "a", "user": "u"}


# -- merge rules ---------------------------------------------------------------------------

MERGES = [
    pytest.param(
        [kc("one", {"c": A}), kc("two", {"c": B})],
        {"current": "one", "c": "https://a:6443"},
        id="first-file-wins-per-cluster-name-and-current-context"),
    pytest.param(
        [kc(None, {"c": A}), kc("two", {"c": B, "d": B})],
        {"current": "two", "c": "https://a:6443", "d": "https://b:6443"},
        id="current-context-from-first-file-that-sets-it"),
    pytest.param(
        [kc("", {}), kc("two", {"c": B})],
        {"current": "two", "c": "https://b:6443"},
        id="empty-current-context-does-not-count-as-set"),
    pytest.param(
        [kc("one", {"c": {"server": "https://a:6443"}}),
         kc(None, {"c": {"server": "https://b:6443", "tls-server-name": "x"}})],
        {"current": "one", "c": "https://a:6443", "c.tls-server-name": None},
        id="entries-are-not-merged-field-by-field"),
    pytest.param(
        [{}, kc("one", {"c": A})],
        {"current": "one", "c": "https://a:6443"},
        id="empty-file-is-ignored"),
]


@pytest.mark.parametrize(("docs", "expected"), MERGES)
def test_merge_rules(docs: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    merged = merge_kubeconfigs(files(*docs))
    assert merged.current_context == expected["current"]
    assert merged.clusters["c"].value["server"] == expected["c"]
    if "d" in expected:
        assert merged.clusters["d"].value["server"] == expected["d"]
    if "c.tls-server-name" in expected:
        assert merged.clusters["c"].value.get("tls-server-name") == expected["c.tls-server-name"]


def test_entries_remember_their_file_for_relative_paths() -> None:
    conn = resolve_connection(files(
        kc("ctx", users={"u": {"client-certificate": "u.crt", "client-key": "/abs/u.key",
                               "tokenFile": "tok"}}),
        kc(None, {"a": {"server": "https://a", "certificate-authority": "ca.crt"}},
           contexts={"ctx": CTX_A}),
    ))
    assert conn.cert_file == "/cfg/0/u.crt"  # relative to the file that defined the user
    assert conn.key_file == "/abs/u.key"
    assert conn.token_file == "/cfg/0/tok"
    assert conn.ca_file == "/cfg/1/ca.crt"  # relative to the file that defined the cluster


@pytest.mark.parametrize(("env", "paths"), [
    (f"a{os.pathsep}b", ["a", "b"]),
    (f"a{os.pathsep}{os.pathsep}b{os.pathsep}", ["a", "b"]),
    (f"a{os.pathsep}b{os.pathsep}a", ["a", "b"]),
    ("", []),
])
def test_kubeconfig_env_paths(env: str, paths: list[str]) -> None:
    assert kubeconfig_paths(env) == paths


# -- selection ------------------------------------------------------------------------------

PEM_CA = "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n"


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


RESOLVED = [
    pytest.param(
        kc("ctx", {"a": {**A, "tls-server-name": "kubernetes.default.svc",
                         "proxy-url": "http://proxy:3128",
                         "certificate-authority-data": b64(PEM_CA)}},
           {"u": {"token": "t0k"}}, {"ctx": {**CTX_A, "namespace": "ns1"}}),
        None,
        {"server": "https://a:6443", "tls_server_name": "kubernetes.default.svc",
         "proxy_url": "http://proxy:3128", "ca_data": PEM_CA, "ca_file": None,
         "token": "t0k", "verify": True, "namespace": "ns1"},
        id="tls-server-name-proxy-ca-data-token"),
    pytest.param(
        kc("ctx", {"a": {"server": "https://a:6443/", "insecure-skip-tls-verify": True}},
           {"u": {"client-certificate-data": b64("CERT"), "client-key-data": b64("KEY")}},
           {"ctx": CTX_A}),
        None,
        {"server": "https://a:6443", "verify": False, "cert_data": b"CERT",
         "key_data": b"KEY", "cert_file": None, "key_file": None},
        id="insecure-and-inline-client-cert"),
    pytest.param(
        kc("ctx", {"a": A, "b": B}, {"u": {}}, {"ctx": CTX_A, "other": {"cluster": "b"}}),
        "other",
        {"server": "https://b:6443", "token": None},
        id="explicit-context-wins-and-user-is-optional"),
    pytest.param(
        kc("ctx", {"a": A}, {"u": {"exec": {
            "apiVersion": V1, "command": "./bin/get-token", "args": ["--x"],
            "env": [{"name": "K", "value": "V"}], "interactiveMode": "Never",
            "provideClusterInfo": True}}}, {"ctx": CTX_A}),
        None,
        {"exec_plugin": ExecPlugin(command="/cfg/0/bin/get-token", api_version=V1,
                                   args=("--x",), env=(("K", "V"),),
                                   provide_cluster_info=True,
                                   cluster_info={"server": "https://a:6443"})},
        id="exec-command-with-separator-is-relative-to-the-file"),
    pytest.param(
        kc("ctx", {"a": A}, {"u": {"exec": {"apiVersion": V1BETA1, "command": "aws"}}},
           {"ctx": CTX_A}),
        None,
        {"exec_plugin": ExecPlugin(command="aws", api_version=V1BETA1)},
        id="exec-bare-command-from-path-v1beta1-needs-no-interactive-mode"),
]


@pytest.mark.parametrize(("doc", "context", "expected"), RESOLVED)
def test_resolve_connection(doc: dict[str, Any], context: str | None,
                            expected: dict[str, Any]) -> None:
    conn = resolve_connection(files(doc), context)
    assert {k: getattr(conn, k) for k in expected} == expected


REFUSED = [
    pytest.param(kc(None, {"a": A}, {}, {"ctx": CTX_A}), "current-context is not set",
                 id="no-current-context"),
    pytest.param(kc("nope", {"a": A}, {}, {"ctx": CTX_A}), "context 'nope' not found",
                 id="missing-context"),
    pytest.param(kc("ctx", {}, {"u": {}}, {"ctx": CTX_A}), "cluster 'a' not found",
                 id="missing-cluster"),
    pytest.param(kc("ctx", {"a": A}, {}, {"ctx": CTX_A}), "user 'u' not found",
                 id="missing-user"),
    pytest.param(kc("ctx", {"a": {"server": "https://a", "insecure-skip-tls-verify": True,
                                  "certificate-authority": "/ca"}}, {"u": {}}, {"ctx": CTX_A}),
                 "insecure-skip-tls-verify and a certificate authority",
                 id="insecure-with-ca"),
    pytest.param(kc("ctx", {"a": {**A, "proxy-url": "socks5://p:1080"}}, {"u": {}},
                    {"ctx": CTX_A}), "only http(s) proxies", id="socks-proxy"),
    pytest.param(kc("ctx", {"a": A}, {"u": {"exec": {"apiVersion": V1, "command": "x"}}},
                    {"ctx": CTX_A}), "interactiveMode is required", id="v1-without-mode"),
    pytest.param(kc("ctx", {"a": A}, {"u": {"exec": {"apiVersion": V1, "command": "x",
                                                     "interactiveMode": "Always"}}},
                    {"ctx": CTX_A}), "needs a terminal", id="interactive-always"),
    pytest.param(kc("ctx", {"a": A}, {"u": {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1alpha1", "command": "x"}}},
        {"ctx": CTX_A}), "v1alpha1' is not supported", id="v1alpha1"),
    pytest.param(kc("ctx", {"a": A}, {"u": {"auth-provider": {"name": "gcp"}}},
                    {"ctx": CTX_A}), "use an exec credential plugin", id="auth-provider"),
]


@pytest.mark.parametrize(("doc", "message"), REFUSED)
def test_unusable_kubeconfig_is_refused_with_a_reason(doc: dict[str, Any], message: str
                                                      ) -> None:
    with pytest.raises(KubeconfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve_connection(files(doc))


def test_kubeconfig_env_skips_missing_files_and_prefers_it_to_in_cluster(
        tmp_path: Path) -> None:
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("sa-token")
    first = tmp_path / "first"
    first.write_text(json.dumps(kc("ctx", {"a": A}, {"u": {"token": "t"}}, {"ctx": CTX_A})))
    env = {"KUBECONFIG": f"{tmp_path / 'missing'}{os.pathsep}{first}",
           "KUBERNETES_SERVICE_HOST": "10.0.0.1"}
    assert load_connection(env=env, sa_dir=sa).server == "https://a:6443"
    in_cluster = load_connection(env={"KUBERNETES_SERVICE_HOST": "fd00::1",
                                      "KUBERNETES_SERVICE_PORT": "6443"}, sa_dir=sa)
    assert in_cluster.server == "https://[fd00::1]:6443"
    assert in_cluster.token_file == str(sa / "token")


# -- exec credentials -----------------------------------------------------------------------

PLUGIN = ExecPlugin(command="get-token", api_version=V1)


def cred_json(status: dict[str, Any], api_version: str = V1) -> bytes:
    return json.dumps({"apiVersion": api_version, "kind": "ExecCredential",
                       "status": status}).encode()


# 2026-12-06T12:00:00Z
T0 = 1796558400.0

EXEC_OUTPUTS = [
    pytest.param(cred_json({"token": "abc"}), Credential(token="abc"), id="token-no-expiry"),
    pytest.param(cred_json({"token": "abc", "expirationTimestamp": "2026-12-06T13:00:00Z"}),
                 Credential(token="abc", renew_at=T0 + 3600 - 60, expires_at=T0 + 3600),
                 id="renewed-a-minute-before-expiry"),
    pytest.param(cred_json({"token": "abc", "expirationTimestamp": "2026-12-06T12:01:40Z"}),
                 Credential(token="abc", renew_at=T0 + 80, expires_at=T0 + 100),
                 id="short-lived-renewed-at-four-fifths"),
    pytest.param(cred_json({"clientCertificateData": "CERT", "clientKeyData": "KEY"}),
                 Credential(cert_pem=b"CERT", key_pem=b"KEY"), id="client-certificate"),
]


@pytest.mark.parametrize(("output", "expected"), EXEC_OUTPUTS)
def test_parse_exec_credential(output: bytes, expected: Credential) -> None:
    assert parse_exec_credential(output, PLUGIN, T0) == expected


@pytest.mark.parametrize(("output", "message"), [
    (b"not json", "not JSON"),
    (json.dumps({"kind": "Other"}).encode(), "not an ExecCredential"),
    (cred_json({"token": "a"}, V1BETA1), "asked for client.authentication.k8s.io/v1"),
    (cred_json({}), "neither token nor client certificate"),
    (cred_json({"clientCertificateData": "C"}), "must come together"),
    (cred_json({"token": "a", "expirationTimestamp": "tomorrow"}), "not RFC 3339"),
])
def test_bad_exec_output_is_refused(output: bytes, message: str) -> None:
    with pytest.raises(KubeconfigError, match=message):
        parse_exec_credential(output, PLUGIN, T0)


def test_exec_info_is_never_interactive_and_carries_the_cluster_when_asked() -> None:
    plain = json.loads(exec_info(PLUGIN))
    assert plain == {"apiVersion": V1, "kind": "ExecCredential",
                     "spec": {"interactive": False}}
    with_cluster = ExecPlugin(command="x", api_version=V1, provide_cluster_info=True,
                              cluster_info={"server": "https://a"})
    assert json.loads(exec_info(with_cluster))["spec"]["cluster"] == {"server": "https://a"}


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakePlugin:
    """Hands out token-1, token-2, ... each valid for `lifetime` seconds."""

    def __init__(self, clock: FakeClock, lifetime: float | None) -> None:
        self.clock, self.lifetime, self.runs = clock, lifetime, 0

    async def __call__(self, plugin: ExecPlugin) -> bytes:
        self.runs += 1
        status: dict[str, Any] = {"token": f"token-{self.runs}"}
        if self.lifetime is not None:
            import datetime as dt
            status["expirationTimestamp"] = dt.datetime.fromtimestamp(
                self.clock.now + self.lifetime, dt.UTC).isoformat().replace("+00:00", "Z")
        return cred_json(status)


# (seconds after the first fetch, token expected then)
RENEWALS = [
    pytest.param(600.0, [(0, "token-1"), (539, "token-1"), (540, "token-2"),
                         (1079, "token-2"), (1080, "token-3")], id="ten-minute-credential"),
    pytest.param(None, [(0, "token-1"), (10**6, "token-1")], id="no-expiry-kept"),
]


@pytest.mark.parametrize(("lifetime", "timeline"), RENEWALS)
async def test_exec_credential_renewed_before_expiry(
        lifetime: float | None, timeline: list[tuple[float, str]]) -> None:
    clock = FakeClock(T0)
    plugin = FakePlugin(clock, lifetime)
    auth = Authenticator(Connection(server="https://a", exec_plugin=PLUGIN), clock=clock,
                         run_exec=plugin)
    for at, token in timeline:
        clock.now = T0 + at
        assert (await auth.credential()).token == token, at


async def test_renew_after_401_runs_the_plugin_once_for_concurrent_callers() -> None:
    import asyncio

    clock = FakeClock(T0)
    plugin = FakePlugin(clock, None)
    auth = Authenticator(Connection(server="https://a", exec_plugin=PLUGIN), clock=clock,
                         run_exec=plugin)
    stale = await auth.credential()
    fresh = await asyncio.gather(*(auth.renew(stale) for _ in range(5)))
    assert {c.token for c in fresh} == {"token-2"}
    assert plugin.runs == 2


async def test_static_token_wins_over_exec_plugin() -> None:
    plugin = FakePlugin(FakeClock(T0), None)
    auth = Authenticator(Connection(server="https://a", token="static", exec_plugin=PLUGIN),
                         run_exec=plugin)
    assert (await auth.credential()).token == "static"
    assert plugin.runs == 0 and not auth.renewable


async def test_in_cluster_token_file_reread_every_minute(tmp_path: Path) -> None:
    """The kubelet rewrites the projected token; client-go re-reads it every minute."""
    token = tmp_path / "token"
    token.write_text("first\n")
    clock = FakeClock(1000.0)
    conn = load_connection(env={"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, sa_dir=tmp_path)
    auth = Authenticator(conn, clock=clock)
    assert (await auth.credential()).token == "first"
    token.write_text("second\n")
    clock.now = 1059.0
    assert (await auth.credential()).token == "first"
    clock.now = 1060.0
    assert (await auth.credential()).token == "second"
    token.write_text("third\n")
    clock.now = 1000.0  # stepped back: read again rather than wait
    assert (await auth.credential()).token == "third"
    token.write_text("fourth\n")
    assert (await auth.renew(await auth.credential())).token == "fourth"  # after a 401


# -- no key material on disk ----------------------------------------------------------------


@pytest.mark.parametrize("memfd", [True, False], ids=["memfd", "unlinked-temp-file"])
def test_inline_client_key_never_left_in_a_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, memfd: bool) -> None:
    ca = CertificateAuthority(tmp_path / "pki")
    pair = ca.issue("user", "user", client=True)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    if not memfd:
        monkeypatch.delattr(os, "memfd_create")
    conn = resolve_connection(files(kc("ctx", {"a": {
        "server": "https://a", "certificate-authority-data": b64(ca.cert_path.read_text())}},
        {"u": {"client-certificate-data": b64(pair.cert.read_text()),
               "client-key-data": b64(pair.key.read_text())}}, {"ctx": CTX_A})))
    ctx = conn.ssl_context()
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.get_ca_certs()[0]["subject"] == ((("commonName", "metallb-py-test-ca"),),)
    assert list(tmp.iterdir()) == []
    assert not [p for p in Path("/proc/self/fd").iterdir()
                if "metallb-kube" in os.path.realpath(p)]

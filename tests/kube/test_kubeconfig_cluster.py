"""kubeconfig loading against the real apiserver: exec credential plugins (a token from
the TokenRequest API, a client certificate from the lab CA), renewal on a 401 and at
expiry, two KUBECONFIG files merged, tls-server-name, proxy-url, insecure-skip-tls-verify,
rotating in-cluster tokens, and no key material left in files.

Who we are is asked of the apiserver itself (SelfSubjectReview), so each test proves
which credential was used, not only that some request passed."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from metallb_kube.client import ApiError, KubeClient
from metallb_kube.credentials import Authenticator
from metallb_kube.kubeconfig import load_connection
from metallb_lab.controlplane import ControlPlane
from metallb_lab.kube import Json

pytestmark = pytest.mark.cluster

V1 = "client.authentication.k8s.io/v1"

# The plugin: hands out the Nth line of a credentials file on its Nth run (the last one
# after that), logs its args, env and KUBERNETES_EXEC_INFO, and refuses to run without
# the env var the kubeconfig sets.
PLUGIN = """\
import json, os, sys
creds, log = sys.argv[1], sys.argv[2]
if os.environ.get("PLUGIN_SECRET") != "from-kubeconfig":
    sys.exit("PLUGIN_SECRET not passed")
with open(log, "a") as f:
    f.write(json.dumps({"args": sys.argv[1:],
                        "info": json.loads(os.environ["KUBERNETES_EXEC_INFO"])}) + "\\n")
runs = sum(1 for _ in open(log))
lines = open(creds).read().splitlines()
print(lines[min(runs, len(lines)) - 1])
"""


async def whoami(client: KubeClient) -> str:
    review = await client.create("/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                 {"apiVersion": "authentication.k8s.io/v1",
                                  "kind": "SelfSubjectReview"})
    return str(review["status"]["userInfo"]["username"])


def sa_token(cp: ControlPlane, namespace: str, name: str) -> str:
    """A real bound token from the TokenRequest API for a fresh ServiceAccount."""
    api = Json(cp)
    with contextlib.suppress(Exception):
        api.create(f"/api/v1/namespaces/{namespace}/serviceaccounts",
                   {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}})
    resp = api.create(f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
                      {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                       "spec": {"expirationSeconds": 3600}})
    return str(resp["status"]["token"])


def exec_credential(status: dict[str, Any]) -> str:
    return json.dumps({"apiVersion": V1, "kind": "ExecCredential", "status": status})


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, *, server: str, cluster: dict[str, Any],
                     user: dict[str, Any], current: str | None = "lab",
                     cluster_name: str = "lab", user_name: str = "u") -> Path:
    doc: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": {"server": server, **cluster}}],
        "users": [{"name": user_name, "user": user}] if user else [],
        "contexts": [{"name": "lab", "context": {"cluster": cluster_name,
                                                 "user": user_name}}],
    }
    if current is not None:
        doc["current-context"] = current
    path.write_text(yaml.safe_dump(doc))
    return path


class Plugin:
    def __init__(self, tmp: Path, credentials: list[str]) -> None:
        self.script = tmp / "plugin.py"
        self.script.write_text(PLUGIN)
        self.creds = tmp / "creds"
        self.creds.write_text("\n".join(credentials) + "\n")
        self.log = tmp / "plugin.log"

    def stanza(self) -> dict[str, Any]:
        return {"exec": {
            "apiVersion": V1, "command": sys.executable,
            "args": [str(self.script), str(self.creds), str(self.log)],
            "env": [{"name": "PLUGIN_SECRET", "value": "from-kubeconfig"}],
            "interactiveMode": "Never", "provideClusterInfo": True,
        }}

    @property
    def runs(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


def ca_stanza(cp: ControlPlane) -> dict[str, Any]:
    return {"certificate-authority-data": b64(cp.ca.cert_path)}


def admin_stanza(cp: ControlPlane) -> dict[str, Any]:
    return {"client-certificate": str(cp.admin.cert), "client-key": str(cp.admin.key)}


@contextlib.asynccontextmanager
async def client_for(path: Path, **auth: Any) -> AsyncIterator[KubeClient]:
    conn = load_connection(str(path))
    async with KubeClient(conn, auth=Authenticator(conn, **auth)) as client:
        yield client


async def test_exec_plugin_token_renewed_on_401(control_plane: ControlPlane, namespace: str,
                                                tmp_path: Path) -> None:
    """The first credential is refused (401): the plugin runs again, the request passes."""
    token = sa_token(control_plane, namespace, "exec-user")
    plugin = Plugin(tmp_path, [exec_credential({"token": "not-a-valid-token"}),
                               exec_credential({"token": token})])
    cfg = write_kubeconfig(tmp_path / "config", server=control_plane.server,
                           cluster=ca_stanza(control_plane), user=plugin.stanza())
    async with client_for(cfg) as client:
        assert await whoami(client) == f"system:serviceaccount:{namespace}:exec-user"
        assert await whoami(client) == f"system:serviceaccount:{namespace}:exec-user"
    assert len(plugin.runs) == 2
    info = plugin.runs[0]["info"]
    assert info["spec"]["interactive"] is False
    assert info["spec"]["cluster"]["server"] == control_plane.server


async def test_exec_plugin_rerun_when_its_credential_expires(
        control_plane: ControlPlane, namespace: str, tmp_path: Path) -> None:
    """expirationTimestamp honoured before the apiserver refuses anything (fake clock)."""
    first = sa_token(control_plane, namespace, "first")
    second = sa_token(control_plane, namespace, "second")
    plugin = Plugin(tmp_path, [
        exec_credential({"token": first, "expirationTimestamp": "2030-01-01T00:10:00Z"}),
        exec_credential({"token": second, "expirationTimestamp": "2030-01-01T00:20:00Z"})])
    cfg = write_kubeconfig(tmp_path / "config", server=control_plane.server,
                           cluster=ca_stanza(control_plane), user=plugin.stanza())
    now = [1893456000.0]  # 2030-01-01T00:00:00Z
    async with client_for(cfg, clock=lambda: now[0]) as client:
        assert await whoami(client) == f"system:serviceaccount:{namespace}:first"
        now[0] += 530  # 70 s before expiry: still the first
        assert await whoami(client) == f"system:serviceaccount:{namespace}:first"
        now[0] += 20  # 50 s before expiry: renewed ahead of it
        assert await whoami(client) == f"system:serviceaccount:{namespace}:second"
    assert len(plugin.runs) == 2


async def test_exec_plugin_client_certificate(control_plane: ControlPlane,
                                              tmp_path: Path) -> None:
    pair = control_plane.ca.issue("exec-cert", "exec-cert-user", client=True)
    plugin = Plugin(tmp_path, [exec_credential({
        "clientCertificateData": pair.cert.read_text(),
        "clientKeyData": pair.key.read_text()})])
    cfg = write_kubeconfig(tmp_path / "config", server=control_plane.server,
                           cluster=ca_stanza(control_plane), user=plugin.stanza())
    async with client_for(cfg) as client:
        assert await whoami(client) == "exec-cert-user"


async def test_two_kubeconfig_files_merged(control_plane: ControlPlane,
                                           tmp_path: Path) -> None:
    """File 1 names the context and cluster; file 2 brings the user (and a cluster of the
    same name pointing nowhere, and another current-context: both lose to file 1)."""
    pair = control_plane.ca.issue("merged", "merged-user", client=True)
    first = write_kubeconfig(tmp_path / "first", server=control_plane.server,
                             cluster=ca_stanza(control_plane), user={}, user_name="u")
    second = write_kubeconfig(
        tmp_path / "second", server="https://127.0.0.1:1", cluster={}, current="elsewhere",
        user={"client-certificate-data": b64(pair.cert), "client-key-data": b64(pair.key)})
    env = {"KUBECONFIG": os.pathsep.join([str(first), str(tmp_path / "absent"), str(second)])}
    conn = load_connection(env=env)
    assert conn.server == control_plane.server
    async with KubeClient(conn) as client:
        assert await whoami(client) == "merged-user"


@pytest.mark.parametrize(("name", "ok"), [
    ("kubernetes.default.svc", True),
    ("not-in-the-certificate.example", False),
], ids=["name-in-cert", "name-not-in-cert"])
async def test_tls_server_name_used_for_verification(
        control_plane: ControlPlane, tmp_path: Path, name: str, ok: bool) -> None:
    """The server is 127.0.0.1 (in the certificate too); the certificate is checked
    against tls-server-name instead, so a name it lacks must fail."""
    assert control_plane.server.startswith("https://127.0.0.1:")
    cfg = write_kubeconfig(tmp_path / "config", server=control_plane.server,
                           cluster={**ca_stanza(control_plane), "tls-server-name": name},
                           user=admin_stanza(control_plane))
    async with client_for(cfg) as client:
        if ok:
            assert await whoami(client) == "admin"
        else:
            with pytest.raises(ApiError, match="certificate verify failed") as err:
                await whoami(client)
            assert err.value.status == 0


@pytest.mark.parametrize("insecure", [True, False], ids=["insecure", "no-ca"])
async def test_insecure_skip_tls_verify(control_plane: ControlPlane, tmp_path: Path,
                                        insecure: bool) -> None:
    cfg = write_kubeconfig(tmp_path / "config", server=control_plane.server,
                           cluster={"insecure-skip-tls-verify": insecure},
                           user=admin_stanza(control_plane))
    async with client_for(cfg) as client:
        if insecure:
            assert await whoami(client) == "admin"
        else:
            with pytest.raises(ApiError, match="certificate verify failed"):
                await whoami(client)


async def test_proxy_url(control_plane: ControlPlane, tmp_path: Path) -> None:
    """An HTTP CONNECT proxy in the test counts the tunnels it opens."""
    tunnels: list[str] = []

    async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        w.close()

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        request = (await r.readuntil(b"\r\n\r\n")).decode()
        method, target, _ = request.split("\r\n", 1)[0].split(" ")
        if method != "CONNECT":
            w.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            w.close()
            return
        host, port = target.rsplit(":", 1)
        ur, uw = await asyncio.open_connection(host, int(port))
        tunnels.append(target)
        w.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(pipe(r, uw), pipe(ur, w))

    proxy = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = proxy.sockets[0].getsockname()[1]
    try:
        cfg = write_kubeconfig(tmp_path / "config", server=control_plane.server,
                               cluster={**ca_stanza(control_plane),
                                        "proxy-url": f"http://127.0.0.1:{port}"},
                               user=admin_stanza(control_plane))
        async with client_for(cfg) as client:
            assert await whoami(client) == "admin"
    finally:
        proxy.close()
    assert tunnels == [control_plane.server.removeprefix("https://")]


async def test_token_file_rotation_in_cluster(control_plane: ControlPlane, namespace: str,
                                              tmp_path: Path) -> None:
    """In-cluster: the token file is re-read every minute, so a token the kubelet rotated
    is picked up (the old one may be revoked at any time)."""
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    (sa / "ca.crt").write_bytes(control_plane.ca.cert_path.read_bytes())
    (sa / "token").write_text(sa_token(control_plane, namespace, "pod-a"))
    host, port = control_plane.server.removeprefix("https://").rsplit(":", 1)
    conn = load_connection(env={"KUBERNETES_SERVICE_HOST": host,
                                "KUBERNETES_SERVICE_PORT": port}, sa_dir=sa)
    now = [1000.0]
    async with KubeClient(conn, auth=Authenticator(conn, clock=lambda: now[0])) as client:
        assert await whoami(client) == f"system:serviceaccount:{namespace}:pod-a"
        (sa / "token").write_text(sa_token(control_plane, namespace, "pod-b"))
        now[0] += 59
        assert await whoami(client) == f"system:serviceaccount:{namespace}:pod-a"
        now[0] += 1
        assert await whoami(client) == f"system:serviceaccount:{namespace}:pod-b"


async def test_token_file_read_again_after_a_401(control_plane: ControlPlane, namespace: str,
                                                 tmp_path: Path) -> None:
    """A token the apiserver refuses (401) makes the client read the file at once, not a
    minute later. The file's successive contents are scripted: garbage first."""
    token = tmp_path / "token"
    token.write_text("x")
    contents = iter(["not-a-token", sa_token(control_plane, namespace, "pod-c")])
    reads: list[str] = []

    def read_file(path: str) -> str:
        assert path == str(token)
        reads.append(next(contents))
        return reads[-1]

    cfg = write_kubeconfig(tmp_path / "config", server=control_plane.server,
                           cluster=ca_stanza(control_plane), user={"tokenFile": "token"})
    conn = load_connection(str(cfg))
    async with KubeClient(conn, auth=Authenticator(conn, read_file=read_file)) as client:
        assert await whoami(client) == f"system:serviceaccount:{namespace}:pod-c"
    assert len(reads) == 2


async def test_inline_keys_never_written_to_files(control_plane: ControlPlane,
                                                  tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """client-key-data is loaded from memory: the temp dir stays empty, no fd of ours
    points at a file, during and after requests."""
    pair = control_plane.ca.issue("inline", "inline-user", client=True)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.setenv("TMPDIR", str(tmp))
    cfg = write_kubeconfig(tmp_path / "config", server=control_plane.server,
                           cluster=ca_stanza(control_plane),
                           user={"client-certificate-data": b64(pair.cert),
                                 "client-key-data": b64(pair.key)})
    key_text = pair.key.read_bytes()
    pair.key.unlink()  # the only copy left is in the kubeconfig
    async with client_for(cfg) as client:
        assert await whoami(client) == "inline-user"
        assert list(tmp.iterdir()) == []
        open_files = [os.path.realpath(p) for p in Path("/proc/self/fd").iterdir()]
        assert not [f for f in open_files if f.startswith(("/tmp/", str(tmp)))
                    and "metallb-kube" in f]
    assert list(tmp.iterdir()) == []
    leftovers = [p for p in Path(tempfile.gettempdir()).iterdir()
                 if p.is_file() and p.stat().st_size < 65536
                 and key_text.strip() in p.read_bytes()]
    assert leftovers == []

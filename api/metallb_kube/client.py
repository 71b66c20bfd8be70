"""A small async Kubernetes REST client over one aiohttp session.

Why not a generated client (kubernetes_asyncio): it deserializes every object into model
classes (slow at 10k Services), picks strategic-merge for dict patches, and importing it
costs ~50 MB RSS. We speak JSON: merge patches with `metadata.resourceVersion` give
optimistic concurrency (409 on a stale write), which callers retry.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

SA_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
MERGE_PATCH = "application/merge-patch+json"


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


@dataclass(frozen=True)
class Connection:
    server: str
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    token: str | None = None
    token_file: str | None = None
    verify: bool = True

    @classmethod
    async def load(cls, kubeconfig: str | None = None) -> Connection:
        """From a kubeconfig path, else $KUBECONFIG/~/.kube/config, else in-cluster.

        Our own loader (not kubernetes_asyncio's): importing a generated client costs
        ~50 MB RSS per process, and kopf imports every client it finds installed."""
        return load_connection(kubeconfig)

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


def _materialize(data_b64: str | None, path: str | None, base: Path, suffix: str) -> str | None:
    """kubeconfig `*-data` fields are base64 PEM: write them to a private temp file."""
    if data_b64:
        fd, name = tempfile.mkstemp(prefix="metallb-kube-", suffix=suffix)
        with os.fdopen(fd, "wb") as f:
            f.write(base64.b64decode(data_b64))
        return name
    if path:
        return str((base / path) if not Path(path).is_absolute() else Path(path))
    return None


def load_connection(kubeconfig: str | None = None) -> Connection:
    path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    if not path and SA_TOKEN.exists():
        host = os.environ["KUBERNETES_SERVICE_HOST"]
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if ":" in host:
            host = f"[{host}]"
        return Connection(server=f"https://{host}:{port}", ca_file=str(SA_TOKEN.parent / "ca.crt"),
                          token_file=str(SA_TOKEN))
    cfg_path = Path(path or Path.home() / ".kube" / "config")
    doc = yaml.safe_load(cfg_path.read_text()) or {}
    ctx_name = doc.get("current-context")
    ctx = next((c["context"] for c in doc.get("contexts", []) if c["name"] == ctx_name),
               None) or (doc.get("contexts") or [{"context": {}}])[0]["context"]
    cluster = next(c["cluster"] for c in doc.get("clusters", [])
                   if c["name"] == ctx.get("cluster"))
    user: dict[str, Any] = next(
        (u["user"] for u in doc.get("users", []) if u["name"] == ctx.get("user")), {})
    base = cfg_path.parent
    token = user.get("token")
    token_file = user.get("tokenFile")
    return Connection(
        server=str(cluster["server"]).rstrip("/"),
        ca_file=_materialize(cluster.get("certificate-authority-data"),
                             cluster.get("certificate-authority"), base, ".crt"),
        cert_file=_materialize(user.get("client-certificate-data"),
                               user.get("client-certificate"), base, ".crt"),
        key_file=_materialize(user.get("client-key-data"), user.get("client-key"), base, ".key"),
        token=token,
        token_file=str(base / token_file) if token_file else None,
        verify=not cluster.get("insecure-skip-tls-verify", False),
    )


class KubeClient:
    """One connection pool; `limit` concurrent requests (the apiserver's APF decides
    fairness beyond that)."""

    def __init__(self, conn: Connection, limit: int = 32, user_agent: str = "metallb-py") -> None:
        self.conn = conn
        self._limit = limit
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = conn.token
        self._token_read = 0.0

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _sess(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._limit, ssl=self.conn.ssl_context())
            self._session = aiohttp.ClientSession(
                connector=connector, read_bufsize=2**21,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": self._user_agent}
        if self.conn.token_file and time.monotonic() - self._token_read > 60:
            self._token = Path(self.conn.token_file).read_text().strip()
            self._token_read = time.monotonic()
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if content_type:
            headers["Content-Type"] = content_type
        return headers

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
        try:
            async with self._sess().request(
                method, self.conn.server + path, params=params, data=data,
                headers=self._headers(content_type if data is not None else None),
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ApiError(0, "Unreachable", f"{method} {path}: {exc!r}") from exc
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
        try:
            async with self._sess().get(
                self.conn.server + path, params=params, headers=self._headers(),
                timeout=aiohttp.ClientTimeout(total=timeout_seconds + 30,
                                              sock_read=timeout_seconds + 30),
            ) as resp:
                if resp.status >= 400:
                    raise ApiError(resp.status, "", (await resp.text())[:500])
                async for line in resp.content:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    kind = event.get("type")
                    obj = event.get("object") or {}
                    if kind == "ERROR":
                        raise ApiError(int(obj.get("code") or 500), str(obj.get("reason", "")),
                                       str(obj.get("message", "")))
                    yield str(kind), obj
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ApiError(0, "Unreachable", f"watch {path}: {exc!r}") from exc


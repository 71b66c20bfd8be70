"""A small async Kubernetes REST client: request/response calls over our own keep-alive
HTTP/1.1 connections (`metallb_kube.http1`), watches over one aiohttp session.

Why not a generated client (kubernetes_asyncio): it deserializes every object into model
classes (slow at 10k Services), picks strategic-merge for dict patches, and importing it
costs ~50 MB RSS. We speak JSON: merge patches with `metadata.resourceVersion` give
optimistic concurrency (409 on a stale write), which callers retry. Configuration and
credentials: `metallb_kube.kubeconfig`, `metallb_kube.credentials`.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp

from metallb_kube.credentials import Authenticator
from metallb_kube.http1 import ConnectionLost, Http1Pool
from metallb_kube.kubeconfig import Connection, Credential, KubeconfigError, load_connection

# Connection and load_connection: what a caller needs to make a client.
__all__ = ["MERGE_PATCH", "ApiError", "Connection", "KubeClient", "load_connection"]

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

    @property
    def unauthorized(self) -> bool:
        return self.status == 401


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

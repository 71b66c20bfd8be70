"""One HTTP port for Prometheus and the kubelet's probes (and optionally a second one,
the same over HTTPS):

    /metrics  Prometheus text format 0.0.4, as MetalLB's Go client writes it (every
              other path too, as MetalLB's probes expect)
    /livez    200 while every liveness check passes; else 503 and the kubelet restarts us
    /readyz   200 while every readiness check passes; else 503 and the Pod is not Ready

A check returns None when fine, or the reason it is not; failing bodies name each check
and reason, so `kubectl describe pod` (probe failure events) says why.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry

from metallb_kube.exposition import CONTENT_TYPE, generate

log = logging.getLogger(__name__)
Check = Callable[[], str | None]
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


@dataclass
class Heartbeat:
    """Beaten by a task on the event loop; old beats mean the loop is wedged (a probe
    served by another thread would otherwise answer 200 for a dead loop)."""

    max_age: float = 30.0
    clock: Callable[[], float] = time.monotonic
    last: float = field(init=False)

    def __post_init__(self) -> None:
        self.last = self.clock()

    def beat(self) -> None:
        self.last = self.clock()

    def check(self) -> str | None:
        age = self.clock() - self.last
        return f"event loop stalled for {age:.0f}s" if age > self.max_age else None

    async def run(self, period: float = 1.0) -> None:
        """The beating task (cancel it to stop)."""
        while True:
            self.beat()
            await asyncio.sleep(period)


@dataclass
class Health:
    live: dict[str, Check] = field(default_factory=dict)
    ready: dict[str, Check] = field(default_factory=dict)


def evaluate(checks: Mapping[str, Check]) -> tuple[bool, str]:
    """(all passed, body): one line per check, `name: ok` or `name: <reason>`."""
    lines, ok = [], True
    for name, check in checks.items():
        try:
            reason = check()
        except Exception as exc:  # a broken check is a failing check, never a crash
            reason = f"check raised {exc!r}"
        ok = ok and reason is None
        lines.append(f"{name}: {'ok' if reason is None else reason}")
    return ok, "\n".join(lines) + "\n"


def make_app(registry: CollectorRegistry, health: Health
             ) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        checks = {"/livez": health.live, "/readyz": health.ready}.get(path)
        if checks is None:
            # Text 0.0.4 whatever the Accept header asks: MetalLB's endpoints never
            # answer OpenMetrics, whose counters would all end in _total.
            data = generate([registry])
            headers = [("Content-Type", CONTENT_TYPE)]
            if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
                data = gzip.compress(data, compresslevel=1)
                headers.append(("Content-Encoding", "gzip"))
            start_response("200 OK", headers)
            return [data]
        ok, body = evaluate(checks)
        start_response("200 OK" if ok else "503 Service Unavailable",
                       [("Content-Type", "text/plain; charset=utf-8")])
        return [body.encode()]

    return app


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds
        return


class _Server6(_Server):
    address_family = socket.AF_INET6


@dataclass(frozen=True)
class TLSFiles:
    """PEM certificate (chain) and key, e.g. a kubernetes.io/tls Secret's tls.crt and
    tls.key mounted as files."""

    cert: str
    key: str


class Certificates:
    """The server's TLS context, loaded again when the files change: a Secret's volume is
    updated in place (a cert-manager renewal), without restarting the Pod."""

    def __init__(self, files: TLSFiles) -> None:
        self.files = files
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._ctx = self._load()  # bad files fail at start-up, not at the first scrape
        self._stamp = self._mtimes()

    def _mtimes(self) -> tuple[int, int]:
        return os.stat(self.files.cert).st_mtime_ns, os.stat(self.files.key).st_mtime_ns

    def _load(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.files.cert, self.files.key)
        return ctx

    def context(self) -> ssl.SSLContext:
        with self._lock:
            try:
                stamp = self._mtimes()
                if stamp != self._stamp:
                    self._ctx, self._stamp = self._load(), stamp
                    log.info("metrics certificate loaded", extra={
                        "event": "certLoaded", "reason": self.files.cert})
            except (OSError, ssl.SSLError) as exc:  # half-rotated: keep serving the old one
                log.warning("metrics certificate not reloaded", extra={
                    "event": "certError", "error": str(exc)})
            return self._ctx


HANDSHAKE_TIMEOUT = 10.0


class _TLSMixin:
    """TLS per connection, in the connection's own thread: a client that never finishes
    its handshake holds only that thread, never the accept loop."""

    certificates: Certificates
    RequestHandlerClass: Any

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            conn = self.certificates.context().wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return  # plain HTTP, a port scan, an untrusted client: nothing to answer
        try:
            conn.settimeout(30.0)
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            conn.close()


class _TLSServer(_TLSMixin, _Server):
    pass


class _TLSServer6(_TLSMixin, _Server6):
    pass


def serve(host: str, port: int, registry: CollectorRegistry, health: Health,
          tls: TLSFiles | None = None) -> WSGIServer:
    """Serve in a daemon thread; returns the server (its port, and shutdown()). With
    `tls`, HTTPS (the files are read now: a bad certificate raises here)."""
    certificates = Certificates(tls) if tls is not None else None
    v6 = ":" in host
    cls = (_Server6 if v6 else _Server) if tls is None else (_TLSServer6 if v6 else _TLSServer)
    server = make_server(host, port, make_app(registry, health), cls, _Quiet)
    if certificates is not None:
        server.certificates = certificates  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, name="https" if tls else "http",
                     daemon=True).start()
    return server

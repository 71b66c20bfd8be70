"""One HTTP port for Prometheus and the kubelet's probes:

    /metrics  Prometheus text format (every other path too, as MetalLB's probes expect)
    /livez    200 while every liveness check passes; else 503 and the kubelet restarts us
    /readyz   200 while every readiness check passes; else 503 and the Pod is not Ready

A check returns None when fine, or the reason it is not; failing bodies name each check
and reason, so `kubectl describe pod` (probe failure events) says why.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

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
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        checks = {"/livez": health.live, "/readyz": health.ready}.get(path)
        if checks is None:
            return metrics(environ, start_response)  # type: ignore[no-any-return]
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


def serve(host: str, port: int, registry: CollectorRegistry, health: Health) -> WSGIServer:
    """Serve in a daemon thread; returns the server (its port, and shutdown())."""
    server = make_server(host, port, make_app(registry, health),
                         _Server6 if ":" in host else _Server, _Quiet)
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server

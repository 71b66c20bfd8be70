"""The keep-alive HTTP/1.1 client: framing (length, chunked, close-delimited), reuse of
connections, the one retry on a stale keep-alive connection and no retry once an answer
began. Served by a small asyncio server on loopback whose behaviour each case scripts
(the real apiserver is exercised through KubeClient by every cluster-tier test)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from metallb_kube.http1 import ConnectionLost, Http1Pool

pytestmark = pytest.mark.unit

Handler = Callable[[int, bytes], bytes | None]  # (connection's request number, request) -> reply


class Server:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        n = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                req = head + await reader.readexactly(length)
                self.requests.append(req)
                reply = self.handler(n, req)
                n += 1
                if reply is None:  # close without answering
                    break
                writer.write(reply)
                await writer.drain()
                if b"Connection: close" in reply:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


Start = Callable[[Handler], Awaitable[tuple["Server", Http1Pool]]]


@pytest.fixture
async def serve() -> AsyncIterator[Start]:
    servers: list[asyncio.Server] = []
    pools: list[Http1Pool] = []

    async def start(handler: Handler) -> tuple[Server, Http1Pool]:
        s = Server(handler)
        srv = await asyncio.start_server(s.serve, "127.0.0.1", 0)
        servers.append(srv)
        port = srv.sockets[0].getsockname()[1]
        pool = Http1Pool("127.0.0.1", port, None)
        pools.append(pool)
        return s, pool

    yield start
    for p in pools:
        p.close()
    for srv in servers:
        srv.close()


def ok(body: bytes, extra: str = "") -> bytes:
    return (f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n").encode() + body


CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n1;ext=1\r\n,\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n")


@pytest.mark.parametrize(("reply", "want"), [
    (ok(b'{"a":1}'), (200, b'{"a":1}')),
    (CHUNKED, (200, b"hello, world")),
    (b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}", (404, b"{}")),
    (b"HTTP/1.1 204 No Content\r\n\r\n", (204, b"")),
])
async def test_framing(serve: Start, reply: bytes, want: tuple[int, bytes]) -> None:
    server, pool = await serve(lambda n, req: reply)
    assert await pool.request("GET", "/x", {}, None, 5) == want
    assert await pool.request("GET", "/x", {}, None, 5) == want
    assert server.connections == 1  # kept alive, reused


async def test_request_carries_method_target_headers_and_body(serve: Start) -> None:
    server, pool = await serve(lambda n, req: ok(b"{}"))
    await pool.request("PATCH", "/api/v1/x?a=b", {"Content-Type": "application/json"},
                       b'{"k":"v"}', 5)
    req = server.requests[0]
    assert req.startswith(b"PATCH /api/v1/x?a=b HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nContent-Type: application/json\r\n" in req
    assert b"\r\nContent-Length: 9\r\n" in req and req.endswith(b'\r\n\r\n{"k":"v"}')


async def test_connection_close_is_not_reused(serve: Start) -> None:
    server, pool = await serve(lambda n, req: ok(b"1", "Connection: close\r\n"))
    for _ in range(3):
        assert await pool.request("GET", "/", {}, None, 5) == (200, b"1")
    assert server.connections == 3


async def test_stale_keep_alive_connection_is_retried_once_afresh(serve: Start) -> None:
    # The server answers the first request of each connection, then closes it when the
    # next one comes: the client's idle connection is stale.
    server, pool = await serve(lambda n, req: ok(b"fine") if n == 0 else None)
    assert await pool.request("GET", "/", {}, None, 5) == (200, b"fine")
    assert await pool.request("PATCH", "/", {}, b"{}", 5) == (200, b"fine")
    assert server.connections == 2 and len(server.requests) == 3


async def test_no_answer_on_a_fresh_connection_is_an_error(serve: Start) -> None:
    server, pool = await serve(lambda n, req: None)
    with pytest.raises(ConnectionLost):
        await pool.request("POST", "/", {}, b"{}", 5)
    assert len(server.requests) == 1  # not sent twice


async def test_an_answer_cut_short_is_not_retried(serve: Start) -> None:
    server, pool = await serve(
        lambda n, req: b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\nabc")
    with pytest.raises(ConnectionLost):
        await pool.request("POST", "/", {}, b"{}", 5)
    assert len(server.requests) == 1


async def test_timeout(serve: Start) -> None:
    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)
    srv = await asyncio.start_server(never, "127.0.0.1", 0)
    pool = Http1Pool("127.0.0.1", srv.sockets[0].getsockname()[1], None)
    try:
        with pytest.raises(TimeoutError):
            await pool.request("GET", "/", {}, None, 0.2)
    finally:
        pool.close()
        srv.close()

"""Network-namespace plumbing for the lab: run commands in a namespace, create sockets
in one (per thread, with setns), and relay TCP between namespaces.

The relay is why no address is ever added to the host's own namespace: in the process
lab, speakers inside node namespaces reach the API server at https://127.0.0.1:6443 *of
their own namespace*; in the real-node cluster, the API server lives in a namespace of
its own on the lab LAN and tests reach it through a relay on the host's loopback.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/var/run/netns"
T = TypeVar("T")
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = ["ip", *(("-n", ns) if ns else ()), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")
    return proc


def in_ns(ns: str, argv: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def sysctl(ns: str, key: str, value: str) -> None:
    subprocess.run(in_ns(ns, ["sysctl", "-qw", f"{key}={value}"]), check=True)


def _setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def run_in_ns(ns: str, fn: Callable[[], T]) -> T:
    """Run `fn` in a short-lived thread that joined namespace `ns`; sockets it creates
    stay in that namespace for their whole life, whoever uses them afterwards."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            _setns(f"{NETNS_DIR}/{ns}")
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


class Forwarder(threading.Thread):
    """TCP relay between two network namespaces (None: the one this process runs in).

    `listen` is bound in `listen_ns`; every accepted connection is relayed to `target`,
    dialled from `target_ns`. The process lab listens inside node namespaces and dials
    the control plane here; the real-node cluster listens here and dials the control
    plane inside its own namespace."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int], *,
                 listen_ns: str | None = None, target_ns: str | None = None) -> None:
        super().__init__(name=f"fwd-{listen_ns or target_ns}", daemon=True)
        self.target = target
        self.target_ns = target_ns

        def listener() -> socket.socket:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(listen)
            s.listen(128)
            return s

        self.sock = run_in_ns(listen_ns, listener) if listen_ns else listener()
        self.port = int(self.sock.getsockname()[1])
        self._closed = False
        self._cut = False
        self._conns: set[tuple[socket.socket, socket.socket]] = set()

    def _dial(self) -> socket.socket:
        def connect() -> socket.socket:
            return socket.create_connection(self.target, timeout=5)

        return run_in_ns(self.target_ns, connect) if self.target_ns else connect()

    def run(self) -> None:
        while not self._closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            if self._cut:
                client.close()
                continue
            try:
                upstream = self._dial()
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            pair = (client, upstream)
            self._conns.add(pair)
            threading.Thread(target=self._relay, args=(pair,), daemon=True).start()

    def _relay(self, pair: tuple[socket.socket, socket.socket]) -> None:
        client, upstream = pair
        back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        back.start()
        _pump(client, upstream)
        back.join()
        for c in pair:  # both directions are done: release the descriptors
            c.close()
        self._conns.discard(pair)

    def cut(self) -> None:
        """A partition from the target: relayed connections are reset and new ones
        closed at once (the target is unreachable) until `restore()`."""
        self._cut = True
        self._reset_all()

    def restore(self) -> None:
        self._cut = False

    def _reset_all(self) -> None:
        for pair in list(self._conns):
            for c in pair:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes accept()
        with contextlib.suppress(OSError):
            self.sock.close()
        self._reset_all()

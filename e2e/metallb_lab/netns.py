"""Network-namespace plumbing for the lab: run commands in a namespace, create sockets
in one (per thread, with setns), and forward TCP from a namespace's loopback to the
control plane on the host's loopback.

The forwarder is why no address is ever added to the host's own namespace: speakers
inside node namespaces reach the API server at https://127.0.0.1:6443 *of their own
namespace*, and the lab relays those connections to the real apiserver.
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
    """127.0.0.1:`listen_port` inside namespace `ns` -> `target` in our own namespace."""

    def __init__(self, ns: str, listen_port: int, target: tuple[str, int]) -> None:
        super().__init__(name=f"fwd-{ns}", daemon=True)
        self.target = target

        def listener() -> socket.socket:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", listen_port))
            s.listen(64)
            return s

        self.sock = run_in_ns(ns, listener)
        self._closed = False
        self._conns: list[socket.socket] = []

    def run(self) -> None:
        while not self._closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            self._conns += [client, upstream]
            threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes accept()
        with contextlib.suppress(OSError):
            self.sock.close()
        for c in self._conns:
            with contextlib.suppress(OSError):
                c.close()

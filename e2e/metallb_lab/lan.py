"""The lab's LAN (a bridge in a namespace of its own, hosts as namespaces with a veth on
it) and the users' view of it (curl, neighbour tables, the 10 ms prober), shared by the
process lab (`netlab`) and the real-node cluster (`cluster`).

Only namespaces the lab creates carry addresses (198.18.0.0/15, fd00::/8); nothing is
added to the host's own namespace.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

from metallb_lab.netns import in_ns, ip


class Lan:
    """A LAN namespace with bridges, and the namespaces attached to it."""

    def __init__(self, prefix: str, bridges: Sequence[str] = ("br0",)) -> None:
        self.prefix = prefix
        self.ns = f"{prefix}-lan"
        self.bridges = tuple(bridges)
        self.created_ns: list[str] = []

    def setup(self) -> None:
        self.add_ns(self.ns)
        for br in self.bridges:
            ip("link", "add", br, "type", "bridge", ns=self.ns)
            ip("link", "set", br, "up", ns=self.ns)

    def add_ns(self, name: str) -> None:
        ip("netns", "add", name)
        self.created_ns.append(name)
        ip("link", "set", "lo", "up", ns=name)

    def attach(self, ns: str, ifname: str, addr4: str, addr6: str, bridge: str = "br0"
               ) -> str:
        """A veth from `ns` (named `ifname`, with both addresses) to `bridge`; returns
        the bridge-side port name."""
        peer = f"v{self.prefix[-5:]}{len(self.created_ns)}{ifname[-1]}"
        ip("link", "add", peer, "type", "veth", "peer", "name", ifname, "netns", ns,
           ns=self.ns)
        ip("link", "set", peer, "master", bridge, "up", ns=self.ns)
        ip("addr", "add", f"{addr4}/24", "dev", ifname, ns=ns)
        ip("addr", "add", f"{addr6}/64", "dev", ifname, "nodad", ns=ns)
        ip("link", "set", ifname, "up", ns=ns)
        return peer

    def teardown(self) -> None:
        for ns in reversed(self.created_ns):
            # Anything still running inside (e.g. a helper process) must not keep it.
            kill_namespace_processes(ns)
            ip("netns", "del", ns, check=False)
        self.created_ns.clear()


def kill_namespace_processes(ns: str) -> None:
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True,
                          check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


class NeighbourWatch:
    """Changes of a namespace's neighbour entry for one address, with wall-clock times
    (`ip -ts monitor neigh`): when did the client start sending to another MAC?"""

    def __init__(self, ns: str, address: str) -> None:
        self.address = address
        self.changes: list[tuple[float, str]] = []
        self._proc = subprocess.Popen(["ip", "-n", ns, "-ts", "monitor", "neigh"],
                                      stdout=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            words = line.split()
            # [2026-11-29T18:35:09.262358] 198.18.0.100 dev eth0 lladdr 5a:.. REACHABLE
            if len(words) > 5 and words[1] == self.address and "lladdr" in words:
                when = datetime.datetime.fromisoformat(words[0].strip("[]")).timestamp()
                self.changes.append((when, words[words.index("lladdr") + 1]))

    def moved_after(self, since: float, away_from: str) -> float | None:
        """Seconds from `since` (time.time()) until the entry first named another MAC."""
        return next((t - since for t, mac in list(self.changes)
                     if t >= since and mac != away_from), None)

    def close(self) -> None:
        self._proc.terminate()
        self._proc.wait(timeout=5)
        self._reader.join(timeout=5)


class HasNamespace(Protocol):
    @property
    def ns(self) -> str: ...


N = TypeVar("N", bound=HasNamespace)


class UsersView(Generic[N]):
    """What a client on the LAN sees. Subclasses set `client_ns` and `nodes`."""

    client_ns: str
    nodes: list[N]

    def curl(self, vip: str, timeout: float = 2.0, ns: str | None = None) -> str | None:
        host = f"[{vip}]" if ":" in vip else vip
        out = subprocess.run(in_ns(ns or self.client_ns,
                                   ["curl", "-s", "--max-time", str(timeout),
                                    f"http://{host}/"]),
                             capture_output=True, text=True, check=False)
        return out.stdout.strip() if out.returncode == 0 else None

    def neighbour_mac(self, vip: str, ns: str | None = None) -> str | None:
        out = ip("-j", "neigh", "show", vip, ns=ns or self.client_ns, check=False).stdout
        with contextlib.suppress(ValueError):
            for entry in json.loads(out or "[]"):
                if entry.get("lladdr"):
                    return str(entry["lladdr"])
        return None

    def node_by_mac(self, mac: str) -> N | None:
        for node in self.nodes:
            out = ip("-j", "link", "show", "eth0", ns=node.ns, check=False).stdout
            with contextlib.suppress(ValueError, IndexError):
                if json.loads(out)[0]["address"] == mac:
                    return node
        return None

    def prober(self, vip: str, duration: float, interval: float = 0.01,
               timeout: float = 0.1, ns: str | None = None) -> subprocess.Popen[str]:
        """Start the request-every-10-ms client in the client namespace."""
        return subprocess.Popen(
            in_ns(ns or self.client_ns, [sys.executable, "-m", "metallb_lab.prober", vip,
                                         f"--interval={interval}", f"--timeout={timeout}",
                                         f"--duration={duration}"]),
            stdout=subprocess.PIPE, text=True)

"""The BGP lab's router: BIRD 2 (or FRR, a second independent implementation) in a
network namespace on a lab's LAN, with a client namespace behind it.

    [client ns] eth0 198.18.64.2 --- eth1 198.18.64.1 [router ns] eth0 198.18.0.254 --+
                     fd00:40::2                fd00:40::1             fd00:18::fe    |
    [node ns] eth0 198.18.0.11 ... (the lab's nodes, peering with the router)  -- br0

It composes with either lab through their public pieces: the `Lan` (`NetLab.net`,
`Cluster.net`) and the nodes' namespaces and addresses. The nodes need a route back to
the client (`route_back`), as a real node's default route through the router.

    with BirdRouter(lab.net, config, work=lab.work) as router:
        router.route_back(node.ns for node in lab.nodes)
        router.wait_established(); router.next_hops("198.18.32.1/32"); router.curl(vip)

The pure part (configuration, parsers) is `metallb_lab.routerconf`. Teardown kills the
router and removes its namespaces, also after a failed start; its namespaces are also
registered with the Lan (whose teardown kills what runs in them). After a run killed
hard, `cleanup_stale()` (called by every new router and by `python -m
metallb_lab.cleanup`) removes routers whose owner process is gone.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from metallb_lab.frr import FRR
from metallb_lab.lan import Lan, kill_namespace_processes
from metallb_lab.netns import in_ns, ip, sysctl
from metallb_lab.routerconf import (
    Protocol,
    Route,
    RouterConfig,
    parse_bfd_sessions,
    parse_kernel_routes,
    parse_protocols,
    parse_routes,
    render_bird,
    render_frr_router,
)

RUN_DIR = Path("/var/run/metallb-py-bird")  # <owner pid>-<n>/: owner, namespaces, pid
ROUTER4, ROUTER6 = "198.18.0.254", "fd00:18::fe"
_counter = itertools.count(1)
T = TypeVar("T")


def client_net(index: int) -> tuple[str, str]:
    """The client network behind router `index` (router .1, client .2)."""
    return f"198.18.{64 + index}.", f"fd00:40:{index:x}::"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(directory: Path) -> list[str]:
    """Kill what runs in a router's namespaces, delete them and its directory."""
    done = []
    with contextlib.suppress(OSError):
        work = Path((directory / "work").read_text().strip())
        if work.is_dir() and work.name.startswith("router-"):
            shutil.rmtree(work, ignore_errors=True)
            done.append(f"dir {work}")
    with contextlib.suppress(OSError):
        for ns in (directory / "netns").read_text().split():
            kill_namespace_processes(ns)
            if ip("netns", "del", ns, check=False).returncode == 0:
                done.append(f"netns {ns}")
    shutil.rmtree(directory, ignore_errors=True)
    done.append(f"dir {directory}")
    return done


def cleanup_stale() -> list[str]:
    """Routers whose owner process is gone (a run killed hard)."""
    done: list[str] = []
    for directory in RUN_DIR.glob("*-*"):
        with contextlib.suppress(ValueError):
            if not _pid_alive(int(directory.name.split("-", 1)[0])):
                done += _remove(directory)
    with contextlib.suppress(OSError):
        RUN_DIR.rmdir()
    return done


def wait_until(cond: Callable[[], T | None], timeout: float, what: str,
               interval: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got is not None and got is not False:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} after {timeout}s")
        time.sleep(interval)


def link_local(ns: str, ifname: str = "eth0") -> str:
    """An interface's IPv6 link-local address (FRR as the router installs IPv6 routes
    through the nodes' link-local addresses)."""
    got = json.loads(ip("-6", "-j", "addr", "show", "dev", ifname, "scope", "link",
                        ns=ns).stdout or "[]")
    for link in got:
        for a in link.get("addr_info", []):
            if a.get("local"):  # entries of other families come as {}
                return str(a["local"])
    raise LookupError(f"{ns}: {ifname} has no link-local address")


def hop_namer(nodes: Iterable[tuple[str, str, str, str]]) -> Callable[[str], str]:
    """For (name, ns, ipv4, ipv6) nodes: the function naming the node a next hop
    belongs to (any of its addresses, link-local included); else the hop itself."""
    names: dict[str, str] = {}
    for name, ns, a4, a6 in nodes:
        names |= {a4: name, a6: name}
        with contextlib.suppress(LookupError, RuntimeError):
            names[link_local(ns)] = name
    return lambda hop: names.get(hop, hop)


class Router:
    """The namespaces and links; subclasses run the routing engine."""

    def __init__(self, lan: Lan, config: RouterConfig, *, index: int = 0,
                 work: Path | None = None, bridge: str = "br0") -> None:
        self.lan = lan
        self.config = config
        self.index = index
        self.bridge = bridge
        n = next(_counter)
        tag = f"{lan.prefix}-r{index}"
        self.ns = tag
        self.client_ns = f"{tag}c"
        self.state_dir = RUN_DIR / f"{os.getpid()}-{n}"
        self.port = f"vr{lan.prefix[-5:]}{n}"  # its bridge port in the LAN namespace
        self.work = Path(tempfile.mkdtemp(prefix=f"router-{index}-", dir=work))
        c4, c6 = client_net(index)
        self.gw4, self.gw6 = c4 + "1", c6 + "1"
        self.client4, self.client6 = c4 + "2", c6 + "2"
        self._routes_back: list[tuple[str, list[str]]] = []

    # -- lifecycle ------------------------------------------------------------------
    def __enter__(self: Any) -> Any:
        try:
            self.start()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.teardown()

    def start(self) -> None:
        cleanup_stale()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "netns").write_text(f"{self.ns} {self.client_ns}\n")
        (self.state_dir / "work").write_text(f"{self.work}\n")
        self._network()
        self.start_engine()

    def _network(self) -> None:
        c = self.config
        lan = self.lan
        for ns in (self.ns, self.client_ns):
            lan.add_ns(ns)
        port = self.port
        ip("link", "add", port, "type", "veth", "peer", "name", c.interface, "netns", self.ns,
           ns=lan.ns)
        ip("link", "set", port, "master", self.bridge, "up", ns=lan.ns)
        ip("addr", "add", f"{c.local4}/24", "dev", c.interface, ns=self.ns)
        ip("addr", "add", f"{c.local6}/64", "dev", c.interface, "nodad", ns=self.ns)
        ip("link", "set", c.interface, "up", ns=self.ns)
        ip("link", "add", "eth1", "netns", self.ns, "type", "veth", "peer", "eth0", "netns",
           self.client_ns)
        ip("addr", "add", f"{self.gw4}/24", "dev", "eth1", ns=self.ns)
        ip("addr", "add", f"{self.gw6}/64", "dev", "eth1", "nodad", ns=self.ns)
        ip("link", "set", "eth1", "up", ns=self.ns)
        ip("addr", "add", f"{self.client4}/24", "dev", "eth0", ns=self.client_ns)
        ip("addr", "add", f"{self.client6}/64", "dev", "eth0", "nodad", ns=self.client_ns)
        ip("link", "set", "eth0", "up", ns=self.client_ns)
        ip("route", "add", "default", "via", self.gw4, ns=self.client_ns)
        ip("-6", "route", "add", "default", "via", self.gw6, ns=self.client_ns)
        for key in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"):
            sysctl(self.ns, key, "1")
        # ECMP per flow (addresses and ports), so one client's connections spread.
        sysctl(self.ns, "net.ipv4.fib_multipath_hash_policy", "1")
        sysctl(self.ns, "net.ipv6.fib_multipath_hash_policy", "1")

    def route_back(self, namespaces: Iterable[str]) -> None:
        """Routes from the nodes to the client network through this router."""
        c4, c6 = client_net(self.index)
        for ns in namespaces:
            ip("route", "replace", f"{c4}0/24", "via", self.config.local4, ns=ns)
            ip("-6", "route", "replace", f"{c6}/64", "via", self.config.local6, ns=ns)
            if ns not in (n for n, _ in self._routes_back):
                self._routes_back.append((ns, [f"{c4}0/24", f"{c6}/64"]))

    def set_link(self, ns: str, up: bool, ifname: str = "eth0") -> None:
        """A node's link down or up. The kernel deletes the routes through a link that
        goes down: up again, the node gets its route back to the client here."""
        ip("link", "set", ifname, "up" if up else "down", ns=ns)
        if up and ns in (n for n, _ in self._routes_back):
            self.route_back([ns])

    def teardown(self) -> None:
        with contextlib.suppress(Exception):
            self.stop_engine()
        for ns, nets in self._routes_back:
            for net in nets:
                ip("route", "del", net, ns=ns, check=False)
        self._routes_back.clear()
        # deleting the namespace deletes the veth only eventually: a next router on the
        # LAN must not find the port still there
        ip("link", "del", self.port, ns=self.lan.ns, check=False)
        for ns in (self.client_ns, self.ns):
            kill_namespace_processes(ns)
            ip("netns", "del", ns, check=False)
            if ns in self.lan.created_ns:
                self.lan.created_ns.remove(ns)
        shutil.rmtree(self.state_dir, ignore_errors=True)
        shutil.rmtree(self.work, ignore_errors=True)
        with contextlib.suppress(OSError):
            RUN_DIR.rmdir()

    # -- the engine (subclasses) ----------------------------------------------------
    def start_engine(self) -> None:
        raise NotImplementedError

    def stop_engine(self) -> None:
        raise NotImplementedError

    def established(self) -> set[str]:
        """Addresses of the peers whose session is established."""
        raise NotImplementedError

    def bfd_up(self) -> set[str]:
        """Addresses of the peers whose BFD session is up, as the BGP side sees it."""
        raise NotImplementedError

    def logs(self) -> str:
        raise NotImplementedError

    # -- what the router's kernel does --------------------------------------------
    def kernel_routes(self, *selector: str) -> dict[str, frozenset[str]]:
        """Next hops per destination from `ip route show <selector>` (both families)."""
        out: dict[str, frozenset[str]] = {}
        for fam in ("-4", "-6"):
            text = ip(fam, "-j", "route", "show", *selector, ns=self.ns).stdout
            out.update(parse_kernel_routes(text))
        return out

    def next_hops(self, prefix: str) -> frozenset[str]:
        """The kernel's next hops for exactly `prefix` (empty: no route)."""
        fam = "-6" if ":" in prefix else "-4"
        text = ip(fam, "-j", "route", "show", "exact", prefix, ns=self.ns).stdout
        return next(iter(parse_kernel_routes(text).values()), frozenset())

    def wait_next_hops(self, prefix: str, expected: Iterable[str], timeout: float = 30.0,
                       key: Callable[[str], str] = str) -> None:
        """Until the kernel's next hops for `prefix`, each mapped by `key` (e.g. to
        the node it belongs to: `hop_namer`), are `expected`."""
        want = frozenset(expected)

        def have() -> frozenset[str]:
            return frozenset(map(key, self.next_hops(prefix)))

        try:
            wait_until(lambda: have() == want, timeout, f"{prefix} next hops {sorted(want)}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}: have {sorted(self.next_hops(prefix))}\n"
                               f"{self.logs()[-3000:]}") from None

    def engine_route_count(self, proto: str) -> int:
        """How many routes of protocol `proto` (bird, bgp) the kernel has."""
        n = 0
        for fam in ("-4", "-6"):
            text = ip(fam, "route", "show", "proto", proto, ns=self.ns).stdout
            n += sum(1 for line in text.splitlines() if line and not line[0].isspace())
        return n

    def wait_established(self, addresses: Iterable[str] | None = None, timeout: float = 30.0
                         ) -> None:
        """Until the sessions with `addresses` (default: every peer) are established and
        those with BFD see it up: FRR as the router ignores a BFD down that comes
        before its BGP side saw the session up (measured), so a test that fails a
        node right after the session came up must wait for this."""
        want = set(addresses) if addresses is not None else {p.address
                                                             for p in self.config.peers}
        want_bfd = {p.address for p in self.config.peers if p.bfd and p.address in want}

        def ready() -> bool:
            return want <= self.established() and want_bfd <= self.bfd_up()

        try:
            wait_until(ready, timeout, f"sessions with {sorted(want)}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}: established {sorted(self.established())}, BFD up "
                               f"{sorted(self.bfd_up())}\n{self.logs()[-3000:]}") from None

    # -- the client behind it -----------------------------------------------------
    def curl(self, vip: str, timeout: float = 2.0) -> str | None:
        host = f"[{vip}]" if ":" in vip else vip
        out = subprocess.run(in_ns(self.client_ns, ["curl", "-s", "--max-time", str(timeout),
                                                    f"http://{host}/"]),
                             capture_output=True, text=True, check=False)
        return out.stdout.strip() if out.returncode == 0 else None


class BirdRouter(Router):
    """BIRD 2 as the router."""

    def __init__(self, lan: Lan, config: RouterConfig, **kw: Any) -> None:
        super().__init__(lan, config, **kw)
        self.socket = self.work / "bird.ctl"
        self.conf_path = self.work / "bird.conf"
        self.log_path = self.work / "bird.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _render(self) -> str:
        return render_bird(_with_log(self.config, str(self.log_path)))

    def start_engine(self) -> None:
        self.conf_path.write_text(self._render())
        check = subprocess.run(["bird", "-p", "-c", str(self.conf_path)], capture_output=True,
                               text=True, check=False)
        if check.returncode != 0:
            raise RuntimeError(f"bird.conf rejected: {check.stderr}\n{self.conf_path.read_text()}")
        # -f: in the foreground, so the process is ours to wait for and kill
        with (self.work / "bird.out").open("ab") as out:
            self.proc = subprocess.Popen(
                in_ns(self.ns, ["bird", "-f", "-c", str(self.conf_path), "-s",
                                str(self.socket), "-P", str(self.state_dir / "bird.pid")]),
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        wait_until(lambda: self.socket.exists() and self._birdc_ok(), 10, "bird's socket")

    def _birdc_ok(self) -> bool:
        return subprocess.run(["birdc", "-s", str(self.socket), "show", "status"],
                              capture_output=True, check=False).returncode == 0

    def stop_engine(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def reconfigure(self, config: RouterConfig) -> None:
        """A new configuration, applied by BIRD in place (`birdc configure`); sessions
        whose options changed restart."""
        self.config = config
        self.conf_path.write_text(self._render())
        out = self.birdc("configure")
        if "Reconfigured" not in out and "Reconfiguration in progress" not in out:
            raise RuntimeError(f"birdc configure: {out}")

    def birdc(self, *args: str) -> str:
        proc = subprocess.run(["birdc", "-s", str(self.socket), *args], capture_output=True,
                              text=True, check=False, timeout=30)
        if proc.returncode != 0:
            raise RuntimeError(f"birdc {' '.join(args)}: {proc.stdout}{proc.stderr}")
        return proc.stdout

    def protocols(self) -> dict[str, Protocol]:
        return parse_protocols(self.birdc("show", "protocols"))

    def established(self) -> set[str]:
        up = {name for name, p in self.protocols().items() if p.established}
        return {p.address for p in self.config.peers if p.name in up}

    def bfd_up(self) -> set[str]:
        if not any(p.bfd for p in self.config.peers):
            return set()
        sessions = parse_bfd_sessions(self.birdc("show", "bfd", "sessions"))
        return {addr for addr, state in sessions.items() if state == "Up"}

    def routes(self, prefix: str | None = None) -> dict[str, list[Route]]:
        """BIRD's paths (`show route all`), per prefix; `prefix`: exactly that one."""
        args = ["show", "route", *(("for", prefix) if prefix else ()), "all"]
        got = parse_routes(self.birdc(*args))
        return {k: v for k, v in got.items() if prefix is None or k == prefix}

    def logs(self) -> str:
        parts = [self.log_path.read_text(errors="replace") if self.log_path.exists() else ""]
        with contextlib.suppress(RuntimeError, OSError, subprocess.TimeoutExpired):
            parts.append(self.birdc("show", "protocols", "all"))
        return "\n".join(parts)


class FrrRouter(Router):
    """FRR as the router: the same role, another BGP and BFD implementation."""

    def __init__(self, lan: Lan, config: RouterConfig, **kw: Any) -> None:
        super().__init__(lan, config, **kw)
        self.frr: FRR | None = None

    def start_engine(self) -> None:
        self.frr = FRR(self.ns, render_frr_router(self.config), name=f"router-{self.ns}",
                       log_dir=self.work)
        self.frr.start()

    def stop_engine(self) -> None:
        frr, self.frr = self.frr, None
        if frr is not None:
            frr.stop()

    def _frr(self) -> FRR:
        assert self.frr is not None, "not started"
        return self.frr

    def established(self) -> set[str]:
        out: set[str] = set()
        for fam in ("ipv4", "ipv6"):
            got = self._frr().vtysh_json(f"show bgp {fam} unicast summary json")
            for addr, peer in (got.get("peers") or {}).items():
                if peer.get("state") == "Established":
                    out.add(addr)
        return out

    def bfd_up(self) -> set[str]:
        got = self._frr().vtysh_json("show bgp neighbors json")
        return {addr for addr, n in got.items() if isinstance(n, dict)
                and (n.get("peerBfdInfo") or {}).get("status") == "Up"}

    def bgp_route(self, prefix: str) -> dict[str, Any]:
        fam = "ipv6" if ":" in prefix else "ipv4"
        got: dict[str, Any] = self._frr().vtysh_json(f"show bgp {fam} unicast {prefix} json")
        return got

    def logs(self) -> str:
        return self.frr.logs() if self.frr is not None else ""


def _with_log(c: RouterConfig, path: str) -> RouterConfig:
    return replace(c, log_file=path)

"""FRR (Debian's zebra, bgpd and bfdd) run by the lab inside a network namespace: the
speaker's routing engine in the netns tier, or a router peering with the nodes.

    with FRR(ns="mlbab12-r", config=ROUTER_CONF) as router:
        router.vtysh("show bgp summary")            # text; -c per argument
        router.vtysh_json("show bgp ipv4 unicast json")
        router.apply_file("router bgp 64512\\n ...")  # one `vtysh -f` batch
        router.freeze(); router.thaw()              # SIGSTOP / SIGCONT (all daemons)
        router.kill()                               # SIGKILL: FRR lost, as in a crash
        router.start()                              # again, same pathspace, initial config
    # __exit__ = stop(): SIGTERM, then SIGKILL; nothing is left behind

Public API (stable): `FRR(ns, config="", *, name=None, daemons=DAEMONS, bgp_port=179,
log_dir=None)`, attributes `pathspace`, `socket_dir` (what `vtysh --vty_socket` and the
speaker's `--frr-socket-dir` take), `ns`, `log_path`; methods `start()`, `vtysh(*commands)
-> str`, `vtysh_json(command) -> Any`, `apply_file(text) -> str`, `running_config()`,
`pids() -> dict[str, int]`, `alive() -> bool`, `stop(timeout)`, `kill()`, `freeze(*daemons)`,
`thaw(*daemons)`, `logs() -> str`; module functions `vtysh_argv(socket_dir)` and
`cleanup_stale()`. `FRRError` is raised when vtysh fails (its text has FRR's message).

Each instance has its own FRR pathspace (`-N mlbfrr-<owner pid>-<n>`): sockets and pid
files in /var/run/frr/<pathspace>/, so any number of instances coexist on the host (and
two in one namespace with different `bgp_port`s). No TCP vty port is opened (`-P 0`).
Daemons run in the foreground, each in its own session, logging to `log_path`.

Cleanup: `stop()` (and `__exit__`, also after a failed start) kills every daemon and
removes the pathspace directory. After a run killed hard, `cleanup_stale()` (called by
every new instance and by `python -m metallb_lab.cleanup`) kills the daemons of
pathspaces whose owner process is gone; killing every process of a namespace (the
lab's teardown) also ends them.
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
from pathlib import Path
from typing import Any

from metallb_lab.netns import in_ns
from metallb_speaker.frr.run import daemon_argv

RUN_DIR = Path("/var/run/frr")
VTYSH = "vtysh"
DAEMONS = ("zebra", "bgpd", "bfdd")
PREFIX = "mlbfrr-"
_counter = itertools.count(1)


class FRRError(RuntimeError):
    pass


def vtysh_argv(socket_dir: Path | str) -> list[str]:
    """vtysh talking to the daemons whose sockets are in `socket_dir`."""
    return [VTYSH, "--vty_socket", str(socket_dir)]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _kill_pathspace(directory: Path) -> list[str]:
    """SIGKILL the daemons of one pathspace (pid files, checked against their command
    line so a reused pid is never hit) and remove its directory."""
    done = []
    for pid_file in directory.glob("*.pid"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text().strip())
            if f"-N {directory.name}" in _cmdline(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
                    os.kill(pid, signal.SIGKILL)
                done.append(f"frr {pid_file.stem} {pid}")
    shutil.rmtree(directory, ignore_errors=True)
    done.append(f"dir {directory}")
    return done


def _owner(name: str) -> int | None:
    try:
        return int(name.removeprefix(PREFIX).split("-", 1)[0])
    except ValueError:
        return None


def cleanup_stale() -> list[str]:
    """Daemons and directories of instances whose owner process is gone (their
    pathspaces, and their log directories in the temporary directory)."""
    done: list[str] = []
    for directory in RUN_DIR.glob(PREFIX + "*"):
        owner = _owner(directory.name)
        if owner is not None and not _pid_alive(owner):
            done += _kill_pathspace(directory)
    for directory in Path(tempfile.gettempdir()).glob(PREFIX + "*"):
        owner = _owner(directory.name)
        if owner is not None and not _pid_alive(owner) and directory.is_dir():
            shutil.rmtree(directory, ignore_errors=True)
            done.append(f"dir {directory}")
    return done


class FRR:
    def __init__(self, ns: str | None, config: str = "", *, name: str | None = None,
                 daemons: tuple[str, ...] = DAEMONS, bgp_port: int = 179,
                 log_dir: Path | None = None) -> None:
        self.ns = ns
        self.config = config
        self.daemons = daemons
        self.bgp_port = bgp_port
        self.pathspace = f"{PREFIX}{os.getpid()}-{next(_counter)}"
        self.name = name or self.pathspace
        self.socket_dir = RUN_DIR / self.pathspace
        self._tmp = Path(tempfile.mkdtemp(prefix=f"{self.pathspace}-", dir=log_dir))
        self.log_path = self._tmp / "frr.log"
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    # -- lifecycle ------------------------------------------------------------------
    def __enter__(self) -> FRR:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _argv(self, daemon: str) -> list[str]:
        argv = daemon_argv(daemon, pathspace=self.pathspace, bgp_port=self.bgp_port)
        return in_ns(self.ns, argv) if self.ns else argv

    def start(self, timeout: float = 15.0) -> None:
        """Start the daemons (zebra first: the others connect to it) and apply the
        initial configuration; returns when every daemon answers vtysh."""
        cleanup_stale()
        if self.socket_dir.exists():  # a previous start() of ours that was killed
            _kill_pathspace(self.socket_dir)
        (self._tmp / "frr.conf").write_text(self.config)
        with self.log_path.open("ab") as out:
            for daemon in self.daemons:
                self._procs[daemon] = subprocess.Popen(
                    self._argv(daemon), stdout=out, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True)
                if daemon == "zebra":
                    self._wait_socket("zserv.api", timeout)
        for daemon in self.daemons:
            self._wait_socket(f"{daemon}.vty", timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.vtysh("show version")
                break
            except FRRError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        if self.config.strip():
            self.apply_file(self.config)

    def _wait_socket(self, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not (self.socket_dir / name).exists():
            dead = {d: p.returncode for d, p in self._procs.items() if p.poll() is not None}
            if dead:
                raise FRRError(f"{self.name}: {dead} exited:\n{self.logs()[-2000:]}")
            if time.monotonic() > deadline:
                raise FRRError(f"{self.name}: no {name} after {timeout}s:\n"
                               f"{self.logs()[-2000:]}")
            time.sleep(0.02)

    def _signal(self, sig: int, daemons: tuple[str, ...] = ()) -> None:
        for daemon, proc in self._procs.items():
            if (not daemons or daemon in daemons) and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM (SIGKILL after `timeout`) every daemon, remove the pathspace."""
        self._signal(signal.SIGCONT)  # a stopped process cannot exit
        self._signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self._procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self._procs.clear()
        if self.socket_dir.exists():
            _kill_pathspace(self.socket_dir)  # daemons that outlived their session

    def kill(self) -> None:
        """SIGKILL every daemon (FRR lost, as in a crash); sockets stay behind as they
        would. `start()` brings it back with the initial configuration."""
        self._signal(signal.SIGCONT)
        self._signal(signal.SIGKILL)
        for proc in self._procs.values():
            proc.wait(timeout=5)
        self._procs.clear()

    def freeze(self, *daemons: str) -> None:
        """SIGSTOP the daemons (all by default): sessions stay open but hang."""
        self._signal(signal.SIGSTOP, daemons)

    def thaw(self, *daemons: str) -> None:
        self._signal(signal.SIGCONT, daemons)

    def pids(self) -> dict[str, int]:
        return {d: p.pid for d, p in self._procs.items() if p.poll() is None}

    def alive(self) -> bool:
        return bool(self._procs) and all(p.poll() is None for p in self._procs.values())

    # -- configuration and state ----------------------------------------------------
    def _run(self, args: list[str], timeout: float) -> str:
        try:
            proc = subprocess.run([*vtysh_argv(self.socket_dir), *args], capture_output=True,
                                  text=True, check=False, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise FRRError(f"{self.name}: vtysh {args} timed out after {timeout}s") from exc
        if proc.returncode != 0:
            raise FRRError(f"{self.name}: vtysh {args} exited {proc.returncode}: "
                           f"{(proc.stdout + proc.stderr).strip()[-2000:]}")
        return proc.stdout

    def vtysh(self, *commands: str, timeout: float = 30.0) -> str:
        """Run commands (each as one `-c`, in order, in one vtysh) and return the text."""
        args: list[str] = []
        for c in commands:
            args += ["-c", c]
        return self._run(args, timeout)

    def vtysh_json(self, command: str, timeout: float = 30.0) -> Any:
        text = self.vtysh(command, timeout=timeout)
        try:
            return json.loads(text)
        except ValueError as exc:
            raise FRRError(f"{self.name}: {command!r} gave no JSON: {text[:500]}") from exc

    def apply_file(self, text: str, timeout: float = 60.0) -> str:
        """Apply configuration lines as one `vtysh -f` batch (raises on any error)."""
        fd, path = tempfile.mkstemp(prefix="apply-", suffix=".conf", dir=self._tmp)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            return self._run(["-f", path], timeout)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)

    def running_config(self) -> str:
        return self.vtysh("show running-config")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

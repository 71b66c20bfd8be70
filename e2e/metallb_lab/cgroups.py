"""cgroup v1 plumbing for the real-node lab: each node gets top-level cgroups of its own
in every hierarchy (kubelet's `cgroupRoot`, and a sibling for the node's daemons), so a
whole node can be frozen, and everything it ever started can be found and killed, even
after the test process itself died.

Only cgroups this lab created (names starting with a cluster's prefix) are touched.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def hierarchies() -> list[Path]:
    """Mount points of the cgroup v1 hierarchies (cpu, memory, ..., name=systemd)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split(" ", 1)[0] == "cgroup":
            found.append(Path(left.split(" ")[4]))
    return found


def require_v1() -> None:
    if not hierarchies():
        raise RuntimeError("the real-node lab needs cgroup v1 hierarchies (the host has "
                           "none mounted under /sys/fs/cgroup)")


def create(name: str) -> None:
    """A top-level cgroup `name` in every hierarchy; cpuset needs cpus and mems set
    before a task may join (copied from the root)."""
    for h in hierarchies():
        path = h / name
        path.mkdir(exist_ok=True)
        for knob in ("cpuset.cpus", "cpuset.mems"):
            if (h / knob).exists() and not (path / knob).read_text().strip():
                (path / knob).write_text((h / knob).read_text())


def join(name: str, pid: int | None = None) -> None:
    """Move `pid` (default: the calling process) into cgroup `name` of every hierarchy."""
    me = str(pid if pid is not None else os.getpid())
    for h in hierarchies():
        (h / name / "cgroup.procs").write_text(me)


def joining(name: str | None) -> Callable[[], None]:
    """A `preexec_fn`: the child joins cgroup `name` (None: stays where it is; the paths
    are computed here, in the parent: little work after fork) and gets SIGKILL when the
    thread that spawned it ends (PR_SET_PDEATHSIG), so nothing outlives a killed run."""
    files = [h / name / "cgroup.procs" for h in hierarchies()] if name else []
    libc = ctypes.CDLL("libc.so.6", use_errno=True)

    def run() -> None:
        pid = str(os.getpid())
        for f in files:
            with open(f, "w") as out:
                out.write(pid)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    return run


def _tree(path: Path) -> Iterator[Path]:
    """`path` and its descendants, deepest first."""
    if not path.is_dir():
        return
    for child in path.iterdir():
        if child.is_dir():
            yield from _tree(child)
    yield path


def pids(name: str) -> set[int]:
    found: set[int] = set()
    for h in hierarchies():
        for cg in _tree(h / name):
            with contextlib.suppress(OSError):
                found |= {int(p) for p in (cg / "cgroup.procs").read_text().split()}
    return found


def set_frozen(name: str, frozen: bool) -> None:
    """Freeze (or thaw) every process of cgroup `name`: a node that hangs entirely."""
    state = CGROUP_ROOT / "freezer" / name / "freezer.state"
    state.write_text("FROZEN" if frozen else "THAWED")


def matching(prefix: str) -> list[str]:
    names: set[str] = set()
    for h in hierarchies():
        with contextlib.suppress(OSError):
            names |= {p.name for p in h.iterdir() if p.is_dir() and p.name.startswith(prefix)}
    return sorted(names)


def destroy(names: list[str], timeout: float = 20.0) -> None:
    """Kill everything in the cgroups `names` and remove them, deepest first.

    All of them are frozen before the first kill: a node's kubelet or containerd must
    not restart a Pod's container between our kill and our rmdir. Frozen tasks die
    once thawed, all at once."""
    for name in names:
        with contextlib.suppress(OSError):
            set_frozen(name, True)
    deadline = time.monotonic() + timeout
    while True:
        left = set().union(*(pids(n) for n in names)) if names else set()
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for name in names:
            with contextlib.suppress(OSError):
                set_frozen(name, False)
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for name in names:
        for h in hierarchies():
            for cg in _tree(h / name):
                while True:
                    try:
                        cg.rmdir()
                        break
                    except FileNotFoundError:
                        break
                    except OSError:  # EBUSY while the last tasks are being reaped
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.05)

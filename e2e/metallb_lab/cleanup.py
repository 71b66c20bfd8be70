"""Remove everything a real-node cluster created: processes, mounts, network namespaces,
cgroups and its directory. Used by the cluster's own teardown, by every new cluster for
the leftovers of runs that died (their owner process is gone), and on its own:

    python -m metallb_lab.cleanup          # every lab cluster on this machine
    python -m metallb_lab.cleanup ID ...   # only those

A cluster `ID` owns: the directory CLUSTERS_DIR/ID, network namespaces and cgroups
named `mlbk<ID>-*`. Nothing else is touched.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from metallb_lab import bird, cgroups, frr
from metallb_lab.lan import kill_namespace_processes
from metallb_lab.netns import ip

CLUSTERS_DIR = Path(tempfile.gettempdir()) / "metallb-py-clusters"
OWNER_FILE = "owner.pid"


def prefix_of(cluster_id: str) -> str:
    return f"mlbk{cluster_id}"


def _netns(prefix: str) -> list[str]:
    """Network namespaces whose names start with `prefix`."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                         check=False).stdout
    return [words[0] for words in map(str.split, out.splitlines())
            if words and words[0].startswith(prefix)]


def _mounts_under(directory: Path) -> list[str]:
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split(" ")[4].encode().decode("unicode_escape")  # \040 etc.
        if point == str(directory) or point.startswith(f"{directory}/"):
            found.append(point)
    return sorted(found, key=len, reverse=True)


def cleanup(cluster_id: str, directory: Path | None = None) -> list[str]:
    """Tear cluster `cluster_id` down completely; returns what was removed."""
    prefix = prefix_of(cluster_id)
    directory = directory or CLUSTERS_DIR / cluster_id
    done: list[str] = []
    # 1. Processes: everything in the nodes' cgroups (daemons, shims, containers), then
    #    whatever still runs in the cluster's namespaces (the control plane).
    groups = cgroups.matching(prefix + "-")
    cgroups.destroy(groups)
    done += [f"cgroup {name}" for name in groups]
    namespaces = _netns(prefix + "-")
    for ns in namespaces:
        kill_namespace_processes(ns)
    deadline = time.monotonic() + 10
    while any(subprocess.run(["ip", "netns", "pids", ns], capture_output=True,
                             text=True, check=False).stdout.split() for ns in namespaces):
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    # 2. Mounts: the nodes' mount namespaces (bound to files in the directory) and
    #    anything else under it. A mount namespace's own mounts go with it.
    for point in _mounts_under(directory):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
        done.append(f"mount {point}")
    # 3. Network namespaces (their veths and routes go with them).
    for ns in namespaces:
        ip("netns", "del", ns, check=False)
        done.append(f"netns {ns}")
    if directory.exists():
        shutil.rmtree(directory, ignore_errors=True)
        done.append(f"dir {directory}")
    return done


def _owner_alive(directory: Path) -> bool:
    try:
        pid = int((directory / OWNER_FILE).read_text())
    except (OSError, ValueError):
        # A cluster being created writes its owner file right after its directory.
        with contextlib.suppress(OSError):
            return time.time() - directory.stat().st_mtime < 60
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def known_clusters() -> list[str]:
    """Ids of every lab cluster that left a directory, a cgroup or a namespace."""
    ids = {p.name for p in CLUSTERS_DIR.glob("*") if p.is_dir()}
    names = cgroups.matching(prefix_of("")) + _netns(prefix_of(""))
    ids |= {n.removeprefix(prefix_of("")).split("-", 1)[0] for n in names if "-" in n}
    return sorted(ids)


def cleanup_stale() -> list[str]:
    """Clusters whose owner process is gone (a run that was killed hard)."""
    done: list[str] = []
    for cluster_id in known_clusters():
        if not _owner_alive(CLUSTERS_DIR / cluster_id):
            done += cleanup(cluster_id)
    return done


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m metallb_lab.cleanup",
                                 description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("ids", nargs="*", help="cluster ids (default: every lab cluster)")
    a = ap.parse_args(argv)
    for cluster_id in a.ids or known_clusters():
        for what in cleanup(cluster_id):
            print(f"removed {what}")
    for what in frr.cleanup_stale():  # FRR instances whose owner process is gone
        print(f"removed {what}")
    for what in bird.cleanup_stale():  # BGP lab routers whose owner process is gone
        print(f"removed {what}")
    with contextlib.suppress(OSError):
        CLUSTERS_DIR.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`metallb-frr`: FRR's daemons in the container beside the speaker (BGP mode).

The chart's `frr` container runs this from the same image as the speaker (it carries
Debian's FRR for the speaker's vtysh anyway): zebra first (the others connect to it),
then bgpd and bfdd, all in the foreground. The daemons start with no configuration, the
speaker pushes the whole of it as soon as they answer (and again after any restart).

Supervision is the kubelet's: if one daemon exits, the others are stopped and this
exits non-zero, so the container restarts as a whole (zebra and bgpd cannot be
restarted alone without losing their routes' state anyway). SIGTERM stops them all
after `--stop-delay` seconds: the speaker, in the same Pod, gets its SIGTERM at the same
moment and withdraws its prefixes first, and FRR must still be there to send that.

The argv rules are shared with the lab's FRR launcher (metallb_lab.frr).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

FRR_LIBEXEC = Path("/usr/lib/frr")
RUN_DIR = Path("/var/run/frr")  # FRR's compiled-in run directory (Debian's build)
DAEMONS = ("zebra", "bgpd", "bfdd")


def daemon_argv(daemon: str, *, pathspace: str = "", bgp_port: int = 179) -> list[str]:
    """How one FRR daemon is started: foreground, logging to stdout, no TCP vty port;
    `pathspace` (-N): its sockets and pid file in /var/run/frr/<pathspace>/."""
    argv = [str(FRR_LIBEXEC / daemon)]
    if pathspace:
        argv += ["-N", pathspace]
    argv += ["-P", "0", "--log", "stdout"]
    if daemon == "zebra":
        argv += ["-s", "90000000"]  # netlink buffer: thousands of routes at once
    if daemon == "bgpd":
        argv += ["-p", str(bgp_port)]
    return argv


def _wait_for(path: Path, procs: dict[str, subprocess.Popen[bytes]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        dead = [d for d, p in procs.items() if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            raise RuntimeError(f"no {path} ({', '.join(dead) or 'timeout'})")
        time.sleep(0.05)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="metallb-frr", description=__doc__.split("\n")[0])
    p.add_argument("--bgp-port", type=int, default=179)
    p.add_argument("--daemons", default=",".join(DAEMONS))
    p.add_argument("--stop-delay", type=float, default=3.0,
                   help="seconds the daemons keep running after SIGTERM")
    a = p.parse_args(argv)
    sockets = RUN_DIR
    sockets.mkdir(parents=True, exist_ok=True)
    # The daemons drop to the frr user: it must be able to create its sockets there.
    if os.geteuid() == 0:
        shutil.chown(sockets, "frr", "frr")
    for stale in sockets.glob("*"):  # from a previous run of this container
        if stale.is_socket() or stale.suffix == ".pid":
            stale.unlink(missing_ok=True)
    stop_at: float | None = None

    def on_term(signum: int, frame: object) -> None:
        nonlocal stop_at
        if stop_at is None:
            stop_at = time.monotonic() + a.stop_delay
            print(f"metallb-frr: stopping in {a.stop_delay:g} s", flush=True)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    code = 0
    try:
        for daemon in a.daemons.split(","):
            procs[daemon] = subprocess.Popen(
                daemon_argv(daemon, bgp_port=a.bgp_port),
                stdin=subprocess.DEVNULL)
            if daemon == "zebra":
                _wait_for(sockets / "zserv.api", procs, 30.0)
        print(f"metallb-frr: {', '.join(procs)} running, sockets in {sockets}", flush=True)
        while stop_at is None or time.monotonic() < stop_at:
            dead = {d: p.returncode for d, p in procs.items() if p.poll() is not None}
            if dead:
                print(f"metallb-frr: {dead} exited: stopping the others", flush=True)
                code = 1
                break
            time.sleep(0.2)
    except RuntimeError as exc:
        print(f"metallb-frr: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        for proc in reversed(list(procs.values())):  # zebra last
            if proc.poll() is None:
                proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    return code


if __name__ == "__main__":
    raise SystemExit(main())

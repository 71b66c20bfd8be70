"""Run the real operator as a child process against a ControlPlane (tests, demo, bench)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from metallb_lab.controlplane import ControlPlane, free_port


class OperatorProcess:
    def __init__(self, cp: ControlPlane, namespace: str, *, lb_class: str | None = None,
                 leader_election: bool = True, identity: str | None = None,
                 extra_args: tuple[str, ...] = (), log_path: Path | None = None,
                 kubeconfig: Path | None = None) -> None:
        self.cp = cp
        self.namespace = namespace
        self.metrics_port = free_port()
        self.log_path = log_path or cp.work_dir / f"operator-{namespace}-{self.metrics_port}.log"
        args = [sys.executable, "-m", "metallb_operator",
                f"--kubeconfig={kubeconfig or cp.kubeconfig}", f"--namespace={namespace}",
                "--metrics-host=127.0.0.1", f"--metrics-port={self.metrics_port}",
                "--log-level=info", *extra_args]
        if lb_class:
            args.append(f"--lb-class={lb_class}")
        if not leader_election:
            args.append("--no-leader-election")
        if identity:
            args.append(f"--identity={identity}")
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> OperatorProcess:
        self.start()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self, wait: bool = True) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT,
                                         env=env, start_new_session=True)
        if wait:
            self.wait_synced()

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=2) as resp:
            return str(resp.read().decode())

    def metric(self, name: str, labels: str = "") -> float | None:
        prefix = f"{name}{{{labels}}}" if labels else name
        for line in self.metrics().splitlines():
            if line.startswith(prefix + " "):
                return float(line.rsplit(" ", 1)[1])
        return None

    def wait_synced(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"operator exited {self.proc.returncode}:\n{self.logs()[-3000:]}")
            with contextlib.suppress(OSError):
                if self.metric("metallb_controller_synced") == 1.0:
                    return
            time.sleep(0.05)
        raise TimeoutError(f"operator not synced in {timeout}s:\n{self.logs()[-3000:]}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        return self.proc.returncode

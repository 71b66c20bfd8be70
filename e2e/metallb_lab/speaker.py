"""Run real speakers as child processes on loopback (membership/election tests and
benches that need no data plane): each gets its own gossip and metrics port."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from metallb_lab.controlplane import ControlPlane, free_port


class SpeakerProcess:
    def __init__(self, cp: ControlPlane, node: str, namespace: str, *,
                 extra_args: tuple[str, ...] = (), log_dir: Path | None = None,
                 gossip_port: int | None = None) -> None:
        self.cp = cp
        self.node = node
        self.namespace = namespace
        self.gossip_port = gossip_port or free_port()
        self.metrics_port = free_port()
        self.log_path = (log_dir or cp.work_dir) / f"speaker-{node}-{self.gossip_port}.log"
        self.args = [sys.executable, "-m", "metallb_speaker", f"--node-name={node}",
                     f"--namespace={namespace}", f"--kubeconfig={cp.kubeconfig}",
                     "--advertise-address=127.0.0.1", "--bind-address=127.0.0.1",
                     f"--gossip-port={self.gossip_port}", "--metrics-host=127.0.0.1",
                     f"--metrics-port={self.metrics_port}", "--no-dataplane", *extra_args]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SpeakerProcess:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT,
                                         env=env, start_new_session=True)
        return self

    def send_signal(self, sig: int) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGCONT)
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        return self.proc.returncode

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=2) as resp:
            return str(resp.read().decode())

    def metric(self, name: str, labels: str = "") -> float | None:
        prefix = f"{name}{{{labels}}}" if labels else name
        try:
            text = self.metrics()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith(prefix + " "):
                return float(line.rsplit(" ", 1)[1])
        return None

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_metric(self, name: str, labels: str, value: float, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.metric(name, labels) == value:
                return
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"speaker {self.node} exited:\n{self.logs()[-3000:]}")
            time.sleep(0.05)
        raise TimeoutError(f"{self.node}: {name}{{{labels}}} != {value}; "
                           f"last={self.metric(name, labels)}\n{self.logs()[-2000:]}")

"""A component (operator or speaker) run as a child process in its own session, with a
log file and a Prometheus endpoint the tests read."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any


class ChildProcess:
    def __init__(self, args: list[str], log_path: Path, metrics_port: int, what: str) -> None:
        self.args = args
        self.log_path = log_path
        self.metrics_port = metrics_port
        self.what = what
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT,
                                         env=env, start_new_session=True)

    def send_signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        self.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGCONT)  # a stopped process cannot exit
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
        """A sample's value, or None if absent or the endpoint is not up (yet)."""
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

    def log_events(self, event: str) -> list[dict[str, Any]]:
        """The JSON log lines whose `event` key is `event`."""
        out = []
        for line in self.logs().splitlines():
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if isinstance(rec, dict) and rec.get("event") == event:
                    out.append(rec)
        return out

    def wait_metric(self, name: str, labels: str, value: float, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.metric(name, labels) == value:
                return
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.what} exited {self.proc.returncode}:\n"
                                   f"{self.logs()[-3000:]}")
            time.sleep(0.05)
        raise TimeoutError(f"{self.what}: {name}{{{labels}}} != {value} after {timeout}s "
                           f"(last={self.metric(name, labels)})\n{self.logs()[-2000:]}")

"""Run the real operator as a child process against a ControlPlane (tests, demo, bench)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import TracebackType

from metallb_lab.controlplane import ControlPlane, free_port
from metallb_lab.process import ChildProcess


class OperatorProcess(ChildProcess):
    def __init__(self, cp: ControlPlane, namespace: str, *, lb_class: str | None = None,
                 leader_election: bool = True, identity: str | None = None,
                 extra_args: tuple[str, ...] = (), log_path: Path | None = None,
                 kubeconfig: Path | None = None) -> None:
        self.cp = cp
        self.namespace = namespace
        port = free_port()
        args = [sys.executable, "-m", "metallb_operator",
                f"--kubeconfig={kubeconfig or cp.kubeconfig}", f"--namespace={namespace}",
                "--metrics-host=127.0.0.1", f"--metrics-port={port}",
                "--log-level=info", *extra_args]
        if lb_class:
            args.append(f"--lb-class={lb_class}")
        if not leader_election:
            args.append("--no-leader-election")
        if identity:
            args.append(f"--identity={identity}")
        super().__init__(args, log_path or cp.work_dir / f"operator-{namespace}-{port}.log",
                         port, "operator")

    def __enter__(self) -> OperatorProcess:
        self.start()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self, wait: bool = True) -> None:
        self.spawn()
        if wait:
            self.wait_synced()

    def wait_synced(self, timeout: float = 60.0) -> None:
        """Until the start-up sync is done (the allocation table is rebuilt)."""
        self.wait_metric("metallb_controller_synced", "", 1.0, timeout=timeout)

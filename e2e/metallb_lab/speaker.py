"""Run real speakers as child processes on loopback (membership/election tests and
benches that need no data plane): each gets its own gossip and metrics port."""

from __future__ import annotations

import sys
from pathlib import Path

from metallb_lab.controlplane import ControlPlane, free_port
from metallb_lab.process import ChildProcess


class SpeakerProcess(ChildProcess):
    def __init__(self, cp: ControlPlane, node: str, namespace: str, *,
                 extra_args: tuple[str, ...] = (), log_dir: Path | None = None,
                 gossip_port: int | None = None) -> None:
        self.cp = cp
        self.node = node
        self.namespace = namespace
        self.gossip_port = gossip_port or free_port()
        port = free_port()
        args = [sys.executable, "-m", "metallb_speaker", f"--node-name={node}",
                f"--namespace={namespace}", f"--kubeconfig={cp.kubeconfig}",
                "--advertise-address=127.0.0.1", "--bind-address=127.0.0.1",
                f"--gossip-port={self.gossip_port}", "--metrics-host=127.0.0.1",
                f"--metrics-port={port}", "--no-dataplane", *extra_args]
        log = (log_dir or cp.work_dir) / f"speaker-{node}-{self.gossip_port}.log"
        super().__init__(args, log, port, f"speaker {node}")

    def start(self) -> SpeakerProcess:
        self.spawn()
        return self

"""Every speaker Pod's log, kept after the Pod is replaced: a rolling update's evidence
is in the logs of Pods that no longer exist. Polled in a thread while it runs; the
tests put `events()` in their failure messages."""

from __future__ import annotations

import contextlib
import json
import threading

from metallb_lab.cluster import Cluster

NS = "metallb-system"


class SpeakerLogs:
    # layer 2: takeovers and loud turns; BGP: FRR pushes, losses and the withdrawal
    EVENTS = ("takeover", "quietEnded", "started", "stopped", "memberChanged", "frrPushed",
              "frrUnavailable", "frrRecovered", "bgpWithdrawAll")

    def __init__(self, c: Cluster, namespace: str = NS) -> None:
        self.c, self.ns, self.logs = c, namespace, dict[str, str]()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(0.7):
            with contextlib.suppress(Exception):  # best effort: evidence, not a check
                for pod in self.c.pods(self.ns, "app.kubernetes.io/component=speaker"):
                    name = pod["metadata"]["name"]
                    got = self.c.kubectl("logs", "-n", self.ns, name, "-c", "speaker",
                                         "--request-timeout=5s",
                                         check=False).stdout
                    if len(got) >= len(self.logs.get(name, "")):
                        self.logs[name] = got

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def events(self) -> list[str]:
        """The EVENTS of every Pod, one line each, in time order."""
        lines = []
        for pod, text in self.logs.items():
            for line in text.splitlines():
                with contextlib.suppress(ValueError):
                    e = json.loads(line)
                    if e.get("event") in self.EVENTS:
                        lines.append(f"{e.get('ts')} {pod} {e.get('event')} "
                                     f"{e.get('reason')} {e.get('node')} {e.get('ip', '')}")
        return sorted(lines)

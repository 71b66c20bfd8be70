"""The FRR shell: keeps FRR's configuration equal to the rendered one, watches FRR.

`Vtysh` runs Debian's vtysh against the daemons' sockets (`--vty_socket DIR`: the
directory shared with the FRR container). `FRRApplier.run` is one supervised loop:
- pushes what `plan.Planner` says, each as one `vtysh -f` batch;
- every `probe_interval`: one vtysh reading `show daemons`, the BGP neighbors and the
  BFD peers (for the metrics and ServiceBGPStatus), which also tells whether FRR is
  there. A failed probe or push marks FRR `unavailable` (readiness fails, the metric
  `metallb_speaker_frr_up` is 0, logged once with the reason); when it answers again,
  or when its daemons were restarted (their pid files changed), the whole configuration
  is pushed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any

from metallb_speaker.frr.diff import strip_ours
from metallb_speaker.frr.plan import ApplySettings, Planner, PushKind, Step
from metallb_speaker.frr.state import (
    BFDSession,
    BGPSession,
    parse_bfd,
    parse_neighbors,
    sessions_problem,
)

log = logging.getLogger("metallb.speaker.frr")
DAEMONS = ("zebra", "bgpd", "bfdd")


class FRRUnavailable(Exception):
    """vtysh could not reach (all of) FRR's daemons."""


class FRRRefused(Exception):
    """FRR refused some commands of a batch."""


class FRRStatus(StrEnum):
    STARTING = "starting"
    SYNCED = "synced"
    PENDING = "pending"
    UNAVAILABLE = "unavailable"
    REFUSED = "refused"


def _decode_all(text: str) -> list[Any]:
    """Several JSON documents one after the other (one vtysh, several -c)."""
    dec = json.JSONDecoder()
    out: list[Any] = []
    i = 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        doc, i = dec.raw_decode(text, i)
        out.append(doc)


class Vtysh:
    def __init__(self, socket_dir: str, binary: str = "vtysh", timeout: float = 60.0,
                 daemons: Sequence[str] = DAEMONS) -> None:
        self.socket_dir = socket_dir
        self.binary = binary
        self.timeout = timeout
        self.daemons = tuple(daemons)

    async def _run(self, args: list[str]) -> str:
        try:
            proc = await asyncio.create_subprocess_exec(
                self.binary, "--vty_socket", self.socket_dir, *args,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                stdin=asyncio.subprocess.DEVNULL)
        except OSError as exc:
            raise FRRUnavailable(f"cannot run {self.binary}: {exc}") from exc
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self.timeout)
        except TimeoutError as exc:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise FRRUnavailable(f"vtysh timed out after {self.timeout}s") from exc
        text, errors = out.decode(errors="replace"), err.decode(errors="replace")
        if proc.returncode != 0:
            message = (errors.strip() or text.strip())[-500:]
            if "failed to connect" in message or "Exiting" in message:
                raise FRRUnavailable(message)
            raise FRRRefused(message)
        return text

    async def show(self, *commands: str) -> str:
        args: list[str] = []
        for c in commands:
            args += ["-c", c]
        return await self._run(args)

    async def apply(self, text: str) -> None:
        fd, path = tempfile.mkstemp(prefix="metallb-frr-push-", suffix=".conf")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            await self._run(["-f", path])
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)

    async def probe(self) -> tuple[list[BGPSession], list[BFDSession]]:
        """Sessions, in one vtysh; FRRUnavailable unless every daemon answers."""
        text = await self.show("show daemons", "show bgp vrf all neighbors json",
                               "show bfd peers json", "show bfd peers counters json")
        first, _, rest = text.partition("\n")
        running = set(first.split())
        missing = [d for d in self.daemons if d not in running]
        if missing:
            raise FRRUnavailable(f"{', '.join(missing)} not running")
        try:
            docs = _decode_all(rest)
        except ValueError as exc:
            raise FRRUnavailable(f"unreadable session state: {exc}") from exc
        docs += [None] * (3 - len(docs))
        return parse_neighbors(docs[0]), parse_bfd(docs[1], docs[2])

    def generation(self) -> tuple[tuple[str, int, int], ...]:
        """Identity of the running daemons (their pid files): changes when FRR restarts,
        also in a container where the pids themselves repeat."""
        out = []
        for d in self.daemons:
            with contextlib.suppress(OSError):
                st = os.stat(os.path.join(self.socket_dir, f"{d}.pid"))
                out.append((d, st.st_ino, st.st_mtime_ns))
        return tuple(out)


class FRRApplier:
    def __init__(self, vtysh: Vtysh, settings: ApplySettings | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[], None] | None = None) -> None:
        self.vtysh = vtysh
        self.s = settings = settings or ApplySettings()
        self.clock = clock
        self.on_change = on_change or (lambda: None)  # sessions or status changed
        self.planner = Planner(settings)
        self.status = FRRStatus.STARTING
        self.reason = "not contacted yet"
        self.sessions: list[BGPSession] = []
        self.bfd: list[BFDSession] = []
        self.pushes: Counter[str] = Counter()
        self.push_seconds: dict[str, float] = {}
        self.losses = 0
        self.refusals = 0
        self._kick = asyncio.Event()
        self._synced = asyncio.Event()
        self._generation: tuple[tuple[str, int, int], ...] | None = None
        self._next_probe = 0.0
        self._born = clock()
        self._carried_at: float | None = None  # since when every session is up
        self._carried = False  # ... for long enough, once since the start: latched
        self._carry_problem: str | None = "FRR not probed yet"

    # -- inputs -------------------------------------------------------------------
    def want(self, text: str) -> None:
        self.planner.want(text, self.clock())
        if not self.planner.synced:
            self._synced.clear()
        self._kick.set()

    def problem(self) -> str | None:
        """For readiness: why FRR cannot carry our announcements now."""
        if self.status is FRRStatus.UNAVAILABLE:
            return f"FRR unavailable: {self.reason}"
        return None

    def ready_problem(self) -> str | None:
        """Readiness: `problem()`, and after a start, until they were first all back,
        this node's sessions and updates (state.sessions_problem: a rollout must not move
        on before they are). Peers added later do not make a running speaker unready."""
        return self.problem() or (None if self._carried else self._carry_problem)

    def _carry(self) -> None:
        """After each probe, until latched: are this node's sessions back, and for long
        enough? Judged on every probe (not only when the kubelet asks, every 10 s by
        default), so the settle time counts from when the sessions really came up."""
        if self._carried:
            return
        now = self.clock()
        problem = sessions_problem(self.sessions, self.status is FRRStatus.SYNCED,
                                   now - self._born, self.s.ready_grace)
        if problem is not None:
            self._carried_at, self._carry_problem = None, problem
            return
        # Settle (longer than a probe interval): the session list may predate the first
        # push (no neighbor yet, so none down), and the peers need a moment to install
        # the routes before a rollout takes the next node's away.
        if self._carried_at is None:
            self._carried_at = now
        if now - self._carried_at < self.s.ready_settle:
            self._carry_problem = "BGP sessions just established: letting the peers " \
                                  "install the routes"
        else:
            self._carried, self._carry_problem = True, None

    async def wait_synced(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._synced.wait(), timeout)
        return self._synced.is_set()

    # -- the loop -----------------------------------------------------------------
    async def run(self) -> None:
        while True:
            now = self.clock()
            if now >= self._next_probe:
                await self.probe()
                self._next_probe = self.clock() + self.s.probe_interval
            delay = self._next_probe - self.clock()
            if self.status is not FRRStatus.UNAVAILABLE:
                step = self.planner.step(self.clock())
                if step.action == "push":
                    await self._push(step)
                    continue
                if step.action == "wait":
                    delay = min(delay, step.delay)
            self._kick.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), max(delay, 0.0))

    async def probe(self) -> None:
        gen = self.vtysh.generation()
        try:
            sessions, bfd = await self.vtysh.probe()
        except (FRRUnavailable, FRRRefused) as exc:
            self._lost(str(exc))
            return
        if self._generation is not None and gen != self._generation and gen:
            self.planner.forget()
            self._set(FRRStatus.PENDING, "FRR restarted: pushing the whole configuration",
                      "frrRestarted")
        self._generation = gen
        if self.status is FRRStatus.UNAVAILABLE:
            self._set(FRRStatus.PENDING, "FRR answers again: pushing the whole configuration",
                      "frrRecovered")
        elif self.status is FRRStatus.STARTING:
            self._set(FRRStatus.PENDING, "FRR answers", "frrConnected")
        changed = (sessions, bfd) != (self.sessions, self.bfd)
        self.sessions, self.bfd = sessions, bfd
        self._carry()
        if changed:
            self.on_change()

    def _lost(self, reason: str) -> None:
        self.planner.forget()
        if self.status is not FRRStatus.UNAVAILABLE:
            self.losses += 1
            self.sessions, self.bfd = [], []
            self._synced.clear()
            self._set(FRRStatus.UNAVAILABLE, reason, "frrUnavailable", logging.ERROR)

    def _set(self, status: FRRStatus, reason: str, event: str,
             level: int = logging.INFO) -> None:
        self.status, self.reason = status, reason
        log.log(level, reason, extra={"event": event, "reason": reason})
        self.on_change()

    async def _push(self, step: Step) -> None:
        assert step.kind is not None
        commands = step.commands
        started = time.perf_counter()
        try:
            if step.kind is PushKind.FULL:
                running = await self.vtysh.show("show running-config")
                commands = "".join(c + "\n" for c in strip_ours(running)) + commands
            if commands:
                await self.vtysh.apply(commands)
        except FRRUnavailable as exc:
            self._lost(str(exc))
            return
        except FRRRefused as exc:
            self.refusals += 1
            self.planner.refused(step.kind, self.clock())
            self._set(FRRStatus.REFUSED, f"FRR refused part of a {step.kind} push: {exc}",
                      "frrRefused", logging.ERROR)
            return
        took = time.perf_counter() - started
        self.pushes[step.kind] += 1
        self.push_seconds[step.kind] = self.push_seconds.get(step.kind, 0.0) + took
        self.planner.pushed(step.target)
        log.info("FRR configuration pushed", extra={
            "event": "frrPushed", "reason": str(step.kind), "seconds": round(took, 4),
            "count": commands.count("\n")})
        if self.planner.synced:
            self._synced.set()
            if self.status is not FRRStatus.SYNCED:
                self._set(FRRStatus.SYNCED, "FRR holds the wanted configuration", "frrSynced")

    async def drained(self, timeout: float) -> bool:
        """After the empty announcement was pushed: wait until every session has sent
        its withdrawals (no prefix counted as sent, nothing queued), or `timeout`."""
        deadline = self.clock() + timeout
        while True:
            with contextlib.suppress(FRRUnavailable, FRRRefused):
                sessions, _ = await self.vtysh.probe()
                if all(s.prefixes_sent == 0 and s.out_queue == 0 for s in sessions):
                    return True
            if self.clock() >= deadline:
                return False
            await asyncio.sleep(0.05)

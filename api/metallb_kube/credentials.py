"""The credential a request authenticates with, kept current: static token or
certificate, a rotating token file, or an exec plugin re-run before its credential
expires (and once after a 401)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from metallb_kube.kubeconfig import (
    Connection,
    Credential,
    ExecPlugin,
    KubeconfigError,
    exec_info,
    parse_exec_credential,
)

# client-go re-reads a bound ServiceAccount token file every minute (the kubelet rotates it).
TOKEN_FILE_REREAD = 60.0


async def run_exec_plugin(plugin: ExecPlugin, timeout: float = 60.0) -> bytes:
    """Run the plugin (its env on top of ours, no stdin: never interactive)."""
    env = dict(os.environ)
    env.update(plugin.env)
    env["KUBERNETES_EXEC_INFO"] = exec_info(plugin)
    try:
        proc = await asyncio.create_subprocess_exec(
            plugin.command, *plugin.args, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    except OSError as exc:
        hint = f" ({plugin.install_hint.strip()})" if plugin.install_hint else ""
        raise KubeconfigError(f"exec plugin {plugin.command}: cannot run: "
                              f"{exc.strerror or exc}{hint}") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise KubeconfigError(f"exec plugin {plugin.command}: no answer in {timeout:g} s"
                              ) from None
    if proc.returncode != 0:
        raise KubeconfigError(f"exec plugin {plugin.command}: exit {proc.returncode}: "
                              f"{err.decode(errors='replace').strip()[:500]}")
    return out


class Authenticator:
    """The current Credential of a Connection: static token and certificate; a token file
    re-read every `token_reread` seconds (bound ServiceAccount tokens rotate); an exec
    plugin re-run before its credential expires. `renew()` after a 401.

    `clock` is wall time (exec expiry is an RFC 3339 instant); `run_exec` and `read_file`
    are injectable for tests."""

    def __init__(self, conn: Connection, *, clock: Callable[[], float] = time.time,
                 token_reread: float = TOKEN_FILE_REREAD,
                 run_exec: Callable[[ExecPlugin], Awaitable[bytes]] = run_exec_plugin,
                 read_file: Callable[[str], str] = lambda p: Path(p).read_text()) -> None:
        self.conn = conn
        self._clock = clock
        self._token_reread = token_reread
        self._run_exec = run_exec
        self._read_file = read_file
        self._lock = asyncio.Lock()
        self._current: Credential | None = None
        self._token_read_at: float | None = None
        self.fetches = 0  # exec runs and token file reads, for tests and metrics

    def _due(self, cred: Credential | None, now: float) -> bool:
        if cred is None:
            return True
        if self.conn.token_file:
            # A clock stepped back counts as due too: the next read is never postponed.
            age = now - (self._token_read_at or 0.0)
            return age >= self._token_reread or age < 0
        if self.conn.token is None and self.conn.exec_plugin is not None:
            return cred.renew_at is not None and now >= cred.renew_at
        return False

    async def credential(self) -> Credential:
        cred = self._current
        if not self._due(cred, self._clock()):
            assert cred is not None
            return cred
        async with self._lock:
            if self._due(self._current, self._clock()):
                self._current = await self._fetch()
            assert self._current is not None
            return self._current

    async def renew(self, stale: Credential | None = None) -> Credential:
        """A fresh credential (after a 401 with `stale`): concurrent callers that saw the
        same stale one share one fetch."""
        async with self._lock:
            if self._current is None or stale is None or self._current is stale:
                self._current = await self._fetch()
            return self._current

    @property
    def renewable(self) -> bool:
        return bool(self.conn.token_file or (self.conn.exec_plugin and not self.conn.token))

    async def _fetch(self) -> Credential:
        conn = self.conn
        now = self._clock()
        # client-go: a static token wins over an exec plugin's (the plugin is not run).
        if conn.token_file or conn.token:
            token = conn.token
            if conn.token_file:
                token = self._read_file(conn.token_file).strip()
                self._token_read_at = now
                self.fetches += 1
                # Not an expiry: when to read the file again (kopf re-logins then too).
                return Credential(token=token, renew_at=now + self._token_reread)
            return Credential(token=token)
        if conn.exec_plugin is not None:
            out = await self._run_exec(conn.exec_plugin)
            self.fetches += 1
            return parse_exec_credential(out, conn.exec_plugin, self._clock())
        return Credential()

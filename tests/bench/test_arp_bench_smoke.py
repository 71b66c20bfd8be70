"""Smoke run of bench/arp.py's machinery: the lab, the C load generator, the real
DataPlane responder and the kernel baseline, 1 s at a low rate each (ARP and NDP).

Only checks that requests are answered and matched, not performance (that is the
bench's job, and this machine is shared)."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from bench import arp
from metallb_lab.netns import in_ns

pytestmark = pytest.mark.netns

RATE = 2000


def _generate(lab: arp.Lab, exe: Path, mode: str, run_id: int) -> dict[str, Any]:
    src, dst = (arp.CLIENT_IP, arp.VIP) if mode == "arp" else (arp.CLIENT_IP6, arp.VIP6)
    argv = [str(exe), arp.CLIENT_IF, mode, src, dst, str(RATE), "1", str(run_id), "0.3"]
    proc = subprocess.run(in_ns(lab.client, argv), capture_output=True, text=True,
                          timeout=10, check=True)
    row: dict[str, Any] = json.loads(proc.stdout)
    return row


def _answered(row: dict[str, Any]) -> None:
    assert row["sent"] == RATE
    assert row["bad"] == 0 and row["dup"] == 0, row
    assert row["received"] >= 0.99 * row["sent"], row
    assert 0 < row["rtt_us"]["p50"] < 100_000, row


def test_dataplane_and_kernel_answer_the_generator() -> None:
    with tempfile.TemporaryDirectory(prefix="mlbarp-") as tmp, arp.Lab.up() as lab:
        exe = arp.compile_loadgen(Path(tmp))

        responder = arp.Responder(lab, cpu=None)
        try:
            assert responder.ready["interfaces"] == {arp.VIP: ["eth0"], arp.VIP6: ["eth0"]}
            rows = [_generate(lab, exe, "arp", 1), _generate(lab, exe, "ndp", 2)]
            stats = responder.stats()
        finally:
            final = responder.stop()
        for row in rows:
            _answered(row)
        # the replies really came from the data plane: it counted every one it sent
        assert stats["answered_requests"] >= sum(r["received"] for r in rows)
        assert final is not None and final["error"] is None

        lab.vips(add=True)  # the kernel baseline: no data plane running now
        for i, mode in enumerate(("arp", "ndp")):
            _answered(_generate(lab, exe, mode, 3 + i))

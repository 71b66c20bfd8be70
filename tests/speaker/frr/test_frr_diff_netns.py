"""frr.diff against a real FRR: walking through every golden frr.conf by diffs leaves
FRR's running configuration as if that golden file had been applied to an empty FRR,
and `strip_ours` empties it again."""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from metallb_lab.frr import FRR
from metallb_lab.netns import ip
from metallb_speaker.frr.diff import diff, strip_ours

pytestmark = [pytest.mark.netns,
              pytest.mark.skipif(shutil.which("vtysh") is None, reason="FRR not installed")]
GOLDEN = sorted((Path(__file__).parent / "golden").glob("*.conf"))
_SEQ = re.compile(r" seq \d+ ")


def normalized(running: str) -> tuple[list[str], frozenset[str]]:
    """FRR's running configuration without what depends on history: prefix-list
    sequence numbers and order; version lines and comments."""
    lines, lists = [], set()
    for line in running.splitlines():
        if not line.strip() or line.startswith(("!", "frr version", "frr defaults",
                                                 "Building configuration",
                                                 "Current configuration")):
            continue
        if " prefix-list " in line and line.startswith(("ip ", "ipv6 ")):
            lists.add(_SEQ.sub(" ", line))
            continue
        lines.append(line.rstrip())
    return lines, frozenset(lists)


@pytest.fixture(scope="module")
def frr() -> Iterator[FRR]:
    ns = f"mlbfrrd{uuid.uuid4().hex[:5]}"
    ip("netns", "add", ns)
    try:
        ip("link", "set", "lo", "up", ns=ns)
        with FRR(ns) as f:
            yield f
    finally:
        ip("netns", "del", ns, check=False)


def test_walk_through_golden_files(frr: FRR) -> None:
    empty = normalized(frr.running_config())
    want: dict[Path, tuple[list[str], frozenset[str]]] = {}
    for path in GOLDEN:  # each from empty, and back
        frr.apply_file(diff("", path.read_text()).text())
        want[path] = normalized(frr.running_config())
        frr.apply_file(diff(path.read_text(), "").text())
        assert normalized(frr.running_config()) == empty, path.name
    assert len(set(map(str, want.values()))) > 1
    # every golden file after every other one (a cycle through all, then reversed)
    order = [*GOLDEN, *reversed(GOLDEN)]
    current = ""
    for path in order:
        text = path.read_text()
        frr.apply_file(diff(current, text).text())
        assert normalized(frr.running_config()) == want[path], f"{current[:60]!r} -> {path.name}"
        current = text
    frr.apply_file("\n".join(strip_ours(frr.running_config())) + "\n")
    lines, lists = normalized(frr.running_config())
    assert not lists
    assert not [line for line in lines if line.startswith(("router", "route-map", "bfd"))]

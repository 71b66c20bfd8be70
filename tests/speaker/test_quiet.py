"""When a quiet takeover turns loud (metallb_speaker.quiet): kube-proxy's own 503 at
once, silence only once it lasted, over two checks."""

from __future__ import annotations

import pytest

from metallb_speaker.quiet import FORWARDS, PathVerdict, QuietTakeovers

pytestmark = pytest.mark.unit
SILENT = PathVerdict("its kube-proxy /healthz did not answer (TimeoutError)")
STALE = PathVerdict("its kube-proxy /healthz answered 503", definitive=True)


@pytest.mark.parametrize(("checks", "loud_at"), [
    # (time, verdict) per check of one node; loud_at: index of the check that turns loud
    ([(0.0, STALE)], 0),
    ([(0.0, SILENT)], None),  # one missed deadline moves nobody
    ([(0.0, SILENT), (0.3, SILENT)], None),  # not for long enough yet
    ([(0.0, SILENT), (0.3, SILENT), (0.6, SILENT)], 2),
    ([(0.0, SILENT), (0.7, SILENT)], 1),  # two checks, long enough
    ([(0.0, SILENT), (0.3, FORWARDS), (0.6, SILENT), (0.9, SILENT)], None),  # answered: anew
    ([(0.0, SILENT), (0.3, FORWARDS), (0.6, SILENT), (1.2, SILENT)], 3),
    ([(0.0, SILENT), (0.2, STALE)], 1),
    ([(0.0, FORWARDS), (0.5, FORWARDS)], None),
])
def test_when_a_quiet_takeover_turns_loud(checks: list[tuple[float, PathVerdict]],
                                          loud_at: int | None) -> None:
    q = QuietTakeovers(confirm=0.6)
    loud = [i for i, (now, v) in enumerate(checks) if q.observe("node-1", v, now) is not None]
    assert loud == ([] if loud_at is None else [loud_at])


def test_the_reason_names_the_last_failure_and_how_long_it_lasted() -> None:
    q = QuietTakeovers(confirm=0.6)
    assert q.observe("node-1", SILENT, 10.0) is None
    why = q.observe("node-1", PathVerdict("its kube-proxy /healthz did not answer "
                                          "(ClientConnectorError)"), 10.8)
    assert why == "its kube-proxy /healthz did not answer (ClientConnectorError), for 0.8 s"
    assert q.observe("node-1", STALE, 11.0) == STALE.down


def test_nodes_are_judged_apart_and_rechecked_sooner_while_unsure() -> None:
    q = QuietTakeovers(confirm=0.6, recheck=0.5, recheck_unsure=0.15)
    assert q.next_check() == 0.5
    q.observe("node-1", SILENT, 0.0)
    assert q.next_check() == 0.15
    q.observe("node-2", SILENT, 0.5)
    assert q.observe("node-1", SILENT, 0.7) is not None
    assert q.observe("node-2", SILENT, 0.7) is None  # node-2's silence began later
    q.keep_only({"node-3"})  # node-2 carries no quiet takeover any more
    assert q.next_check() == 0.5
    assert q.observe("node-2", SILENT, 5.0) is None  # a new silence, not a long one

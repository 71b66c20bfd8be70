"""The pure parts of bench/failover_many.py: which addresses a node ranks first for,
and how a trial's recovery is read from the client's answers."""

from __future__ import annotations

import pytest
from bench.failover_many import addresses_owned_by, recovery

from metallb_speaker.election import Election

pytestmark = pytest.mark.unit


def test_addresses_a_node_ranks_first_for() -> None:
    nodes = ["node-1", "node-2", "node-3"]
    got = addresses_owned_by("node-2", nodes, 50)
    assert len(got) == len(set(got)) == 50
    for ip in got:
        assert Election().ranking(ip, frozenset(nodes))[0] == "node-2", ip


@pytest.mark.parametrize(("case", "answers", "want"), [
    ("answers before the fault only: never back", [[0, 9.0, 9.5], [1, 9.9, 10.05]],
     [None, None]),
    ("the first answer after the silence",
     [[0, 9.99, 10.0], [0, 10.3, 10.31], [0, 10.31, 10.32],
      [1, 9.99, 10.0], [1, 10.6, 10.61], [1, 11.0, 11.01]],
     [pytest.approx(0.31), pytest.approx(0.61)]),
    ("a stray answer just after the fault does not end the outage",
     [[0, 9.99, 10.0], [0, 10.001, 10.002], [0, 10.5, 10.51], [0, 10.51, 10.52]],
     [pytest.approx(0.51), None]),
    ("no outage at all", [[0, 9.99, 10.0], [0, 10.0, 10.001], [0, 10.01, 10.011]],
     [pytest.approx(0.001), None]),
])
def test_recovery(case: str, answers: list[list[float]], want: list[float | None]) -> None:
    assert recovery(answers, 2, 10.0) == want, case

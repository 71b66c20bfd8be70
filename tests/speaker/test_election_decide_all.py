"""One election round for many Services (`Election.decide_all`, which shares the
static filters and the verdict between Services that agree on them) gives exactly the
Decisions that deciding each Service on its own gives."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metallb_api.config import build_config
from metallb_speaker.election import EXCLUDE_LABEL, Election, Inputs, NodeState, ServiceState

pytestmark = pytest.mark.unit

NODES = ("n1", "n2", "n3", "n4")
CONFIG = build_config(
    [{"metadata": {"name": "a"}, "spec": {"addresses": ["10.0.0.0/28"]}},
     {"metadata": {"name": "b"}, "spec": {"addresses": ["10.0.1.0/28"]}}],
    [{"metadata": {"name": "all-a"}, "spec": {"ipAddressPools": ["a"]}},
     {"metadata": {"name": "edge-b"}, "spec": {
         "ipAddressPools": ["b"], "interfaces": ["eth1"],
         "nodeSelectors": [{"matchLabels": {"edge": "yes"}}]}}])

services = st.lists(st.tuples(
    st.sampled_from(["a", "b", None, "gone"]),  # the pool annotation (a stale one too)
    st.lists(st.sampled_from([f"10.0.{p}.{i}" for p in (0, 1) for i in range(1, 6)]),
             max_size=2, unique=True),
    st.booleans(),  # externalTrafficPolicy: Local
    st.frozensets(st.sampled_from(NODES)),
    st.booleans(),  # any serving endpoint
), max_size=30)


@settings(max_examples=300, deadline=None)
@given(svcs=services, edge=st.frozensets(st.sampled_from(NODES)),
       excluded=st.frozensets(st.sampled_from(NODES), max_size=1),
       live=st.frozensets(st.sampled_from(NODES)), ready=st.frozensets(st.sampled_from(NODES)),
       me=st.sampled_from(NODES))
def test_decide_all_equals_deciding_each(svcs: list[tuple[str | None, list[str], bool,
                                                         frozenset[str], bool]],
                                         edge: frozenset[str], excluded: frozenset[str],
                                         live: frozenset[str], ready: frozenset[str],
                                         me: str) -> None:
    nodes = {n: NodeState(n, {**({"edge": "yes"} if n in edge else {}),
                              **({EXCLUDE_LABEL: ""} if n in excluded else {})})
             for n in NODES}
    inp = Inputs(nodes, live, ready & live, CONFIG)
    state = {f"ns/s{i}": ServiceState(f"ns/s{i}", tuple(ips), pool, local, eps, serving)
             for i, (pool, ips, local, eps, serving) in enumerate(svcs)}
    election = Election()
    got = election.decide_all(me, state, inp)
    want = {k: Election().decide(me, s, inp) for k, s in state.items()}
    assert got == want
    # Another round after a membership change (n1 gone), given the first round's
    # Decisions: still deciding each, and a Decision that did not change is the very
    # same object (the speaker skips those by identity).
    after = Inputs(nodes, live - {"n1"}, ready & live - {"n1"}, CONFIG)
    again = election.decide_all(me, state, after, got)
    assert again == {k: Election().decide(me, s, after) for k, s in state.items()}
    for k, d in again.items():
        assert (d is got[k]) == (d == got[k])
    for d in got.values():  # and they are real Decisions: immutable like the others
        with pytest.raises(AttributeError):
            d.owner = "x"  # type: ignore[misc]


memberships = st.lists(st.tuples(st.frozensets(st.sampled_from(NODES)),
                                 st.frozensets(st.sampled_from(NODES))),
                       min_size=1, max_size=4)


@settings(max_examples=300, deadline=None)
@given(svcs=services, edge=st.frozensets(st.sampled_from(NODES)),
       rounds=memberships, changed=st.sets(st.integers(0, 29)), me=st.sampled_from(NODES))
def test_redecide_after_membership_changes_equals_a_full_round(
        svcs: list[tuple[str | None, list[str], bool, frozenset[str], bool]],
        edge: frozenset[str], rounds: list[tuple[frozenset[str], frozenset[str]]],
        changed: set[int], me: str) -> None:
    """After a complete round, each membership change re-decided by groups
    (`redecide`, which returns only the Decisions that changed) plus a round for the
    Services whose inputs changed meanwhile (a flipped traffic policy) leaves every
    Service with the Decision a full round from scratch gives."""
    nodes = {n: NodeState(n, {"edge": "yes"} if n in edge else {}) for n in NODES}
    state = {f"ns/s{i}": ServiceState(f"ns/s{i}", tuple(ips), pool, local, eps, serving)
             for i, (pool, ips, local, eps, serving) in enumerate(svcs)}
    election = Election()
    inp = Inputs(nodes, frozenset(NODES), frozenset(NODES), CONFIG)
    decisions = election.decide_all(me, state, inp, complete=True)
    for live, ready in rounds:
        inp = Inputs(nodes, live | {me}, (ready & live) | {me}, CONFIG)
        assert election.grouped(inp)
        new = election.redecide(me, inp)
        assert all(decisions[k] != d for k, d in new.items())  # only what changed
        decisions.update(new)
        dirty = {k: ServiceState(k, s.ips, s.pool, not s.local, s.endpoint_nodes,
                                 s.has_endpoints)
                 for i, (k, s) in enumerate(state.items()) if i in changed}
        state.update(dirty)
        decisions.update(election.decide_all(me, dirty, inp, decisions))
        assert decisions == {k: Election().decide(me, s, inp) for k, s in state.items()}

"""BGPSessionState (bgp/sessions.py): one state per peer selecting the node, what FRR
says of it, why it is not Established, and which changes deserve an Event."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from tests.speaker.frr.test_frr_readiness import UP, V6

from metallb_api.bgp import PeerConfig
from metallb_speaker.bgp.sessions import (
    NO_BFD,
    UNKNOWN,
    FRRView,
    SessionReason,
    SessionState,
    same,
    session_state,
    session_states,
    state_name,
    transition,
)
from metallb_speaker.frr.state import BFDSession

pytestmark = pytest.mark.unit
NODE = "node-1"
V4P = PeerConfig(name="router-v4", my_asn=64512, peer_asn=64500, address="198.18.0.254")
V6P = PeerConfig(name="router-v6", my_asn=64512, peer_asn=64500, address="fd00:18::fe",
                 bfd_profile="fast")
VRFP = replace(V4P, name="red", vrf="red")
SECRETP = replace(V4P, name="secret", password_secret="bgp-pass")
UNNUMBERED = PeerConfig(name="tor", my_asn=64512, dynamic_asn="external", interface="eth1")
BFD_UP = BFDSession("fd00:18::fe", "default", "up")
NOW = "2026-12-06T19:00:00Z"


@pytest.mark.parametrize(("peer", "view", "password", "bgp", "bfd", "reason", "message"), [
    (V4P, FRRView(None, [UP]), True, "Established", NO_BFD, SessionReason.ESTABLISHED,
     "session with 198.18.0.254:179 established"),
    (V4P, FRRView(None, [replace(UP, state="Active")]), True, "Active", NO_BFD,
     SessionReason.NOT_ESTABLISHED, "FRR reports the session with 198.18.0.254:179 as Active"),
    (V6P, FRRView(None, [UP, V6], [BFD_UP]), True, "Established", "up",
     SessionReason.ESTABLISHED, "session with fd00:18::fe:179 established"),
    (V6P, FRRView(None, [V6], [replace(BFD_UP, status="down")]), True, "Established", "down",
     SessionReason.ESTABLISHED, "session with fd00:18::fe:179 established"),
    (V6P, FRRView(None, [V6]), True, "Established", UNKNOWN, SessionReason.ESTABLISHED,
     "session with fd00:18::fe:179 established"),
    # FRR lists no such neighbor (yet): the push is pending
    (V4P, FRRView(None, [V6]), True, UNKNOWN, NO_BFD, SessionReason.PENDING,
     "FRR does not list this neighbor yet"),
    # the same address in the default VRF is another session
    (VRFP, FRRView(None, [UP]), True, UNKNOWN, NO_BFD, SessionReason.PENDING,
     "FRR does not list this neighbor yet"),
    (VRFP, FRRView(None, [replace(UP, vrf="red")]), True, "Established", NO_BFD,
     SessionReason.ESTABLISHED, "session with 198.18.0.254:179 established"),
    (UNNUMBERED, FRRView(None, [replace(UP, peer="eth1")]), True, "Established", NO_BFD,
     SessionReason.ESTABLISHED, "session with eth1:179 established"),
    # FRR lost: nothing FRR said before stands
    (V6P, FRRView("FRR unavailable: bgpd not running", [UP, V6], [BFD_UP]), True, UNKNOWN,
     UNKNOWN, SessionReason.FRR_UNAVAILABLE, "FRR unavailable: bgpd not running"),
    (SECRETP, FRRView(None, []), False, UNKNOWN, NO_BFD, SessionReason.PASSWORD_UNAVAILABLE,
     'the password of Secret "bgp-pass" (BGPPeer secret spec.passwordSecret) is missing or '
     "unusable (blank, or over 80 characters): no session is configured"),
])
def test_session_state(peer: PeerConfig, view: FRRView, password: bool, bgp: str, bfd: str,
                       reason: SessionReason, message: str) -> None:
    st = session_state(NODE, peer, view, password)
    assert st.peer == peer.name
    assert st.status == {"node": NODE, "peer": peer.name,
                         "peerAddress": peer.address or peer.interface,
                         "vrf": peer.vrf or "default", "bgpStatus": bgp, "bfdStatus": bfd}
    assert (st.condition.type, st.condition.status, st.condition.reason,
            st.condition.message) == ("Established", reason is SessionReason.ESTABLISHED,
                                      reason, message)


@pytest.mark.parametrize(("passwords", "reason"), [
    ({}, SessionReason.PASSWORD_UNAVAILABLE),
    ({"secret": "two words"}, SessionReason.PASSWORD_UNAVAILABLE),  # frr.conf cannot carry it
    ({"secret": "x" * 81}, SessionReason.PASSWORD_UNAVAILABLE),
    ({"secret": "s3cret"}, SessionReason.ESTABLISHED),
])
def test_a_peer_without_a_usable_password_has_no_session(passwords: dict[str, str],
                                                         reason: SessionReason) -> None:
    states = session_states(NODE, [SECRETP], FRRView(None, [UP]), passwords)
    assert [s.condition.reason for s in states.values()] == [reason]


def test_one_state_per_peer_named_after_node_and_peer() -> None:
    states = session_states(NODE, [V4P, V6P], FRRView(None, [UP, V6]), {})
    assert sorted(s.peer for s in states.values()) == ["router-v4", "router-v6"]
    assert all(name == state_name(NODE, s.peer) for name, s in states.items())


@pytest.mark.parametrize(("node", "peer"), [
    ("node-1", "router-v4"),
    ("a-b", "c"),
    ("a", "b-c"),  # the same "<node>-<peer>": the hash tells them apart
    ("n" * 253, "p" * 253),
    ("worker.example.com", "tor.rack-1"),
    ("a." + "b" * 240 + ".c", "x"),  # a cut that would end in "." or "-"
])
def test_state_names_are_valid_and_unique(node: str, peer: str) -> None:
    name = state_name(node, peer)
    assert len(name) <= 253
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*",
                        name), name
    assert name.startswith(f"{node}-{peer}"[:20])
    assert name != state_name(peer, node) or node == peer


def test_a_b_c_do_not_collide() -> None:
    assert state_name("a-b", "c") != state_name("a", "b-c")


def _st(view: FRRView, peer: PeerConfig = V4P) -> SessionState:
    return session_state(NODE, peer, view, True)


UP_ST = _st(FRRView(None, [UP]))
DOWN_ST = _st(FRRView(None, [replace(UP, state="Active")]))
CONNECT_ST = _st(FRRView(None, [replace(UP, state="Connect")]))
LOST_ST = _st(FRRView("FRR unavailable: vtysh timed out after 60.0s"))
PENDING_ST = _st(FRRView(None, []))


@pytest.mark.parametrize(("old", "new", "want"), [
    (None, UP_ST, (False, "SessionEstablished")),
    (DOWN_ST, UP_ST, (False, "SessionEstablished")),
    (UP_ST, DOWN_ST, (True, "SessionDown")),
    (UP_ST, LOST_ST, (True, "FRRUnavailable")),
    (None, LOST_ST, (True, "FRRUnavailable")),
    (LOST_ST, PENDING_ST, None),  # FRR back, the session not yet: no Event
    (PENDING_ST, DOWN_ST, None),
    (DOWN_ST, CONNECT_ST, None),  # FRR's intermediate states are not Events
    (UP_ST, UP_ST, None),
    (LOST_ST, LOST_ST, None),
])
def test_transitions_worth_an_event(old: SessionState | None, new: SessionState,
                                    want: tuple[bool, str] | None) -> None:
    t = transition(old, new)
    assert (None if t is None else (t.warning, t.reason)) == want
    if t is not None:
        assert t.message.startswith("BGPPeer router-v4: ")


def test_status_keeps_the_transition_time_while_the_condition_holds() -> None:
    first = UP_ST.full_status(None, NOW)
    assert first["conditions"][0]["lastTransitionTime"] == NOW
    later = "2026-12-06T19:05:00Z"
    assert UP_ST.full_status(first, later)["conditions"][0]["lastTransitionTime"] == NOW
    down = DOWN_ST.full_status(first, later)
    assert down["conditions"][0]["lastTransitionTime"] == later
    assert down["conditions"][0]["status"] == "False"
    assert down["bgpStatus"] == "Active"


@pytest.mark.parametrize(("held", "wanted", "want"), [
    (None, UP_ST, False),
    (UP_ST.full_status(None, NOW), UP_ST, True),
    (UP_ST.full_status(None, NOW), DOWN_ST, False),
    (DOWN_ST.full_status(None, NOW), CONNECT_ST, False),  # same condition, other bgpStatus
    ({**UP_ST.full_status(None, NOW), "conditions": []}, UP_ST, False),
    (LOST_ST.full_status(None, NOW), _st(FRRView("FRR unavailable: bgpd not running")), False),
])
def test_same_compares_what_is_said_not_when(held: dict[str, object] | None,
                                             wanted: SessionState, want: bool) -> None:
    assert same(held, wanted) is want

"""BGPSessionState: what a node's BGP sessions look like, one object per (node, peer),
for `kubectl get bgpsessionstates`. Pure: the shell (bgp/controller.py) feeds it the
peers selecting the node and FRR's probe, and writes what comes out.

MetalLB v0.15 has no such kind (session state is only in metrics); frr-k8s has
`BGPSessionState` in its own group with the same columns (node, peer, vrf, BGP, BFD).
Ours adds one condition, `Established`, whose reason says why not: FRR's own session
state (`Active`, `Connect`, ...), `FRRUnavailable` when the speaker cannot reach FRR
(the issue's "a speaker that loses its FRR process reports it"), `PasswordUnavailable`
when the peer's passwordSecret cannot be read (no session is configured then), or
`Pending` until FRR lists the neighbor.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from metallb_api.bgp import PASSWORD_MAX, PeerConfig, usable_password
from metallb_api.conditions import ConditionSpec, merge_conditions
from metallb_speaker.frr.state import BFDSession, BGPSession

KIND = "BGPSessionState"
CONDITION = "Established"
NO_BFD = "N/A"
UNKNOWN = "Unknown"
NAME_MAX = 253


class SessionReason(StrEnum):
    ESTABLISHED = "Established"
    NOT_ESTABLISHED = "NotEstablished"  # FRR has the neighbor in another state
    FRR_UNAVAILABLE = "FRRUnavailable"
    PASSWORD_UNAVAILABLE = "PasswordUnavailable"
    PENDING = "Pending"


@dataclass(frozen=True)
class FRRView:
    """What the speaker knows of its FRR: `problem` is None while FRR answers."""
    problem: str | None
    sessions: Sequence[BGPSession] = ()
    bfd: Sequence[BFDSession] = ()


@dataclass(frozen=True)
class SessionState:
    name: str  # the object's name
    peer: str  # the BGPPeer's name
    status: Mapping[str, Any]  # without conditions
    condition: ConditionSpec

    def full_status(self, held: Mapping[str, Any] | None, now: str) -> dict[str, Any]:
        """The status to write, the condition's transition time kept from `held` (the
        object's current status) while its status is unchanged."""
        current = (held or {}).get("conditions") or []
        return {**self.status, "conditions": merge_conditions(current, [self.condition], 0,
                                                              now)}


_S = TypeVar("_S", BGPSession, BFDSession)
_BAD_TAIL = re.compile(r"[^a-z0-9]+$")


def state_name(node: str, peer: str) -> str:
    """`<node>-<peer>-<hash>`: readable in `kubectl get`, unique although '-' may occur
    in both names, within the 253 characters of a name (both parts are DNS subdomains,
    so the result is one; a cut keeps it one)."""
    digest = hashlib.sha256(f"{node}\0{peer}".encode()).hexdigest()[:8]
    base = f"{node}-{peer}"[: NAME_MAX - len(digest) - 1]
    return f"{_BAD_TAIL.sub('', base)}-{digest}"


def _vrf(name: str) -> str:
    return name or "default"


def _of_peer(items: Iterable[_S], p: PeerConfig) -> _S | None:
    """FRR's entry for `p` (a BGP or a BFD session): its address, or the interface of an
    unnumbered session, in its VRF."""
    where = p.address or p.interface
    return next((s for s in items if s.peer == where and s.vrf == _vrf(p.vrf)), None)


def _bfd(view: FRRView, p: PeerConfig) -> str:
    if not p.bfd_profile:
        return NO_BFD
    b = None if view.problem is not None else _of_peer(view.bfd, p)
    return UNKNOWN if b is None else b.status


def session_state(node: str, p: PeerConfig, view: FRRView, has_password: bool) -> SessionState:
    """The state of the session `node` keeps (or should keep) with peer `p`."""
    found = None if view.problem is not None else _of_peer(view.sessions, p)
    if view.problem is not None:
        bgp, cond = UNKNOWN, ConditionSpec(CONDITION, False, SessionReason.FRR_UNAVAILABLE,
                                           view.problem)
    elif not has_password:
        bgp, cond = UNKNOWN, ConditionSpec(
            CONDITION, False, SessionReason.PASSWORD_UNAVAILABLE,
            f'the password of Secret "{p.password_secret}" (BGPPeer {p.name} '
            f"spec.passwordSecret) is missing or unusable (blank, or over {PASSWORD_MAX} "
            "characters): no session is configured")
    elif found is None:
        bgp, cond = UNKNOWN, ConditionSpec(CONDITION, False, SessionReason.PENDING,
                                           "FRR does not list this neighbor yet")
    elif found.up:
        bgp, cond = found.state, ConditionSpec(
            CONDITION, True, SessionReason.ESTABLISHED,
            f"session with {found.label} established")
    else:
        bgp, cond = found.state, ConditionSpec(
            CONDITION, False, SessionReason.NOT_ESTABLISHED,
            f"FRR reports the session with {found.label} as {found.state}")
    status = {"node": node, "peer": p.name, "peerAddress": p.address or p.interface,
              "vrf": _vrf(p.vrf), "bgpStatus": bgp, "bfdStatus": _bfd(view, p)}
    return SessionState(state_name(node, p.name), p.name, status, cond)


def session_states(node: str, peers: Iterable[PeerConfig], view: FRRView,
                   passwords: Mapping[str, str]) -> dict[str, SessionState]:
    """By object name: one per peer selecting the node. `passwords` holds the passwords
    read from passwordSecrets (a peer with a secret missing here has no session)."""
    out = {}
    for p in peers:
        has = not p.password_secret or usable_password(passwords.get(p.name, ""))
        st = session_state(node, p, view, has)
        out[st.name] = st
    return out


def same(held: Mapping[str, Any] | None, wanted: SessionState) -> bool:
    """Whether `held` (a written status) already says what `wanted` says: the fields and
    the condition's status, reason and message (not its transition time)."""
    if held is None or any(held.get(k) != v for k, v in wanted.status.items()):
        return False
    conds = [c for c in held.get("conditions") or [] if isinstance(c, Mapping)
             and c.get("type") == CONDITION]
    if len(conds) != 1:
        return False
    c, w = conds[0], wanted.condition
    return (c.get("status") == ("True" if w.status else "False")
            and c.get("reason") == w.reason and c.get("message") == w.message)


@dataclass(frozen=True)
class Transition:
    warning: bool
    reason: str  # the Event's reason
    message: str


def transition(old: SessionState | None, new: SessionState) -> Transition | None:
    """The Event a change of the session's condition deserves, if any: up, down, FRR
    lost, password unusable (not every hop between FRR's intermediate states)."""
    was = old.condition.reason if old is not None else None
    now = new.condition.reason
    if was == now:
        return None
    msg = f"BGPPeer {new.peer}: {new.condition.message}"
    if now == SessionReason.ESTABLISHED:
        return Transition(False, "SessionEstablished", msg)
    if now in (SessionReason.FRR_UNAVAILABLE, SessionReason.PASSWORD_UNAVAILABLE):
        return Transition(True, str(now), msg)
    if was == SessionReason.ESTABLISHED:
        return Transition(True, "SessionDown", msg)
    return None

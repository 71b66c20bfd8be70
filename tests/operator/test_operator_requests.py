"""The operator against the real kube-apiserver: what a Service asks for (loadBalancerIPs,
address-pool) and what it is told, as MetalLB does it: one pool per Service, and a move
the user asked for is Normal news, a failed one keeps the old address."""

from __future__ import annotations

import time
from typing import Any

import pytest
from tests.operator.conftest import OperatorEnv

from metallb_lab.kube import wait_for

pytestmark = pytest.mark.cluster

DUAL: dict[str, Any] = {"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"]}


def annotate(env: OperatorEnv, name: str, annotations: dict[str, str | None]) -> None:
    env.core.patch_namespaced_service(name, env.ns, {"metadata": {"annotations": annotations}})


def test_requested_addresses_from_two_pools_are_refused(env: OperatorEnv) -> None:
    env.pool("v4", "198.18.30.0/30")
    env.pool("v6", "fd00:30::/126")
    env.pool("both", "198.18.31.0/30", "fd00:31::/126")
    env.start()
    env.service("split", annotations={"metallb.io/loadBalancerIPs": "198.18.30.1,fd00:30::1"},
                **DUAL)
    env.service("one", annotations={"metallb.io/loadBalancerIPs": "198.18.31.1,fd00:31::1"},
                **DUAL)
    assert env.wait_ingress("one", count=2) == ["198.18.31.1", "fd00:31::1"]
    msg = env.wait_event("split", "AllocationFailed")
    assert "198.18.30.1 is in pool 'v4', fd00:30::1 is in pool 'v6'" in msg, msg
    assert "one IPAddressPool" in msg
    assert [t for t, r, _ in env.events("split") if r == "AllocationFailed"] == ["Warning"]
    assert env.ingress("split") == []
    svc = env.core.read_namespaced_service("one", env.ns)
    assert svc.metadata.annotations["metallb.io/ip-allocated-from-pool"] == "both"


def test_requested_move_is_normal_and_a_failed_one_keeps_the_address(env: OperatorEnv) -> None:
    env.pool("p", "198.18.32.0/29")
    env.pool("q", "198.18.33.0/30", autoAssign=False)
    env.start()
    env.service("s")
    assert env.wait_ingress("s") == ["198.18.32.0"]
    time.sleep(1.1)  # creationTimestamp has 1 s resolution: s must replay before holder
    env.service("holder", annotations={"metallb.io/loadBalancerIPs": "198.18.32.5"})
    assert env.wait_ingress("holder") == ["198.18.32.5"]

    # The user moves it to another pool: Normal events only.
    annotate(env, "s", {"metallb.io/address-pool": "q"})
    assert wait_for(lambda: env.ingress("s") == ["198.18.33.0"], what="moved to q")
    # Events are posted after the status write: wait for the one the move records.
    moves = wait_for(lambda: [(t, m) for t, r, m in env.events("s")
                              if r == "ClearAssignment"], what="the move's Event")
    assert moves == [("Normal", "moved from 198.18.32.0: the Service requests pool 'q'")]

    # An address someone else holds: refused, and s keeps what it has.
    annotate(env, "s", {"metallb.io/address-pool": None,
                        "metallb.io/loadBalancerIPs": "198.18.32.5"})
    msg = env.wait_event("s", "AllocationFailed")
    assert "in use by" in msg and msg.endswith("; kept 198.18.33.0"), msg
    # A pool that does not exist: the same.
    annotate(env, "s", {"metallb.io/loadBalancerIPs": None, "metallb.io/address-pool": "gone"})
    wait_for(lambda: any("'gone' does not exist; kept 198.18.33.0" in m
                         for _t, r, m in env.events("s") if r == "AllocationFailed"),
             what="failed move to 'gone' reported")
    assert env.ingress("s") == ["198.18.33.0"]
    svc = env.core.read_namespaced_service("s", env.ns)
    assert svc.metadata.annotations["metallb.io/ip-allocated-from-pool"] == "q"
    events = env.events("s")
    assert not [m for t, r, m in events if r == "ClearAssignment" and t == "Warning"], events
    assert not env.events("q", env.pool_ns, "IPAddressPool")

    # Asking for the holder's address again, then a restart: the replay (oldest first)
    # reserves every shown address before judging requests, so s, older, does not take
    # .5 before holder is replayed.
    annotate(env, "s", {"metallb.io/address-pool": None,
                        "metallb.io/loadBalancerIPs": "198.18.32.5"})
    assert env.operator is not None
    env.operator.stop()
    env.start()
    env.service("probe")  # handled after the replay's writes
    assert env.wait_ingress("probe") == ["198.18.32.0"]
    assert env.ingress("holder") == ["198.18.32.5"]
    assert env.ingress("s") == ["198.18.33.0"]

    # The holder lets go: the retry moves s to the address it asked for.
    env.core.delete_namespaced_service("holder", env.ns)
    assert wait_for(lambda: env.ingress("s") == ["198.18.32.5"], what="moved to .5")

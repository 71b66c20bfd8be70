"""metallb_lab.frr: two FRR instances in two namespaces peer over a veth; one announces a
prefix the other learns; kill/start, freeze/thaw and teardown leave nothing behind."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from metallb_lab.frr import FRR, RUN_DIR, FRRError
from metallb_lab.netns import ip

pytestmark = pytest.mark.netns

SPEAKER = """\
router bgp 64512
 bgp router-id 10.99.0.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 no bgp default ipv4-unicast
 neighbor 10.99.0.2 remote-as 64513
 neighbor 10.99.0.2 timers 1 3
 address-family ipv4 unicast
  network 192.0.2.10/32
  neighbor 10.99.0.2 activate
 exit-address-family
exit
"""
ROUTER = """\
router bgp 64513
 bgp router-id 10.99.0.2
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 neighbor 10.99.0.1 remote-as 64512
 neighbor 10.99.0.1 timers 1 3
 address-family ipv4 unicast
  neighbor 10.99.0.1 activate
 exit-address-family
exit
"""


@pytest.fixture
def pair() -> Iterator[tuple[str, str]]:
    tag = uuid.uuid4().hex[:5]
    a, b = f"mlbfrrt{tag}a", f"mlbfrrt{tag}b"
    try:
        for ns in (a, b):
            ip("netns", "add", ns)
            ip("link", "set", "lo", "up", ns=ns)
        ip("link", "add", "eth0", "netns", a, "type", "veth", "peer", "eth0", "netns", b)
        for ns, addr in ((a, "10.99.0.1/24"), (b, "10.99.0.2/24")):
            ip("addr", "add", addr, "dev", "eth0", ns=ns)
            ip("link", "set", "eth0", "up", ns=ns)
        yield a, b
    finally:
        for ns in (a, b):
            ip("netns", "del", ns, check=False)


def _routes(router: FRR) -> dict[str, Any]:
    got = router.vtysh_json("show bgp ipv4 unicast json")
    return dict(got.get("routes", {}))


def _wait(cond: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(cond)
        time.sleep(0.1)


def test_two_instances_peer_and_recover(pair: tuple[str, str]) -> None:
    a, b = pair
    with FRR(a, SPEAKER, name="speaker") as speaker, FRR(b, ROUTER, name="router") as router:
        assert speaker.socket_dir != router.socket_dir
        _wait(lambda: "192.0.2.10/32" in _routes(router))
        # a batch adds and removes prefixes
        speaker.apply_file("router bgp 64512\n address-family ipv4 unicast\n"
                           "  network 192.0.2.11/32\n  no network 192.0.2.10/32\n"
                           " exit-address-family\nexit\n")
        _wait(lambda: set(_routes(router)) == {"192.0.2.11/32"})
        with pytest.raises(FRRError, match="Unknown command"):
            speaker.apply_file("router bgp 64512\n neighbor nonsense here\nexit\n")
        # killed: the router drops the session and the route; start() brings it back
        pids = speaker.pids()
        speaker.kill()
        assert not speaker.alive()
        _wait(lambda: not _routes(router))
        speaker.start()
        assert speaker.pids() != pids
        _wait(lambda: "192.0.2.10/32" in _routes(router))
        speaker.freeze()
        speaker.thaw()
        assert speaker.alive()
        daemons = list(speaker.pids().values())
    for pid in daemons:
        assert not _pid_exists(pid)
    assert not speaker.socket_dir.exists() and not router.socket_dir.exists()
    assert not list(RUN_DIR.glob(f"{speaker.pathspace}*"))


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True

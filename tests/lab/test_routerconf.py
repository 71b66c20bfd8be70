"""metallb_lab.routerconf: the BGP lab router's configuration (BIRD 2 and FRR) and the
parsers of what it reports, on text captured from BIRD 2.0.12 / iproute2 here."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from metallb_lab.routerconf import (
    BfdTimings,
    Peer,
    RouterConfig,
    node_peers,
    parse_bfd_sessions,
    parse_kernel_routes,
    parse_protocols,
    parse_routes,
    render_bird,
    render_frr_router,
)

pytestmark = pytest.mark.unit
BIRD = shutil.which("bird")
VTYSH = shutil.which("vtysh")

BASE = RouterConfig(64500, "198.18.0.254", "198.18.0.254", "fd00:18::fe",
                    (Peer("node_1", "198.18.0.11", 64512),))
CONFIGS: dict[str, RouterConfig] = {
    "ebgp": BASE,
    "two_nodes_bfd": replace(BASE, bfd=BfdTimings(300, 200, 5), peers=node_peers(
        [("node-1", "198.18.0.11", "fd00:18::b"), ("node-2", "198.18.0.12", "fd00:18::c")],
        64512, ipv6=True, bfd=True)),
    "ibgp": replace(BASE, asn=64512),
    "password": replace(BASE, peers=(Peer("node_1", "198.18.0.11", 64512,
                                          password="s3cret-pw!"),)),
    "multihop_bfd": replace(BASE, peers=(Peer("far", "198.18.0.11", 64512, bfd=True,
                                              multihop=True),)),
    "ipv6": replace(BASE, peers=(Peer("node_1_v6", "fd00:18::b", 64512),)),
    "dual_stack_session": replace(BASE, peers=(Peer("node_1", "198.18.0.11", 64512,
                                                    families=(6, 4)),)),
    "hold_time": replace(BASE, peers=(Peer("node_1", "198.18.0.11", 64512, hold_time=3),)),
    "no_ecmp": replace(BASE, ecmp=False),
    "logged": replace(BASE, log_file="/tmp/x/bird.log"),
}


@pytest.mark.parametrize(("name", "present", "absent"), [
    ("ebgp", ["router id 198.18.0.254;", "merge paths on;",
              "protocol bgp node_1 {", "local 198.18.0.254 as 64500;",
              "neighbor 198.18.0.11 as 64512;", "ipv4 { import all; export none; };",
              "error wait time 1,5;", "connect retry time 2;", "connect delay time 2;"],
     ["protocol bfd", "bfd on", "password", "direct;", "multihop", "ipv6 { import all",
      "log \""]),
    ("two_nodes_bfd", ['interface "eth0" { min rx interval 300 ms; min tx interval 200 ms; '
                       "multiplier 5; };", "protocol bgp node_2_v6 {",
                       "neighbor fd00:18::c as 64512;", "local fd00:18::fe as 64500;",
                       "bfd on;"], ["multihop {"]),
    ("ibgp", ["direct;"], []),
    ("password", ['password "s3cret-pw!";'], []),
    ("multihop_bfd", ["multihop;", "multihop { min rx interval 100 ms;"], ["direct;"]),
    ("ipv6", ["ipv6 { import all; export none; };", "local fd00:18::fe as 64500;"],
     ["ipv4 { import all"]),
    ("dual_stack_session", ["  ipv4 { import all; export none; };\n"
                            "  ipv6 { import all; export none; };"], []),
    ("hold_time", ["hold time 3;"], []),
    ("no_ecmp", [], ["merge paths"]),
    ("logged", ['log "/tmp/x/bird.log" all;'], []),
])
def test_bird_config(name: str, present: list[str], absent: list[str]) -> None:
    text = render_bird(CONFIGS[name])
    for s in present:
        assert s in text, s
    for s in absent:
        assert s not in text, s


@pytest.mark.skipif(BIRD is None, reason="BIRD 2 is not installed (e2e/tools/setup)")
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_bird_accepts_every_config(name: str, tmp_path: Path) -> None:
    """BIRD's own parser (`bird -p`, no daemon) takes each rendered configuration."""
    conf = tmp_path / "bird.conf"
    conf.write_text(render_bird(replace(CONFIGS[name], log_file=str(tmp_path / "log"))))
    proc = subprocess.run([str(BIRD), "-p", "-c", str(conf)], capture_output=True, text=True,
                          timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr + conf.read_text()


@pytest.mark.parametrize(("name", "present", "absent"), [
    ("ebgp", ["router bgp 64500", "bgp bestpath as-path multipath-relax",
              " address-family ipv4 unicast\n  maximum-paths 64\n  maximum-paths ibgp 64\n"
              "  neighbor 198.18.0.11 activate"], ["bfd", "address-family ipv6"]),
    ("two_nodes_bfd", [" profile lab\n  receive-interval 300\n  transmit-interval 200\n"
                       "  detect-multiplier 5", "neighbor fd00:18::c bfd profile lab",
                       " address-family ipv6 unicast"], []),
    ("password", ["neighbor 198.18.0.11 password s3cret-pw!"], []),
    ("multihop_bfd", ["neighbor 198.18.0.11 ebgp-multihop"], []),
    ("hold_time", ["neighbor 198.18.0.11 timers 1 3"], []),
])
def test_frr_router_config(name: str, present: list[str], absent: list[str]) -> None:
    text = render_frr_router(CONFIGS[name])
    for s in present:
        assert s in text, s
    for s in absent:
        assert s not in text, s


@pytest.mark.skipif(VTYSH is None, reason="FRR's vtysh is not installed")
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_frr_accepts_every_router_config(name: str, tmp_path: Path) -> None:
    (tmp_path / "vtysh.conf").write_text("")
    conf = tmp_path / "frr.conf"
    conf.write_text(render_frr_router(CONFIGS[name]))
    proc = subprocess.run([str(VTYSH), "--config_dir", str(tmp_path), "-C", "-f", str(conf)],
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(("peer", "error"), [
    (lambda: Peer("node-1", "198.18.0.11", 1), "not a BIRD symbol"),
    (lambda: Peer("1node", "198.18.0.11", 1), "not a BIRD symbol"),
    (lambda: Peer("n", "198.18.0.300", 1), "does not appear to be an IPv4 or IPv6"),
    (lambda: Peer("n", "198.18.0.11", 1, families=(5,)), "only 4 and 6"),
    (lambda: Peer("n", "198.18.0.11", 1, password='a"b'), "cannot carry"),
    (lambda: Peer("n", "198.18.0.11", 1, password="a\\b"), "cannot carry"),
])
def test_invalid_peers_are_refused(peer: object, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        peer()  # type: ignore[operator]


def test_node_peers_one_per_node_and_family() -> None:
    got = node_peers([("node-1", "198.18.0.11", "fd00:18::b")], 64512, ipv6=True,
                     password="pw", bfd=True, hold_time=3)
    assert [(p.name, p.address, p.channels) for p in got] == [
        ("node_1", "198.18.0.11", (4,)), ("node_1_v6", "fd00:18::b", (6,))]
    assert all(p.password == "pw" and p.bfd and p.hold_time == 3 for p in got)


PROTOCOLS = """\
BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     2026-12-06 15:29:56
kernel4    Kernel     master4    up     2026-12-06 15:29:56
bfd1       BFD        ---        up     2026-12-06 15:29:56
n1         BGP        ---        up     2026-12-06 15:29:57  Established
n2         BGP        ---        start  2026-12-06 15:29:33  Idle          Error: BFD session down
n3         BGP        ---        start  15:29:18.123  Active        Socket: Connection closed
""" + "n4         BGP        ---        up     2026-12-06 15:29:57  Established   \n"


@pytest.mark.parametrize(("name", "proto", "state", "info", "established"), [
    ("device1", "Device", "up", "", False),
    ("n1", "BGP", "up", "Established", True),
    ("n4", "BGP", "up", "Established", True),  # BIRD pads with blanks
    ("n2", "BGP", "start", "Idle          Error: BFD session down", False),
    ("n3", "BGP", "start", "Active        Socket: Connection closed", False),
])
def test_parse_protocols(name: str, proto: str, state: str, info: str,
                         established: bool) -> None:
    got = parse_protocols(PROTOCOLS)
    assert set(got) == {"device1", "kernel4", "bfd1", "n1", "n2", "n3", "n4"}
    p = got[name]
    assert (p.proto, p.state, p.info, p.established) == (proto, state, info, established)


ROUTES = """\
BIRD 2.0.12 ready.
Table master4:
198.18.32.1/32       unicast [node_1 2026-12-06 15:32:27] * (100) [AS64512i]
\tvia 198.18.0.11 on eth0
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 64512
\tBGP.next_hop: 198.18.0.11
\tBGP.med: 0
\tBGP.local_pref: 100
\tBGP.community: (65535,666) (64512,100)
\tBGP.large_community: (64512, 1, 2)
                     unicast [node_2 2026-12-06 15:32:29] (100) [AS64512i]
\tvia 198.18.0.12 on eth0
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 64512
\tBGP.next_hop: 198.18.0.12
\tBGP.local_pref: 150
198.18.32.2/32       unicast [static1 2026-12-06 15:32:27] * (200)
\tvia 198.18.0.11 on eth0 weight 1
\tvia 198.18.0.12 on eth0 weight 1
\tType: static univ

Table master6:
fd00:32::1/128       unicast [node_1_v6 2026-12-06 15:32:27] * (100) [AS64512i]
\tvia fd00:18::b on eth0
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 64512 64513
\tBGP.next_hop: fd00:18::b fe80::7082:99ff:fecc:3e63
"""


def test_parse_routes_every_path_with_its_attributes() -> None:
    got = parse_routes(ROUTES)
    assert sorted(got) == ["198.18.32.1/32", "198.18.32.2/32", "fd00:32::1/128"]
    first, second = got["198.18.32.1/32"]
    assert (first.protocol, first.primary, first.via) == ("node_1", True, ("198.18.0.11",))
    assert (second.protocol, second.primary, second.via) == ("node_2", False,
                                                             ("198.18.0.12",))
    assert first.communities == {"65535:666", "64512:100", "large:64512:1:2"}
    assert second.communities == frozenset()
    assert (first.local_pref, second.local_pref) == (100, 150)
    assert first.as_path == (64512,)
    (merged,) = got["198.18.32.2/32"]
    assert merged.via == ("198.18.0.11", "198.18.0.12") and merged.local_pref is None
    (v6,) = got["fd00:32::1/128"]
    assert v6.as_path == (64512, 64513) and v6.via == ("fd00:18::b",)
    assert v6.attributes["BGP.next_hop"] == "fd00:18::b fe80::7082:99ff:fecc:3e63"


def test_parse_routes_of_an_empty_table() -> None:
    assert parse_routes("BIRD 2.0.12 ready.\n") == {}


@pytest.mark.parametrize(("entries", "want"), [
    ([], {}),
    ([{"dst": "198.18.32.1", "gateway": "198.18.0.11", "dev": "eth0", "protocol": "bird"}],
     {"198.18.32.1/32": {"198.18.0.11"}}),
    ([{"dst": "198.18.32.1", "protocol": "bird", "nexthops": [
        {"gateway": "198.18.0.11", "dev": "eth0", "weight": 1},
        {"gateway": "198.18.0.12", "dev": "eth0", "weight": 1}]}],
     {"198.18.32.1/32": {"198.18.0.11", "198.18.0.12"}}),
    ([{"dst": "198.18.32.0/24", "nhid": 16, "nexthops": [
        {"gateway": "198.18.0.11"}, {"gateway": "198.18.0.12"}]},
      {"dst": "198.18.0.0/24", "dev": "eth0", "protocol": "kernel"}],
     {"198.18.32.0/24": {"198.18.0.11", "198.18.0.12"}, "198.18.0.0/24": set()}),
    # IPv6 multipath as one route per next hop (older kernels), link-local next hops
    ([{"dst": "fd00:32::1", "gateway": "fe80::1", "dev": "eth0"},
      {"dst": "fd00:32::1", "gateway": "fe80::2", "dev": "eth0"}],
     {"fd00:32::1/128": {"fe80::1", "fe80::2"}}),
    ([{"dst": "default", "gateway": "198.18.64.1"}], {"default": {"198.18.64.1"}}),
])
def test_parse_kernel_routes(entries: list[dict[str, object]],
                             want: dict[str, set[str]]) -> None:
    assert parse_kernel_routes(json.dumps(entries)) == want


def test_parse_kernel_routes_of_no_output() -> None:
    assert parse_kernel_routes("") == {}


def test_parse_bfd_sessions() -> None:
    text = """\
BIRD 2.0.12 ready.
bfd1:
IP address                Interface  State      Since         Interval  Timeout
198.18.0.12               eth0       Up         2026-12-06 15:29:34    0.100    0.300
fd00:18::b                eth0       Down       2026-12-06 15:29:34    1.000    0.000
198.18.0.11               eth0       Init       2026-12-06 15:29:34    1.000    0.000
"""
    assert parse_bfd_sessions(text) == {"198.18.0.12": "Up", "fd00:18::b": "Down",
                                        "198.18.0.11": "Init"}

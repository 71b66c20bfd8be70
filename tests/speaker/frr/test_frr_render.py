"""frr.conf rendered from the BGP model, pinned by golden files (tests/speaker/frr/golden).

Each case is a set of MetalLB objects, a node, and the Services' addresses it announces;
its golden file was reviewed line by line against MetalLB's FRR mode (its templates and
golden files in internal/bgp/frr). After a deliberate change, rewrite them with
    METALLB_PY_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/speaker/frr -q
and review the diff.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.operator.builders import pool

from metallb_api.addresses import IP
from metallb_api.bgp import Advertised, BGPConfig, advertised_for, build_bgp_config
from metallb_api.config import build_config
from metallb_speaker.frr.render import render

pytestmark = pytest.mark.unit
GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("METALLB_PY_UPDATE_GOLDEN") == "1"
VTYSH = shutil.which("vtysh")
NODE = "node-a"
LABELS = {"kubernetes.io/hostname": NODE, "zone": "a"}


def _obj(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": name}, "spec": spec}


def peer(name: str, **spec: Any) -> dict[str, Any]:
    body = {"myASN": 64512, "peerASN": 64600, "peerAddress": "198.18.0.1",
            "peerPort": 179} | spec
    return _obj("BGPPeer", name, {k: v for k, v in body.items() if v is not None})


def adv(name: str, **spec: Any) -> dict[str, Any]:
    return _obj("BGPAdvertisement", name, spec)


@dataclass
class Case:
    peers: list[dict[str, Any]]
    advs: list[dict[str, Any]] = field(default_factory=lambda: [adv("all")])
    # pool -> addresses of the Services this node announces from it
    services: dict[str, list[str]] = field(default_factory=lambda: {
        "v4": ["198.51.100.10", "198.51.100.11"]})
    bfd: list[dict[str, Any]] = field(default_factory=list)
    communities: list[dict[str, Any]] = field(default_factory=list)
    passwords: dict[str, str] = field(default_factory=dict)


POOLS = [pool("v4", "198.51.100.0/24"), pool("v6", "2001:db8:100::/64"),
         pool("other", "203.0.113.0/28")]

CASES: dict[str, Case] = {
    "ebgp": Case([peer("router")]),
    "ibgp": Case([peer("router", peerASN=64512, routerID="198.18.0.10",
                       holdTime="9s", keepaliveTime="3s")]),
    "ipv6": Case([peer("router", peerAddress="fd00::1", sourceAddress="fd00::10")],
                 services={"v6": ["2001:db8:100::10"]}),
    "dual_stack": Case(
        [peer("router", dualStackAddressFamily=True)],
        services={"v4": ["198.51.100.10"], "v6": ["2001:db8:100::10"]}),
    "ipv4_and_ipv6_sessions": Case(
        [peer("r4"), peer("r6", peerAddress="fd00::1")],
        services={"v4": ["198.51.100.10"], "v6": ["2001:db8:100::10"]}),
    "md5_password": Case(
        [peer("inline", password="s3cret"),
         peer("secret", peerAddress="198.18.0.2", passwordSecret={"name": "bgp-auth"}),
         peer("unreadable", peerAddress="198.18.0.3", passwordSecret={"name": "missing"}),
         peer("injecting", peerAddress="198.18.0.4", passwordSecret={"name": "bad"})],
        passwords={"secret": "fromSecret", "injecting": "x\nrouter bgp 1"}),
    "bfd": Case(
        [peer("fast", bfdProfile="fast"),
         peer("default", peerAddress="198.18.0.2", bfdProfile="metallb-default"),
         peer("none", peerAddress="198.18.0.3")],
        bfd=[_obj("BFDProfile", "fast", {"receiveInterval": 100, "transmitInterval": 100,
                                         "detectMultiplier": 3}),
             _obj("BFDProfile", "metallb-default", {}),
             _obj("BFDProfile", "echo", {"receiveInterval": 300, "transmitInterval": 300,
                                         "detectMultiplier": 5, "echoMode": True,
                                         "echoInterval": 50, "passiveMode": True,
                                         "minimumTtl": 250}),
             _obj("BFDProfile", "unused", {"receiveInterval": 999})]),
    "bfd_echo_passive": Case(
        [peer("router", bfdProfile="echo", ebgpMultiHop=True)],
        [adv("v4-only", ipAddressPools=["v4"])],  # echo mode cannot serve IPv6 pools
        bfd=[_obj("BFDProfile", "echo", {"receiveInterval": 300, "transmitInterval": 300,
                                         "detectMultiplier": 5, "echoMode": True,
                                         "echoInterval": 50, "passiveMode": True,
                                         "minimumTtl": 250})]),
    "communities": Case(
        [peer("router")],
        [adv("tagged", communities=["65535:666", "large:64512:1:2", "gold"])],
        communities=[_obj("Community", "names", {"communities": [
            {"name": "gold", "value": "64512:100"}]})]),
    "local_pref": Case(
        [peer("ibgp", peerASN=64512), peer("ebgp", peerAddress="198.18.0.2")],
        [adv("pref", localPref=150, communities=["64512:7"])]),
    "aggregation": Case(
        [peer("router", dualStackAddressFamily=True)],
        [adv("agg", aggregationLength=24, aggregationLengthV6=64, ipAddressPools=["v4", "v6"]),
         adv("hosts", ipAddressPools=["v4"], communities=["1:1"])],
        services={"v4": ["198.51.100.10", "198.51.100.11", "198.51.100.200"],
                  "v6": ["2001:db8:100::10", "2001:db8:100::11"]}),
    "peers_with_different_advertisements": Case(
        [peer("transit"), peer("internal", peerAddress="198.18.0.2", peerASN=64512)],
        [adv("to-transit", peers=["transit"], communities=["64600:1"],
             ipAddressPools=["v4"]),
         adv("to-internal", peers=["internal"], localPref=200,
             ipAddressPools=["v4", "other"])],
        services={"v4": ["198.51.100.10"], "other": ["203.0.113.5"]}),
    "vrf": Case(
        [peer("default"), peer("red", vrf="red", peerAddress="198.18.1.1", myASN=64513,
                                routerID="198.18.1.10")],
        [adv("both", communities=["1:2"])]),
    "graceful_restart": Case(
        [peer("asks", enableGracefulRestart=True),
         peer("does-not", peerAddress="198.18.0.2")]),
    "session_options": Case(
        [peer("multihop", peerASN=None, dynamicASN="external", peerAddress="192.0.2.1",
              ebgpMultiHop=True, holdTime="3s", connectTime="10s", peerPort=1179,
              localASN=64700,
              sourceAddress="198.18.0.10"),
         peer("unnumbered", peerASN=None, dynamicASN="internal", peerAddress=None,
              interface="eth1", keepaliveTime="1s")]),
    "nothing_to_announce": Case([peer("router")], services={}),
    "node_not_selected": Case(
        [peer("here", nodeSelectors=[{"matchLabels": {"zone": "a"}}]),
         peer("elsewhere", peerAddress="198.18.0.2",
              nodeSelectors=[{"matchLabels": {"zone": "b"}}])],
        [adv("here-only", nodeSelectors=[{"matchLabels": {"zone": "a"}}]),
         adv("not-here", nodeSelectors=[{"matchLabels": {"zone": "b"}}],
             communities=["9:9"])]),
}


def _model(case: Case) -> tuple[BGPConfig, list[Advertised]]:
    config = build_bgp_config(build_config(POOLS), case.peers, case.advs, case.bfd,
                              case.communities)
    assert config.problems == (), config.problems
    advertised = [a for pool_name, ips in sorted(case.services.items())
                  for a in advertised_for(config, pool_name, [IP.parse(i) for i in ips],
                                          LABELS)]
    return config, advertised


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str) -> None:
    config, advertised = _model(CASES[name])
    text = render(config, NODE, LABELS, advertised, passwords=CASES[name].passwords)
    path = GOLDEN / f"{name}.conf"
    if UPDATE:
        path.write_text(text)
    assert text == path.read_text(), f"{path} differs (see the module docstring)"


@pytest.mark.parametrize("name", sorted(CASES))
def test_deterministic_whatever_the_input_order(name: str) -> None:
    case = CASES[name]
    config, advertised = _model(case)
    shuffled = Case(case.peers[::-1], case.advs[::-1],
                    {k: v[::-1] for k, v in reversed(case.services.items())},
                    case.bfd[::-1], case.communities, case.passwords)
    config2, advertised2 = _model(shuffled)
    assert (render(config, NODE, LABELS, advertised, passwords=case.passwords)
            == render(config2, NODE, LABELS, advertised2[::-1], passwords=case.passwords))


@pytest.mark.parametrize(("name", "present", "absent"), [
    ("ebgp", ["no bgp ebgp-requires-policy", "no bgp network import-check",
              "no bgp default ipv4-unicast", "neighbor 198.18.0.1 activate",
              "neighbor 198.18.0.1 graceful-restart-disable"],
     ["bgp graceful-restart preserve-fw-state", "set local-preference"]),
    ("graceful_restart", ["bgp graceful-restart preserve-fw-state",
                          "neighbor 198.18.0.1 graceful-restart\n",
                          "neighbor 198.18.0.2 graceful-restart-disable"], []),
    ("local_pref", ["route-map 198.18.0.1-out permit 1\n match tag 794142014\n"
                    " set local-preference 150\n set community 64512:7 additive",
                    # the eBGP neighbor gets the same prefixes, without LOCAL_PREF
                    "route-map 198.18.0.2-out permit 1\n match tag 794142014\n"
                    " set community 64512:7 additive\nexit"], []),
    ("md5_password", ["neighbor 198.18.0.1 password s3cret",
                      "neighbor 198.18.0.2 password fromSecret"],
     # a Secret that could not be read, or whose password would break frr.conf: no session
     ["198.18.0.3", "198.18.0.4", "router bgp 1"]),
    ("bfd", ["neighbor 198.18.0.1 bfd profile fast", " profile metallb-default\n exit"],
     ["unused", "neighbor 198.18.0.3 bfd"]),
    ("node_not_selected", ["neighbor 198.18.0.1 remote-as"], ["198.18.0.2", "9:9"]),
    ("ipv6", ["neighbor fd00::1 disable-connected-check",
              "network 2001:db8:100::10/128 route-map mlb-tag-"],
     ["address-family ipv4 unicast"]),
    ("nothing_to_announce", ["route-map 198.18.0.1-out deny 65535"],
     ["  network ", "mlb-tag-", "prefix-list"]),
    ("aggregation", ["network 198.51.100.0/24", "network 2001:db8:100::/64",
                     "network 198.51.100.200/32"], ["network 198.51.100.0/32"]),
])
def test_statements(name: str, present: list[str], absent: list[str]) -> None:
    config, advertised = _model(CASES[name])
    text = render(config, NODE, LABELS, advertised, passwords=CASES[name].passwords)
    for line in present:
        assert line in text, line
    for line in absent:
        assert line not in text, line


@pytest.mark.skipif(VTYSH is None, reason="FRR's vtysh is not installed")
@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_file_is_valid_frr_syntax(name: str, tmp_path: Path) -> None:
    """FRR's own parser (`vtysh --dryrun`, no daemon needed) accepts every golden file:
    FRR 8.4.4 (Debian 12) accepted all of them when they were written."""
    (tmp_path / "vtysh.conf").write_text("")
    proc = subprocess.run([str(VTYSH), "--config_dir", str(tmp_path), "-C", "-f",
                           str(GOLDEN / f"{name}.conf")],
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(("peers", "node_router_id", "want"), [
    # none set: the node's address, not whatever zebra would pick (a Service address)
    ([peer("a")], "198.18.0.11", [" bgp router-id 198.18.0.11"]),
    ([peer("a", routerID="10.0.0.1")], "198.18.0.11", [" bgp router-id 10.0.0.1"]),
    ([peer("a")], "", []),  # IPv6-only node: FRR's choice (or the peers')
    # a VRF's router is left alone: the node's address may not be in it
    ([peer("a"), peer("b", peerAddress="198.18.0.2", vrf="red")], "198.18.0.11",
     [" bgp router-id 198.18.0.11"]),
])
def test_router_id_defaults_to_the_nodes_address(peers: list[dict[str, Any]],
                                                 node_router_id: str,
                                                 want: list[str]) -> None:
    config, advertised = _model(Case(peers))
    text = render(config, NODE, LABELS, advertised, node_router_id=node_router_id)
    assert [line for line in text.splitlines() if "router-id" in line] == want

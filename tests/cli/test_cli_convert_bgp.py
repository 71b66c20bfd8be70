"""`metallbctl convert`: MetalLB v0.12's BGP sections (`peers`, `bfd-profiles`,
`bgp-communities`, bgp pools' `bgp-advertisements`) become BGPPeer, BFDProfile, Community
and BGPAdvertisement objects as MetalLB's own configmaptocrs names and fills them; the
result passes the CRD schemas and the BGP model, and round-trips through YAML."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from metallb_api.bgp import build_bgp_config
from metallb_api.config import build_config
from metallb_operator.cli import (
    BGP_MODE_NOTE,
    EXIT_OK,
    Document,
    convert_configmap,
    convert_report,
    dump_manifests,
    load_documents,
    read_crd_schemas,
    validate_documents,
)

pytestmark = pytest.mark.unit
SCHEMAS = read_crd_schemas(Path(__file__).resolve().parents[2] / "crds")
NS = "metallb-system"


def configmap(config: str) -> str:
    body = textwrap.indent(textwrap.dedent(config), "    ")
    return ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config, namespace: "
            f"metallb-system}}\ndata:\n  config: |\n{body}")


FULL = """\
    peers:
    - peer-address: 10.0.0.1
      peer-asn: 64501
      my-asn: 64500
      peer-port: 1179
      source-address: 10.0.0.10
      router-id: 10.0.0.10
      ebgp-multihop: true
      bfd-profile: fast
      node-selectors:
      - match-labels: {rack: a}
        match-expressions:
        - {key: zone, operator: In, values: [z1, z2]}
    - peer-address: 10.0.0.2
      peer-asn: 64500
      my-asn: 64500
      router-id: 10.0.0.10
      hold-time: 9s
      keepalive-time: 3s
      password: secret
    bfd-profiles:
    - name: fast
      receive-interval: 100
      transmit-interval: 100
      detect-multiplier: 3
      echo-interval: 50
      echo-mode: false
      passive-mode: true
      minimum-ttl: 254
    bgp-communities:
      silver: large:64500:1:2
      gold: 64500:100
    address-pools:
    - name: l2
      protocol: layer2
      addresses: [10.0.1.0/28]
    - name: bgp-pool
      protocol: bgp
      addresses: [10.0.2.0/24, "fd00:2::/120"]
      bgp-advertisements:
      - aggregation-length: 32
        localpref: 100
        communities: [gold, "1:2"]
      - aggregation-length: 24
        aggregation-length-v6: 120
        communities: [silver]
    - name: bgp-bare
      protocol: bgp
      addresses: [10.0.3.0/28]
    """


def _by_kind(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def test_full_v012_bgp_configuration() -> None:
    conv = convert_configmap(load_documents(configmap(FULL)))
    assert conv.errors == []
    peers = _by_kind(conv.manifests, "BGPPeer")
    assert {n: m["apiVersion"] for n, m in peers.items()} == {
        "peer1": "metallb.io/v1beta2", "peer2": "metallb.io/v1beta2"}
    assert peers["peer1"]["spec"] == {
        "peerAddress": "10.0.0.1", "peerASN": 64501, "myASN": 64500, "peerPort": 1179,
        "sourceAddress": "10.0.0.10", "routerID": "10.0.0.10", "ebgpMultiHop": True,
        "bfdProfile": "fast", "holdTime": "90s",  # v0.12's default, written out
        "nodeSelectors": [{"matchLabels": {"rack": "a"}, "matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["z1", "z2"]}]}]}
    assert peers["peer2"]["spec"] == {
        "peerAddress": "10.0.0.2", "peerASN": 64500, "myASN": 64500, "routerID": "10.0.0.10",
        "holdTime": "9s", "keepaliveTime": "3s", "password": "secret"}
    assert _by_kind(conv.manifests, "BFDProfile")["fast"]["spec"] == {
        "receiveInterval": 100, "transmitInterval": 100, "detectMultiplier": 3,
        "echoInterval": 50, "echoMode": False, "passiveMode": True, "minimumTtl": 254}
    assert _by_kind(conv.manifests, "Community")["communities"]["spec"] == {"communities": [
        {"name": "gold", "value": "64500:100"}, {"name": "silver", "value": "large:64500:1:2"}]}
    advs = _by_kind(conv.manifests, "BGPAdvertisement")
    assert {n: m["spec"] for n, m in advs.items()} == {
        "bgpadvertisement1": {"aggregationLength": 32, "localPref": 100,
                              "communities": ["gold", "1:2"], "ipAddressPools": ["bgp-pool"]},
        "bgpadvertisement2": {"aggregationLength": 24, "aggregationLengthV6": 120,
                              "communities": ["silver"], "ipAddressPools": ["bgp-pool"]},
        "bgpadvertisement3": {"ipAddressPools": ["bgp-bare"]},  # a bgp pool without any
    }
    assert set(_by_kind(conv.manifests, "L2Advertisement")) == {"l2"}
    # the bgp pools are announced in BGP mode: no warning, a note says how it is turned on
    assert conv.warnings == []
    assert conv.notes == [BGP_MODE_NOTE]

    # valid for the API server's schemas and for the model the operator runs
    docs = [Document("<converted>", i, m) for i, m in enumerate(conv.manifests, start=1)]
    assert validate_documents(docs, SCHEMAS).code == EXIT_OK
    config = build_config([m for m in conv.manifests if m["kind"] == "IPAddressPool"])
    bgp = build_bgp_config(config, *([m for m in conv.manifests if m["kind"] == k]
                                     for k in ("BGPPeer", "BGPAdvertisement", "BFDProfile",
                                               "Community")))
    assert bgp.problems == ()
    assert [str(c) for c in bgp.advertisements["bgpadvertisement1"].communities] == [
        "1:2", "64500:100"]
    # round trip: what kubectl reads back is what was built
    assert list(yaml.safe_load_all(dump_manifests(conv.manifests))) == conv.manifests


def test_report_counts_every_kind() -> None:
    report = convert_report(load_documents(configmap(FULL)), NS)
    assert report.code == EXIT_OK
    assert [e for e in report.err if e.startswith(("warning:", "note:"))] == [
        f"note: {BGP_MODE_NOTE}"]
    assert report.err[-1] == (
        "converted 3 IPAddressPool(s), 1 L2Advertisement(s), 2 BGPPeer(s), 1 BFDProfile(s), "
        "1 Community(s), 3 BGPAdvertisement(s) into namespace metallb-system")


@pytest.mark.parametrize(("config", "error"), [
    ("peers:\n- {peer-address: 10.0.0.1, peer-asn: 1, my-asn: 2, hold-time: 2s}\n",
     "BGPPeer/peer1: InvalidSpec: spec.holdTime: '2s' must be 0 or at least 3s"),
    ("peers:\n- {peer-address: 10.0.0.1, peer-asn: 1, my-asn: 2, bfd-profile: nope}\n",
     "BGPPeer/peer1: BFDProfileNotFound"),
    ("peers: {peer-address: 10.0.0.1}\n", "peers: expected a list, got a mapping"),
    ("peers:\n- just-a-string\n", "peers[0]: expected a mapping, got a string"),
    ("bfd-profiles:\n- {name: Fast_Profile}\n", "bfd-profiles[0]: name: 'Fast_Profile' is not"),
    ("bgp-communities: [a]\n", "bgp-communities: expected a mapping of name to value"),
    ("bgp-communities: {gold: '1:2:3'}\n", "Community/communities: InvalidSpec"),
])
def test_invalid_bgp_sections_are_errors(config: str, error: str) -> None:
    text = config + "address-pools:\n- {name: p, protocol: bgp, addresses: [10.0.2.0/28]}\n"
    conv = convert_configmap(load_documents(configmap(text)))
    assert conv.manifests == []
    assert any(error in e for e in conv.errors), conv.errors


def test_unknown_fields_are_warned_about() -> None:
    text = ("peers:\n- {peer-address: 10.0.0.1, peer-asn: 1, my-asn: 2, colour: blue}\n"
            "address-pools:\n- {name: p, protocol: bgp, addresses: [10.0.2.0/28], "
            "bgp-advertisements: [{aggregation-length: 32, shape: round}]}\n")
    conv = convert_configmap(load_documents(configmap(text)))
    assert conv.errors == []
    assert "peers[0]: unknown field 'colour' ignored" in conv.warnings
    assert ("address-pools[0] (p): bgp-advertisements[0]: unknown field 'shape' ignored"
            in conv.warnings)

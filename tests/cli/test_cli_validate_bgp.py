"""`metallbctl validate` checks the BGP kinds with the operator's pure rules
(`metallb_api.bgp`): problems fail, notes are printed, valid objects are summarised."""

from __future__ import annotations

from pathlib import Path

import pytest

from metallb_operator.cli import (
    BGP_MODE_NOTE,
    EXIT_OK,
    EXIT_PROBLEMS,
    load_documents,
    read_crd_schemas,
    validate_documents,
)

pytestmark = pytest.mark.unit
CRD_DIR = Path(__file__).resolve().parents[2] / "crds"

POOL = """apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: pool}
spec: {addresses: [198.51.100.0/24]}
"""


def peer(name: str, spec: str, version: str = "v1beta2") -> str:
    return f"apiVersion: metallb.io/{version}\nkind: BGPPeer\nmetadata: {{name: {name}}}\n" \
           f"spec: {spec}\n"


def doc(kind: str, name: str, spec: str) -> str:
    return f"apiVersion: metallb.io/v1beta1\nkind: {kind}\nmetadata: {{name: {name}}}\n" \
           f"spec: {spec}\n"


ROUTER = "{myASN: 64512, peerASN: 64600, peerAddress: 198.18.0.1}"


def run(*docs: str) -> tuple[int, list[str], list[str]]:
    report = validate_documents(load_documents("---\n".join((POOL, *docs)), "f.yaml"),
                                read_crd_schemas(CRD_DIR))
    return report.code, report.out, report.err


def test_valid_bgp_objects_are_summarised() -> None:
    code, out, err = run(
        peer("router", ROUTER[:-1] + ", bfdProfile: fast}"),
        peer("legacy", "{myASN: 64512, peerASN: 64601, peerAddress: 198.18.0.2}", "v1beta1"),
        doc("BFDProfile", "fast", "{receiveInterval: 100}"),
        doc("Community", "names", "{communities: [{name: gold, value: '64512:1'}]}"),
        doc("BGPAdvertisement", "adv", "{communities: [gold], peers: [router]}"))
    assert code == EXIT_OK, out
    assert "BGPPeer/router: AS 64512 to AS 64600 at 198.18.0.1; BFD profile fast" in out
    assert "BGPPeer/legacy: AS 64512 to AS 64601 at 198.18.0.2" in out
    assert "BGPAdvertisement/adv: announces pool to router; communities 64512:1" in out
    assert "BFDProfile/fast: valid" in out
    # the pool only a BGPAdvertisement selects is announced (in BGP mode): no warning, and
    # a note says how BGP mode is turned on
    assert [e for e in err if "warning" in e] == []
    assert f"note: {BGP_MODE_NOTE}" in err
    assert "speaker.frr.enabled=true" in BGP_MODE_NOTE


@pytest.mark.parametrize(("docs", "expected"), [
    ([peer("router", ROUTER[:-1] + ", holdTime: 2s}")],
     "BGPPeer/router: InvalidSpec: spec.holdTime: '2s' must be 0 or at least 3s"),
    ([peer("router", ROUTER[:-1] + ", bfdProfile: missing}")],
     "BGPPeer/router: BFDProfileNotFound: spec.bfdProfile: no BFDProfile named 'missing'"),
    ([peer("a", ROUTER), peer("b", "{myASN: 1, peerASN: 2, peerAddress: 198.18.0.2}")],
     "BGPPeer/b: ConflictingMyASN: spec.myASN: 1 differs from 64512 of BGPPeer 'a'"),
    ([doc("BGPAdvertisement", "adv", "{communities: [silver]}")],
     "BGPAdvertisement/adv: UnknownCommunity: spec.communities[0]: 'silver'"),
    ([doc("BGPAdvertisement", "adv", "{aggregationLength: 16}")],
     "BGPAdvertisement/adv: AggregationLengthTooShort: spec.aggregationLength: 16 is shorter"),
    ([doc("BFDProfile", "b", "{detectMultiplier: 1}")],
     "BFDProfile/b: InvalidSpec: spec.detectMultiplier"),
    ([doc("BFDProfile", "b", "{detectMultiplyer: 3}")],
     'BFDProfile/b: UnknownField: f.yaml (document 2): BFDProfile in version "v1beta1" '
     'cannot be handled'),
])
def test_bgp_problems_fail(docs: list[str], expected: str) -> None:
    code, out, _ = run(*docs)
    assert code == EXIT_PROBLEMS
    assert any(line.startswith(expected) for line in out), out


def test_local_pref_towards_ebgp_is_a_note() -> None:
    code, _, err = run(peer("router", ROUTER),
                       doc("BGPAdvertisement", "adv", "{localPref: 50}"))
    assert code == EXIT_OK
    assert any("BGPAdvertisement/adv: LocalPrefNotSentToEBGP" in e for e in err), err


@pytest.mark.parametrize(("docs", "warning"), [
    pytest.param([peer("router", ROUTER), doc("BGPAdvertisement", "adv", "{}")], None,
                 id="selected-by-bgp-only-is-announced"),
    pytest.param([doc("BGPAdvertisement", "other",
                      "{ipAddressPoolSelectors: [{matchLabels: {x: y}}]}")],
                 "warning: IPAddressPool/pool: no L2Advertisement or BGPAdvertisement selects "
                 "it: its addresses would be assigned but not announced",
                 id="selected-by-nothing-is-warned"),
])
def test_a_pool_a_bgp_advertisement_selects_is_announced(docs: list[str],
                                                         warning: str | None) -> None:
    code, _, err = run(*docs)
    assert code == EXIT_OK  # warnings and notes never fail
    assert [e for e in err if e.startswith("warning:")] == ([warning] if warning else []), err
    assert not [e for e in err if "issue 10" in e or "not announce over BGP" in e], err
    # whenever BGPAdvertisements are given: how BGP mode is turned on, once
    assert [e for e in err if "speaker.frr.enabled" in e] == [f"note: {BGP_MODE_NOTE}"], err


def test_no_bgp_mode_note_without_bgp_advertisements() -> None:
    code, _, err = run(peer("router", ROUTER), doc("L2Advertisement", "l2", "{}"))
    assert code == EXIT_OK
    assert not [e for e in err if "BGP mode" in e], err

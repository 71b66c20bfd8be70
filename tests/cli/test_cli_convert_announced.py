"""`metallbctl convert` never hands out a pool that no advertisement announces without
saying so: every converted IPAddressPool is named by a converted L2Advertisement (layer2
pools) or BGPAdvertisement (bgp pools, announced in BGP mode), or else by a warning that
names the pool; the converted output is also strictly valid against the CRD schemas (no
field the apiserver would refuse)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from metallb_api.bgp import build_bgp_config
from metallb_api.config import build_config
from metallb_operator.cli import (
    EXIT_OK,
    Document,
    convert_configmap,
    convert_report,
    load_documents,
    read_crd_schemas,
    validate_documents,
)

pytestmark = pytest.mark.unit

SCHEMAS = read_crd_schemas(Path(__file__).resolve().parents[2] / "crds")


def configmap(pools: str) -> str:
    body = textwrap.indent(textwrap.dedent(pools), "    ")
    return ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config, namespace: "
            f"metallb-system}}\ndata:\n  config: |\n{body}")


CONFIGS = [
    pytest.param("""\
        address-pools:
        - {name: l2, protocol: layer2, addresses: [10.0.1.0/28]}
        """, set(), id="layer2-only"),
    pytest.param("""\
        address-pools:
        - {name: only-bgp, protocol: bgp, addresses: [10.0.2.0/28]}
        """, {"only-bgp"}, id="bgp-only"),
    pytest.param("""\
        address-pools:
        - {name: l2, protocol: layer2, addresses: [10.0.1.0/28]}
        - {name: b1, protocol: bgp, addresses: [10.0.2.0/28], auto-assign: false}
        - {name: b2, protocol: bgp, addresses: ["fd00:2::/120"]}
        """, {"b1", "b2"}, id="mixed"),
]


def _kind(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] == kind]


@pytest.mark.parametrize(("config", "over_bgp"), CONFIGS)
def test_every_pool_is_announced_or_named_in_a_warning(config: str, over_bgp: set[str]) -> None:
    conv = convert_configmap(load_documents(configmap(config)))
    assert not conv.errors
    pools = _kind(conv.manifests, "IPAddressPool")
    l2 = build_config(pools, _kind(conv.manifests, "L2Advertisement"))
    bgp = build_bgp_config(l2, *(_kind(conv.manifests, k) for k in (
        "BGPPeer", "BGPAdvertisement", "BFDProfile", "Community")))
    names = {p["metadata"]["name"] for p in pools}
    # bgp pools are announced by their BGPAdvertisements (BGP mode), the others over layer 2
    assert bgp.advertised_pools() == over_bgp
    assert names - l2.advertised_pools() == over_bgp
    unannounced = names - l2.advertised_pools() - bgp.advertised_pools()
    assert unannounced == set()
    # a pool is named in a "not announced" warning exactly when nothing announces it
    assert {w.split(":")[0].removeprefix("IPAddressPool/") for w in conv.warnings
            if "not announced" in w} == unannounced, conv.warnings
    # And the report a user sees: no warning, and with BGP pools how BGP mode is turned on.
    report = convert_report(load_documents(configmap(config)), "metallb-system")
    assert not [e for e in report.err if e.startswith("warning:")], report.err
    assert bool([e for e in report.err if "speaker.frr.enabled=true" in e]) == bool(over_bgp)


@pytest.mark.parametrize(("config", "over_bgp"), CONFIGS)
def test_converted_objects_have_no_unknown_fields(config: str, over_bgp: set[str]) -> None:
    conv = convert_configmap(load_documents(configmap(config)))
    report = validate_documents([Document("<converted>", i, m) for i, m in
                                 enumerate(conv.manifests, start=1)], SCHEMAS)
    assert report.code == EXIT_OK, report

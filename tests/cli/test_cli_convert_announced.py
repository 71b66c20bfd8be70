"""`metallbctl convert` never hands out a pool that no advertisement announces without
saying so: every converted IPAddressPool is either named by a converted L2Advertisement
or by a warning that names the pool; the converted output is also strictly valid against
the CRD schemas (no field the apiserver would refuse)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

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


@pytest.mark.parametrize(("config", "unannounced"), CONFIGS)
def test_every_unannounced_pool_is_named_in_a_warning(config: str,
                                                      unannounced: set[str]) -> None:
    conv = convert_configmap(load_documents(configmap(config)))
    assert not conv.errors
    pools = [m for m in conv.manifests if m["kind"] == "IPAddressPool"]
    advs = [m for m in conv.manifests if m["kind"] == "L2Advertisement"]
    announced = build_config(pools, advs).advertised_pools()
    names = {p["metadata"]["name"] for p in pools}
    assert names - announced == unannounced
    for name in unannounced:
        assert [w for w in conv.warnings if w.startswith(f"IPAddressPool/{name}: ")
                and "not announced" in w], conv.warnings
    # And the report a user sees carries the warning on stderr.
    report = convert_report(load_documents(configmap(config)), "metallb-system")
    for name in unannounced:
        assert any(e.startswith(f"warning: IPAddressPool/{name}: ") for e in report.err)


@pytest.mark.parametrize(("config", "unannounced"), CONFIGS)
def test_converted_objects_have_no_unknown_fields(config: str, unannounced: set[str]) -> None:
    conv = convert_configmap(load_documents(configmap(config)))
    report = validate_documents([Document("<converted>", i, m) for i, m in
                                 enumerate(conv.manifests, start=1)], SCHEMAS)
    assert report.code == EXIT_OK, report

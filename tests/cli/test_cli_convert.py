"""`metallbctl convert`: MetalLB v0.12 ConfigMap -> metallb.io/v1beta1 IPAddressPools and
L2Advertisements; the output always passes `metallbctl validate`."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from metallb_operator.cli import (
    BGP_MODE_NOTE,
    EXIT_INPUT,
    EXIT_OK,
    EXIT_PROBLEMS,
    InputError,
    convert_configmap,
    dump_manifests,
    load_documents,
    main,
    validate_documents,
)

pytestmark = pytest.mark.unit

# Verbatim from the seed (/work/shared/seed/metallb-v0.12-seed.md, "配置Ip池").
SEED_CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  namespace: metallb-system
  name: config
data:
  config: |
    address-pools:
    - name: my-ip-space
      protocol: layer2
      addresses:
      - 10.10.13.41-10.10.13.42
"""

SEED_EXPECTED = """\
# Converted by metallbctl from MetalLB v0.12 ConfigMap metallb-system/config.
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: my-ip-space
  namespace: metallb-system
spec:
  addresses:
  - 10.10.13.41-10.10.13.42
  autoAssign: true
  avoidBuggyIPs: false
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata:
  name: my-ip-space
  namespace: metallb-system
spec:
  ipAddressPools:
  - my-ip-space
"""


def configmap(config: str, name: str = "config", namespace: str = "metallb-system") -> str:
    body = textwrap.indent(textwrap.dedent(config), "    ")
    return (f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: "
            f"{namespace}}}\ndata:\n  config: |\n{body}")


def pool(name: str, addresses: list[str], namespace: str = "metallb-system",
         **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"addresses": addresses, "autoAssign": spec.get("autoAssign", True),
                     "avoidBuggyIPs": spec.get("avoidBuggyIPs", False)}}


def adv(name: str, namespace: str = "metallb-system") -> dict[str, Any]:
    return {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"ipAddressPools": [name]}}


def test_seed_configmap_converts_to_the_expected_manifests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(SEED_CONFIGMAP)
    assert main(["convert", "-f", str(path)]) == EXIT_OK
    captured = capsys.readouterr()
    assert captured.out == SEED_EXPECTED
    assert captured.err == ("converted 1 IPAddressPool(s) and 1 L2Advertisement(s) into "
                            "namespace metallb-system\n")


def test_seed_round_trips_through_validate(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(SEED_CONFIGMAP))
    assert main(["convert", "-f", "-"]) == EXIT_OK
    converted = capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO(converted))
    assert main(["validate", "-f", "-"]) == EXIT_OK
    assert capsys.readouterr().out.splitlines() == [
        "IPAddressPool/my-ip-space: 10.10.13.41-10.10.13.42; usable IPv4: 2, IPv6: 0",
        "L2Advertisement/my-ip-space: announces my-ip-space",
    ]


def test_seed_configmap_among_the_whole_v012_install_manifest() -> None:
    """The seed applies metallb.yaml and the ConfigMap; either file may be handed over."""
    install = textwrap.dedent("""\
        apiVersion: v1
        kind: Namespace
        metadata: {name: metallb-system, labels: {app: metallb}}
        ---
        apiVersion: policy/v1beta1
        kind: PodSecurityPolicy
        metadata: {name: controller}
        spec: {privileged: false}
        ---
        apiVersion: apps/v1
        kind: DaemonSet
        metadata: {name: speaker, namespace: metallb-system}
        spec:
          template:
            spec:
              containers:
              - args: [--port=7472, --config=config]
        """)
    conv = convert_configmap(load_documents(install + "---\n" + SEED_CONFIGMAP))
    assert conv.errors == []
    assert conv.manifests == [pool("my-ip-space", ["10.10.13.41-10.10.13.42"]),
                              adv("my-ip-space")]


CASES = [
    pytest.param(
        """\
        address-pools:
        - name: default
          protocol: layer2
          addresses: [198.51.100.0/24, "2001:db8:1::/64"]
          avoid-buggy-ips: true
        - name: manual
          protocol: layer2
          auto-assign: false
          addresses: [192.0.2.10 - 192.0.2.20]
        """,
        [pool("default", ["198.51.100.0/24", "2001:db8:1::/64"], avoidBuggyIPs=True),
         pool("manual", ["192.0.2.10 - 192.0.2.20"], autoAssign=False),
         adv("default"), adv("manual")],
        [],
        id="flags-camelcased-dual-stack"),
    pytest.param(
        """\
        peers:
        - peer-address: 10.0.0.1
          peer-asn: 64501
          my-asn: 64500
        address-pools:
        - name: l2
          protocol: layer2
          addresses: [10.0.1.0/28]
        - name: bgp-pool
          protocol: bgp
          addresses: [10.0.2.0/28]
          bgp-advertisements:
          - aggregation-length: 32
        """,
        [pool("l2", ["10.0.1.0/28"]), pool("bgp-pool", ["10.0.2.0/28"]), adv("l2"),
         {"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
          "metadata": {"name": "peer1", "namespace": "metallb-system"},
          "spec": {"peerAddress": "10.0.0.1", "peerASN": 64501, "myASN": 64500,
                   "holdTime": "90s"}},
         {"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
          "metadata": {"name": "bgpadvertisement1", "namespace": "metallb-system"},
          "spec": {"aggregationLength": 32, "ipAddressPools": ["bgp-pool"]}}],
        [],  # announced in BGP mode: no warning (a note says how it is turned on)
        id="bgp-converted-announced-in-bgp-mode"),
    pytest.param(
        """\
        address-pools:
        - name: p
          protocol: layer2
          addresses: [10.0.3.0/24]
          colour: blue
        """,
        [pool("p", ["10.0.3.0/24"]), adv("p")],
        ["address-pools[0] (p): unknown field 'colour' ignored"],
        id="unknown-field-warned"),
]


@pytest.mark.parametrize(("config", "manifests", "warnings"), CASES)
def test_conversion(config: str, manifests: list[dict[str, Any]], warnings: list[str]) -> None:
    conv = convert_configmap(load_documents(configmap(config)))
    assert conv.errors == []
    assert conv.manifests == manifests
    assert len(conv.warnings) == len(warnings)
    for got, want in zip(conv.warnings, warnings, strict=True):
        assert want in got
    # BGP objects are announced in BGP mode: a note says how it is turned on, only then
    bgp = any(m["kind"] == "BGPAdvertisement" for m in manifests)
    assert conv.notes == ([BGP_MODE_NOTE] if bgp else [])
    # The output is valid and what kubectl reads back is what we built.
    text = dump_manifests(conv.manifests, "header")
    assert list(yaml.safe_load_all(text)) == manifests
    assert validate_documents(load_documents(text)).code == EXIT_OK


ERRORS = [
    pytest.param("address-pools:\n- name: p\n  addresses: [10.0.0.0/24]\n",
                 "address-pools[0] (p): protocol: expected layer2 or bgp, got None",
                 id="missing-protocol"),
    pytest.param("address-pools:\n- name: p\n  protocol: ospf\n  addresses: [10.0.0.0/24]\n",
                 "protocol: expected layer2 or bgp, got 'ospf'", id="unknown-protocol"),
    pytest.param("address-pools:\n- name: p\n  protocol: layer2\n  addresses: [10.0.0.1]\n",
                 "address-pools[0] (p): addresses[0]: invalid address '10.0.0.1'",
                 id="bare-ip"),
    pytest.param("address-pools:\n- name: p\n  protocol: layer2\n",
                 "addresses: expected a non-empty list", id="no-addresses"),
    pytest.param("address-pools:\n- name: My_Pool\n  protocol: layer2\n"
                 "  addresses: [10.0.0.0/24]\n",
                 "'My_Pool' is not a valid Kubernetes object name", id="invalid-name"),
    pytest.param("address-pools:\n- protocol: layer2\n  addresses: [10.0.0.0/24]\n",
                 "address-pools[0]: name: required", id="no-name"),
    pytest.param("address-pools:\n- name: p\n  protocol: layer2\n  addresses: [10.0.0.0/24]\n"
                 "- name: p\n  protocol: layer2\n  addresses: [10.0.1.0/24]\n",
                 "address-pools[1] (p): name: duplicate pool name", id="duplicate-name"),
    pytest.param("address-pools:\n- name: p\n  protocol: layer2\n  addresses: [10.0.0.0/24]\n"
                 "  auto-assign: 'no'\n",
                 "auto-assign: expected true or false, got 'no'", id="non-bool-flag"),
    pytest.param("address-pools:\n- name: a\n  protocol: layer2\n  addresses: [10.0.0.0/24]\n"
                 "- name: b\n  protocol: layer2\n  addresses: [10.0.0.128/25]\n",
                 "IPAddressPool/b: OverlapsPool: spec.addresses: 10.0.0.128-10.0.0.255 overlaps",
                 id="overlapping-pools-refused-by-validate"),
    pytest.param("address-pools: []\n", "address-pools: expected a non-empty list",
                 id="empty"),
    pytest.param("- not a mapping\n", "expected a mapping with address-pools, got a list",
                 id="config-not-a-mapping"),
]


@pytest.mark.parametrize(("config", "error"), ERRORS)
def test_invalid_v012_configuration_is_refused(config: str, error: str) -> None:
    conv = convert_configmap(load_documents(configmap(config)))
    assert conv.manifests == []
    assert any(error in e for e in conv.errors), conv.errors


def test_refused_conversion_prints_nothing_to_apply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cm.yaml"
    path.write_text(configmap("address-pools:\n- name: p\n  protocol: layer2\n"
                              "  addresses: [10.0.0.300/24]\n"))
    assert main(["convert", "-f", str(path)]) == EXIT_PROBLEMS
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "error: address-pools[0] (p): addresses[0]: invalid CIDR '10.0.0.300/24'" in (
        captured.err)
    assert captured.err.endswith("error: ConfigMap metallb-system/config not converted\n")


def test_namespace_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cm.yaml"
    path.write_text(SEED_CONFIGMAP)
    assert main(["convert", "-f", str(path), "--namespace", "lb"]) == EXIT_OK
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert {d["metadata"]["namespace"] for d in docs} == {"lb"}
    assert main(["convert", "-n", "lb2", "-f", str(path)]) == EXIT_OK
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert {d["metadata"]["namespace"] for d in docs} == {"lb2"}


def test_kubectl_get_output_and_bare_config_are_accepted() -> None:
    listed = ("apiVersion: v1\nkind: List\nitems:\n"
              + textwrap.indent(SEED_CONFIGMAP, "  ").replace("  apiVersion", "- apiVersion", 1))
    bare = "address-pools:\n- {name: my-ip-space, protocol: layer2, addresses: " \
           "[10.10.13.41-10.10.13.42]}\n"
    for text in (listed, bare):
        conv = convert_configmap(load_documents(text))
        assert conv.manifests == [pool("my-ip-space", ["10.10.13.41-10.10.13.42"]),
                                  adv("my-ip-space")]


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n",
                 "no MetalLB v0.12 ConfigMap (a ConfigMap with data.config) in the input "
                 "(Namespace/x)", id="no-configmap"),
    pytest.param(configmap("address-pools: []\n", "a") + "---\n" + configmap("x: 1\n", "b"),
                 "several ConfigMaps hold data.config (metallb-system/a, metallb-system/b)",
                 id="two-configmaps"),
    pytest.param("kind: ConfigMap\nmetadata: {name: c}\ndata: {config: 7}\n",
                 "data.config must be a string", id="config-not-a-string"),
    pytest.param(configmap("address-pools:\n- name: p\n  addresses: [10.0.0.0/24\n"),
                 "ConfigMap metallb-system/config data.config: line 4, column 1: invalid YAML",
                 id="bad-yaml-inside-data-config"),
])
def test_unusable_input_is_an_input_error(text: str, message: str) -> None:
    with pytest.raises(InputError) as err:
        convert_configmap(load_documents(text, "f.yaml"))
    assert message in str(err.value)


def test_main_bad_yaml_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cm.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\n  data: x\n")
    assert main(["convert", "-f", str(path)]) == EXIT_INPUT
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: {path}: line 3, column 7: invalid YAML: "
                                   "mapping values are not allowed here")
    assert "Traceback" not in captured.err

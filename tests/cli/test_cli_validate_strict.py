"""`metallbctl validate`: unknown fields refused as the apiserver's strict field
validation refuses them (schemas from crds/), objects outside the operator's namespace
warned about, directories and stdin as input."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from metallb_operator.cli import (
    EXIT_INPUT,
    EXIT_OK,
    EXIT_PROBLEMS,
    Document,
    crd_schemas,
    default_crd_dir,
    main,
    read_crd_schemas,
    unknown_fields,
    validate_documents,
)

pytestmark = pytest.mark.unit

CRD_DIR = Path(__file__).resolve().parents[2] / "crds"
SCHEMAS = read_crd_schemas(CRD_DIR)
API = "metallb.io/v1beta1"


def pool(spec: dict[str, Any] | None = None, name: str = "p", **top: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "IPAddressPool", "metadata": {"name": name},
            "spec": {"addresses": ["10.0.0.0/28"], **(spec or {})}, **top}


def adv(spec: dict[str, Any] | None = None, name: str = "a", **top: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "L2Advertisement", "metadata": {"name": name},
            "spec": spec or {}, **top}


# Shared with the cluster test, which sends each object to the real apiserver.
UNKNOWN = [
    pytest.param(pool(), [], id="pool-clean"),
    pytest.param(pool({"foo": 1}), ["spec.foo"], id="pool-spec-field"),
    pytest.param(pool({"AutoAssign": True}), ["spec.AutoAssign"], id="case-matters"),
    pytest.param(pool(extra={"x": 1}), ["extra"], id="top-level"),
    pytest.param({**pool(), "metadata": {"name": "p", "labelz": {"a": "b"},
                                         "labels": {"any/key": "v"}}},
                 ["metadata.labelz"], id="metadata-is-object-meta"),
    pytest.param(pool({"serviceAllocation": {"namespaceSelectors": [
        {"matchLabels": {"team": "a"}}, {"matchLabel": {"team": "b"}}]}}),
        ["spec.serviceAllocation.namespaceSelectors[1].matchLabel"],
        id="pool-array-item-path"),
    pytest.param(pool({"serviceAllocation": {"priority": 1, "nope": True}, "zzz": 1}),
                 ["spec.serviceAllocation.nope", "spec.zzz"], id="pool-several"),
    pytest.param(adv({"ipAddressPools": ["p"], "interfaces": ["eth0"]}), [], id="adv-clean"),
    pytest.param(adv({"nodeSelectors": [{"matchExpressions": [
        {"key": "k", "operator": "Exists", "value": ["x"]}]}]}),
        ["spec.nodeSelectors[0].matchExpressions[0].value"], id="adv-nested-selector"),
    pytest.param(adv({"ipAddressPool": ["p"]}), ["spec.ipAddressPool"], id="adv-typo"),
    pytest.param(adv(status={"foo": "bar"}), ["status.foo"], id="status-field"),
]


@pytest.mark.parametrize(("obj", "fields"), UNKNOWN)
def test_unknown_fields_from_the_crd_schemas(obj: dict[str, Any], fields: list[str]) -> None:
    assert unknown_fields(obj, SCHEMAS[(API, obj["kind"])]) == fields


def test_unknown_fields_in_the_apiservers_order() -> None:
    """ObjectMeta's first, then the rest sorted (what the apiserver answers)."""
    obj = {**pool({"zzz": 1, "serviceAllocation": {"nope": 1}, "aaa": 2}),
           "metadata": {"name": "p", "zz": 1, "aa": 2}, "extra": 1}
    assert unknown_fields(obj, SCHEMAS[(API, "IPAddressPool")]) == [
        "metadata.aa", "metadata.zz", "extra", "spec.aaa", "spec.serviceAllocation.nope",
        "spec.zzz"]


PRESERVING = {"type": "object", "properties": {"spec": {
    "type": "object", "x-kubernetes-preserve-unknown-fields": True,
    "properties": {"known": {"type": "object", "properties": {"a": {"type": "string"}}}}}}}


@pytest.mark.parametrize(("obj", "fields"), [
    ({"spec": {"anything": {"deep": 1}}}, []),
    ({"spec": {"known": {"a": "x", "b": "y"}}}, ["spec.known.b"]),  # known stays checked
    ({"spec": {}, "other": 1}, ["other"]),
], ids=["unknown-kept", "known-property-still-checked", "only-below-the-marker"])
def test_preserve_unknown_fields(obj: dict[str, Any], fields: list[str]) -> None:
    assert unknown_fields(obj, PRESERVING) == fields


def test_every_served_kind_has_a_schema() -> None:
    assert {kind for _, kind in SCHEMAS} == {"IPAddressPool", "L2Advertisement",
                                             "ServiceL2Status", "BGPPeer", "BGPAdvertisement",
                                             "BFDProfile", "Community", "ServiceBGPStatus",
                                             "BGPSessionState"}
    assert ("metallb.io/v1beta1", "BGPPeer") in SCHEMAS  # still served (deprecated)
    assert crd_schemas([{"kind": "ConfigMap"}]) == {}
    # shipped in the package (package data; a link to crds/ in a checkout), so an
    # installed metallbctl checks fields without --crds
    found = default_crd_dir()
    assert found is not None and found.parent.name == "metallb_operator"
    assert found.resolve() == CRD_DIR


def docs(*bodies: dict[str, Any]) -> list[Document]:
    return [Document("f.yaml", i, b) for i, b in enumerate(bodies, start=1)]


def test_unknown_field_is_a_problem_in_the_apiservers_words() -> None:
    report = validate_documents(docs(pool({"foo": 1, "bar": 2}), adv()), SCHEMAS)
    assert report.code == EXIT_PROBLEMS
    assert report.out == ['IPAddressPool/p: UnknownField: f.yaml (document 1): IPAddressPool '
                          'in version "v1beta1" cannot be handled as a IPAddressPool: strict '
                          'decoding error: unknown field "spec.bar", unknown field "spec.foo"']
    # Without the schemas the same input passes: the check is what refuses it.
    assert validate_documents(docs(pool({"foo": 1}), adv())).code == EXIT_OK


@pytest.mark.parametrize(("namespace", "option", "warned"), [
    ("metallb-system", "metallb-system", False),
    (None, "metallb-system", False),  # lands wherever it is applied
    ("default", "metallb-system", True),
    ("lb", "lb", False),
    ("metallb-system", "lb", True),
])
def test_objects_outside_the_operators_namespace_are_warned_about(
        namespace: str | None, option: str, warned: bool) -> None:
    body = pool()
    if namespace:
        body["metadata"]["namespace"] = namespace
    report = validate_documents(docs(body, adv()), SCHEMAS, option)
    assert report.code == EXIT_OK
    warnings = [e for e in report.err if "only in its own namespace" in e]
    assert bool(warnings) == warned, report.err
    if warned:
        assert warnings == [
            f"warning: f.yaml (document 1): IPAddressPool/p is in namespace {namespace}: "
            f"metallb-py reads IPAddressPools and L2Advertisements only in its own namespace "
            f"{option} (--namespace), so this object would be ignored"]


def run(argv: list[str], stdin: str = "", *, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(argv)


def test_directory_reads_manifest_files_sorted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "b-pool.yml").write_text(yaml.safe_dump(pool(name="second")))
    (tmp_path / "a-pool.yaml").write_text(yaml.safe_dump(pool({"addresses": ["10.0.1.0/28"]},
                                                              name="first")))
    (tmp_path / "c-adv.json").write_text(json.dumps(adv()))
    (tmp_path / "README.md").write_text("not: [a manifest")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.yaml").write_text("not: [valid")  # not recursive
    assert run(["validate", "-f", str(tmp_path)], monkeypatch=monkeypatch) == EXIT_OK
    out = capsys.readouterr().out.splitlines()
    assert out == ["IPAddressPool/first: 10.0.1.0/28; usable IPv4: 16, IPv6: 0",
                   "IPAddressPool/second: 10.0.0.0/28; usable IPv4: 16, IPv6: 0",
                   "L2Advertisement/a: announces first, second"]


def test_directory_order_decides_duplicates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "2.yaml").write_text(yaml.safe_dump(pool()))
    (tmp_path / "1.yaml").write_text(yaml.safe_dump(pool()))
    assert run(["validate", "-f", str(tmp_path)], monkeypatch=monkeypatch) == EXIT_PROBLEMS
    out = capsys.readouterr().out
    assert f"{tmp_path / '2.yaml'} (document 1) defines it again (first in " \
           f"{tmp_path / '1.yaml'} (document 1))" in out


def test_empty_directory_is_an_input_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["validate", "-f", str(tmp_path)], monkeypatch=monkeypatch) == EXIT_INPUT
    assert "no *.yaml, *.yml, *.json files" in capsys.readouterr().err


def test_stdin_and_unknown_fields_through_main(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    text = yaml.safe_dump_all([pool({"autoassign": False}), adv()])
    assert run(["validate", "-f", "-"], text, monkeypatch=monkeypatch) == EXIT_PROBLEMS
    out = capsys.readouterr().out
    assert 'IPAddressPool/p: UnknownField: <stdin> (document 1): IPAddressPool in version ' \
           '"v1beta1" cannot be handled as a IPAddressPool: strict decoding error: ' \
           'unknown field "spec.autoassign"' in out


def test_crds_option_and_missing_crds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    text = yaml.safe_dump_all([pool({"foo": 1}), adv()])
    assert run(["validate", "--crds", str(CRD_DIR), "-f", "-"], text,
               monkeypatch=monkeypatch) == EXIT_PROBLEMS
    capsys.readouterr()
    assert run(["validate", "--crds", str(tmp_path), "-f", "-"], text,
               monkeypatch=monkeypatch) == EXIT_INPUT
    assert "no CustomResourceDefinitions found" in capsys.readouterr().err

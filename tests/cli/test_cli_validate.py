"""`metallbctl validate`: the pure `load_documents`/`validate_documents` and `main`."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import pytest

from metallb_operator.cli import (
    EXIT_INPUT,
    EXIT_OK,
    EXIT_PROBLEMS,
    InputError,
    load_documents,
    main,
    validate_documents,
)

pytestmark = pytest.mark.unit


def pool(name: str, *addresses: str, **extra: str) -> str:
    lines = ["apiVersion: metallb.io/v1beta1", "kind: IPAddressPool",
             f"metadata: {{name: {name}}}", "spec:",
             "  addresses: [" + ", ".join(f'"{a}"' for a in addresses) + "]"]
    lines += [f"  {k}: {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def adv(name: str, *pools: str) -> str:
    spec = "{ipAddressPools: [" + ", ".join(pools) + "]}" if pools else "{}"
    return (f"apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\n"
            f"metadata: {{name: {name}}}\nspec: {spec}\n")


def stream(*docs: str) -> str:
    return "---\n".join(docs)


VALID = [
    pytest.param(
        [pool("v4", "192.168.10.0/24")],
        ["IPAddressPool/v4: 192.168.10.0/24; usable IPv4: 256, IPv6: 0"],
        id="cidr"),
    pytest.param(
        [pool("r", "192.168.9.1 - 192.168.9.5")],
        ["IPAddressPool/r: 192.168.9.1 - 192.168.9.5; usable IPv4: 5, IPv6: 0"],
        id="range-with-spaces"),
    pytest.param(
        [pool("six", "fd00:1::/64")],
        ["IPAddressPool/six: fd00:1::/64; usable IPv4: 0, IPv6: 18446744073709551616"],
        id="ipv6-slash-64-exact"),
    pytest.param(
        [pool("huge", "fd00::/8")],
        ["IPAddressPool/huge: fd00::/8; usable IPv4: 0, IPv6: "
         "1329227995784915872903807060280344576"],
        id="ipv6-slash-8-beyond-int64"),
    pytest.param(
        [pool("dual", "10.0.0.0/30", "fd00::/126")],
        ["IPAddressPool/dual: 10.0.0.0/30, fd00::/126; usable IPv4: 4, IPv6: 4"],
        id="dual-stack"),
    pytest.param(
        [pool("buggy", "10.0.0.0/24", avoidBuggyIPs="true")],
        ["IPAddressPool/buggy: 10.0.0.0/24; usable IPv4: 254, IPv6: 0; avoidBuggyIPs: true"],
        id="avoid-buggy-ips"),
    pytest.param(
        [pool("manual", "10.0.0.1/32", autoAssign="false")],
        ["IPAddressPool/manual: 10.0.0.1/32; usable IPv4: 1, IPv6: 0; autoAssign: false"],
        id="no-auto-assign"),
    pytest.param(
        [pool("a", "10.0.0.0/29"), pool("b", "10.0.0.8/29"), adv("l2", "a", "b")],
        ["IPAddressPool/a: 10.0.0.0/29; usable IPv4: 8, IPv6: 0",
         "IPAddressPool/b: 10.0.0.8/29; usable IPv4: 8, IPv6: 0",
         "L2Advertisement/l2: announces a, b"],
        id="pools-and-advertisement"),
    pytest.param(
        [pool("a", "10.0.0.0/29"), adv("all")],
        ["IPAddressPool/a: 10.0.0.0/29; usable IPv4: 8, IPv6: 0",
         "L2Advertisement/all: announces a"],
        id="advertisement-without-pools-selects-all"),
]


@pytest.mark.parametrize(("docs", "expected"), VALID)
def test_valid_configurations_print_one_summary_per_object(
    docs: list[str], expected: list[str]
) -> None:
    report = validate_documents(load_documents(stream(*docs), "f.yaml"))
    assert report.code == EXIT_OK, report
    assert report.out == expected


INVALID = [
    pytest.param(
        [pool("bad", "10.0.0.9-10.0.0.1")],
        ["IPAddressPool/bad: InvalidSpec: spec.addresses: invalid range '10.0.0.9-10.0.0.1': "
         "start is after end"],
        id="reversed-range"),
    pytest.param(
        [pool("bad", "10.0.0.1")],
        ["IPAddressPool/bad: InvalidSpec: spec.addresses: invalid address '10.0.0.1': "
         "expected a CIDR (192.168.10.0/24) or a range (a-b)"],
        id="bare-ip"),
    pytest.param(
        [pool("self", "10.0.0.0/24", "10.0.0.128/25")],
        ["IPAddressPool/self: OverlappingAddresses: spec.addresses: 10.0.0.0-10.0.0.255 "
         "overlaps 10.0.0.128-10.0.0.255 in the same pool"],
        id="overlaps-itself"),
    pytest.param(
        [pool("a-old", "10.0.0.0/24"), pool("b-new", "10.0.0.128/25")],
        ["IPAddressPool/b-new: OverlapsPool: spec.addresses: 10.0.0.128-10.0.0.255 overlaps "
         "10.0.0.0-10.0.0.255 of IPAddressPool 'a-old', which is older and keeps those "
         "addresses"],
        id="overlaps-another-pool"),
    pytest.param(
        [pool("a", "10.0.0.0/24"), adv("l2", "a", "ghost")],
        ["L2Advertisement/l2: PoolNotFound: spec.ipAddressPools: no IPAddressPool named "
         "'ghost'"],
        id="advertisement-names-missing-pool"),
    pytest.param(
        ["apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2}\n"
         "spec: {interfaces: [this-name-is-too-long]}\n"],
        ["L2Advertisement/l2: InvalidSpec: spec.interfaces: invalid interface name "
         "'this-name-is-too-long'"],
        id="bad-interface"),
    pytest.param(
        [pool("a", "10.0.0.0/24"), pool("a", "10.1.0.0/24")],
        ["IPAddressPool/a: DuplicateName: f.yaml (document 2) defines it again "
         "(first in f.yaml (document 1))"],
        id="duplicate-name"),
    pytest.param(
        [pool("Bad_Name", "10.0.0.0/24")],
        ["IPAddressPool/Bad_Name: InvalidName: f.yaml (document 1): metadata.name "
         "'Bad_Name' is not a valid Kubernetes name (lowercase letters, digits, '-' and '.')"],
        id="invalid-object-name"),
    pytest.param(
        ["apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2}\n"
         "spec: {nodeSelectors: [{matchLabels: {'kubernetes.io/host name': n1}}]}\n"],
        ["L2Advertisement/l2: InvalidSpec: spec.nodeSelectors[0].matchLabels: invalid label "
         "key 'kubernetes.io/host name': name part must consist of alphanumeric characters, "
         "'-', '_' or '.', starting and ending with an alphanumeric character"],
        id="node-selector-key-with-a-space"),
    pytest.param(
        [pool("a", "10.0.0.0/24") + "  serviceAllocation: {serviceSelectors: [{matchExpressions: "
         "[{key: tier, operator: In, values: [web, 'front end']}]}]}\n"],
        ["IPAddressPool/a: InvalidSpec: spec.serviceAllocation.serviceSelectors[0]"
         ".matchExpressions[0].values[1]: invalid label value 'front end': must be empty or "
         "consist of alphanumeric characters, '-', '_' or '.', starting and ending with an "
         "alphanumeric character"],
        id="service-selector-value-with-a-space"),
    pytest.param(
        ["apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2}\n"
         "spec: {nodeSelectors: [{matchExpressions: [{key: role, operator: Exists}, "
         "{key: role, operator: DoesNotExist}]}]}\n"],
        ["L2Advertisement/l2: NodeSelectorsNeverMatch: spec.nodeSelectors: no node can "
         "match: [0]: key 'role' must both exist and not exist"],
        id="node-selector-that-can-never-match"),
]


@pytest.mark.parametrize(("docs", "expected"), INVALID)
def test_problems_are_printed_as_kind_name_reason_message(
    docs: list[str], expected: list[str]
) -> None:
    report = validate_documents(load_documents(stream(*docs), "f.yaml"))
    assert report.code == EXIT_PROBLEMS
    assert report.out == expected


def test_problems_only_no_summaries_when_anything_is_wrong() -> None:
    report = validate_documents(load_documents(
        stream(pool("good", "10.0.0.0/24"), pool("bad", "nonsense/99"))))
    assert report.code == EXIT_PROBLEMS
    assert [line.split(":")[0] for line in report.out] == ["IPAddressPool/bad"]


IGNORED = [
    pytest.param("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n",
                 "ignored Service/web: not a metallb.io object", id="service"),
    pytest.param("apiVersion: metallb.io/v1alpha1\nkind: BGPPeer\nmetadata: {name: p}\n",
                 "ignored BGPPeer/p: metallb-py serves BGPPeer as metallb.io/v1beta2 or "
                 "metallb.io/v1beta1 only", id="bgp-peer-old-version"),
    pytest.param("apiVersion: metallb.io/v1alpha1\nkind: IPAddressPool\nmetadata: {name: x}\n",
                 "metallb-py serves IPAddressPool as metallb.io/v1beta1 only", id="old-version"),
    pytest.param("just: a mapping\n", "not a Kubernetes object (no kind)", id="no-kind"),
    pytest.param("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config}\n"
                 "data: {config: 'address-pools: []'}\n",
                 "convert it with `metallbctl convert -f f.yaml`", id="v012-configmap"),
]


@pytest.mark.parametrize(("other", "note"), IGNORED)
def test_other_documents_are_ignored_with_a_note(other: str, note: str) -> None:
    report = validate_documents(load_documents(stream(pool("p", "10.0.0.0/30"), other),
                                               "f.yaml"))
    assert report.code == EXIT_OK
    assert report.out == ["IPAddressPool/p: 10.0.0.0/30; usable IPv4: 4, IPv6: 0"]
    assert len(report.err) == 1
    assert report.err[0].startswith("note: f.yaml (document 2): ")
    assert note in report.err[0]


def test_nothing_to_validate_is_an_error() -> None:
    report = validate_documents(load_documents("apiVersion: v1\nkind: Namespace\n"))
    assert report.code == EXIT_PROBLEMS
    assert report.err[-1] == ("error: no metallb.io/v1beta1 IPAddressPool or L2Advertisement "
                              "in the input")


def test_unadvertised_pool_is_a_warning_when_advertisements_are_given() -> None:
    report = validate_documents(load_documents(stream(
        pool("a", "10.0.0.0/30"), pool("b", "10.0.1.0/30"), adv("l2", "a"))))
    assert report.code == EXIT_OK
    assert report.err == ["warning: IPAddressPool/b: no L2Advertisement selects it: its "
                          "addresses would be assigned but not announced"]


def test_advertisement_selecting_nothing_yet_is_a_note_not_a_failure() -> None:
    report = validate_documents(load_documents(stream(
        pool("a", "10.0.0.0/30"), adv("l2", "a"), """\
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: later, namespace: metallb-system}
spec:
  ipAddressPoolSelectors: [{matchLabels: {tier: next}}]
""")))
    assert report.code == EXIT_OK
    assert report.err == ["note: L2Advertisement/later: NoMatchingPools: no Ready "
                          "IPAddressPool is selected (yet): nothing is announced"]
    assert "L2Advertisement/later: announces no pools" in report.out


def test_kind_list_is_expanded_and_timestamps_stay_strings() -> None:
    text = textwrap.dedent("""\
        apiVersion: v1
        kind: List
        items:
        - apiVersion: metallb.io/v1beta1
          kind: IPAddressPool
          metadata: {name: old, creationTimestamp: 2024-01-01T00:00:00Z}
          spec: {addresses: [10.0.0.0/24]}
        - apiVersion: metallb.io/v1beta1
          kind: IPAddressPool
          metadata: {name: a-new, creationTimestamp: 2025-01-01T00:00:00Z}
          spec: {addresses: [10.0.0.0/25]}
        """)
    docs = load_documents(text)
    assert [d.name for d in docs] == ["old", "a-new"]
    assert docs[0].metadata["creationTimestamp"] == "2024-01-01T00:00:00Z"
    report = validate_documents(docs)
    # The older pool keeps the addresses even though its name sorts later.
    assert report.out == [
        "IPAddressPool/a-new: OverlapsPool: spec.addresses: 10.0.0.0-10.0.0.127 overlaps "
        "10.0.0.0-10.0.0.255 of IPAddressPool 'old', which is older and keeps those addresses"]


def test_namespaces_are_validated_separately() -> None:
    text = stream(
        pool("a", "10.0.0.0/24").replace("{name: a}", "{name: a, namespace: one}"),
        pool("a", "10.0.0.0/24").replace("{name: a}", "{name: a, namespace: two}"),
        adv("l2", "a"))  # no namespace: joins each
    report = validate_documents(load_documents(text), namespace=None)
    assert report.code == EXIT_OK, report
    assert report.out == ["IPAddressPool/a: 10.0.0.0/24; usable IPv4: 256, IPv6: 0",
                          "L2Advertisement/l2: announces a"]
    assert "span namespaces one, two" in report.err[0]


BAD_YAML = [
    pytest.param("kind: IPAddressPool\nmetadata:\n  name: a\n spec: x\n",
                 "f.yaml: line 4, column 2: invalid YAML: expected <block end>", id="indent"),
    pytest.param("spec:\n  addresses: [10.0.0.0/24\n",
                 "f.yaml: line 3, column 1: invalid YAML: expected ',' or ']'",
                 id="unclosed-flow"),
    pytest.param("a: b: c\n", "f.yaml: line 1, column 5: invalid YAML: mapping values are "
                 "not allowed here", id="mapping-in-scalar"),
    pytest.param("key: \"unterminated\n", "f.yaml: line 2, column 1: invalid YAML: found "
                 "unexpected end of stream", id="unterminated-string"),
    pytest.param("- just\n- a list\n", "f.yaml (document 1): expected a Kubernetes object "
                 "(a mapping), got a list", id="not-a-mapping"),
    pytest.param("\tkind: x\n", "f.yaml: line 1, column 1: invalid YAML: found character "
                 "'\\t' that cannot start any token", id="tab"),
]


@pytest.mark.parametrize(("text", "message"), BAD_YAML)
def test_bad_yaml_is_one_clear_input_error(text: str, message: str) -> None:
    with pytest.raises(InputError) as err:
        load_documents(text, "f.yaml")
    assert str(err.value).startswith(message)


# -- main (I/O) -------------------------------------------------------------------------------


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_main_reads_several_files_and_stdin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pools = write(tmp_path, "pools.yaml", stream(pool("a", "10.0.0.0/30"),
                                                 pool("b", "fd00::/64")))
    monkeypatch.setattr("sys.stdin", io.StringIO(adv("l2", "a", "b")))
    assert main(["validate", "-f", pools, "-f", "-"]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "IPAddressPool/a: 10.0.0.0/30; usable IPv4: 4, IPv6: 0",
        "IPAddressPool/b: fd00::/64; usable IPv4: 0, IPv6: 18446744073709551616",
        "L2Advertisement/l2: announces a, b",
    ]


def test_main_exits_1_on_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "p.yaml", stream(pool("a", "10.0.0.0/24"), adv("l2", "nope")))
    assert main(["validate", "-f", path]) == EXIT_PROBLEMS
    assert capsys.readouterr().out == (
        "L2Advertisement/l2: PoolNotFound: spec.ipAddressPools: no IPAddressPool named "
        "'nope'\n")


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("a: [1\n", "line 2, column 1: invalid YAML", id="syntax"),
    pytest.param("foo\n---\n42\n", "expected a Kubernetes object (a mapping), got a string",
                 id="scalar"),
])
def test_main_exits_2_on_bad_yaml_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path = write(tmp_path, "bad.yaml", text)
    assert main(["validate", "-f", path]) == EXIT_INPUT
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: {path}")
    assert message in captured.err
    assert "Traceback" not in captured.err


def test_main_exits_2_on_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    missing = str(tmp_path / "missing.yaml")
    assert main(["validate", "-f", missing]) == EXIT_INPUT
    assert capsys.readouterr().err == (
        f"error: {missing}: cannot read: No such file or directory\n")


def test_main_exits_2_on_binary_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                     ) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"\xff\xfe\x00binary")
    assert main(["validate", "-f", str(path)]) == EXIT_INPUT
    assert "not a UTF-8 text file" in capsys.readouterr().err


def test_main_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate"]) == EXIT_INPUT
    assert "-f/--filename" in capsys.readouterr().err
    assert main([]) == EXIT_INPUT
    assert main(["--help"]) == EXIT_OK

"""metallb_lab.metallb without a cluster: docs/migration.md's marked blocks parse into the
steps the side-by-side e2e test and bench.versus run, `> file` and metallbctl work as
the doc's user would see them, and MetalLB's manifests are read per version."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest
import yaml

from metallb_lab import metallb
from metallb_lab.cluster import Cluster
from metallb_lab.images import Image, MetalLBBuild

pytestmark = pytest.mark.unit
NO_CLUSTER = cast(Cluster, None)  # the commands tested here never reach the cluster


def test_the_doc_has_every_step_the_tests_run_in_order() -> None:
    steps = metallb.doc_steps()
    assert list(steps) == ["remove-metallb", "crds", "install", "check", "tidy",
                           "v012-remove-metallb", "v012-crds", "v012-convert",
                           "back-to-metallb"]
    assert {cmd[0] for cmds in steps.values() for cmd in cmds} == {
        "kubectl", "helm", "metallbctl"}
    (install,) = steps["install"]
    assert install[:4] == ["helm", "install", "metallb-py", "charts/metallb-py"]
    assert "crds.enabled=false" in install  # the CRDs come from the crds step


@pytest.mark.parametrize("tool", ["bash", "curl", "sudo"])
def test_only_lab_commands_run(tool: str) -> None:
    with pytest.raises(ValueError, match=tool):
        metallb.run_step(NO_CLUSTER, [[tool, "-c", "true"]])


SEED_CONFIGMAP = {
    "apiVersion": "v1", "kind": "ConfigMap",
    "metadata": {"name": "config", "namespace": "metallb-system"},
    "data": {"config": yaml.safe_dump({"address-pools": [
        {"name": "seed", "protocol": "layer2", "addresses": ["198.18.0.100-198.18.0.199"]}]})}}


def test_convert_step_writes_the_crs_a_user_would_apply(tmp_path: Path) -> None:
    (tmp_path / "metallb-config.yaml").write_text(yaml.safe_dump(SEED_CONFIGMAP))
    (_, convert, _) = metallb.doc_steps()["v012-convert"]
    assert convert[0] == "metallbctl"
    metallb.run_step(NO_CLUSTER, [convert], tmp_path)
    docs = list(yaml.safe_load_all((tmp_path / "metallb-crs.yaml").read_text()))
    got = {(d["kind"], d["metadata"]["name"]) for d in docs if d}
    assert got == {("IPAddressPool", "seed"), ("L2Advertisement", "seed")}


@pytest.mark.parametrize(("version", "crds", "files"), [
    ("v0.15.2", True, ["metallb-native.yaml"]),
    ("v0.13.0", True, ["metallb-native.yaml"]),
    ("v0.12.1", False, ["namespace.yaml", "metallb.yaml"]),
])
def test_manifests_per_version(tmp_path: Path, version: str, crds: bool,
                               files: list[str]) -> None:
    (tmp_path / "manifests").mkdir()
    docs = [{"kind": "Namespace", "metadata": {"name": "metallb-system"}},
            {"kind": "PodSecurityPolicy", "metadata": {"name": "controller"}},
            {"kind": "DaemonSet", "metadata": {"name": "speaker"}}]
    for name in files:
        (tmp_path / "manifests" / name).write_text(yaml.safe_dump_all(docs))
    m = metallb.MetalLB(MetalLBBuild(version, tmp_path / "bin"),
                        (Image(f"quay.io/metallb/speaker:{version}", tmp_path / "s.tar"),))
    assert m.uses_crds is crds
    assert [p.name for p in m.manifest_files()] == files
    # Kubernetes removed PodSecurityPolicy (1.25): applying it would fail the install.
    assert [d["kind"] for d in m.manifest()] == ["Namespace", "DaemonSet"] * len(files)
    assert m.image_refs() == {f"quay.io/metallb/speaker:{version}"}

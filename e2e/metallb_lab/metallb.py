"""MetalLB itself in the real-node lab (`metallb_lab.cluster`): installed from its own
manifests, read from the module zip that e2e/tools/build-metallb keeps, with images of
the binaries built there (`metallb_lab.images.metallb_images`) under the names its
manifests use. For side-by-side runs and for migrations to and from metallb-py.

- v0.15.2 (CRD configuration): config/manifests/metallb-native.yaml, unchanged: its
  controller serves its validating webhook (the API server calls it at the Pod's
  address), its speakers find their memberlist peers by listing their own Pods.
- v0.12.1 (ConfigMap configuration, the seed's version): manifests/namespace.yaml +
  metallb.yaml without its PodSecurityPolicies (Kubernetes removed the API in 1.25), plus
  the `memberlist` Secret its install guide creates by hand.

Migrations run the commands of docs/migration.md itself (`doc_steps()`, `run_step()`).
"""

from __future__ import annotations

import base64
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from metallb_lab.cluster import Cluster, pod_ready
from metallb_lab.controlplane import REPO_ROOT, find_assets
from metallb_lab.images import Image, MetalLBBuild, metallb_images
from metallb_lab.kube import wait_for

NAMESPACE = "metallb-system"
SPEAKERS = "app=metallb,component=speaker"
CONTROLLERS = "app=metallb,component=controller"
# Kinds this cluster (Kubernetes 1.36) no longer serves.
UNSERVED_KINDS = frozenset({"PodSecurityPolicy"})

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class MetalLB:
    build: MetalLBBuild
    images: tuple[Image, ...]

    @property
    def version(self) -> str:
        return self.build.version

    @property
    def uses_crds(self) -> bool:
        """v0.13 moved the configuration from a ConfigMap to CRDs."""
        minor = int(self.version.removeprefix("v").split(".")[1])
        return minor >= 13

    def manifest_files(self) -> list[Path]:
        d = self.build.manifests
        if self.uses_crds:
            return [d / "metallb-native.yaml"]
        return [d / "namespace.yaml", d / "metallb.yaml"]

    def manifest(self) -> list[dict[str, Any]]:
        """Its manifests' objects, less the kinds this cluster does not serve."""
        docs = [d for f in self.manifest_files()
                for d in yaml.safe_load_all(f.read_text()) if d]
        return [d for d in docs if d.get("kind") not in UNSERVED_KINDS]

    def image_refs(self) -> set[str]:
        return {i.ref for i in self.images}


def prepare(version: str, log: Log = _quiet) -> MetalLB:
    """Build MetalLB `version` and its images if the cache lacks them."""
    build, images = metallb_images(version, log)
    return MetalLB(build, images)


def load_images(c: Cluster, m: MetalLB) -> None:
    """Import MetalLB's images into every node's containerd (in parallel)."""
    bin_dir = find_assets()
    c.in_parallel(lambda node: node.import_images(bin_dir, m.images))


def install(c: Cluster, m: MetalLB, timeout: float = 180.0) -> None:
    """kubectl apply MetalLB's manifests, as its install guide does, and wait until the
    controller and one speaker per node are Ready."""
    c.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(m.manifest()))
    if not m.uses_crds and not c.api.exists(f"/api/v1/namespaces/{NAMESPACE}/secrets/"
                                            "memberlist"):
        # v0.12's guide: kubectl create secret generic -n metallb-system memberlist
        #   --from-literal=secretkey="$(openssl rand -base64 128)"
        key = base64.b64encode(os.urandom(128)).decode()
        c.kubectl("create", "secret", "generic", "-n", NAMESPACE, "memberlist",
                  f"--from-literal=secretkey={key}")
    wait_ready(c, timeout)


def wait_ready(c: Cluster, timeout: float = 180.0) -> list[dict[str, Any]]:
    """The controller Ready and one Ready speaker per node; returns the speaker Pods."""
    def check() -> list[dict[str, Any]] | None:
        live = [p for p in c.pods(NAMESPACE, f"{CONTROLLERS}")
                if not p["metadata"].get("deletionTimestamp")]
        if not any(pod_ready(p) for p in live):
            return None
        speakers = [p for p in c.pods(NAMESPACE, SPEAKERS)
                    if not p["metadata"].get("deletionTimestamp")]
        on = sorted(p["spec"].get("nodeName", "") for p in speakers if pod_ready(p))
        return speakers if on == sorted(n.name for n in c.nodes) else None

    try:
        return wait_for(check, timeout=timeout, interval=0.5, what="MetalLB Ready")
    except TimeoutError:
        raise TimeoutError(c.diagnose(pods_of=(NAMESPACE,))) from None


def configure_v012(c: Cluster, pools: dict[str, Iterable[str]]) -> None:
    """v0.12's configuration: the `config` ConfigMap with layer-2 address pools."""
    config = {"address-pools": [{"name": name, "protocol": "layer2",
                                 "addresses": list(addresses)}
                                for name, addresses in pools.items()]}
    c.kubectl("apply", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "config", "namespace": NAMESPACE},
        "data": {"config": yaml.safe_dump(config)}}))


# docs/migration.md is the one source of the migration's commands: the tests and
# bench.versus run its marked `sh` blocks (`<!-- migration-test: NAME -->`).
MIGRATION_DOC = REPO_ROOT / "docs" / "migration.md"
_STEP = re.compile(r"<!-- migration-test: (\S+) -->\s*```sh\n(.*?)```", re.DOTALL)


def doc_steps() -> dict[str, list[list[str]]]:
    """The commands of each marked `sh` block of docs/migration.md, in order."""
    steps = {}
    for name, block in _STEP.findall(MIGRATION_DOC.read_text()):
        lines = block.replace("\\\n", " ").splitlines()
        steps[name] = [shlex.split(line) for line in lines
                       if line.strip() and not line.lstrip().startswith("#")]
    return steps


def run_step(c: Cluster, commands: list[list[str]], workdir: Path | None = None) -> None:
    """Run the doc's commands against the lab: paths are the repository's, other files
    are in `workdir` (`> file` writes one there); `helm install`/`upgrade` also get the
    image built from this tree (the doc's user gets the published one)."""
    for command in commands:
        tool, words, out = command[0], command[1:], None
        if len(words) >= 2 and words[-2] == ">":
            assert workdir is not None
            out, words = workdir / words[-1], words[:-2]
        args = [str(REPO_ROOT / a) if a.startswith(("crds/", "charts/")) else
                str(workdir / a) if workdir is not None and (workdir / a).exists() else a
                for a in words]
        if tool == "kubectl":
            stdout = c.kubectl(*args).stdout
        elif tool == "helm":
            image = c.chart_args() if args[0] in ("install", "upgrade") else []
            stdout = c.helm(*args, *image).stdout
        elif tool == "metallbctl":
            stdout = subprocess.run([str(Path(sys.executable).parent / "metallbctl"), *args],
                                    capture_output=True, text=True, check=True).stdout
        else:
            raise ValueError(f"docs/migration.md runs {tool}: not a lab command")
        if out is not None:
            out.write_text(stdout)


def uninstall(c: Cluster, m: MetalLB) -> None:
    """Everything its manifests created (the CRDs, and every pool with them)."""
    c.kubectl("delete", "--ignore-not-found", "--wait=true", "-f", "-",
              input=yaml.safe_dump_all(m.manifest()))

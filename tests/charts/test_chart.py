"""The Helm chart (charts/metallb-py): lint, render, exact RBAC, CRDs shared with crds/,
and, against a real kube-apiserver, install / upgrade / uninstall plus the RBAC proof
(the real operator running as the chart's ServiceAccount; the speaker's grants checked
with `kubectl auth can-i`).

Unit tests render with `helm template`; cluster tests start their OWN control plane
(module scope) without pre-applied CRDs, so `helm install` must create them itself.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from metallb_lab.controlplane import REPO_ROOT, ControlPlane, find_tool
from metallb_lab.kube import create_namespace, unique_name, wait_for
from metallb_lab.operator import OperatorProcess

CHART = REPO_ROOT / "charts" / "metallb-py"
CRD_DIR = REPO_ROOT / "crds"
CRD_SUBCHART = CHART / "charts" / "crds"
KUBE_VERSION = "1.36.0"
RELEASE = "metallb-py"
FULLNAME = "metallb-py"  # release name contains the chart name
OPERATOR = f"{FULLNAME}-operator"
SPEAKER = f"{FULLNAME}-speaker"
MEMBERLIST = f"{FULLNAME}-memberlist"


# -- helpers ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def helm_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Keep helm's cache/config/data out of $HOME."""
    home = tmp_path_factory.mktemp("helm-home")
    return {
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }


def helm(env: dict[str, str], *args: str, kubeconfig: Path | None = None,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ, **env)
    if kubeconfig is not None:
        full_env["KUBECONFIG"] = str(kubeconfig)
    proc = subprocess.run([find_tool("helm"), *args], capture_output=True, text=True,
                          env=full_env, check=False, timeout=180)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def render(env: dict[str, str], *args: str, namespace: str = "metallb-system"
           ) -> list[dict[str, Any]]:
    """`helm template`, without --kube-version (the chart must render offline)."""
    out = helm(env, "template", RELEASE, str(CHART), "-n", namespace, *args).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def render_fails(env: dict[str, str], *args: str) -> str:
    """`helm template` that must fail: its error output."""
    proc = helm(env, "template", RELEASE, str(CHART), "-n", "metallb-system", *args,
                check=False)
    assert proc.returncode != 0, f"rendered, but should have failed: {args}"
    return proc.stderr


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def container(workload: dict[str, Any]) -> dict[str, Any]:
    """The workload's own container (the speaker's Pod has `frr` beside it in BGP mode)."""
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert containers[0]["name"] in ("operator", "speaker"), containers
    assert [c["name"] for c in containers[1:]] in ([], ["frr"]), containers
    result: dict[str, Any] = containers[0]
    return result


def env_of(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


Grant = tuple[str, str, str, str]  # (apiGroup, resource, verb, resourceName or "")


def grants(role: dict[str, Any]) -> set[Grant]:
    out: set[Grant] = set()
    for rule in role["rules"]:
        names = rule.get("resourceNames") or [""]
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    for name in names:
                        out.add((group, resource, verb, name))
    return out


def expand(*rules: tuple[str, str | tuple[str, ...], str, str]) -> set[Grant]:
    """(group, resource(s), "verb verb", resourceName) -> grants."""
    out: set[Grant] = set()
    for group, resources, verbs, name in rules:
        for resource in (resources,) if isinstance(resources, str) else resources:
            for verb in verbs.split():
                out.add((group, resource, verb, name))
    return out


READ = "get list watch"
ALL_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")
CONFIG = ("ipaddresspools", "l2advertisements")

OPERATOR_CLUSTER = expand(
    ("", "services", "get list watch patch", ""),
    ("", "services/status", "patch", ""),
    ("", "namespaces", READ, ""),
    ("", "events", "create patch", ""),
    ("metallb.io", CONFIG, READ, ""),
    ("metallb.io", ("bgpadvertisements", "communities"), READ, ""),  # pools' Advertised
)
OPERATOR_NAMESPACE = expand(
    ("metallb.io", ("ipaddresspools/status", "l2advertisements/status"), "get patch update", ""),
    ("coordination.k8s.io", "leases", "get create update patch", ""),
)
SPEAKER_CLUSTER = expand(
    ("", "nodes", READ, ""),
    ("", "services", READ, ""),
    ("discovery.k8s.io", "endpointslices", READ, ""),
    ("", "events", "create patch", ""),
    ("metallb.io", CONFIG, READ, ""),
)
SPEAKER_NAMESPACE = expand(
    ("metallb.io", "servicel2statuses", "get list watch create update patch delete", ""),
    ("metallb.io", "servicel2statuses/status", "get update patch", ""),
    ("coordination.k8s.io", "leases", "get list watch create update patch delete", ""),
    ("", "secrets", "get", MEMBERLIST),
)


# -- unit tier --------------------------------------------------------------------------
@pytest.mark.unit
def test_helm_lint_strict(helm_env: dict[str, str]) -> None:
    helm(helm_env, "lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART))
    helm(helm_env, "lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART),
         "--set", "speaker.enabled=false", "--set", "lbClass=example.com/l2")
    for metallb_values in sorted((Path(__file__).parent / "fixtures").glob("metallb-*.yaml")):
        helm(helm_env, "lint", "--strict", str(CHART), "-f", str(metallb_values))


@pytest.mark.unit
def test_template_renders_every_object(helm_env: dict[str, str]) -> None:
    docs = render(helm_env)
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
    assert kinds == sorted([
        ("ClusterRole", f"{FULLNAME}:metallb-system:operator"),
        ("ClusterRole", f"{FULLNAME}:metallb-system:speaker"),
        ("ClusterRoleBinding", f"{FULLNAME}:metallb-system:operator"),
        ("ClusterRoleBinding", f"{FULLNAME}:metallb-system:speaker"),
        ("DaemonSet", SPEAKER),
        ("Deployment", OPERATOR),
        ("Role", OPERATOR),
        ("Role", SPEAKER),
        ("RoleBinding", OPERATOR),
        ("RoleBinding", SPEAKER),
        ("Secret", MEMBERLIST),
        ("Service", f"{OPERATOR}-metrics"),
        ("Service", f"{SPEAKER}-metrics"),
        ("ServiceAccount", OPERATOR),
        ("ServiceAccount", SPEAKER),
        *(("CustomResourceDefinition", name) for name in CRD_NAMES),
    ])
    for d in docs:
        if d["kind"] == "CustomResourceDefinition":
            continue
        if not d["kind"].startswith("Cluster"):
            assert d["metadata"]["namespace"] == "metallb-system", d["metadata"]
        assert d["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
    # Only what is asked for: no Prometheus Operator objects, no NetworkPolicies.
    assert not [d for d in render(helm_env, "--set", "crds.enabled=false")
                if d["kind"] == "CustomResourceDefinition"]


@pytest.mark.unit
def test_template_needs_no_kube_version_but_refuses_old_clusters(
        helm_env: dict[str, str]) -> None:
    assert by_kind(render(helm_env), "Deployment")
    assert by_kind(render(helm_env, "--kube-version", KUBE_VERSION), "Deployment")
    err = render_fails(helm_env, "--kube-version", "1.29.4")
    assert "needs Kubernetes >= 1.30" in err and "v1.29.4" in err


@pytest.mark.unit
def test_operator_deployment_contract(helm_env: dict[str, str]) -> None:
    dep = by_kind(render(helm_env), "Deployment")[OPERATOR]
    assert dep["spec"]["replicas"] == 1
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == OPERATOR
    assert pod["securityContext"]["runAsNonRoot"] is True
    c = container(dep)
    assert c["image"] == "ghcr.io/metallb-py/metallb-py:0.1.0"
    assert c["command"] == ["metallb-operator"]
    assert "--metrics-port=7472" in c["args"]
    assert "--lease-name=metallb-py-operator" in c["args"]
    assert not any(a.startswith(("--lb-class", "--webhook", "--no-leader")) for a in c["args"])
    env = env_of(c)
    assert env["METALLB_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["METALLB_IDENTITY"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert c["ports"] == [{"name": "metrics", "containerPort": 7472, "protocol": "TCP"}]
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert c["securityContext"]["allowPrivilegeEscalation"] is False

    svc = by_kind(render(helm_env), "Service")[f"{OPERATOR}-metrics"]
    assert svc["spec"]["ports"][0]["port"] == 7472
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]

    two = by_kind(render(helm_env, "--set", "operator.replicas=2"), "Deployment")[OPERATOR]
    assert two["spec"]["replicas"] == 2


@pytest.mark.unit
def test_speaker_daemonset_contract(helm_env: dict[str, str]) -> None:
    ds = by_kind(render(helm_env), "DaemonSet")[SPEAKER]
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert pod["serviceAccountName"] == SPEAKER
    assert {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
            "effect": "NoSchedule"} in pod["tolerations"]
    c = container(ds)
    assert c["command"] == ["metallb-speaker"]
    assert {"--gossip-port=7946", "--metrics-port=7473", "--log-level=info"} <= set(c["args"])
    env = env_of(c)
    assert env["METALLB_NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert env["METALLB_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["METALLB_HOST_IP"] == {"fieldRef": {"fieldPath": "status.hostIP"}}
    assert env["METALLB_SECRET_NAME"] == MEMBERLIST
    caps = c["securityContext"]["capabilities"]
    assert caps == {"drop": ["ALL"], "add": ["NET_RAW", "NET_ADMIN"]}
    ports = {(p["containerPort"], p["protocol"]) for p in c["ports"]}
    assert ports == {(7473, "TCP"), (7946, "TCP"), (7946, "UDP")}
    assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    # excludeFromExternalLoadBalancersLabel (default on): no speaker on labelled nodes.
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"] == [{"matchExpressions": [{
        "key": "node.kubernetes.io/exclude-from-external-load-balancers",
        "operator": "DoesNotExist"}]}]
    assert "--ignore-exclude-lb" not in c["args"]
    off = by_kind(render(helm_env, "--set", "speaker.excludeFromExternalLoadBalancersLabel=false"),
                  "DaemonSet")[SPEAKER]
    assert "affinity" not in off["spec"]["template"]["spec"]
    assert "--ignore-exclude-lb" in container(off)["args"], "the speaker itself ignores it too"
    # Pod Security: seccomp RuntimeDefault for the Pod, capabilities only in the container.
    assert pod["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.unit
def test_values_switches(helm_env: dict[str, str]) -> None:
    docs = render(helm_env, "--set", "lbClass=example.com/l2", "--set", "logLevel=debug",
                  "--set", "image.tag=dev", "--set", "speaker.memberlist.secretName=memberlist")
    for workload in (by_kind(docs, "Deployment")[OPERATOR], by_kind(docs, "DaemonSet")[SPEAKER]):
        c = container(workload)
        assert "--lb-class=example.com/l2" in c["args"]
        assert "--log-level=debug" in c["args"]
        assert c["image"].endswith(":dev")
    assert env_of(container(by_kind(docs, "DaemonSet")[SPEAKER]))["METALLB_SECRET_NAME"] == \
        "memberlist"
    assert set(by_kind(docs, "Secret")) == {"memberlist"}
    assert ("", "secrets", "get", "memberlist") in grants(by_kind(docs, "Role")[SPEAKER])

    no_speaker = render(helm_env, "--set", "speaker.enabled=false")
    assert not [d for d in no_speaker if "speaker" in d["metadata"]["name"]
                or d["kind"] in ("DaemonSet", "Secret")]
    assert by_kind(no_speaker, "Deployment")

    external = render(helm_env, "--set", "speaker.memberlist.create=false")
    assert not by_kind(external, "Secret")

    assert "replicaz" in render_fails(helm_env, "--set", "operator.replicaz=2")


@pytest.mark.unit
def test_memberlist_secret_is_random_128_chars(helm_env: dict[str, str]) -> None:
    keys = []
    for _ in range(2):
        secret = by_kind(render(helm_env), "Secret")[MEMBERLIST]
        key = base64.b64decode(secret["data"]["secretkey"])
        assert len(key) == 128 and key.isalnum()
        keys.append(key)
    assert keys[0] != keys[1]


@pytest.mark.unit
def test_rbac_grants_exactly_the_contract(helm_env: dict[str, str]) -> None:
    ns = "lb-ns"
    docs = render(helm_env, namespace=ns)
    croles, roles = by_kind(docs, "ClusterRole"), by_kind(docs, "Role")
    assert grants(croles[f"{FULLNAME}:{ns}:operator"]) == OPERATOR_CLUSTER
    assert grants(roles[OPERATOR]) == OPERATOR_NAMESPACE
    assert grants(croles[f"{FULLNAME}:{ns}:speaker"]) == SPEAKER_CLUSTER
    assert grants(roles[SPEAKER]) == SPEAKER_NAMESPACE
    assert roles[OPERATOR]["metadata"]["namespace"] == ns
    assert roles[SPEAKER]["metadata"]["namespace"] == ns

    # Every role is bound to exactly its own component's ServiceAccount.
    bindings = [*by_kind(docs, "ClusterRoleBinding").values(),
                *by_kind(docs, "RoleBinding").values()]
    assert len(bindings) == 4
    for binding in bindings:
        component = binding["metadata"]["labels"]["app.kubernetes.io/component"]
        sa = OPERATOR if component == "operator" else SPEAKER
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]
        ref = binding["roleRef"]
        target = (croles if ref["kind"] == "ClusterRole" else roles)[ref["name"]]
        assert target["metadata"]["labels"]["app.kubernetes.io/component"] == component
    # No wildcards, ever.
    for role in [*croles.values(), *roles.values()]:
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]


@pytest.mark.unit
def test_chart_crds_are_the_crds_directory(helm_env: dict[str, str],
                                           tmp_path: Path) -> None:
    """One source: the `crds` subchart renders crds/ (its files/ is a symlink to it) as
    templates, so `helm upgrade` upgrades them; kept on uninstall; helm stores the real
    files when packaging. No chart-level crds/ directory (Helm would install those once
    and never upgrade them, and they would collide with the templates)."""
    assert not (CHART / "crds").exists()
    link = CRD_SUBCHART / "files"
    assert link.is_symlink() and link.resolve() == CRD_DIR.resolve()
    assert not Path(str(link.readlink())).is_absolute(), "must survive a clone elsewhere"
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert {"name": "crds", "version": "0.1.0", "condition": "crds.enabled"} in \
        chart["dependencies"]

    source = {p.name: p.read_bytes() for p in sorted(CRD_DIR.glob("*.yaml"))}
    assert source
    rendered = [d for d in render(helm_env) if d["kind"] == "CustomResourceDefinition"]
    for crd in rendered:
        annotations = crd["metadata"].pop("annotations")
        assert annotations == {"helm.sh/resource-policy": "keep"}
    expected = [yaml.safe_load(body) for body in source.values()]
    assert sorted(rendered, key=lambda d: d["metadata"]["name"]) == \
        sorted(expected, key=lambda d: d["metadata"]["name"])

    helm(helm_env, "package", str(CHART), "-d", str(tmp_path))
    with tarfile.open(tmp_path / "metallb-py-0.1.0.tgz") as tar:
        packaged = {}
        for member in tar.getmembers():
            if member.name.startswith("metallb-py/charts/crds/files/"):
                f = tar.extractfile(member)
                assert f is not None, f"{member.name} is not a regular file"
                packaged[member.name.rsplit("/", 1)[1]] = f.read()
    assert packaged == source


@pytest.mark.unit
def test_crd_names_checked_by_lookup_are_the_crds(helm_env: dict[str, str]) -> None:
    """templates/checks.yaml looks up each CRD by name: the list is crds/'s."""
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    names = helpers.split('define "metallb-py.crdNames" -}}', 1)[1].split("{{-", 1)[0]
    assert tuple(sorted(names.split())) == CRD_NAMES


# -- cluster tier: install / upgrade / uninstall -----------------------------------------
@dataclass(frozen=True)
class Release:
    name: str
    namespace: str


@pytest.fixture(scope="module")
def cp() -> Iterator[ControlPlane]:
    """Our own API server: no CRDs until `helm install` creates them."""
    with ControlPlane() as plane:
        yield plane


def install(cp: ControlPlane, env: dict[str, str], name: str, ns: str,
            *extra: str) -> Release:
    out = helm(env, "install", name, str(CHART), "-n", ns, *extra, kubeconfig=cp.kubeconfig)
    assert "STATUS: deployed" in out.stdout
    assert "kind: IPAddressPool" in out.stdout, "NOTES.txt shows how to configure a pool"
    return Release(name, ns)


@pytest.fixture(scope="module")
def release(cp: ControlPlane, helm_env: dict[str, str]) -> Release:
    crds = cp.kubectl("get", "crd", "-o", "name").stdout.split()
    assert not [c for c in crds if c.endswith(".metallb.io")], "CRDs must come from the chart"
    # Exactly the README's command (this control plane is ours: metallb-system is new).
    return install(cp, helm_env, RELEASE, "metallb-system", "--create-namespace")


def get_json(cp: ControlPlane, *args: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(cp.kubectl("get", *args, "-o", "json").stdout)
    return result


CRD_NAMES = tuple(sorted(yaml.safe_load(p.read_text())["metadata"]["name"]
                         for p in CRD_DIR.glob("*.yaml")))


def release_objects(rel: Release) -> list[tuple[str, ...]]:
    """kubectl get arguments for every object the release owns."""
    ns = ("-n", rel.namespace)
    return [
        ("deployment", OPERATOR, *ns), ("daemonset", SPEAKER, *ns),
        ("serviceaccount", OPERATOR, *ns), ("serviceaccount", SPEAKER, *ns),
        ("role", OPERATOR, *ns), ("role", SPEAKER, *ns),
        ("rolebinding", OPERATOR, *ns), ("rolebinding", SPEAKER, *ns),
        ("secret", MEMBERLIST, *ns), ("service", f"{OPERATOR}-metrics", *ns),
        ("service", f"{SPEAKER}-metrics", *ns),
        ("clusterrole", f"{FULLNAME}:{rel.namespace}:operator"),
        ("clusterrole", f"{FULLNAME}:{rel.namespace}:speaker"),
        ("clusterrolebinding", f"{FULLNAME}:{rel.namespace}:operator"),
        ("clusterrolebinding", f"{FULLNAME}:{rel.namespace}:speaker"),
    ]


@pytest.mark.cluster
def test_install_creates_crds_and_every_object(cp: ControlPlane, release: Release) -> None:
    cp.kubectl("wait", "--for=condition=Established", "--timeout=60s",
               *(f"crd/{name}" for name in CRD_NAMES))
    assert {"ipaddresspools.metallb.io", "l2advertisements.metallb.io",
            "servicel2statuses.metallb.io"} <= set(CRD_NAMES)
    for source in (yaml.safe_load(p.read_text()) for p in CRD_DIR.glob("*.yaml")):
        crd = get_json(cp, "crd", source["metadata"]["name"])
        assert crd["spec"]["versions"] == source["spec"]["versions"]
        # Release objects (templates of the crds subchart), kept on uninstall.
        annotations = crd["metadata"]["annotations"]
        assert annotations["meta.helm.sh/release-name"] == release.name
        assert annotations["helm.sh/resource-policy"] == "keep"
    for args in release_objects(release):
        obj = get_json(cp, *args)
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm", args


@pytest.mark.cluster
def test_upgrade_keeps_memberlist_secret(cp: ControlPlane, release: Release,
                                         helm_env: dict[str, str]) -> None:
    before = get_json(cp, "secret", MEMBERLIST, "-n", release.namespace)
    key = base64.b64decode(before["data"]["secretkey"])
    assert len(key) == 128
    helm(helm_env, "upgrade", release.name, str(CHART), "-n", release.namespace,
         "--set", "logLevel=debug", kubeconfig=cp.kubeconfig)
    dep = get_json(cp, "deployment", OPERATOR, "-n", release.namespace)
    assert "--log-level=debug" in container(dep)["args"], "the upgrade was applied"
    after = get_json(cp, "secret", MEMBERLIST, "-n", release.namespace)
    assert after["data"] == before["data"]
    # And once more, with the values reset to the defaults.
    helm(helm_env, "upgrade", release.name, str(CHART), "-n", release.namespace,
         "--reset-values", kubeconfig=cp.kubeconfig)
    again = get_json(cp, "secret", MEMBERLIST, "-n", release.namespace)
    assert again["data"] == before["data"]


@pytest.mark.cluster
def test_uninstall_removes_the_release_objects(cp: ControlPlane,
                                               helm_env: dict[str, str]) -> None:
    ns = create_namespace(cp, "mlb")
    # The CRDs are cluster-wide and belong to the first release: a second one that would
    # install them too is refused, naming the owner.
    refused = helm(helm_env, "install", "other", str(CHART), "-n", ns,
                   kubeconfig=cp.kubeconfig, check=False)
    assert refused.returncode != 0
    assert "belongs to Helm release metallb-py in namespace metallb-system" in refused.stderr
    assert "crds.enabled=false" in refused.stderr
    rel = install(cp, helm_env, "other", ns, "--set", "crds.enabled=false")
    other = "other-metallb-py"
    objects = [(kind, name.replace(FULLNAME, other, 1), *rest)
               for kind, name, *rest in release_objects(rel)]
    for args in objects:
        get_json(cp, *args)
    helm(helm_env, "uninstall", rel.name, "-n", rel.namespace, kubeconfig=cp.kubeconfig)
    for args in objects:
        def gone(args: tuple[str, ...] = args) -> bool:
            got = cp.kubectl("get", *args, check=False)
            return got.returncode != 0 and "NotFound" in got.stderr

        wait_for(gone, timeout=30, interval=0.2, what=f"{args} deleted")
    assert helm(helm_env, "status", rel.name, "-n", rel.namespace, kubeconfig=cp.kubeconfig,
                check=False).returncode != 0
    # Helm never deletes CRDs (they may hold other releases' data).
    for name in CRD_NAMES:
        get_json(cp, "crd", name)


@pytest.mark.cluster
def test_upgrade_upgrades_the_crds(cp: ControlPlane, release: Release,
                                   helm_env: dict[str, str], tmp_path: Path) -> None:
    """An older chart whose CRD lacks a printer column, then this one: `helm upgrade`
    changes the live CRD both ways (a chart-level crds/ directory never would)."""
    older = tmp_path / "metallb-py"
    shutil.copytree(CHART, older, symlinks=False)  # the symlinked CRDs become copies
    name = "ipaddresspools.metallb.io"
    path = older / "charts" / "crds" / "files" / "metallb.io_ipaddresspools.yaml"
    crd = yaml.safe_load(path.read_text())
    columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
    dropped = columns.pop()["name"]
    path.write_text(yaml.safe_dump(crd))

    def live_columns() -> list[str]:
        got = get_json(cp, "crd", name)["spec"]["versions"][0]
        return [c["name"] for c in got.get("additionalPrinterColumns", [])]

    assert dropped in live_columns()
    helm(helm_env, "upgrade", release.name, str(older), "-n", release.namespace,
         kubeconfig=cp.kubeconfig)
    assert dropped not in live_columns()
    helm(helm_env, "upgrade", release.name, str(CHART), "-n", release.namespace,
         kubeconfig=cp.kubeconfig)
    assert dropped in live_columns()


@pytest.mark.cluster
def test_metallb_crds_are_detected_and_explained(cp: ControlPlane, release: Release,
                                                 helm_env: dict[str, str]) -> None:
    """A metallb.io CRD without metallb-py's label (as MetalLB installs it): install and
    upgrade stop with an explanation instead of running under a schema that would prune
    metallb-py's status. (`lookup` sees the cluster on install, upgrade and
    --dry-run=server, never under `helm template`.)"""
    name = "l2advertisements.metallb.io"
    cp.kubectl("label", "crd", name, "app.kubernetes.io/part-of-")
    try:
        for args in (("upgrade", release.name, str(CHART), "-n", release.namespace),
                     ("install", "newcomer", str(CHART), "-n", release.namespace,
                      "--set", "crds.enabled=false", "--dry-run=server")):
            out = helm(helm_env, *args, kubeconfig=cp.kubeconfig, check=False)
            assert out.returncode != 0, args
            assert f"CustomResourceDefinition {name} exists and is not metallb-py's" in \
                out.stderr, out.stderr
            assert "kubectl apply --server-side --force-conflicts -f crds/" in out.stderr
        assert by_kind(render(helm_env), "CustomResourceDefinition"), \
            "helm template looks nothing up"
    finally:
        cp.kubectl("label", "crd", name, "app.kubernetes.io/part-of=metallb-py")
    helm(helm_env, "upgrade", release.name, str(CHART), "-n", release.namespace,
         kubeconfig=cp.kubeconfig)


@pytest.mark.cluster
def test_metallb_values_file_installs(cp: ControlPlane, release: Release,
                                      helm_env: dict[str, str]) -> None:
    """MetalLB's own values file, unchanged, installed into the real API server (which
    validates and stores every object; no kubelet runs the Pods here). The namespace
    gets the README's Pod Security label first; NOTES gives that exact command."""
    values = Path(__file__).parent / "fixtures" / "metallb-values-l2.yaml"
    ns = create_namespace(cp, "mlbvals")
    cp.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=privileged")
    out = helm(helm_env, "install", "metallb", str(CHART), "-n", ns, "-f", str(values),
               "--set", "crds.enabled=false", kubeconfig=cp.kubeconfig)
    assert "STATUS: deployed" in out.stdout
    assert (f"kubectl label namespace {ns} pod-security.kubernetes.io/enforce=privileged"
            in out.stdout)
    assert "frr-k8s: no frr-k8s subchart" in out.stdout, "ignored keys are listed"
    try:
        ds = get_json(cp, "daemonset", "metallb-metallb-py-speaker", "-n", ns)
        c = container(ds)
        assert c["startupProbe"]["httpGet"]["path"] == "/livez"
        assert ds["spec"]["template"]["spec"]["securityContext"]["seccompProfile"] == \
            {"type": "RuntimeDefault"}
        dep = get_json(cp, "deployment", "metallb-metallb-py-operator", "-n", ns)
        assert dep["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 65534
        get_json(cp, "service", "metallb-metallb-py-speaker-metrics", "-n", ns)
    finally:
        helm(helm_env, "uninstall", "metallb", "-n", ns, kubeconfig=cp.kubeconfig)


# -- cluster tier: the RBAC proof --------------------------------------------------------
def sa_user(ns: str, sa: str) -> str:
    return f"system:serviceaccount:{ns}:{sa}"


@pytest.mark.cluster
def test_real_operator_works_with_chart_rbac(cp: ControlPlane, release: Release) -> None:
    ns = release.namespace
    kubeconfig = cp.issue_kubeconfig(sa_user(ns, OPERATOR), groups=(
        "system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"))
    denied = cp.kubectl(f"--kubeconfig={kubeconfig}", "get", "secrets", "-n", ns, check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()

    app_ns = create_namespace(cp, "app")
    cp.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([
        {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
         "metadata": {"name": "lab", "namespace": ns},
         "spec": {"addresses": ["198.18.200.0/28"]}},
        {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
         "metadata": {"name": "lab", "namespace": ns}, "spec": {"ipAddressPools": ["lab"]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": app_ns},
         "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
                  "ports": [{"port": 80, "protocol": "TCP"}]}},
    ]))
    with OperatorProcess(cp, ns, kubeconfig=kubeconfig,
                         identity=unique_name("chart-operator")) as op:
        def ingress() -> list[dict[str, Any]] | None:
            svc = get_json(cp, "service", "web", "-n", app_ns)
            found: list[dict[str, Any]] | None = svc["status"].get(
                "loadBalancer", {}).get("ingress")
            return found

        got = wait_for(ingress, timeout=60, interval=0.2, what="LoadBalancer ingress")
        assert got[0]["ip"].startswith("198.18.200.")

        # The other writes the chart allows: pool status, the Lease, an Event.
        def pool_status() -> list[dict[str, Any]] | None:
            pool = get_json(cp, "ipaddresspools.metallb.io", "lab", "-n", ns)
            conditions: list[dict[str, Any]] | None = (pool.get("status") or {}).get(
                "conditions")
            return conditions

        wait_for(pool_status, timeout=30, interval=0.2, what="IPAddressPool status")
        lease = get_json(cp, "lease", "metallb-py-operator", "-n", ns)
        assert lease["spec"]["holderIdentity"].startswith("chart-operator")

        def allocated_event() -> bool:
            events = get_json(cp, "events", "-n", app_ns)["items"]
            return any(e["reason"] == "IPAllocated" for e in events)

        wait_for(allocated_event, timeout=30, interval=0.2, what="IPAllocated Event")
        time.sleep(1.0)  # let any late, failing request reach the log
        logs = op.logs()
    lowered = logs.lower()
    assert "forbidden" not in lowered and " 403" not in logs and '"403' not in logs, logs[-4000:]


SPEAKER_ALLOWED: list[tuple[str, ...]] = [
    *[(verb, "nodes") for verb in READ.split()],
    *[(verb, "services") for verb in READ.split()],
    *[(verb, "endpointslices.discovery.k8s.io") for verb in READ.split()],
    ("create", "events"), ("patch", "events"),
    *[(verb, f"{r}.metallb.io") for r in CONFIG for verb in READ.split()],
]
SPEAKER_ALLOWED_IN_NS: list[tuple[str, ...]] = [
    *[(verb, "servicel2statuses.metallb.io")
      for verb in ALL_VERBS],
    *[(verb, "servicel2statuses.metallb.io", "--subresource=status")
      for verb in ("get", "update", "patch")],
    *[(verb, "leases.coordination.k8s.io")
      for verb in ALL_VERBS],
    ("get", f"secret/{MEMBERLIST}"),
]
SPEAKER_DENIED: list[tuple[str, ...]] = [
    ("delete", "services"), ("patch", "services"), ("update", "services"),
    ("patch", "services", "--subresource=status"),
    ("get", "secret/some-other-secret"), ("list", "secrets"), ("watch", "secrets"),
    ("update", f"secret/{MEMBERLIST}"),
    ("create", "ipaddresspools.metallb.io"), ("delete", "l2advertisements.metallb.io"),
    ("update", "nodes"), ("create", "pods"), ("get", "configmaps"),
]


@pytest.mark.cluster
def test_speaker_rbac_with_can_i(cp: ControlPlane, release: Release) -> None:
    ns = release.namespace
    user = ("--as", sa_user(ns, SPEAKER), "--as-group", "system:serviceaccounts",
            "--as-group", f"system:serviceaccounts:{ns}", "--as-group", "system:authenticated")

    def can_i(*args: str, where: str) -> bool:
        out = cp.kubectl("auth", "can-i", *args, *user, "-n", where, check=False)
        assert out.stdout.strip() in ("yes", "no"), out.stderr
        return out.stdout.strip() == "yes"

    elsewhere = create_namespace(cp, "other")
    problems = []
    for args in SPEAKER_ALLOWED:
        for where in (ns, elsewhere):
            if not can_i(*args, where=where):
                problems.append(f"denied {args} in {where}")
    for args in SPEAKER_ALLOWED_IN_NS:
        if not can_i(*args, where=ns):
            problems.append(f"denied {args} in the release namespace")
        if can_i(*args, where=elsewhere):
            problems.append(f"allowed {args} outside the release namespace")
    for args in SPEAKER_DENIED:
        for where in (ns, elsewhere):
            if can_i(*args, where=where):
                problems.append(f"allowed {args} in {where}")
    assert not problems, "\n".join(problems)

    # And the operator identity cannot read the memberlist Secret at all.
    op = ("--as", sa_user(ns, OPERATOR), "--as-group", "system:serviceaccounts")
    out = cp.kubectl("auth", "can-i", "get", f"secret/{MEMBERLIST}", *op, "-n", ns,
                     check=False)
    assert out.stdout.strip() == "no"

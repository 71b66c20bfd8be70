"""The chart read with MetalLB's values layout (issue 12, "Chart"): MetalLB's own
values file for a layer-2 setup renders unchanged; each MetalLB key metallb-py
supports lands in the rendered manifests; keys it cannot honour fail with a message
naming the key; Prometheus Operator objects only when asked.

All `helm template`, no --kube-version. The fixture is MetalLB's charts/metallb/values.yaml
(see its header for the commit), comments trimmed, frrk8s.enabled set to false.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.charts.test_chart import (
    OPERATOR,
    SPEAKER,
    by_kind,
    container,
    env_of,
    helm_env,
    render,
    render_fails,
)

from metallb_lab.controlplane import REPO_ROOT

__all__ = ["helm_env"]  # the module-scoped fixture, shared with test_chart

FIXTURES = Path(__file__).parent / "fixtures"
METALLB_VALUES = FIXTURES / "metallb-values-l2.yaml"
# MetalLB's chart values: today's (frr-k8s off) and v0.15.3's as released (FRR mode on,
# HTTP metrics on 7472, kube-rbac-proxy keys).
METALLB_FILES = [METALLB_VALUES, FIXTURES / "metallb-values-v0.15.3.yaml"]
IMAGE = "ghcr.io/metallb-py/metallb-py:0.1.0"


def with_values(env: dict[str, str], tmp_path: Path, values: dict[str, Any],
                *extra: str) -> list[dict[str, Any]]:
    f = tmp_path / f"values-{len(list(tmp_path.iterdir()))}.yaml"
    f.write_text(yaml.safe_dump(values))
    return render(env, *extra, "-f", str(f))


def workloads(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    return by_kind(docs, "Deployment")[OPERATOR], by_kind(docs, "DaemonSet")[SPEAKER]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


# -- MetalLB's values file, unchanged ------------------------------------------------------
@pytest.mark.unit
@pytest.mark.parametrize("values_file", METALLB_FILES, ids=lambda p: p.name)
def test_metallb_values_file_renders_and_maps(helm_env: dict[str, str],
                                              values_file: Path) -> None:
    values = yaml.safe_load(values_file.read_text())
    assert values["controller"]["image"]["repository"] == "quay.io/metallb/controller"
    docs = render(helm_env, "-f", str(values_file))
    dep, ds = workloads(docs)
    op, sp = container(dep), container(ds)

    # MetalLB's image repositories hold Go binaries: ours runs instead.
    assert op["image"] == sp["image"] == IMAGE
    assert op["command"] == ["metallb-operator"] and sp["command"] == ["metallb-speaker"]
    assert "--log-level=info" in op["args"] and "--log-level=info" in sp["args"]
    assert not any(a.startswith("--lb-class") for a in op["args"] + sp["args"])
    # controller.strategy, speaker.updateStrategy
    assert dep["spec"]["strategy"] == {"type": "RollingUpdate"}
    assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate"}
    # controller.securityContext is the Pod's (MetalLB: nobody); seccomp stays.
    assert pod_spec(dep)["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65532, "fsGroup": 65534,
        "seccompProfile": {"type": "RuntimeDefault"}}
    # speaker.securityContext: {} -> seccomp RuntimeDefault only (and FRR's vty group when
    # the file turns on MetalLB's FRR mode, as v0.15.3's does: FRR beside the speaker).
    bgp = values["speaker"]["frr"]["enabled"]
    assert pod_spec(ds)["securityContext"] == {
        "seccompProfile": {"type": "RuntimeDefault"},
        **({"supplementalGroups": [301]} if bgp else {})}
    assert [c["name"] for c in pod_spec(ds)["containers"]] == \
        (["speaker", "frr"] if bgp else ["speaker"])
    # Probes: MetalLB's thresholds, on our metrics port (its health port 17472 read as it).
    for c in (op, sp):
        for kind, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
            assert c[kind] == {"httpGet": {"path": path, "port": "metrics"},
                               "initialDelaySeconds": 10, "periodSeconds": 10,
                               "timeoutSeconds": 1, "successThreshold": 1,
                               "failureThreshold": 3}, (c["name"], kind)
    assert sp["startupProbe"] == {"httpGet": {"path": "/livez", "port": "metrics"},
                                  "failureThreshold": 30, "periodSeconds": 5}
    assert "startupProbe" not in op
    # scrapeAnnotations: false in MetalLB's file.
    for w in (dep, ds):
        assert "prometheus.io/scrape" not in (w["spec"]["template"]["metadata"]
                                              .get("annotations") or {})
    # tolerateMaster: true
    assert {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
            "effect": "NoSchedule"} in pod_spec(ds)["tolerations"]
    assert pod_spec(ds)["nodeSelector"] == {"kubernetes.io/os": "linux"}
    # memberlist: enabled, mlBindPort 7946, secret <fullname>-memberlist
    assert "--gossip-port=7946" in sp["args"]
    assert env_of(sp)["METALLB_SECRET_NAME"] == "metallb-py-memberlist"
    assert "--ignore-exclude-lb" not in sp["args"]
    # CRDs (crds.enabled: true); no monitors, rules or policies (all off in the file).
    kinds = {d["kind"] for d in docs}
    assert "CustomResourceDefinition" in kinds
    assert not kinds & {"ServiceMonitor", "PodMonitor", "PrometheusRule", "NetworkPolicy"}


# -- each supported MetalLB key -----------------------------------------------------------
def args_of(c: dict[str, Any]) -> list[str]:
    result: list[str] = c["args"]
    return result


CASES: list[tuple[str, dict[str, Any], Any]] = [
    ("loadBalancerClass", {"loadBalancerClass": "example.com/l2"},
     lambda op, sp, docs: "--lb-class=example.com/l2" in args_of(container(op))
     and "--lb-class=example.com/l2" in args_of(container(sp))),
    ("controller.logLevel all", {"controller": {"logLevel": "all"}},
     lambda op, sp, docs: "--log-level=debug" in args_of(container(op))
     and "--log-level=info" in args_of(container(sp))),
    ("speaker.logLevel warn", {"speaker": {"logLevel": "warn"}},
     lambda op, sp, docs: "--log-level=warning" in args_of(container(sp))
     and "--log-level=info" in args_of(container(op))),
    ("speaker.logLevel none", {"speaker": {"logLevel": "none"}},
     lambda op, sp, docs: "--log-level=critical" in args_of(container(sp))),
    ("controller.logLevel error", {"controller": {"logLevel": "error"}},
     lambda op, sp, docs: "--log-level=error" in args_of(container(op))),
    ("controller.image", {"controller": {"image": {
        "repository": "registry.example/mlb", "tag": "t1", "pullPolicy": "Always"}}},
     lambda op, sp, docs: container(op)["image"] == "registry.example/mlb:t1"
     and container(op)["imagePullPolicy"] == "Always" and container(sp)["image"] == IMAGE),
    ("speaker.image tag with MetalLB's repository", {"speaker": {"image": {
        "repository": "quay.io/metallb/speaker", "tag": "v9"}}},
     lambda op, sp, docs: container(sp)["image"] == "ghcr.io/metallb-py/metallb-py:v9"),
    ("controller.resources", {"controller": {"resources": {"limits": {"cpu": "2"}}}},
     lambda op, sp, docs: container(op)["resources"]["limits"]["cpu"] == "2"),
    ("speaker.resources", {"speaker": {"resources": {"limits": {"memory": "1Gi"}}}},
     lambda op, sp, docs: container(sp)["resources"]["limits"]["memory"] == "1Gi"),
    ("controller.securityContext", {"controller": {"securityContext": {"runAsUser": 1000}}},
     lambda op, sp, docs: pod_spec(op)["securityContext"]["runAsUser"] == 1000),
    ("speaker.securityContext", {"speaker": {"securityContext": {"fsGroup": 7}}},
     lambda op, sp, docs: pod_spec(sp)["securityContext"] == {
         "fsGroup": 7, "seccompProfile": {"type": "RuntimeDefault"}}),
    ("speaker.securityContext seccomp override", {"speaker": {"securityContext": {
        "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}}},
     lambda op, sp, docs: pod_spec(sp)["securityContext"]["seccompProfile"]["type"]
     == "Localhost"),
    ("runtimeClassName", {"controller": {"runtimeClassName": "kata"},
                          "speaker": {"runtimeClassName": "runc"}},
     lambda op, sp, docs: pod_spec(op)["runtimeClassName"] == "kata"
     and pod_spec(sp)["runtimeClassName"] == "runc"),
    ("tolerateMaster false + tolerations", {"speaker": {"tolerateMaster": False, "tolerations": [
        {"key": "k", "operator": "Exists"}]}},
     lambda op, sp, docs: pod_spec(sp)["tolerations"] == [{"key": "k", "operator": "Exists"}]),
    ("tolerations added to tolerateMaster's", {"speaker": {"tolerations": [
        {"key": "k", "operator": "Exists"}]}},
     lambda op, sp, docs: len(pod_spec(sp)["tolerations"]) == 3),
    ("controller.tolerations",
     {"controller": {"tolerations": [{"key": "c", "operator": "Exists"}]}},
     lambda op, sp, docs: pod_spec(op)["tolerations"] == [{"key": "c", "operator": "Exists"}]),
    ("labels", {"controller": {"labels": {"team": "net"}}, "speaker": {"labels": {"tier": "l2"}}},
     lambda op, sp, docs: op["metadata"]["labels"]["team"] == "net"
     and op["spec"]["template"]["metadata"]["labels"]["team"] == "net"
     and sp["metadata"]["labels"]["tier"] == "l2"
     and sp["spec"]["template"]["metadata"]["labels"]["tier"] == "l2"
     and "team" not in op["spec"]["selector"]["matchLabels"]),
    ("podAnnotations", {"controller": {"podAnnotations": {"a": "1"}},
                        "speaker": {"podAnnotations": {"b": "2"}}},
     lambda op, sp, docs: op["spec"]["template"]["metadata"]["annotations"]["a"] == "1"
     and sp["spec"]["template"]["metadata"]["annotations"]["b"] == "2"),
    ("priorityClassName", {"controller": {"priorityClassName": "high"},
                           "speaker": {"priorityClassName": "system-node-critical"}},
     lambda op, sp, docs: pod_spec(op)["priorityClassName"] == "high"
     and pod_spec(sp)["priorityClassName"] == "system-node-critical"),
    ("controller.strategy", {"controller": {"strategy": {"type": "Recreate"}}},
     lambda op, sp, docs: op["spec"]["strategy"] == {"type": "Recreate"}),
    ("speaker.updateStrategy", {"speaker": {"updateStrategy": {"type": "OnDelete"}}},
     lambda op, sp, docs: sp["spec"]["updateStrategy"] == {"type": "OnDelete"}),
    ("controller probes", {"controller": {
        "livenessProbe": {"enabled": True, "port": 17472, "failureThreshold": 7,
                          "initialDelaySeconds": 1, "periodSeconds": 2, "successThreshold": 1,
                          "timeoutSeconds": 3},
        "readinessProbe": {"enabled": False}}},
     lambda op, sp, docs: container(op)["livenessProbe"] == {
         "httpGet": {"path": "/livez", "port": "metrics"}, "failureThreshold": 7,
         "initialDelaySeconds": 1, "periodSeconds": 2, "successThreshold": 1,
         "timeoutSeconds": 3} and "readinessProbe" not in container(op)),
    ("speaker probe on the metrics port", {"speaker": {"readinessProbe": {
        "enabled": True, "port": 7473, "successThreshold": 2}}},
     lambda op, sp, docs: container(sp)["readinessProbe"]["successThreshold"] == 2),
    ("speaker.startupProbe", {"speaker": {"startupProbe": {
        "enabled": True, "failureThreshold": 9, "periodSeconds": 3}}},
     lambda op, sp, docs: container(sp)["startupProbe"] == {
         "httpGet": {"path": "/livez", "port": "metrics"}, "failureThreshold": 9,
         "periodSeconds": 3}),
    ("nodeSelector", {"controller": {"nodeSelector": {"zone": "a"}},
                      "speaker": {"nodeSelector": {"lb": "yes"}}},
     lambda op, sp, docs: pod_spec(op)["nodeSelector"] == {"kubernetes.io/os": "linux", "zone": "a"}
     and pod_spec(sp)["nodeSelector"] == {"kubernetes.io/os": "linux", "lb": "yes"}),
    ("controller.affinity", {"controller": {"affinity": {"podAntiAffinity": {}}}},
     lambda op, sp, docs: pod_spec(op)["affinity"] == {"podAntiAffinity": {}}),
    ("speaker.ignoreExcludeLB", {"speaker": {"ignoreExcludeLB": True}},
     lambda op, sp, docs: "--ignore-exclude-lb" in args_of(container(sp))
     and "affinity" not in pod_spec(sp)),
    # The speaker's built-in exclusions are MetalLB's list (near enough): nothing to pass.
    ("speaker.excludeInterfaces enabled", {"speaker": {"excludeInterfaces": {"enabled": True}}},
     lambda op, sp, docs: sp is not None),
    ("memberlist.mlBindPort", {"speaker": {"memberlist": {"mlBindPort": 7950}}},
     lambda op, sp, docs: "--gossip-port=7950" in args_of(container(sp))
     and {p["containerPort"] for p in container(sp)["ports"] if p["name"] != "metrics"}
     == {7950}),
    ("memberlist.mlBindAddrOverride", {"speaker": {"memberlist": {
        "mlBindAddrOverride": "10.1.2.3"}}},
     lambda op, sp, docs: {"--bind-address=10.1.2.3", "--advertise-address=10.1.2.3"}
     <= set(args_of(container(sp)))),
    ("speaker.secretName", {"speaker": {"secretName": "ml-key"}},
     lambda op, sp, docs: env_of(container(sp))["METALLB_SECRET_NAME"] == "ml-key"
     and set(by_kind(docs, "Secret")) == {"ml-key"}),
    ("controller.serviceAccount", {"controller": {"serviceAccount": {
        "create": True, "name": "ctl", "annotations": {"team": "net"}}}},
     lambda op, sp, docs: pod_spec(op)["serviceAccountName"] == "ctl"
     and by_kind(docs, "ServiceAccount")["ctl"]["metadata"]["annotations"] == {"team": "net"}
     and all(b["subjects"][0]["name"] == "ctl" for b in by_kind(docs, "RoleBinding").values()
             if b["metadata"]["labels"]["app.kubernetes.io/component"] == "operator")),
    ("controller.enabled false", {"controller": {"enabled": False}},
     lambda op, sp, docs: op is None and sp is not None),
    ("extraContainers", {"controller": {"extraContainers": [{"name": "side", "image": "busybox"}]}},
     lambda op, sp, docs: [c["name"] for c in pod_spec(op)["containers"]]
     == ["operator", "side"]),
    # MetalLB's FRR mode and its frr-k8s both mean BGP: FRR beside the speaker, from the
    # speaker's image, the Pod in FRR's vty group; the debounce in ms becomes seconds.
    ("speaker.frr.enabled", {"speaker": {"frr": {"enabled": True, "image": {
        "repository": "quay.io/frrouting/frr", "tag": "10.5.3"}}, "bgpDebounceTimeout": 3000}},
     lambda op, sp, docs: [c["name"] for c in pod_spec(sp)["containers"]] == ["speaker", "frr"]
     and pod_spec(sp)["containers"][1]["image"] == container(sp)["image"]
     and pod_spec(sp)["containers"][1]["command"] == ["metallb-frr"]
     and {"--frr-socket-dir=/var/run/frr", "--frr-debounce=3"} <= set(args_of(container(sp)))
     and pod_spec(sp)["securityContext"]["supplementalGroups"] == [301]
     and any("servicebgpstatuses" in r["resources"]
             for role in by_kind(docs, "Role").values() for r in role["rules"])),
    ("frrk8s.enabled", {"frrk8s": {"enabled": True}},
     lambda op, sp, docs: [c["name"] for c in pod_spec(sp)["containers"]] == ["speaker", "frr"]),
    ("frrk8s.external", {"frrk8s": {"enabled": True, "external": True, "namespace": "x"}},
     lambda op, sp, docs: [c["name"] for c in pod_spec(sp)["containers"]] == ["speaker"]
     and not any("--frr-socket-dir" in a for a in args_of(container(sp)))
     and not any("servicebgpstatuses" in r["resources"]
                 for role in by_kind(docs, "Role").values() for r in role["rules"])),
    ("prometheus.metricsPort 7472 (MetalLB v0.15)", {"prometheus": {"metricsPort": 7472}},
     lambda op, sp, docs: "--metrics-port=7473" in args_of(container(sp))),
    ("scrapeAnnotations", {"prometheus": {"scrapeAnnotations": True}},
     lambda op, sp, docs: sp["spec"]["template"]["metadata"]["annotations"]
     == {"prometheus.io/scrape": "true", "prometheus.io/port": "7473"}),
    ("networkpolicies", {"networkpolicies": {"enabled": True, "defaultDeny": True,
                                             "apiPort": 16443}},
     lambda op, sp, docs: by_kind(docs, "NetworkPolicy")["metallb-py-default-deny"]["spec"]
     == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
     and by_kind(docs, "NetworkPolicy")[OPERATOR]["spec"]["egress"]
     == [{"ports": [{"protocol": "TCP", "port": 16443}]}]
     and by_kind(docs, "NetworkPolicy")[OPERATOR]["spec"]["ingress"]
     == [{"ports": [{"protocol": "TCP", "port": 7472}]}]),
]


@pytest.mark.unit
@pytest.mark.parametrize(("values", "check"), [(v, c) for _, v, c in CASES],
                         ids=[name for name, _, _ in CASES])
def test_metallb_key_is_rendered(helm_env: dict[str, str], tmp_path: Path,
                                 values: dict[str, Any], check: Any) -> None:
    """Each key over MetalLB's own values file, as a MetalLB user would edit it."""
    docs = with_values(helm_env, tmp_path, values, "-f", str(METALLB_VALUES))
    op = by_kind(docs, "Deployment").get(OPERATOR)
    sp = by_kind(docs, "DaemonSet").get(SPEAKER)
    assert check(op, sp, docs), yaml.safe_dump_all([d for d in (op, sp) if d])


@pytest.mark.unit
def test_our_layout_still_wins_where_metallb_is_silent(helm_env: dict[str, str],
                                                       tmp_path: Path) -> None:
    """Component keys override the top-level ones; unset MetalLB keys change nothing."""
    docs = with_values(helm_env, tmp_path, {"logLevel": "debug", "speaker": {"logLevel": "error"},
                                            "lbClass": "a/b", "loadBalancerClass": "a/b"})
    op, sp = workloads(docs)
    assert "--log-level=debug" in args_of(container(op))
    assert "--log-level=error" in args_of(container(sp))
    assert "--lb-class=a/b" in args_of(container(op))


# -- what metallb-py cannot honour: a message naming the key -------------------------------
REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"configInline": {"address-pools": []}}, "metallbctl convert"),
    ({"speaker": {"memberlist": {"enabled": False}}}, "speaker.memberlist.enabled"),
    ({"speaker": {"excludeInterfaces": {"enabled": False}}}, "speaker.excludeInterfaces.enabled"),
    ({"tls": {"minVersion": "VersionTLS13"}}, "tls.minVersion"),
    ({"prometheus": {"metricsPort": 9999}}, "prometheus.metricsPort"),
    ({"controller": {"command": "/controller"}}, "controller.command"),
    ({"speaker": {"command": "/speaker"}}, "speaker.command"),
    ({"speaker": {"wanConfig": True}}, "speaker.wanConfig"),
    ({"speaker": {"livenessProbe": {"enabled": True, "port": 1234}}}, "speaker.livenessProbe.port"),
    ({"controller": {"readinessProbe": {"enabled": True, "port": 1234}}},
     "controller.readinessProbe"),
    ({"prometheus": {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}}},
     "prometheus.serviceMonitor.enabled and prometheus.podMonitor.enabled"),
    ({"lbClass": "a/b", "loadBalancerClass": "c/d"}, "loadBalancerClass"),
    ({"controller": {"logLevel": "verbose"}}, "logLevel"),
    ({"controller": {"replicas": 2}}, "replicas"),  # unknown to MetalLB's layout too
    ({"speaker": {"someNewKey": 1}}, "someNewKey"),
    ({"prometheus": {"serviceMonitor": {"enabled": True}, "rbacPrometheus": True}},
     "prometheus.serviceAccount"),
]


@pytest.mark.unit
@pytest.mark.parametrize(("values", "key"), REFUSED, ids=[k for _, k in REFUSED])
def test_unsupported_metallb_key_fails_naming_it(helm_env: dict[str, str], tmp_path: Path,
                                                 values: dict[str, Any], key: str) -> None:
    f = tmp_path / "values.yaml"
    f.write_text(yaml.safe_dump(values))
    err = render_fails(helm_env, "-f", str(METALLB_VALUES), "-f", str(f))
    assert key in err, err


# -- Prometheus Operator objects: only when asked ------------------------------------------
def metric_names_in_code() -> set[str]:
    names = set()
    for src in ("speaker/metallb_speaker/metrics.py", "operator/metallb_operator/metrics.py",
                "api/metallb_kube/exposition.py"):
        text = (REPO_ROOT / src).read_text()
        names |= set(re.findall(r'"(metallb_[a-z0-9_]+)"', text))
        # prefixes joined in code: p = "metallb_allocator_"; p + "addresses_total"
        for prefix in re.findall(r'(\w+) = "(metallb_[a-z_]+_)"', text):
            names |= {prefix[1] + s for s in re.findall(
                rf'{prefix[0]} \+ "([a-z0-9_]+)"', text)}
    return names


@pytest.mark.unit
def test_monitors_render_only_when_asked(helm_env: dict[str, str], tmp_path: Path) -> None:
    monitoring = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
    assert not monitoring & {d["kind"] for d in render(helm_env)}

    docs = with_values(helm_env, tmp_path, {"prometheus": {"serviceMonitor": {
        "enabled": True, "interval": "15s", "speaker": {"additionalLabels": {"release": "kps"}}}}})
    assert {d["kind"] for d in docs} & monitoring == {"ServiceMonitor"}
    services = by_kind(docs, "Service")
    for sm in by_kind(docs, "ServiceMonitor").values():
        selected = [s for s in services.values()
                    if sm["spec"]["selector"]["matchLabels"].items()
                    <= s["metadata"]["labels"].items()]
        assert len(selected) == 1, sm["metadata"]["name"]
        assert [p["name"] for p in selected[0]["spec"]["ports"]] == \
            [e["port"] for e in sm["spec"]["endpoints"]] == ["metrics"]
        assert sm["spec"]["endpoints"][0]["scheme"] == "http"
        assert sm["spec"]["endpoints"][0]["interval"] == "15s"
    assert by_kind(docs, "ServiceMonitor"
                   )["metallb-py-speaker"]["metadata"]["labels"]["release"] == "kps"
    # The speaker metrics Service is headless: one target per node.
    assert services[f"{SPEAKER}-metrics"]["spec"]["clusterIP"] == "None"

    docs = with_values(helm_env, tmp_path, {"prometheus": {"podMonitor": {"enabled": True},
                                                           "rbacPrometheus": True,
                                                           "serviceAccount": "prom",
                                                           "namespace": "monitoring"}})
    assert {d["kind"] for d in docs} & monitoring == {"PodMonitor"}
    for pm in by_kind(docs, "PodMonitor").values():
        component = pm["metadata"]["labels"]["app.kubernetes.io/component"]
        workload = (by_kind(docs, "Deployment")[OPERATOR] if component == "operator"
                    else by_kind(docs, "DaemonSet")[SPEAKER])
        assert pm["spec"]["selector"]["matchLabels"].items() <= \
            workload["spec"]["template"]["metadata"]["labels"].items()
        assert pm["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    binding = by_kind(docs, "RoleBinding")["metallb-py-prometheus"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "prom",
                                    "namespace": "monitoring"}]


@pytest.mark.unit
def test_prometheus_rule_is_metallbs_alerts_on_our_series(helm_env: dict[str, str],
                                                          tmp_path: Path) -> None:
    docs = with_values(helm_env, tmp_path, {"prometheus": {"prometheusRule": {
        "enabled": True, "addressPoolExhausted": {"enabled": True, "excludePools": "lab.*"},
        "extraAlerts": [{"alert": "Mine", "expr": "vector(1)"}]}}})
    (rule,) = by_kind(docs, "PrometheusRule").values()
    rules = rule["spec"]["groups"][0]["rules"]
    assert [r["alert"] for r in rules] == [
        "MetalLBStaleConfig", "MetalLBConfigNotLoaded", "MetalLBAddressPoolExhausted",
        "MetalLBAddressPoolUsage75Percent", "MetalLBAddressPoolUsage85Percent",
        "MetalLBAddressPoolUsage95Percent", "Mine"]
    by_name = {r["alert"]: r for r in rules}
    assert by_name["MetalLBAddressPoolExhausted"]["labels"] == {"severity": "critical"}
    assert 'pool!~"lab.*"' in by_name["MetalLBAddressPoolExhausted"]["expr"]
    assert by_name["MetalLBStaleConfig"]["for"] == "1m"
    # Every alert can fire on a series metallb-py exports (MetalLB's names for config
    # state are kept as alternatives, for when they are exported too).
    ours = metric_names_in_code()
    assert {"metallb_allocator_addresses_total", "metallb_controller_synced"} <= ours
    for r in rules[:-1]:
        used = set(re.findall(r"metallb_[a-z0-9_]+", r["expr"]))
        assert used & ours, (r["alert"], used)

    # One alert switched off, the BGP one never rendered (no BGP in metallb-py).
    docs = with_values(helm_env, tmp_path, {"prometheus": {"prometheusRule": {
        "enabled": True, "staleConfig": {"enabled": False},
        "bgpSessionDown": {"enabled": True}}}})
    (rule,) = by_kind(docs, "PrometheusRule").values()
    names = [r["alert"] for r in rule["spec"]["groups"][0]["rules"]]
    assert "MetalLBStaleConfig" not in names and "MetalLBBGPSessionDown" not in names


# -- what the chart passes, the programs take ----------------------------------------------
@pytest.mark.unit
@pytest.mark.parametrize("values", [
    {},
    {"loadBalancerClass": "example.com/l2", "controller": {"logLevel": "all"},
     "speaker": {"logLevel": "none", "ignoreExcludeLB": True,
                 "memberlist": {"mlBindPort": 7950, "mlBindAddrOverride": "10.1.2.3"}}},
], ids=["defaults", "every-flag"])
def test_rendered_args_parse_with_the_components_own_parsers(
        helm_env: dict[str, str], tmp_path: Path, values: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every flag the chart renders exists in the speaker's and the operator's argparse,
    means what the chart meant, and the log level is one Python logging knows."""
    import logging

    from metallb_operator.settings import parse_args as operator_args
    from metallb_speaker.settings import parse_args as speaker_args

    op, sp = workloads(with_values(helm_env, tmp_path, values, "-f", str(METALLB_VALUES)))
    monkeypatch.setenv("METALLB_NODE_NAME", "node-a")
    s = speaker_args(args_of(container(sp)))
    o = operator_args(args_of(container(op)))
    for level in (s.log_level, o.log_level):
        assert isinstance(logging.getLevelName(level.upper()), int), level
    if values:
        assert s.load_balancer_class == o.load_balancer_class == "example.com/l2"
        assert (s.log_level, o.log_level) == ("critical", "debug")
        assert s.honor_exclude_label is False
        assert (s.gossip_port, s.bind_address, s.advertise_address) == (7950, "10.1.2.3",
                                                                          "10.1.2.3")
    else:
        assert s.honor_exclude_label is True and s.gossip_port == 7946
        assert s.metrics_port == 7473 and o.metrics_port == 7472

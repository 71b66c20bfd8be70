"""The chart's admission webhook (templates/webhook.yaml): off by default; when on, a
ValidatingWebhookConfiguration on MetalLB's webhook names and paths, a Service in front
of the operator, the operator serving HTTPS from the mounted certificate, and the
certificate from the chart, from cert-manager or from the user's Secret.

All `helm template`, no --kube-version.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography import x509
from tests.charts.test_chart import FULLNAME, OPERATOR, by_kind, container, helm_env, render
from tests.charts.test_chart import render_fails as fails

__all__ = ["helm_env"]  # the module-scoped fixture, shared with test_chart

pytestmark = pytest.mark.unit
WEBHOOK = f"{FULLNAME}-webhook"
ON = ("--set", "webhook.enabled=true")


def webhook_kinds(docs: list[dict[str, Any]]) -> set[str]:
    return {d["kind"] for d in docs if "webhook" in d["metadata"]["name"]}


def vwc(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return by_kind(docs, "ValidatingWebhookConfiguration")[WEBHOOK]


def test_off_by_default_and_with_metallbs_disabled_mode(helm_env: dict[str, str]) -> None:
    assert webhook_kinds(render(helm_env)) == set()
    off = render(helm_env, *ON, "--set", "controller.webhookMode=disabled")
    assert webhook_kinds(off) == set()
    assert not any("webhook" in a for a in container(by_kind(off, "Deployment")[OPERATOR])[
        "args"])


def test_the_configuration_follows_metallbs(helm_env: dict[str, str]) -> None:
    docs = render(helm_env, *ON)
    hooks = {h["name"]: h for h in vwc(docs)["webhooks"]}
    assert set(hooks) == {"ipaddresspoolvalidationwebhook.metallb.io",
                          "l2advertisementvalidationwebhook.metallb.io"}
    for kind, hook in (("ipaddresspool", hooks["ipaddresspoolvalidationwebhook.metallb.io"]),
                       ("l2advertisement",
                        hooks["l2advertisementvalidationwebhook.metallb.io"])):
        assert hook["failurePolicy"] == "Fail"
        assert hook["sideEffects"] == "None" and hook["admissionReviewVersions"] == ["v1"]
        assert hook["clientConfig"]["service"] == {
            "name": WEBHOOK, "namespace": "metallb-system", "port": 443,
            "path": f"/validate-metallb-io-v1beta1-{kind}"}
        assert hook["rules"] == [{"apiGroups": ["metallb.io"], "apiVersions": ["v1beta1"],
                                  "operations": ["CREATE", "UPDATE"],
                                  "resources": [f"{kind}s"]}]
    svc = by_kind(docs, "Service")[WEBHOOK]
    assert svc["spec"]["ports"] == [{"name": "webhook", "port": 443, "targetPort": "webhook",
                                     "protocol": "TCP"}]
    assert svc["spec"]["selector"]["app.kubernetes.io/component"] == "operator"


def test_the_operator_serves_it_from_the_mounted_certificate(
        helm_env: dict[str, str]) -> None:
    dep = by_kind(render(helm_env, *ON, "--set", "webhook.port=9555"), "Deployment")[OPERATOR]
    c = container(dep)
    assert "--webhook-port=9555" in c["args"]
    assert "--webhook-cert-dir=/etc/metallb-py/webhook" in c["args"]
    assert {"name": "webhook", "containerPort": 9555, "protocol": "TCP"} in c["ports"]
    assert {"name": "webhook-cert", "mountPath": "/etc/metallb-py/webhook",
            "readOnly": True} in c["volumeMounts"]
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert volumes["webhook-cert"]["secret"] == {"secretName": f"{FULLNAME}-webhook-cert"}


def test_generated_certificate_matches_the_ca_bundle_and_the_service(
        helm_env: dict[str, str]) -> None:
    docs = render(helm_env, *ON)
    secret = by_kind(docs, "Secret")[f"{FULLNAME}-webhook-cert"]
    assert secret["type"] == "kubernetes.io/tls"
    ca = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["ca.crt"]))
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    assert cert.issuer == ca.subject
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert f"{WEBHOOK}.metallb-system.svc" in names
    for hook in vwc(docs)["webhooks"]:
        assert hook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]


def test_cert_manager(helm_env: dict[str, str]) -> None:
    docs = render(helm_env, *ON, "--set", "webhook.certManager.enabled=true")
    cfg = vwc(docs)
    assert cfg["metadata"]["annotations"] == {
        "cert-manager.io/inject-ca-from": f"metallb-system/{WEBHOOK}"}
    assert all("caBundle" not in h["clientConfig"] for h in cfg["webhooks"])
    cert = by_kind(docs, "Certificate")[WEBHOOK]["spec"]
    assert cert["secretName"] == f"{FULLNAME}-webhook-cert"
    assert f"{WEBHOOK}.metallb-system.svc" in cert["dnsNames"]
    assert cert["issuerRef"] == {"name": f"{WEBHOOK}-selfsigned", "kind": "Issuer"}
    assert by_kind(docs, "Issuer")[f"{WEBHOOK}-selfsigned"]["spec"] == {"selfSigned": {}}
    assert f"{FULLNAME}-webhook-cert" not in by_kind(docs, "Secret")
    theirs = render(helm_env, *ON, "--set", "webhook.certManager.enabled=true",
                    "--set", "webhook.certManager.issuerRef.name=corp-ca",
                    "--set", "webhook.certManager.issuerRef.kind=ClusterIssuer")
    assert by_kind(theirs, "Certificate")[WEBHOOK]["spec"]["issuerRef"] == {
        "name": "corp-ca", "kind": "ClusterIssuer"}
    assert not by_kind(theirs, "Issuer")


def test_a_secret_of_ones_own(helm_env: dict[str, str]) -> None:
    docs = render(helm_env, *ON, "--set", "webhook.secretName=mine",
                  "--set", "webhook.caBundle=Q0E=")
    assert all(h["clientConfig"]["caBundle"] == "Q0E=" for h in vwc(docs)["webhooks"])
    assert not any(d["kind"] in ("Secret", "Certificate") and "webhook" in d["metadata"]["name"]
                   for d in docs)
    volumes = by_kind(docs, "Deployment")[OPERATOR]["spec"]["template"]["spec"]["volumes"]
    assert {"name": "webhook-cert", "secret": {"secretName": "mine"}} in volumes
    assert "webhook.caBundle" in fails(helm_env, *ON, "--set", "webhook.secretName=mine")


@pytest.mark.parametrize(("args", "policy"), [
    ((), "Fail"),
    (("--set", "crds.validationFailurePolicy=Ignore"), "Ignore"),  # MetalLB's key
    (("--set", "webhook.failurePolicy=Ignore"), "Ignore"),
    (("--set", "webhook.failurePolicy=Fail", "--set", "crds.validationFailurePolicy=Ignore"),
     "Fail"),
])
def test_failure_policy(helm_env: dict[str, str], args: tuple[str, ...], policy: str) -> None:
    assert {h["failurePolicy"] for h in vwc(render(helm_env, *ON, *args))["webhooks"]} == {
        policy}


@pytest.mark.parametrize(("args", "says"), [
    (("--set", "crds.validationFailurePolicy=Sometimes"), "use Fail or Ignore"),
    (("--set", "controller.webhookMode=onlywebhook"), "controller.webhookMode=onlywebhook"),
])
def test_refused_values(helm_env: dict[str, str], args: tuple[str, ...], says: str) -> None:
    assert says in fails(helm_env, *ON, *args)


def test_network_policy_lets_the_api_server_in(helm_env: dict[str, str]) -> None:
    docs = render(helm_env, *ON, "--set", "networkpolicies.enabled=true")
    policy = by_kind(docs, "NetworkPolicy")[OPERATOR]
    assert {"protocol": "TCP", "port": 9443} in policy["spec"]["ingress"][0]["ports"]

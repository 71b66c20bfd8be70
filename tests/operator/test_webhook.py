"""The validating admission webhook: the real kube-apiserver calling the real operator's
webhook over TLS (cluster tier), and the HTTPS server on its own (unit tier: loopback
only, against an API server that cannot be reached)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import signal
import ssl
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import kubernetes
import pytest
import yaml
from tests.operator.builders import pool
from tests.operator.conftest import OperatorEnv

from metallb_kube.client import Connection, KubeClient
from metallb_lab.controlplane import free_port
from metallb_lab.kube import api_client, wait_for
from metallb_lab.pki import CertificateAuthority
from metallb_operator.admission import L2ADV_PATH, POOL_PATH
from metallb_operator.settings import WebhookSettings
from metallb_operator.webhook import Webhook


def serving_pair(directory: Path, name: str = "ca") -> CertificateAuthority:
    """A fresh CA and tls.crt/tls.key for 127.0.0.1 signed by it, in `directory`."""
    ca = CertificateAuthority(directory / name, name=f"metallb-py-webhook-{name}")
    pair = ca.issue("tls", "127.0.0.1", ip_addresses=("127.0.0.1",), server=True)
    for src in (pair.cert, pair.key):
        (directory / src.name).write_bytes(src.read_bytes())
    return ca


# -- cluster tier: the apiserver calls the operator -----------------------------------
class Admission:
    """An operator serving the webhook on 127.0.0.1 (the test apiserver runs in this
    network namespace) and a ValidatingWebhookConfiguration of this test's own, scoped
    to its pool namespace (cluster-scoped: removed in teardown, even on failure)."""

    def __init__(self, env: OperatorEnv, tmp: Path) -> None:
        self.env = env
        self.certs = tmp / "webhook"
        self.certs.mkdir()
        self.ca = serving_pair(self.certs)
        self.port = free_port()
        self.name = f"metallb-py-test-{uuid.uuid4().hex[:8]}"
        self.admission = kubernetes.client.AdmissionregistrationV1Api(api_client(env.cp))

    def start_operator(self) -> None:
        self.env.start(extra_args=(f"--webhook-port={self.port}", "--webhook-host=127.0.0.1",
                                   f"--webhook-cert-dir={self.certs}"))

    def register(self, failure_policy: str = "Fail") -> None:
        def hook(name: str, plural: str, path: str) -> dict[str, Any]:
            return {
                "name": f"{name}.metallb.io", "admissionReviewVersions": ["v1"],
                "sideEffects": "None", "failurePolicy": failure_policy, "timeoutSeconds": 5,
                "clientConfig": {"url": f"https://127.0.0.1:{self.port}{path}",
                                 "caBundle": base64.b64encode(self.ca.pem).decode()},
                "rules": [{"apiGroups": ["metallb.io"], "apiVersions": ["v1beta1"],
                           "operations": ["CREATE", "UPDATE"], "resources": [plural]}],
                "namespaceSelector": {"matchLabels": {
                    "kubernetes.io/metadata.name": self.env.pool_ns}},
            }
        body = {"metadata": {"name": self.name}, "webhooks": [
            hook("ipaddresspoolvalidationwebhook", "ipaddresspools", POOL_PATH),
            hook("l2advertisementvalidationwebhook", "l2advertisements", L2ADV_PATH)]}
        self.admission.create_validating_webhook_configuration(body)  # type: ignore[arg-type]

    def set_failure_policy(self, policy: str) -> None:
        vwc = self.admission.read_validating_webhook_configuration(self.name)
        for w in vwc.webhooks or []:
            w.failure_policy = policy
        self.admission.replace_validating_webhook_configuration(self.name, vwc)

    def unregister(self) -> None:
        with contextlib.suppress(kubernetes.client.ApiException):
            self.admission.delete_validating_webhook_configuration(self.name)

    def apply(self, *objs: dict[str, Any], dry_run: bool = False) -> tuple[bool, str]:
        """kubectl apply, as a user would: (accepted, stderr with warnings/refusals)."""
        docs = [{**o, "metadata": {**o["metadata"], "namespace": self.env.pool_ns}}
                for o in objs]
        args = ["apply", "-f", "-"] + (["--dry-run=server"] if dry_run else [])
        proc = self.env.cp.kubectl(*args, input=yaml.safe_dump_all(docs), check=False)
        return proc.returncode == 0, proc.stderr

    def wait_effective(self) -> None:
        """The apiserver picks the configuration up asynchronously: until an object only
        the webhook refuses (a pool name no object can have) is refused."""
        probe = adv("probe", ["Not_A_Pool"])
        wait_for(lambda: "cannot be the name" in self.apply(probe, dry_run=True)[1],
                 timeout=20, what="the webhook configuration in effect")

    def exists(self, plural: str, name: str) -> bool:
        try:
            self.env.custom.get_namespaced_custom_object(
                "metallb.io", "v1beta1", self.env.pool_ns, plural, name)
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True


def adv(name: str, pools: list[str] | None = None) -> dict[str, Any]:
    spec = {"ipAddressPools": pools} if pools is not None else {}
    return {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
            "metadata": {"name": name}, "spec": spec}


def mpool(name: str, *addresses: str) -> dict[str, Any]:
    obj = pool(name, *addresses)
    return {**obj, "metadata": {"name": name}}


@pytest.fixture
def admission(env: OperatorEnv, tmp_path: Path) -> Iterator[Admission]:
    a = Admission(env, tmp_path)
    try:
        a.start_operator()
        a.register()
        a.wait_effective()
        yield a
    finally:
        a.unregister()


@pytest.mark.cluster
def test_overlapping_pools_are_refused_at_apply(admission: Admission) -> None:
    ok, err = admission.apply(mpool("a", "198.51.100.0/25"))
    assert ok, err
    ok, err = admission.apply(mpool("b", "198.51.100.100-198.51.100.140"))
    assert not ok
    assert 'admission webhook "ipaddresspoolvalidationwebhook.metallb.io" denied' in err
    assert ("CIDR '198.51.100.100-198.51.100.140' in pool 'b' overlaps with already "
            "defined CIDR '198.51.100.0/25' (IPAddressPool 'a')") in err
    assert not admission.exists("ipaddresspools", "b")
    # One file, two pools that overlap: the second sees the first (no stale cache).
    ok, err = admission.apply(mpool("c", "198.51.100.128/26"), mpool("d", "198.51.100.160/27"))
    assert not ok and "in pool 'd' overlaps" in err and "IPAddressPool 'c'" in err
    assert admission.exists("ipaddresspools", "c")
    assert not admission.exists("ipaddresspools", "d")
    ok, err = admission.apply(mpool("e", "198.51.100.200/29", "198.51.100.203/32"))
    assert not ok and "in the same pool" in err


@pytest.mark.cluster
def test_an_edit_into_another_pool_is_refused_and_the_pool_keeps_its_spec(
        admission: Admission) -> None:
    assert admission.apply(mpool("a", "203.0.113.0/28"), mpool("b", "203.0.113.16/28"))[0]
    ok, err = admission.apply(mpool("a", "203.0.113.0/27"))
    assert not ok and "in pool 'a' overlaps" in err and "IPAddressPool 'b'" in err
    kept = admission.env.pool_obj("a")
    assert kept["spec"]["addresses"] == ["203.0.113.0/28"]
    ok, err = admission.apply(mpool("a", "203.0.113.0/29"))  # shrinking is fine
    assert ok, err


@pytest.mark.cluster
def test_advertisements_naming_pools(admission: Admission) -> None:
    assert admission.apply(mpool("a", "192.0.2.0/28"))[0]
    ok, err = admission.apply(adv("ok", ["a"]))
    assert ok and "Warning" not in err, err
    # A pool that may come later is admitted, with a warning kubectl prints (MetalLB
    # admits it silently).
    ok, err = admission.apply(adv("later", ["a", "next"]))
    assert ok, err
    assert "Warning: spec.ipAddressPools: no IPAddressPool named 'next'" in err
    ok, err = admission.apply(adv("never", ["Pool_A"]))
    assert not ok and "'Pool_A' cannot be the name of an IPAddressPool" in err
    assert not admission.exists("l2advertisements", "never")


@pytest.mark.cluster
def test_failure_policy_decides_when_the_webhook_is_down(admission: Admission) -> None:
    assert admission.env.operator is not None
    admission.env.operator.stop()
    ok, err = admission.apply(mpool("a", "192.0.2.64/28"))
    assert not ok and "failed calling webhook" in err
    assert not admission.exists("ipaddresspools", "a")
    admission.set_failure_policy("Ignore")
    # Ignore: admitted unchecked (even an overlap), once the apiserver sees the change.
    wait_for(lambda: admission.apply(mpool("a", "192.0.2.64/28"))[0], timeout=20,
             what="admission with failurePolicy Ignore")
    ok, err = admission.apply(mpool("b", "192.0.2.70/32"))
    assert ok, err


# -- unit tier: the HTTPS server on loopback -----------------------------------------
@pytest.mark.cluster
def test_sigterm_drains_not_ready_but_answering_then_exits(admission: Admission) -> None:
    """A rolling update: after SIGTERM the Pod turns not ready at once (its endpoint
    goes) and keeps answering reviews for the drain period (10 s), each with `Connection:
    close`, so the apiserver's requests on kept-alive connections are not cut; then it
    exits."""
    op = admission.env.operator
    assert op is not None and op.proc is not None
    ca = admission.certs / "ca" / "ca.crt"
    body = review("DELETE", pool("a", "10.0.0.0/24"))
    t0 = time.monotonic()
    op.send_signal(signal.SIGTERM)
    wait_for(lambda: readyz(op.metrics_port) == 503, timeout=2, what="not ready after SIGTERM")
    answered = 0
    while time.monotonic() - t0 < 3.5:  # well inside the drain
        status, _, connection = asyncio.run(post_full(admission.port, ca, POOL_PATH, body))
        assert status == 200 and connection.lower() == "close"
        answered += 1
        time.sleep(0.2)
    assert op.proc.wait(timeout=20) == 0
    assert answered >= 5 and time.monotonic() - t0 >= 9.5  # it did wait for the drain


def readyz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Webhook, int, Path]]:
    serving_pair(tmp_path, "ca1")
    port = free_port()
    # An API server nothing listens for: every list fails at once.
    client = KubeClient(Connection(server="https://127.0.0.1:1"), limit=2)
    hook = Webhook(WebhookSettings(host="127.0.0.1", port=port, cert_dir=str(tmp_path),
                                   list_timeout=2.0, reload_period=0.05),
                   "metallb-system", client)
    task = asyncio.create_task(hook.run())
    try:
        for _ in range(200):
            if hook.check() is None or task.done():
                break
            await asyncio.sleep(0.02)
        assert hook.check() is None, hook.check()
        yield hook, port, tmp_path
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.close()


def review(op: str, obj: dict[str, Any]) -> dict[str, Any]:
    key = "oldObject" if op == "DELETE" else "object"
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "u-1", "operation": op, key: obj,
                        "kind": {"group": "metallb.io", "version": "v1beta1",
                                 "kind": obj["kind"]}}}


async def post(port: int, ca: Path, path: str, body: Any) -> tuple[int, str]:
    status, text, _ = await post_full(port, ca, path, body)
    return status, text


async def post_full(port: int, ca: Path, path: str, body: Any) -> tuple[int, str, str]:
    """(status, body, the Connection header)."""
    ctx = ssl.create_default_context(cafile=str(ca))
    async with aiohttp.ClientSession() as s, s.post(
            f"https://127.0.0.1:{port}{path}", data=json.dumps(body), ssl=ctx,
            headers={"Content-Type": "application/json"}) as resp:
        return resp.status, await resp.text(), resp.headers.get("Connection", "")


@pytest.mark.unit
async def test_no_decision_without_the_current_objects(
        served: tuple[Webhook, int, Path]) -> None:
    _, port, certs = served
    ca = certs / "ca1" / "ca.crt"
    # The pools could not be listed: 503, so the failurePolicy decides, not an empty list.
    status, text = await post(port, ca, POOL_PATH, review("CREATE", pool("a", "10.0.0.0/24")))
    assert status == 503 and "cannot list the current configuration" in text
    # A delete needs nothing listed.
    status, text = await post(port, ca, POOL_PATH, review("DELETE", pool("a", "10.0.0.0/24")))
    assert status == 200
    assert json.loads(text)["response"] == {"uid": "u-1", "allowed": True}
    status, text = await post(port, ca, L2ADV_PATH, review("CREATE", pool("a", "10.0.0.0/24")))
    assert status == 400 and "IPAddressPool sent to the L2Advertisement webhook" in text


@pytest.mark.unit
async def test_a_renewed_certificate_is_served_without_a_restart(
        served: tuple[Webhook, int, Path]) -> None:
    _, port, certs = served
    body = review("DELETE", pool("a", "10.0.0.0/24"))
    assert (await post(port, certs / "ca1" / "ca.crt", POOL_PATH, body))[0] == 200
    serving_pair(certs, "ca2")  # the Secret's new pair, from another CA

    async def renewed() -> bool:
        try:
            return (await post(port, certs / "ca2" / "ca.crt", POOL_PATH, body))[0] == 200
        except aiohttp.ClientConnectorCertificateError:
            return False

    for _ in range(100):
        if await renewed():
            break
        await asyncio.sleep(0.05)
    assert await renewed()
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await post(port, certs / "ca1" / "ca.crt", POOL_PATH, body)

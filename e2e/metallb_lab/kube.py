"""Small helpers over the real API server used by tests, e2e and benches."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import kubernetes

from metallb_lab.controlplane import REPO_ROOT, ControlPlane

CRD_DIR = REPO_ROOT / "crds"
T = TypeVar("T")


def api_client(cp: ControlPlane, kubeconfig: Path | None = None) -> kubernetes.client.ApiClient:
    client: kubernetes.client.ApiClient = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig or cp.kubeconfig))
    return client


def apply_crds(cp: ControlPlane, directory: Path = CRD_DIR) -> list[str]:
    """kubectl apply every CRD in `directory` and wait until all are Established."""
    cp.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(directory))
    names = []
    for path in sorted(directory.glob("*.yaml")):
        names.append("crd/" + path.name.split("_", 1)[1].removesuffix(".yaml") + "."
                     + path.name.split("_", 1)[0])
    cp.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)
    return names


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def create_namespace(cp: ControlPlane, prefix: str = "t", labels: dict[str, str] | None = None
                     ) -> str:
    name = unique_name(prefix)
    core = kubernetes.client.CoreV1Api(api_client(cp))
    core.create_namespace({"metadata": {"name": name, "labels": labels or {}}})  # type: ignore[arg-type]
    return name


def wait_for(fn: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.05,
             what: str = "condition") -> T:
    """Poll `fn` until it returns a truthy value; raise with `what` on timeout."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last={last!r})")


class Json:
    """Tiny synchronous JSON client for the lab (urllib + the admin certificate): the
    lab's background threads and benches want plain dicts, not generated models."""

    def __init__(self, cp: ControlPlane) -> None:
        self.server = cp.server
        self.ctx = cp.ssl_context()

    def request(self, method: str, path: str, body: Any = None,
                content_type: str = "application/json") -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", content_type)
        with urllib.request.urlopen(req, context=self.ctx, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def create(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body)

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, body)

    def merge_patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body, "application/merge-patch+json")

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def exists(self, path: str) -> bool:
        try:
            self.get(path)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return False
            raise
        return True


METALLB_KINDS = ("IPAddressPool", "L2Advertisement")


def apply_manifest(cp: ControlPlane, manifest: str, namespace: str, *, check: bool = True
                   ) -> subprocess.CompletedProcess[str]:
    """kubectl apply a YAML manifest; metallb.io objects without a namespace go to
    `namespace` (where the operator and speakers look for them). With check=False a
    rejection is returned (its stderr is the API's message) instead of raised."""
    import yaml

    docs = [d for d in yaml.safe_load_all(manifest) if d]
    for d in docs:
        if d.get("kind") in METALLB_KINDS:
            d.setdefault("metadata", {}).setdefault("namespace", namespace)
    return cp.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs), check=check)


def lb_ingress(api: Json, namespace: str, name: str) -> list[str]:
    """A Service's `status.loadBalancer.ingress` addresses, in order."""
    obj = api.get(f"/api/v1/namespaces/{namespace}/services/{name}")
    return [i["ip"] for i in ((obj.get("status") or {}).get("loadBalancer") or {}).get(
        "ingress") or []]


def wait_lb_ingress(api: Json, namespace: str, name: str, spec: dict[str, Any],
                    timeout: float) -> list[str]:
    """Until the Service created with `spec` has all its addresses (two when it asks
    for dual-stack)."""
    want = 2 if spec.get("ipFamilyPolicy") == "RequireDualStack" else 1

    def assigned() -> list[str] | None:
        got = lb_ingress(api, namespace, name)
        return got if len(got) >= want else None

    return wait_for(assigned, timeout=timeout, what=f"{name} external IP")

"""Small helpers over the real API server used by tests, e2e and benches."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

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

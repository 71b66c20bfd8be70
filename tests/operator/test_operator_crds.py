"""Start-up order on a control plane of its own: the operator started before its CRDs
exist waits quietly (a log line and a metric, no traceback, no exit) and works within
seconds of their creation; deleted and recreated CRDs are picked up again."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from metallb_lab.controlplane import ControlPlane, ControlPlaneConfig
from metallb_lab.kube import CRD_DIR, apply_crds, create_namespace, wait_for
from metallb_lab.operator import OperatorProcess
from metallb_lab.pytest_plugin import FAILED

from .conftest import OperatorEnv

pytestmark = pytest.mark.cluster
WITHIN = 20.0  # generous against hangs; the figures are printed


@pytest.fixture
def bare(request: pytest.FixtureRequest) -> Iterator[OperatorEnv]:
    """An API server without our CRDs."""
    with ControlPlane(ControlPlaneConfig()) as cp:
        env = OperatorEnv(cp, create_namespace(cp, "pools"), create_namespace(cp, "apps"),
                          f"metallb.io/c-{uuid.uuid4().hex[:8]}")
        try:
            yield env
        finally:
            if env.operator is not None:
                env.operator.stop()
                if request.node.stash.get(FAILED, False):
                    print(env.operator.logs()[-8000:])


def _assigned_after(env: OperatorEnv, name: str, pool: str, cidr: str) -> float:
    started = time.monotonic()
    wait_for(lambda: _try_pool(env, pool, cidr), timeout=WITHIN, what="pool accepted")
    env.service(name)
    env.wait_ingress(name, timeout=WITHIN)
    return time.monotonic() - started


def _try_pool(env: OperatorEnv, name: str, cidr: str) -> bool:
    return not env.try_apply(f"""
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: {name}}}
spec: {{addresses: ["{cidr}"]}}
""")


def test_operator_started_before_its_crds_waits_for_them(bare: OperatorEnv) -> None:
    env = bare
    op = OperatorProcess(env.cp, env.pool_ns, lb_class=env.lb_class)
    env.operator = op
    op.start(wait=False)
    wait_for(lambda: op.metric("metallb_controller_crds_missing") == 1.0, timeout=WITHIN,
             what="the operator saying it waits for its CRDs")
    time.sleep(3)  # it keeps waiting, quietly
    assert op.proc is not None and op.proc.poll() is None, op.logs()[-3000:]
    waiting = op.log_events("crdMissing")
    assert len(waiting) == 1, f"one line, not one per retry: {waiting}"
    assert "CRDs are not installed" in waiting[0]["reason"]
    assert "Traceback" not in op.logs(), op.logs()[-3000:]

    apply_crds(env.cp)
    first = _assigned_after(env, "first", "p1", "198.18.30.0/28")
    assert op.metric("metallb_controller_crds_missing") == 0.0
    assert env.wait_ingress("first") == ["198.18.30.0"]

    # Deleted and recreated (e.g. reinstalled): pools come back, Services are served.
    env.cp.kubectl("delete", "-f", str(CRD_DIR), "--wait=true")
    time.sleep(2)
    apply_crds(env.cp)
    again = _assigned_after(env, "second", "p2", "198.18.31.0/28")
    # "first" lost its pool with the CRDs (as when a pool is deleted) and is served
    # again from the new one.
    assert {env.wait_ingress(n)[0] for n in ("first", "second")} == {
        "198.18.31.0", "198.18.31.1"}
    assert op.proc.poll() is None, op.logs()[-3000:]
    assert "Traceback" not in op.logs(), op.logs()[-3000:]
    print(f"CRDs created: first Service assigned {first:.1f} s later; "
          f"after a delete + recreate: {again:.1f} s")

"""The pools' Advertised condition in BGP mode, written by the real operator: a pool only a
BGPAdvertisement selects is announced (True), one nothing selects is not (False, with the
reason), and BGPAdvertisement/Community changes are followed live. With CRDs from before
BGP mode (no BGPAdvertisement, no Community) the operator keeps working for layer 2."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from metallb_lab.controlplane import ControlPlane, ControlPlaneConfig
from metallb_lab.kube import CRD_DIR, apply_crds, create_namespace, wait_for
from metallb_lab.pytest_plugin import FAILED

from .conftest import OperatorEnv

pytestmark = pytest.mark.cluster

NOT_ANNOUNCED = ("no L2Advertisement or BGPAdvertisement selects this pool: its addresses "
                 "are assigned but not announced, so they are unreachable")


def apply_bgp(env: OperatorEnv, manifest: str) -> None:
    # NS: the pool namespace (apply_manifest fills it in for layer 2's kinds only).
    env.apply(manifest.replace("namespace: NS", f"namespace: {env.pool_ns}"))


def test_pool_selected_only_by_a_bgpadvertisement_is_advertised(env: OperatorEnv) -> None:
    env.pool("bgp-only", "198.18.90.0/30")
    env.pool("nothing", "198.18.90.4/30")
    env.pool("by-label", "198.18.90.8/30", labels={"mode": "bgp"})
    apply_bgp(env, """
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: by-name, namespace: NS}
spec: {ipAddressPools: [bgp-only]}
""")
    env.start()  # listed at start-up
    adv = env.wait_condition("ipaddresspools", "bgp-only", "True", ctype="Advertised")
    assert (adv["reason"], adv["message"]) == ("BGPAdvertisementSelectsPool",
                                               "announced by BGPAdvertisement by-name")
    adv = env.wait_condition("ipaddresspools", "nothing", "False", ctype="Advertised")
    assert (adv["reason"], adv["message"]) == ("NoL2Advertisement", NOT_ANNOUNCED)

    # Watched: a selector, and a community alias the operator must resolve (unknown: the
    # advertisement is refused and announces nothing; defined by a Community: accepted).
    apply_bgp(env, """
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: by-selector, namespace: NS}
spec:
  ipAddressPoolSelectors: [{matchLabels: {mode: bgp}}]
  communities: [my-alias]
""")
    apply_bgp(env, """
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: witness, namespace: NS}
spec: {ipAddressPools: [by-label], localPref: 0}
""")
    adv = env.wait_condition("ipaddresspools", "by-label", "True", ctype="Advertised")
    assert adv["message"] == "announced by BGPAdvertisement witness"
    apply_bgp(env, """
apiVersion: metallb.io/v1beta1
kind: Community
metadata: {name: aliases, namespace: NS}
spec: {communities: [{name: my-alias, value: "65000:100"}]}
""")
    wait_for(lambda: (env.condition("ipaddresspools", "by-label", "Advertised") or {}).get(
        "message") == "announced by BGPAdvertisement by-selector, witness",
        timeout=20, what="the alias resolved")

    env.cp.kubectl("delete", "bgpadvertisement", "-n", env.pool_ns, "by-name")
    adv = env.wait_condition("ipaddresspools", "bgp-only", "False", ctype="Advertised")
    assert (adv["reason"], adv["message"]) == ("NoL2Advertisement", NOT_ANNOUNCED)
    still = env.condition("ipaddresspools", "by-label", "Advertised")
    assert still is not None and still["status"] == "True", still


@pytest.fixture
def old_crds(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OperatorEnv]:
    """An API server with the CRDs of layer 2 only (before BGP mode)."""
    for name in ("metallb.io_ipaddresspools.yaml", "metallb.io_l2advertisements.yaml",
                 "metallb.io_servicel2statuses.yaml"):
        shutil.copy(CRD_DIR / name, tmp_path / name)
    with ControlPlane(ControlPlaneConfig()) as cp:
        apply_crds(cp, tmp_path)
        env = OperatorEnv(cp, create_namespace(cp, "pools"), create_namespace(cp, "apps"),
                          f"metallb.io/o-{uuid.uuid4().hex[:8]}")
        try:
            yield env
        finally:
            if env.operator is not None:
                env.operator.stop()
                if request.node.stash.get(FAILED, False):
                    print(env.operator.logs()[-8000:])


def test_crds_without_bgp_kinds_layer_2_works_on(old_crds: OperatorEnv) -> None:
    env = old_crds
    env.pool("l2", "198.18.91.0/30")
    env.pool("nothing", "198.18.91.4/30")
    env.apply("""
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2}
spec: {ipAddressPools: [l2]}
""")
    op = env.start()
    adv = env.wait_condition("ipaddresspools", "l2", "True", ctype="Advertised")
    assert (adv["reason"], adv["message"]) == ("L2AdvertisementSelectsPool",
                                               "announced by L2Advertisement l2")
    adv = env.wait_condition("ipaddresspools", "nothing", "False", ctype="Advertised")
    assert adv["reason"] == "NoL2Advertisement"
    env.service("web")
    assert env.wait_ingress("web")[0] in {"198.18.91.0", "198.18.91.1", "198.18.91.2",
                                          "198.18.91.3"}
    missing = op.log_events("bgpCrdMissing")
    assert len(missing) == 2, missing  # once per kind, not once per listing
    assert op.proc is not None and op.proc.poll() is None, op.logs()[-3000:]
    assert "Traceback" not in op.logs(), op.logs()[-3000:]

"""`metallbctl validate` and the real apiserver refuse the same unknown fields: each object
is sent with fieldValidation=Strict (kubectl's default) as a dry run, and the fields the
apiserver names are the fields `unknown_fields` names, in the same message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from metallb_kube.client import ApiError, Connection, KubeClient
from metallb_lab.controlplane import ControlPlane
from metallb_operator.cli import read_crd_schemas, strict_decoding_error, unknown_fields

pytestmark = pytest.mark.cluster

SCHEMAS = read_crd_schemas(Path(__file__).resolve().parents[2] / "crds")
API = "metallb.io/v1beta1"
PLURAL = {"IPAddressPool": "ipaddresspools", "L2Advertisement": "l2advertisements"}


def pool(spec: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "IPAddressPool", "metadata": {"name": "p"},
            "spec": {"addresses": ["10.0.0.0/28"], **(spec or {})}, **top}


def adv(spec: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "L2Advertisement", "metadata": {"name": "a"},
            "spec": spec or {}, **top}


OBJECTS = [
    pytest.param(pool(), id="pool-clean"),
    pytest.param(pool({"foo": 1}), id="pool-spec-field"),
    pytest.param(pool({"AutoAssign": True}), id="case-matters"),
    pytest.param(pool(extra={"x": 1}), id="top-level"),
    pytest.param({**pool(), "metadata": {"name": "p", "labelz": {"a": "b"},
                                         "labels": {"any/key": "v"}}},
                 id="metadata-is-object-meta"),
    pytest.param(pool({"serviceAllocation": {"namespaceSelectors": [
        {"matchLabels": {"team": "a"}}, {"matchLabel": {"team": "b"}}]}}),
        id="pool-array-item-path"),
    pytest.param(pool({"serviceAllocation": {"priority": 1, "nope": True}, "zzz": 1}),
                 id="pool-several"),
    pytest.param(adv({"ipAddressPools": ["p"], "interfaces": ["eth0"]}), id="adv-clean"),
    pytest.param(adv({"nodeSelectors": [{"matchExpressions": [
        {"key": "k", "operator": "Exists", "value": ["x"]}]}]}), id="adv-nested-selector"),
    pytest.param(adv({"ipAddressPool": ["p"]}), id="adv-typo"),
    pytest.param(adv(status={"foo": "bar"}), id="status-field"),
    pytest.param({**pool({"zzz": 1, "serviceAllocation": {"nope": 1}, "aaa": 2}),
                  "metadata": {"name": "p", "zz": 1, "aa": 2}, "extra": 1}, id="order"),
]


@pytest.mark.parametrize("obj", OBJECTS)
async def test_same_unknown_fields_as_the_apiserver(control_plane: ControlPlane, namespace: str,
                                                    obj: dict[str, Any]) -> None:
    ours = unknown_fields(obj, SCHEMAS[(API, obj["kind"])])
    path = f"/apis/{API}/namespaces/{namespace}/{PLURAL[obj['kind']]}"
    async with KubeClient(await Connection.load(str(control_plane.kubeconfig))) as client:
        try:
            await client.request("POST", path, body=obj,
                                 params={"fieldValidation": "Strict", "dryRun": "All"})
        except ApiError as exc:
            assert "strict decoding error" in exc.message, exc  # refused for another reason
            assert exc.message == strict_decoding_error(API, obj["kind"], ours)
        else:
            assert ours == [], "the apiserver accepted what validate refuses"

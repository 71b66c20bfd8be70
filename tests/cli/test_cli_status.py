"""`metallbctl status`: the pure `render_status` (unit) and `main(["status", ...])` against
the real kube-apiserver (cluster), with status written through the status subresource or
by the real operator.

Tiers are per test (as in tests/charts): the renderer is pure, the rest needs the cluster.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from metallb_lab.controlplane import ControlPlane, ControlPlaneConfig
from metallb_lab.kube import CRD_DIR, apply_crds, create_namespace, wait_for
from metallb_lab.operator import OperatorProcess
from metallb_operator.cli import EXIT_INPUT, EXIT_OK, EXIT_PROBLEMS, main, render_status

# -- builders ---------------------------------------------------------------------------------


def cond(ctype: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"type": ctype, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": "2025-01-01T00:00:00Z"}


def pool(name: str, addresses: list[str], status: dict[str, Any] | None = None
         ) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                           "metadata": {"name": name}, "spec": {"addresses": addresses}}
    if status is not None:
        obj["status"] = status
    return obj


def ready_status(assigned: int, available: str, advertised: bool = True) -> dict[str, Any]:
    return {"assignedTotal": assigned, "availableTotal": available, "conditions": [
        cond("Ready", "True", "Accepted", "1 address range(s) accepted"),
        cond("Advertised", "True" if advertised else "False",
             "L2AdvertisementSelectsPool" if advertised else "NoL2Advertisement",
             "announced" if advertised else "no L2Advertisement selects this pool"),
    ]}


def service(ns: str, name: str, ips: list[str], pool_name: str | None = None
            ) -> dict[str, Any]:
    annotations = {"metallb.io/ip-allocated-from-pool": pool_name} if pool_name else {}
    return {"metadata": {"namespace": ns, "name": name, "annotations": annotations},
            "spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}}


def l2status(ns: str, name: str, node: str) -> dict[str, Any]:
    return {"metadata": {"name": f"{name}-{node}"},
            "status": {"node": node, "serviceName": name, "serviceNamespace": ns,
                       "interfaces": [{"name": "eth0"}]}}


def bgpstatus(ns: str, name: str, node: str, peers: list[str]) -> dict[str, Any]:
    return {"metadata": {"name": f"bgp-{name}-{node}"},
            "status": {"node": node, "serviceName": name, "serviceNamespace": ns,
                       "peers": peers}}


# -- render_status (pure) ---------------------------------------------------------------------


@pytest.mark.unit
def test_render_full_table() -> None:
    text = render_status(
        [pool("web", ["192.168.10.0/24"], ready_status(2, "254")),
         pool("six", ["fd00::/64"], ready_status(0, "18446744073709551616", advertised=False)),
         pool("clash", ["192.168.10.128/25"], {"assignedTotal": 0, "availableTotal": "0",
                                                "conditions": [cond(
                                                    "Ready", "False", "OverlapsPool",
                                                    "overlaps IPAddressPool 'web'")]})],
        [service("shop", "front", ["192.168.10.0"], "web"),
         service("shop", "api", ["192.168.10.1", "fd00::"], "web"),
         service("dev", "pending", [])],
        [l2status("shop", "front", "node-a"), l2status("shop", "api", "node-b"),
         l2status("shop", "api", "node-a")],
        namespace="metallb-system")
    assert text.splitlines() == [
        "POOL    ADDRESSES           ASSIGNED   AVAILABLE              READY/REASON",
        "clash   192.168.10.128/25   0          0                      False/OverlapsPool",
        "six     fd00::/64           0          18446744073709551616   True/Accepted",
        "web     192.168.10.0/24     2          254                    True/Accepted",
        "",
        "SERVICE       EXTERNAL-IP           POOL   ANNOUNCED BY",
        "dev/pending   <pending>             -      -",
        "shop/api      192.168.10.1,fd00::   web    node-a,node-b",
        "shop/front    192.168.10.0          web    node-a",
        "",
        "WARNINGS:",
        "  IPAddressPool/clash: Ready=False OverlapsPool: overlaps IPAddressPool 'web'",
        "  IPAddressPool/six: Advertised=False NoL2Advertisement: no L2Advertisement selects "
        "this pool",
    ]


@pytest.mark.unit
@pytest.mark.parametrize(("pools", "services", "statuses", "expected"), [
    pytest.param([], [], [], ["No IPAddressPools in namespace metallb-system.", "",
                              "No LoadBalancer Services."], id="empty"),
    pytest.param(
        [pool("new", ["10.0.0.0/30"])], [], [],
        ["POOL   ADDRESSES     ASSIGNED   AVAILABLE   READY/REASON",
         "new    10.0.0.0/30   -          -           -", "", "No LoadBalancer Services.", "",
         "WARNINGS:",
         "  IPAddressPool/new: no status yet: is the metallb-py operator running in namespace "
         "metallb-system?"],
        id="pool-without-status"),
    pytest.param(
        [], [service("a", "s", ["10.0.0.1"])],
        # Incomplete or foreign ServiceL2Statuses are skipped.
        [{"metadata": {"name": "x"}}, {"status": {"node": "n", "serviceName": "s",
                                                  "serviceNamespace": "other"}}],
        ["No IPAddressPools in namespace metallb-system.", "",
         "SERVICE   EXTERNAL-IP   POOL   ANNOUNCED BY", "a/s       10.0.0.1      -      -"],
        id="unannounced-service"),
    pytest.param(
        [], [{"metadata": {"namespace": "a", "name": "h"}, "spec": {"type": "LoadBalancer"},
              "status": {"loadBalancer": {"ingress": [{"hostname": "lb.example"}]}}}], [],
        ["No IPAddressPools in namespace metallb-system.", "",
         "SERVICE   EXTERNAL-IP   POOL   ANNOUNCED BY", "a/h       lb.example    -      -"],
        id="hostname-ingress"),
])
def test_render_cases(pools: list[dict[str, Any]], services: list[dict[str, Any]],
                      statuses: list[dict[str, Any]], expected: list[str]) -> None:
    assert render_status(pools, services, statuses,
                         namespace="metallb-system").splitlines() == expected


@pytest.mark.unit
@pytest.mark.parametrize(("l2", "bgp", "announced_by"), [
    pytest.param([], [bgpstatus("a", "s", "node-2", ["router-v4"]),
                      bgpstatus("a", "s", "node-1", ["router-v4"])],
                 "bgp: node-1,node-2 -> router-v4", id="bgp"),
    pytest.param([], [bgpstatus("a", "s", "node-1", ["r6", "r4"]),
                      bgpstatus("a", "s", "node-2", ["r4"]),
                      bgpstatus("a", "s", "node-3", ["r4", "r6"])],
                 "bgp: node-1,node-3 -> r4,r6; node-2 -> r4", id="bgp-peers-differ-by-node"),
    pytest.param([l2status("a", "s", "node-a")], [bgpstatus("a", "s", "node-1", ["r"])],
                 "l2: node-a; bgp: node-1 -> r", id="both-modes"),
    pytest.param([l2status("a", "s", "node-b"), l2status("a", "s", "node-a")], [],
                 "node-a,node-b", id="l2-unchanged"),
    pytest.param([], [bgpstatus("a", "s", "node-1", [])], "bgp: node-1", id="bgp-no-peers"),
    pytest.param([], [bgpstatus("other", "s", "node-1", ["r"]), {"metadata": {"name": "x"}},
                      {"status": {"node": "n", "serviceNamespace": "a"}}],
                 "-", id="bgp-foreign-or-incomplete"),
])
def test_render_announced_by_bgp(l2: list[dict[str, Any]], bgp: list[dict[str, Any]],
                                 announced_by: str) -> None:
    text = render_status([], [service("a", "s", ["10.0.0.1"], "p")], l2, bgp_statuses=bgp)
    header, line = text.splitlines()[2:4]
    assert header.split()[-2:] == ["ANNOUNCED", "BY"]
    assert line[header.index("ANNOUNCED BY"):] == announced_by


@pytest.mark.unit
def test_missing_kubeconfig_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope"
    assert main(["status", "--kubeconfig", str(missing)]) == EXIT_INPUT
    assert capsys.readouterr().err == (
        f"error: kubeconfig {missing} not found: pass --kubeconfig or set $KUBECONFIG\n")


@pytest.mark.unit
def test_kubeconfig_defaults_to_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "from-env"))
    assert main(["status"]) == EXIT_INPUT
    assert f"kubeconfig {tmp_path / 'from-env'} not found" in capsys.readouterr().err


@pytest.mark.unit
def test_unreachable_api_server_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    assert main(["status", "--kubeconfig", str(kubeconfig)]) == EXIT_PROBLEMS
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach the API server: ")
    assert "Traceback" not in err


# -- against the real API server --------------------------------------------------------------


def kubectl_json(cp: ControlPlane, *args: str, body: dict[str, Any]) -> None:
    cp.kubectl(*args, "-f", "-", input=json.dumps(body))


def patch_status(cp: ControlPlane, ns: str, resource: str, name: str,
                 status: dict[str, Any]) -> None:
    cp.kubectl("patch", resource, name, "-n", ns, "--subresource=status", "--type=merge",
               "-p", json.dumps({"status": status}))


def run_status(cp: ControlPlane, ns: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["status", "--kubeconfig", str(cp.kubeconfig), "-n", ns]) == EXIT_OK
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out


def row(out: str, first: str) -> list[str]:
    lines = [line.split() for line in out.splitlines() if line.split()[:1] == [first]]
    assert len(lines) == 1, out
    return lines[0]


@pytest.mark.cluster
def test_status_shows_pools_services_and_announcers(
    control_plane: ControlPlane, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cp, ns = control_plane, namespace
    apps = create_namespace(cp, "apps")
    suffix = uuid.uuid4().hex[:6]
    good, bad, svc = f"good-{suffix}", f"bad-{suffix}", f"web-{suffix}"
    for name, addresses in ((good, ["198.18.200.0/30"]), (bad, ["198.18.200.2/31"])):
        kubectl_json(cp, "apply", "-n", ns, body={
            "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": name}, "spec": {"addresses": addresses}})
    patch_status(cp, ns, "ipaddresspools.metallb.io", good, {
        "assignedIPv4": 1, "assignedIPv6": 0, "availableIPv4": 3, "availableIPv6": 0,
        "assignedTotal": 1, "availableTotal": "3",
        "conditions": [cond("Ready", "True", "Accepted", "1 address range(s) accepted"),
                       cond("Advertised", "True", "L2AdvertisementSelectsPool", "l2")]})
    patch_status(cp, ns, "ipaddresspools.metallb.io", bad, {
        "assignedTotal": 0, "availableTotal": "0",
        "conditions": [cond("Ready", "False", "OverlapsPool",
                            f"overlaps IPAddressPool '{good}'"),
                       cond("Advertised", "False", "NoL2Advertisement", "not announced")]})

    kubectl_json(cp, "apply", "-n", apps, body={
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": svc, "annotations": {"metallb.io/ip-allocated-from-pool": good}},
        "spec": {"type": "LoadBalancer", "selector": {"app": svc},
                 "ports": [{"port": 80, "protocol": "TCP"}]}})
    patch_status(cp, apps, "service", svc, {"loadBalancer": {"ingress": [{"ip": "198.18.200.0"}]}})

    l2 = f"{svc}-node-a"
    kubectl_json(cp, "apply", "-n", ns, body={
        "apiVersion": "metallb.io/v1beta1", "kind": "ServiceL2Status",
        "metadata": {"name": l2}, "spec": {}})
    patch_status(cp, ns, "servicel2statuses.metallb.io", l2, {
        "node": "node-a", "serviceName": svc, "serviceNamespace": apps,
        "interfaces": [{"name": "eth0"}]})

    out = run_status(cp, ns, capsys)
    assert out.splitlines()[0].split() == ["POOL", "ADDRESSES", "ASSIGNED", "AVAILABLE",
                                           "READY/REASON"]
    assert row(out, good) == [good, "198.18.200.0/30", "1", "3", "True/Accepted"]
    assert row(out, bad) == [bad, "198.18.200.2/31", "0", "0", "False/OverlapsPool"]
    assert row(out, f"{apps}/{svc}") == [f"{apps}/{svc}", "198.18.200.0", good, "node-a"]
    warnings = out.split("WARNINGS:\n", 1)[1].splitlines()
    assert warnings == [
        f"  IPAddressPool/{bad}: Ready=False OverlapsPool: overlaps IPAddressPool '{good}'",
        f"  IPAddressPool/{bad}: Advertised=False NoL2Advertisement: not announced",
    ]


@pytest.mark.cluster
def test_converted_seed_is_accepted_by_kubectl_and_shows_up_in_status(
    control_plane: ControlPlane, namespace: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.cli.test_cli_convert import SEED_CONFIGMAP

    cm = tmp_path / "config.yaml"
    cm.write_text(SEED_CONFIGMAP)
    assert main(["convert", "-f", str(cm), "-n", namespace]) == EXIT_OK
    converted = capsys.readouterr().out
    applied = control_plane.kubectl("apply", "-f", "-", input=converted).stdout
    assert "ipaddresspool.metallb.io/my-ip-space created" in applied
    assert "l2advertisement.metallb.io/my-ip-space created" in applied

    out = run_status(control_plane, namespace, capsys)
    assert row(out, "my-ip-space") == ["my-ip-space", "10.10.13.41-10.10.13.42", "-", "-", "-"]
    assert ("  IPAddressPool/my-ip-space: no status yet: is the metallb-py operator running "
            f"in namespace {namespace}?") in out.splitlines()


@pytest.mark.cluster
def test_status_of_a_running_operator(
    control_plane: ControlPlane, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """No hand-written status: the real operator assigns and reports, status reads it."""
    cp, ns = control_plane, namespace
    apps = create_namespace(cp, "apps")
    lb_class = f"metallb.io/cli-{uuid.uuid4().hex[:8]}"
    kubectl_json(cp, "apply", "-n", ns, body={
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": "lab"}, "spec": {"addresses": ["198.18.201.8/29"]}})
    with OperatorProcess(cp, ns, lb_class=lb_class, leader_election=False):
        kubectl_json(cp, "apply", "-n", apps, body={
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "shop"},
            "spec": {"type": "LoadBalancer", "loadBalancerClass": lb_class,
                     "selector": {"app": "shop"}, "ports": [{"port": 80}]}})

        def settled() -> str | None:
            assert main(["status", "--kubeconfig", str(cp.kubeconfig), "-n", ns]) == EXIT_OK
            out = capsys.readouterr().out
            return out if row(out, "lab")[2] == "1" and "<pending>" not in row(
                out, f"{apps}/shop") else None

        out = wait_for(settled, timeout=30, interval=0.2, what="operator status")
    assert row(out, "lab") == ["lab", "198.18.201.8/29", "1", "7", "True/Accepted"]
    assert row(out, f"{apps}/shop") == [f"{apps}/shop", "198.18.201.8", "lab", "-"]
    assert ("  IPAddressPool/lab: Advertised=False NoL2Advertisement: no L2Advertisement "
            "or BGPAdvertisement selects this pool: its addresses are assigned but not "
            "announced, so they are unreachable") in out.splitlines()


def write_status_object(cp: ControlPlane, ns: str, kind: str, name: str,
                        status: dict[str, Any]) -> None:
    kubectl_json(cp, "apply", "-n", ns, body={
        "apiVersion": "metallb.io/v1beta1", "kind": kind, "metadata": {"name": name},
        "spec": {}})
    patch_status(cp, ns, f"{kind.lower()}es.metallb.io", name, status)


def lb_service(cp: ControlPlane, ns: str, name: str, ip: str) -> None:
    kubectl_json(cp, "apply", "-n", ns, body={
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"type": "LoadBalancer", "selector": {"app": name},
                 "ports": [{"port": 80, "protocol": "TCP"}]}})
    patch_status(cp, ns, "service", name, {"loadBalancer": {"ingress": [{"ip": ip}]}})


def announced_by(out: str, service_key: str) -> str:
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("SERVICE "))
    [line] = [line for line in lines if line.split()[:1] == [service_key]]
    return line[header.index("ANNOUNCED BY"):]


@pytest.mark.cluster
def test_status_shows_bgp_announcers(
    control_plane: ControlPlane, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """ServiceBGPStatuses as the speakers write them: nodes and the peers they announce to."""
    cp, ns = control_plane, namespace
    apps = create_namespace(cp, "apps")
    lb_service(cp, apps, "bgp-web", "198.18.92.1")
    lb_service(cp, apps, "both", "198.18.92.2")
    for node in ("node-2", "node-1"):
        write_status_object(cp, ns, "ServiceBGPStatus", f"bgp-{node}", {
            "node": node, "serviceName": "bgp-web", "serviceNamespace": apps,
            "peers": ["router-v4"]})
    write_status_object(cp, ns, "ServiceBGPStatus", "both-bgp", {
        "node": "node-3", "serviceName": "both", "serviceNamespace": apps,
        "peers": ["router-v6", "router-v4"]})
    write_status_object(cp, ns, "ServiceL2Status", "both-l2", {
        "node": "node-a", "serviceName": "both", "serviceNamespace": apps,
        "interfaces": [{"name": "eth0"}]})

    out = run_status(cp, ns, capsys)
    assert announced_by(out, f"{apps}/bgp-web") == "bgp: node-1,node-2 -> router-v4"
    assert announced_by(out, f"{apps}/both") == "l2: node-a; bgp: node-3 -> router-v4,router-v6"


@pytest.mark.cluster
def test_status_with_crds_from_before_bgp_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No ServiceBGPStatus served (CRDs older than BGP mode): layer 2 is shown as before."""
    crds = tmp_path / "crds"
    crds.mkdir()
    for name in ("metallb.io_ipaddresspools.yaml", "metallb.io_l2advertisements.yaml",
                 "metallb.io_servicel2statuses.yaml"):
        shutil.copy(CRD_DIR / name, crds / name)
    with ControlPlane(ControlPlaneConfig()) as cp:
        apply_crds(cp, crds)
        ns, apps = create_namespace(cp, "pools"), create_namespace(cp, "apps")
        lb_service(cp, apps, "web", "198.18.93.1")
        write_status_object(cp, ns, "ServiceL2Status", "web-l2", {
            "node": "node-a", "serviceName": "web", "serviceNamespace": apps,
            "interfaces": [{"name": "eth0"}]})
        out = run_status(cp, ns, capsys)
    assert announced_by(out, f"{apps}/web") == "node-a"


def session_state(node: str, peer: str, bgp: str, reason: str,
                  message: str = "") -> dict[str, Any]:
    return {"metadata": {"name": f"{node}-{peer}", "namespace": "metallb-system"},
            "status": {"node": node, "peer": peer, "peerAddress": "198.18.0.254",
                       "vrf": "default", "bgpStatus": bgp, "bfdStatus": "N/A",
                       "conditions": [{"type": "Established",
                                       "status": str(reason == "Established"),
                                       "reason": reason, "message": message}]}}


@pytest.mark.unit
def test_render_bgp_sessions_and_warn_about_those_down() -> None:
    text = render_status([], [], [], sessions=[
        session_state("node-2", "router-v4", "Unknown", "FRRUnavailable",
                      "FRR unavailable: bgpd not running"),
        session_state("node-1", "router-v4", "Established", "Established"),
        {"metadata": {"name": "half-written"}},
    ])
    lines = text.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("NODE")))
    assert [line.split() for line in lines[start:start + 3]] == [
        ["NODE", "BGP", "PEER", "ADDRESS", "BGP", "BFD"],
        ["node-1", "router-v4", "198.18.0.254", "Established", "N/A"],
        ["node-2", "router-v4", "198.18.0.254", "Unknown", "N/A"]]
    assert ("  BGP session node-2 -> router-v4: not Established (FRRUnavailable): "
            "FRR unavailable: bgpd not running") in lines
    assert not any("node-1 -> router-v4" in line for line in lines)


@pytest.mark.unit
def test_no_sessions_table_without_session_states() -> None:
    assert "BGP PEER" not in render_status([], [], [])

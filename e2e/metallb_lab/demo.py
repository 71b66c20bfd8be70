"""`make demo`: the seed's user journey on one machine, with real parts only.

1. a real kube-apiserver + etcd (built from Go modules), and `helm install` of our chart;
2. three simulated nodes (network namespaces on one bridge) and a client;
3. the MetalLB v0.12 ConfigMap of the seed, converted by `metallbctl convert` into
   IPAddressPool + L2Advertisement and applied with kubectl;
4. the operator and one speaker per node run as processes (no kubelet here: they stand
   in for the chart's Deployment and DaemonSet pods);
5. `kubectl create deployment nginx` + `kubectl expose --type=LoadBalancer`, then
   `kubectl get svc` shows the EXTERNAL-IP and curl from the client reaches nginx;
6. the announcing node is killed; the address moves and curl keeps working.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from metallb_lab.controlplane import REPO_ROOT, ControlPlane, ControlPlaneConfig, find_tool
from metallb_lab.kube import wait_for
from metallb_lab.netlab import NetLab
from metallb_lab.operator import OperatorProcess

NAMESPACE = "metallb-system"
V012_CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  namespace: metallb-system
  name: config
data:
  config: |
    address-pools:
    - name: default
      protocol: layer2
      addresses:
      - 198.18.0.100-198.18.0.110
"""


def step(title: str) -> None:
    print(f"\n\033[1m=== {title}\033[0m", flush=True)


def show(cmd: list[str], out: str) -> None:
    print("$ " + " ".join(cmd), flush=True)
    print(out.rstrip(), flush=True)


def kubectl(cp: ControlPlane, *args: str, stdin: str | None = None) -> str:
    proc = cp.kubectl(*args, input=stdin)
    show(["kubectl", *args], proc.stdout)
    return proc.stdout


def main() -> int:
    with ControlPlane(ControlPlaneConfig()) as cp:
        version = json.loads(cp.kubectl("version", "-o", "json").stdout)["serverVersion"]
        step(f"real control plane up: {cp.server} ({version['gitVersion']})")
        step("helm install metallb-py charts/metallb-py -n metallb-system --create-namespace")
        helm = subprocess.run(
            [find_tool("helm"), "install", "metallb-py", str(REPO_ROOT / "charts/metallb-py"),
             "-n", NAMESPACE, "--create-namespace", "--wait=false"],
            env=cp.env(), capture_output=True, text=True, check=True)
        print(helm.stdout.splitlines()[0] if helm.stdout else "", flush=True)
        kubectl(cp, "get", "crds")
        with NetLab(cp, nodes=3, namespace=NAMESPACE) as lab:
            step("three nodes and a client on one LAN (network namespaces)")
            for node in lab.nodes:
                print(f"  {node.name}: {node.ip4} / {node.ip6}  (ns {node.ns})")
            print(f"  client: 198.18.0.2  (ns {lab.client_ns})", flush=True)

            step("the seed's MetalLB v0.12 ConfigMap, converted to CRDs by metallbctl")
            print(V012_CONFIGMAP, flush=True)
            conv = subprocess.run([sys.executable, "-m", "metallb_operator.cli", "convert",
                                   "-f", "-"], input=V012_CONFIGMAP, capture_output=True,
                                  text=True, check=True)
            print(conv.stdout, flush=True)
            kubectl(cp, "apply", "-f", "-", stdin=conv.stdout)

            step("operator and speakers running (stand-ins for the chart's pods)")
            op = OperatorProcess(cp, NAMESPACE, log_path=Path(lab.work) / "operator.log")
            op.start()
            lab.start_speakers()
            lab.wait_ready()
            print("  operator synced; 3 speakers see each other", flush=True)

            step("the seed's test: an nginx Deployment behind a LoadBalancer Service")
            kubectl(cp, "create", "deployment", "nginx", "--image=nginx")
            kubectl(cp, "expose", "deployment", "nginx", "--type=LoadBalancer", "--port=80")
            lab.endpoints("default", "nginx", lab.nodes)
            vip = wait_for(lambda: cp.kubectl(
                "get", "svc", "nginx", "-o",
                "jsonpath={.status.loadBalancer.ingress[0].ip}").stdout, timeout=30,
                what="EXTERNAL-IP")
            kubectl(cp, "get", "svc", "nginx")
            lab.wait_vip_on_nodes(vip)
            body = wait_for(lambda: lab.curl(vip, timeout=1), timeout=30, what="curl")
            show(["curl", f"http://{vip}/"], body)
            kubectl(cp, "get", "servicel2statuses", "-n", NAMESPACE)
            describe = cp.kubectl("describe", "svc", "nginx").stdout
            show(["kubectl", "describe", "svc", "nginx", "| tail"],
                 "\n".join(describe.splitlines()[-5:]))
            kubectl(cp, "get", "ipaddresspools", "-n", NAMESPACE)

            owner = lab.node_by_mac(lab.neighbour_mac(vip) or "")
            assert owner is not None
            step(f"kill the announcing node ({owner.name}) while a client requests every "
                 "10 ms")
            probe = lab.prober(vip, duration=4.0)
            time.sleep(1.0)
            lab.kill_node(owner)
            out, _ = probe.communicate(timeout=30)
            results = json.loads(out)
            failed = [r for r in results if not r["ok"]]
            outage = (failed[-1]["t"] - failed[0]["t"] + 0.01) if failed else 0.0
            after = [r["node"] for r in results if r["ok"]][-1]
            print(f"  {len(results)} requests, {len(failed)} failed, outage ~{outage:.2f} s; "
                  f"now served by {after}", flush=True)
            body = wait_for(lambda: lab.curl(vip, timeout=1), timeout=30, what="curl")
            show(["curl", f"http://{vip}/"], body)
            kubectl(cp, "get", "servicel2statuses", "-n", NAMESPACE)
            ok = owner.name not in body
            op.stop()
        step("done: everything torn down" if ok else "FAILED: traffic did not move")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

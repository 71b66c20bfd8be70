"""`make demo`: the seed's user journey on a real multi-node cluster on this machine.

1. a real control plane (etcd, kube-apiserver, controller-manager, scheduler) and three
   real nodes (containerd, kubelet, kube-proxy each), built from Go modules;
2. `helm install` of our chart: the operator Deployment and the speaker DaemonSet run
   as Pods from the image built by the project's Dockerfile;
3. the MetalLB v0.12 ConfigMap of the seed, converted by `metallbctl convert` into
   IPAddressPool + L2Advertisement and applied with kubectl;
4. `kubectl create deployment nginx` + `kubectl expose --type=LoadBalancer`; curl from a
   client on the LAN reaches an nginx Pod: ARP answered by the announcing node's
   speaker Pod, then kube-proxy's rules;
5. the announcing node's link goes down while the client requests every 10 ms: the
   address moves and curl keeps working.
"""

from __future__ import annotations

import subprocess
import sys
import time

from metallb_lab.cluster import CHART, Cluster
from metallb_lab.kube import wait_for
from metallb_lab.prober import Outcome

NAMESPACE = "metallb-system"


def v012_configmap(config: str) -> str:
    """A MetalLB v0.12 ConfigMap (metallb-system/config) holding `config` (YAML)."""
    body = "".join(f"    {line}\n" for line in config.strip().splitlines())
    return ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  namespace: metallb-system\n"
            f"  name: config\ndata:\n  config: |\n{body}")


V012_CONFIGMAP = v012_configmap("""
address-pools:
- name: default
  protocol: layer2
  addresses:
  - 198.18.0.100-198.18.0.110
""")


def step(title: str) -> None:
    print(f"\n\033[1m=== {title}\033[0m", flush=True)


def show(cmd: list[str], out: str) -> None:
    print("$ " + " ".join(cmd), flush=True)
    if out.strip():
        print(out.rstrip(), flush=True)


def main() -> int:
    t_start = time.monotonic()
    step("a real cluster: control plane + 3 nodes (kubelet, containerd, kube-proxy)")
    with Cluster(nodes=3, log=lambda m: print(f"  {m}", flush=True)) as c:

        def kubectl(*args: str, stdin: str | None = None) -> str:
            out = c.kubectl(*args, input=stdin).stdout
            show(["kubectl", *args], out)
            return out

        kubectl("get", "nodes", "-o", "wide")
        print(f"  client on the LAN: 198.18.0.2 (namespace {c.client_ns})", flush=True)

        step("helm install metallb-py charts/metallb-py -n metallb-system --create-namespace")
        sets = c.chart_args()
        print(f"  (image built from this tree's Dockerfile: {' '.join(sets)})", flush=True)
        t0 = time.monotonic()
        c.install(namespace=NAMESPACE)
        c.kubectl("rollout", "status", "-n", NAMESPACE, "daemonset/metallb-py-speaker",
                  "--timeout=120s")
        print(f"  {CHART.name} installed, every Pod Ready in {time.monotonic() - t0:.1f}s",
              flush=True)
        kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide")

        step("the seed's MetalLB v0.12 ConfigMap, converted to CRDs by metallbctl")
        print(V012_CONFIGMAP, flush=True)
        conv = subprocess.run([sys.executable, "-m", "metallb_operator.cli", "convert",
                               "-f", "-"], input=V012_CONFIGMAP, capture_output=True,
                              text=True, check=True)
        print(conv.stdout, flush=True)
        kubectl("apply", "-f", "-", stdin=conv.stdout)

        step("the seed's test: an nginx Deployment behind a LoadBalancer Service")
        # nginx:1.22 is Debian's nginx, imported into every node (no registry here).
        kubectl("create", "deployment", "nginx", "--image=nginx:1.22")
        kubectl("expose", "deployment", "nginx", "--type=LoadBalancer", "--port=80")
        c.kubectl("rollout", "status", "deployment/nginx", "--timeout=120s")
        vip = wait_for(lambda: c.kubectl(
            "get", "svc", "nginx", "-o",
            "jsonpath={.status.loadBalancer.ingress[0].ip}").stdout, timeout=30,
            what="EXTERNAL-IP")
        kubectl("get", "svc", "nginx")
        kubectl("get", "pods", "-l", "app=nginx", "-o", "wide")
        try:
            body = wait_for(lambda: c.curl(vip, timeout=1), timeout=30, what="curl")
        except TimeoutError:
            print(c.diagnose(pods_of=(NAMESPACE, "default")), file=sys.stderr)
            raise
        show(["curl", f"http://{vip}/"], body)
        (owner,) = wait_for(lambda: c.announcers("default", "nginx"), timeout=30,
                            what="announcing node")
        kubectl("get", "servicel2statuses", "-n", NAMESPACE)
        describe = c.kubectl("describe", "svc", "nginx").stdout
        show(["kubectl", "describe", "svc", "nginx", "| tail -4"],
             "\n".join(describe.splitlines()[-4:]))
        mac = c.neighbour_mac(vip) or ""
        holder = c.node_by_mac(mac)
        print(f"  the client's ARP entry for {vip}: {mac} = "
              f"{holder.name if holder else '?'}'s eth0", flush=True)
        on_nodes = [n.name for n in c.nodes if vip in c.node_addresses(n)]
        print(f"  nodes with {vip} on an interface: {on_nodes or 'none'} (the speaker "
              "answers ARP, kube-proxy's rules take the packets)", flush=True)

        pod_node = {p["metadata"]["name"]: p["spec"]["nodeName"]
                    for p in c.pods("default", "app=nginx")}
        if owner.name in pod_node.values():
            step(f"the only nginx Pod runs on {owner.name}, the node about to fail: move it")
            kubectl("cordon", owner.name)
            kubectl("rollout", "restart", "deployment/nginx")
            c.kubectl("rollout", "status", "deployment/nginx", "--timeout=120s")
            kubectl("uncordon", owner.name)
            kubectl("get", "pods", "-l", "app=nginx", "-o", "wide")

        step(f"the announcing node {owner.name} loses its link while a client requests "
             "every 10 ms")
        probe = c.prober(vip, duration=6.0, timeout=0.05)
        time.sleep(1.0)
        c.set_link(owner, up=False)
        print(f"  $ ip link set eth0 down   (in {owner.name})", flush=True)
        seen = Outcome.parse(probe.communicate(timeout=60)[0])
        print(f"  {seen.requests} requests, {seen.failed} failed, longest gap between "
              f"answers {seen.outage_s:.2f} s; answered by {', '.join(seen.served_by)}",
              flush=True)
        body = wait_for(lambda: c.curl(vip, timeout=1), timeout=30, what="curl")
        show(["curl", f"http://{vip}/"], body)
        new_owner = wait_for(lambda: next((n for n in c.announcers("default", "nginx")
                                           if n is not owner), None),
                             timeout=30, what="new owner's ServiceL2Status")
        kubectl("get", "servicel2statuses", "-n", NAMESPACE)
        ok = body.startswith("served by nginx-") and new_owner is not owner and \
            holder is owner and not on_nodes
        print(f"  now announced by {new_owner.name}; the client's ARP entry: "
              f"{c.neighbour_mac(vip)}", flush=True)
    step(f"done in {time.monotonic() - t_start:.0f}s: everything torn down" if ok
         else "FAILED: traffic did not move")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

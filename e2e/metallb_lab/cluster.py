"""A real multi-node Kubernetes cluster on this machine, for the real-node e2e tier, the
demo and the benches: what users run, as Pods, with nothing standing in.

    [client ns]  eth0 198.18.0.2 ----+
    [cp ns]      eth0 198.18.0.1 ----+-- br0 (in the cluster's LAN namespace)
      etcd, kube-apiserver :6443,    |
      controller-manager, scheduler  |
    [node-1 ns]  eth0 198.18.0.11 ---+    each node: containerd, kubelet, kube-proxy
      cni0 198.18.129.1/24 - Pods    |    (nftables), its own mount namespace and
    [node-2 ns]  eth0 198.18.0.12 ---+    cgroups (see `kubenode`); Pod CIDRs from
    ...                                   node IPAM, routed between nodes

Pods reach the API server through the `kubernetes` Service (kube-proxy DNATs it to
198.18.0.1:6443); tests reach it through a relay on the host's loopback. Nothing of the
host's own network namespace, iptables or sysctls changes. `teardown()` (also run on a
failed start) leaves no process, mount, namespace, cgroup or directory behind; so does
`python -m metallb_lab.cleanup` after a crash.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from metallb_lab import cgroups
from metallb_lab.cleanup import CLUSTERS_DIR, OWNER_FILE, cleanup, cleanup_stale, prefix_of
from metallb_lab.controlplane import (
    REPO_ROOT,
    ControlPlane,
    ControlPlaneConfig,
    ControlPlaneError,
    find_assets,
    find_tool,
)
from metallb_lab.images import LabImages, ensure_images
from metallb_lab.kube import Json, wait_for, wait_lb_ingress
from metallb_lab.kubenode import KubeNode
from metallb_lab.lan import Lan, UsersView
from metallb_lab.netns import in_ns, ip, sysctl
from metallb_speaker.election import rank_key

LAN4, LAN6 = "198.18.0.0/24", "fd00:18::/64"
CP4, CP6 = "198.18.0.1", "fd00:18::1"
CLIENT4, CLIENT6 = "198.18.0.2", "fd00:18::2"
POD_CIDRS = ("198.18.128.0/17", "fd00:10:244::/56")
CHART = REPO_ROOT / "charts" / "metallb-py"
NGINX = "nginx:1.22"  # Debian's nginx, imported into every node (metallb_lab.images)
NODE_BINARIES = ("kubelet", "kube-proxy", "kube-controller-manager", "kube-scheduler",
                 "containerd", "containerd-shim-runc-v2", "ctr", "crictl")

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


class Cluster(UsersView[KubeNode]):
    def __init__(self, nodes: int = 3, *, log: Log = _quiet,
                 images: LabImages | None = None) -> None:
        self.id = uuid.uuid4().hex[:5]
        self.prefix = prefix_of(self.id)
        self.dir = CLUSTERS_DIR / self.id
        self.log = log
        self.net = Lan(self.prefix)
        self.cp_ns = f"{self.prefix}-cp"
        self.client_ns = f"{self.prefix}-client"
        self.nodes = [KubeNode(f"node-{i}", i, f"{self.prefix}-n{i}", f"198.18.0.{10 + i}",
                               f"fd00:18::{10 + i:x}", self.dir / f"node-{i}",
                               f"{self.prefix}-node-{i}") for i in range(1, nodes + 1)]
        self._images = images
        self.timings: dict[str, float] = {}
        self.cp: ControlPlane | None = None
        self._sigterm: Any = None

    # -- lifecycle ----------------------------------------------------------------------
    def __enter__(self) -> Cluster:
        # SIGTERM (a CI timeout, `kill`) must unwind through teardown like Ctrl-C does.
        if threading.current_thread() is threading.main_thread():
            self._sigterm = signal.signal(signal.SIGTERM, _terminate)
        try:
            self.start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.teardown()
        finally:
            if self._sigterm is not None:
                signal.signal(signal.SIGTERM, self._sigterm)
                self._sigterm = None

    @property
    def images(self) -> LabImages:
        assert self._images is not None
        return self._images

    @property
    def api(self) -> Json:
        return Json(self.control_plane)

    @property
    def control_plane(self) -> ControlPlane:
        assert self.cp is not None, "cluster not started"
        return self.cp

    def _timed(self, what: str, t0: float) -> None:
        self.timings[what] = round(time.monotonic() - t0, 2)
        self.log(f"{what}: {self.timings[what]:.1f}s")

    def start(self) -> None:
        t_all = time.monotonic()
        for what in cleanup_stale():
            self.log(f"removed leftover {what}")
        cgroups.require_v1()
        self.dir.mkdir(parents=True)
        (self.dir / OWNER_FILE).write_text(str(os.getpid()))
        # Mount namespaces are bound to files in here: it must be a private mount.
        subprocess.run(["mount", "--bind", str(self.dir), str(self.dir)], check=True)
        subprocess.run(["mount", "--make-private", str(self.dir)], check=True)
        t0 = time.monotonic()
        if self._images is None:
            self._images = ensure_images(self.log)
        self._timed("images", t0)
        bin_dir = find_assets()
        missing = [b for b in NODE_BINARIES if not (bin_dir / b).exists()]
        if missing:
            raise ControlPlaneError(f"{bin_dir} lacks {', '.join(missing)}: run "
                                    "e2e/tools/build-control-plane")

        t0 = time.monotonic()
        self._network()
        # The control plane is another machine in a real cluster: one cgroup, weighing
        # as much as one node's, not dozens of threads at the root that starve the nodes'
        # Pods whenever the apiserver is busy (removed with the nodes' cgroups).
        cgroups.create(f"{self.prefix}-cp")
        self.cp = ControlPlane(ControlPlaneConfig(
            netns=self.cp_ns, bind_address="0.0.0.0", advertise_address=CP4,
            extra_sans=(CP6,), secure_port=6443, for_nodes=True,
            work_dir=self.dir / "control-plane", cgroup=f"{self.prefix}-cp"))
        self.cp.start()
        self.cp.start_controllers(POD_CIDRS)
        self._timed("control plane", t0)

        t0 = time.monotonic()
        for node in self.nodes:
            node.prepare()
            node.start_containerd(bin_dir, self.images.pause)
        self.in_parallel(lambda n: n.import_images(bin_dir, self.images.all))
        self._timed("containerd + image import", t0)

        t0 = time.monotonic()
        for node in self.nodes:
            node.start_kubelet(self.cp, self.id)
            node.start_kube_proxy(self.cp, POD_CIDRS)
        self._pod_network()
        self._wait_nodes_ready()
        # Pods need their namespace's ServiceAccount (the token controller makes it).
        wait_for(lambda: self.api.exists("/api/v1/namespaces/default/serviceaccounts/"
                                         "default"), timeout=60, what="default SA")
        self._timed("nodes ready", t0)
        self._timed("cluster start", t_all)

    def teardown(self) -> None:
        if self.cp is not None:
            self.cp.stop()
        for what in cleanup(self.id, self.dir):
            self.log(f"removed {what}")
        for node in self.nodes:
            for proc in node.procs.values():
                proc.wait(timeout=10)  # killed with their cgroup: reap them
            node.procs.clear()
        self.net.created_ns.clear()

    # -- pieces -------------------------------------------------------------------------
    def _network(self) -> None:
        net = self.net
        net.setup()
        for ns, a4, a6 in ((self.cp_ns, CP4, CP6), (self.client_ns, CLIENT4, CLIENT6)):
            net.add_ns(ns)
            net.attach(ns, "eth0", a4, a6)
        for node in self.nodes:
            net.add_ns(node.ns)
            node.port = net.attach(node.ns, "eth0", node.ip4, node.ip6)
            self._routes(node)
            # Nodes route for their Pods and for kube-proxy's DNAT to other nodes' Pods
            # (kubeadm requires it; the bridge plugin would set it only with a local Pod).
            for key in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding",
                        # and, like a configured host, keep its IPv6 address over a
                        # link flap (the kernel's default flushes it on link down)
                        "net.ipv6.conf.eth0.keep_addr_on_down"):
                sysctl(node.ns, key, "1")

    def in_parallel(self, fn: Callable[[KubeNode], None]) -> None:
        """`fn` on every node at once (threads); the first error is raised after all end."""
        errors: list[BaseException] = []

        def run(node: KubeNode) -> None:
            try:
                fn(node)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(n,)) for n in self.nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def _node_objects(self) -> dict[str, dict[str, Any]]:
        items = self.api.get("/api/v1/nodes")["items"]
        return {o["metadata"]["name"]: o for o in items}

    def _pod_network(self) -> None:
        """Once node IPAM gave each node its Pod CIDRs: the bridge CNI config on each
        node, and routes to every node's Pods from the other nodes and the control
        plane (Pods talk to the API server by their own address)."""
        def cidrs() -> dict[str, list[str]] | None:
            for node in self.nodes:
                node.check_running()
            objs = self._node_objects()
            got = {n.name: (objs.get(n.name) or {}).get("spec", {}).get("podCIDRs") or []
                   for n in self.nodes}
            return got if all(len(c) == 2 for c in got.values()) else None

        try:
            got = wait_for(cidrs, timeout=90, interval=0.2, what="nodes registered")
        except TimeoutError:
            raise TimeoutError(self.diagnose()) from None
        for node in self.nodes:
            node.write_cni(got[node.name])
        for cidr, via in self._pod_routes():
            ip("route", "replace", cidr, "via", via, ns=self.cp_ns)
        for node in self.nodes:
            self._routes(node)

    def _pod_routes(self, exclude: KubeNode | None = None) -> list[tuple[str, str]]:
        return [(cidr, n.ip6 if ":" in cidr else n.ip4)
                for n in self.nodes if n is not exclude for cidr in n.pod_cidrs]

    def _routes(self, node: KubeNode) -> None:
        """A node's routes via its eth0 (the kernel drops them when the link goes down).
        Its gateway is the control plane's namespace (which forwards nothing): host-
        network Pods need a route to the Service CIDRs for kube-proxy's DNAT. The other
        nodes' Pods are reached through those nodes."""
        ip("route", "replace", "default", "via", CP4, ns=node.ns)
        ip("-6", "route", "replace", "default", "via", CP6, ns=node.ns)
        for cidr, via in self._pod_routes(exclude=node):
            ip("route", "replace", cidr, "via", via, ns=node.ns)

    def _wait_nodes_ready(self, timeout: float = 90.0) -> None:
        def ready() -> bool:
            for node in self.nodes:
                node.check_running()
            objs = self._node_objects()
            return all(any(c["type"] == "Ready" and c["status"] == "True"
                           for c in (objs.get(n.name) or {}).get("status", {}).get(
                               "conditions", [])) for n in self.nodes)

        try:
            wait_for(ready, timeout=timeout, interval=0.2, what="nodes Ready")
        except TimeoutError:
            raise TimeoutError(self.diagnose()) from None

    def diagnose(self, pods_of: Iterable[str] = (), tail: int = 30) -> str:
        """What to read when something did not come up: daemon logs, and the Pods (with
        their logs) of the given namespaces."""
        parts = [self.control_plane.tail(lines=15)] if self.cp else []
        for node in self.nodes:
            for daemon in ("containerd", "kubelet", "kube-proxy"):
                parts.append(f"--- {node.name} {daemon}\n{node.logs(daemon, 2500)}")
        for ns in pods_of:
            parts.append(self.kubectl("get", "pods", "-n", ns, "-o", "wide",
                                      check=False).stdout)
            for pod in self.pods(ns):
                name = pod["metadata"]["name"]
                logs = self.kubectl("logs", "-n", ns, name, f"--tail={tail}",
                                    "--request-timeout=10s", check=False)
                parts.append(f"--- pod {ns}/{name}\n{logs.stdout}{logs.stderr}")
        parts.append("--- client neighbours\n" + ip("neigh", ns=self.client_ns,
                                                     check=False).stdout)
        return "\n".join(parts)

    # -- what tests and the demo do -----------------------------------------------------
    def kubectl(self, *args: str, input: str | None = None, check: bool = True
                ) -> subprocess.CompletedProcess[str]:
        return self.control_plane.kubectl(*args, input=input, check=check)

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([find_tool("helm"), *args], env=self.control_plane.env(),
                              capture_output=True, text=True, check=False)
        if check and proc.returncode != 0:
            raise ControlPlaneError(f"helm {' '.join(args)} failed:\n{proc.stderr}")
        return proc

    def chart_args(self, values: Iterable[str] = ()) -> list[str]:
        """`--set` arguments for our chart: the image built from this tree, then yours."""
        image = self.images.project
        repo, tag = image.ref.rsplit(":", 1)
        sets = [f"image.repository={repo}", f"image.tag={tag}", *values]
        return [arg for s in sets for arg in ("--set", s)]

    def install(self, release: str = "metallb-py", namespace: str = "metallb-system",
                values: Iterable[str] = (), timeout: str = "180s") -> None:
        """helm install (or upgrade) our chart and wait until its Pods are Ready."""
        self.helm("upgrade", "--install", release, str(CHART), "-n", namespace,
                  "--create-namespace", "--wait", f"--timeout={timeout}",
                  *self.chart_args(values))

    def roll_speakers(self, values: Iterable[str] = (), timeout: str = "240s"
                      ) -> list[dict[str, Any]]:
        """`helm upgrade` that replaces every speaker Pod (a new Pod annotation, as a
        changed image would), then wait for the rollout; returns the new speaker Pods."""
        self.install(values=(*values, f"speaker.podAnnotations.lab/rollout={uuid.uuid4()}"))
        self.kubectl("rollout", "status", "-n", "metallb-system",
                     "daemonset/metallb-py-speaker", f"--timeout={timeout}")
        return self.wait_speakers_ready()

    def pods(self, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        query = f"?labelSelector={selector}" if selector else ""
        items: list[dict[str, Any]] = self.api.get(
            f"/api/v1/namespaces/{namespace}/pods{query}")["items"]
        return items

    # -- MetalLB on it ------------------------------------------------------------------
    def http_get(self, url: str, timeout: float = 2.0) -> str | None:
        """GET from the client's namespace (on the LAN, like any host there)."""
        out = subprocess.run(in_ns(self.client_ns, ["curl", "-s", "--max-time",
                                                    str(timeout), url]),
                             capture_output=True, text=True, check=False)
        return out.stdout if out.returncode == 0 else None

    def wait_speakers_ready(self, namespace: str = "metallb-system", timeout: float = 120.0
                            ) -> list[dict[str, Any]]:
        """One Ready speaker Pod per node, each seeing every node's speaker as ready;
        returns the speaker Pods."""
        want = f'metallb_speaker_members{{state="ready"}} {len(self.nodes)}.0'

        def check() -> list[dict[str, Any]] | None:
            pods = [p for p in self.pods(namespace, "app.kubernetes.io/component=speaker")
                    if not p["metadata"].get("deletionTimestamp")]
            on = sorted(p["spec"].get("nodeName", "") for p in pods if pod_ready(p))
            if on != [n.name for n in self.nodes]:
                return None
            if not all(want in (self.http_get(f"http://{n.ip4}:7473/metrics") or "")
                       for n in self.nodes):
                return None
            return pods

        try:
            return wait_for(check, timeout=timeout, interval=0.5, what="speakers Ready")
        except TimeoutError:
            raise TimeoutError(self.diagnose(pods_of=(namespace,))) from None

    def l2_pool(self, name: str, *addresses: str, namespace: str = "metallb-system") -> None:
        """An IPAddressPool and an L2Advertisement for it (every node, every interface)."""
        self.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "List", "items": [
                {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                 "metadata": {"name": name, "namespace": namespace},
                 "spec": {"addresses": list(addresses)}},
                {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
                 "metadata": {"name": name, "namespace": namespace},
                 "spec": {"ipAddressPools": [name]}}]}))

    def deployment(self, namespace: str, name: str, node: str, replicas: int = 1) -> None:
        """nginx Pods pinned to `node`, and wait until they are rolled out."""
        self.api.create(f"/apis/apps/v1/namespaces/{namespace}/deployments", {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {
                         "nodeSelector": {"kubernetes.io/hostname": node},
                         "terminationGracePeriodSeconds": 1,
                         # A request, as real workloads have: BestEffort Pods get
                         # cpu.shares 2, and this one machine's control plane (a
                         # separate machine in real clusters) then starves them for
                         # seconds whenever it is busy, e.g. during a `helm upgrade`.
                         "containers": [{"name": "nginx", "image": NGINX, "resources": {
                             "requests": {"cpu": "100m"}}}]}}}})
        self.kubectl("rollout", "status", "-n", namespace, f"deployment/{name}",
                     "--timeout=120s")

    def lb_service(self, namespace: str, name: str, app: str, *, address: str | None = None,
                   **spec: Any) -> list[str]:
        """A LoadBalancer Service for Pods `app=<app>`; waits for its addresses."""
        annotations = {"metallb.io/loadBalancerIPs": address} if address else {}
        self.api.create(f"/api/v1/namespaces/{namespace}/services", {
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"type": "LoadBalancer", "selector": {"app": app},
                     "ports": [{"port": 80}], **spec}})
        return wait_lb_ingress(self.api, namespace, name, spec, timeout=30)

    def single_announcer(self, namespace: str, service: str, timeout: float = 30.0
                         ) -> KubeNode:
        def one() -> list[KubeNode] | None:
            got = self.announcers(namespace, service)
            return got if len(got) == 1 else None

        return wait_for(one, timeout=timeout, what=f"one announcer of {service}")[0]

    def announcers(self, namespace: str, service: str, speakers_ns: str = "metallb-system"
                   ) -> list[KubeNode]:
        """Nodes whose ServiceL2Status says they announce the Service."""
        items = self.api.get(f"/apis/metallb.io/v1beta1/namespaces/{speakers_ns}/"
                             "servicel2statuses")["items"]
        names = sorted((o.get("status") or {}).get("node", "") for o in items
                       if (o.get("status") or {}).get("serviceName") == service
                       and o["status"].get("serviceNamespace") == namespace)
        return [self.node(n) for n in names]

    def node(self, name: str) -> KubeNode:
        return next(n for n in self.nodes if n.name == name)

    def node_of_pod(self, namespace: str, pod: str) -> KubeNode:
        obj = self.api.get(f"/api/v1/namespaces/{namespace}/pods/{pod}")
        return self.node(obj["spec"]["nodeName"])

    def node_addresses(self, node: KubeNode) -> set[str]:
        out = ip("-j", "addr", "show", ns=node.ns).stdout
        return {a["local"] for link in json.loads(out) for a in link.get("addr_info", [])}

    def set_link(self, node: KubeNode, up: bool) -> None:
        ip("link", "set", "eth0", "up" if up else "down", ns=node.ns)
        if up:  # once the link's own (connected) routes are back, add ours again
            wait_for(lambda: ip("route", "show", LAN4, ns=node.ns).stdout and
                     ip("-6", "route", "show", LAN6, ns=node.ns).stdout,
                     timeout=10, what=f"{node.name}'s connected routes")
            self._routes(node)

    def set_frozen(self, node: KubeNode, frozen: bool) -> None:
        """Every process of the node (daemons and Pods) stops, or resumes."""
        for name in (node.cgroup, node.daemon_cgroup):
            cgroups.set_frozen(name, frozen)


def pod_ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def address_ranked_last(avoid: str, nodes: Iterable[str], candidates: Iterable[str]) -> str:
    """The first candidate address that `avoid` ranks last for (MetalLB's ranking: the
    lowest sha256(node#ip) owns): while any other node is up, `avoid` never announces
    it, so failing whichever node does leaves `avoid`'s Pods alone."""
    names = list(nodes)

    def last(ip: str) -> str:
        return max(names, key=lambda n: rank_key(n, ip))

    return next(ip for ip in candidates if last(ip) == avoid)


def main() -> int:
    """Start a cluster, print its timings and nodes, tear it down (a smoke run)."""
    with Cluster(log=lambda m: print(f"cluster: {m}", file=sys.stderr)) as c:
        print(c.kubectl("get", "nodes", "-o", "wide").stdout)
        print(c.timings)
    return 0


if __name__ == "__main__":
    sys.exit(main())

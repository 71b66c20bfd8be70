"""The network lab: N simulated nodes and a client on one L2 segment, the real control
plane reachable from every node, one real speaker per node, nginx on every node.

    [client ns] eth0 198.18.0.2 ---+
    [node-1 ns] eth0 198.18.0.11 --+-- br0 (in the lab's LAN namespace)
    [node-2 ns] eth0 198.18.0.12 --+
    ...

Each node namespace behaves like a kube-proxy (IPVS, strictARP) node: every Service
external IP is added to its `lo`, and arp_ignore=1/arp_announce=2 keep the kernel from
answering ARP for it, so only the speaker's answers move traffic. IPv6 NS are answered
by the kernel only on the interface holding the address, so `lo` is silent there too.
nginx on each node serves a page naming the node.

Only namespaces the lab creates carry addresses (198.18.0.0/15, fd00::/8); nothing is
added to the host's namespace. Everything is torn down on exit, also on failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from metallb_lab.controlplane import ControlPlane
from metallb_lab.kube import Json, apply_manifest, lb_ingress, wait_lb_ingress
from metallb_lab.lan import Lan, UsersView
from metallb_lab.netns import Forwarder, in_ns, ip, sysctl

API_PORT_IN_NODE = 6443
SECRET_NAME = "metallb-py-memberlist"
NGINX_CONF = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  keepalive_timeout 0;
  server {{
    listen 80 default_server;
    listen [::]:80 default_server;
    location / {{ default_type text/plain; return 200 "served by {node}\\n"; }}
  }}
}}
"""


@dataclass
class LabNode:
    name: str
    ns: str
    ip4: str
    ip6: str
    index: int
    speaker: subprocess.Popen[bytes] | None = None
    nginx: subprocess.Popen[bytes] | None = None
    forwarder: Forwarder | None = None
    extra_ifaces: list[str] = field(default_factory=list)
    port: str = ""  # its bridge port in the LAN namespace

    @property
    def endpoint(self) -> str:
        return f"{self.ip4}:7946"


class NetLab(UsersView[LabNode]):
    def __init__(self, cp: ControlPlane, nodes: int = 3, *, namespace: str = "metallb-system",
                 lb_class: str | None = None, second_lan: bool = False,
                 speaker_args: tuple[str, ...] = (), work_dir: Path | None = None) -> None:
        self.cp = cp
        self.id = uuid.uuid4().hex[:5]
        self.namespace = namespace
        self.lb_class = lb_class
        self.second_lan = second_lan
        self.speaker_args = speaker_args
        self.work = work_dir or Path(tempfile.mkdtemp(prefix=f"metallb-lab-{self.id}-"))
        self.net = Lan(f"mlb{self.id}", ("br0", "br1") if second_lan else ("br0",))
        self.lan = self.net.ns
        self.client_ns = f"mlb{self.id}-c"
        self.client2_ns = f"mlb{self.id}-c2"
        self.nodes = [LabNode(f"node-{i}", f"mlb{self.id}-n{i}", f"198.18.0.{10 + i}",
                              f"fd00:18::{10 + i:x}", i) for i in range(1, nodes + 1)]
        self.apps = "default"  # where tests create their Services
        self._stop = threading.Event()
        self._proxy: threading.Thread | None = None
        self._vips: set[str] = set()
        self.api = Json(cp)

    # -- lifecycle ------------------------------------------------------------------
    def __enter__(self) -> NetLab:
        try:
            self.setup()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.teardown()

    def setup(self) -> None:
        net = self.net
        net.setup()
        net.add_ns(self.client_ns)
        net.attach(self.client_ns, "eth0", "198.18.0.2", "fd00:18::2")
        if self.second_lan:
            net.add_ns(self.client2_ns)
            net.attach(self.client2_ns, "eth0", "198.18.1.2", "fd00:19::2", bridge="br1")
        host, port = self.cp.server.removeprefix("https://").rsplit(":", 1)
        for node in self.nodes:
            net.add_ns(node.ns)
            node.port = net.attach(node.ns, "eth0", node.ip4, node.ip6)
            if self.second_lan:
                net.attach(node.ns, "eth1", f"198.18.1.{10 + node.index}",
                             f"fd00:19::{10 + node.index:x}", bridge="br1")
                node.extra_ifaces.append("eth1")
            for key, value in (("net.ipv4.conf.all.arp_ignore", "1"),
                               ("net.ipv4.conf.all.arp_announce", "2")):
                sysctl(node.ns, key, value)
            node.forwarder = Forwarder(("127.0.0.1", API_PORT_IN_NODE),
                                       (host.strip("[]"), int(port)), listen_ns=node.ns)
            node.forwarder.start()
            self._start_nginx(node)
            self._create_node_object(node)
        self.node_kubeconfig = self.cp.write_kubeconfig(
            self.work / "node.kubeconfig", self.cp.admin, "admin",
            server=f"https://127.0.0.1:{API_PORT_IN_NODE}")
        self._ensure_namespace(self.namespace)
        self._ensure_secret()
        self._proxy = threading.Thread(target=self._kube_proxy, name="kube-proxy", daemon=True)
        self._proxy.start()

    def stop_kube_proxy(self) -> None:
        """No more kube-proxy emulation (BGP scale benches: it lists every Service ten
        times a second and puts every address on every node's `lo`)."""
        self._stop.set()

    def teardown(self) -> None:
        self._stop.set()
        for node in self.nodes:
            self.stop_speaker(node, sig=signal.SIGKILL)
            if node.nginx is not None and node.nginx.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.nginx.pid, signal.SIGKILL)
                node.nginx.wait(timeout=5)
            if node.forwarder is not None:
                node.forwarder.close()
        if self._proxy is not None:
            self._proxy.join(timeout=3)
        self.net.teardown()
        shutil.rmtree(self.work, ignore_errors=True)

    # -- pieces ---------------------------------------------------------------------
    def ensure_nginx(self, node: LabNode) -> None:
        """(Re)start a node's nginx if it died, and wake it if it was stopped."""
        if node.nginx is not None and node.nginx.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.nginx.pid, signal.SIGCONT)
            return
        self._start_nginx(node)

    def _start_nginx(self, node: LabNode) -> None:
        d = self.work / f"nginx-{node.name}"
        d.mkdir(parents=True, exist_ok=True)
        conf = d / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=d, node=node.name))
        node.nginx = subprocess.Popen(
            in_ns(node.ns, ["nginx", "-c", str(conf), "-g", "daemon off;"]),
            stdout=subprocess.DEVNULL, stderr=(d / "stderr").open("wb"),
            start_new_session=True)

    def _create_node_object(self, node: LabNode) -> None:
        path = f"/api/v1/nodes/{node.name}"
        with contextlib.suppress(urllib.error.HTTPError):
            self.api.delete(path)
        self.api.create("/api/v1/nodes", {"metadata": {"name": node.name, "labels": {
            "kubernetes.io/hostname": node.name, "lab": self.id}}})
        self.api.merge_patch(path + "/status", {"status": {
            "addresses": [{"type": "InternalIP", "address": node.ip4}],
            "conditions": [{"type": "Ready", "status": "True"}]}})

    def _ensure_namespace(self, name: str) -> None:
        with contextlib.suppress(urllib.error.HTTPError):
            self.api.create("/api/v1/namespaces", {"metadata": {"name": name}})

    def _ensure_secret(self) -> None:
        with contextlib.suppress(urllib.error.HTTPError):
            self.api.create(f"/api/v1/namespaces/{self.namespace}/secrets", {
                "metadata": {"name": SECRET_NAME},
                "stringData": {"secretkey": uuid.uuid4().hex * 4}})

    def _kube_proxy(self) -> None:
        """Emulate kube-proxy: every Service external IP lives on every node's `lo`."""
        while not self._stop.wait(0.1):
            try:
                svcs = self.api.get("/api/v1/services")["items"]
            except (OSError, ValueError):  # the apiserver may be going away
                continue
            want = {i["ip"] for s in svcs if s["spec"].get("type") == "LoadBalancer"
                    and s["spec"].get("loadBalancerClass") == self.lb_class
                    for i in ((s.get("status") or {}).get("loadBalancer") or {}).get(
                        "ingress") or [] if i.get("ip")}
            for vip in want - self._vips:
                for node in self.nodes:
                    plen = "128" if ":" in vip else "32"
                    ip("addr", "add", f"{vip}/{plen}", "dev", "lo", *(
                        ("nodad",) if ":" in vip else ()), ns=node.ns, check=False)
            for vip in self._vips - want:
                for node in self.nodes:
                    plen = "128" if ":" in vip else "32"
                    ip("addr", "del", f"{vip}/{plen}", "dev", "lo", ns=node.ns, check=False)
            self._vips = want

    # -- speakers -------------------------------------------------------------------
    def speaker_log(self, node: LabNode) -> Path:
        return self.work / f"speaker-{node.name}.log"

    def start_speaker(self, node: LabNode, *extra: str) -> None:
        argv = [sys.executable, "-m", "metallb_speaker", f"--node-name={node.name}",
                f"--namespace={self.namespace}", f"--kubeconfig={self.node_kubeconfig}",
                f"--advertise-address={node.ip4}", f"--bind-address={node.ip4}",
                "--metrics-host=127.0.0.1", "--metrics-port=7473", *self.speaker_args,
                *extra]
        if self.lb_class:
            argv.append(f"--lb-class={self.lb_class}")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with self.speaker_log(node).open("ab") as out:
            node.speaker = subprocess.Popen(in_ns(node.ns, argv), stdout=out,
                                            stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)

    def start_speakers(self, *extra: str) -> None:
        for node in self.nodes:
            self.start_speaker(node, *extra)

    def stop_speaker(self, node: LabNode, sig: int = signal.SIGTERM,
                     timeout: float = 10.0) -> None:
        proc = node.speaker
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        if sig in (signal.SIGSTOP,):
            return
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def signal_speaker(self, node: LabNode, sig: int) -> None:
        assert node.speaker is not None
        os.killpg(node.speaker.pid, sig)

    def kill_node(self, node: LabNode) -> None:
        """A node dies: its speaker and nginx are killed and its link goes down."""
        self.stop_speaker(node, sig=signal.SIGKILL)
        ip("link", "set", "eth0", "down", ns=node.ns)

    def partition(self, *groups: list[LabNode]) -> None:
        """Split the LAN: each group after the first moves to a bridge of its own."""
        for i, group in enumerate(groups[1:], start=1):
            br = f"brp{i}"
            if ip("link", "show", br, ns=self.lan, check=False).returncode != 0:
                ip("link", "add", br, "type", "bridge", ns=self.lan)
                ip("link", "set", br, "up", ns=self.lan)
            for node in group:
                ip("link", "set", node.port, "master", br, ns=self.lan)

    def heal(self) -> None:
        for node in self.nodes:
            ip("link", "set", node.port, "master", "br0", ns=self.lan)

    def add_host(self, name: str, addr4: str, addr6: str) -> str:
        """Another namespace on the LAN (e.g. a foreign host); removed on teardown."""
        ns = f"mlb{self.id}-{name}"
        self.net.add_ns(ns)
        self.net.attach(ns, "eth0", addr4, addr6)
        return ns

    def speaker_metrics(self, node: LabNode) -> str:
        out = subprocess.run(in_ns(node.ns, ["curl", "-s", "--max-time", "2",
                                             "http://127.0.0.1:7473/metrics"]),
                             capture_output=True, text=True, check=False)
        return out.stdout

    def speaker_metric(self, node: LabNode, name: str, labels: str = "") -> float | None:
        prefix = f"{name}{{{labels}}}" if labels else name
        for line in self.speaker_metrics(node).splitlines():
            if line.startswith(prefix + " "):
                return float(line.rsplit(" ", 1)[1])
        return None

    # -- users' view (curl, neighbour_mac, node_by_mac, prober: UsersView) -----------
    def wait_ready(self, timeout: float = 30.0) -> None:
        """Every running speaker sees every running speaker as ready."""
        running = [n for n in self.nodes if n.speaker is not None and n.speaker.poll() is None]
        deadline = time.monotonic() + timeout
        for node in running:
            while self.speaker_metric(node, "metallb_speaker_members",
                                      'state="ready"') != float(len(running)):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{node.name} never saw {len(running)} ready members:\n"
                                       + self.speaker_log(node).read_text()[-2000:])
                time.sleep(0.1)

    def owner(self, namespace: str, service: str) -> list[str]:
        """Nodes announcing a Service, from the ServiceL2Status objects."""
        items = self.api.get(f"/apis/metallb.io/v1beta1/namespaces/{self.namespace}/"
                             "servicel2statuses")["items"]
        return sorted((o.get("status") or {}).get("node", "") for o in items
                      if (o.get("status") or {}).get("serviceName") == service
                      and o["status"].get("serviceNamespace") == namespace)

    def node(self, name: str) -> LabNode:
        return next(n for n in self.nodes if n.name == name)

    def apply(self, manifest: str) -> None:
        apply_manifest(self.cp, manifest, self.namespace)

    def l2_pool(self, name: str, *addresses: str, interfaces: tuple[str, ...] = ("eth0",)
                ) -> None:
        """An IPAddressPool and an L2Advertisement announcing it on `interfaces`."""
        self.cp.kubectl("apply", "-n", self.namespace, "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "List", "items": [
                {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                 "metadata": {"name": name}, "spec": {"addresses": list(addresses)}},
                {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
                 "metadata": {"name": name},
                 "spec": {"ipAddressPools": [name], "interfaces": list(interfaces)}}]}))

    def endpoints(self, namespace: str, service: str, nodes: list[LabNode]) -> None:
        """EndpointSlice for a Service with one ready endpoint per given node (there is
        no kubelet or endpoint controller in the lab)."""
        body: dict[str, Any] = {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service}-lab", "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [n.ip4], "nodeName": n.name,
                           "conditions": {"ready": True}} for n in nodes],
            "ports": [{"port": 80, "protocol": "TCP"}],
        }
        self.cp.kubectl("apply", "-f", "-", input=json.dumps(body))

    def create_service(self, name: str, endpoints: list[LabNode] | None = None,
                       **spec: Any) -> None:
        """A LoadBalancer Service of this lab's class in `apps`, backed by the nginx of
        `endpoints` (default: every node), as its EndpointSlice says."""
        annotations = spec.pop("annotations", {})
        body = {"metadata": {"name": name, "annotations": annotations},
                "spec": {"type": "LoadBalancer", "loadBalancerClass": self.lb_class,
                         "selector": {"app": "nginx"}, "ports": [{"port": 80}], **spec}}
        self.endpoints(self.apps, name, self.nodes if endpoints is None else endpoints)
        self.api.create(f"/api/v1/namespaces/{self.apps}/services", body)

    def ingress(self, name: str) -> list[str]:
        return lb_ingress(self.api, self.apps, name)

    def service(self, name: str, timeout: float = 20.0, endpoints: list[LabNode] | None = None,
                **spec: Any) -> list[str]:
        """Create it and wait for its addresses to be assigned and on the nodes."""
        self.create_service(name, endpoints, **spec)
        ips = wait_lb_ingress(self.api, self.apps, name, spec, timeout)
        for vip in ips:
            self.wait_vip_on_nodes(vip)
        return ips

    def wait_vip_on_nodes(self, vip: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if vip in self._vips:
                return
            time.sleep(0.05)
        raise TimeoutError(f"{vip} never reached the nodes' lo")

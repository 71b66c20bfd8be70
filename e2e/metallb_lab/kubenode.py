"""One real Kubernetes node of the lab: containerd, kubelet and kube-proxy in a network
namespace of their own on the lab LAN, with a mount namespace and cgroups of their own.

Why a mount namespace per node: kubelet, containerd and the CNI plugins use a few fixed
host paths (/run/containerd, /var/lib/cni, /var/log/containers) and kubelet *writes*
host-wide sysctls (vm.overcommit_memory, kernel.panic, kernel.panic_on_oops) when they
differ from what it wants. In the node's mount namespace /run, /var/lib and /var/log
are private tmpfs, and those sysctl files are masked by files holding kubelet's values,
so it finds nothing to change. Every mount a node makes lives and dies with it.

Why cgroups per node: kubelet's `cgroupRoot` (pods) and a sibling for the daemons
(containerd's shims stay there after containerd exits), so freezing a node or killing
everything it started is one operation (see `metallb_lab.cgroups`).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from metallb_lab import cgroups
from metallb_lab.controlplane import ControlPlane
from metallb_lab.images import Image
from metallb_lab.netns import NETNS_DIR

CNI_BIN_DIR = "/usr/lib/cni"  # Debian's containernetworking-plugins
RUNC = "/usr/sbin/runc"       # Debian's runc
# kubelet's setupKernelTunables: the values it would otherwise write host-wide.
KUBELET_SYSCTLS = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}
PRIVATE_DIRS = ("/run", "/var/lib", "/var/log")
CLUSTER_DNS = "198.19.0.10"


@dataclass
class KubeNode:
    name: str
    index: int
    ns: str
    ip4: str
    ip6: str
    dir: Path
    cgroup: str  # kubelet's cgroupRoot; the daemons live in `<cgroup>-sys`
    port: str = ""  # its bridge port in the LAN namespace
    pod_cidrs: tuple[str, ...] = ()
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def daemon_cgroup(self) -> str:
        return f"{self.cgroup}-sys"

    @property
    def mount_ns(self) -> Path:
        return self.dir / "mnt"

    @property
    def containerd_sock(self) -> Path:
        return self.dir / "containerd" / "containerd.sock"

    def log_path(self, daemon: str) -> Path:
        return self.dir / "logs" / f"{daemon}.log"

    def logs(self, daemon: str, tail: int = 4000) -> str:
        path = self.log_path(daemon)
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def enter(self, argv: Sequence[str]) -> list[str]:
        """argv run inside the node's network and mount namespaces."""
        return ["nsenter", f"--mount={self.mount_ns}", f"--net={NETNS_DIR}/{self.ns}",
                "--", *argv]

    # -- preparation ------------------------------------------------------------------
    def prepare(self) -> None:
        for sub in ("logs", "sysctl", "containerd", "kubelet/root", "kubelet/pod-logs",
                    "kube-proxy", "cni/net.d", "cni/ipam"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        for name in (self.cgroup, self.daemon_cgroup):
            cgroups.create(name)
        masks = []
        for key, value in KUBELET_SYSCTLS.items():
            f = self.dir / "sysctl" / key.replace("/", ".")
            f.write_text(value + "\n")
            masks.append(f"mount --bind {f} /proc/sys/{key}")
        script = " && ".join([
            *(f"mount -t tmpfs -o mode=0755,size=256m tmpfs {d}" for d in PRIVATE_DIRS),
            *masks])
        self.mount_ns.touch()
        # The namespace outlives this command: it is bound to `mnt` (unmounted on teardown).
        subprocess.run(["unshare", f"--mount={self.mount_ns}", "--propagation=private",
                        "sh", "-ec", script], check=True, capture_output=True)

    def spawn(self, daemon: str, argv: Sequence[str]) -> None:
        """Start a daemon of this node. From the main thread only: the daemon gets
        SIGKILL when the spawning *thread* ends (PR_SET_PDEATHSIG)."""
        preexec = cgroups.joining(self.daemon_cgroup)
        with self.log_path(daemon).open("ab") as out:
            self.procs[daemon] = subprocess.Popen(
                self.enter(argv), stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=preexec)

    def check_running(self) -> None:
        for daemon, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{self.name}: {daemon} exited with {proc.returncode}:\n"
                                   f"{self.logs(daemon)}")

    # -- containerd ---------------------------------------------------------------------
    def start_containerd(self, bin_dir: Path, pause: Image) -> None:
        d = self.dir / "containerd"
        config = d / "config.toml"
        config.write_text(containerd_config(self, pause.ref))
        self.spawn("containerd", [str(bin_dir / "containerd"), f"--config={config}"])
        deadline = time.monotonic() + 30
        while self.ctr(bin_dir, "version", check=False).returncode != 0:
            self.check_running()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: containerd not up\n"
                                   f"{self.logs('containerd')}")
            time.sleep(0.1)

    def ctr(self, bin_dir: Path, *args: str, check: bool = True
            ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(bin_dir / "ctr"), f"--address={self.containerd_sock}",
                               "--namespace=k8s.io", *args],
                              capture_output=True, text=True, check=False)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{self.name}: ctr {' '.join(args)}: {proc.stderr}")
        return proc

    def import_images(self, bin_dir: Path, images: Sequence[Image]) -> None:
        for image in images:
            self.ctr(bin_dir, "images", "import", "--no-unpack=false", str(image.archive))

    def crictl(self, bin_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(bin_dir / "crictl"),
                               f"--runtime-endpoint=unix://{self.containerd_sock}", *args],
                              capture_output=True, text=True, check=False)

    # -- kubelet and kube-proxy ---------------------------------------------------------
    def start_kubelet(self, cp: ControlPlane, cluster: str) -> None:
        d = self.dir / "kubelet"
        kubeconfig = cp.issue_kubeconfig(f"system:node:{self.name}", ("system:nodes",),
                                         server=cp.cluster_server)
        serving = cp.ca.issue(f"kubelet-{self.name}", f"system:node:{self.name}",
                              organizations=("system:nodes",), dns_names=(self.name,),
                              ip_addresses=(self.ip4, self.ip6), server=True)
        config = d / "config.yaml"
        config.write_text(yaml.safe_dump(kubelet_config(
            self, str(cp.ca.cert_path), str(serving.cert), str(serving.key))))
        self.spawn("kubelet", [
            str(cp.assets / "kubelet"), f"--config={config}", f"--kubeconfig={kubeconfig}",
            f"--root-dir={d / 'root'}", f"--hostname-override={self.name}",
            f"--node-ip={self.ip4},{self.ip6}",
            f"--node-labels=metallb-py.lab/cluster={cluster}", "--v=0"])

    def start_kube_proxy(self, cp: ControlPlane, cluster_cidrs: Sequence[str]) -> None:
        d = self.dir / "kube-proxy"
        kubeconfig = cp.issue_kubeconfig("system:kube-proxy", server=cp.cluster_server)
        config = d / "config.yaml"
        config.write_text(yaml.safe_dump(kube_proxy_config(self, str(kubeconfig),
                                                           cluster_cidrs)))
        self.spawn("kube-proxy", [str(cp.assets / "kube-proxy"), f"--config={config}",
                                  "--v=0"])

    def write_cni(self, pod_cidrs: Sequence[str]) -> None:
        """The bridge plugin's config for this node's Pod CIDRs (from node IPAM). Written
        once the Node has them; containerd notices and the node turns Ready."""
        self.pod_cidrs = tuple(pod_cidrs)
        conf = self.dir / "cni" / "net.d" / "10-lab.conflist"
        tmp = conf.with_suffix(".tmp")
        tmp.write_text(json.dumps(cni_config(pod_cidrs, self.dir / "cni" / "ipam"),
                                  indent=2))
        tmp.rename(conf)


# -- configuration (pure) -----------------------------------------------------------------
def containerd_config(node: KubeNode, pause_ref: str) -> str:
    d = node.dir / "containerd"
    return f"""\
version = 4
root = '{d / "root"}'
state = '{d / "state"}'
imports = []
# One node's containerd among several on this host: no NRI socket, no optional
# snapshotters; everything else per node (paths above, sockets below).
disabled_plugins = ['io.containerd.nri.v1.nri', 'io.containerd.snapshotter.v1.blockfile',
                    'io.containerd.snapshotter.v1.erofs', 'io.containerd.differ.v1.erofs']

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '{pause_ref}'

  [plugins.'io.containerd.cri.v1.runtime']
    # root here lacks CAP_SYS_RESOURCE: never lower a process's oom_score_adj
    restrict_oom_score_adj = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = '{RUNC}'
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['{CNI_BIN_DIR}']
      conf_dir = '{node.dir / "cni" / "net.d"}'

  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'

  [plugins.'io.containerd.internal.v1.opt']
    path = '{d / "opt"}'

  [plugins.'io.containerd.server.v1.grpc']
    address = '{node.containerd_sock}'

  [plugins.'io.containerd.server.v1.ttrpc']
    address = '{node.containerd_sock}.ttrpc'
"""


def kubelet_config(node: KubeNode, ca: str, cert: str, key: str) -> dict[str, object]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "authentication": {"anonymous": {"enabled": False},
                           "webhook": {"enabled": False},
                           "x509": {"clientCAFile": ca}},
        "authorization": {"mode": "AlwaysAllow"},  # only our CA's certificates get in
        "tlsCertFile": cert,
        "tlsPrivateKeyFile": key,
        "containerRuntimeEndpoint": f"unix://{node.containerd_sock}",
        # cgroup v1 host without systemd: cgroupfs, under the node's own root.
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{node.cgroup}",
        "failCgroupV1": False,
        "failSwapOn": False,
        "podLogsDir": str(node.dir / "kubelet" / "pod-logs"),
        "healthzBindAddress": "127.0.0.1",
        "readOnlyPort": 0,
        # Pods must not reach the host's resolver. The cluster DNS address is inside the
        # Service range and nothing serves it (no CoreDNS here): nothing leaves the lab.
        "resolvConf": "",
        "clusterDNS": [CLUSTER_DNS],
        "clusterDomain": "cluster.local",
        # Imported images can never be pulled again: never collect them.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "50Mi", "nodefs.available": "1%",
                         "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
        "serializeImagePulls": False,
        "nodeStatusReportFrequency": "10s",
        "fileCheckFrequency": "5s",
    }


def kube_proxy_config(node: KubeNode, kubeconfig: str, cluster_cidrs: Sequence[str]
                      ) -> dict[str, object]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "nftables",
        "clientConnection": {"kubeconfig": kubeconfig},
        "hostnameOverride": node.name,
        "clusterCIDR": ",".join(cluster_cidrs),
        "healthzBindAddress": "0.0.0.0:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        # conntrack tables are host-wide: leave every conntrack sysctl alone.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                      "tcpCloseWaitTimeout": "0s", "udpTimeout": "0s",
                      "udpStreamTimeout": "0s"},
    }


def cni_config(pod_cidrs: Sequence[str], ipam_dir: Path) -> dict[str, object]:
    return {
        "cniVersion": "1.0.0",
        "name": "lab",
        "plugins": [{
            "type": "bridge",
            "bridge": "cni0",
            "isGateway": True,
            # kube-proxy masquerades what needs it; Pod addresses are routed in the lab.
            "ipMasq": False,
            "hairpinMode": True,
            "ipam": {
                "type": "host-local",
                "dataDir": str(ipam_dir),
                "ranges": [[{"subnet": c}] for c in pod_cidrs],
                "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
            },
        }],
    }

"""BGP mode, shown on the process lab (`python -m metallb_lab.bgp_demo`, as root, after
e2e/tools/setup):

1. a real kube-apiserver + etcd, three simulated nodes (network namespaces) each with a
   real speaker driving its own FRR (zebra, bgpd, bfdd), nginx, and the real operator;
2. a BIRD 2 router on the LAN with a client behind it; MetalLB's objects applied:
   IPAddressPool, BGPPeer (with a 100 ms x 3 BFDProfile), BGPAdvertisement;
3. a LoadBalancer Service: the router learns its address from every node (`birdc show
   route all`) and installs one ECMP route (`ip route`); the client's requests through
   the router spread over the nodes;
4. a node's link goes down: BFD takes it out of the router's route in ~0.3 s, and the
   client's requests keep working.
"""

from __future__ import annotations

import sys
import time

from metallb_lab.bgp_netlab import BGPNetLab
from metallb_lab.controlplane import ControlPlane, ControlPlaneConfig
from metallb_lab.kube import apply_crds
from metallb_lab.netns import ip


def step(title: str) -> None:
    print(f"\n\033[1m=== {title}\033[0m", flush=True)


def show(cmd: list[str], out: str) -> None:
    print("$ " + " ".join(cmd), flush=True)
    if out.strip():
        print(out.rstrip(), flush=True)


def main() -> int:
    step("a real control plane, three lab nodes (speaker + FRR + nginx each), the operator, "
         "and a BIRD router with a client behind it")
    with ControlPlane(ControlPlaneConfig()) as cp:
        apply_crds(cp)
        with BGPNetLab(cp, nodes=3) as b:
            lab, router = b.lab, b.router
            show(["kubectl", "get", "bgppeers,bfdprofiles,bgpadvertisements,ipaddresspools",
                  "-n", lab.namespace],
                 cp.kubectl("get", "bgppeers,bfdprofiles,bgpadvertisements,ipaddresspools",
                            "-n", lab.namespace).stdout)
            show(["birdc", "show", "protocols"], router.birdc("show", "protocols"))

            step("a LoadBalancer Service: every node announces it, the router spreads")
            (vip,) = lab.service("nginx")
            b.wait_next_hops(vip, lab.nodes)
            show(["kubectl", "get", "service", "nginx", "-n", lab.apps],
                 cp.kubectl("get", "service", "nginx", "-n", lab.apps).stdout)
            show(["kubectl", "get", "servicebgpstatuses", "-n", lab.namespace],
                 cp.kubectl("get", "servicebgpstatuses", "-n", lab.namespace).stdout)
            show(["birdc", "show", "route", "for", vip, "all"],
                 router.birdc("show", "route", "for", vip, "all"))
            show(["ip", "route", "show", vip, "(on the router)"],
                 ip("route", "show", vip, ns=router.ns).stdout)
            for _ in range(6):
                show(["curl", f"http://{vip}/", "(from the client behind the router)"],
                     router.curl(vip) or "FAILED")

            node = lab.nodes[0]
            step(f"{node.name}'s link goes down")
            t0 = time.monotonic()
            b.set_link(node, up=False)
            b.wait_next_hops(vip, lab.nodes[1:], timeout=10)
            print(f"the router dropped {node.name} as next hop after "
                  f"{time.monotonic() - t0:.2f} s (BFD 100 ms x 3)", flush=True)
            show(["ip", "route", "show", vip, "(on the router)"],
                 ip("route", "show", vip, ns=router.ns).stdout)
            for _ in range(4):
                show(["curl", f"http://{vip}/"], router.curl(vip) or "FAILED")
            b.set_link(node, up=True)
            step("done: tearing the lab down")
    return 0


if __name__ == "__main__":
    sys.exit(main())

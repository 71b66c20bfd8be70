"""`make demo-bgp`: the seed's journey in BGP mode, on the same real multi-node cluster.

1. a real control plane and three real nodes (as `make demo`), and a BIRD 2 router on
   their LAN with a client network behind it (198.18.64.0/24);
2. `helm install` of our chart with `speaker.frr.enabled=true`: each speaker Pod runs
   FRR's zebra, bgpd and bfdd in its `frr` container;
3. a MetalLB v0.12 ConfigMap in BGP mode (`peers`, `bfd-profiles`, a `protocol: bgp`
   pool), converted by `metallbctl convert` and applied with kubectl;
4. nginx behind a LoadBalancer Service: the router learns the address from every node
   and installs one ECMP route; curl from the client behind the router reaches nginx;
5. a node loses its link while the client requests every 10 ms: BFD (100 ms x 3) takes
   its next hop out of the route.
"""

from __future__ import annotations

import subprocess
import sys
import time

from metallb_lab.bgplab import keep_addresses_on_link_down
from metallb_lab.bird import ROUTER4, ROUTER6, BirdRouter, hop_namer
from metallb_lab.cluster import Cluster
from metallb_lab.demo import NAMESPACE, show, step, v012_configmap
from metallb_lab.kube import wait_for
from metallb_lab.netns import in_ns
from metallb_lab.prober import Outcome
from metallb_lab.routerconf import BfdTimings, RouterConfig, node_peers

ROUTER_ASN, NODE_ASN = 64500, 64512
V012_BGP_CONFIGMAP = v012_configmap(f"""
peers:
- peer-address: {ROUTER4}
  peer-asn: {ROUTER_ASN}
  my-asn: {NODE_ASN}
  bfd-profile: fast
bfd-profiles:
- name: fast
  receive-interval: 100
  transmit-interval: 100
  detect-multiplier: 3
address-pools:
- name: default
  protocol: bgp
  addresses:
  - 198.18.40.0/24
""")


def main() -> int:
    t_start = time.monotonic()
    step("a real cluster: control plane + 3 nodes, and a BIRD router on their LAN")
    with Cluster(nodes=3, log=lambda m: print(f"  {m}", flush=True)) as c:
        peers = node_peers(((n.name, n.ip4, n.ip6) for n in c.nodes), NODE_ASN, bfd=True)
        config = RouterConfig(ROUTER_ASN, ROUTER4, ROUTER4, ROUTER6, peers,
                              BfdTimings(100, 100, 3))
        with BirdRouter(c.net, config, work=c.dir) as router:
            router.route_back(n.ns for n in c.nodes)
            for n in c.nodes:
                keep_addresses_on_link_down(n.ns)
            hop = hop_namer((n.name, n.ns, n.ip4, n.ip6) for n in c.nodes)

            def kubectl(*args: str, stdin: str | None = None) -> str:
                out = c.kubectl(*args, input=stdin).stdout
                show(["kubectl", *args], out)
                return out

            def birdc(*args: str) -> str:
                out: str = router.birdc(*args)
                show(["birdc", *args], out)
                return out

            def router_routes(vip: str) -> str:
                out = subprocess.run(in_ns(router.ns, ["ip", "route", "show", vip]),
                                     capture_output=True, text=True, check=True).stdout
                show(["ip", "route", "show", vip, f"  (in the router, {router.ns})"], out)
                return out

            kubectl("get", "nodes", "-o", "wide")
            print(f"  router: {ROUTER4} (AS {ROUTER_ASN}); client behind it: "
                  f"{router.client4} (namespace {router.client_ns})", flush=True)

            step("helm install metallb-py charts/metallb-py -n metallb-system "
                 "--set speaker.frr.enabled=true")
            t0 = time.monotonic()
            c.install(namespace=NAMESPACE, values=("speaker.frr.enabled=true",))
            c.wait_speakers_ready()
            print(f"  installed, every Pod Ready in {time.monotonic() - t0:.1f}s", flush=True)
            kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide")

            step("a MetalLB v0.12 ConfigMap in BGP mode, converted to CRDs by metallbctl")
            print(V012_BGP_CONFIGMAP, flush=True)
            conv = subprocess.run([sys.executable, "-m", "metallb_operator.cli", "convert",
                                   "-f", "-"], input=V012_BGP_CONFIGMAP,
                                  capture_output=True, text=True, check=True)
            print(conv.stdout, flush=True)
            kubectl("apply", "-f", "-", stdin=conv.stdout)
            router.wait_established(timeout=90)
            birdc("show", "protocols")
            # the same sessions as the nodes see them (one BGPSessionState per node, peer)
            wait_for(lambda: c.kubectl(
                "get", "bgpsessionstates", "-n", NAMESPACE, "-o",
                "jsonpath={.items[*].status.bgpStatus}",
            ).stdout.split() == ["Established"] * len(c.nodes), timeout=30,
                what="every node's BGPSessionState Established")
            kubectl("get", "bgpsessionstates", "-n", NAMESPACE)

            step("nginx behind a LoadBalancer Service, reached through the router")
            kubectl("create", "deployment", "nginx", "--image=nginx:1.22", "--replicas=2")
            kubectl("expose", "deployment", "nginx", "--type=LoadBalancer", "--port=80")
            c.kubectl("rollout", "status", "deployment/nginx", "--timeout=120s")
            vip = wait_for(lambda: c.kubectl(
                "get", "svc", "nginx", "-o",
                "jsonpath={.status.loadBalancer.ingress[0].ip}").stdout, timeout=30,
                what="EXTERNAL-IP")
            kubectl("get", "svc", "nginx")
            names = sorted(n.name for n in c.nodes)
            router.wait_next_hops(vip, names, key=hop, timeout=60)
            birdc("show", "route", "all", f"{vip}/32")
            router_routes(vip)
            body = wait_for(lambda: router.curl(vip), timeout=30, what="curl")
            show(["curl", f"http://{vip}/", f"  (from {router.client4})"], body)
            kubectl("get", "servicebgpstatuses", "-n", NAMESPACE)

            failing = c.node("node-1")
            step(f"{failing.name} loses its link while the client requests every 10 ms")
            probe = c.prober(vip, duration=5.0, timeout=0.5, ns=router.client_ns)
            time.sleep(1.0)
            t_down = time.monotonic()
            c.set_link(failing, up=False)
            print(f"  $ ip link set eth0 down   (in {failing.name})", flush=True)
            rest = [n for n in names if n != failing.name]
            router.wait_next_hops(vip, rest, key=hop, timeout=10)
            gone = time.monotonic() - t_down
            seen = Outcome.parse(probe.communicate(timeout=60)[0])
            print(f"  the router dropped {failing.name}'s next hop {gone:.2f} s after the "
                  f"link went down (BFD 100 ms x 3)", flush=True)
            print(f"  {seen.requests} requests, {seen.failed} failed (connections hashed "
                  f"to {failing.name} when it went), longest gap between answers "
                  f"{seen.outage_s:.2f} s", flush=True)
            router_routes(vip)
            body = wait_for(lambda: router.curl(vip), timeout=30, what="curl")
            show(["curl", f"http://{vip}/"], body)
            ok = body.startswith("served by nginx-") and gone < 5.0
    step(f"done in {time.monotonic() - t_start:.0f}s: everything torn down" if ok
         else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

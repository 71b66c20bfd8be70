"""BGP mode at scale through running speakers: N Services announced and withdrawn.

The process lab of metallb_lab.bgp_netlab (real apiserver, a real speaker per node
driving its node's FRR, a BIRD 2 router with ECMP). N LoadBalancer Services
(externalTrafficPolicy Cluster, one ready endpoint each) of the lab's class get
addresses from a pool that a BGPAdvertisement of their own announces; the router's
kernel must get one route per address with every node as next hop (goal <= 5 s each
way, issue 10).

The bench writes each Service's status.loadBalancer.ingress itself, as the operator
would (the speaker reads only the status): the operator is stopped after the lab is
up, so its allocation rate is not part of the figure (bench.operator_scale measures
it). The lab's kube-proxy emulation (every address on every node's `lo`, a full
Service list every 0.1 s) is stopped too: BGP announcement does not need it, and at
10,000 Services it would be the busiest process on the machine.

Phases, each timed from its first API write:
  announce               the N statuses are written (32 at a time);
  advertisement-deleted  the BGPAdvertisement is deleted: one write withdraws all N;
  advertisement-created  and created again: one write announces all N;
  withdraw               the N Services are deleted (32 at a time).
The advertisement phases time the speakers, FRR and BIRD alone; the others are bound
by how fast one client writes N objects to the apiserver. For each phase: the writes'
span, the router complete (all N routes with every node as next hop / none of them)
after the first and after the last write, every speaker's CPU
seconds until then and until it is quiet again (its ServiceBGPStatus writes are
done), its RSS (peak, sampled every 50 ms, and after). Idle RSS is taken with the
Services created but without addresses.

Run: .venv/bin/python -m bench.bgp_scale [--services 1000,10000] [--nodes 2]
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bench.common import cpu_seconds, gather_limited, rss_mb, write
from bench.speaker_scale import slice_body
from metallb_kube.client import Connection, KubeClient
from metallb_lab.bgp_netlab import BGPNetLab
from metallb_lab.controlplane import ControlPlane, ControlPlaneConfig
from metallb_lab.kube import apply_crds
from metallb_lab.netlab import LabNode
from metallb_lab.netns import ip
from metallb_lab.routerconf import parse_kernel_routes

POOL = "198.18.128.0/18"  # 16,384 addresses, clear of the lab's LAN, pools and client nets
GOAL_S = 5.0
CONCURRENCY = 32


def addresses(n: int, pool: str = POOL) -> list[str]:
    """The first n host addresses of the pool (a /32 route each at the router)."""
    net = ipaddress.IPv4Network(pool)
    if n > net.num_addresses - 2:
        raise ValueError(f"{n} addresses do not fit in {pool}")
    return [str(net.network_address + 1 + i) for i in range(n)]


def routed(routes: Mapping[str, frozenset[str]], prefixes: Iterable[str],
           hops: frozenset[str] | None) -> int:
    """How many of `prefixes` the router's kernel routes through every one of `hops`
    (None: through anything, i.e. still present)."""
    n = 0
    for p in prefixes:
        have = routes.get(p)
        if have is not None and (hops is None or hops <= have):
            n += 1
    return n


def quiet(samples: list[tuple[float, float]], window: float, max_share: float) -> bool:
    """(monotonic time, CPU seconds) samples: the last `window` seconds used at most
    `max_share` of a core."""
    if len(samples) < 2 or samples[-1][0] - samples[0][0] < window:
        return False
    t1, c1 = samples[-1]
    t0, c0 = next(s for s in reversed(samples) if t1 - s[0] >= window)
    return (c1 - c0) / (t1 - t0) <= max_share


class RSSPeak:
    """Samples processes' RSS every 50 ms in a thread; `take()` returns and resets the
    peaks."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)
        self.peak = dict.fromkeys(pids, 0.0)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)

    def __enter__(self) -> RSSPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            for name, pid in self.pids.items():
                try:
                    rss = rss_mb(pid)
                except OSError:
                    continue
                with self._lock:
                    self.peak[name] = max(self.peak[name], rss)

    def take(self) -> dict[str, float]:
        with self._lock:
            out, self.peak = self.peak, dict.fromkeys(self.pids, 0.0)
        return out


def router_routes(b: BGPNetLab) -> dict[str, frozenset[str]]:
    return parse_kernel_routes(ip("-4", "-j", "route", "show", "proto", "bird",
                                  ns=b.router.ns).stdout)


def wait_quiet(pids: Mapping[str, int], timeout: float = 300.0) -> float:
    """Until every process used <= 5 % of a core for 2 s; seconds waited."""
    t0 = time.monotonic()
    hist: dict[str, list[tuple[float, float]]] = {k: [] for k in pids}
    while time.monotonic() - t0 < timeout:
        now = time.monotonic()
        for k, pid in pids.items():
            hist[k].append((now, cpu_seconds(pid)))
        if all(quiet(h, 2.0, 0.05) for h in hist.values()):
            break
        time.sleep(0.25)
    return time.monotonic() - t0


def configure(b: BGPNetLab) -> None:
    ns = b.lab.namespace
    b.lab.cp.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
        "items": [
            {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
             "metadata": {"name": "scale", "namespace": ns}, "spec": {"addresses": [POOL]}},
            {"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
             "metadata": {"name": "scale", "namespace": ns},
             "spec": {"ipAddressPools": ["scale"]}}]}))


async def populate(client: KubeClient, b: BGPNetLab, n: int) -> None:
    """n Services of the lab's class (no address yet), an EndpointSlice each with a
    ready endpoint on the first node."""
    apps = b.lab.apps
    node = b.lab.nodes[0].name

    async def one(i: int) -> None:
        name = f"scale-{i}"
        await client.create(f"/api/v1/namespaces/{apps}/services", {
            "metadata": {"name": name,
                         "annotations": {"metallb.io/ip-allocated-from-pool": "scale"}},
            "spec": {"type": "LoadBalancer", "loadBalancerClass": b.lab.lb_class,
                     "externalTrafficPolicy": "Cluster",
                     "allocateLoadBalancerNodePorts": False, "selector": {"app": name},
                     "ports": [{"port": 80, "protocol": "TCP"}]}}, read=False)
        await client.create(f"/apis/discovery.k8s.io/v1/namespaces/{apps}/endpointslices",
                            slice_body(name, node, True), read=False)

    await gather_limited(n, one, CONCURRENCY)


async def write_all(client: KubeClient, b: BGPNetLab, vips: list[str], announce: bool) -> None:
    svcs = f"/api/v1/namespaces/{b.lab.apps}/services"

    async def one(i: int) -> None:
        if announce:
            await client.merge_patch(f"{svcs}/scale-{i}/status", {"status": {"loadBalancer": {
                "ingress": [{"ip": vips[i], "ipMode": "VIP"}]}}}, read=False)
        else:
            await client.delete(f"{svcs}/scale-{i}")

    await gather_limited(len(vips), one, CONCURRENCY)


def phase(b: BGPNetLab, what: str, act: Callable[[], object], vips: list[str], announce: bool,
          rss: RSSPeak, pids: Mapping[str, int], timeout: float) -> dict[str, Any]:
    prefixes = [f"{v}/32" for v in vips]
    hops = frozenset(n.ip4 for n in b.lab.nodes)
    want = len(vips) if announce else 0
    rss.take()
    cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
    t0 = time.monotonic()
    act()
    written = time.monotonic() - t0
    while (have := routed(router_routes(b), prefixes, hops if announce else None)) != want:
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{what}: the router has {have} of {len(vips)} routes "
                               f"after {timeout:.0f} s")
        time.sleep(0.1)
    done = time.monotonic() - t0
    cpu1 = {k: cpu_seconds(p) for k, p in pids.items()}
    settled = wait_quiet(pids)
    cpu2 = {k: cpu_seconds(p) for k, p in pids.items()}
    out: dict[str, Any] = {"writes_s": written, "router_complete_s": done,
                           "router_complete_after_last_write_s": done - written,
                           "speaker_cpu_s": {k: cpu1[k] - cpu0[k] for k in pids},
                           "speaker_cpu_until_quiet_s": {k: cpu2[k] - cpu0[k] for k in pids},
                           "quiet_after_s": done + settled,
                           "rss_peak_mb": rss.take(),
                           "rss_after_mb": {k: rss_mb(p) for k, p in pids.items()},
                           "goal_s": GOAL_S}
    print(f"{what} {len(vips)}: writes {written:.2f} s, router "
          f"{'has all' if announce else 'has none'} after {done:.2f} s "
          f"({done - written:.2f} s after the last write); speaker CPU "
          + ", ".join(f"{k} {v:.1f} s" for k, v in out["speaker_cpu_s"].items())
          + " (until quiet: "
          + ", ".join(f"{v:.1f} s" for v in out["speaker_cpu_until_quiet_s"].values())
          + f", {out['quiet_after_s']:.0f} s); RSS peak "
          + ", ".join(f"{v:.0f}" for v in out["rss_peak_mb"].values()) + " MB, after "
          + ", ".join(f"{v:.0f}" for v in out["rss_after_mb"].values()) + " MB", flush=True)
    return out


def speaker_pid(node: LabNode) -> int:
    # `ip netns exec` execs the speaker: the Popen's pid is the speaker's
    assert node.speaker is not None and node.speaker.poll() is None, node.name
    return node.speaker.pid


def run(cp: ControlPlane, n: int, nodes: int, timeout: float) -> dict[str, Any]:
    out: dict[str, Any] = {"services": n, "nodes": nodes, "load_before": os.getloadavg()}
    vips = addresses(n)
    with BGPNetLab(cp, nodes=nodes) as b:
        b.operator.stop()  # the bench writes the addresses (see the module docstring)
        b.lab.stop_kube_proxy()  # not needed for BGP, costly at 10k
        configure(b)
        loop = asyncio.new_event_loop()
        try:
            conn = loop.run_until_complete(Connection.load(str(cp.kubeconfig)))
            client = KubeClient(conn, limit=CONCURRENCY)
            t0 = time.monotonic()
            loop.run_until_complete(populate(client, b, n))
            out["populate_s"] = time.monotonic() - t0
            pids = {node.name: speaker_pid(node) for node in b.lab.nodes}
            wait_quiet(pids)
            out["rss_idle_mb"] = {k: rss_mb(p) for k, p in pids.items()}
            print(f"{n} Services created in {out['populate_s']:.1f} s; idle RSS "
                  + ", ".join(f"{v:.0f}" for v in out["rss_idle_mb"].values()) + " MB",
                  flush=True)

            steps: list[tuple[str, Callable[[], object], bool]] = [
                ("announce", lambda: loop.run_until_complete(
                    write_all(client, b, vips, True)), True),
                ("advertisement-deleted", lambda: b.lab.cp.kubectl(
                    "delete", "-n", b.lab.namespace, "bgpadvertisement", "scale"), False),
                ("advertisement-created", lambda: configure(b), True),
                ("withdraw", lambda: loop.run_until_complete(
                    write_all(client, b, vips, False)), False)]
            with RSSPeak(pids) as rss:
                for what, act, announce in steps:
                    out[what] = phase(b, what, act, vips, announce, rss, pids, timeout)
            loop.run_until_complete(client.close())
        finally:
            loop.close()
    out["load_after"] = os.getloadavg()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", default="1000,10000", help="comma-separated counts")
    ap.add_argument("--nodes", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=300.0, help="per phase")
    a = ap.parse_args()
    started = time.monotonic()
    results: dict[str, Any] = {"runs": []}
    cfg = ControlPlaneConfig(extra_apiserver_flags=("--max-requests-inflight=800",
                                                    "--max-mutating-requests-inflight=400"))
    with ControlPlane(cfg) as cp:
        apply_crds(cp)
        for n in (int(x) for x in a.services.split(",") if x):
            results["runs"].append(run(cp, n, a.nodes, a.timeout))
            write("bgp_scale", results)  # what is measured so far survives a failure
    results["wall_s"] = time.monotonic() - started
    write("bgp_scale", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())

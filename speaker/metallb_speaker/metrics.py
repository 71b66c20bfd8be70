"""Speaker metrics, MetalLB's names where MetalLB has one, on an explicit registry.

MetalLB's speaker series (tests/fixtures/metallb_series.txt): metallb_speaker_announced,
metallb_layer2_{requests_received,responses_sent,gratuitous_sent} (counters named without
`_total`, exposed so), metallb_k8s_client_*, process_*. The rest are metallb-py's own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from metallb_kube.exposition import (
    BareCounter,
    ClientStats,
    K8sClientCollector,
    register_process_metrics,
)

RECOMPUTE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass
class SpeakerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        # (service, ip) announced by this node: read from the controller's decisions at
        # scrape time, so a failover of thousands of addresses updates no metric.
        self.announced_source: Callable[[], Iterable[tuple[str, str]]] = tuple
        # The same over BGP (protocol "bgp"), set by BGP mode's shell.
        self.bgp_announced_source: Callable[[], Iterable[tuple[str, str]]] = tuple
        self.node = ""
        r.register(_Announced(self))
        register_process_metrics(r)
        # MetalLB counts a reconcile per Service / Node / configuration change: here
        # the recomputes those changes trigger (coalesced per loop turn, as
        # controller-runtime coalesces reconciles); membership changes are not API
        # updates. Update errors: ServiceL2Status writes that failed (the election
        # itself cannot fail); the shell sets that source.
        self.client = ClientStats()
        self.client.updates = self._updates
        r.register(K8sClientCollector(self.client))
        self.decisions = Gauge("metallb_speaker_election_decisions",
                               "Services by this node's election outcome", ["reason"],
                               registry=r)
        self.members = Gauge("metallb_speaker_members", "Members by state", ["state"],
                             registry=r)
        self.member_changes = Counter("metallb_speaker_member_changes",
                                      "Membership view changes", ["reason"], registry=r)
        self.synced = Gauge("metallb_speaker_synced", "1 once inputs and membership are ready",
                            registry=r)
        self.takeovers = Counter("metallb_speaker_takeovers",
                                 "Addresses this node became the owner of, by how (first, "
                                 "failed, ineligible, quiet)", ["mode"], registry=r)
        self.quiet_ended = Counter("metallb_speaker_quiet_takeovers_announced",
                                   "Quietly taken-over addresses announced because the "
                                   "previous node stopped forwarding", registry=r)
        self.recompute = Histogram("metallb_speaker_recompute_seconds",
                                   "Time to recompute ownership (election, data plane "
                                   "hand-off, status and metric updates)", ["trigger"],
                                   buckets=RECOMPUTE_BUCKETS, registry=r)
        self.recompute_cpu = Histogram("metallb_speaker_recompute_cpu_seconds",
                                       "CPU time of the loop's thread in a recompute (the "
                                       "wall time minus waiting for a CPU or the GIL)",
                                       ["trigger"], buckets=RECOMPUTE_BUCKETS,
                                       registry=r)
        self.status_pending = Gauge("metallb_speaker_l2status_pending",
                                    "ServiceL2Status writes waiting to be sent", registry=r)

    def _updates(self) -> float:
        return sum(s.value for m in self.recompute.collect() for s in m.samples
                   if s.name.endswith("_count") and s.labels.get("trigger") != "membership")


class _Announced(Collector):
    def __init__(self, metrics: SpeakerMetrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Any]:
        fam = GaugeMetricFamily("metallb_speaker_announced", "Service addresses announced",
                                labels=["service", "protocol", "node", "ip"])
        for service, ip in self._m.announced_source():
            fam.add_metric([service, "layer2", self._m.node, ip], 1.0)
        for service, ip in self._m.bgp_announced_source():
            fam.add_metric([service, "bgp", self._m.node, ip], 1.0)
        yield fam


class DataPlaneCollector(Collector):
    """The data plane thread keeps plain per-address ints on its hot path (a Prometheus
    counter's lock per ARP request would cost more than answering it); exported here."""

    def __init__(self, counters: Any) -> None:
        self._c = counters

    @staticmethod
    def _ip(packed: bytes) -> str:
        import ipaddress

        return str(ipaddress.ip_address(packed))

    def collect(self) -> Iterator[Any]:
        for name, doc, table in (
            ("metallb_layer2_requests_received", "Number of layer2 requests received for "
             "owned IPs", self._c.requests),
            ("metallb_layer2_responses_sent", "Number of layer2 responses sent for owned IPs "
             "in response to requests", self._c.responses),
            ("metallb_layer2_gratuitous_sent", "Number of gratuitous layer2 packets sent for "
             "owned IPs as a result of failovers", self._c.gratuitous),
        ):
            fam = BareCounter(name, doc, ["ip"])
            for packed, v in dict(table).items():
                fam.add_metric([self._ip(packed)], v)
            yield fam
        conf = CounterMetricFamily("metallb_layer2_conflicts",
                                   "Another MAC claimed one of our addresses", labels=["ip", "mac"])
        for (ip, mac), v in dict(self._c.conflicts).items():
            conf.add_metric([ip, mac], v)
        yield conf
        drops = CounterMetricFamily("metallb_layer2_socket_drops",
                                    "Frames the kernel dropped on our packet sockets",
                                    labels=["interface"])
        for iface, v in dict(self._c.drops).items():
            drops.add_metric([iface], v)
        yield drops


class GossipCollector(Collector):
    """Exports the gossip thread's plain counters (and the protocol's) at scrape time."""

    def __init__(self, counters: Any, protocol_stats: Any = None) -> None:
        self._c = counters
        self._p = protocol_stats

    def collect(self) -> Iterator[Any]:
        sent = CounterMetricFamily("metallb_speaker_gossip_sent", "Gossip messages sent",
                                   labels=["type"])
        for k, v in dict(self._c.sent).items():
            sent.add_metric([k], v)
        recv = CounterMetricFamily("metallb_speaker_gossip_received",
                                   "Gossip messages accepted", labels=["type"])
        for k, v in dict(self._c.received).items():
            recv.add_metric([k], v)
        rej = CounterMetricFamily("metallb_speaker_gossip_rejected",
                                  "Gossip refused: wrong key, handshake, replay, malformed",
                                  labels=["reason"])
        for k, v in dict(self._c.rejected).items():
            rej.add_metric([k], v)
        yield sent
        yield recv
        yield rej
        yield CounterMetricFamily("metallb_speaker_gossip_send_dropped",
                                  "Gossip messages dropped (peer not connected)",
                                  value=self._c.send_dropped)
        yield GaugeMetricFamily("metallb_speaker_gossip_loop_lag_max_seconds",
                                "Worst lateness of the gossip loop", value=self._c.loop_lag_max)
        if self._p is not None:
            for name, doc in (
                ("probes_started", "Silent members probed (direct + indirect)"),
                ("suspected", "Members this node accused after a failed probe"),
                ("declared_dead", "Members this node declared dead (suspicion timed out)"),
                ("convictions_suppressed", "Verdicts held back because this node itself "
                 "looked unhealthy (late loop, no helper answered)"),
                ("refutations", "Times this node refuted a suspicion or being declared dead"),
            ):
                yield CounterMetricFamily(f"metallb_speaker_{name}", doc,
                                          value=getattr(self._p, name))


# MetalLB's FRR-mode series (frr-tools/metrics: labels peer = "address:port" and vrf for
# BGP, peer = address and vrf for BFD), read from FRR's session state at scrape time.
_BGP_COUNTERS = (
    ("opens_sent", "opens_sent", "Number of BGP open messages sent"),
    ("opens_received", "opens_received", "Number of BGP open messages received"),
    ("notifications_sent", "notifications_sent", "Number of BGP notification messages sent"),
    ("updates_total_received", "updates_received", "Number of BGP UPDATE messages received"),
    ("keepalives_sent", "keepalives_sent", "Number of BGP keepalive messages sent"),
    ("keepalives_received", "keepalives_received", "Number of BGP keepalive messages received"),
    ("route_refresh_sent", "route_refresh_sent", "Number of BGP route refresh messages sent"),
    ("total_sent", "total_sent", "Number of total BGP messages sent"),
    ("total_received", "total_received", "Number of total BGP messages received"),
)
_BFD_COUNTERS = (
    ("control_packet_input", "Number of received BFD control packets"),
    ("control_packet_output", "Number of sent BFD control packets"),
    ("echo_packet_input", "Number of received BFD echo packets"),
    ("echo_packet_output", "Number of sent BFD echo packets"),
    ("session_up_events", "Number of BFD session up events"),
    ("session_down_events", "Number of BFD session down events"),
    ("zebra_notifications", "Number of BFD zebra notifications"),
)


class BGPCollector(Collector):
    """`source()` gives the FRR shell (`frr.apply.FRRApplier`): its last probe's
    sessions, its status and its push counts."""

    def __init__(self, source: Callable[[], Any]) -> None:
        self._source = source

    def collect(self) -> Iterator[Any]:
        a = self._source()
        labels = ["peer", "vrf"]
        up = GaugeMetricFamily("metallb_bgp_session_up",
                               "BGP session state (1 is up, 0 is down)", labels=labels)
        prefixes = GaugeMetricFamily("metallb_bgp_announced_prefixes_total",
                                     "Number of prefixes currently being advertised on the "
                                     "BGP session", labels=labels)
        updates = CounterMetricFamily("metallb_bgp_updates_total",
                                      "Number of BGP UPDATE messages sent", labels=labels)
        counters = [(BareCounter(f"metallb_bgp_{name}", doc, labels), attr)
                    for name, attr, doc in _BGP_COUNTERS]
        for s in a.sessions:
            lv = [s.label, s.vrf]
            up.add_metric(lv, 1.0 if s.up else 0.0)
            prefixes.add_metric(lv, s.prefixes_sent)
            updates.add_metric(lv, s.updates_sent)
            for fam, attr in counters:
                fam.add_metric(lv, getattr(s, attr))
        yield up
        yield prefixes
        yield updates
        yield from (fam for fam, _ in counters)
        bfd_up = GaugeMetricFamily("metallb_bfd_session_up",
                                   "BFD session state (1 is up, 0 is down)", labels=labels)
        bfd_counters = [(BareCounter(f"metallb_bfd_{name}", doc, labels), name)
                        for name, doc in _BFD_COUNTERS]
        for b in a.bfd:
            lv = [b.peer, b.vrf]
            bfd_up.add_metric(lv, 1.0 if b.up else 0.0)
            for fam, attr in bfd_counters:
                fam.add_metric(lv, getattr(b, attr))
        yield bfd_up
        yield from (fam for fam, _ in bfd_counters)
        yield GaugeMetricFamily("metallb_speaker_frr_up",
                                "1 while FRR answers (its daemons all run)",
                                value=0.0 if a.status == "unavailable" else 1.0)
        status = GaugeMetricFamily("metallb_speaker_frr_status",
                                   "The FRR shell's status (1 for the current one)",
                                   labels=["status"])
        for name in ("starting", "synced", "pending", "unavailable", "refused"):
            status.add_metric([name], 1.0 if a.status == name else 0.0)
        yield status
        pushes = CounterMetricFamily("metallb_speaker_frr_pushes",
                                     "Configuration batches pushed to FRR, by kind "
                                     "(prefixes, config, full)", labels=["kind"])
        seconds = CounterMetricFamily("metallb_speaker_frr_push_seconds",
                                      "Time spent pushing batches to FRR", labels=["kind"])
        for kind in ("prefixes", "config", "full"):
            pushes.add_metric([kind], a.pushes.get(kind, 0))
            seconds.add_metric([kind], a.push_seconds.get(kind, 0.0))
        yield pushes
        yield seconds
        yield CounterMetricFamily("metallb_speaker_frr_losses",
                                  "Times FRR stopped answering", value=a.losses)
        yield CounterMetricFamily("metallb_speaker_frr_refusals",
                                  "Batches FRR refused (in part)", value=a.refusals)

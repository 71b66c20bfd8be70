"""Prometheus metrics with MetalLB's names, on an explicit registry (no globals).

Gauges are float64: an IPv6 /64 (2^64 addresses) is represented exactly, where
MetalLB's int64 arithmetic overflows to negative numbers.

MetalLB's controller series (tests/fixtures/metallb_series.txt): metallb_allocator_*,
metallb_k8s_client_*, process_*. metallb_controller_* and the other metallb_allocator_ /
metallb_k8s_client_ names are metallb-py's own.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge

from metallb_api.addresses import Family
from metallb_kube.exposition import ClientStats, K8sClientCollector, register_process_metrics
from metallb_operator.allocator import PoolUsage


@dataclass
class OperatorMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        register_process_metrics(r)
        # Wired in __main__ to the leader's work queue and configuration.
        self.client = ClientStats()
        r.register(K8sClientCollector(self.client))
        p = "metallb_allocator_"
        self.in_use = Gauge(p + "addresses_in_use_total", "Addresses in use, per pool",
                            ["pool"], registry=r)
        self.total = Gauge(p + "addresses_total", "Usable addresses, per pool", ["pool"],
                           registry=r)
        self.v4_in_use = Gauge(p + "ipv4_addresses_in_use_total", "IPv4 addresses in use",
                               ["pool"], registry=r)
        self.v4_total = Gauge(p + "ipv4_addresses_total", "Usable IPv4 addresses", ["pool"],
                              registry=r)
        self.v6_in_use = Gauge(p + "ipv6_addresses_in_use_total", "IPv6 addresses in use",
                               ["pool"], registry=r)
        self.v6_total = Gauge(p + "ipv6_addresses_total", "Usable IPv6 addresses", ["pool"],
                              registry=r)
        self.services = Gauge(p + "services_allocated_total", "Services with addresses, per pool",
                              ["pool"], registry=r)
        self.allocations = Counter(p + "allocations", "Addresses handed out", ["pool"],
                                   registry=r)
        self.failures = Counter(p + "allocation_failures", "Allocation failures by reason",
                                ["reason"], registry=r)
        self.api_conflicts = Counter("metallb_k8s_client_conflicts",
                                     "Optimistic-concurrency conflicts retried", registry=r)
        self.api_errors = Counter("metallb_k8s_client_errors", "API errors by verb",
                                  ["verb"], registry=r)
        self.queue_depth = Gauge("metallb_controller_queue_depth", "Services waiting", registry=r)
        self.events_pending = Gauge("metallb_controller_events_pending",
                                    "Events queued for posting", registry=r)
        self.synced = Gauge("metallb_controller_synced",
                            "1 once the start-up sync (allocation table rebuilt) is done",
                            registry=r)
        self.leading = Gauge("metallb_controller_leading",
                             "1 while this replica holds the Lease and writes; 0 while it "
                             "waits for it or cannot renew it (writes paused)", registry=r)
        self.crds_missing = Gauge("metallb_controller_crds_missing",
                                  "1 while the metallb.io CRDs the operator needs are not "
                                  "served (it waits for them)", registry=r)

    def set_pool(self, pool: str, usage: PoolUsage, services: int) -> None:
        v4, v6 = Family.V4, Family.V6
        self.in_use.labels(pool).set(usage.assigned.get(v4, 0) + usage.assigned.get(v6, 0))
        self.total.labels(pool).set(float(usage.total.get(v4, 0) + usage.total.get(v6, 0)))
        self.v4_in_use.labels(pool).set(usage.assigned.get(v4, 0))
        self.v4_total.labels(pool).set(float(usage.total.get(v4, 0)))
        self.v6_in_use.labels(pool).set(usage.assigned.get(v6, 0))
        self.v6_total.labels(pool).set(float(usage.total.get(v6, 0)))
        self.services.labels(pool).set(services)

    def forget_pool(self, pool: str) -> None:
        for g in (self.in_use, self.total, self.v4_in_use, self.v4_total, self.v6_in_use,
                  self.v6_total, self.services):
            with contextlib.suppress(KeyError):
                g.remove(pool)

"""The text format as MetalLB's Go client writes it: names on the wire, no _created."""

from __future__ import annotations

import gzip
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from metallb_kube.exposition import (
    CONTENT_TYPE,
    BareCounter,
    ClientStats,
    K8sClientCollector,
    generate,
    register_process_metrics,
)
from metallb_kube.health import Health, serve

pytestmark = pytest.mark.unit


class _Bare:
    def collect(self) -> Iterator[BareCounter]:
        fam = BareCounter("metallb_layer2_requests_received", "requests", ["ip"])
        fam.add_metric(["198.18.0.1"], 3)
        yield fam
        yield BareCounter("metallb_layer2_gratuitous_sent", "none yet", ["ip"])


def _registry() -> CollectorRegistry:
    r = CollectorRegistry()
    Counter("metallb_k8s_client_conflicts", "ours", registry=r).inc()
    Counter("metallb_allocator_allocations", "by pool", ["pool"], registry=r).labels("a").inc()
    Gauge("metallb_allocator_addresses_total", "cap", ["pool"], registry=r).labels("a").set(4)
    Histogram("metallb_speaker_recompute_seconds", "t", buckets=(1.0,), registry=r).observe(0.5)
    r.register(_Bare())  # type: ignore[arg-type]
    return r


@pytest.mark.parametrize(("line", "present"), [
    # MetalLB's counters without _total keep their name, samples and TYPE line alike.
    ("# TYPE metallb_layer2_requests_received counter", True),
    ('metallb_layer2_requests_received{ip="198.18.0.1"} 3.0', True),
    ("# TYPE metallb_layer2_gratuitous_sent counter", True),
    ("metallb_layer2_requests_received_total", False),
    # Counters named with _total (or given without: ours) are written with it.
    ("# TYPE metallb_k8s_client_conflicts_total counter", True),
    ("metallb_k8s_client_conflicts_total 1.0", True),
    ('metallb_allocator_allocations_total{pool="a"} 1.0', True),
    ('# TYPE metallb_allocator_addresses_total gauge', True),
    ('metallb_allocator_addresses_total{pool="a"} 4.0', True),
    ("metallb_speaker_recompute_seconds_count 1.0", True),
    ("_created", False),
])
def test_names_on_the_wire(line: str, present: bool) -> None:
    text = generate([_registry()]).decode()
    assert (line in text) is present, text


def test_k8s_client_series_are_metallbs() -> None:
    stats = ClientStats()
    r = CollectorRegistry()
    r.register(K8sClientCollector(stats))
    text = generate([r]).decode()
    assert "# TYPE metallb_k8s_client_updates_total counter\n" \
           "metallb_k8s_client_updates_total 0.0\n" in text
    # No configuration (a standby operator): the gauges have no sample.
    assert "\nmetallb_k8s_client_config_loaded_bool " not in text
    stats.updates, stats.update_errors = (lambda: 7.0), (lambda: 2.0)
    stats.config_loaded, stats.config_stale = (lambda: True), (lambda: False)
    text = generate([r]).decode()
    for line in ("metallb_k8s_client_updates_total 7.0",
                 "metallb_k8s_client_update_errors_total 2.0",
                 "metallb_k8s_client_config_loaded_bool 1.0",
                 "metallb_k8s_client_config_stale_bool 0.0"):
        assert line + "\n" in text


def test_process_metrics_with_client_golangs_names() -> None:
    r = CollectorRegistry()
    register_process_metrics(r)
    text = generate([r]).decode()
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes",
                 "process_start_time_seconds", "process_open_fds", "python_info"):
        assert f"\n{name}" in text


@pytest.mark.parametrize("accept", [
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",  # Prometheus's
    "",
])
@pytest.mark.parametrize("encoding", ["gzip", ""])
def test_always_text_format(accept: str, encoding: str) -> None:
    server = serve("127.0.0.1", 0, _registry(), Health())
    try:
        req = urllib.request.Request(f"http://127.0.0.1:{server.server_port}/metrics",
                                     headers={"Accept": accept, "Accept-Encoding": encoding})
        with urllib.request.urlopen(req, timeout=5) as resp:
            body = resp.read()
            assert resp.headers["Content-Type"] == CONTENT_TYPE
            if encoding:
                assert resp.headers["Content-Encoding"] == "gzip"
                body = gzip.decompress(body)
        text = body.decode()
        assert "# TYPE metallb_layer2_requests_received counter" in text
        assert "_created" not in text and "# EOF" not in text
    finally:
        server.shutdown()
        server.server_close()

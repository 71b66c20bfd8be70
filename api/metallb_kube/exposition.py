"""Prometheus text format 0.0.4, written the way MetalLB's Go client writes it.

prometheus_client's own writer differs from client_golang in three ways that change
series names on the wire: it answers OpenMetrics when the scraper asks for it (Prometheus
does, so every counter gains `_total` and `_created` samples); it adds `_created` series
to the text format too; and it can only write a counter named `x_total`. MetalLB's
layer-2 counters are named without the suffix (`metallb_layer2_requests_received`), and
client_golang exposes a counter under exactly the name it was given. So: always text
0.0.4, no `_created` series, and `BareCounter` for counters without `_total`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, Sample
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# OpenMetrics types that the text format spells otherwise (prometheus_client's mapping).
_TYPES = {"info": "gauge", "stateset": "gauge", "gaugehistogram": "histogram",
          "unknown": "untyped"}


class BareCounter(Metric):
    """A counter family whose samples carry the family's name, no `_total` (client_golang
    exposes a counter under the name it was registered with)."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, documentation, "counter")
        self._labelnames = tuple(labels)

    def add_metric(self, values: Sequence[str], value: float) -> None:
        labels = dict(zip(self._labelnames, values, strict=True))
        self.samples.append(Sample(self.name, labels, value))


def _escape_label(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _sample_line(s: Sample) -> str:
    labels = ""
    if s.labels:
        labels = "{" + ",".join(f'{k}="{_escape_label(v)}"'
                                for k, v in sorted(s.labels.items())) + "}"
    ts = "" if s.timestamp is None else f" {int(float(s.timestamp) * 1000):d}"
    return f"{s.name}{labels} {floatToGoString(s.value)}{ts}\n"  # type: ignore[no-untyped-call]


def family_name(metric: Metric) -> str:
    """The name on the family's HELP and TYPE lines (what its samples are called)."""
    if metric.type == "counter" and not isinstance(metric, BareCounter):
        return metric.name + "_total"
    if metric.type == "info":
        return metric.name + "_info"
    return metric.name


def generate(collectors: Iterable[Collector]) -> bytes:
    out: list[str] = []
    for collector in collectors:
        for metric in collector.collect():
            name = family_name(metric)
            doc = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
            out.append(f"# HELP {name} {doc}\n")
            out.append(f"# TYPE {name} {_TYPES.get(metric.type, metric.type)}\n")
            created = metric.name + "_created"
            out.extend(_sample_line(s) for s in metric.samples if s.name != created)
    return "".join(out).encode()


class ClientStats:
    """Sources of MetalLB's `metallb_k8s_client_*` series, read at scrape time (each
    component wires its own). A None from `config_loaded`/`config_stale`: no sample (a
    standby operator has no configuration, loaded or not)."""

    def __init__(self) -> None:
        self.updates: Callable[[], float] = lambda: 0.0
        self.update_errors: Callable[[], float] = lambda: 0.0
        self.config_loaded: Callable[[], bool | None] = lambda: None
        self.config_stale: Callable[[], bool | None] = lambda: None


class K8sClientCollector(Collector):
    """MetalLB's internal/k8s/controllers series: names, types and help as MetalLB's."""

    def __init__(self, stats: ClientStats) -> None:
        self._s = stats

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily("metallb_k8s_client_updates_total",
                                  "Number of k8s object updates that have been processed.",
                                  value=self._s.updates())
        yield CounterMetricFamily("metallb_k8s_client_update_errors_total",
                                  "Number of k8s object updates that failed for some reason.",
                                  value=self._s.update_errors())
        for name, doc, source in (
            ("metallb_k8s_client_config_loaded_bool",
             "1 if the MetalLB configuration was successfully loaded at least once.",
             self._s.config_loaded),
            ("metallb_k8s_client_config_stale_bool",
             "1 if running on a stale configuration, because the latest config failed to "
             "load.", self._s.config_stale),
        ):
            fam = GaugeMetricFamily(name, doc)
            value = source()
            if value is not None:
                fam.add_metric([], 1.0 if value else 0.0)
            yield fam


def register_process_metrics(registry: CollectorRegistry) -> None:
    """process_* (as client_golang's process collector names them) and python_* (where
    Go exports go_*), on the component's own registry."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)

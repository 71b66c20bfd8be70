"""The probe endpoints: which checks fail, what the kubelet (and `kubectl describe`) sees."""

from __future__ import annotations

import http.client
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge
from tests.fixtures.tls import https_get, write_cert

from metallb_kube.health import Health, Heartbeat, TLSFiles, evaluate, serve


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.unit
@pytest.mark.parametrize(("age", "reason"), [
    (0.0, None),
    (29.9, None),
    (30.0, None),
    (30.5, "event loop stalled for 30s"),
    (300.0, "event loop stalled for 300s"),
])
def test_heartbeat_reports_a_stalled_loop(age: float, reason: str | None) -> None:
    clock = FakeClock()
    hb = Heartbeat(max_age=30.0, clock=clock)
    clock.now += age
    assert hb.check() == reason
    hb.beat()
    assert hb.check() is None


def _boom() -> str | None:
    raise RuntimeError("broken")


@pytest.mark.unit
@pytest.mark.parametrize(("checks", "ok", "body"), [
    ({}, True, "\n"),
    ({"a": lambda: None}, True, "a: ok\n"),
    ({"a": lambda: None, "b": lambda: "not joined"}, False, "a: ok\nb: not joined\n"),
    ({"a": _boom}, False, "a: check raised RuntimeError('broken')\n"),
])
def test_evaluate_names_every_check(checks: dict[str, object], ok: bool, body: str) -> None:
    assert evaluate(checks) == (ok, body)  # type: ignore[arg-type]


@pytest.fixture
def served() -> Iterator[tuple[str, Health, list[str | None]]]:
    registry = CollectorRegistry()
    Gauge("lab_gauge", "a gauge", registry=registry).set(7)
    state: list[str | None] = [None]
    health = Health(live={"loop": lambda: None}, ready={"synced": lambda: state[0]})
    server = serve("127.0.0.1", 0, registry, health)
    try:
        yield f"http://127.0.0.1:{server.server_port}", health, state
    finally:
        server.shutdown()
        server.server_close()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.unit
def test_probe_endpoints_follow_their_checks(served: tuple[str, Health, list[str | None]]
                                             ) -> None:
    url, _, state = served
    assert get(url + "/livez") == (200, "loop: ok\n")
    assert get(url + "/readyz") == (200, "synced: ok\n")
    state[0] = "waiting for the API"
    assert get(url + "/readyz") == (503, "synced: waiting for the API\n")
    assert get(url + "/livez")[0] == 200  # not ready is not dead
    status, body = get(url + "/metrics")
    assert status == 200 and "lab_gauge 7.0" in body
    # MetalLB's charts probe /metrics; any other path serves metrics too.
    assert "lab_gauge 7.0" in get(url + "/")[1]


# -- HTTPS (MetalLB's secure metrics port, TLS from a Secret's tls.crt / tls.key) -------

@pytest.fixture
def tls_served(tmp_path: Path) -> Iterator[tuple[int, Path, list[str | None]]]:
    write_cert(tmp_path, "first")
    registry = CollectorRegistry()
    Gauge("lab_gauge", "a gauge", registry=registry).set(7)
    state: list[str | None] = [None]
    health = Health(live={"loop": lambda: None}, ready={"synced": lambda: state[0]})
    server = serve("127.0.0.1", 0, registry, health,
                   TLSFiles(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key")))
    try:
        yield server.server_port, tmp_path, state
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.unit
def test_https_serves_metrics_and_probes(tls_served: tuple[int, Path, list[str | None]]
                                         ) -> None:
    port, certs, state = tls_served
    ca = str(certs / "tls.crt")
    status, body, cn = https_get(port, "/metrics", ca)
    assert (status, cn) == (200, "first") and "lab_gauge 7.0" in body
    state[0] = "not synced"
    assert https_get(port, "/readyz", ca)[:2] == (503, "synced: not synced\n")
    # Plain HTTP on the TLS port gets no HTTP answer.
    with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)


@pytest.mark.unit
def test_https_picks_up_a_renewed_certificate(tls_served: tuple[int, Path, list[str | None]]
                                              ) -> None:
    port, certs, _ = tls_served
    time.sleep(0.01)  # a distinct mtime for the renewed files
    write_cert(certs, "renewed")
    assert https_get(port, "/metrics", str(certs / "tls.crt"))[2] == "renewed"


@pytest.mark.unit
@pytest.mark.parametrize("broken", ["missing", "garbage"])
def test_https_refuses_to_start_without_a_usable_certificate(tmp_path: Path,
                                                             broken: str) -> None:
    files = TLSFiles(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"))
    if broken == "garbage":
        Path(files.cert).write_text("not a certificate")
        Path(files.key).write_text("not a key")
    with pytest.raises((OSError, ssl.SSLError)):
        serve("127.0.0.1", 0, CollectorRegistry(), Health(), files)

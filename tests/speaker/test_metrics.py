"""The speaker's registry against MetalLB's list: every layer-2 series with MetalLB's
name, type and labels (the live test sees them without samples: it has no data plane)."""

from __future__ import annotations

import pytest
from tests.fixtures.metallb_series import differences, metallb_series

from metallb_kube.exposition import generate
from metallb_speaker.dataplane.plane import Counters
from metallb_speaker.metrics import DataPlaneCollector, SpeakerMetrics

pytestmark = pytest.mark.unit
IP = bytes([198, 18, 0, 10])


def test_speaker_series_are_metallbs() -> None:
    metrics = SpeakerMetrics()
    metrics.node = "n1"
    metrics.announced_source = lambda: [("ns/web", "198.18.0.10")]
    counters = Counters(requests={IP: 3}, responses={IP: 2}, gratuitous={IP: 1})
    metrics.registry.register(DataPlaneCollector(counters))
    metrics.client.config_loaded = lambda: True
    metrics.client.config_stale = lambda: False
    text = generate([metrics.registry]).decode()
    assert differences(text, "speaker", {s.name for s in metallb_series("speaker")}) == []
    assert 'metallb_layer2_requests_received{ip="198.18.0.10"} 3.0' in text
    assert 'metallb_layer2_responses_sent{ip="198.18.0.10"} 2.0' in text


@pytest.mark.parametrize(("triggers", "updates"), [
    ([], 0.0),
    (["inputs", "inputs"], 2.0),
    (["inputs", "membership", "membership"], 1.0),  # not API updates
])
def test_updates_are_the_recomputes_api_changes_caused(triggers: list[str],
                                                       updates: float) -> None:
    metrics = SpeakerMetrics()
    for trigger in triggers:
        metrics.recompute.labels(trigger).observe(0.001)
    text = generate([metrics.registry]).decode()
    assert f"metallb_k8s_client_updates_total {updates}\n" in text

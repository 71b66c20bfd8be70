"""The operator's registry against MetalLB's list (names, types, label names)."""

from __future__ import annotations

import pytest
from tests.fixtures.metallb_series import differences, metallb_series

from metallb_api.addresses import Family
from metallb_kube.exposition import generate
from metallb_operator.allocator import PoolUsage
from metallb_operator.metrics import OperatorMetrics

pytestmark = pytest.mark.unit


def test_operator_series_are_metallbs() -> None:
    metrics = OperatorMetrics()
    metrics.set_pool("p", PoolUsage(total={Family.V4: 8, Family.V6: 2**64},
                                    assigned={Family.V4: 1}), 1)
    metrics.client.config_loaded = lambda: True
    metrics.client.config_stale = lambda: False
    text = generate([metrics.registry]).decode()
    assert differences(text, "controller", {s.name for s in metallb_series("controller")}) == []
    # A /64 is exact (MetalLB's int64 overflows).
    assert 'metallb_allocator_ipv6_addresses_total{pool="p"} 1.8446744073709552e+19' in text

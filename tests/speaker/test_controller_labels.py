"""The speaker controller hands the election what serviceSelectors and
preferredNodeSelectors read: Service labels and allow-shared-ip (kept across EndpointSlice
events), Node labels; each change re-decides. Driven through the watch-event handlers,
as in test_controller_recompute.py (the real API server: test_controller_selectors.py)."""

from __future__ import annotations

from typing import Any

import pytest

from metallb_speaker.controller import SpeakerController
from metallb_speaker.election import Reason

from .test_controller_recompute import NODES, ctl, eps, settle, svc

__all__ = ["ctl"]  # the fixture, imported
pytestmark = pytest.mark.unit


def _adv(spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "a", "namespace": "metallb-system", "resourceVersion": "2"},
            "spec": {"ipAddressPools": ["p"], **spec}}


def _labelled(name: str, ip: str, labels: dict[str, str],
              annotations: dict[str, str] | None = None) -> dict[str, Any]:
    obj = svc(name, ip)
    obj["metadata"]["labels"] = labels
    obj["metadata"]["annotations"].update(annotations or {})
    return obj


def test_labels_reach_the_election_and_changes_re_decide(ctl: SpeakerController) -> None:
    ctl._adv_event("MODIFIED", _adv({
        "serviceSelectors": [{"matchLabels": {"app": "web"}}],
        "preferredNodeSelectors": [{"weight": 10, "preference": {
            "matchLabels": {"kubernetes.io/hostname": "n3"}}}]}))
    for n in NODES:
        ctl._node_event("MODIFIED", {"metadata": {"name": n, "labels": {
            "kubernetes.io/hostname": n}}})
    ctl._service_event("ADDED", _labelled("web", "198.18.3.1", {"app": "web"}))
    ctl._service_event("ADDED", _labelled("db", "198.18.3.2", {"app": "db"}))
    for name in ("web", "db"):
        ctl._slice_event("ADDED", eps(name, NODES))
    settle(ctl)
    assert ctl.services["apps/web"].labels == {"app": "web"}  # kept across the slice event
    assert ctl.decisions["apps/web"].owner == "n3"  # preferred
    assert ctl.decisions["apps/db"].reason is Reason.NO_MATCHING_ADVERTISEMENT
    # a Service label change re-decides it
    ctl._service_event("MODIFIED", _labelled("db", "198.18.3.2", {"app": "web"}))
    settle(ctl)
    assert ctl.decisions["apps/db"].owner == "n3"
    # a Node label change re-ranks
    ctl._node_event("MODIFIED", {"metadata": {"name": "n3", "labels": {}}})
    settle(ctl)
    assert ctl.decisions["apps/web"].owner != "n3"
    # allow-shared-ip with a service-selecting advertisement: nobody announces
    ctl._service_event("MODIFIED", _labelled("web", "198.18.3.1", {"app": "web"},
                                             {"metallb.io/allow-shared-ip": "k"}))
    settle(ctl)
    assert ctl.services["apps/web"].shared_ip
    assert ctl.decisions["apps/web"].owner is None
    assert ctl.decisions["apps/web"].reason is Reason.SHARED_IP_WITH_SERVICE_SELECTOR

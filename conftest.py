"""Fixtures shared by every test tier (tests/ and e2e/tests/).

Tiers are pytest markers: `unit` (pure), `cluster` (real kube-apiserver + etcd built
from Go modules), `netns` (root + network namespaces: the process lab, the operator and
speakers as processes) and `cluster_nodes` (root: a real multi-node cluster, the chart's
Pods on kubelets). Every test must carry one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from metallb_lab.controlplane import ControlPlane, ControlPlaneConfig
from metallb_lab.kube import apply_crds, create_namespace

pytest_plugins = ["metallb_lab.pytest_plugin"]
TIERS = ("unit", "cluster", "netns", "cluster_nodes")
ROOT_TIERS = ("netns", "cluster_nodes")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not any(item.get_closest_marker(t) for t in TIERS):
            raise pytest.UsageError(f"{item.nodeid} has no tier marker ({', '.join(TIERS)})")
        if any(item.get_closest_marker(t) for t in ROOT_TIERS) and os.geteuid() != 0:
            item.add_marker(pytest.mark.skip(reason="this tier needs root"))


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """One real etcd + kube-apiserver for the whole session, torn down at the end."""
    with ControlPlane(ControlPlaneConfig()) as cp:
        apply_crds(cp)
        yield cp


@pytest.fixture
def namespace(control_plane: ControlPlane) -> str:
    """A fresh namespace per test (namespaces never finish deleting without a
    controller-manager, so tests never share or delete them)."""
    return create_namespace(control_plane)

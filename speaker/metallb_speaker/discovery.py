"""How speakers find each other: one coordination.k8s.io Lease per speaker, named after
its node, carrying its gossip endpoint in an annotation.

Why Leases and not Pods or Node addresses: it works the same in a real cluster
(DaemonSet on hostNetwork) and in the test lab, where speakers are processes in network
namespaces and no Pods exist; the endpoint is whatever address the speaker advertises.
Liveness is NOT read from Leases (that is the gossip's job); a Lease only seeds
membership. Renewed rarely (30 s) and deleted on graceful shutdown.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from metallb_kube.client import ApiError, KubeClient
from metallb_kube.informer import Informer
from metallb_kube.supervise import Backoff, supervised

log = logging.getLogger("metallb.discovery")
ENDPOINT_ANNOTATION = "metallb.io/gossip-endpoint"
MACS_ANNOTATION = "metallb.io/macs"  # so others do not mistake our frames for conflicts
DISCOVERY_LABEL = "metallb.io/speaker-discovery"


def lease_name(node: str) -> str:
    return f"metallb-speaker-{node}"[:253]


class Discovery:
    def __init__(self, client: KubeClient, namespace: str, node: str, endpoint: str,
                 on_peer: Callable[[str, str, frozenset[str]], None],
                 on_gone: Callable[[str], None], renew: float = 30.0,
                 macs: tuple[str, ...] = (),
                 on_synced: Callable[[], None] = lambda: None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._client = client
        self._sleep = sleep
        self._path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self._node = node
        self._endpoint = endpoint
        self._on_peer = on_peer
        self._on_gone = on_gone
        self._renew = renew
        self._macs = macs
        self._on_synced = on_synced
        self.informer = Informer(client, self._path, on_event=self._event, name="leases",
                                 label_selector=f"{DISCOVERY_LABEL}=true")

    def _body(self) -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return {
            "metadata": {"name": lease_name(self._node),
                         "labels": {DISCOVERY_LABEL: "true"},
                         "annotations": {ENDPOINT_ANNOTATION: self._endpoint,
                                         MACS_ANNOTATION: ",".join(self._macs)}},
            "spec": {"holderIdentity": self._node, "leaseDurationSeconds": 300,
                     "renewTime": now},
        }

    async def publish(self) -> None:
        body = self._body()
        try:
            await self._client.create(self._path, body)
        except ApiError as exc:
            if exc.status != 409:
                raise
            await self._client.merge_patch(f"{self._path}/{lease_name(self._node)}", body)

    async def run(self) -> None:
        """Watch the others' Leases and keep ours published, each part restarted on
        its own when it fails: an API that answers 429/5xx or nothing at start-up must
        not leave a speaker that never finds its peers (it would think it is alone)."""
        await asyncio.gather(
            supervised("discovery-watch", self.informer.run, backoff=Backoff(0.5, 5.0)),
            supervised("discovery-lease", self._keep_published, backoff=Backoff(0.5, 5.0)),
            self._notify_synced())

    async def _keep_published(self) -> None:
        backoff = Backoff(0.5, 5.0)
        while True:
            try:
                await self.publish()
            except ApiError as exc:
                # Others find us only through this Lease: retry soon, not in `renew`.
                log.warning("lease publish failed", extra={"event": "discoveryError",
                                                           "error": str(exc)})
                await self._sleep(backoff.next())
                continue
            backoff.reset()
            await self._sleep(self._renew)

    async def _notify_synced(self) -> None:
        await self.informer.synced.wait()
        self._on_synced()  # the first list seeded every speaker it holds

    async def withdraw(self) -> None:
        try:
            await self._client.delete(f"{self._path}/{lease_name(self._node)}")
        except ApiError as exc:
            if not exc.not_found:
                log.warning("lease delete failed", extra={"event": "discoveryError",
                                                          "error": str(exc)})

    def _event(self, kind: str, obj: Mapping[str, Any]) -> None:
        spec = obj.get("spec") or {}
        meta = obj.get("metadata") or {}
        node = spec.get("holderIdentity") or ""
        annotations = meta.get("annotations") or {}
        endpoint = annotations.get(ENDPOINT_ANNOTATION, "")
        macs = frozenset(m for m in str(annotations.get(MACS_ANNOTATION, "")).split(",") if m)
        if kind == "DELETED":
            name = str(meta.get("name", ""))
            self._on_gone(node or name.removeprefix("metallb-speaker-"))
        elif node and endpoint and node != self._node:
            self._on_peer(str(node), str(endpoint), macs)

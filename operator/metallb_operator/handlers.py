"""kopf wiring: thin handlers that hand raw watch events to the Controller.

Raw `on.event` handlers, not create/update handlers: they write nothing back (no
last-handled-configuration annotations, no finalizers). kopf watches the low-volume
kinds (pools, advertisements, namespaces); Services, which can number 10k+, come from
`metallb_kube.informer` (see docs/client-choice.md). Start-up sync runs in
`on.startup`, which kopf completes before any of its watches start.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from metallb_kube.client import Connection
from metallb_operator.controller import Controller

log = logging.getLogger(__name__)


def kopf_settings() -> kopf.OperatorSettings:
    s = kopf.OperatorSettings()
    s.posting.enabled = False  # our EventRecorder posts the Events that matter
    s.peering.standalone = True  # exclusivity comes from our Lease (see leader.py)
    s.scanning.disabled = True
    s.watching.server_timeout = 300
    s.watching.client_timeout = 330
    s.networking.request_timeout = 60
    return s


def build_registry(controller: Controller, conn: Connection) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    async def login(**_: Any) -> kopf.ConnectionInfo:
        token = conn.token
        if conn.token_file:
            with open(conn.token_file) as f:
                token = f.read().strip()
        return kopf.ConnectionInfo(
            server=conn.server, ca_path=conn.ca_file, insecure=not conn.verify,
            certificate_path=conn.cert_file, private_key_path=conn.key_file,
            token=token, scheme="Bearer" if token else None,
            expiration=None,
        )

    @kopf.on.startup(registry=registry)
    async def startup(**_: Any) -> None:
        await controller.bootstrap()
        controller.start()

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await controller.stop()

    @kopf.on.event("metallb.io", "v1beta1", "ipaddresspools", registry=registry)
    async def pool(event: kopf.RawEvent, **_: Any) -> None:
        controller.on_pool_event(event.get("type"), event["object"])

    @kopf.on.event("metallb.io", "v1beta1", "l2advertisements", registry=registry)
    async def l2adv(event: kopf.RawEvent, **_: Any) -> None:
        controller.on_l2adv_event(event.get("type"), event["object"])

    @kopf.on.event("v1", "namespaces", registry=registry)
    async def namespace(event: kopf.RawEvent, **_: Any) -> None:
        controller.on_namespace_event(event.get("type"), event["object"])

    return registry

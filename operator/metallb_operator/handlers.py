"""kopf wiring: thin handlers that hand raw watch events to the Controller.

Raw `on.event` handlers, not create/update handlers: they write nothing back (no
last-handled-configuration annotations, no finalizers). kopf watches the low-volume
kinds (pools, L2 and BGP advertisements, Communities, namespaces); Services, which can
number 10k+, come from `metallb_kube.informer` (see docs/client-choice.md). The start-up
sync runs before kopf starts; `on.startup` (completed before any of kopf's watches start)
lists the configuration again when kopf is restarted.
"""

from __future__ import annotations

import datetime
import itertools
import logging
from collections.abc import Iterator
from typing import Any

import kopf

from metallb_kube.credentials import Authenticator
from metallb_kube.kubeconfig import Connection
from metallb_operator.controller import BGPADVS, COMMUNITIES, Controller

log = logging.getLogger(__name__)


def kopf_settings() -> kopf.OperatorSettings:
    s = kopf.OperatorSettings()
    s.posting.enabled = False  # our EventRecorder posts the Events that matter
    s.peering.standalone = True  # exclusivity comes from our Lease (see leader.py)
    s.scanning.disabled = True
    s.watching.server_timeout = 300
    s.watching.client_timeout = 330
    s.networking.request_timeout = 60
    # kopf gives up on a request after its backoffs (~1 min) and some errors then end
    # its watchers; an API server away for minutes must only delay us.
    s.networking.error_backoffs = RetryForever()
    return s


class RetryForever:
    """Backoffs for kopf's API requests: fast at first, then every 4 s, without end
    (an iterable, not an iterator: each request starts from the beginning)."""

    def __iter__(self) -> Iterator[float]:
        yield from (0.5, 1.0, 2.0)
        yield from itertools.repeat(4.0)


class KindGone(logging.Filter):
    """kopf logs a watched kind that went away (404: our CRDs deleted) as an error
    with a traceback, once per watcher, then stops; we start it again and it waits for
    the CRDs. Expected and handled: one line, as a warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and getattr(exc, "status", None) == 404:
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_kopf_when_a_kind_goes_away() -> None:
    for name in ("kopf._core.reactor.orchestration", "kopf._core.reactor.running"):
        logging.getLogger(name).addFilter(KindGone())


def build_registry(controller: Controller, conn: Connection) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    auth = Authenticator(conn)

    @kopf.on.login(registry=registry)
    async def login(**_: Any) -> kopf.ConnectionInfo:
        # kopf calls this at start, on a 401 and at `expiration`: always fetch afresh
        # (token file re-read, exec plugin re-run). kopf's own session cannot honour
        # tls-server-name (see docs/compatibility.md).
        cred = await auth.renew()
        cert = cred.cert_pem or conn.cert_data
        return kopf.ConnectionInfo(
            server=conn.server, ca_path=conn.ca_file, ca_data=conn.ca_data,
            insecure=not conn.verify, proxy_url=conn.proxy_url,
            certificate_path=None if cert else conn.cert_file,
            private_key_path=None if cert else conn.key_file,
            certificate_data=cert, private_key_data=cred.key_pem if cred.cert_pem
            else conn.key_data,
            token=cred.token, scheme="Bearer" if cred.token else None,
            expiration=None if cred.renew_at is None
            else datetime.datetime.fromtimestamp(cred.renew_at, datetime.UTC),
        )

    @kopf.on.startup(registry=registry)
    async def startup(**_: Any) -> None:
        # The start-up sync ran before kopf (see __main__). kopf may be started again
        # after it stopped (a watched kind went away): list the configuration afresh,
        # waiting for the CRDs, before its watches resume.
        await controller.resync_configuration()

    @kopf.on.event("metallb.io", "v1beta1", "ipaddresspools", registry=registry)
    async def pool(event: kopf.RawEvent, **_: Any) -> None:
        controller.on_pool_event(event.get("type"), event["object"])

    @kopf.on.event("metallb.io", "v1beta1", "l2advertisements", registry=registry)
    async def l2adv(event: kopf.RawEvent, **_: Any) -> None:
        controller.on_l2adv_event(event.get("type"), event["object"])

    # BGP mode's kinds (pools' Advertised condition). CRDs without them (older than BGP
    # mode): kopf warns once at its start and serves the other kinds.
    @kopf.on.event("metallb.io", "v1beta1", BGPADVS, registry=registry)
    async def bgpadv(event: kopf.RawEvent, **_: Any) -> None:
        controller.on_bgp_event(BGPADVS, event.get("type"), event["object"])

    @kopf.on.event("metallb.io", "v1beta1", COMMUNITIES, registry=registry)
    async def community(event: kopf.RawEvent, **_: Any) -> None:
        controller.on_bgp_event(COMMUNITIES, event.get("type"), event["object"])

    @kopf.on.event("v1", "namespaces", registry=registry)
    async def namespace(event: kopf.RawEvent, **_: Any) -> None:
        controller.on_namespace_event(event.get("type"), event["object"])

    return registry

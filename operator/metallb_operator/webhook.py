"""The validating admission webhook: HTTPS, admission.k8s.io/v1 AdmissionReview in/out,
on MetalLB's paths. Decisions are `admission.decide` (pure); this module only serves.

Every replica serves it, leader or standby (as MetalLB's controller replicas do): the
objects a decision needs are listed from the API server per request, not taken from
the leader's caches. Like MetalLB's webhook (controller-runtime's uncached API reader),
this sees a pool created a millisecond earlier: a watch-fed cache may not have it yet,
and then two overlapping pools in one `kubectl apply -f` would both get in. A list that
fails or is slow answers 503, never a decision made on missing data: the
ValidatingWebhookConfiguration's failurePolicy decides (Fail refuses, Ignore admits).

TLS: tls.crt / tls.key in a directory (a mounted Secret, written by cert-manager or the
chart), read again when they change, so a renewed certificate needs no restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from metallb_api import API_VERSION
from metallb_kube.client import ApiError, KubeClient
from metallb_operator.admission import (
    KIND_OF_PATH,
    BadReview,
    Decision,
    Operation,
    decide,
    parse_review,
    response,
)
from metallb_operator.settings import WebhookSettings

log = logging.getLogger("metallb.webhook")


class Webhook:
    def __init__(self, settings: WebhookSettings, namespace: str, client: KubeClient) -> None:
        self.settings = settings
        self.namespace = namespace
        self.client = client
        self.serving: str | None = "not listening yet"  # None once serving (readiness)
        self._stamp: tuple[float, float] = (0.0, 0.0)
        self._base = f"/apis/{API_VERSION}/namespaces/{namespace}"

    # -- TLS ------------------------------------------------------------------------
    def _files_stamp(self) -> tuple[float, float]:
        s = self.settings
        return os.stat(s.cert_file).st_mtime, os.stat(s.key_file).st_mtime

    def _load(self, ctx: ssl.SSLContext) -> None:
        stamp = self._files_stamp()
        ctx.load_cert_chain(self.settings.cert_file, self.settings.key_file)
        self._stamp = stamp

    def _reload_if_changed(self, ctx: ssl.SSLContext) -> None:
        try:
            if self._files_stamp() == self._stamp:
                return
            # In place: new handshakes use the new pair, open connections keep theirs.
            self._load(ctx)
            log.info("webhook certificate reloaded", extra={"event": "certReloaded"})
        except (OSError, ssl.SSLError) as exc:
            # A Secret update is written as a symlink swap; a half-seen pair is retried.
            log.warning("webhook certificate not reloaded", extra={
                "event": "certError", "error": str(exc)})

    # -- serving --------------------------------------------------------------------
    async def run(self) -> None:
        """Serve until cancelled (a supervised task: a missing certificate is retried)."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            self._load(ctx)
        except (OSError, ssl.SSLError) as exc:
            self.serving = f"no certificate in {self.settings.cert_dir}: {exc}"
            raise
        app = web.Application()
        for path in KIND_OF_PATH:
            app.router.add_post(path, self.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.settings.host, self.settings.port, ssl_context=ctx)
            try:
                await site.start()
            except OSError as exc:
                self.serving = f"cannot listen on {self.settings.port}: {exc}"
                raise
            self.serving = None
            log.info("webhook serving", extra={"event": "webhookServing",
                                               "reason": f"{self.settings.host}:"
                                                         f"{self.settings.port}"})
            while True:
                await asyncio.sleep(self.settings.reload_period)
                self._reload_if_changed(ctx)
        finally:
            self.serving = "stopped"
            await runner.cleanup()

    def drain(self) -> None:
        """Shutting down: readiness fails (the Service's endpoints drop this Pod, so the
        apiserver sends new reviews elsewhere) while reviews still get answers, with
        `Connection: close`: the apiserver opens its next connection to a Pod that stays.
        Idle connections are not closed here: a review the apiserver writes on one just
        as it closes fails with EOF (a 500 under failurePolicy Fail); Go retries only a
        request it had not written yet, so closing early makes that race likelier."""
        self.serving = "shutting down"

    def check(self) -> str | None:
        """Readiness: the Service sends admission requests to Ready Pods only."""
        return None if self.serving is None else f"webhook: {self.serving}"

    async def _list(self, plural: str) -> list[Mapping[str, Any]]:
        items, _ = await asyncio.wait_for(self.client.list_all(f"{self._base}/{plural}"),
                                          timeout=self.settings.list_timeout)
        return items

    async def handle(self, request: web.Request) -> web.Response:
        kind = KIND_OF_PATH[request.path]
        try:
            req = parse_review(await request.json(), kind)
        except (BadReview, ValueError) as exc:
            return web.Response(status=400, text=f"{exc}\n")
        decision: Decision
        if req.operation is Operation.DELETE:
            decision = decide(req, self.namespace, (), ())
        else:
            try:
                pools = await self._list("ipaddresspools")
                advs = await self._list("l2advertisements") if kind == "L2Advertisement" else []
            except (ApiError, TimeoutError, OSError) as exc:
                # Not a decision: the failurePolicy applies (an empty list would admit
                # an overlap with a pool we could not see).
                log.warning("admission without a decision", extra={
                    "event": "webhookError", "pool": req.name, "error": str(exc)})
                return web.Response(status=503, text=f"cannot list the current "
                                                     f"configuration: {exc}\n")
            decision = decide(req, self.namespace, pools, advs)
        log.log(logging.INFO if decision.allowed else logging.WARNING,
                "admitted" if decision.allowed else "refused", extra={
                    "event": "admission", "pool": f"{req.kind}/{req.namespace}/{req.name}",
                    "reason": str(decision.why), "error": decision.message or None})
        resp = web.json_response(response(req.uid, decision))
        if self.serving is not None:  # draining: no connection to us is kept alive
            resp.force_close()
        return resp

"""The speaker controller's recompute: a Service or EndpointSlice event re-decides only
that Service; a membership change re-decides everything; whatever the order of events,
the incremental state (decisions, owned addresses, metrics) is what a full election
from scratch gives. Driven through the watch-event handlers with real-looking objects,
no API server (the shell's Kubernetes behaviour is tested against the real one in
test_speaker_cluster.py)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from prometheus_client import generate_latest

from metallb_api.addresses import IP, parse_ip
from metallb_api.config import build_config
from metallb_speaker.announce import MembershipOnly
from metallb_speaker.controller import LOG_EACH, SpeakerController, _StatusQueue
from metallb_speaker.election import Decision, Election, Inputs, Reason, ServiceState
from metallb_speaker.membership import View
from metallb_speaker.metrics import SpeakerMetrics
from metallb_speaker.settings import SpeakerSettings

pytestmark = pytest.mark.unit
ME = "n1"
NODES = ("n1", "n2", "n3")


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def normal(self, ref: Any, reason: str, message: str) -> None:
        self.events.append((ref.name, reason))

    def warning(self, ref: Any, reason: str, message: str) -> None:
        self.events.append((ref.name, reason))


class CountingElection(Election):
    def __init__(self) -> None:
        super().__init__()
        self.asked: list[set[str]] = []
        self.redecided: list[set[str]] = []

    def decide_all(self, me: str, services: Mapping[str, ServiceState], inp: Inputs,
                   previous: Mapping[str, Decision] | None = None,
                   complete: bool = False) -> Any:
        self.asked.append(set(services))
        return super().decide_all(me, services, inp, previous, complete)

    def redecide(self, me: str, inp: Inputs) -> dict[str, Decision]:
        out = super().redecide(me, inp)
        self.redecided.append(set(out))
        return out


class Announcer(MembershipOnly):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.probed: set[IP] = set()

    def set_owned(self, owned: Mapping[IP, tuple[str, ...]],
                  probe: frozenset[IP] = frozenset(), quiet: frozenset[IP] = frozenset()
                  ) -> None:
        self.calls += 1
        self.probed |= probe
        super().set_owned(owned, probe, quiet)


def svc(name: str, *ips: str, ns: str = "apps", local: bool = False) -> dict[str, Any]:
    return {"metadata": {"namespace": ns, "name": name, "uid": f"uid-{name}",
                         "annotations": {"metallb.io/ip-allocated-from-pool": "p"}},
            "spec": {"type": "LoadBalancer",
                     "externalTrafficPolicy": "Local" if local else "Cluster"},
            "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}}


def eps(name: str, nodes: tuple[str, ...], ready: bool = True, ns: str = "apps"
        ) -> dict[str, Any]:
    return {"metadata": {"namespace": ns, "name": f"{name}-x",
                         "labels": {"kubernetes.io/service-name": name}},
            "endpoints": [{"nodeName": n, "conditions": {"ready": ready}} for n in nodes]}


@pytest.fixture
def ctl() -> Iterator[SpeakerController]:
    loop = asyncio.new_event_loop()
    c = SpeakerController(SpeakerSettings(ME, kube_proxy_healthz_port=0), None,  # type: ignore[arg-type]
                          Recorder(), SpeakerMetrics(), Announcer())  # type: ignore[arg-type]
    c.election = CountingElection()
    c._loop = loop
    pools = {"p": {"metadata": {"name": "p"}, "spec": {"addresses": ["198.18.0.0/16"]}}}
    advs = {"a": {"metadata": {"name": "a"}, "spec": {"ipAddressPools": ["p"]}}}
    c._pools, c._advs = dict(pools), dict(advs)
    c.config = build_config(pools.values(), advs.values())
    for n in NODES:
        c._node_event("ADDED", {"metadata": {"name": n}})
    c.view = View(frozenset(NODES), frozenset(NODES), 1, joined=True)
    c.synced.set()
    c._recompute()
    try:
        yield c
    finally:
        loop.close()


def serve(c: SpeakerController, name: str, ip: str) -> None:
    """A LoadBalancer Service with `ip` and an endpoint serving on every node."""
    c._service_event("ADDED", svc(name, ip))
    c._slice_event("ADDED", eps(name, NODES))


def settle(c: SpeakerController) -> None:
    """Run what the events scheduled (the loop's call_soon): the recompute, and the
    paperwork it leaves for after the hand-off (Events, status writes, metrics)."""
    assert c._loop is not None
    for _ in range(3):  # the recompute, then what it queued
        c._loop.run_until_complete(asyncio.sleep(0))


def full_election(c: SpeakerController) -> dict[str, tuple[str | None, Reason]]:
    inp = Inputs(c.nodes, c.view.alive, c.view.ready, c.config, c.s.honor_exclude_label)
    return {k: (d.owner, d.reason) for k, d in Election().decide_all(ME, c.services, inp).items()}


def owned_from(decisions: dict[str, tuple[str | None, Reason]], c: SpeakerController
               ) -> set[IP]:
    return {parse_ip(ip) for k, (_, reason) in decisions.items() if reason is Reason.OWNER
            for ip in c.services[k].ips}


def test_a_service_event_re_decides_only_that_service(ctl: SpeakerController) -> None:
    for i in range(30):
        serve(ctl, f"s{i}", f"198.18.1.{i + 1}")
    settle(ctl)
    election = ctl.election
    assert isinstance(election, CountingElection)
    election.asked.clear()
    ctl._slice_event("MODIFIED", eps("s7", NODES, ready=False))
    settle(ctl)
    ctl._service_event("MODIFIED", svc("s8", "198.18.2.8"))
    ctl._service_event("DELETED", svc("s9", "198.18.1.10"))
    settle(ctl)
    assert election.asked == [{"apps/s7"}, {"apps/s8"}]  # s9 deleted: nothing to decide
    assert ctl.decisions["apps/s7"].reason is Reason.NO_ENDPOINTS
    assert "apps/s9" not in ctl.decisions
    # a membership change re-decides once per group of equal decisions, and hands on
    # only the Services whose decision changed: those n3 owned
    n3_owned = {k for k, d in ctl.decisions.items() if d.owner == "n3"}
    assert n3_owned and len(n3_owned) < len(ctl.services)
    asked = len(election.asked)
    ctl._apply_view(View(frozenset({"n1", "n2"}), frozenset({"n1", "n2"}), 2, joined=True), [])
    assert election.redecided[-1] == n3_owned
    assert len(election.asked) == asked + 1 and election.asked[-1] == set()  # nothing dirty
    assert not any(d.owner == "n3" for d in ctl.decisions.values())


def test_incremental_state_equals_a_full_election(ctl: SpeakerController) -> None:
    """Random Service, EndpointSlice, Node and membership events; after each step the
    decisions, the owned addresses and the decisions metric are a full election's."""
    rnd = random.Random(11)
    names = [f"s{i}" for i in range(40)]
    for step in range(400):
        name = rnd.choice(names)
        what = rnd.random()
        if what < 0.35:
            ips = [f"198.18.3.{rnd.randrange(1, 30)}"]  # few addresses: some shared
            if rnd.random() < 0.2:
                ips.append(f"198.18.4.{rnd.randrange(1, 5)}")
            ctl._service_event("MODIFIED", svc(name, *ips, local=rnd.random() < 0.3))
        elif what < 0.45:
            ctl._service_event("DELETED", svc(name))
        elif what < 0.8:
            nodes = tuple(n for n in NODES if rnd.random() < 0.6)
            ctl._slice_event("MODIFIED", eps(name, nodes, ready=rnd.random() < 0.8))
        elif what < 0.85:
            ctl._slice_event("DELETED", eps(name, ()))
        elif what < 0.9:
            node = rnd.choice(NODES)
            labels = {"node.kubernetes.io/exclude-from-external-load-balancers": ""} \
                if rnd.random() < 0.3 else {}
            ctl._node_event("MODIFIED", {"metadata": {"name": node, "labels": labels}})
        else:
            alive = frozenset(n for n in NODES if n == ME or rnd.random() < 0.6)
            ready = frozenset(n for n in alive if rnd.random() < 0.8)
            ctl._apply_view(View(alive, ready, step, joined=True), [])
        if rnd.random() < 0.7:  # sometimes several events share one recompute
            settle(ctl)
            want = full_election(ctl)
            got = {k: (d.owner, d.reason) for k, d in ctl.decisions.items()}
            assert got == want, step
            announcer = ctl.announcer
            assert isinstance(announcer, Announcer)
            assert set(announcer.owned) == owned_from(want, ctl), step
            counts = {r: sum(1 for _, reason in want.values() if reason is r) for r in Reason}
            for reason in Reason:
                assert ctl.metrics.decisions.labels(str(reason))._value.get() == \
                    counts[reason], (step, reason)


def test_a_shared_address_stays_owned_while_one_holder_owns_it(ctl: SpeakerController
                                                                 ) -> None:
    ip = next(f"198.18.5.{i}" for i in range(1, 255)
              if Election().ranking(f"198.18.5.{i}", frozenset(NODES))[0] == ME)
    for name in ("a", "b"):
        serve(ctl, name, ip)
    settle(ctl)
    announcer = ctl.announcer
    assert isinstance(announcer, Announcer)
    assert parse_ip(ip) in announcer.owned
    ctl._slice_event("MODIFIED", eps("a", NODES, ready=False))  # a: no endpoint now
    settle(ctl)
    assert ctl.decisions["apps/a"].reason is Reason.NO_ENDPOINTS
    assert parse_ip(ip) in announcer.owned  # b still owns it
    ctl._service_event("DELETED", svc("b"))
    settle(ctl)
    assert parse_ip(ip) not in announcer.owned


def test_back_from_not_joined_announces_what_is_still_ours(ctl: SpeakerController
                                                            ) -> None:
    for i in range(12):
        serve(ctl, f"s{i}", f"198.18.9.{i + 1}")
    settle(ctl)
    announcer = ctl.announcer
    assert isinstance(announcer, Announcer)
    mine = dict(announcer.owned)
    assert mine
    view = ctl.view
    ctl._apply_view(View(view.alive, view.ready, view.version + 1, joined=False), [])
    assert announcer.owned == {}
    ctl._apply_view(View(view.alive, view.ready, view.version + 2, joined=True), [])
    assert announcer.owned == mine


def test_nothing_changed_nothing_sent(ctl: SpeakerController) -> None:
    ctl._service_event("ADDED", svc("s", "198.18.6.1"))
    ctl._slice_event("ADDED", eps("s", NODES))
    settle(ctl)
    announcer = ctl.announcer
    assert isinstance(announcer, Announcer)
    calls = announcer.calls
    election = ctl.election
    assert isinstance(election, CountingElection)
    asked = len(election.asked)
    ctl._slice_event("MODIFIED", eps("s", NODES))  # same endpoints: no recompute at all
    settle(ctl)
    # the same members (e.g. one suspected, or cleared): no election at all
    view = ctl.view
    ctl._apply_view(View(view.alive, view.ready, view.version + 1, joined=True), [])
    assert len(election.asked) == asked
    assert announcer.calls == calls


def test_announced_metric_is_read_from_the_decisions(ctl: SpeakerController) -> None:
    ips = [f"198.18.7.{i}" for i in range(1, 40)]
    for i, ip in enumerate(ips):
        serve(ctl, f"s{i}", ip)
    settle(ctl)
    ctl.metrics.node = ME
    ctl.metrics.announced_source = ctl._announced
    text = generate_latest(ctl.metrics.registry).decode()
    mine = [k for k, d in ctl.decisions.items() if d.reason is Reason.OWNER]
    assert 0 < len(mine) < len(ips)
    for key in mine:
        ip = ctl.decisions[key].ips[0]
        assert (f'metallb_speaker_announced{{ip="{ip}",node="{ME}",protocol="layer2",'
                f'service="{key}"}} 1.0') in text
    assert text.count("metallb_speaker_announced{") == len(mine)


def test_many_changes_are_logged_as_a_summary(ctl: SpeakerController,
                                              caplog: pytest.LogCaptureFixture) -> None:
    for i in range(LOG_EACH * 3):
        serve(ctl, f"s{i}", f"198.18.8.{i + 1}")
    with caplog.at_level(logging.INFO, logger="metallb.speaker"):
        settle(ctl)
    events = [getattr(r, "event", None) for r in caplog.records]
    assert "election" not in events
    summaries = [r for r in caplog.records if getattr(r, "event", None) == "elections"]
    assert sum(getattr(r, "count", 0) for r in summaries) == LOG_EACH * 3
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="metallb.speaker"):
        ctl._slice_event("MODIFIED", eps("s0", NODES, ready=False))
        settle(ctl)
    one = [r for r in caplog.records if getattr(r, "event", None) == "election"]
    assert [(r.service, r.reason) for r in one] == [("apps/s0", "noEndpoints")]  # type: ignore[attr-defined]


def test_status_queue_keeps_the_latest_wish_per_service() -> None:
    async def run() -> list[tuple[str, bool]]:
        q = _StatusQueue()
        for item in (("a", True), ("b", True), ("a", False), ("c", False), ("b", True)):
            q.put_nowait(item)
        assert q.qsize() == 3
        got = [await q.get() for _ in range(3)]
        waiter = asyncio.ensure_future(q.get())
        await asyncio.sleep(0)
        assert not waiter.done()
        q.put_nowait(("d", True))
        got.append(await asyncio.wait_for(waiter, 1))
        return got

    assert asyncio.run(run()) == [("a", False), ("b", True), ("c", False), ("d", True)]

"""Control-plane outages on a control plane of its own (the other tests share theirs):
the API server restarted after being away (an upgrade), and every component cut off
from a working API while users keep creating Services. Through both, the addresses
already announced keep answering (a client probes every 10 ms), no process exits, and
once the API is back the operator resumes (it paused its writes instead of exiting)
and new Services get addresses and answers within seconds."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from metallb_lab.controlplane import ControlPlane, ControlPlaneConfig
from metallb_lab.kube import apply_crds, wait_for
from metallb_lab.netlab import NetLab
from metallb_lab.netns import Forwarder
from metallb_lab.operator import OperatorProcess
from metallb_lab.prober import Outcome

pytestmark = pytest.mark.netns
OUTAGE = 40.0  # well past the Lease's 15 s: the operator must pause, not exit
BACK_WITHIN = 30.0  # a generous bound against hangs; the figures are printed


@dataclass
class Outage:
    cp: ControlPlane
    lab: NetLab
    operator: OperatorProcess
    operator_link: Forwarder  # the operator reaches the API through this relay

    def alive(self) -> None:
        assert self.operator.proc is not None and self.operator.proc.poll() is None, \
            self.operator.logs()[-3000:]
        for node in self.lab.nodes:
            assert node.speaker is not None and node.speaker.poll() is None, \
                self.lab.speaker_log(node).read_text()[-3000:]

    def events(self, name: str) -> int:
        return len(self.operator.log_events(name))

    def recovered(self, since: float, name: str, probe: subprocess.Popen[str], kept: str,
                  vip: str, what: str) -> None:
        """The API is reachable again since `since`: Service `name` gets its address
        and answers; the client probing `kept` (at `vip`) throughout saw no failure;
        `kept` kept its address; nothing exited."""
        lab = self.lab
        (new,) = wait_for(lambda: lab.ingress(name) or None, timeout=BACK_WITHIN,
                          what=f"address of {name}")
        assigned = time.monotonic() - since
        lab.wait_vip_on_nodes(new)
        answered = assigned + _answers(lab, new, BACK_WITHIN)
        seen = Outcome.parse(probe.communicate(timeout=60)[0])
        print(f"{what}: {name} assigned after {assigned:.1f} s, answering after "
              f"{answered:.1f} s; {kept}: {seen.requests} requests, {seen.failed} failed")
        self.alive()
        assert seen.failed == 0, seen
        assert lab.ingress(kept) == [vip]


@pytest.fixture(scope="module")
def outage() -> Iterator[Outage]:
    with ControlPlane(ControlPlaneConfig()) as cp:
        apply_crds(cp)
        lab_id = uuid.uuid4().hex[:5]
        with NetLab(cp, nodes=3, namespace=f"mlb-{lab_id}", lb_class=f"metallb.io/o-{lab_id}",
                    speaker_args=("--hold-down=1",)) as lab:
            lab.l2_pool("lab", "198.18.0.100-198.18.0.199")
            lab.apps = f"apps-{lab_id}"
            lab.api.create("/api/v1/namespaces", {"metadata": {"name": lab.apps}})
            host, port = cp.server.removeprefix("https://").rsplit(":", 1)
            link = Forwarder(("127.0.0.1", 0), (host, int(port)))
            link.start()
            kubeconfig = cp.write_kubeconfig(lab.work / "operator.kubeconfig", cp.admin,
                                             "admin", server=f"https://127.0.0.1:{link.port}")
            op = OperatorProcess(cp, lab.namespace, lb_class=lab.lb_class,
                                 kubeconfig=kubeconfig)
            try:
                op.start()
                lab.start_speakers()
                lab.wait_ready()
                yield Outage(cp, lab, op, link)
            finally:
                op.stop()
                link.close()


def _answers(lab: NetLab, vip: str, timeout: float) -> float:
    started = time.monotonic()
    wait_for(lambda: lab.curl(vip, timeout=0.5), timeout=timeout, what=f"curl {vip}")
    return time.monotonic() - started


def test_api_server_restarted_after_an_outage(outage: Outage) -> None:
    lab, cp, op = outage.lab, outage.cp, outage.operator
    (vip,) = lab.service("steady")
    _answers(lab, vip, 20)
    paused_before = outage.events("leaderPaused")
    probe = lab.prober(vip, duration=OUTAGE + 8)
    time.sleep(2)
    cp.stop_apiserver()
    time.sleep(OUTAGE)
    outage.alive()
    assert op.metric("metallb_controller_leading") == 0.0, "still writing without a Lease"
    cp.start_apiserver()
    back = time.monotonic()
    lab.create_service("after")
    outage.recovered(back, "after", probe, "steady", vip, "API server back")
    assert outage.events("leaderPaused") > paused_before
    assert outage.events("leaderResumed") >= outage.events("leaderPaused")
    assert op.metric("metallb_controller_leading") == 1.0


def test_components_cut_off_while_services_are_created(outage: Outage) -> None:
    lab, op = outage.lab, outage.operator
    (vip,) = lab.service("kept")
    _answers(lab, vip, 20)
    probe = lab.prober(vip, duration=OUTAGE + 4)
    time.sleep(2)
    links = [outage.operator_link, *(n.forwarder for n in lab.nodes if n.forwarder)]
    for link in links:
        link.cut()
    try:
        lab.create_service("during")  # users still reach the API; our components do not
        time.sleep(OUTAGE)
        outage.alive()
        assert lab.ingress("during") == [], "assigned by an operator cut off from the API?"
        assert op.metric("metallb_controller_leading") == 0.0
    finally:
        for link in links:
            link.restore()
    outage.recovered(time.monotonic(), "during", probe, "kept", vip, "reconnected")
    wait_for(lambda: op.metric("metallb_controller_leading") == 1.0, timeout=10,
             what="operator writing again")

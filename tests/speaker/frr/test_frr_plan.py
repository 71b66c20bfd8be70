"""frr.diff (what a change costs: prefix moves are a few lines, not a renumbering) and
frr.plan (when it is pushed: prefixes at once, configuration debounced, full after a
loss or a refusal), on a clock the test moves."""

from __future__ import annotations

from pathlib import Path

import pytest

from metallb_speaker.frr.diff import diff, parse
from metallb_speaker.frr.plan import ApplySettings, Planner, PushKind

pytestmark = pytest.mark.unit
GOLDEN = Path(__file__).parent / "golden"


def conf(prefixes: list[str], *, peer: str = "198.18.0.1", hold: int = 90) -> str:
    """A rendered-like configuration announcing `prefixes` to one peer."""
    lists = [f"ip prefix-list {peer}-allowed-ipv4 seq {i} permit {p}"
             for i, p in enumerate(prefixes, 1)] or \
        [f"ip prefix-list {peer}-allowed-ipv4 seq 1 deny any"]
    return "\n".join([
        "hostname node-a", "!", f"route-map {peer}-in deny 20", "exit", *lists,
        f"route-map {peer}-out permit 1", f" match ip address prefix-list {peer}-allowed-ipv4",
        "exit", "!", "router bgp 64512", " no bgp default ipv4-unicast",
        f" neighbor {peer} remote-as 64600", f" neighbor {peer} timers {hold // 3} {hold}",
        " address-family ipv4 unicast", *(f"  network {p}" for p in prefixes),
        f"  neighbor {peer} activate", f"  neighbor {peer} route-map {peer}-in in",
        f"  neighbor {peer} route-map {peer}-out out", " exit-address-family", "exit",
        "end", ""])


MANY = [f"10.{i // 256}.{i % 256}.1/32" for i in range(10_000)]


@pytest.mark.parametrize(("old", "new", "prefix_only", "want"), [
    pytest.param(conf(["10.0.0.1/32"]), conf(["10.0.0.1/32", "10.0.0.2/32"]), True, [
        "ip prefix-list 198.18.0.1-allowed-ipv4 permit 10.0.0.2/32",
        "router bgp 64512", " address-family ipv4 unicast", "  network 10.0.0.2/32",
        " exit-address-family", "exit"], id="one prefix added"),
    pytest.param(conf(["10.0.0.1/32", "10.0.0.2/32"]), conf(["10.0.0.2/32"]), True, [
        "no ip prefix-list 198.18.0.1-allowed-ipv4 permit 10.0.0.1/32",
        "router bgp 64512", " address-family ipv4 unicast", "  no network 10.0.0.1/32",
        " exit-address-family", "exit"], id="first of two removed: no renumbering"),
    pytest.param(conf(["10.0.0.1/32"]), conf([]), True, [
        "no ip prefix-list 198.18.0.1-allowed-ipv4 permit 10.0.0.1/32",
        "ip prefix-list 198.18.0.1-allowed-ipv4 deny any",
        "router bgp 64512", " address-family ipv4 unicast", "  no network 10.0.0.1/32",
        " exit-address-family", "exit"], id="last one withdrawn"),
    pytest.param(conf(["10.0.0.1/32"]), conf(["10.0.0.1/32"], hold=9), False, [
        "router bgp 64512", " no neighbor 198.18.0.1 timers 30 90",
        " neighbor 198.18.0.1 timers 3 9", "exit"], id="timers"),
    pytest.param(conf(["10.0.0.1/32"]),
                 conf(["10.0.0.1/32"]).replace("remote-as 64600", "remote-as 64601"), False, [
        "router bgp 64512", " no neighbor 198.18.0.1", " neighbor 198.18.0.1 remote-as 64601",
        " neighbor 198.18.0.1 timers 30 90", "exit",
        "router bgp 64512", " address-family ipv4 unicast",
        "  neighbor 198.18.0.1 activate",
        "  neighbor 198.18.0.1 route-map 198.18.0.1-in in",
        "  neighbor 198.18.0.1 route-map 198.18.0.1-out out",
        " exit-address-family", "exit"], id="peer AS changed: neighbor written again"),
    pytest.param(conf(["10.0.0.1/32"]), conf(["10.0.0.1/32"]), True, [], id="same"),
])
def test_diff(old: str, new: str, prefix_only: bool, want: list[str]) -> None:
    d = diff(old, new)
    assert d.commands == want
    if want:
        assert d.prefix_only is prefix_only


def test_diff_of_thousands_is_the_change_only() -> None:
    d = diff(conf(MANY), conf([*MANY[1:], "192.0.2.1/32"]))
    assert d.prefix_only
    assert len(d.commands) == 4 + 4  # 2 prefix-list lines, 2 network lines, contexts


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.conf")), ids=lambda p: p.stem)
def test_from_nothing_and_back(path: Path) -> None:
    text = path.read_text()
    assert not diff(text, text)
    there, back = diff("", text), diff(text, "")
    assert there and back and not there.prefix_only
    # every block of the file is entered, every one deleted
    blocks = [k for k, v in parse(text).children.items() if v is not None]
    for header in blocks:
        assert header in there.commands
        if not header.startswith("bfd"):
            assert f"no {header}" in back.commands


S = ApplySettings(debounce=0.3, max_delay=2.0, retry_min=1.0, retry_max=4.0)


def test_plan_first_push_is_full_and_at_once() -> None:
    p = Planner(S)
    assert p.step(0.0).action == "idle"
    p.want(conf(["10.0.0.1/32"]), 0.0)
    step = p.step(0.0)
    assert (step.action, step.kind) == ("push", PushKind.FULL)
    p.pushed(step.target)
    assert p.synced and p.step(0.1).action == "idle"


def test_plan_prefixes_at_once_config_debounced() -> None:
    p = Planner(S)
    p.want(conf([]), 0.0)
    p.pushed(p.step(0.0).target)
    p.want(conf(["10.0.0.1/32"]), 1.0)
    step = p.step(1.0)
    assert (step.action, step.kind) == ("push", PushKind.PREFIXES)
    p.pushed(step.target)
    p.want(conf(["10.0.0.1/32"], hold=9), 2.0)
    assert p.step(2.0) .action == "wait" and p.step(2.0).delay == pytest.approx(0.3)
    p.want(conf(["10.0.0.1/32"], hold=12), 2.2)  # still changing: quiet period restarts
    assert p.step(2.4).action == "wait" and p.step(2.4).delay == pytest.approx(0.1)
    step = p.step(2.5)
    assert (step.action, step.kind) == ("push", PushKind.CONFIG)
    assert " neighbor 198.18.0.1 timers 4 12" in step.commands


def test_plan_config_changing_all_the_time_is_pushed_after_max_delay() -> None:
    p = Planner(S)
    p.want(conf([]), 0.0)
    p.pushed(p.step(0.0).target)
    for i, hold in enumerate(range(9, 90, 3)):
        t = 10.0 + 0.25 * i  # changes every 0.25 s, never quiet for 0.3 s
        p.want(conf([], hold=hold), t)
        if p.step(t).action == "push":
            break
    assert t == 12.0  # first change + max_delay


def test_plan_after_loss_or_refusal() -> None:
    p = Planner(S)
    p.want(conf(["10.0.0.1/32"]), 0.0)
    p.pushed(p.step(0.0).target)
    p.forget()  # FRR lost or restarted
    assert p.step(1.0).kind is PushKind.FULL
    p.refused(PushKind.CONFIG, 1.0)  # a refused difference: full push at once
    assert p.step(1.0).kind is PushKind.FULL
    p.refused(PushKind.FULL, 1.0)  # a refused full push: back off, doubling
    assert p.step(1.5).action == "wait"
    assert p.step(2.0).kind is PushKind.FULL
    p.refused(PushKind.FULL, 2.0)
    assert p.step(3.9).action == "wait" and p.step(4.0).kind is PushKind.FULL
    p.pushed(p.step(4.0).target)
    assert p.synced

"""Real frames through the packet-socket shell, between two throwaway network namespaces.

Layout: namespace `client` (veth-c: 198.18.7.1/24, fd00:7::1/64) <-> namespace `speaker`
(veth-s, no addresses). A responder thread built from `arp_answer`/`ndp_answer` answers
for 198.18.7.100 and fd00:7::100 on the speaker side; the client side sends scapy-built
frames (and lets its kernel resolve the addresses) and checks the replies with scapy.
Sockets are created in the namespaces by short-lived threads that `setns` first: a
socket keeps the namespace it was created in, whichever thread uses it later.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import secrets
import select
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.layers.l2 import ARP, Ether
from scapy.utils6 import in6_getnsma, in6_getnsmac

from metallb_speaker.dataplane.rawsock import (
    PacketSocket,
    SolicitedNodeGroups,
    interface_index,
    interface_mac,
    join_solicited_node_group,
    open_packet_socket,
)
from metallb_speaker.wire import bpf
from metallb_speaker.wire.arp import arp_answer, arp_request
from metallb_speaker.wire.ethernet import DropReason, format_mac
from metallb_speaker.wire.ndp import ndp_answer

pytestmark = pytest.mark.netns

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)

CLIENT_IF, SPEAKER_IF = "veth-c", "veth-s"
CLIENT_IP, CLIENT_IP6 = "198.18.7.1", "fd00:7::1"
VIP, VIP6 = "198.18.7.100", "fd00:7::100"
UNOWNED = "198.18.7.99"
BCAST = "ff:ff:ff:ff:ff:ff"


def ip4(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


def ip6(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def in_netns(name: str, fn: Callable[[], T]) -> T:
    """Run `fn` in a fresh thread that has joined network namespace `name` (Python 3.11
    has no os.setns, hence libc); sockets it creates stay in that namespace."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            fd = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {name}")
            finally:
                os.close(fd)
            outcome.append(fn())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target, name=f"netns-{name}")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]


@dataclass
class Lab:
    client: str
    speaker: str


@pytest.fixture
def lab() -> Iterator[Lab]:
    suffix = secrets.token_hex(3)
    client, speaker = f"mlbw-{suffix}c", f"mlbw-{suffix}s"
    created: list[str] = []
    try:
        for ns in (client, speaker):
            sh("ip", "netns", "add", ns)
            created.append(ns)
        # Created inside `client` with its peer placed straight into `speaker`: the pair
        # never exists in the host's namespace.
        sh("ip", "-n", client, "link", "add", "name", CLIENT_IF, "type", "veth",
           "peer", "name", SPEAKER_IF, "netns", speaker)  # fmt: skip
        sh("ip", "-n", client, "addr", "add", f"{CLIENT_IP}/24", "dev", CLIENT_IF)
        sh("ip", "-n", client, "addr", "add", f"{CLIENT_IP6}/64", "dev", CLIENT_IF, "nodad")
        for ns, dev in ((client, CLIENT_IF), (speaker, SPEAKER_IF)):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "link", "set", dev, "up")
        yield Lab(client, speaker)
    finally:
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


@dataclass
class Responder:
    """The speaker's data plane in miniature: read, answer or count the drop reason."""

    arp: PacketSocket
    ndp: PacketSocket
    owned4: set[bytes]
    owned6: set[bytes]
    reasons: Counter[str] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            ready, _, _ = select.select([self.arp, self.ndp], [], [], 0.05)
            for sock in ready:
                frame = sock.recv()
                if sock is self.arp:
                    answer = arp_answer(frame, self.owned4, sock.mac)
                else:
                    answer = ndp_answer(frame, self.owned6, sock.mac)
                if isinstance(answer, DropReason):
                    self.reasons[answer] += 1
                else:
                    kind = "unicast" if frame[38] != 0xFF and sock is self.ndp else "answered"
                    self.reasons[kind] += 1
                    sock.send(answer)


@pytest.fixture
def responder(lab: Lab) -> Iterator[Responder]:
    def open_both() -> tuple[PacketSocket, PacketSocket]:
        arp = open_packet_socket(SPEAKER_IF, bpf.arp_requests())
        try:
            return arp, open_packet_socket(SPEAKER_IF, bpf.ndp_solicitations())
        except BaseException:
            arp.close()
            raise

    arp, ndp = in_netns(lab.speaker, open_both)
    resp = Responder(arp, ndp, {ip4(VIP)}, {ip6(VIP6)})
    thread = threading.Thread(target=resp.run, name="responder")
    thread.start()
    try:
        yield resp
    finally:
        resp.stop.set()
        thread.join()
        arp.close()
        ndp.close()


@dataclass
class Client:
    sock: PacketSocket

    def send(self, frame: bytes) -> None:
        self.sock.send(frame)

    def expect(self, match: Callable[[Ether], bool], timeout: float = 2.0) -> Ether | None:
        """The first received frame `match` accepts, or None after `timeout`."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.sock], [], [], left)
            if ready:
                packet = Ether(self.sock.recv())
                if match(packet):
                    return packet
        return None


@pytest.fixture
def client(lab: Lab) -> Iterator[Client]:
    # arp_all + ndp_all would need two sockets; an unfiltered one sees both kinds.
    sock = in_netns(lab.client, lambda: open_packet_socket(CLIENT_IF, None))
    try:
        yield Client(sock)
    finally:
        sock.close()


def is_arp_reply(packet: Ether) -> bool:
    return ARP in packet and packet[ARP].op == 2


def is_na(packet: Ether) -> bool:
    return ICMPv6ND_NA in packet


def checksum_agrees_with_scapy(packet: Ether) -> bool:
    sent = packet[ICMPv6ND_NA].cksum
    copy = Ether(bytes(packet))
    del copy[ICMPv6ND_NA].cksum
    return bool(Ether(bytes(copy))[ICMPv6ND_NA].cksum == sent)


def wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


# --- ARP ------------------------------------------------------------------------------


@pytest.mark.parametrize("unicast", [False, True], ids=["broadcast", "unicast"])
def test_arp_request_is_answered(client: Client, responder: Responder, unicast: bool) -> None:
    me, speaker_mac = format_mac(client.sock.mac), format_mac(responder.arp.mac)
    eth_dst = speaker_mac if unicast else BCAST
    client.send(bytes(Ether(dst=eth_dst, src=me) / ARP(op=1, hwsrc=me, psrc=CLIENT_IP, pdst=VIP)))
    reply = client.expect(is_arp_reply)
    assert reply is not None, f"no ARP reply; responder saw {dict(responder.reasons)}"
    assert (reply.dst, reply.src) == (me, speaker_mac)
    arp = reply[ARP]
    assert (arp.hwsrc, arp.psrc, arp.hwdst, arp.pdst) == (speaker_mac, VIP, me, CLIENT_IP)
    assert len(bytes(reply)) == 42  # veth does not pad


def test_arp_for_unowned_address_is_not_answered(client: Client, responder: Responder) -> None:
    client.send(arp_request(client.sock.mac, ip4(CLIENT_IP), ip4(UNOWNED)))
    assert wait_for(lambda: responder.reasons[DropReason.NOT_OWNED] >= 1)  # it did arrive
    assert client.expect(is_arp_reply, timeout=0.5) is None


def test_client_kernel_resolves_vip(lab: Lab, responder: Responder) -> None:
    """The client's own kernel ARPs for the VIP and accepts our reply into its cache."""

    def poke() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"x", (VIP, 9))

    speaker_mac = format_mac(responder.arp.mac)

    def resolved() -> bool:
        out = sh("ip", "-n", lab.client, "neigh", "show", VIP, "dev", CLIENT_IF)
        return speaker_mac in out and "REACHABLE" in out

    in_netns(lab.client, poke)
    assert wait_for(resolved), sh("ip", "-n", lab.client, "neigh", "show")


# --- NDP ------------------------------------------------------------------------------


def ns_frame(client: Client, *, unicast_to: str | None = None, dad: bool = False) -> bytes:
    me = format_mac(client.sock.mac)
    if unicast_to is not None:
        eth_dst, dst = unicast_to, VIP6
    else:
        group = in6_getnsma(ip6(VIP6))
        eth_dst, dst = str(in6_getnsmac(group)), str(ipaddress.IPv6Address(group))
    packet = (
        Ether(dst=eth_dst, src=me)
        / IPv6(src="::" if dad else CLIENT_IP6, dst=dst, hlim=255)
        / ICMPv6ND_NS(tgt=VIP6)
    )
    if not dad:
        packet = packet / ICMPv6NDOptSrcLLAddr(lladdr=me)
    return bytes(packet)


@pytest.mark.parametrize("kind", ["multicast", "unicast", "dad"])
def test_neighbor_solicitation_is_answered(client: Client, responder: Responder, kind: str) -> None:
    me, speaker_mac = format_mac(client.sock.mac), format_mac(responder.ndp.mac)
    unicast_to = speaker_mac if kind == "unicast" else None
    client.send(ns_frame(client, unicast_to=unicast_to, dad=kind == "dad"))
    reply = client.expect(is_na)
    assert reply is not None, f"no NA; responder saw {dict(responder.reasons)}"
    ip, na = reply[IPv6], reply[ICMPv6ND_NA]
    dad = kind == "dad"
    assert reply.src == speaker_mac
    assert reply.dst == ("33:33:00:00:00:01" if dad else me)
    assert (ip.src, ip.dst, ip.hlim) == (VIP6, "ff02::1" if dad else CLIENT_IP6, 255)
    assert (na.tgt, na.R, na.S, na.O) == (VIP6, 0, int(not dad), 1)
    assert reply[ICMPv6NDOptDstLLAddr].lladdr == speaker_mac
    assert checksum_agrees_with_scapy(reply)


def test_client_kernel_resolves_vip6_and_its_nud_probe_is_answered(
    lab: Lab, responder: Responder
) -> None:
    """Multicast resolution, then a stale entry forces the kernel's *unicast* NUD probe,
    the case MetalLB leaves unanswered; both must leave the entry REACHABLE."""
    speaker_mac = format_mac(responder.ndp.mac)
    sysctl = f"net.ipv6.neigh.{CLIENT_IF}.delay_first_probe_time=1"
    sh("ip", "netns", "exec", lab.client, "sysctl", "-qw", sysctl)

    def poke() -> None:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"x", (VIP6, 9))

    def reachable() -> bool:
        out = sh("ip", "-n", lab.client, "-6", "neigh", "show", VIP6, "dev", CLIENT_IF)
        return speaker_mac in out and "REACHABLE" in out

    in_netns(lab.client, poke)
    assert wait_for(reachable), sh("ip", "-n", lab.client, "-6", "neigh", "show")
    sh("ip", "-n", lab.client, "-6", "neigh", "change", VIP6, "lladdr", speaker_mac,
       "dev", CLIENT_IF, "nud", "stale")  # fmt: skip
    in_netns(lab.client, poke)  # STALE -> DELAY -> PROBE: a unicast NS after 1 s
    assert wait_for(lambda: responder.reasons["unicast"] >= 1, timeout=6.0), dict(responder.reasons)
    assert wait_for(reachable), sh("ip", "-n", lab.client, "-6", "neigh", "show")


# --- filters, counters, groups --------------------------------------------------------


def drain_until(sock: PacketSocket, marker: bytes, timeout: float = 2.0) -> list[bytes]:
    """Every frame read up to and including `marker` (fails if it never comes)."""
    seen: list[bytes] = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([sock], [], [], left)
        if ready:
            frame = sock.recv()
            seen.append(frame)
            if frame == marker:
                return seen
    raise AssertionError(f"marker never arrived; saw {len(seen)} frames")


def test_arp_filter_hides_everything_but_requests(lab: Lab, client: Client) -> None:
    probe = in_netns(lab.speaker, lambda: open_packet_socket(SPEAKER_IF, bpf.arp_requests()))
    try:
        me = format_mac(client.sock.mac)
        ping = bytes(
            Ether(dst=format_mac(probe.mac), src=me)
            / IP(src=CLIENT_IP, dst=VIP)
            / ICMP()
            / b"must-not-be-seen"
        )
        reply = bytes(Ether(dst=BCAST, src=me) / ARP(op=2, hwsrc=me, psrc=CLIENT_IP, pdst=VIP))
        marker = arp_request(client.sock.mac, ip4(CLIENT_IP), ip4(UNOWNED))
        for frame in (ping, reply, marker):
            client.send(frame)
        seen = drain_until(probe, marker)
        assert ping not in seen and reply not in seen
        assert all(Ether(f)[ARP].op == 1 for f in seen)
        stats = probe.stats()
        assert stats.packets >= len(seen) and stats.drops == 0
    finally:
        probe.close()


def test_ndp_filter_hides_everything_but_solicitations(lab: Lab, client: Client) -> None:
    probe = in_netns(lab.speaker, lambda: open_packet_socket(SPEAKER_IF, bpf.ndp_solicitations()))
    try:
        me = format_mac(client.sock.mac)
        echo = bytes(
            Ether(dst=format_mac(probe.mac), src=me)
            / IPv6(src=CLIENT_IP6, dst=VIP6, hlim=255)
            / ICMPv6EchoRequest(data=b"must-not-be-seen")
        )
        na = bytes(
            Ether(dst="33:33:00:00:00:01", src=me)
            / IPv6(src=CLIENT_IP6, dst="ff02::1", hlim=255)
            / ICMPv6ND_NA(tgt=CLIENT_IP6, R=0, S=0, O=1)
        )
        marker = ns_frame(client)
        for frame in (echo, na, marker):
            client.send(frame)
        seen = drain_until(probe, marker)
        assert echo not in seen and na not in seen
        assert all(ICMPv6ND_NS in Ether(f) for f in seen)
    finally:
        probe.close()


def test_packet_statistics_count_drops(lab: Lab, client: Client) -> None:
    """A socket nobody reads, with the smallest receive buffer, must report drops."""

    def open_tiny() -> PacketSocket:
        sock = open_packet_socket(SPEAKER_IF, bpf.arp_requests())
        sock.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
        return sock

    probe = in_netns(lab.speaker, open_tiny)
    try:
        frame = arp_request(client.sock.mac, ip4(CLIENT_IP), ip4(UNOWNED))
        for _ in range(64):
            client.send(frame)
        assert wait_for(lambda: probe.stats().packets >= 64)
        total = probe.stats()
        assert total.packets == 64 and 0 < total.drops < 64
    finally:
        probe.close()


def test_interface_helpers_agree(lab: Lab, responder: Responder) -> None:
    mac, index = in_netns(
        lab.speaker, lambda: (interface_mac(SPEAKER_IF), interface_index(SPEAKER_IF))
    )
    assert mac == responder.arp.mac
    assert index == responder.arp.ifindex
    link = sh("ip", "-n", lab.speaker, "link", "show", SPEAKER_IF)
    assert f"link/ether {format_mac(mac)}" in link


def test_solicited_node_memberships(lab: Lab) -> None:
    def groups() -> str:
        return sh("ip", "-n", lab.speaker, "-6", "maddr", "show", "dev", SPEAKER_IF)

    group = "ff02::1:ff00:100"  # shared by fd00:7::100 and fd00:8::100
    single = in_netns(lab.speaker, lambda: join_solicited_node_group(SPEAKER_IF, ip6(VIP6)))
    try:
        assert group in groups()
    finally:
        single.close()
    assert group not in groups()

    many = in_netns(lab.speaker, lambda: SolicitedNodeGroups(SPEAKER_IF))
    try:
        many.join(ip6(VIP6))
        many.join(ip6("fd00:8::100"))  # same group: refcounted, no EADDRINUSE
        assert group in groups()
        many.leave(ip6(VIP6))
        assert group in groups()
        many.leave(ip6("fd00:8::100"))
        assert group not in groups()
    finally:
        many.close()

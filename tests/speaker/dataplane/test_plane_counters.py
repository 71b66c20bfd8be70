"""metallb_layer2_* as MetalLB counts them: a request for an address we announce is
received whether or not an answer goes out; gratuitous packets count one by one."""

from __future__ import annotations

import errno
from pathlib import Path
from types import SimpleNamespace

import pytest

from metallb_api.addresses import Family, parse_ip
from metallb_speaker.dataplane.plane import DataPlane, _Iface
from metallb_speaker.wire.arp import arp_request

pytestmark = pytest.mark.unit
OUR_MAC, CLIENT_MAC = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
OWNED, OTHER, CLIENT = bytes([198, 18, 0, 10]), bytes([198, 18, 0, 11]), bytes([198, 18, 0, 99])


class FakeSocket:
    def __init__(self, frames: list[bytes], send_error: int = 0) -> None:
        self.frames, self.sent, self.send_error = list(frames), [], send_error

    def recv(self, _size: int) -> bytes:
        if not self.frames:
            raise BlockingIOError
        return self.frames.pop(0)

    def send(self, frame: bytes) -> int:
        if self.send_error:
            raise OSError(self.send_error, "send failed")
        self.sent.append(frame)
        return len(frame)


@pytest.mark.parametrize(("frame", "send_error", "received", "sent"), [
    (arp_request(CLIENT_MAC, CLIENT, OWNED), 0, 1, 1),
    (arp_request(CLIENT_MAC, CLIENT, OTHER), 0, 0, 0),  # not ours: not counted
    # Another host asking from our address: received, not answered (a conflict).
    (arp_request(CLIENT_MAC, OWNED, OWNED), 0, 1, 0),
    # The answer could not be sent: received, no response.
    (arp_request(CLIENT_MAC, CLIENT, OWNED), errno.ENOBUFS, 1, 0),
], ids=["answered", "not-owned", "conflict", "send-failed"])
def test_requests_for_owned_addresses_count_before_the_answer(
        tmp_path: Path, frame: bytes, send_error: int, received: int, sent: int) -> None:
    plane = DataPlane("n1", sys_net=tmp_path)  # not started: _read is driven by hand
    sock = FakeSocket([frame], send_error)
    iface = _Iface("eth0", OUR_MAC, SimpleNamespace(sock=sock),  # type: ignore[arg-type]
                   SimpleNamespace(sock=FakeSocket([])),  # type: ignore[arg-type]
                   SimpleNamespace(close=lambda: None),  # type: ignore[arg-type]
                   answer4=frozenset({OWNED}), watch4=frozenset({OWNED}))
    try:
        plane._read(iface, "arp")
    except OSError as exc:  # the run loop handles a failed send
        assert exc.errno == send_error
    assert plane.counters.requests.get(OWNED, 0) == received
    assert plane.counters.responses.get(OWNED, 0) == sent
    assert len(sock.sent) == sent
    plane.close()


class OneRound:
    """An owned address with one gratuitous round due now."""

    def due(self, _now: float) -> tuple[int, int, bool]:
        return 0, 1, False


@pytest.mark.parametrize(("ip", "send_error", "counted"), [
    ("198.18.0.10", 0, 2),  # request and reply form: two packets, as MetalLB counts
    ("fd00::10", 0, 1),  # one unsolicited NA
    ("198.18.0.10", errno.ENETDOWN, 0),  # nothing went out
])
def test_gratuitous_sent_counts_packets(tmp_path: Path, ip: str, send_error: int,
                                        counted: int) -> None:
    plane = DataPlane("n1", sys_net=tmp_path)
    sock = FakeSocket([], send_error)
    iface = _Iface("eth0", OUR_MAC, sock, sock,  # type: ignore[arg-type]
                   SimpleNamespace(close=lambda: None))  # type: ignore[arg-type]
    plane._ifaces["eth0"] = iface
    addr = parse_ip(ip)
    plane._owned[(addr, "eth0")] = OneRound()  # type: ignore[assignment]
    plane._timers(0.0)
    packed = addr.value.to_bytes(4 if addr.family is Family.V4 else 16, "big")
    assert plane.counters.gratuitous.get(packed, 0) == counted
    assert len(sock.sent) == counted
    plane._ifaces.clear()
    plane.close()

"""The raw-socket shell around the pure wire formats: packet sockets, filters, groups.

Kept deliberately thin (open, filter, read counters, join groups) so everything that
decides what to send stays in `metallb_speaker.wire`, where it is tested without root.
The socket is created with protocol 0 (which receives nothing), gets its cBPF filter,
and only then is bound to the interface, so no unfiltered frame is ever queued to it.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import socket
import struct
from types import TracebackType
from typing import NamedTuple, Self

from metallb_speaker.wire import bpf
from metallb_speaker.wire.ethernet import ETH_P_ALL
from metallb_speaker.wire.ndp import solicited_node_multicast

__all__ = [
    "PacketSocket",
    "PacketStats",
    "SolicitedNodeGroups",
    "attach_filter",
    "interface_index",
    "interface_mac",
    "join_ipv6_group",
    "join_solicited_node_group",
    "open_packet_socket",
    "read_packet_statistics",
]

SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_IGNORE_OUTGOING = 23  # Linux >= 4.20
SO_ATTACH_FILTER = 26
SIOCGIFHWADDR = 0x8927
IFNAMSIZ = 16
MAX_FRAME = 9216  # jumbo frame + headers; ARP/NDP frames are far smaller

_TPACKET_STATS = struct.Struct("=II")


class _SockFilter(ctypes.Structure):
    _fields_ = (
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    )


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter)))


class PacketStats(NamedTuple):
    """struct tpacket_stats. `packets` counts frames that passed the filter, drops
    included (the kernel adds them); `drops` are frames lost to a full receive queue."""

    packets: int
    drops: int


def attach_filter(sock: socket.socket, program: bpf.Program) -> ctypes.Array[ctypes.c_char]:
    """SO_ATTACH_FILTER `program`; returns the instruction buffer the sock_fprog points
    into (the kernel copies it, but holding it costs nothing and rules out a dangling
    pointer should that ever change)."""
    code = bpf.pack(program)
    buffer = ctypes.create_string_buffer(code, len(code))
    fprog = _SockFprog(len(program), ctypes.cast(buffer, ctypes.POINTER(_SockFilter)))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(fprog))
    return buffer


def read_packet_statistics(sock: socket.socket) -> PacketStats:
    """PACKET_STATISTICS since the previous read: the kernel zeroes them on every read."""
    raw = sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _TPACKET_STATS.size)
    packets, drops = _TPACKET_STATS.unpack(raw)
    return PacketStats(packets, drops)


def interface_index(interface: str) -> int:
    """ifindex in the calling thread's network namespace (OSError if absent)."""
    return socket.if_nametoindex(interface)


def interface_mac(interface: str) -> bytes:
    """The interface's hardware address via SIOCGIFHWADDR (namespace-correct, unlike
    /sys, which shows the namespace sysfs was mounted in)."""
    if not 0 < len(interface.encode()) < IFNAMSIZ:
        raise ValueError(f"bad interface name {interface!r}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("40s", interface.encode())  # struct ifreq
        reply = fcntl.ioctl(sock.fileno(), SIOCGIFHWADDR, request)
    return reply[18:24]  # ifr_hwaddr.sa_data, after the 16-byte name and sa_family


class PacketSocket:
    """A filtered AF_PACKET/SOCK_RAW socket bound to one interface.

    `recv` returns whole Ethernet frames as `bytes`, ready for `arp_answer` /
    `ndp_answer`; `send` transmits a whole frame. `stats` accumulates the kernel's
    reset-on-read counters so callers see monotonic totals (Prometheus counters).
    """

    def __init__(
        self,
        sock: socket.socket,
        interface: str,
        ifindex: int,
        mac: bytes,
        filter_buffer: ctypes.Array[ctypes.c_char] | None,
    ) -> None:
        self.sock = sock
        self.interface = interface
        self.ifindex = ifindex
        self.mac = mac
        self._filter_buffer = filter_buffer
        self._packets = 0
        self._drops = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def recv(self, bufsize: int = MAX_FRAME) -> bytes:
        return self.sock.recv(bufsize)

    def send(self, frame: bytes) -> int:
        return self.sock.send(frame)

    def stats(self) -> PacketStats:
        """Totals since the socket was opened."""
        delta = read_packet_statistics(self.sock)
        self._packets += delta.packets
        self._drops += delta.drops
        return PacketStats(self._packets, self._drops)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_packet_socket(
    interface: str,
    program: bpf.Program | None,
    *,
    protocol: int = ETH_P_ALL,
    ignore_outgoing: bool = True,
    blocking: bool = True,
) -> PacketSocket:
    """Open a packet socket on `interface`, filtered by `program` from its first frame.

    `protocol` is the ethertype to bind to (ETH_P_ALL, or e.g. ETH_P_ARP to let the
    kernel pre-select); `ignore_outgoing` stops the kernel looping our own transmitted
    frames back to us, where supported. Runs in the calling thread's network namespace.
    """
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        buffer = attach_filter(sock, program) if program is not None else None
        if ignore_outgoing:
            # Older kernels lack it: our frames then come back and read as FROM_SELF.
            with contextlib.suppress(OSError):
                sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        sock.bind((interface, protocol))
        sock.setblocking(blocking)
        mac: bytes = sock.getsockname()[4][:6]  # sockaddr_ll.sll_addr: the device's MAC
        return PacketSocket(sock, interface, interface_index(interface), mac, buffer)
    except BaseException:
        sock.close()
        raise


def _ifindex(interface: str | int) -> int:
    return interface if isinstance(interface, int) else interface_index(interface)


def join_ipv6_group(interface: str | int, group: bytes) -> socket.socket:
    """Join multicast `group` on `interface` and return the socket holding the membership.

    The kernel sends MLD reports for it, so MLD-snooping switches forward the group to
    this port, and programs the group's MAC into the NIC filter. Closing the socket
    leaves the group.
    """
    if len(group) != 16 or group[0] != 0xFF:
        raise ValueError("group must be a 16-byte IPv6 multicast address")
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        mreq = group + struct.pack("@i", _ifindex(interface))  # struct ipv6_mreq
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
    except BaseException:
        sock.close()
        raise
    return sock


def join_solicited_node_group(interface: str | int, addr: bytes) -> socket.socket:
    """Join the solicited-node group of `addr`, where multicast NS for it are sent."""
    return join_ipv6_group(interface, solicited_node_multicast(addr))


class SolicitedNodeGroups:
    """Solicited-node memberships for many addresses on one interface, one socket.

    Addresses sharing their low 24 bits share a group, and joining a group twice on one
    socket fails (EADDRINUSE), so memberships are reference-counted per group.
    """

    def __init__(self, interface: str | int) -> None:
        self.ifindex = _ifindex(interface)
        self._sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        self._refs: dict[bytes, int] = {}

    def _mreq(self, group: bytes) -> bytes:
        return group + struct.pack("@i", self.ifindex)

    def join(self, addr: bytes) -> None:
        group = solicited_node_multicast(addr)
        if self._refs.get(group, 0) == 0:
            self._sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, self._mreq(group))
        self._refs[group] = self._refs.get(group, 0) + 1

    def leave(self, addr: bytes) -> None:
        group = solicited_node_multicast(addr)
        refs = self._refs.get(group, 0)
        if refs == 0:
            return
        if refs == 1:
            del self._refs[group]
            self._sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_LEAVE_GROUP, self._mreq(group))
        else:
            self._refs[group] = refs - 1

    @property
    def groups(self) -> frozenset[bytes]:
        return frozenset(self._refs)

    def close(self) -> None:
        self._refs.clear()
        self._sock.close()

"""The BGP lab's router, pure part: its configuration (BIRD 2, or FRR as a second,
independent implementation) from a description of its peers, and what it reports parsed
(`birdc show protocols`, `birdc show route all`, `ip -j route show` in its namespace).

The shell that runs it is `metallb_lab.bird`.

Measured facts behind the configuration (shared/REFERENCE.md, "BGP: measured here"):
- BIRD installs one kernel route with a next hop per node only with `merge paths on` in
  its kernel protocol, and merges eBGP paths only from one neighbour AS (MetalLB's nodes
  share one myASN, so that holds).
- BIRD's defaults are for the internet, not a lab: after a session error (a BFD down at
  start-up, a peer's reset) it waits 60-300 s before it tries again, and retries a
  connection 5 s after start and then every 120 s. The lab's router waits 1-5 s and
  connects after 2 s, every 2 s.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

SYMBOL = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


def family_of(address: str) -> int:
    return ipaddress.ip_address(address).version


@dataclass(frozen=True)
class BfdTimings:
    rx_ms: int = 100
    tx_ms: int = 100
    multiplier: int = 3


@dataclass(frozen=True)
class Peer:
    """A BGP neighbour of the router (a node)."""

    name: str  # a BIRD symbol: letters, digits, underscores
    address: str
    asn: int
    password: str = ""
    bfd: bool = False
    multihop: bool = False
    hold_time: int | None = None  # seconds; None: the engine's default
    families: tuple[int, ...] = ()  # 4 and/or 6; () = the address's family

    def __post_init__(self) -> None:
        if not SYMBOL.match(self.name):
            raise ValueError(f"peer name {self.name!r} is not a BIRD symbol")
        family_of(self.address)  # raises on a malformed address
        if any(c in self.password for c in '"\\\n'):
            raise ValueError("a password with quotes, backslashes or newlines: BIRD's "
                             "strings cannot carry them")
        if any(f not in (4, 6) for f in self.families):
            raise ValueError(f"families {self.families!r}: only 4 and 6")

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.families))) or (family_of(self.address),)


@dataclass(frozen=True)
class RouterConfig:
    asn: int
    router_id: str
    local4: str
    local6: str
    peers: tuple[Peer, ...] = ()
    bfd: BfdTimings = BfdTimings()
    interface: str = "eth0"  # towards the nodes (BFD's interface)
    ecmp: bool = True
    log_file: str = ""  # BIRD: where its log goes ("" = syslog-less stderr)
    error_wait: tuple[int, int] = (1, 5)
    connect_retry: int = 2

    def ibgp(self, peer: Peer) -> bool:
        return peer.asn == self.asn


def node_peers(nodes: Iterable[tuple[str, str, str]], asn: int, *, ipv4: bool = True,
               ipv6: bool = False, password: str = "", bfd: bool = False,
               hold_time: int | None = None) -> tuple[Peer, ...]:
    """One peer per (name, ipv4, ipv6) node and family: `node_1` / `node_1_v6`."""
    out = []
    for name, a4, a6 in nodes:
        sym = re.sub(r"[^A-Za-z0-9_]", "_", name)
        if ipv4:
            out.append(Peer(sym, a4, asn, password, bfd, hold_time=hold_time))
        if ipv6:
            out.append(Peer(f"{sym}_v6", a6, asn, password, bfd, hold_time=hold_time))
    return tuple(out)


def _quote(text: str) -> str:
    return f'"{text}"'  # BIRD has no escapes in strings: Peer refuses what needs them


# -- BIRD 2 -------------------------------------------------------------------------------

def render_bird(c: RouterConfig) -> str:
    """bird.conf: learn every prefix the peers send (announce none), install it in the
    router's kernel (ECMP), BFD with the given timings."""
    t = c.bfd
    timing = (f"min rx interval {t.rx_ms} ms; min tx interval {t.tx_ms} ms; "
              f"multiplier {t.multiplier};")
    out = ["# bird.conf rendered by metallb_lab.routerconf", f"router id {c.router_id};"]
    if c.log_file:
        out.append(f"log {_quote(c.log_file)} all;")
    out += ["debug protocols { states, events };",
            "timeformat protocol iso long;", "timeformat route iso long;",
            "protocol device { scan time 10; }"]
    for fam in (4, 6):
        out += [f"protocol kernel kernel{fam} {{",
                f"  ipv{fam} {{ import none; export all; }};"]
        if c.ecmp:
            out.append("  merge paths on;  # one route, a next hop per announcing node")
        out.append("}")
    if any(p.bfd for p in c.peers):
        out += ["protocol bfd {", f"  interface {_quote(c.interface)} {{ {timing} }};"]
        if any(p.bfd and p.multihop for p in c.peers):
            out.append(f"  multihop {{ {timing} }};")
        out.append("}")
    for p in c.peers:
        local = c.local4 if family_of(p.address) == 4 else c.local6
        out += [f"protocol bgp {p.name} {{",
                f"  local {local} as {c.asn};",
                f"  neighbor {p.address} as {p.asn};"]
        for fam in p.channels:
            out.append(f"  ipv{fam} {{ import all; export none; }};")
        if p.multihop:
            out.append("  multihop;")
        elif c.ibgp(p):
            out.append("  direct;  # iBGP defaults to multihop (recursive next hops)")
        if p.password:
            out.append(f"  password {_quote(p.password)};")
        if p.bfd:
            out.append("  bfd on;")
        if p.hold_time is not None:
            out.append(f"  hold time {p.hold_time};")
        out += [f"  error wait time {c.error_wait[0]},{c.error_wait[1]};",
                f"  connect delay time {c.connect_retry};",
                f"  connect retry time {c.connect_retry};",
                "}"]
    return "\n".join(out) + "\n"


# -- FRR as the router --------------------------------------------------------------------

def render_frr_router(c: RouterConfig) -> str:
    """The same router in FRR: learn everything, ECMP over eBGP paths from one AS (and
    over iBGP paths), BFD with the given timings."""
    t = c.bfd
    out = ["frr defaults traditional", "hostname router", "log stdout informational", "!"]
    if any(p.bfd for p in c.peers):
        out += ["bfd", " profile lab", f"  receive-interval {t.rx_ms}",
                f"  transmit-interval {t.tx_ms}", f"  detect-multiplier {t.multiplier}",
                " exit", "exit", "!"]
    out += [f"router bgp {c.asn}", f" bgp router-id {c.router_id}",
            " no bgp ebgp-requires-policy", " no bgp default ipv4-unicast",
            " bgp bestpath as-path multipath-relax"]
    for p in c.peers:
        a = p.address
        out.append(f" neighbor {a} remote-as {p.asn}")
        if p.multihop:
            out.append(f" neighbor {a} ebgp-multihop")
        if p.password:
            out.append(f" neighbor {a} password {p.password}")
        if p.bfd:
            out += [f" neighbor {a} bfd", f" neighbor {a} bfd profile lab"]
        if p.hold_time is not None:
            out.append(f" neighbor {a} timers {max(1, p.hold_time // 3)} {p.hold_time}")
        out.append(f" neighbor {a} timers connect {c.connect_retry}")
    for fam in (4, 6):
        active = [p for p in c.peers if fam in p.channels]
        if not active:
            continue
        out += [f" address-family ipv{fam} unicast",
                "  maximum-paths 64", "  maximum-paths ibgp 64"]
        out += [f"  neighbor {p.address} activate" for p in active]
        out.append(" exit-address-family")
    out += ["exit", "!", "end"]
    return "\n".join(out) + "\n"


# -- what the router reports ------------------------------------------------------------

@dataclass(frozen=True)
class Protocol:
    name: str
    proto: str
    table: str
    state: str
    since: str
    info: str

    @property
    def established(self) -> bool:
        return self.proto == "BGP" and self.info.startswith("Established")


_PROTO_LINE = re.compile(
    r"(?P<name>\S+)\s+(?P<proto>\S+)\s+(?P<table>\S+)\s+(?P<state>\S+)\s+"
    r"(?P<since>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?|\d\d:\d\d:\d\d(?:\.\d+)?)\s*"
    r"(?P<info>.*)\Z")


def parse_protocols(text: str) -> dict[str, Protocol]:
    """`birdc show protocols`: one Protocol per line, by name."""
    out = {}
    for line in text.splitlines():
        m = _PROTO_LINE.match(line.strip())
        if m and m["name"] != "Name":
            out[m["name"]] = Protocol(m["name"], m["proto"], m["table"], m["state"],
                                      m["since"], m["info"].strip())
    return out


@dataclass(frozen=True)
class Route:
    """One path BIRD learnt for a prefix (from one protocol)."""

    prefix: str
    protocol: str
    primary: bool
    via: tuple[str, ...]  # next hops (several for a route BIRD itself merged)
    attributes: Mapping[str, str] = field(default_factory=dict)

    @property
    def local_pref(self) -> int | None:
        v = self.attributes.get("BGP.local_pref")
        return int(v) if v is not None else None

    @property
    def communities(self) -> frozenset[str]:
        """Standard communities as `a:b`, large ones as `large:a:b:c` (MetalLB's
        notation), so they compare with a BGPAdvertisement's."""
        std = re.findall(r"\((\d+),\s*(\d+)\)", self.attributes.get("BGP.community", ""))
        large = re.findall(r"\((\d+),\s*(\d+),\s*(\d+)\)",
                           self.attributes.get("BGP.large_community", ""))
        return frozenset([f"{a}:{b}" for a, b in std]
                         + [f"large:{a}:{b}:{c}" for a, b, c in large])

    @property
    def as_path(self) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", self.attributes.get("BGP.as_path",
                                                                             "")))


_ROUTE_HEAD = re.compile(
    r"(?P<prefix>\S+)?\s+(?P<kind>unicast|unreachable|blackhole|prohibited)\s+"
    r"\[(?P<proto>\S+)[^\]]*\](?P<primary>\s+\*)?")


def parse_routes(text: str) -> dict[str, list[Route]]:
    """`birdc show route all`: every path per prefix, in BIRD's order (best first)."""
    out: dict[str, list[Route]] = {}
    prefix = ""
    cur: dict[str, Any] | None = None

    def flush() -> None:
        if cur is not None:
            out.setdefault(cur["prefix"], []).append(Route(
                cur["prefix"], cur["proto"], cur["primary"], tuple(cur["via"]),
                dict(cur["attrs"])))

    for line in text.splitlines():
        if not line.strip() or line.startswith(("BIRD ", "Table ")):
            continue
        head = _ROUTE_HEAD.match(line)
        if head and not line.startswith("\t"):
            flush()
            prefix = head["prefix"] or prefix
            cur = {"prefix": prefix, "proto": head["proto"],
                   "primary": bool(head["primary"]), "via": [], "attrs": {}}
            continue
        if cur is None:
            continue
        body = line.strip()
        via = re.match(r"via (\S+) on \S+", body)
        if via:
            cur["via"].append(via[1])
        elif ":" in body and not body.startswith("Type:"):
            key, _, value = body.partition(":")
            cur["attrs"][key.strip()] = value.strip()
    flush()
    return out


_BFD_LINE = re.compile(
    r"(?P<addr>[0-9A-Fa-f.:]+)\s+(?P<iface>\S+)\s+(?P<state>Up|Down|Init|AdminDown)\s")


def parse_bfd_sessions(text: str) -> dict[str, str]:
    """`birdc show bfd sessions`: the state (Up, Down, Init, AdminDown) per peer address."""
    out = {}
    for line in text.splitlines():
        m = _BFD_LINE.match(line.strip() + " ")
        if m and ("." in m["addr"] or ":" in m["addr"]):
            out[m["addr"]] = m["state"]
    return out


def _norm_prefix(dst: str) -> str:
    if dst == "default":
        return dst
    return str(ipaddress.ip_network(dst, strict=False))


def parse_kernel_routes(json_text: str) -> dict[str, frozenset[str]]:
    """`ip -j route show ...`: the next hops (gateways) of each destination. A multipath
    route lists them in `nexthops`; IPv6 ones may come as one route per next hop."""
    out: dict[str, set[str]] = {}
    entries: list[Mapping[str, Any]] = json.loads(json_text or "[]")
    for e in entries:
        if "dst" not in e:
            continue
        hops = out.setdefault(_norm_prefix(str(e["dst"])), set())
        if e.get("gateway"):
            hops.add(str(e["gateway"]))
        for nh in e.get("nexthops") or []:
            if nh.get("gateway"):
                hops.add(str(nh["gateway"]))
    return {k: frozenset(v) for k, v in out.items()}

"""BGP mode's configuration, pure: BGPPeer, BGPAdvertisement, BFDProfile and Community
objects parsed and validated into frozen dataclasses, with a reason for everything refused.

The same shape as `metallb_api.config` (which it builds on for the pools): never raises
on bad input; a bad object becomes a `Problem` (kind, name, reason, a message naming the
field) and is left out, the rest keeps working. Single-object rules are also in the CRDs
(CEL); they are checked again here for objects written before the CRDs and for
`metallbctl validate`. Cross-object rules (MetalLB's config parse and FRR-mode
validation) only exist here:

- a BFD profile a peer names must exist (MetalLB: transient error, whole config);
- two peers that could open a session from the same node (their nodeSelectors do not
  exclude each other) in the same VRF must agree on myASN and routerID: FRR has one BGP
  router per VRF on a node. MetalLB requires this of every peer in the cluster; here only
  of peers that can meet on a node, decided from the selectors alone (not from today's
  node labels, so a relabelled node never flips which peer is refused);
- one peer per (address or interface, VRF) (MetalLB: FRR mode refuses duplicates);
- a community alias must be defined (in a Community), once;
- an advertisement's aggregation length must not be shorter than the prefix of any
  range of the pools it selects (MetalLB's validateBGPAdvPerPool: a range summarised in
  CIDRs, the shortest of them);
- two advertisements of one pool with different localPref must not be able to send the
  same prefix to the same peer from the same node (MetalLB's advertisementsAreCompatible);
- an IPv6 pool must not be advertised to a peer whose BFD profile has echo mode;
- localPref towards eBGP peers is accepted and not sent (eBGP never carries LOCAL_PREF;
  MetalLB's FRR mode silently drops it too): a `Note`, not a `Problem`.

When two objects conflict, the one whose name sorts first keeps working and the other
is refused, naming it (`related`): decisions depend on the objects only, so the operator,
every speaker and `metallbctl validate` agree.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from metallb_api.addresses import IP, Family, IPRange
from metallb_api.config import Config
from metallb_api.models import LabelSelector as SelectorModel
from metallb_api.models import _check_selectors, _check_unique, _Model, parse_spec
from metallb_api.selectors import LabelSelector, any_matches

PEER = "BGPPeer"
ADVERTISEMENT = "BGPAdvertisement"
BFD_PROFILE = "BFDProfile"
COMMUNITY = "Community"

ASN_MAX = 2**32 - 1
DEFAULT_PORT = 179
HOLD_MIN_S = 3  # a hold time is 0 (no keepalives) or at least 3 s (RFC 4271)
CONNECT_MAX_S = 65535
PASSWORD_MAX = 80  # TCP_MD5SIG_MAXKEYLEN
# An interface or VRF name, written into frr.conf as one word ("" = none)
NAME_PATTERN = r"^([A-Za-z0-9][A-Za-z0-9_.@:+-]{0,14})?$"


def usable_password(password: str) -> bool:
    """A password frr.conf can carry as one word (a Secret's value is not checked by
    any schema: blanks would cut it, a newline would add a configuration line)."""
    return 0 < len(password) <= PASSWORD_MAX and not any(c.isspace() for c in password)


class BGPProblemReason(StrEnum):
    INVALID_SPEC = "InvalidSpec"
    BFD_PROFILE_NOT_FOUND = "BFDProfileNotFound"
    CONFLICTING_MY_ASN = "ConflictingMyASN"
    CONFLICTING_ROUTER_ID = "ConflictingRouterID"
    DUPLICATE_PEER = "DuplicatePeer"
    DUPLICATE_COMMUNITY = "DuplicateCommunity"
    UNKNOWN_COMMUNITY = "UnknownCommunity"
    POOL_NOT_FOUND = "PoolNotFound"
    AGGREGATION_TOO_SHORT = "AggregationLengthTooShort"
    CONFLICTING_LOCAL_PREF = "ConflictingLocalPref"
    BFD_ECHO_WITH_IPV6 = "BFDEchoWithIPv6"


class BGPNoteReason(StrEnum):
    """Informational: the object is valid and accepted."""

    LOCAL_PREF_NOT_SENT_TO_EBGP = "LocalPrefNotSentToEBGP"
    PEER_NOT_FOUND = "PeerNotFound"
    NO_MATCHING_POOLS = "NoMatchingPools"


@dataclass(frozen=True)
class Problem:
    kind: str
    name: str
    reason: BGPProblemReason
    message: str
    related: str | None = None


@dataclass(frozen=True)
class Note:
    kind: str
    name: str
    reason: BGPNoteReason
    message: str


# -- communities ---------------------------------------------------------------------------

class CommunityError(ValueError):
    """Not a community value; `alias_like` when it could be an alias name instead."""

    def __init__(self, message: str, alias_like: bool) -> None:
        super().__init__(message)
        self.alias_like = alias_like


@dataclass(frozen=True, order=True)
class Community:
    """A standard (RFC 1997, `a:b`) or large (RFC 8092, `large:a:b:c`) community.
    Orders as MetalLB does: a standard community as the large one (a<<16|b, 0, 0)."""

    sort_key: tuple[int, int, int] = field(repr=False, compare=True)
    large: bool
    parts: tuple[int, ...]

    @classmethod
    def of(cls, large: bool, parts: tuple[int, ...]) -> Community:
        key = (parts[0], parts[1], parts[2]) if large else ((parts[0] << 16) | parts[1], 0, 0)
        return cls(key, large, parts)

    @property
    def value(self) -> str:
        """As FRR writes it after `set community` / `set large-community`."""
        return ":".join(str(p) for p in self.parts)

    def __str__(self) -> str:
        return f"large:{self.value}" if self.large else self.value


def parse_community(text: str) -> Community:
    """MetalLB's community.New: two fields are a standard community, four starting with
    `large` a large one; anything else is a format error (it may be an alias)."""
    fields = text.split(":")
    if len(fields) == 2:
        return Community.of(False, tuple(_number(f, 16, text) for f in fields))
    if len(fields) == 4:
        if fields[0] != "large":
            raise CommunityError(
                f"{text!r} is not a community: a large community is large:a:b:c", False)
        return Community.of(True, tuple(_number(f, 32, text) for f in fields[1:]))
    raise CommunityError(f"{text!r} is neither a:b nor large:a:b:c", True)


def _number(text: str, bits: int, whole: str) -> int:
    if not text.isdigit() or not text.isascii() or int(text) >= 2**bits:
        raise CommunityError(
            f"{whole!r} is not a community: {text!r} is not a number from 0 to "
            f"{2**bits - 1}", False)
    return int(text)


# -- durations (metav1.Duration: Go's time.ParseDuration syntax) ----------------------------

_UNITS_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
             "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_DURATION = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration_ns(text: str) -> int:
    """Nanoseconds of a Go duration ("90s", "1m30s", "300ms", "-3s", "0")."""
    sign, rest = (-1, text[1:]) if text.startswith("-") else (1, text.removeprefix("+"))
    if rest == "0":
        return 0
    pos, total = 0, 0
    for m in _DURATION.finditer(rest):
        if m.start() != pos or m.group(1) in ("", "."):
            break
        total += int(float(m.group(1)) * _UNITS_NS[m.group(2)])
        pos = m.end()
    if pos != len(rest) or not rest:
        raise ValueError(f"invalid duration {text!r} (e.g. 90s, 1m30s, 300ms)")
    return sign * total


def _duration(value: str | None) -> str | None:
    if value is not None:
        parse_duration_ns(value)
    return value


# -- specs as written (pydantic: field names and checks as the CRDs) -----------------------

class SecretRef(_Model):
    name: str = ""
    namespace: str = ""


def _ip_text(value: str, what: str) -> str:
    if value:
        try:
            IP.parse(value)
        except ValueError:
            raise ValueError(f"{value!r} is not {what}") from None
    return value


class BGPPeerSpec(_Model):
    my_asn: int = Field(alias="myASN", ge=1, le=ASN_MAX)
    peer_asn: int = Field(default=0, alias="peerASN", ge=0, le=ASN_MAX)
    local_asn: int = Field(default=0, alias="localASN", ge=0, le=ASN_MAX)
    dynamic_asn: Literal["", "internal", "external"] = Field(default="", alias="dynamicASN")
    peer_address: str = Field(default="", alias="peerAddress")
    interface: str = Field(default="", pattern=NAME_PATTERN)
    source_address: str = Field(default="", alias="sourceAddress")
    peer_port: int = Field(default=DEFAULT_PORT, alias="peerPort", ge=0, le=16384)
    hold_time: str | None = Field(default=None, alias="holdTime")
    keepalive_time: str | None = Field(default=None, alias="keepaliveTime")
    connect_time: str | None = Field(default=None, alias="connectTime")
    router_id: str = Field(default="", alias="routerID")
    node_selectors: list[SelectorModel] = Field(default_factory=list, alias="nodeSelectors")
    password: str = Field(default="", max_length=PASSWORD_MAX, pattern=r"^\S*$")
    password_secret: SecretRef = Field(default_factory=SecretRef, alias="passwordSecret")
    bfd_profile: str = Field(default="", alias="bfdProfile")
    enable_graceful_restart: bool = Field(default=False, alias="enableGracefulRestart")
    ebgp_multi_hop: bool = Field(default=False, alias="ebgpMultiHop")
    vrf: str = Field(default="", pattern=NAME_PATTERN)
    disable_mp: bool = Field(default=False, alias="disableMP")
    dual_stack_address_family: bool = Field(default=False, alias="dualStackAddressFamily")

    _sel = field_validator("node_selectors")(_check_selectors)
    _durations = field_validator("hold_time", "keepalive_time", "connect_time")(_duration)

    @field_validator("peer_address")
    @classmethod
    def _peer_address(cls, v: str) -> str:
        return _ip_text(v, "an IPv4 or IPv6 address")

    @field_validator("source_address")
    @classmethod
    def _source_address(cls, v: str) -> str:
        return _ip_text(v, "an IPv4 or IPv6 address")

    @field_validator("router_id")
    @classmethod
    def _router_id(cls, v: str) -> str:
        return _ip_text(v, "an IP address")

    @model_validator(mode="after")
    def _rules(self) -> BGPPeerSpec:
        # MetalLB's peerFromCR, in its order; the messages name the fields as the CRD does.
        if bool(self.peer_asn) == bool(self.dynamic_asn):
            raise ValueError("peerASN, spec.dynamicASN: exactly one of them must be set")
        if self.peer_asn == self.my_asn and self.ebgp_multi_hop:
            raise ValueError("ebgpMultiHop: not allowed for an iBGP peer (peerASN equals myASN)")
        if bool(self.peer_address) == bool(self.interface):
            raise ValueError("peerAddress, spec.interface: exactly one of them must be set")
        if self.password and self.password_secret.name:
            raise ValueError("password, spec.passwordSecret: at most one of them may be set")
        timers(self.hold_time, self.keepalive_time)
        if self.connect_time is not None:
            ns = parse_duration_ns(self.connect_time)
            if ns % 1_000_000_000:
                raise ValueError("connectTime: must be a whole number of seconds")
            if not 1 <= ns // 1_000_000_000 <= CONNECT_MAX_S:
                raise ValueError(f"connectTime: must be between 1s and {CONNECT_MAX_S}s")
        return self


def timers(hold: str | None, keepalive: str | None) -> tuple[int | None, int | None]:
    """(hold, keepalive) in ns, one derived from the other as MetalLB's parseTimers does
    (keepalive = hold / 3, hold = 3 x keepalive); (None, None) leaves FRR's defaults."""
    if hold is None and keepalive is None:
        return None, None
    hold_ns = parse_duration_ns(hold) if hold is not None else None
    ka_ns = parse_duration_ns(keepalive) if keepalive is not None else None
    if hold_ns is None:
        assert ka_ns is not None
        hold_ns = ka_ns * 3
    if ka_ns is None:
        ka_ns = hold_ns // 3
    seconds = int(hold_ns / 1_000_000_000)  # truncated towards 0, as Go's int(Seconds())
    if seconds != 0 and seconds < HOLD_MIN_S:
        if hold is None:
            raise ValueError("keepaliveTime: without holdTime the hold time is three "
                             f"keepalives ({keepalive} x 3), which must be 0 or at least 3s")
        raise ValueError(f"holdTime: {hold!r} must be 0 or at least 3s")
    if ka_ns < 0:
        raise ValueError("keepaliveTime: must not be negative")
    if ka_ns > hold_ns:
        raise ValueError(f"keepaliveTime: {keepalive!r} must not be longer than holdTime "
                         f"{hold!r}")
    return hold_ns, ka_ns


class BGPAdvertisementSpec(_Model):
    aggregation_length: int = Field(default=32, alias="aggregationLength", ge=1, le=32)
    aggregation_length_v6: int = Field(default=128, alias="aggregationLengthV6", ge=1, le=128)
    local_pref: int = Field(default=0, alias="localPref", ge=0, le=ASN_MAX)
    communities: list[str] = Field(default_factory=list)
    ip_address_pools: list[str] = Field(default_factory=list, alias="ipAddressPools")
    ip_address_pool_selectors: list[SelectorModel] = Field(
        default_factory=list, alias="ipAddressPoolSelectors")
    node_selectors: list[SelectorModel] = Field(default_factory=list, alias="nodeSelectors")
    peers: list[str] = Field(default_factory=list)

    _sel = field_validator("ip_address_pool_selectors", "node_selectors")(_check_selectors)
    _unique = field_validator("ip_address_pools", "peers")(_check_unique)

    @field_validator("communities")
    @classmethod
    def _communities(cls, value: list[str]) -> list[str]:
        _check_unique(value)
        for i, text in enumerate(value):
            try:
                parse_community(text)
            except CommunityError as exc:
                if not exc.alias_like:  # a malformed number is refused; an alias is looked up
                    raise ValueError(f"[{i}]: {exc}") from None
        return value


class BFDProfileSpec(_Model):
    receive_interval: int | None = Field(default=None, alias="receiveInterval", ge=10, le=60000)
    transmit_interval: int | None = Field(default=None, alias="transmitInterval",
                                          ge=10, le=60000)
    detect_multiplier: int | None = Field(default=None, alias="detectMultiplier", ge=2, le=255)
    echo_interval: int | None = Field(default=None, alias="echoInterval", ge=10, le=60000)
    echo_mode: bool = Field(default=False, alias="echoMode")
    passive_mode: bool = Field(default=False, alias="passiveMode")
    minimum_ttl: int | None = Field(default=None, alias="minimumTtl", ge=1, le=254)


class CommunityAlias(_Model):
    name: str = Field(min_length=1)
    value: str

    @field_validator("value")
    @classmethod
    def _value(cls, value: str) -> str:
        try:
            parse_community(value)
        except CommunityError as exc:
            raise ValueError(str(exc)) from None
        return value


class CommunitySpec(_Model):
    communities: list[CommunityAlias] = Field(default_factory=list)

    @field_validator("communities")
    @classmethod
    def _names(cls, value: list[CommunityAlias]) -> list[CommunityAlias]:
        _check_unique([c.name for c in value])
        return value


# -- the validated model -------------------------------------------------------------------

@dataclass(frozen=True)
class BFDProfileConfig:
    name: str
    receive_interval: int | None = None
    transmit_interval: int | None = None
    detect_multiplier: int | None = None
    echo_interval: int | None = None
    echo_mode: bool = False
    passive_mode: bool = False
    minimum_ttl: int | None = None


@dataclass(frozen=True)
class PeerConfig:
    name: str
    my_asn: int
    peer_asn: int = 0  # 0 with dynamic_asn
    dynamic_asn: str = ""  # "internal" | "external" | ""
    local_asn: int = 0  # the AS shown to this peer instead of my_asn (FRR local-as)
    address: str = ""  # "" for an unnumbered session (interface)
    interface: str = ""
    source_address: str = ""
    port: int = DEFAULT_PORT
    hold_time_ns: int | None = None
    keepalive_time_ns: int | None = None
    connect_time_s: int | None = None
    router_id: str = ""
    node_selectors: tuple[LabelSelector, ...] = ()
    password: str = ""
    password_secret: str = ""  # a basic-auth Secret's name; the shell reads it
    bfd_profile: str = ""
    graceful_restart: bool = False
    ebgp_multihop: bool = False
    vrf: str = ""
    dual_stack: bool = False
    generation: int = 0

    @property
    def ibgp(self) -> bool:
        return (self.dynamic_asn == "internal"
                or self.peer_asn == (self.local_asn or self.my_asn))

    @property
    def family(self) -> Family | None:
        """The session's address family; None for an unnumbered session."""
        return IP.parse(self.address).family if self.address else None

    def families(self) -> frozenset[Family]:
        """Families whose prefixes this session carries (MetalLB: an unnumbered or
        dualStackAddressFamily session carries both)."""
        fam = self.family
        if fam is None or self.dual_stack:
            return frozenset(Family)
        return frozenset([fam])

    def selects_node(self, labels: Mapping[str, str]) -> bool:
        return not self.node_selectors or any_matches(self.node_selectors, labels)


@dataclass(frozen=True)
class BGPAdvConfig:
    name: str
    pools: frozenset[str]
    aggregation_length: int = 32
    aggregation_length_v6: int = 128
    local_pref: int = 0
    communities: tuple[Community, ...] = ()  # resolved, sorted, no repeats
    node_selectors: tuple[LabelSelector, ...] = ()
    peers: frozenset[str] = frozenset()  # empty: every peer
    generation: int = 0

    def length(self, family: Family) -> int:
        return self.aggregation_length if family is Family.V4 else self.aggregation_length_v6

    def selects_node(self, labels: Mapping[str, str]) -> bool:
        return not self.node_selectors or any_matches(self.node_selectors, labels)

    def selects_peer(self, name: str) -> bool:
        return not self.peers or name in self.peers


@dataclass(frozen=True)
class BGPConfig:
    peers: Mapping[str, PeerConfig]
    advertisements: Mapping[str, BGPAdvConfig]
    bfd_profiles: Mapping[str, BFDProfileConfig]
    communities: Mapping[str, Community]  # alias -> value
    problems: tuple[Problem, ...] = ()
    notes: tuple[Note, ...] = ()

    def problems_for(self, kind: str, name: str) -> list[Problem]:
        return [p for p in self.problems if p.kind == kind and p.name == name]

    def notes_for(self, kind: str, name: str) -> list[Note]:
        return [n for n in self.notes if n.kind == kind and n.name == name]

    def peers_for_node(self, labels: Mapping[str, str]) -> tuple[PeerConfig, ...]:
        return tuple(p for _, p in sorted(self.peers.items()) if p.selects_node(labels))

    def advertised_pools(self) -> frozenset[str]:
        out: set[str] = set()
        for adv in self.advertisements.values():
            out |= adv.pools
        return frozenset(out)


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _name(obj: Mapping[str, Any]) -> str:
    return str(_meta(obj).get("name", ""))


def _generation(obj: Mapping[str, Any]) -> int:
    return int(_meta(obj).get("generation") or 0)


def _by_name(objs: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(objs, key=_name)


def may_share_a_node(a: tuple[LabelSelector, ...], b: tuple[LabelSelector, ...]) -> bool:
    """Whether some node could match both selector lists (empty = every node): some
    pair of selectors whose requirements together do not contradict each other."""
    left = a or (LabelSelector(),)
    right = b or (LabelSelector(),)
    return any(LabelSelector(x.requirements + y.requirements).contradiction() is None
               for x in left for y in right)


def _cidr_lengths(r: IPRange) -> list[int]:
    """Prefix lengths of the CIDRs that exactly cover a range (MetalLB summarises a
    `a-b` entry this way before comparing with the aggregation length)."""
    first: ipaddress.IPv4Address | ipaddress.IPv6Address
    last: ipaddress.IPv4Address | ipaddress.IPv6Address
    if r.family is Family.V6:
        first, last = ipaddress.IPv6Address(r.first), ipaddress.IPv6Address(r.last)
    else:
        first, last = ipaddress.IPv4Address(r.first), ipaddress.IPv4Address(r.last)
    return [n.prefixlen for n in ipaddress.summarize_address_range(first, last)]


_OBJECT_LEVEL = re.compile(r"\bspec: (?=[a-z][A-Za-z]*[:,])")


def _spec_error(error: str | None) -> str:
    """Errors of a whole-spec rule name their field first ("spec: holdTime: ..."):
    written as the CRD's CEL messages are ("spec.holdTime: ...")."""
    return _OBJECT_LEVEL.sub("spec.", error or "invalid spec")


def _parse_bfd(obj: Mapping[str, Any]) -> tuple[BFDProfileConfig | None, str | None]:
    spec, error = parse_spec(BFDProfileSpec, obj.get("spec"))
    if spec is None:
        return None, error
    return BFDProfileConfig(
        name=_name(obj), receive_interval=spec.receive_interval,
        transmit_interval=spec.transmit_interval, detect_multiplier=spec.detect_multiplier,
        echo_interval=spec.echo_interval, echo_mode=spec.echo_mode,
        passive_mode=spec.passive_mode, minimum_ttl=spec.minimum_ttl), None


def _parse_peer(obj: Mapping[str, Any]) -> tuple[PeerConfig | None, str | None]:
    spec, error = parse_spec(BGPPeerSpec, obj.get("spec"))
    if spec is None:
        return None, _spec_error(error)
    hold, keepalive = timers(spec.hold_time, spec.keepalive_time)
    connect = (parse_duration_ns(spec.connect_time) // 1_000_000_000
               if spec.connect_time is not None else None)
    return PeerConfig(
        name=_name(obj), my_asn=spec.my_asn, peer_asn=spec.peer_asn,
        dynamic_asn=spec.dynamic_asn, local_asn=spec.local_asn,
        address=str(IP.parse(spec.peer_address)) if spec.peer_address else "",
        interface=spec.interface,
        source_address=str(IP.parse(spec.source_address)) if spec.source_address else "",
        port=spec.peer_port or DEFAULT_PORT, hold_time_ns=hold, keepalive_time_ns=keepalive,
        connect_time_s=connect,
        router_id=str(IP.parse(spec.router_id)) if spec.router_id else "",
        node_selectors=tuple(s.parsed() for s in spec.node_selectors),
        password=spec.password, password_secret=spec.password_secret.name,
        bfd_profile=spec.bfd_profile, graceful_restart=spec.enable_graceful_restart,
        ebgp_multihop=spec.ebgp_multi_hop, vrf=spec.vrf,
        dual_stack=spec.dual_stack_address_family, generation=_generation(obj)), None


def build_bgp_config(
    pools: Config,
    peers: Iterable[Mapping[str, Any]] = (),
    advertisements: Iterable[Mapping[str, Any]] = (),
    bfd_profiles: Iterable[Mapping[str, Any]] = (),
    communities: Iterable[Mapping[str, Any]] = (),
) -> BGPConfig:
    """Validate the BGP objects against each other and against `pools` (the layer-2
    model's accepted pools: `metallb_api.config.build_config`)."""
    problems: list[Problem] = []
    notes: list[Note] = []

    profiles: dict[str, BFDProfileConfig] = {}
    for obj in _by_name(bfd_profiles):
        profile, error = _parse_bfd(obj)
        if profile is None:
            problems.append(Problem(BFD_PROFILE, _name(obj), BGPProblemReason.INVALID_SPEC,
                                    error or "invalid spec"))
            continue
        profiles[profile.name] = profile

    aliases: dict[str, Community] = {}
    defined_in: dict[str, str] = {}
    for obj in _by_name(communities):
        name = _name(obj)
        spec, error = parse_spec(CommunitySpec, obj.get("spec"))
        if spec is None:
            problems.append(Problem(COMMUNITY, name, BGPProblemReason.INVALID_SPEC,
                                    error or "invalid spec"))
            continue
        taken = [c.name for c in spec.communities if c.name in aliases]
        if taken:
            problems.append(Problem(
                COMMUNITY, name, BGPProblemReason.DUPLICATE_COMMUNITY,
                f"spec.communities: {taken[0]!r} is already defined by Community "
                f"{defined_in[taken[0]]!r}", related=defined_in[taken[0]]))
            continue
        for alias in spec.communities:
            aliases[alias.name] = parse_community(alias.value)
            defined_in[alias.name] = name

    accepted_peers: dict[str, PeerConfig] = {}
    for obj in _by_name(peers):
        name = _name(obj)
        peer, error = _parse_peer(obj)
        if peer is None:
            problems.append(Problem(PEER, name, BGPProblemReason.INVALID_SPEC,
                                    error or "invalid spec"))
            continue
        problem = _peer_problem(peer, profiles, accepted_peers)
        if problem is not None:
            problems.append(problem)
            continue
        accepted_peers[name] = peer

    advs: dict[str, BGPAdvConfig] = {}
    for obj in _by_name(advertisements):
        adv, problem, adv_notes = _advertisement(obj, pools, aliases, accepted_peers, profiles,
                                                 advs)
        notes.extend(adv_notes)
        if problem is not None:
            problems.append(problem)
            continue
        assert adv is not None
        advs[adv.name] = adv
    return BGPConfig(accepted_peers, advs, profiles, aliases, tuple(problems), tuple(notes))


def _peer_problem(peer: PeerConfig, profiles: Mapping[str, BFDProfileConfig],
                  accepted: Mapping[str, PeerConfig]) -> Problem | None:
    if peer.bfd_profile and peer.bfd_profile not in profiles:
        return Problem(PEER, peer.name, BGPProblemReason.BFD_PROFILE_NOT_FOUND,
                       f"spec.bfdProfile: no BFDProfile named {peer.bfd_profile!r}",
                       related=peer.bfd_profile)
    where = peer.address or peer.interface
    for other in accepted.values():
        if (other.address or other.interface) == where and other.vrf == peer.vrf:
            field_name = "peerAddress" if peer.address else "interface"
            return Problem(PEER, peer.name, BGPProblemReason.DUPLICATE_PEER,
                           f"spec.{field_name}: BGPPeer {other.name!r} already peers with "
                           f"{where}" + (f" in VRF {peer.vrf!r}" if peer.vrf else ""),
                           related=other.name)
        if other.vrf != peer.vrf or not may_share_a_node(peer.node_selectors,
                                                           other.node_selectors):
            continue
        vrf = f" in VRF {peer.vrf!r}" if peer.vrf else ""
        if other.my_asn != peer.my_asn:
            return Problem(PEER, peer.name, BGPProblemReason.CONFLICTING_MY_ASN,
                           f"spec.myASN: {peer.my_asn} differs from {other.my_asn} of BGPPeer "
                           f"{other.name!r}, which can select the same nodes{vrf} (a node "
                           "has one local AS per VRF)", related=other.name)
        if other.router_id != peer.router_id:
            return Problem(PEER, peer.name, BGPProblemReason.CONFLICTING_ROUTER_ID,
                           f"spec.routerID: {peer.router_id or '(none)'} differs from "
                           f"{other.router_id or '(none)'} of BGPPeer {other.name!r}, which "
                           f"can select the same nodes{vrf} (a node has one router ID per "
                           "VRF)", related=other.name)
    return None


def _advertisement(
    obj: Mapping[str, Any], pools: Config, aliases: Mapping[str, Community],
    peers: Mapping[str, PeerConfig], profiles: Mapping[str, BFDProfileConfig],
    accepted: Mapping[str, BGPAdvConfig],
) -> tuple[BGPAdvConfig | None, Problem | None, list[Note]]:
    name = _name(obj)
    notes: list[Note] = []

    def problem(reason: BGPProblemReason, message: str,
                related: str | None = None) -> tuple[None, Problem, list[Note]]:
        return None, Problem(ADVERTISEMENT, name, reason, message, related), notes

    spec, error = parse_spec(BGPAdvertisementSpec, obj.get("spec"))
    if spec is None:
        return problem(BGPProblemReason.INVALID_SPEC, error or "invalid spec")
    values: set[Community] = set()
    for i, text in enumerate(spec.communities):
        if text in aliases:  # an alias first, as MetalLB (even one that looks like a:b)
            values.add(aliases[text])
            continue
        try:
            values.add(parse_community(text))
        except CommunityError:
            return problem(BGPProblemReason.UNKNOWN_COMMUNITY,
                           f"spec.communities[{i}]: {text!r} is neither a community "
                           "(a:b, large:a:b:c) nor an alias defined by a Community",
                           related=text)
    missing = [p for p in spec.ip_address_pools if p not in pools.held_ranges]
    if missing:
        return problem(BGPProblemReason.POOL_NOT_FOUND,
                       "spec.ipAddressPools: no IPAddressPool named "
                       + ", ".join(repr(m) for m in missing), related=missing[0])
    selectors = [s.parsed() for s in spec.ip_address_pool_selectors]
    if not spec.ip_address_pools and not selectors:
        selected = set(pools.pools)  # neither: every pool, as in MetalLB
    else:
        selected = {p for p in spec.ip_address_pools if p in pools.pools}
        selected |= {p.name for p in pools.pools.values()
                     if any(s.matches(p.labels) for s in selectors)}
        if not selected:
            notes.append(Note(ADVERTISEMENT, name, BGPNoteReason.NO_MATCHING_POOLS,
                              "no Ready IPAddressPool is selected (yet): nothing is announced"))
    adv = BGPAdvConfig(
        name=name, pools=frozenset(selected), aggregation_length=spec.aggregation_length,
        aggregation_length_v6=spec.aggregation_length_v6, local_pref=spec.local_pref,
        communities=tuple(sorted(values)),
        node_selectors=tuple(s.parsed() for s in spec.node_selectors),
        peers=frozenset(spec.peers), generation=_generation(obj))

    for pool_name in sorted(adv.pools):
        for r in pools.pools[pool_name].ranges:
            shortest = min(_cidr_lengths(r))
            if adv.length(r.family) < shortest:
                field_name = ("aggregationLength" if r.family is Family.V4
                              else "aggregationLengthV6")
                return problem(
                    BGPProblemReason.AGGREGATION_TOO_SHORT,
                    f"spec.{field_name}: {adv.length(r.family)} is shorter than the /"
                    f"{shortest} prefix of {r} in IPAddressPool {pool_name!r} (an aggregate "
                    "would announce addresses outside the pool)", related=pool_name)

    targets = [p for _, p in sorted(peers.items()) if adv.selects_peer(p.name)]
    v6_pools = sorted(p for p in adv.pools if Family.V6 in pools.pools[p].families)
    for peer in targets:
        profile = profiles.get(peer.bfd_profile)
        if v6_pools and profile is not None and profile.echo_mode:
            return problem(
                BGPProblemReason.BFD_ECHO_WITH_IPV6,
                f"spec.peers: BGPPeer {peer.name!r} uses BFDProfile {profile.name!r} with "
                f"echoMode, which IPv6 cannot do, and IPAddressPool {v6_pools[0]!r} has IPv6 "
                "addresses", related=peer.name)

    for other in accepted.values():
        if other.local_pref == adv.local_pref:
            continue
        for pool_name in sorted(adv.pools & other.pools):
            if _same_updates(adv, other, pools.pools[pool_name].families):
                return problem(
                    BGPProblemReason.CONFLICTING_LOCAL_PREF,
                    f"spec.localPref: {adv.local_pref} differs from {other.local_pref} of "
                    f"BGPAdvertisement {other.name!r}, which announces the same prefixes of "
                    f"IPAddressPool {pool_name!r} to the same peers from the same nodes",
                    related=other.name)

    missing_peers = sorted(p for p in adv.peers if p not in peers)
    if missing_peers:
        notes.append(Note(ADVERTISEMENT, name, BGPNoteReason.PEER_NOT_FOUND,
                          "spec.peers: no (valid) BGPPeer named "
                          + ", ".join(repr(p) for p in missing_peers)))
    ebgp = [p.name for p in targets if not p.ibgp]
    if adv.local_pref and ebgp:
        notes.append(Note(ADVERTISEMENT, name, BGPNoteReason.LOCAL_PREF_NOT_SENT_TO_EBGP,
                          f"spec.localPref: not sent to eBGP peers ({', '.join(ebgp)}): "
                          "only iBGP carries LOCAL_PREF"))
    return adv, None, notes


def _same_updates(a: BGPAdvConfig, b: BGPAdvConfig, families: frozenset[Family]) -> bool:
    """Whether two advertisements of one pool can produce the same BGP update (same
    prefix length, a common peer, a common node): MetalLB's advertisementsAreCompatible,
    negated, with nodes decided by the selectors alone."""
    if not any(a.length(f) == b.length(f) for f in families):
        return False
    if a.peers and b.peers and not a.peers & b.peers:
        return False
    return may_share_a_node(a.node_selectors, b.node_selectors)


# -- what a node announces -----------------------------------------------------------------

@dataclass(frozen=True, order=True)
class Prefix:
    family: Family
    network: int
    length: int

    @classmethod
    def of(cls, ip: IP, length: int) -> Prefix:
        host_bits = ip.family.bits - length
        return cls(ip.family, (ip.value >> host_bits) << host_bits, length)

    def __str__(self) -> str:
        return f"{IP(self.family, self.network)}/{self.length}"


@dataclass(frozen=True)
class Advertised:
    """One prefix to send to some of this node's peers, with its attributes."""

    prefix: Prefix
    peers: frozenset[str]
    communities: frozenset[Community] = frozenset()
    local_pref: int = 0


def advertised_for(config: BGPConfig, pool: str, ips: Iterable[IP],
                   node_labels: Mapping[str, str]) -> list[Advertised]:
    """What this node announces for a Service's addresses from `pool` (the caller decides
    the node may announce the Service at all, e.g. externalTrafficPolicy Local): one
    entry per (advertisement, address) that selects the node and one of its peers, the
    address aggregated to the advertisement's length. `merge` de-duplicates."""
    node_peers = config.peers_for_node(node_labels)
    out = []
    for _, adv in sorted(config.advertisements.items()):
        if pool not in adv.pools or not adv.selects_node(node_labels):
            continue
        for ip in ips:
            targets = frozenset(p.name for p in node_peers
                                if adv.selects_peer(p.name) and ip.family in p.families())
            if targets:
                out.append(Advertised(Prefix.of(ip, adv.length(ip.family)), targets,
                                      frozenset(adv.communities), adv.local_pref))
    return out


def merge(advertised: Iterable[Advertised]) -> dict[tuple[str, Prefix], Advertised]:
    """Per (peer, prefix): the union of communities and the highest localPref (several
    Services in one aggregate, or several advertisements of one pool)."""
    out: dict[tuple[str, Prefix], Advertised] = {}
    for a in advertised:
        for peer in a.peers:
            key = (peer, a.prefix)
            seen = out.get(key)
            if seen is None:
                out[key] = Advertised(a.prefix, frozenset([peer]), a.communities, a.local_pref)
            else:
                out[key] = Advertised(a.prefix, seen.peers, seen.communities | a.communities,
                                      max(seen.local_pref, a.local_pref))
    return out

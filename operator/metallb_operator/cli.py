"""metallbctl: the user CLI of metallb-py.

    metallbctl validate -f FILE|DIR|- [...]     check pools, advertisements, BGP objects offline
    metallbctl convert -f CONFIGMAP.yaml        MetalLB v0.12 ConfigMap -> metallb.io CRs
    metallbctl status [-n NS]                   pools, LoadBalancer Services, who announces them

Pure logic first (`load_documents`, `validate_documents`, `unknown_fields`,
`convert_configmap`, `render_status`), thin I/O around it (`main`, `fetch_status` over
the components' own client and kubeconfig loader). Validation is the same
`metallb_api.config.build_config` (and `metallb_api.bgp.build_bgp_config` for the BGP
kinds) the operator and the speaker run, so what `validate`
accepts is exactly what becomes Ready in the cluster; unknown fields are refused from the
CRD schemas as the apiserver's strict field validation (kubectl's default) refuses them.

Exit codes: 0 fine, 1 problems found (invalid configuration, API error),
2 unusable input (unreadable file, YAML syntax error, no kubeconfig, bad flags).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import yaml

from metallb_api import API_VERSION, GROUP, VERSION
from metallb_api.addresses import AddressError, Family, parse_entry
from metallb_api.bgp import ADVERTISEMENT as BGPADV_KIND
from metallb_api.bgp import BFD_PROFILE, COMMUNITY, PEER, BGPConfig, build_bgp_config
from metallb_api.config import Config, ProblemReason, build_config
from metallb_api.service import ALLOCATED_FROM_POOL

if TYPE_CHECKING:  # aiohttp is imported only by `status`: validate and convert stay quick
    from metallb_kube.client import ApiError, Connection, KubeClient

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_INPUT = 2

DEFAULT_NAMESPACE = "metallb-system"
POOL_KIND = "IPAddressPool"
L2ADV_KIND = "L2Advertisement"
L2STATUS_KIND = "ServiceL2Status"
# BGP kinds and the versions served (BGPPeer: v1beta2, and v1beta1 deprecated)
BGP_VERSIONS = {PEER: (f"{GROUP}/v1beta2", f"{GROUP}/v1beta1"), BGPADV_KIND: (API_VERSION,),
                BFD_PROFILE: (API_VERSION,), COMMUNITY: (API_VERSION,)}
BGP_KINDS = frozenset(BGP_VERSIONS)
STATUS_KINDS = frozenset({L2STATUS_KIND, "ServiceBGPStatus", "BGPSessionState"})
# Printed by validate and convert when BGPAdvertisements are present: the speakers read BGP
# objects only in BGP mode, a deployment choice no manifest shows.
BGP_MODE_NOTE = ("BGPAdvertisements are announced by speakers in BGP mode: install the chart "
                 "with --set speaker.frr.enabled=true (FRR runs beside each speaker)")
NAME_MAX = 253
_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


class InputError(Exception):
    """Input the CLI cannot work with at all (exit 2): printed as one clear line."""


# -- documents -----------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """A SafeLoader that keeps timestamps as strings, as the API server's JSON does
    (`creationTimestamp` orders overlapping pools in build_config)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class Document:
    source: str  # file name, or "<stdin>"
    index: int  # 1-based position of the YAML document in its source
    body: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return str(self.body.get("kind") or "")

    @property
    def api_version(self) -> str:
        return str(self.body.get("apiVersion") or "")

    @property
    def metadata(self) -> Mapping[str, Any]:
        meta = self.body.get("metadata")
        return meta if isinstance(meta, Mapping) else {}

    @property
    def name(self) -> str:
        name = self.metadata.get("name")
        return "" if name is None else str(name)

    @property
    def namespace(self) -> str:
        ns = self.metadata.get("namespace")
        return "" if ns is None else str(ns)

    @property
    def where(self) -> str:
        return f"{self.source} (document {self.index})"

    @property
    def ref(self) -> str:
        return f"{self.kind or '<no kind>'}/{self.name or '<no name>'}"


def _yaml_error(source: str, exc: yaml.YAMLError, text: str = "") -> InputError:
    """One line naming the place and the problem, then the offending line and a caret."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    if mark is None or not problem:
        return InputError(f"{source}: invalid YAML: {' '.join(str(exc).split())}")
    message = (f"{source}: line {mark.line + 1}, column {mark.column + 1}: invalid YAML: "
               f"{problem}" + (f" ({context})" if context else ""))
    lines = text.splitlines()
    if 0 <= mark.line < len(lines):
        message += f"\n    {lines[mark.line]}\n    {' ' * mark.column}^"
    return InputError(message)


def load_documents(text: str, source: str = "<stdin>") -> list[Document]:
    """Every non-empty YAML document of `text`; `kind: List` is expanded into its items.
    Raises InputError (never a traceback) on a YAML syntax error or a non-object document."""
    out: list[Document] = []
    try:
        for index, body in enumerate(yaml.load_all(text, Loader=_Loader), start=1):
            if body is None:
                continue
            if not isinstance(body, dict):
                raise InputError(
                    f"{source} (document {index}): expected a Kubernetes object (a mapping), "
                    f"got a {_type_name(body)}")
            items = body.get("items")
            if body.get("kind") == "List" and isinstance(items, list):
                out.extend(Document(source, index, item) for item in items
                           if isinstance(item, dict))
            else:
                out.append(Document(source, index, body))
    except yaml.YAMLError as exc:
        raise _yaml_error(source, exc, text) from None
    return out


def _type_name(value: Any) -> str:
    return {list: "list", dict: "mapping", str: "string", int: "number", float: "number",
            bool: "boolean"}.get(type(value), type(value).__name__)


MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


def expand_sources(paths: Sequence[str]) -> list[str]:
    """`-f` arguments as files: a directory is its *.yaml, *.yml and *.json files, sorted
    (not recursive, as `kubectl apply -f DIR`); `-` (stdin) and files stay as they are."""
    out: list[str] = []
    for path in paths:
        p = Path(path)
        if path != "-" and p.is_dir():
            found = sorted(str(f) for f in p.iterdir()
                           if f.suffix in MANIFEST_SUFFIXES and f.is_file())
            if not found:
                raise InputError(f"{path}: no {', '.join('*' + s for s in MANIFEST_SUFFIXES)} "
                                 f"files in this directory")
            out.extend(found)
        else:
            out.append(path)
    return out


def read_sources(paths: Sequence[str], stdin: TextIO) -> list[Document]:
    """Read and parse `-f` arguments (`-` is stdin, a directory its manifest files) into
    documents."""
    docs: list[Document] = []
    for path in expand_sources(paths):
        if path == "-":
            docs.extend(load_documents(stdin.read(), "<stdin>"))
            continue
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise InputError(f"{path}: not a UTF-8 text file") from None
        docs.extend(load_documents(text, path))
    return docs


def valid_object_name(name: str) -> bool:
    """A Kubernetes object name (DNS-1123 subdomain), as the API server requires."""
    return 0 < len(name) <= NAME_MAX and _NAME_RE.fullmatch(name) is not None


# -- unknown fields (the apiserver's strict field validation) ----------------------------

# Root `metadata` of a custom resource is decoded as ObjectMeta, whatever the CRD says.
OBJECT_META_FIELDS = frozenset({
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
    "annotations", "ownerReferences", "finalizers", "managedFields"})
CRD_DIR_ENV = "METALLB_PY_CRDS"

Schemas = Mapping[tuple[str, str], Mapping[str, Any]]


def crd_schemas(crds: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema of every served version of the CRDs given."""
    out: dict[tuple[str, str], Mapping[str, Any]] = {}
    for crd in crds:
        if crd.get("kind") != "CustomResourceDefinition":
            continue
        spec = crd.get("spec") or {}
        kind = str((spec.get("names") or {}).get("kind") or "")
        for version in spec.get("versions") or []:
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            if version.get("served") and isinstance(schema, Mapping):
                out[(f"{spec.get('group')}/{version.get('name')}", kind)] = schema
    return out


def unknown_fields(obj: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Paths of the fields the apiserver's structural pruning would drop, which strict
    field validation (kubectl's default) refuses: `spec.foo`, `spec.nodeSelectors[0].bar`.
    Type errors are not reported here (the apiserver reports them as invalid values)."""
    meta = obj.get("metadata")
    # The apiserver's order: ObjectMeta's fields first (decoded on their own), then the
    # pruned paths, each group sorted.
    unknown_meta = sorted(f"metadata.{k}" for k in meta if k not in OBJECT_META_FIELDS
                          ) if isinstance(meta, Mapping) else []
    out: list[str] = []
    root = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    _prune(root, schema, "", out)
    return unknown_meta + sorted(out)


def _prune(value: Any, schema: Mapping[str, Any], path: str, out: list[str]) -> None:
    if isinstance(value, Mapping):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
        for key, item in value.items():
            at = f"{path}.{key}" if path else str(key)
            if key in props:
                _prune(item, props[key], at, out)
            elif isinstance(extra, Mapping):
                _prune(item, extra, at, out)
            elif not (preserve or extra is True):
                out.append(at)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(value):
            _prune(item, schema["items"], f"{path}[{i}]", out)


def strict_decoding_error(api_version: str, kind: str, fields: Sequence[str]) -> str:
    """The apiserver's message for a request with fieldValidation=Strict."""
    version = api_version.rpartition("/")[2]
    return (f'{kind} in version "{version}" cannot be handled as a {kind}: strict decoding '
            f'error: ' + ", ".join(f'unknown field "{f}"' for f in fields))


def default_crd_dir() -> Path | None:
    """$METALLB_PY_CRDS, else the CRDs shipped in the package (a symlink to the source
    tree's crds/ in a checkout, copies in a wheel or the image)."""
    env = os.environ.get(CRD_DIR_ENV)
    if env:
        return Path(env)
    here = Path(__file__).parent / "crds"
    return here if here.is_dir() and any(here.glob("*.yaml")) else None


def read_crd_schemas(directory: Path) -> dict[tuple[str, str], Mapping[str, Any]]:
    try:
        docs = [d for f in sorted(directory.glob("*.yaml"))
                for d in yaml.safe_load_all(f.read_text(encoding="utf-8"))
                if isinstance(d, Mapping)]
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"CRDs in {directory}: {exc}") from None
    schemas = crd_schemas(docs)
    if not schemas:
        raise InputError(f"{directory}: no CustomResourceDefinitions found")
    return schemas


# -- validate ------------------------------------------------------------------------------


@dataclass
class Report:
    """What a subcommand prints and its exit code; `main` only writes it out."""

    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    code: int = EXIT_OK

    def write(self, stdout: TextIO, stderr: TextIO) -> int:
        for line in self.out:
            print(line, file=stdout)
        for line in self.err:
            print(line, file=stderr)
        return self.code


def _classify(doc: Document) -> str | None:
    """None when the document is one validate checks, else why it is ignored."""
    kind, api = doc.kind, doc.api_version
    if api == API_VERSION and kind in (POOL_KIND, L2ADV_KIND):
        return None
    if api.startswith(GROUP + "/"):
        if kind in (POOL_KIND, L2ADV_KIND):
            return f"metallb-py serves {kind} as {API_VERSION} only, not {api}"
        if kind in BGP_KINDS:
            if api in BGP_VERSIONS[kind]:
                return None
            return (f"metallb-py serves {kind} as "
                    f"{' or '.join(BGP_VERSIONS[kind])} only, not {api}")
        if kind in STATUS_KINDS:
            return "status object written by the speaker"
        return f"unknown {GROUP} kind"
    if kind == "ConfigMap" and _configmap_config(doc.body) is not None:
        return (f"a MetalLB v0.12 configuration ConfigMap: convert it with "
                f"`metallbctl convert -f {doc.source}`")
    if not kind:
        return "not a Kubernetes object (no kind)"
    return f"not a {GROUP} object"


def _flags(pool_body: Mapping[str, Any]) -> str:
    spec = pool_body.get("spec") or {}
    flags = []
    if spec.get("autoAssign") is False:
        flags.append("autoAssign: false")
    if spec.get("avoidBuggyIPs") is True:
        flags.append("avoidBuggyIPs: true")
    return "".join(f"; {f}" for f in flags)


def pool_summary(name: str, addresses: Sequence[str], config: Config,
                 body: Mapping[str, Any]) -> str:
    pool = config.pools[name]
    return (f"{POOL_KIND}/{name}: {', '.join(addresses)}; usable IPv4: "
            f"{pool.size(Family.V4)}, IPv6: {pool.size(Family.V6)}{_flags(body)}")


def validate_documents(docs: Sequence[Document], schemas: Schemas | None = None,
                       namespace: str | None = DEFAULT_NAMESPACE) -> Report:
    """Run build_config over the IPAddressPools and L2Advertisements among `docs`.

    Problems: `KIND/NAME: reason: message` on stdout, exit 1. Otherwise one summary
    line per pool and advertisement, exit 0. Ignored documents are noted on stderr.
    With `schemas` (see `crd_schemas`), fields the CRD does not define are refused as the
    apiserver refuses them; objects outside `namespace` (the operator's) are warned about."""
    report = Report()
    selected: list[Document] = []
    problems: list[tuple[str, str, str, str]] = []
    seen: dict[tuple[str, str], list[Document]] = {}
    for doc in docs:
        why = _classify(doc)
        if why is not None:
            report.err.append(f"note: {doc.where}: ignored {doc.ref}: {why}")
            continue
        schema = schemas.get((doc.api_version, doc.kind)) if schemas else None
        unknown = unknown_fields(doc.body, schema) if schema else []
        if unknown:
            problems.append((doc.kind, doc.name or "<no name>", "UnknownField",
                             f"{doc.where}: "
                             f"{strict_decoding_error(doc.api_version, doc.kind, unknown)}"))
            continue
        if namespace and doc.namespace and doc.namespace != namespace:
            report.err.append(
                f"warning: {doc.where}: {doc.ref} is in namespace {doc.namespace}: "
                f"metallb-py reads {POOL_KIND}s and {L2ADV_KIND}s only in its own namespace "
                f"{namespace} (--namespace), so this object would be ignored")
        if not valid_object_name(doc.name):
            problems.append((doc.kind, doc.name or "<no name>", "InvalidName",
                             f"{doc.where}: metadata.name {doc.name!r} is not a valid "
                             f"Kubernetes name (lowercase letters, digits, '-' and '.')"
                             if doc.name else f"{doc.where}: metadata.name is required"))
            continue
        # Without a namespace an object lands wherever it is applied: it clashes with a
        # same-named object of any namespace.
        first = next((d for d in seen.get((doc.kind, doc.name), [])
                      if not d.namespace or not doc.namespace or d.namespace == doc.namespace),
                     None)
        if first is not None:
            problems.append((doc.kind, doc.name, "DuplicateName",
                             f"{doc.where} defines it again (first in {first.where})"))
            continue
        seen.setdefault((doc.kind, doc.name), []).append(doc)
        selected.append(doc)

    if not selected and not problems:
        report.err.append(f"error: no {API_VERSION} {POOL_KIND} or {L2ADV_KIND} in the input")
        report.code = EXIT_PROBLEMS
        return report

    # The operator reads one namespace: validate each namespace's objects together;
    # objects without a namespace land wherever they are applied, so they join each.
    namespaces = sorted({d.namespace for d in selected if d.namespace})
    if len(namespaces) > 1:
        report.err.append("note: the documents span namespaces " + ", ".join(namespaces)
                          + ": each is validated on its own (the operator reads one)")
    summaries: dict[tuple[str, str], str] = {}
    unadvertised: dict[str, None] = {}
    bgp_advertised: set[str] = set()  # pools BGPAdvertisements select (announced over BGP)
    for ns in namespaces or [""]:
        group = [d for d in selected if d.namespace in (ns, "")]
        pools = [d for d in group if d.kind == POOL_KIND]
        config = build_config([d.body for d in pools],
                              [d.body for d in group if d.kind == L2ADV_KIND])
        problems.extend((p.kind, p.name, str(p.reason), p.message) for p in config.problems)
        # Valid, but worth knowing (a selector that matches nothing yet): never a failure.
        report.err.extend(f"note: {n.kind}/{n.name}: {n.reason}: {n.message}"
                          for n in config.notes)
        for doc in pools:
            if doc.name in config.pools:
                addresses = [str(a).strip() for a in doc.body["spec"]["addresses"]]
                summaries[(POOL_KIND, doc.name)] = pool_summary(doc.name, addresses, config,
                                                                doc.body)
                if doc.name not in config.advertised_pools():
                    unadvertised[doc.name] = None
        for adv in config.l2advertisements.values():
            summaries[(L2ADV_KIND, adv.name)] = _adv_summary(config, adv.name)
        # BGP objects: the same pure rules as the operator (metallb_api.bgp)
        bgp = build_bgp_config(config, *([d.body for d in group if d.kind == kind]
                                         for kind in (PEER, BGPADV_KIND, BFD_PROFILE,
                                                      COMMUNITY)))
        problems.extend((p.kind, p.name, str(p.reason), p.message) for p in bgp.problems)
        report.err.extend(f"note: {n.kind}/{n.name}: {n.reason}: {n.message}"
                          for n in bgp.notes)
        summaries.update(_bgp_summaries(bgp))
        bgp_advertised.update(bgp.advertised_pools())

    if problems:
        for kind, name, reason, message in dict.fromkeys(problems):
            report.out.append(f"{kind}/{name}: {reason}: {message}")
        if any(p[2] == ProblemReason.OVERLAPS_POOL for p in problems) and not all(
                d.metadata.get("creationTimestamp") for d in selected if d.kind == POOL_KIND):
            report.err.append("note: without creationTimestamp (as in files), overlapping "
                              "pools are ordered by name: the first name keeps the addresses")
        report.code = EXIT_PROBLEMS
        return report
    report.out.extend(summaries[k] for k in sorted(summaries, key=lambda k: (k[0] != POOL_KIND,
                                                                            k[1])))
    with_bgp = any(d.kind == BGPADV_KIND for d in selected)
    if with_bgp or any(d.kind == L2ADV_KIND for d in selected):
        kinds = f"{L2ADV_KIND} or {BGPADV_KIND}" if with_bgp else L2ADV_KIND
        report.err.extend(
            f"warning: {POOL_KIND}/{name}: no {kinds} selects it: its addresses "
            f"would be assigned but not announced" for name in unadvertised
            if name not in bgp_advertised)
    if with_bgp:
        report.err.append(f"note: {BGP_MODE_NOTE}")  # a note: never a failure
    return report


def _bgp_summaries(bgp: BGPConfig) -> dict[tuple[str, str], str]:
    out = {}
    for peer in bgp.peers.values():
        remote = peer.dynamic_asn or f"AS {peer.peer_asn}"
        line = (f"{PEER}/{peer.name}: AS {peer.my_asn} to {remote} at "
                f"{peer.address or peer.interface}" + (f" (VRF {peer.vrf})" if peer.vrf else ""))
        if peer.bfd_profile:
            line += f"; BFD profile {peer.bfd_profile}"
        out[(PEER, peer.name)] = line
    for adv in bgp.advertisements.values():
        line = (f"{BGPADV_KIND}/{adv.name}: announces " + (", ".join(sorted(adv.pools))
                                                           or "no pools")
                + " to " + (", ".join(sorted(adv.peers)) or "every peer"))
        if adv.communities:
            line += "; communities " + ", ".join(str(c) for c in adv.communities)
        if adv.local_pref:
            line += f"; localPref {adv.local_pref}"
        out[(BGPADV_KIND, adv.name)] = line
    for profile in bgp.bfd_profiles.values():
        out[(BFD_PROFILE, profile.name)] = f"{BFD_PROFILE}/{profile.name}: valid"
    return out


def _adv_summary(config: Config, name: str) -> str:
    adv = config.l2advertisements[name]
    line = f"{L2ADV_KIND}/{name}: announces " + (", ".join(sorted(adv.pools)) or "no pools")
    if adv.node_selectors:
        line += f"; from nodes matching {len(adv.node_selectors)} selector(s)"
    if adv.interfaces:
        line += "; interfaces " + ", ".join(adv.interfaces)
    return line


# -- convert -------------------------------------------------------------------------------

V012_POOL_KEYS = frozenset({"name", "protocol", "addresses", "auto-assign", "avoid-buggy-ips",
                            "bgp-advertisements"})
V012_BGP_KEYS = ("peers", "bgp-communities", "bfd-profiles")
# v0.12 peer / bfd-profile / bgp-advertisement keys -> CRD field names (MetalLB's
# configmaptocrs does the same mapping)
V012_PEER_KEYS = {"my-asn": "myASN", "peer-asn": "peerASN", "peer-address": "peerAddress",
                  "source-address": "sourceAddress", "peer-port": "peerPort",
                  "hold-time": "holdTime", "keepalive-time": "keepaliveTime",
                  "router-id": "routerID", "password": "password", "bfd-profile": "bfdProfile",
                  "ebgp-multihop": "ebgpMultiHop", "node-selectors": "nodeSelectors"}
V012_BFD_KEYS = {"receive-interval": "receiveInterval", "transmit-interval": "transmitInterval",
                 "detect-multiplier": "detectMultiplier", "echo-interval": "echoInterval",
                 "echo-mode": "echoMode", "passive-mode": "passiveMode",
                 "minimum-ttl": "minimumTtl"}
V012_BGPADV_KEYS = {"aggregation-length": "aggregationLength",
                    "aggregation-length-v6": "aggregationLengthV6", "localpref": "localPref",
                    "communities": "communities"}
V012_HOLD_TIME = "90s"  # v0.12's default, which its converter writes out (FRR's is 180 s)


@dataclass
class Conversion:
    manifests: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # worth knowing, nothing to fix
    errors: list[str] = field(default_factory=list)
    source: str = ""  # "ConfigMap NS/NAME" the pools came from


def _configmap_config(body: Mapping[str, Any]) -> Any:
    data = body.get("data")
    if not isinstance(data, Mapping) or "config" not in data:
        return None
    return data["config"]


def _find_config(docs: Sequence[Document]) -> tuple[str, str, Any]:
    """(what, where, parsed v0.12 configuration) from a ConfigMap, or a bare config file."""
    candidates = [d for d in docs if d.kind == "ConfigMap" and _configmap_config(d.body)
                  is not None]
    bare = [d for d in docs if not d.kind and "address-pools" in d.body]
    if len(candidates) > 1:
        names = ", ".join(f"{d.namespace or '-'}/{d.name}" for d in candidates)
        raise InputError(f"several ConfigMaps hold data.config ({names}): pass one at a time")
    if candidates:
        doc = candidates[0]
        what = f"ConfigMap {doc.namespace + '/' if doc.namespace else ''}{doc.name or '<no name>'}"
        text = _configmap_config(doc.body)
        if not isinstance(text, str):
            raise InputError(f"{doc.where}: {what}: data.config must be a string")
        where = f"{doc.where}: {what} data.config"
        try:
            parsed = yaml.load(text, Loader=_Loader)
        except yaml.YAMLError as exc:
            raise _yaml_error(where, exc, text) from None
        return what, where, parsed
    if bare:
        return f"configuration file {bare[0].source}", bare[0].where, bare[0].body
    seen = ", ".join(d.ref for d in docs) or "no documents"
    raise InputError(f"no MetalLB v0.12 ConfigMap (a ConfigMap with data.config) in the "
                     f"input ({seen})")


def convert_configmap(docs: Sequence[Document], namespace: str = DEFAULT_NAMESPACE
                      ) -> Conversion:
    """MetalLB v0.12 ConfigMap -> IPAddressPools (same names, camelCased fields), one
    L2Advertisement per layer2 pool, and for BGP (as MetalLB's configmaptocrs): BGPPeers
    peer1..N, BFDProfiles, one Community `communities`, BGPAdvertisements
    bgpadvertisement1..N (one per bgp-advertisements entry, or one per bgp pool without
    any). BGP pools are announced by speakers in BGP mode: a note says how it is turned on.
    The result is run through `validate_documents`; anything it refuses is an error."""
    what, where, config = _find_config(docs)
    conv = Conversion(source=what)
    if not isinstance(config, Mapping):
        conv.errors.append(f"{where}: expected a mapping with address-pools, got a "
                           f"{_type_name(config)}")
        return conv
    for key in config:
        if key not in V012_BGP_KEYS and key != "address-pools":
            conv.warnings.append(f"{where}: unknown field {key!r} ignored")
    bgp_objects = _convert_bgp(config, namespace, conv)
    entries = config.get("address-pools")
    if not isinstance(entries, list) or not entries:
        conv.errors.append(f"{where}: address-pools: expected a non-empty list of pools")
        return conv

    pools: list[dict[str, Any]] = []
    advs: list[dict[str, Any]] = []
    bgp_advs: list[dict[str, Any]] = []
    names: set[str] = set()
    for i, entry in enumerate(entries):
        at = f"address-pools[{i}]"
        if not isinstance(entry, Mapping):
            conv.errors.append(f"{at}: expected a mapping, got a {_type_name(entry)}")
            continue
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            conv.errors.append(f"{at}: name: required (a string)")
            continue
        at = f"{at} ({name})"
        if not valid_object_name(name):
            conv.errors.append(
                f"{at}: name: {name!r} is not a valid Kubernetes object name (lowercase "
                f"letters, digits, '-' and '.'); rename the pool, and the Services' "
                f"metallb.universe.tf/address-pool annotations that name it")
            continue
        if name in names:
            conv.errors.append(f"{at}: name: duplicate pool name")
            continue
        names.add(name)
        errors = _check_pool(entry, at, conv.warnings)
        if errors:
            conv.errors.extend(errors)
            continue
        pools.append(_pool_manifest(entry, namespace))
        if entry["protocol"] == "layer2":
            advs.append(_l2adv_manifest(name, namespace))
        else:
            for j, raw in enumerate(entry.get("bgp-advertisements") or [{}]):
                bgp_adv = _bgpadv_manifest(raw, name, len(bgp_advs) + 1, namespace,
                                           f"{at}: bgp-advertisements[{j}]", conv)
                if bgp_adv is not None:
                    bgp_advs.append(bgp_adv)
    if conv.errors:
        return conv
    conv.manifests = pools + advs + bgp_objects + bgp_advs
    check = validate_documents([Document("<converted>", i, m)
                                for i, m in enumerate(conv.manifests, start=1)],
                               namespace=namespace)
    if check.code != EXIT_OK:
        conv.errors.extend(check.out + [e for e in check.err if not e.startswith("warning:")])
        conv.manifests = []
        return conv
    if bgp_advs:
        conv.notes.append(BGP_MODE_NOTE)
    # Whatever the reason, a pool nothing announces is never produced silently: its
    # addresses would be assigned to Services that nobody can reach.
    advertised = build_config(pools, advs).advertised_pools() | {
        p for adv in bgp_advs for p in adv["spec"].get("ipAddressPools", [])}
    for pool_manifest in pools:
        name = pool_manifest["metadata"]["name"]
        if name not in advertised and not any(w.startswith(f"{POOL_KIND}/{name}: ")
                                              for w in conv.warnings):
            conv.warnings.append(f"{POOL_KIND}/{name}: no {L2ADV_KIND} announces it: its "
                                 f"addresses would be assigned but not announced")
    return conv


def _check_pool(entry: Mapping[str, Any], at: str, warnings: list[str]) -> list[str]:
    errors: list[str] = []
    protocol = entry.get("protocol")
    if protocol not in ("layer2", "bgp"):
        errors.append(f"{at}: protocol: expected layer2 or bgp, got {protocol!r}")
    addresses = entry.get("addresses")
    if not isinstance(addresses, list) or not addresses:
        errors.append(f"{at}: addresses: expected a non-empty list")
    else:
        for j, address in enumerate(addresses):
            try:
                parse_entry(str(address))
            except AddressError as exc:
                errors.append(f"{at}: addresses[{j}]: {exc}")
    for key in ("auto-assign", "avoid-buggy-ips"):
        if key in entry and not isinstance(entry[key], bool):
            errors.append(f"{at}: {key}: expected true or false, got {entry[key]!r}")
    for key in entry:
        if key not in V012_POOL_KEYS:
            warnings.append(f"{at}: unknown field {key!r} ignored")
    if "bgp-advertisements" in entry and protocol != "bgp":
        warnings.append(f"{at}: bgp-advertisements: ignored (protocol {protocol}), as by "
                        f"MetalLB")
    return errors


def _manifest(kind: str, name: str, namespace: str, spec: dict[str, Any],
              api_version: str = API_VERSION) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind,
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def _renamed(raw: Any, keys: Mapping[str, str], at: str, conv: Conversion) -> dict[str, Any]:
    """A v0.12 entry's fields under their CRD names; unknown ones warned about. The values
    are checked by `validate_documents` afterwards (same rules as the API server)."""
    if not isinstance(raw, Mapping):
        conv.errors.append(f"{at}: expected a mapping, got a {_type_name(raw)}")
        return {}
    out = {}
    for key, value in raw.items():
        if key in keys:
            out[keys[key]] = value
        elif key != "name":
            conv.warnings.append(f"{at}: unknown field {key!r} ignored")
    return out


def _convert_bgp(config: Mapping[str, Any], namespace: str,
                 conv: Conversion) -> list[dict[str, Any]]:
    """v0.12 `peers` -> BGPPeer peer1..N, `bfd-profiles` -> BFDProfiles (same names),
    `bgp-communities` -> one Community `communities`: as MetalLB's configmaptocrs."""
    out: list[dict[str, Any]] = []
    peers = config.get("peers") or []
    if not isinstance(peers, list):
        conv.errors.append(f"peers: expected a list, got a {_type_name(peers)}")
        peers = []
    for i, raw in enumerate(peers):
        spec = _renamed(raw, V012_PEER_KEYS, f"peers[{i}]", conv)
        if not spec:
            continue
        spec.setdefault("holdTime", V012_HOLD_TIME)
        for key in ("holdTime", "keepaliveTime"):
            spec[key] = str(spec[key]) if key in spec else None
        spec = {k: v for k, v in spec.items() if v is not None}
        if "nodeSelectors" in spec:
            spec["nodeSelectors"] = [
                _renamed(s, {"match-labels": "matchLabels",
                             "match-expressions": "matchExpressions"},
                         f"peers[{i}].node-selectors[{j}]", conv)
                for j, s in enumerate(spec["nodeSelectors"] or [])]
        out.append(_manifest(PEER, f"peer{i + 1}", namespace, spec, f"{GROUP}/v1beta2"))
    profiles = config.get("bfd-profiles") or []
    for i, raw in enumerate(profiles if isinstance(profiles, list) else []):
        name = raw.get("name") if isinstance(raw, Mapping) else None
        if not isinstance(name, str) or not valid_object_name(name):
            conv.errors.append(f"bfd-profiles[{i}]: name: {name!r} is not a valid Kubernetes "
                               f"object name")
            continue
        out.append(_manifest(BFD_PROFILE, name, namespace,
                             _renamed(raw, V012_BFD_KEYS, f"bfd-profiles[{i}]", conv)))
    communities = config.get("bgp-communities") or {}
    if not isinstance(communities, Mapping):
        conv.errors.append(f"bgp-communities: expected a mapping of name to value, got a "
                           f"{_type_name(communities)}")
    elif communities:
        out.append(_manifest(COMMUNITY, "communities", namespace, {"communities": [
            {"name": str(k), "value": str(v)} for k, v in sorted(communities.items())]}))
    return out


def _bgpadv_manifest(raw: Any, pool: str, index: int, namespace: str, at: str,
                     conv: Conversion) -> dict[str, Any] | None:
    spec = _renamed(raw, V012_BGPADV_KEYS, at, conv) if raw else {}
    if raw and not spec and conv.errors:
        return None
    return _manifest(BGPADV_KIND, f"bgpadvertisement{index}", namespace,
                     spec | {"ipAddressPools": [pool]})


def _pool_manifest(entry: Mapping[str, Any], namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": POOL_KIND,
        "metadata": {"name": entry["name"], "namespace": namespace},
        "spec": {
            "addresses": [str(a).strip() for a in entry["addresses"]],
            "autoAssign": bool(entry.get("auto-assign", True)),
            "avoidBuggyIPs": bool(entry.get("avoid-buggy-ips", False)),
        },
    }


def _l2adv_manifest(pool: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": L2ADV_KIND,
        "metadata": {"name": pool, "namespace": namespace},
        "spec": {"ipAddressPools": [pool]},
    }


def dump_manifests(manifests: Iterable[Mapping[str, Any]], header: str = "") -> str:
    """A multi-document YAML stream `kubectl apply -f -` accepts."""
    parts = [yaml.safe_dump(dict(m), sort_keys=False, default_flow_style=False)
             for m in manifests]
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    return comment + "".join(f"---\n{p}" for p in parts)


def convert_report(docs: Sequence[Document], namespace: str) -> Report:
    conv = convert_configmap(docs, namespace)
    report = Report(err=[f"warning: {w}" for w in conv.warnings]
                    + [f"note: {n}" for n in conv.notes])
    if conv.errors:
        report.err.extend(f"error: {e}" for e in conv.errors)
        report.err.append(f"error: {conv.source} not converted")
        report.code = EXIT_PROBLEMS
        return report
    header = f"Converted by metallbctl from MetalLB v0.12 {conv.source}."
    report.out.append(dump_manifests(conv.manifests, header).rstrip("\n"))
    counts: dict[str, int] = {POOL_KIND: 0, L2ADV_KIND: 0}
    for m in conv.manifests:
        counts[m["kind"]] = counts.get(m["kind"], 0) + 1
    what = " and ".join(f"{n} {kind}(s)" for kind, n in counts.items()) if len(counts) == 2 \
        else ", ".join(f"{n} {kind}(s)" for kind, n in counts.items() if n)
    report.err.append(f"converted {what} into namespace {namespace}")
    return report


# -- status --------------------------------------------------------------------------------


def _conditions(obj: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    status = obj.get("status") or {}
    conds = status.get("conditions") if isinstance(status, Mapping) else None
    return {str(c.get("type")): c for c in conds or [] if isinstance(c, Mapping)}


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return ["   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in [header, *rows]]


def _name(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _ingress(svc: Mapping[str, Any]) -> list[str]:
    lb = (svc.get("status") or {}).get("loadBalancer") or {}
    return [str(i.get("ip") or i.get("hostname")) for i in lb.get("ingress") or []
            if isinstance(i, Mapping) and (i.get("ip") or i.get("hostname"))]


def _announcements(statuses: Iterable[Mapping[str, Any]]
                   ) -> dict[tuple[str, str], dict[str, tuple[str, ...]]]:
    """(service namespace, name) -> node -> peers, from ServiceL2Statuses or
    ServiceBGPStatuses (incomplete ones skipped)."""
    out: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {}
    for st in statuses:
        s = st.get("status") or {}
        if isinstance(s, Mapping) and s.get("node") and s.get("serviceName"):
            key = (str(s.get("serviceNamespace") or ""), str(s["serviceName"]))
            peers = s.get("peers")
            out.setdefault(key, {})[str(s["node"])] = tuple(
                sorted(str(p) for p in peers)) if isinstance(peers, list) else ()
    return out


def _bgp_cell(nodes: Mapping[str, tuple[str, ...]]) -> str:
    """`bgp: node-1,node-2 -> router-v4`: nodes grouped by the peers they announce to."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for node, peers in sorted(nodes.items()):
        groups.setdefault(peers, []).append(node)
    parts = [",".join(names) + (f" -> {','.join(peers)}" if peers else "")
             for peers, names in sorted(groups.items(), key=lambda g: g[1])]
    return "bgp: " + "; ".join(parts)


def _sessions(states: Sequence[Mapping[str, Any]]) -> tuple[list[list[str]], list[str]]:
    """BGPSessionStates: table rows (node, peer, address, BGP, BFD) and a warning for
    each session not Established, with the condition's reason and message."""
    rows, warnings = [], []
    for obj in sorted(states, key=lambda o: (str((o.get("status") or {}).get("node")),
                                             str((o.get("status") or {}).get("peer")))):
        st = obj.get("status") or {}
        if not st.get("node") or not st.get("peer"):
            continue  # not written yet
        rows.append([str(st["node"]), str(st["peer"]), str(st.get("peerAddress") or "-"),
                     str(st.get("bgpStatus") or "-"), str(st.get("bfdStatus") or "-")])
        cond = _conditions(obj).get("Established")
        if cond and cond.get("status") != "True":
            warnings.append(f"BGP session {st['node']} -> {st['peer']}: not Established "
                            f"({cond.get('reason')}): {cond.get('message')}")
    return rows, warnings


def render_status(pools: Sequence[Mapping[str, Any]], services: Sequence[Mapping[str, Any]],
                  statuses: Sequence[Mapping[str, Any]], *, namespace: str | None = None,
                  bgp_statuses: Sequence[Mapping[str, Any]] = (),
                  sessions: Sequence[Mapping[str, Any]] = ()) -> str:
    """The `metallbctl status` text from plain API objects (camelCase JSON as dicts):
    IPAddressPools of the namespace, LoadBalancer Services, ServiceL2Statuses,
    ServiceBGPStatuses and BGPSessionStates (the BGP sessions table only when there
    are some)."""
    lines: list[str] = []
    warnings: list[str] = []
    in_ns = f" in namespace {namespace}" if namespace else ""
    rows = []
    no_status = []
    for pool in sorted(pools, key=_name):
        _, name = _name(pool)
        spec = pool.get("spec") or {}
        status = pool.get("status") or {}
        conds = _conditions(pool)
        ready = conds.get("Ready")
        assigned = status.get("assignedTotal")
        available = status.get("availableTotal")
        rows.append([
            name,
            ",".join(str(a) for a in spec.get("addresses") or []) or "-",
            "-" if assigned is None else str(assigned),
            "-" if available is None else str(available),
            f"{ready.get('status')}/{ready.get('reason')}" if ready else "-",
        ])
        if not conds:
            no_status.append(name)
        for ctype in ("Ready", "Advertised"):
            cond = conds.get(ctype)
            if cond and cond.get("status") == "False":
                warnings.append(f"{POOL_KIND}/{name}: {ctype}=False {cond.get('reason')}: "
                                f"{cond.get('message')}")
    if rows:
        lines += _table(["POOL", "ADDRESSES", "ASSIGNED", "AVAILABLE", "READY/REASON"], rows)
    else:
        lines.append(f"No {POOL_KIND}s{in_ns}.")
    if no_status:
        warnings.append(f"{POOL_KIND}/{', '.join(no_status)}: no status yet: is the "
                        f"metallb-py operator running{in_ns}?")

    l2 = _announcements(statuses)
    bgp = _announcements(bgp_statuses)
    rows = []
    for svc in sorted(services, key=_name):
        ns, name = _name(svc)
        annotations = (svc.get("metadata") or {}).get("annotations") or {}
        rows.append([
            f"{ns}/{name}",
            ",".join(_ingress(svc)) or "<pending>",
            str(annotations.get(ALLOCATED_FROM_POOL) or "-"),
            _announced_by(l2.get((ns, name), {}), bgp.get((ns, name), {})),
        ])
    lines.append("")
    if rows:
        lines += _table(["SERVICE", "EXTERNAL-IP", "POOL", "ANNOUNCED BY"], rows)
    else:
        lines.append("No LoadBalancer Services.")
    session_rows, session_warnings = _sessions(sessions)
    if session_rows:
        lines.append("")
        lines += _table(["NODE", "BGP PEER", "ADDRESS", "BGP", "BFD"], session_rows)
    warnings += session_warnings
    if warnings:
        lines += ["", "WARNINGS:"] + [f"  {w}" for w in warnings]
    return "\n".join(lines)


def _announced_by(l2: Mapping[str, tuple[str, ...]], bgp: Mapping[str, tuple[str, ...]]) -> str:
    """Layer 2's nodes as before (`node-a`); with BGP as well, each mode named."""
    l2_nodes = ",".join(sorted(l2))
    if not bgp:
        return l2_nodes or "-"
    return "; ".join(([f"l2: {l2_nodes}"] if l2_nodes else []) + [_bgp_cell(bgp)])


def default_kubeconfig() -> str:
    return os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")


def status_connection(kubeconfig: str | None, context: str | None = None) -> Connection:
    """The components' own kubeconfig loader (exec plugins, merged $KUBECONFIG files,
    tls-server-name, proxy-url, keys kept in memory), so metallbctl connects as they do."""
    from metallb_kube.kubeconfig import SA_TOKEN, KubeconfigError, load_connection

    in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and SA_TOKEN.exists()
    if kubeconfig or os.environ.get("KUBECONFIG") or not in_cluster:
        path = kubeconfig or default_kubeconfig()
        if not any(Path(p).expanduser().is_file() for p in path.split(os.pathsep) if p):
            raise InputError(f"kubeconfig {path} not found: pass --kubeconfig or set "
                             f"$KUBECONFIG")
    try:
        return load_connection(kubeconfig, context)
    except KubeconfigError as exc:
        raise InputError(f"kubeconfig: {exc}") from None


Objects = list[dict[str, Any]]


async def fetch_status(client: KubeClient, namespace: str
                       ) -> tuple[Objects, Objects, Objects, Objects, Objects]:
    """(IPAddressPools in `namespace`, LoadBalancer Services in every namespace,
    ServiceL2Statuses, ServiceBGPStatuses and BGPSessionStates in `namespace`) as plain
    JSON dicts."""
    from metallb_kube.client import ApiError

    base = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}"

    async def optional(plural: str) -> Objects:
        try:
            objs, _ = await client.list_all(f"{base}/{plural}")
        except ApiError as exc:
            if not exc.not_found:
                raise
            return []  # CRDs from before BGP mode (or before the kind): layer 2 only
        return objs

    pools, _ = await client.list_all(f"{base}/ipaddresspools")
    statuses, _ = await client.list_all(f"{base}/servicel2statuses")
    bgp_statuses = await optional("servicebgpstatuses")
    sessions = await optional("bgpsessionstates")
    services, _ = await client.list_all("/api/v1/services")
    lbs = [s for s in services if (s.get("spec") or {}).get("type") == "LoadBalancer"]
    return pools, lbs, statuses, bgp_statuses, sessions


def _api_error(exc: ApiError) -> str:
    if exc.status == 0:
        return f"cannot reach the API server: {exc.message}"
    if exc.status == 404:
        return f"API server: 404 {exc.message} (are the {GROUP} CRDs installed?)"
    return f"API server: {exc.status} {exc.message or exc.reason}"


def status_report(kubeconfig: str | None, context: str | None, namespace: str) -> Report:
    from metallb_kube.client import ApiError, KubeClient

    conn = status_connection(kubeconfig, context)

    async def fetch() -> tuple[Objects, Objects, Objects, Objects, Objects]:
        async with KubeClient(conn, limit=4, user_agent="metallbctl") as client:
            return await fetch_status(client, namespace)

    try:
        pools, services, statuses, bgp_statuses, sessions = asyncio.run(fetch())
    except ApiError as exc:
        return Report(err=[f"error: {_api_error(exc)}"], code=EXIT_PROBLEMS)
    return Report(out=[render_status(pools, services, statuses, namespace=namespace,
                                     bgp_statuses=bgp_statuses, sessions=sessions)])


# -- main ----------------------------------------------------------------------------------


def _version() -> str:
    """The installed distribution's version (the one `pip show metallb-py` names)."""
    try:
        return importlib.metadata.version("metallb-py")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metallbctl", description="metallb-py command line: validate, convert, status.")
    parser.add_argument("--version", action="version", version=f"metallbctl {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "validate", help="check IPAddressPool/L2Advertisement/BGP manifests offline",
        description="Check IPAddressPool, L2Advertisement, BGPPeer, BGPAdvertisement, "
                    "BFDProfile and Community manifests with the same rules as the operator. "
                    "Exit 1 on problems, 2 on unreadable input.")
    p.add_argument("-f", "--filename", action="append", required=True, metavar="FILE",
                   help="YAML/JSON file with one or more documents, a directory (its *.yaml, "
                        "*.yml and *.json files), or '-' for stdin (repeatable)")
    p.add_argument("-n", "--namespace", default=DEFAULT_NAMESPACE,
                   help=f"namespace metallb-py runs in: objects elsewhere are ignored by it "
                        f"(default {DEFAULT_NAMESPACE})")
    p.add_argument("--crds", default=None, metavar="DIR",
                   help=f"CRD manifests whose schemas define the known fields (default: "
                        f"${CRD_DIR_ENV}, else the source tree's crds/)")

    p = sub.add_parser(
        "convert", help="convert a MetalLB v0.12 ConfigMap into metallb.io objects",
        description="Print IPAddressPools and L2Advertisements (and BGPPeers, BFDProfiles, "
                    "Communities, BGPAdvertisements for its BGP sections) for a MetalLB v0.12 "
                    "ConfigMap, ready for `kubectl apply -f -`.")
    p.add_argument("-f", "--filename", required=True, metavar="FILE",
                   help="the ConfigMap (YAML, may hold other documents); '-' reads stdin")
    p.add_argument("-n", "--namespace", default=DEFAULT_NAMESPACE,
                   help=f"namespace of the generated objects (default {DEFAULT_NAMESPACE})")

    p = sub.add_parser(
        "status", help="show pools, LoadBalancer Services and who announces them",
        description="Read IPAddressPools, LoadBalancer Services and ServiceL2Statuses "
                    "from the cluster.")
    p.add_argument("--kubeconfig", default=None,
                   help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
    p.add_argument("--context", default=None, help="kubeconfig context (default: current)")
    p.add_argument("-n", "--namespace", default=DEFAULT_NAMESPACE,
                   help=f"namespace of metallb-py (default {DEFAULT_NAMESPACE})")
    return parser


def run(args: argparse.Namespace, stdin: TextIO) -> Report:
    if args.command == "validate":
        crd_dir = Path(args.crds) if args.crds else default_crd_dir()
        schemas = read_crd_schemas(crd_dir) if crd_dir else None
        report = validate_documents(read_sources(args.filename, stdin), schemas,
                                    args.namespace)
        if schemas is None:
            report.err.append(f"note: CRD schemas not found (--crds DIR or ${CRD_DIR_ENV}): "
                              f"unknown fields were not checked")
        return report
    if args.command == "convert":
        return convert_report(read_sources([args.filename], stdin), args.namespace)
    return status_report(args.kubeconfig, args.context, args.namespace)


def main(argv: Sequence[str] | None = None) -> int:
    stdout, stderr = sys.stdout, sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse already printed
        return exc.code if isinstance(exc.code, int) else EXIT_INPUT
    try:
        report = run(args, sys.stdin)
    except InputError as exc:
        print(f"error: {exc}", file=stderr)
        return EXIT_INPUT
    try:
        return report.write(stdout, stderr)
    except BrokenPipeError:  # `metallbctl convert ... | head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (silence the flush at exit)
        return EXIT_PROBLEMS


if __name__ == "__main__":
    sys.exit(main())

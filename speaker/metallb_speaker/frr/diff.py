"""From one rendered frr.conf to another as a list of FRR commands. Pure.

Why not frr-reload.py (MetalLB's way): it runs one vtysh per removed line, 415 s to
withdraw 10,000 prefixes here (MetalLB #1581). The commands from `diff` go to FRR as
one `vtysh -f` batch: ~1 s for 10,000 prefixes either way.

The texts are `render`'s, whose shape is known: top-level lines and blocks (`bfd` with
`profile`s, `route-map`, `router bgp` with `address-family`), each block closed by an
exit line. A line present in both is left alone; a removed line is negated in its
block (`no ...`, or the positive form of a `no ...` line); a removed block is deleted
by its header (`no route-map ...`, `no router bgp ...`, ` no profile ...`), except an
address family, which FRR cannot delete: its lines are. Prefix-list entries are
compared without their sequence numbers and written without them (FRR numbers them):
adding one prefix does not renumber thousands. A neighbor whose `remote-as` line goes
(removed or changed) is deleted with `no neighbor X` and, if it stays, all its lines
are written again (FRR forgets them with it). Removals come most specific first
(`no neighbor X bfd profile P` before `no neighbor X bfd`).

`Diff.prefix_only` tells the shell whether only prefixes moved (prefix-list entries,
`network` lines): those are pushed at once, anything else with a debounce.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

BLOCKS = {
    0: ("bfd", "route-map ", "router bgp "),
    1: ("profile ", "address-family "),
}
CLOSERS = frozenset({"exit", "exit-address-family", "end"})
_SEQ = re.compile(r"^(ipv6|ip) prefix-list (\S+) seq \d+ ")
_REMOTE_AS = re.compile(r"^neighbor (\S+) (?:interface )?remote-as ")


@dataclass
class Block:
    header: str  # "" for the whole file
    children: dict[str, Block | None] = field(default_factory=dict)  # line -> block or leaf


def _key(line: str) -> str:
    """A line as compared: prefix-list entries without their sequence numbers."""
    return _SEQ.sub(r"\1 prefix-list \2 ", line)


def parse(text: str) -> Block:
    root = Block("")
    stack: list[Block] = [root]
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("!"):
            continue
        depth = len(raw) - len(raw.lstrip(" "))
        if line in CLOSERS:
            if len(stack) > 1:
                stack.pop()
            continue
        while len(stack) > depth + 1:  # tolerate a missing exit line
            stack.pop()
        parent = stack[-1]
        if any(line == b or line.startswith(b) for b in BLOCKS.get(len(stack) - 1, ())):
            block = parent.children.get(line)
            if not isinstance(block, Block):
                block = Block(line)
                parent.children[line] = block
            stack.append(block)
        else:
            parent.children[_key(line)] = None
    return root


def negate(line: str) -> str:
    return line[3:] if line.startswith("no ") else f"no {line}"


def _neighbor(line: str) -> str | None:
    if line.startswith("neighbor "):
        return line.split(" ", 2)[1]
    return None


@dataclass
class Diff:
    commands: list[str]
    prefix_only: bool

    def text(self) -> str:
        return "".join(c + "\n" for c in self.commands)

    def __bool__(self) -> bool:
        return bool(self.commands)


def _is_prefix_line(path: tuple[str, ...], line: str) -> bool:
    if not path:
        return line.startswith(("ip prefix-list ", "ipv6 prefix-list ", "no ip prefix-list ",
                                "no ipv6 prefix-list "))
    return path[0].startswith("router bgp ") and line.startswith("network ")


class _Differ:
    def __init__(self) -> None:
        self.out: list[str] = []
        self.prefix_only = True
        self._last: tuple[str, ...] = ()

    def _emit(self, path: tuple[str, ...], lines: list[str]) -> None:
        if not lines:
            return
        depth = len(path)
        if path and path == self._last:  # still in that block: no exit and re-entry
            del self.out[-depth:]
        else:
            for i, header in enumerate(path):
                self.out.append(" " * i + header)
        self._last = path
        self.out.extend(" " * depth + line for line in lines)
        for i in reversed(range(depth)):
            closer = "exit-address-family" if path[i].startswith("address-family") else "exit"
            self.out.append(" " * i + closer)

    def _mark(self, path: tuple[str, ...], line: str) -> None:
        if not _is_prefix_line(path, line):
            self.prefix_only = False

    def _add_all(self, path: tuple[str, ...], block: Block) -> None:
        """A whole new block (or the lines of a block) under `path`."""
        leaves = [k for k, v in block.children.items() if v is None]
        for k in leaves:
            self._mark(path, k)
        self._emit(path, leaves)
        for k, v in block.children.items():
            if v is not None:
                self.prefix_only = False
                if v.children:
                    self._add_all((*path, k), v)
                else:  # an empty block still exists (a deny route-map)
                    self._emit(path, [k, "exit"])

    def _remove_all(self, path: tuple[str, ...], block: Block) -> None:
        """Every line of a block FRR cannot delete whole (an address family)."""
        for k, v in block.children.items():
            if v is not None:
                self._remove_all((*path, k), v)
        leaves = [k for k, v in block.children.items() if v is None]
        for k in leaves:
            self._mark(path, k)
        self._emit(path, [negate(k) for k in reversed(leaves)])

    def block(self, path: tuple[str, ...], old: Block, new: Block,
              reset: frozenset[str] = frozenset()) -> None:
        """Make `old` (at `path`) into `new`. `reset`: neighbors deleted whole in this
        router, whose lines are skipped on removal and all written again."""
        if path and path[-1].startswith("router bgp "):
            reset = frozenset(n for k in old.children if (m := _REMOTE_AS.match(k))
                              and k not in new.children for n in [m.group(1)])

        def reset_line(k: str) -> bool:
            return _neighbor(k) in reset

        # VRF routers before the default one: FRR refuses to delete it while they exist
        removed_blocks = sorted(((k, v) for k, v in old.children.items()
                                 if v is not None and not isinstance(new.children.get(k), Block)),
                                key=lambda kv: " vrf " not in kv[0])
        removed = [k for k, v in old.children.items()
                   if v is None and k not in new.children and not reset_line(k)]
        # no neighbor X for the reset ones, once each
        gone = [f"neighbor {n}" for n in sorted(reset)] if path and \
            path[-1].startswith("router bgp ") else []
        for k in removed:
            self._mark(path, k)
        if gone:
            self.prefix_only = False
        self._emit(path, [negate(k) for k in reversed(removed)] + [f"no {g}" for g in gone])
        for k, v in removed_blocks:
            assert v is not None
            self.prefix_only = False
            if k.startswith("address-family "):
                self._remove_all((*path, k), _without(v, reset))
            else:
                self._emit(path, [f"no {k}"])
        added = [k for k, v in new.children.items()
                 if v is None and (k not in old.children or reset_line(k))]
        for k in added:
            self._mark(path, k)
        self._emit(path, added)
        for k, nv in new.children.items():
            if nv is None:
                continue
            v = nv
            before = old.children.get(k)
            if isinstance(before, Block):
                self.block((*path, k), before, v, reset)
            else:
                self.prefix_only = False
                if v.children:
                    self._add_all((*path, k), v)
                else:  # an empty block still exists (a deny route-map)
                    self._emit(path, [k, "exit"])


def _without(block: Block, neighbors: frozenset[str]) -> Block:
    """`block` minus the lines of deleted neighbors (gone with `no neighbor X`)."""
    return Block(block.header, {k: v for k, v in block.children.items()
                                if _neighbor(k) not in neighbors})


def diff(old: str, new: str) -> Diff:
    """Commands that turn FRR's configuration `old` (a rendered text, or "" for an empty
    FRR) into `new`."""
    d = _Differ()
    d.block((), parse(old), parse(new))
    return Diff(d.out, d.prefix_only)


def strip_ours(running: str) -> list[str]:
    """Commands deleting from a running configuration (FRR's `show running-config`)
    every object a rendered configuration writes: BGP routers, route-maps, prefix
    lists and BFD profiles. With them, a full push does not depend on what FRR held
    (after FRR came back, with whatever configuration it started with)."""
    routers, maps, lists, profiles = set(), set(), set(), set()
    in_bfd = False
    for raw in running.splitlines():
        line = raw.rstrip()
        if line.startswith("router bgp "):
            routers.add(line)
        elif line.startswith("route-map "):
            maps.add(line.split()[1])
        elif m := re.match(r"^(ipv6|ip) prefix-list (\S+) ", line):
            lists.add(f"{m.group(1)} prefix-list {m.group(2)}")
        elif line == "bfd":
            in_bfd = True
        elif in_bfd and line.startswith(" profile "):
            profiles.add(line.strip())
        elif not line.startswith(" "):
            in_bfd = False
    out = [f"no {r}" for r in sorted(routers, key=lambda r: (" vrf " not in r, r))]
    out += [f"no route-map {m}" for m in sorted(maps)]
    out += [f"no {p}" for p in sorted(lists)]
    if profiles:
        out += ["bfd", *(f" no {p}" for p in sorted(profiles)), "exit"]
    return out

"""docs/compatibility.md stays true: its CRD field table against MetalLB's field lists
(tests/api/fixtures/metallb_crd_fields.yaml, derived from MetalLB's CRD YAML) and against
our own schemas in crds/.

The table (section "CRD fields") has one row per field path, `kind | `path` | status | why`,
and a row covers the path's whole subtree. Status is the first word of its cell:
matches (both have it), differs (both, on purpose with another meaning or validation),
adds (ours only), lacks (MetalLB's only), in progress (being added: either way).

Regenerate the fixture from a MetalLB checkout (`fetch github:metallb/metallb`):
    python -m tests.api.test_compatibility_table <metallb-git-dir> <ref> ...
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "compatibility.md"
FIXTURE = Path(__file__).parent / "fixtures" / "metallb_crd_fields.yaml"
STATUSES = ("matches", "differs", "adds", "lacks", "in progress")
IMPLEMENTED_TOPS = ("spec", "status")


def _walk(schema: Mapping[str, Any], prefix: str, out: list[str]) -> None:
    out.append(prefix)
    if schema.get("type") == "array":
        items = schema.get("items") or {}
        for name, sub in (items.get("properties") or {}).items():
            _walk(sub, f"{prefix}[].{name}", out)
        return
    for name, sub in (schema.get("properties") or {}).items():
        _walk(sub, f"{prefix}.{name}", out)


def crd_field_paths(crd: Mapping[str, Any]) -> tuple[str, list[str]]:
    """(kind, field paths of the storage version under spec and status): dots between
    fields, `[]` for a list's items."""
    spec = crd["spec"]
    version = next(v for v in spec["versions"] if v.get("storage"))
    props = version["schema"]["openAPIV3Schema"].get("properties") or {}
    out: list[str] = []
    for top in IMPLEMENTED_TOPS:
        if top in props:
            _walk(props[top], top, out)
    return spec["names"]["kind"], out


def ours() -> dict[str, set[str]]:
    fields = {}
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                kind, paths = crd_field_paths(doc)
                fields[kind] = set(paths)
    return fields


def metallb() -> tuple[dict[str, set[str]], list[str]]:
    data = yaml.safe_load(FIXTURE.read_text())
    fields: dict[str, set[str]] = {}
    for per_kind in data["refs"].values():
        for kind, paths in per_kind.items():
            fields.setdefault(kind, set()).update(paths)
    return fields, list(data["kinds"])


def _table(section: str) -> list[list[str]]:
    """Rows of the first table under `## section`, header and rule dropped."""
    text = DOC.read_text()
    m = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, f"docs/compatibility.md has no '## {section}' section"
    rows: list[list[str]] = []
    for line in m.group(1).splitlines():
        if not line.startswith("|"):
            if rows:
                break
            continue
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows[2:]


def _status(cell: str) -> str:
    found = [s for s in STATUSES if cell.lower().startswith(s)]
    assert found, f"status {cell!r} starts with none of {STATUSES}"
    return found[0]


def field_rows() -> list[tuple[str, str, str]]:
    """(kind, path, status) of every row of the CRD field table."""
    out = []
    for cells in _table("CRD fields"):
        m = re.fullmatch(r"`([^`]+)`", cells[1])
        assert m, f"field cell {cells[1]!r} is not one backticked path"
        out.append((cells[0], m.group(1), _status(cells[2])))
    return out


def covers(row_path: str, path: str) -> bool:
    return path == row_path or path.startswith((row_path + ".", row_path + "[]"))


def _covered(kind: str, path: str, statuses: Iterable[str],
             rows: list[tuple[str, str, str]]) -> bool:
    return any(k == kind and covers(p, path) and s in statuses for k, p, s in rows)


def kind_rows() -> dict[str, str]:
    """kind -> status, from the Kinds table."""
    return {re.sub(r"`", "", cells[0]): _status(cells[1]) for cells in _table("Kinds")}


def added_kinds() -> set[str]:
    """Kinds MetalLB does not have (the Kinds table says `adds`): every field is ours."""
    return {kind for kind, status in kind_rows().items() if status == "adds"}


def test_fixture_lists_the_kinds_we_implement() -> None:
    fields, kinds = metallb()
    assert set(ours()) - added_kinds() <= set(kinds)
    assert set(fields) == set(ours()) - added_kinds()


def test_every_metallb_field_exists_here_or_the_table_says_why_not() -> None:
    theirs, here, rows = metallb()[0], ours(), field_rows()
    missing = sorted(
        f"{kind} {path}" for kind, paths in theirs.items() for path in paths
        if path not in here.get(kind, set())
        and not _covered(kind, path, ("lacks", "differs", "in progress"), rows))
    assert not missing, f"MetalLB fields neither in crds/ nor in the table: {missing}"


def test_every_field_of_ours_alone_is_in_the_table() -> None:
    theirs, here, rows = metallb()[0], ours(), field_rows()
    extra = sorted(
        f"{kind} {path}" for kind, paths in here.items() for path in paths
        if kind not in added_kinds() and path not in theirs.get(kind, set())
        and not _covered(kind, path, ("adds", "differs", "in progress"), rows))
    assert not extra, f"fields only metallb-py has, missing from the table: {extra}"


def test_every_table_row_names_a_real_field_and_tells_the_truth() -> None:
    theirs, here = metallb()[0], ours()
    wrong = []
    for kind, path, status in field_rows():
        in_theirs = path in theirs.get(kind, set())
        in_ours = path in here.get(kind, set())
        truth = {
            "matches": in_theirs and in_ours,
            "differs": in_theirs and in_ours,
            "adds": in_ours and not in_theirs,
            "lacks": in_theirs and not in_ours,
            "in progress": in_theirs or in_ours,
        }[status]
        if not truth:
            wrong.append(f"{kind} {path}: {status} (MetalLB: {in_theirs}, ours: {in_ours})")
    assert not wrong, f"CRD field rows that are not true: {wrong}"


def test_kinds_table_covers_every_metallb_kind() -> None:
    _, kinds = metallb()
    here = ours()
    rows = kind_rows()
    assert set(rows) == set(kinds) | added_kinds()
    assert not added_kinds() & set(kinds)  # "adds" only for kinds MetalLB lacks
    for kind, status in rows.items():
        assert (status == "lacks") == (kind not in here), (kind, status)


@pytest.mark.parametrize(("row", "path", "covered"), [
    ("spec.nodeSelectors", "spec.nodeSelectors[].matchLabels", True),
    ("spec.nodeSelectors", "spec.nodeSelectors", True),
    ("spec.node", "spec.nodeSelectors", False),
    ("status", "status.conditions[].type", True),
])
def test_covers(row: str, path: str, covered: bool) -> None:
    assert covers(row, path) is covered


def _generate(git_dir: str, refs: list[str]) -> str:
    """The fixture's text for MetalLB's CRDs at `refs` (tags or commits)."""
    def show(ref: str, path: str) -> str:
        return subprocess.run(["git", "-C", git_dir, "show", f"{ref}:{path}"], check=True,
                              capture_output=True, text=True).stdout

    def commit(ref: str) -> str:
        return subprocess.run(["git", "-C", git_dir, "rev-parse", f"{ref}^{{commit}}"],
                              check=True, capture_output=True, text=True).stdout.strip()

    base = "config/crd/bases"
    kinds: list[str] = []
    out: dict[str, dict[str, list[str]]] = {}
    for ref in refs:
        names = subprocess.run(["git", "-C", git_dir, "ls-tree", "--name-only", ref, base + "/"],
                               check=True, capture_output=True, text=True).stdout.split()
        per_kind = out.setdefault(f"{ref} ({commit(ref)})", {})
        for name in names:
            kind, paths = crd_field_paths(yaml.safe_load(show(ref, name)))
            if kind not in kinds:
                kinds.append(kind)
            if Path(ROOT / "crds" / Path(name).name).exists():
                per_kind[kind] = paths
    return yaml.safe_dump({"kinds": sorted(kinds), "refs": out}, sort_keys=False, width=100)


if __name__ == "__main__":
    sys.stdout.write(_generate(sys.argv[1], sys.argv[2:]))

"""Container images for the real-node lab, built here (no registry exists: nothing is
pulled) and saved as docker archives that every node's containerd imports.

- base:    `debootstrap --variant=minbase` of the Debian suite apt uses, with python3,
           pip and nginx, trimmed; used like python:3.11-slim (pip installs system-wide).
- pause:   the pod sandbox, a static C program of ours (e2e/images/pause).
- nginx:   Debian's nginx on the base (e2e/images/nginx) as docker.io/library/nginx:1.22.
- project: the repository's own Dockerfile, built by Debian's buildah with the base as
           its PYTHON_IMAGE build argument: the image contains the code under test.

Each image is keyed by what it is built from, so a second run costs a directory walk;
the project image is rebuilt whenever the Dockerfile or a file it copies changes.
`python -m metallb_lab.images` builds them all (e2e/tools/setup runs it).

MetalLB itself (side-by-side runs, migration tests): `metallb_images(version)` wraps the
`controller` and `speaker` that e2e/tools/build-metallb builds in one image each, named
as MetalLB's manifests name them (quay.io/metallb/speaker:v0.15.2), so those manifests
run unchanged (no imagePullPolicy there: IfNotPresent for a versioned tag).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from metallb_lab.controlplane import REPO_ROOT, cache_dir

IMAGES_DIR = REPO_ROOT / "e2e" / "images"
PROJECT_REPOSITORY = "ghcr.io/metallb-py/metallb-py"
NGINX_REF = "docker.io/library/nginx:1.22"
# What the Dockerfile copies into the image (see .dockerignore): a change here rebuilds.
PROJECT_INPUTS = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "api",
                  "operator", "speaker")
BASE_PACKAGES = ("passwd", "python3", "python3-pip", "nginx")
# Documentation, translations and apt's caches are not needed to run anything.
BASE_TRIM = ("usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/info",
             "var/cache/apt", "var/lib/apt/lists", "dev")
BASE_RECIPE = "1"  # bump when the base recipe below changes in a way the key misses
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

Log = Callable[[str], None]


@dataclass(frozen=True)
class Image:
    ref: str
    archive: Path


@dataclass(frozen=True)
class LabImages:
    pause: Image
    nginx: Image
    project: Image

    @property
    def all(self) -> tuple[Image, ...]:
        return (self.pause, self.nginx, self.project)

    @property
    def project_tag(self) -> str:
        return self.project.ref.rsplit(":", 1)[1]


def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()[:16]


def _files(root: Path, names: Iterable[str]) -> Iterator[Path]:
    for name in names:
        path = root / name
        if path.is_file():
            yield path
            continue
        for sub in sorted(path.rglob("*")):
            generated = "__pycache__" in sub.parts or sub.suffix == ".pyc" or any(
                p.endswith(".egg-info") for p in sub.parts)
            if sub.is_file() and not generated:
                yield sub


def tree_digest(root: Path, names: Iterable[str]) -> str:
    """Content digest of files (paths relative to `root` included, so a rename counts)."""
    return _digest(*(f"{p.relative_to(root)}\0".encode() + p.read_bytes()
                     for p in _files(root, names)))


def apt_source() -> tuple[str, str]:
    """(mirror URI, suite) of the Debian archive this machine's apt uses."""
    release = dict(line.split("=", 1) for line in
                   Path("/etc/os-release").read_text().splitlines() if "=" in line)
    suite = release.get("VERSION_CODENAME", "bookworm").strip('"')
    files = [Path("/etc/apt/sources.list"),
             *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for f in files:
        with contextlib.suppress(OSError):
            text = f.read_text()
            if f.suffix == ".sources":  # deb822 stanzas
                for stanza in text.split("\n\n"):
                    fields = dict(line.split(":", 1) for line in stanza.splitlines()
                                  if ":" in line and not line.startswith("#"))
                    uris = fields.get("URIs", "").split()
                    if uris and suite in fields.get("Suites", "").split():
                        return uris[0], suite
            else:
                for line in text.splitlines():
                    words = [w for w in line.split() if not w.startswith("[")]
                    if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
                        return words[1], suite
    return "http://deb.debian.org/debian", suite


class Builder:
    """buildah with its own storage under the cache (the host's is left alone)."""

    def __init__(self, root: Path, log: Log) -> None:
        self.root = root
        self.log = log
        root.mkdir(parents=True, exist_ok=True)

    def buildah(self, *args: str, capture: bool = False) -> str:
        argv = ["buildah", f"--root={self.root / 'storage'}",
                f"--runroot={self.root / 'run'}", "--storage-driver=overlay", *args]
        proc = subprocess.run(argv, text=True, check=False, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{proc.stdout[-4000:]}")
        return proc.stdout.strip() if capture else ""

    def has(self, ref: str) -> bool:
        argv = ["buildah", f"--root={self.root / 'storage'}",
                f"--runroot={self.root / 'run'}", "--storage-driver=overlay",
                "inspect", "--type=image", ref]
        return subprocess.run(argv, capture_output=True, check=False).returncode == 0

    def save(self, ref: str, archive: Path) -> Image:
        """docker-archive (uncompressed layers: containerd imports them fastest)."""
        tmp = archive.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        self.buildah("push", "--quiet", ref, f"docker-archive:{tmp}:{ref}")
        tmp.rename(archive)
        return Image(ref, archive)

    def from_rootfs(self, rootfs: Path, ref: str, *config: str) -> None:
        tarball = rootfs.with_suffix(".tar")
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
        try:
            ctr = self.buildah("from", "scratch", capture=True).splitlines()[-1]
            self.buildah("add", ctr, str(tarball), "/")
            self.buildah("config", *config, ctr)
            self.buildah("commit", "--rm", "--quiet", ctr, ref)
        finally:
            tarball.unlink(missing_ok=True)

    def bud(self, ref: str, containerfile: Path, context: Path, *args: str) -> None:
        # chroot isolation: RUN steps need no OCI runtime setup; host network and the
        # host's CA bundle, because the package index is reached through a TLS proxy.
        ca = "/etc/ssl/certs/ca-certificates.crt"
        volume = (f"--volume={ca}:{ca}:ro",) if Path(ca).exists() else ()
        self.buildah("bud", "--isolation=chroot", "--network=host", "--pull-never",
                     "--quiet", *volume, *args, f"--tag={ref}", f"--file={containerfile}",
                     str(context))

    def remove_except(self, repository: str, keep: str) -> None:
        out = self.buildah("images", "--format", "{{.Name}}:{{.Tag}}", capture=True)
        for ref in out.splitlines():
            if ref.startswith(repository + ":") and ref != keep:
                self.buildah("rmi", ref)
        with contextlib.suppress(RuntimeError):
            self.buildah("rmi", "--prune")


def _build_base(b: Builder, work: Path, ref: str, log: Log) -> None:
    mirror, suite = apt_source()
    rootfs = work / "rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    log(f"debootstrap --variant=minbase {suite} from {mirror}")
    proc = subprocess.run(["debootstrap", "--variant=minbase",
                           f"--include={','.join(BASE_PACKAGES)}", suite, str(rootfs),
                           mirror], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"debootstrap failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    try:
        for rel in BASE_TRIM:
            for sub in (rootfs / rel).glob("*"):
                if sub.is_dir() and not sub.is_symlink():
                    shutil.rmtree(sub)
                else:
                    sub.unlink()
        # As in python:3.11-slim, pip may install into the system (PEP 668 marker off).
        for marker in rootfs.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
            marker.unlink()
        b.from_rootfs(rootfs, ref, f"--env={PATH_ENV}", "--cmd=/bin/sh",
                      "--label=org.opencontainers.image.title=metallb-py lab base")
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)


def _build_pause(b: Builder, work: Path, ref: str) -> None:
    rootfs = work / "pause-root"
    shutil.rmtree(rootfs, ignore_errors=True)
    rootfs.mkdir(parents=True)
    try:
        subprocess.run(["gcc", "-static", "-Os", "-s", "-Wall", "-Wextra", "-o",
                        str(rootfs / "pause"), str(IMAGES_DIR / "pause" / "pause.c")],
                       check=True)
        b.from_rootfs(rootfs, ref, "--entrypoint=[\"/pause\"]", "--user=65535:65535",
                      "--label=org.opencontainers.image.title=metallb-py lab pause")
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # one builder at a time (tests and demo may race)
        yield


def ensure_images(log: Log = lambda msg: print(f"images: {msg}", file=sys.stderr)
                  ) -> LabImages:
    """Build what is missing or stale; return the images to import into nodes."""
    root = cache_dir() / "images"
    with _locked(root / ".lock"):
        b = Builder(root, log)
        work = root / "work"
        work.mkdir(parents=True, exist_ok=True)
        mirror, suite = apt_source()
        base_key = _digest(BASE_RECIPE, mirror, suite, *BASE_PACKAGES, *BASE_TRIM)
        base_ref = f"localhost/metallb-py-lab/base:{base_key}"

        pause_key = tree_digest(IMAGES_DIR, ["pause"])
        pause = Image(f"localhost/metallb-py-lab/pause:{pause_key}",
                      root / f"pause-{pause_key}.tar")
        nginx_key = _digest(base_key, tree_digest(IMAGES_DIR, ["nginx"]))
        nginx = Image(NGINX_REF, root / f"nginx-{nginx_key}.tar")
        project_key = _digest(base_key, tree_digest(REPO_ROOT, PROJECT_INPUTS))
        project = Image(f"{PROJECT_REPOSITORY}:lab-{project_key[:12]}",
                        root / f"metallb-py-{project_key}.tar")

        def need_base() -> None:
            if not b.has(base_ref):
                t0 = time.monotonic()
                _build_base(b, work, base_ref, log)
                log(f"base image {base_ref} built in {time.monotonic() - t0:.0f}s")

        if not pause.archive.exists():
            _build_pause(b, work, pause.ref)
            b.save(pause.ref, pause.archive)
            log(f"pause image {pause.ref}")
        if not nginx.archive.exists():
            need_base()
            b.bud(nginx.ref, IMAGES_DIR / "nginx" / "Containerfile", IMAGES_DIR / "nginx",
                  f"--build-arg=BASE={base_ref}")
            b.save(nginx.ref, nginx.archive)
            log(f"nginx image {nginx.ref}")
        if not project.archive.exists():
            need_base()
            t0 = time.monotonic()
            b.bud(project.ref, REPO_ROOT / "Dockerfile", REPO_ROOT,
                  f"--build-arg=PYTHON_IMAGE={base_ref}")
            b.save(project.ref, project.archive)
            b.remove_except(PROJECT_REPOSITORY, project.ref)
            log(f"project image {project.ref} built in {time.monotonic() - t0:.0f}s "
                "from the Dockerfile")
        keep = {pause.archive, nginx.archive, project.archive}
        for old in root.glob("*.tar"):
            if old not in keep:
                old.unlink()
        return LabImages(pause=pause, nginx=nginx, project=project)


METALLB_REPOSITORY = "quay.io/metallb"
METALLB_COMPONENTS = ("controller", "speaker")
METALLB_RECIPE = "1"  # bump when the MetalLB image recipe below changes
# What distroless/static (MetalLB's base since v0.13) gives a static binary that matters
# here: users for runAsUser 65532/65534, and a world-writable /tmp, where the controller
# writes its webhook certificates as user 65534.
METALLB_PASSWD = "root:x:0:0:root:/root:/sbin/nologin\n" \
    "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" \
    "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
METALLB_GROUP = "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"


@dataclass(frozen=True)
class MetalLBBuild:
    """One MetalLB version as e2e/tools/build-metallb left it in the cache."""

    version: str
    bin_dir: Path

    @property
    def manifests(self) -> Path:
        return self.bin_dir.parent / "manifests"


def build_metallb(version: str, log: Log) -> MetalLBBuild:
    """Run e2e/tools/build-metallb for `version` (milliseconds when cached)."""
    tool = REPO_ROOT / "e2e" / "tools" / "build-metallb"
    t0 = time.monotonic()
    proc = subprocess.run([str(tool), version], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} {version} failed:\n{proc.stderr[-4000:]}")
    if time.monotonic() - t0 > 5:
        log(f"MetalLB {version} built in {time.monotonic() - t0:.0f}s")
    return MetalLBBuild(version, Path(proc.stdout.split()[-1]))


def _build_metallb_image(b: Builder, work: Path, binary: Path, ref: str) -> None:
    rootfs = work / "metallb-root"
    shutil.rmtree(rootfs, ignore_errors=True)
    try:
        (rootfs / "etc").mkdir(parents=True)
        (rootfs / "tmp").mkdir()
        (rootfs / "tmp").chmod(0o1777)
        (rootfs / "etc" / "passwd").write_text(METALLB_PASSWD)
        (rootfs / "etc" / "group").write_text(METALLB_GROUP)
        shutil.copy2(binary, rootfs / binary.name)
        b.from_rootfs(rootfs, ref, f"--entrypoint=[\"/{binary.name}\"]", f"--env={PATH_ENV}",
                      "--label=org.opencontainers.image.title=MetalLB "
                      f"{binary.name} (built from the Go module proxy)")
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)


def metallb_images(version: str, log: Log = lambda msg: print(f"images: {msg}",
                                                            file=sys.stderr)
                   ) -> tuple[MetalLBBuild, tuple[Image, ...]]:
    """MetalLB `version`'s controller and speaker images (building the binaries first
    if needed), as docker archives to import into the nodes."""
    build = build_metallb(version, log)
    root = cache_dir() / "images"
    # A subdirectory: ensure_images() prunes the *.tar directly under `root`.
    out = root / "metallb"
    with _locked(root / ".lock"):
        b = Builder(root, log)
        work = root / "work"
        work.mkdir(parents=True, exist_ok=True)
        out.mkdir(parents=True, exist_ok=True)
        images = []
        for component in METALLB_COMPONENTS:
            binary = build.bin_dir / component
            key = _digest(METALLB_RECIPE, METALLB_PASSWD, METALLB_GROUP,
                          (build.bin_dir / ".complete").read_bytes(),
                          str(binary.stat().st_size), str(binary.stat().st_mtime_ns))
            image = Image(f"{METALLB_REPOSITORY}/{component}:{version}",
                          out / f"{component}-{version}-{key}.tar")
            if not image.archive.exists():
                t0 = time.monotonic()
                _build_metallb_image(b, work, binary, image.ref)
                b.save(image.ref, image.archive)
                with contextlib.suppress(RuntimeError):
                    b.buildah("rmi", image.ref)  # the archive is what nodes import
                for old in out.glob(f"{component}-{version}-*.tar"):
                    if old != image.archive:
                        old.unlink()
                log(f"MetalLB image {image.ref} in {time.monotonic() - t0:.1f}s")
            images.append(image)
        return build, tuple(images)


def main() -> int:
    t0 = time.monotonic()
    images = ensure_images()
    for image in images.all:
        print(f"{image.ref}\t{image.archive}")
    print(f"images ready in {time.monotonic() - t0:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())

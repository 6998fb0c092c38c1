"""An offline stand-in for `node:24-bookworm`: Debian bookworm (mmdebstrap) plus Node.js from npm.

No image can be pulled here, so the sandbox Dockerfile's `BASE_IMAGE` is made locally: a minbase
bookworm rootfs from the Debian mirror the machine's apt sources name, with Node.js (the npm
registry's `node-linux-<arch>` package), npm and corepack laid out as the official image does
(/usr/local/bin/node, /usr/local/lib/node_modules/{npm,corepack}, /usr/local/bin/{npm,npx,
corepack}), streamed into `docker import`. Every tarball is checked against the registry's
integrity hash.

Idempotent: an image under the tag whose recipe label matches is kept (a `docker image inspect`,
well under a second); `--force` rebuilds.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pipeline.console import output, say, step
from pipeline.errors import ConfigError, EngineError, PipelineError
from pipeline.settings.build import PROJECT_ROOT

if TYPE_CHECKING:
    import httpx

DEFAULT_TAG = "sandbox-base/node24-bookworm:local"
SUITE = "bookworm"
NODE_VERSION = "24.21.0"
NPM_VERSION = "11.21.2"
COREPACK_VERSION = "0.36.0"
# Packages on top of minbase: what the official image has and a Dockerfile cannot do without
# (HTTPS to registries). The rest (git, gh, ...) is the sandbox Dockerfile's business.
EXTRA_PACKAGES = ("ca-certificates",)
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
NPM_REGISTRY = "https://registry.npmjs.org"
RECIPE_LABEL = "org.iterate.sandbox-base.recipe"
RECIPE_REVISION = "2"  # bump when the layout below changes
APT_SOURCE_FILES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
_OPTIONS = re.compile(r"\[[^\]]*\]")
CACHE_DIR = PROJECT_ROOT / ".pipeline" / "cache" / "base-image"
BUILD_TIMEOUT_S = 900.0


class BaseImageError(PipelineError):
    """The offline base image could not be made (mirror, npm registry, mmdebstrap, import)."""

    exit_code = 11


@dataclass(frozen=True)
class NpmPackage:
    name: str
    version: str

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class BasePlan:
    tag: str
    arch: str  # Debian's name: amd64, arm64
    node: NpmPackage
    npm: NpmPackage
    corepack: NpmPackage
    sources: tuple[str, ...]  # one-line apt sources, the first is bookworm itself
    packages: tuple[str, ...]

    @property
    def recipe(self) -> str:
        """A short hash of everything that decides the image's content."""
        facts = [
            RECIPE_REVISION,
            self.arch,
            self.node.spec,
            self.npm.spec,
            self.corepack.spec,
            *self.sources,
            *self.packages,
        ]
        return hashlib.sha256("\n".join(facts).encode()).hexdigest()[:16]

    def describe(self) -> list[str]:
        return [
            f"tag:       {self.tag}",
            f"recipe:    {self.recipe}",
            f"debian:    {SUITE} minbase ({self.arch}) + {', '.join(self.packages)}",
            *(f"apt:       {line}" for line in self.sources),
            f"node:      {self.node.spec}",
            f"npm:       {self.npm.spec}",
            f"corepack:  {self.corepack.spec}",
        ]


# --- pure helpers ----------------------------------------------------------------------------


def debian_arch(machine: str | None = None) -> tuple[str, str]:
    """(Debian arch, Node.js arch) for this machine."""
    machine = (machine or platform.machine()).lower()
    if machine in ("x86_64", "amd64"):
        return "amd64", "x64"
    if machine in ("aarch64", "arm64"):
        return "arm64", "arm64"
    raise ConfigError(f"no Node.js build for machine {machine!r}", "build on x86_64 or aarch64")


def apt_sources(texts: Iterable[str]) -> tuple[str, ...]:
    """bookworm, bookworm-updates and bookworm-security lines, with the mirrors apt uses here.

    Reads one-line (`deb URI SUITE COMPONENTS`) and deb822 (`URIs:`/`Suites:`) sources; a suite
    not found falls back to deb.debian.org.
    """
    found: dict[str, str] = {}
    for text in texts:
        for uri, suites in _source_entries(text):
            for suite in suites:
                found.setdefault(suite, uri.rstrip("/"))
    main = found.get(SUITE, DEFAULT_MIRROR)
    updates = found.get(f"{SUITE}-updates", main)
    security = found.get(f"{SUITE}-security", DEFAULT_SECURITY_MIRROR)
    return (
        f"deb {main} {SUITE} main",
        f"deb {updates} {SUITE}-updates main",
        f"deb {security} {SUITE}-security main",
    )


def _source_entries(text: str) -> Iterable[tuple[str, list[str]]]:
    stanza: dict[str, str] = {}
    for raw in [*text.splitlines(), ""]:
        if raw.lstrip().startswith("#"):
            continue  # a comment never ends a deb822 stanza
        line = raw.split("#", 1)[0].rstrip()
        if line.startswith("deb "):
            words = _OPTIONS.sub(" ", line).split()
            if len(words) >= 3 and words[1].startswith(("http://", "https://")):
                yield words[1], [words[2]]
            continue
        if not line.strip():
            if "deb" in stanza.get("types", "").split():
                for uri in stanza.get("uris", "").split():
                    if uri.startswith(("http://", "https://")):
                        yield uri, stanza.get("suites", "").split()
            stanza = {}
            continue
        if raw[0] in " \t":
            continue  # a folded continuation line (Signed-By keys)
        key, sep, value = line.partition(":")
        if sep:
            stanza[key.strip().lower()] = value.strip()


def read_apt_source_texts(paths: Iterable[Path] = APT_SOURCE_FILES) -> list[str]:
    texts = []
    for path in paths:
        files = sorted(path.glob("*.list")) + sorted(path.glob("*.sources"))
        for file in files if path.is_dir() else [path]:
            try:
                texts.append(file.read_text())
            except OSError:
                continue
    return texts


def make_plan(tag: str = DEFAULT_TAG, source_texts: Iterable[str] | None = None) -> BasePlan:
    _validate_tag(tag)
    arch, node_arch = debian_arch()
    texts = read_apt_source_texts() if source_texts is None else source_texts
    return BasePlan(
        tag=tag,
        arch=arch,
        node=NpmPackage(f"node-linux-{node_arch}", NODE_VERSION),
        npm=NpmPackage("npm", NPM_VERSION),
        corepack=NpmPackage("corepack", COREPACK_VERSION),
        sources=apt_sources(texts),
        packages=EXTRA_PACKAGES,
    )


def _validate_tag(tag: str) -> None:
    name, _, version = tag.rpartition(":")
    if not name or "/" in version or not version:
        raise ConfigError(f"--tag {tag!r} is not NAME:TAG", "pass e.g. --tag sandbox-base/x:local")


def integrity_matches(data: bytes, dist: dict[str, Any]) -> bool:
    """Check bytes against npm's `dist.integrity` (SRI, strongest algorithm) or `dist.shasum`."""
    integrity = str(dist.get("integrity") or "")
    for entry in integrity.split():
        algorithm, _, digest = entry.partition("-")
        if algorithm in ("sha512", "sha384", "sha256"):
            actual = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
            return actual == digest.split("?")[0]
    shasum = dist.get("shasum")
    if shasum:
        return bool(hashlib.sha1(data, usedforsecurity=False).hexdigest() == shasum)
    return False


def docker_import_changes(plan: BasePlan) -> list[str]:
    return [
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        f"ENV NODE_VERSION={plan.node.version}",
        f"LABEL {RECIPE_LABEL}={plan.recipe}",
        'CMD ["node"]',
    ]


def mmdebstrap_argv(plan: BasePlan, staging: Path) -> list[str]:
    return [
        "mmdebstrap",
        "--variant=minbase",
        f"--architectures={plan.arch}",
        f"--include={','.join(plan.packages)}",
        "--format=tar",
        "--aptopt=Acquire::Retries 3",
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        f"--customize-hook=sync-in {staging}/usr/local /usr/local",
        # Like the official images: no apt lists, no caches, a machine-id written at boot.
        '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin',
        '--customize-hook=rm -f "$1"/etc/machine-id "$1"/var/lib/dbus/machine-id',
        SUITE,
        "-",
        *plan.sources,
    ]


# --- effects ---------------------------------------------------------------------------------


def image_recipe(tag: str) -> str | None:
    """The recipe label of the image under `tag`, "" without label, None if there is none."""
    docker = shutil.which("docker")
    if docker is None:
        raise EngineError("the docker CLI is not on PATH", "run scripts/setup-engine.sh")
    done = subprocess.run(
        [docker, "image", "inspect", "--format", "{{json .Config.Labels}}", tag],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        if "No such image" in done.stderr or "not found" in done.stderr.lower():
            return None
        raise EngineError(
            f"docker cannot inspect images: {_last_line(done.stderr)}",
            "start the engine with scripts/setup-engine.sh",
        )
    labels = json.loads(done.stdout or "null") or {}
    return str(labels.get(RECIPE_LABEL, ""))


def fetch_npm_tarball(
    client: httpx.Client, package: NpmPackage, registry: str = NPM_REGISTRY
) -> bytes:
    """Download one package version's tarball and verify it against the registry metadata.

    Verified tarballs are kept under .pipeline/cache (and re-verified on every use).
    """
    import httpx

    url = f"{registry.rstrip('/')}/{quote(package.name, safe='@')}/{package.version}"
    try:
        meta = client.get(url)
        if meta.status_code == 404:
            raise BaseImageError(
                f"the npm registry has no {package.spec}", "pin an existing version"
            )
        meta.raise_for_status()
        dist = meta.json().get("dist") or {}
        cached = CACHE_DIR / f"{package.name.replace('/', '_')}-{package.version}.tgz"
        if cached.is_file():
            data = cached.read_bytes()
            if integrity_matches(data, dist):
                return data
        response = client.get(dist["tarball"])
        response.raise_for_status()
        data = response.content
    except httpx.HTTPError as error:
        raise BaseImageError(
            f"cannot download {package.spec} from {registry}: {error.__class__.__name__}",
            "check that the npm registry is reachable (proxy, CA certificates)",
        ) from None
    except (KeyError, ValueError):
        raise BaseImageError(
            f"the npm registry's metadata for {package.spec} has no tarball",
            "retry, or pin another version",
        ) from None
    if not integrity_matches(data, dist):
        raise BaseImageError(
            f"{package.spec} does not match the registry's integrity hash",
            "retry; if it persists, the download is being tampered with",
        )
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(cached)
    return data


def _extract_package(data: bytes, destination: Path) -> None:
    """Unpack an npm tarball (everything under `package/`) into `destination`."""
    import io

    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        members = []
        for member in archive.getmembers():
            _, _, inner = member.name.partition("/")
            if not inner:
                continue
            member.name = inner
            members.append(member)
        archive.extractall(destination, members=members, filter="data")


def stage_node(
    plan: BasePlan, staging: Path, client: httpx.Client, registry: str = NPM_REGISTRY
) -> None:
    """Lay out /usr/local the way the official node image does."""
    local = staging / "usr" / "local"
    modules = local / "lib" / "node_modules"
    bin_dir = local / "bin"
    node_pkg = staging / "node-package"
    _extract_package(fetch_npm_tarball(client, plan.node, registry), node_pkg)
    bin_dir.mkdir(parents=True)
    shutil.copy2(node_pkg / "bin" / "node", bin_dir / "node")
    shutil.rmtree(node_pkg)
    _extract_package(fetch_npm_tarball(client, plan.npm, registry), modules / "npm")
    _extract_package(fetch_npm_tarball(client, plan.corepack, registry), modules / "corepack")
    links = {
        "npm": "../lib/node_modules/npm/bin/npm-cli.js",
        "npx": "../lib/node_modules/npm/bin/npx-cli.js",
        "corepack": "../lib/node_modules/corepack/dist/corepack.js",
    }
    for name, target in links.items():
        (bin_dir / target).resolve().chmod(0o755)
        (bin_dir / name).symlink_to(target)
    (bin_dir / "node").chmod(0o755)
    for path in [local, *local.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)


def _bootstrap_and_import(plan: BasePlan, staging: Path, log: Path) -> None:
    docker = shutil.which("docker") or "docker"
    import_argv = [docker, "import"]
    for change in docker_import_changes(plan):
        import_argv += ["--change", change]
    import_argv += ["-", plan.tag]
    deadline = time.monotonic() + BUILD_TIMEOUT_S
    with log.open("wb") as log_file:
        bootstrap = subprocess.Popen(
            mmdebstrap_argv(plan, staging), stdout=subprocess.PIPE, stderr=log_file
        )
        assert bootstrap.stdout is not None
        importer = subprocess.Popen(
            import_argv, stdin=bootstrap.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        bootstrap.stdout.close()  # the importer owns the pipe now
        try:
            imported, import_errors = importer.communicate(timeout=deadline - time.monotonic())
            bootstrap.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for process in (bootstrap, importer):
                process.kill()
            raise BaseImageError(
                f"bootstrapping {SUITE} took longer than {BUILD_TIMEOUT_S:g} s",
                "check the Debian mirror's speed, then retry",
            ) from None
    tail = tuple(log.read_text(errors="replace").splitlines()[-15:])
    if bootstrap.returncode != 0:
        raise BaseImageError(
            f"mmdebstrap failed (exit {bootstrap.returncode}): {_last_line(chr(10).join(tail))}",
            "check that the Debian mirror in the apt sources is reachable, then retry",
            details=tail,
        )
    if importer.returncode != 0:
        raise EngineError(
            f"docker import failed: {_last_line(import_errors.decode(errors='replace'))}",
            "check `docker info`; start the engine with scripts/setup-engine.sh",
        )
    say(f"imported {imported.decode().strip()}")


def make_base_image(tag: str = DEFAULT_TAG, force: bool = False) -> str:
    """Make (or keep) the offline base image under `tag`; returns the tag."""
    plan = make_plan(tag)
    existing = image_recipe(tag)
    if existing == plan.recipe and not force:
        say(f"{tag} is up to date (recipe {plan.recipe}); --force rebuilds it")
        return tag
    if existing is not None and not force:
        say(f"{tag} exists with another recipe ({existing or 'none'}); rebuilding")
    if shutil.which("mmdebstrap") is None:
        raise BaseImageError(
            "mmdebstrap is not installed",
            "run scripts/setup-engine.sh (or apt-get install mmdebstrap)",
        )
    if os.geteuid() != 0:
        raise BaseImageError("mmdebstrap needs root here", "run the session as root")
    import ssl

    import httpx

    started = time.monotonic()
    for line in plan.describe():
        say(f"    {line}")
    registry = os.environ.get("NPM_CONFIG_REGISTRY") or NPM_REGISTRY
    # The system's CA store (and SSL_CERT_FILE), not certifi's: egress proxies add their own CA.
    context = ssl.create_default_context()
    with tempfile.TemporaryDirectory(prefix="sandbox-base-") as tmp:
        staging = Path(tmp) / "staging"
        step(f"fetching {plan.node.spec}, {plan.npm.spec}, {plan.corepack.spec} (verified)")
        with httpx.Client(timeout=120, verify=context, follow_redirects=True) as client:
            stage_node(plan, staging, client, registry)
        say(f"fetched in {time.monotonic() - started:.1f} s")
        step(f"bootstrapping {SUITE} and importing it as {tag}")
        _bootstrap_and_import(plan, staging, Path(tmp) / "mmdebstrap.log")
    say(f"made {tag} in {time.monotonic() - started:.1f} s")
    return tag


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def base_image(argv: list[str]) -> None:
    """`nox -s base_image -- [--tag T] [--force] [--dry-run]`: make the offline base image."""
    parser = argparse.ArgumentParser(
        prog="nox -s base_image --",
        description="Make the offline stand-in for node:24-bookworm (Debian bookworm via "
        "mmdebstrap + Node.js, npm and corepack from the npm registry) and docker-import it.",
    )
    parser.add_argument("--tag", default=DEFAULT_TAG, help=f"image tag (default: {DEFAULT_TAG})")
    parser.add_argument("--force", action="store_true", help="rebuild even if the tag is current")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the plan and whether it would build"
    )
    args = parser.parse_args(argv)
    if args.dry_run:
        plan = make_plan(args.tag)
        for line in plan.describe():
            say(line)
        existing = image_recipe(args.tag)
        current = existing == plan.recipe and not args.force
        say("would keep the existing image" if current else "would build")
        output(args.tag)
        return
    output(make_base_image(args.tag, force=args.force))

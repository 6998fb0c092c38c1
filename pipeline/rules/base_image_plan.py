"""What the offline stand-in for `node:24-bookworm` consists of: Debian mirrors, the npm packages
of Node.js, npm and corepack, and a recipe hash of all of it (an image whose recipe label
matches is current); mmdebstrap's argv, the `docker import` changes, tarball integrity checks.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ConfigError
from pipeline.rules.dockerfile import global_args, parse, stage_names

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
# sudo resets the environment; a proxy the user set must still reach mmdebstrap's apt.
PROXY_VARIABLES = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
RECIPE_LABEL = "org.iterate.sandbox-base.recipe"
RECIPE_REVISION = "2"  # bump when the layout below changes
_OPTIONS = re.compile(r"\[[^\]]*\]")


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
        npm = (self.node.spec, self.npm.spec, self.corepack.spec)
        facts = [RECIPE_REVISION, self.arch, *npm, *self.sources, *self.packages]
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


def debian_arch(machine: str) -> tuple[str, str]:
    """(Debian arch, Node.js arch) for a `platform.machine()` value."""
    machine = machine.lower()
    if machine in ("x86_64", "amd64"):
        return "amd64", "x64"
    if machine in ("aarch64", "arm64"):
        return "arm64", "arm64"
    raise ConfigError(f"no Node.js build for machine {machine!r}", "build on x86_64 or aarch64")


def apt_sources(texts: Iterable[str]) -> tuple[str, ...]:
    """bookworm, -updates and -security lines with the mirrors of one-line and deb822 apt
    sources; a suite not found falls back to deb.debian.org."""
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


def make_plan(tag: str, source_texts: Iterable[str], machine: str) -> BasePlan:
    name, _, version = tag.rpartition(":")
    if not name or "/" in version or not version:
        raise ConfigError(f"--tag {tag!r} is not NAME:TAG", "pass e.g. --tag sandbox-base/x:local")
    arch, node_arch = debian_arch(machine)
    return BasePlan(
        tag=tag,
        arch=arch,
        node=NpmPackage(f"node-linux-{node_arch}", NODE_VERSION),
        npm=NpmPackage("npm", NPM_VERSION),
        corepack=NpmPackage("corepack", COREPACK_VERSION),
        sources=apt_sources(source_texts),
        packages=EXTRA_PACKAGES,
    )


def integrity_matches(data: bytes, dist: dict[str, Any]) -> bool:
    """npm's `dist.integrity` (SRI), else `dist.shasum`."""
    integrity = str(dist.get("integrity") or "")
    for entry in integrity.split():
        algorithm, _, digest = entry.partition("-")
        if algorithm in ("sha512", "sha384", "sha256"):
            actual = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
            return actual == digest.split("?")[0]
    shasum = dist.get("shasum")
    return bool(shasum) and hashlib.sha1(data, usedforsecurity=False).hexdigest() == shasum


def docker_import_changes(plan: BasePlan) -> list[str]:
    return [
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        f"ENV NODE_VERSION={plan.node.version}",
        f"LABEL {RECIPE_LABEL}={plan.recipe}",
        'CMD ["node"]',
    ]


def mmdebstrap_argv(plan: BasePlan, staging: str) -> list[str]:
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
        # Staged by a non-root user (mmdebstrap under sudo), the files would keep that uid.
        '--customize-hook=chown -R 0:0 "$1"/usr/local',
        # Like the official images: no apt lists, no caches, a machine-id written at boot.
        '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin',
        '--customize-hook=rm -f "$1"/etc/machine-id "$1"/var/lib/dbus/machine-id',
        SUITE,
        "-",
        *plan.sources,
    ]


def dockerfile_default_base(dockerfile_text: str) -> str | None:
    """The image a Dockerfile builds FROM without a BASE_IMAGE build arg: the `ARG BASE_IMAGE=`
    default, or the image of the stage that default names (`FROM node:24-bookworm AS x`)."""
    parsed = parse(dockerfile_text)
    default = global_args(parsed).get("BASE_IMAGE")
    if not default:
        return None
    stages = [i.operands for i in parsed.instructions if i.keyword == "FROM"]
    for name, words in zip(stage_names(parsed), stages, strict=True):
        if name == default.lower():
            return words[0]
    return default


def offline_tools_problem(mmdebstrap: str | None, is_root: bool, sudo_works: bool) -> str | None:
    if mmdebstrap is None:
        return "mmdebstrap is not installed"
    if not is_root and not sudo_works:
        return "mmdebstrap needs root, and this user is not root and has no passwordless sudo"
    return None

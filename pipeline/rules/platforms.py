"""Build platforms: which `os/arch[/variant]` values exist, and whether a builder can build them.

OCI image indexes take `os` and `architecture` from Go's GOOS/GOARCH and `variant` from the spec's
table, plus the amd64 levels v1-v4 that containerd and buildx use. A typo here would otherwise be
written into the image's platform and only fail when something runs it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# `go tool dist list` (Go 1.22), the OCI image index's list of os/architecture pairs.
_GO_DIST = {
    "aix": "ppc64",
    "android": "386 amd64 arm arm64",
    "darwin": "amd64 arm64",
    "dragonfly": "amd64",
    "freebsd": "386 amd64 arm arm64 riscv64",
    "illumos": "amd64",
    "ios": "amd64 arm64",
    "js": "wasm",
    "linux": "386 amd64 arm arm64 loong64 mips mips64 mips64le mipsle ppc64 ppc64le riscv64 s390x",
    "netbsd": "386 amd64 arm arm64",
    "openbsd": "386 amd64 arm arm64 ppc64 riscv64",
    "plan9": "386 amd64 arm",
    "solaris": "amd64",
    "wasip1": "wasm",
    "windows": "386 amd64 arm arm64",
}
OCI_PLATFORMS = frozenset(
    f"{os}/{arch}" for os, arches in _GO_DIST.items() for arch in arches.split()
)
VARIANTS = {
    "arm": ("v5", "v6", "v7", "v8"),
    "arm64": ("v8",),
    "amd64": ("v1", "v2", "v3", "v4"),
}
# What a platform without a variant means (containerd's normalisation).
DEFAULT_VARIANT = {"arm": "v7", "arm64": "v8", "amd64": "v1"}
# Names people type for an architecture, and the GOARCH name buildx writes into the image.
ALIASES = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "x64": "amd64",
    "aarch64": "arm64",
    "armhf": "arm",
    "armel": "arm",
    "i386": "386",
    "i686": "386",
}


def platform_problem(platform: str) -> str | None:
    parts = platform.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        return f"{platform} is not os/arch[/variant]"
    os_name, arch = parts[0], parts[1]
    if f"{os_name}/{arch}" not in OCI_PLATFORMS:
        hint = ALIASES.get(arch)
        if hint and f"{os_name}/{hint}" in OCI_PLATFORMS:
            return f"{platform} is not an OCI platform, did you mean {os_name}/{hint}?"
        arches = sorted(p.split("/")[1] for p in OCI_PLATFORMS if p.startswith(f"{os_name}/"))
        if not arches:
            return f"{platform} is not an OCI platform: no os {os_name}, os names are lower-case"
        return f"{platform} is not an OCI platform: {os_name} has {', '.join(arches)}"
    if len(parts) == 3 and parts[2] not in VARIANTS.get(arch, ()):
        variants = VARIANTS.get(arch)
        allowed = f"one of {', '.join(variants)}" if variants else "none"
        return f"{platform} has an unknown variant: {arch} takes {allowed}"
    return None


def normalize(platform: str) -> str:
    """One spelling per platform: the default variant is dropped (linux/arm64/v8 = linux/arm64,
    linux/arm = linux/arm/v7), as buildx and containerd compare them."""
    parts = platform.strip().rstrip("*").split("/")
    if len(parts) < 2:
        return platform.strip()
    os_name, arch = parts[0], parts[1]
    variant = parts[2] if len(parts) > 2 else DEFAULT_VARIANT.get(arch)
    if arch == "arm":
        return f"{os_name}/arm/{variant}"
    if variant is None or variant == DEFAULT_VARIANT.get(arch):
        return f"{os_name}/{arch}"
    return f"{os_name}/{arch}/{variant}"


def unsupported(wanted: Iterable[str], offered: Iterable[str]) -> tuple[str, ...]:
    can = {normalize(p) for p in offered}
    return tuple(p for p in wanted if normalize(p) not in can)


@dataclass(frozen=True)
class BuilderFacts:
    name: str
    driver: str
    platforms: tuple[str, ...]  # empty when the builder has not booted yet (unknown)


def parse_builder_inspect(text: str) -> BuilderFacts:
    """Read `docker buildx inspect` (it has no JSON form in buildx 0.13): the first `Name:` and
    `Driver:`, and the union of every node's `Platforms:` (a `*` marks configured ones)."""
    name = driver = ""
    platforms: list[str] = []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "Name" and not name:
            name = value
        elif key == "Driver" and not driver:
            driver = value
        elif key == "Platforms":
            platforms += [item.strip().rstrip("*") for item in value.split(",")]
    return BuilderFacts(name, driver, tuple(dict.fromkeys(p for p in platforms if p)))

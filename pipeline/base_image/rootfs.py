"""Makes the offline stand-in for `node:24-bookworm`: mmdebstrap + Node.js from npm, imported.

A minbase bookworm rootfs from the mirror the machine's apt sources name, with Node.js, npm and
corepack from the npm registry (each checked against its integrity hash) laid out as the
official image does, streamed into `docker import`. mmdebstrap runs as root, or under `sudo -n`
(GitHub's runners); everything else runs as the user.
"""

from __future__ import annotations

import io
import os
import platform
import shutil
import subprocess
import tarfile
import tempfile
import time
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from pipeline.base_image import safe_tar
from pipeline.console import say, step
from pipeline.docker import images
from pipeline.docker.cli import Docker
from pipeline.errors import PipelineError
from pipeline.process_group import last_line, run
from pipeline.rules.base_image_plan import (
    DEFAULT_TAG,
    NPM_REGISTRY,
    PROXY_VARIABLES,
    RECIPE_LABEL,
    SUITE,
    BasePlan,
    NpmPackage,
    docker_import_changes,
    integrity_matches,
    make_plan,
    mmdebstrap_argv,
    offline_tools_problem,
)

if TYPE_CHECKING:
    import httpx

APT_SOURCE_FILES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
BUILD_TIMEOUT_S = 900.0


class BaseImageError(PipelineError):
    exit_code = 12


def plan_here(tag: str = DEFAULT_TAG) -> BasePlan:
    texts = []
    for path in APT_SOURCE_FILES:
        files = sorted(path.glob("*.list")) + sorted(path.glob("*.sources"))
        for file in files if path.is_dir() else [path]:
            with suppress(OSError):
                texts.append(file.read_text())
    return make_plan(tag, texts, platform.machine())


def sudo_prefix(env: dict[str, str]) -> list[str]:
    """How to run mmdebstrap as root: directly, or under `sudo -n` keeping `env`'s proxies."""
    mmdebstrap = shutil.which("mmdebstrap")
    is_root = os.geteuid() == 0
    sudo = None if is_root else shutil.which("sudo")
    try:
        sudo_works = sudo is not None and run([sudo, "-n", "true"], 15).code == 0
    except OSError:
        sudo_works = False
    if problem := offline_tools_problem(mmdebstrap, is_root, sudo_works):
        fix = "run as root or with passwordless sudo"
        if mmdebstrap is None:
            fix = f"{'' if is_root else 'sudo '}apt-get install --no-install-recommends mmdebstrap"
        raise BaseImageError(
            f"cannot make the offline base image: {problem}",
            f"{fix}, or set SANDBOX_BASE_IMAGE to a Node 24 bookworm image this engine has",
        )
    if is_root or sudo is None:
        return []
    kept = [name for name in PROXY_VARIABLES if env.get(name)]
    return [sudo, "-n", *([f"--preserve-env={','.join(kept)}"] if kept else [])]


def fetch_npm_tarball(
    client: httpx.Client, package: NpmPackage, cache_dir: Path, registry: str = NPM_REGISTRY
) -> bytes:
    """One package's tarball, verified against the registry's metadata (also when it comes
    from `cache_dir`)."""
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
        cached = cache_dir / f"{package.name.replace('/', '_')}-{package.version}.tgz"
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
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(cached)
    return data


def extract_package(
    data: bytes, destination: Path, *, use_builtin_filter: bool = safe_tar.HAS_DATA_FILTER
) -> None:
    """Unpack an npm tarball (everything under `package/`)."""
    destination.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            members = []
            for member in archive.getmembers():
                _, _, inner = member.name.partition("/")
                if not inner:
                    continue
                member.name = inner
                if member.islnk():  # a hard link names its target from the archive's root
                    member.linkname = member.linkname.partition("/")[2]
                members.append(member)
            safe_tar.extract_all(
                archive, destination, members, use_builtin_filter=use_builtin_filter
            )
    except tarfile.TarError as error:
        raise BaseImageError(
            f"refusing an npm tarball: {error}",
            "retry; if it persists, the registry serves a broken or malicious package",
        ) from None


def stage_node(
    plan: BasePlan,
    staging: Path,
    client: httpx.Client,
    cache_dir: Path,
    registry: str = NPM_REGISTRY,
) -> None:
    """Lay out /usr/local the way the official node image does."""
    local = staging / "usr" / "local"
    modules = local / "lib" / "node_modules"
    bin_dir = local / "bin"
    node_pkg = staging / "node-package"
    for package, into in (
        (plan.node, node_pkg),
        (plan.npm, modules / "npm"),
        (plan.corepack, modules / "corepack"),
    ):
        extract_package(fetch_npm_tarball(client, package, cache_dir, registry), into)
    bin_dir.mkdir(parents=True)
    shutil.copy2(node_pkg / "bin" / "node", bin_dir / "node")
    shutil.rmtree(node_pkg)
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


def bootstrap_and_import(
    plan: BasePlan, staging: Path, log: Path, as_root: list[str], docker: Docker
) -> None:
    """mmdebstrap's tarball on stdout, piped into `docker import` (nothing large on disk)."""
    deadline = time.monotonic() + BUILD_TIMEOUT_S
    with log.open("wb") as log_file:
        bootstrap = subprocess.Popen(
            [*as_root, *mmdebstrap_argv(plan, str(staging))],
            stdout=subprocess.PIPE,
            stderr=log_file,
        )
        assert bootstrap.stdout is not None
        try:
            imported = images.import_rootfs(
                docker, bootstrap.stdout, plan.tag, docker_import_changes(plan), BUILD_TIMEOUT_S
            )
        finally:
            bootstrap.stdout.close()
            try:
                bootstrap.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                bootstrap.kill()
                raise BaseImageError(
                    f"bootstrapping {SUITE} took longer than {BUILD_TIMEOUT_S:g} s",
                    "check the Debian mirror's speed, then retry",
                ) from None
    tail = tuple(log.read_text(errors="replace").splitlines()[-15:])
    if bootstrap.returncode != 0:
        raise BaseImageError(
            f"mmdebstrap failed (exit {bootstrap.returncode}): {last_line(chr(10).join(tail))}",
            "check that the Debian mirror in the apt sources is reachable, then retry",
            details=tail,
        )
    say(f"imported {imported}")


def make_base_image(
    docker: Docker,
    env: dict[str, str],
    cache_dir: Path,
    tag: str = DEFAULT_TAG,
    force: bool = False,
) -> str:
    """Make (or keep) the offline base image under `tag`. `env`: the proxy variables and
    NPM_CONFIG_REGISTRY; `cache_dir`: verified npm tarballs."""
    plan = plan_here(tag)
    existing = images.label(docker, tag, RECIPE_LABEL)
    if existing == plan.recipe and not force:
        say(f"{tag} is up to date (recipe {plan.recipe}); --force rebuilds it")
        return tag
    if existing is not None and not force:
        say(f"{tag} exists with another recipe ({existing or 'none'}); rebuilding")
    as_root = sudo_prefix(env)
    import ssl

    import httpx

    started = time.monotonic()
    for line in plan.describe():
        say(f"    {line}")
    registry = env.get("NPM_CONFIG_REGISTRY") or NPM_REGISTRY
    # The system's CA store (and SSL_CERT_FILE), not certifi's: egress proxies add their own CA.
    context = ssl.create_default_context()
    with tempfile.TemporaryDirectory(prefix="sandbox-base-") as tmp:
        staging = Path(tmp) / "staging"
        step(f"fetching {plan.node.spec}, {plan.npm.spec}, {plan.corepack.spec} (verified)")
        with httpx.Client(timeout=120, verify=context, follow_redirects=True) as client:
            stage_node(plan, staging, client, cache_dir, registry)
        say(f"fetched in {time.monotonic() - started:.1f} s")
        step(f"bootstrapping {SUITE} and importing it as {tag}")
        bootstrap_and_import(plan, staging, Path(tmp) / "mmdebstrap.log", as_root, docker)
    say(f"made {tag} in {time.monotonic() - started:.1f} s")
    return tag

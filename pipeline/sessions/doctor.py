from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline import console
from pipeline.docker.cli import Docker, find_docker
from pipeline.errors import DoctorFoundProblems, PipelineError
from pipeline.registry.credentials import docker_config_has_auth, resolve_credentials
from pipeline.rules.build_plan import CACHE_EXPORT_FIX, NO_CACHE_EXPORT, builder_problem
from pipeline.rules.failures import BUILDX_FIX
from pipeline.rules.image_ref import is_loopback
from pipeline.rules.platforms import BuilderFacts
from pipeline.sessions.options import parser
from pipeline.settings.build import BuildSettings, load

CHECK_TIMEOUT_S = 20


@dataclass(frozen=True)
class Finding:
    ok: bool
    what: str
    detail: str
    fix: str = ""
    note: bool = False  # ok for what this machine does now, worth knowing for what it may do

    def line(self) -> str:
        if self.note:
            return f"note  {self.what}: {self.detail} — {self.fix}"
        if self.ok:
            return f"ok    {self.what}: {self.detail}"
        return f"FAIL  {self.what}: {self.detail} — fix: {self.fix}"


def doctor(argv: Sequence[str]) -> None:
    cli = parser("doctor")
    cli.add_argument(
        "--skip-login", action="store_true", help="do not try the registry credentials"
    )
    args = cli.parse_args(argv)
    if args.dry_run:
        console.step("would check: settings, engine, buildx, cache export, registry credentials")
        return
    findings = list(checks(args.skip_login))
    for finding in findings:
        console.output(finding.line())
    problems = [f for f in findings if not f.ok]
    if problems:
        raise DoctorFoundProblems(
            f"doctor found {len(problems)} problem(s): " + "; ".join(p.what for p in problems),
            "apply the fixes on the FAIL lines above",
        )


def checks(skip_login: bool) -> Iterator[Finding]:
    """In order, each after the one before it passed where it needs that one's settings, engine
    or builder."""
    from pipeline.docker.buildx import BuilderProbe

    try:
        settings = load(BuildSettings)
    except PipelineError as error:
        yield Finding(False, "settings", error.cause, error.fix)
        return
    yield Finding(True, "settings", f"repository {settings.image_repository}")
    try:
        docker = find_docker(settings.docker)
    except PipelineError as error:
        yield Finding(False, "docker CLI", error.cause, error.fix)
        return
    yield Finding(True, "docker CLI", "found")
    endpoint = settings.docker_host or "the default socket"
    version = _ask(docker, "version", "--format", "{{.Server.Version}}")
    if version is None:
        yield Finding(
            False,
            "engine",
            f"no Docker engine answers at {endpoint}",
            "start it (scripts/setup-engine.sh) or set DOCKER_HOST to a running engine",
        )
        return
    yield Finding(True, "engine", f"Docker {version or 'unknown'} at {endpoint}")
    buildx = _ask(docker, "buildx", "version")
    if buildx is None:
        yield Finding(False, "buildx", "docker buildx is not installed", BUILDX_FIX)
    else:
        yield Finding(True, "buildx", buildx)
    try:
        with BuilderProbe(docker, settings.builder) as probe:
            builder = probe.result(CHECK_TIMEOUT_S)
    except PipelineError as error:
        yield Finding(False, "builder", error.cause, error.fix)
        return
    if problem := builder_problem(settings.request("local"), builder):
        yield Finding(False, "platforms", problem.cause, problem.fix)
    else:
        platforms = ", ".join(builder.platforms) or "not booted yet"
        yield Finding(True, "builder", f"{builder.name} ({builder.driver}): {platforms}")
    yield _cache_export(docker, builder)
    yield _credentials(settings, docker, skip_login)


def _ask(docker: Docker, *args: str) -> str | None:
    """What docker prints (stripped), None when it fails."""
    done = docker.run(*args, timeout_s=CHECK_TIMEOUT_S)
    return None if done.code else done.out.strip()


def _cache_export(docker: Docker, builder: BuilderFacts) -> Finding:
    from pipeline.docker.buildx import containerd_image_store

    name, driver = builder.name, builder.driver
    if driver != "docker":
        return Finding(True, "cache export", f"builder {name} ({driver})")
    store = containerd_image_store(docker)
    if store:
        return Finding(True, "cache export", f"builder {name} (docker, containerd image store)")
    if store is None:
        return Finding(
            False,
            "cache export",
            "the engine did not say which image store it uses (`docker info`)",
            "check that `docker info` answers",
        )
    return Finding(False, "cache export", NO_CACHE_EXPORT, CACHE_EXPORT_FIX)


def _credentials(settings: BuildSettings, docker: Docker | None, skip_login: bool) -> Finding:
    host = settings.registry_host
    try:
        found = resolve_credentials(settings)
    except PipelineError as error:
        return Finding(False, "registry credentials", error.cause, error.fix)
    if found is None:
        if docker_config_has_auth(settings.docker_config_dir, host):
            return Finding(True, "registry credentials", f"{host}: from the Docker config")
        if is_loopback(host):
            return Finding(True, "registry credentials", f"{host}: none (loopback registry)")
        how = (
            "set REGISTRY_USERNAME/REGISTRY_PASSWORD (or GITHUB_ACTOR/GITHUB_TOKEN for "
            f"ghcr.io), or run `docker login {host}`"
        )
        if settings.push:
            return Finding(False, "registry credentials", f"none for {host} (PUSH=1)", how)
        # A machine that only builds :local needs none: not a problem, but say what pushing needs.
        return Finding(
            True,
            "registry credentials",
            f"none for {host}; local builds need none (PUSH=1 and snapshot_push do)",
            f"to push, {how}",
            note=True,
        )
    if skip_login:
        return Finding(True, "registry credentials", f"{host}: {found.source} (not tried)")
    from pipeline.docker.login import login

    assert docker is not None  # the engine checks came first and passed
    # A throw-away Docker config: the check must not store credentials anywhere.
    with tempfile.TemporaryDirectory(prefix="doctor-docker-config-") as config:
        try:
            login(docker.with_config(Path(config)), host, found)
        except PipelineError as error:
            return Finding(False, "registry credentials", error.cause, error.fix)
    return Finding(True, "registry credentials", f"{host}: {found.source} accepted")

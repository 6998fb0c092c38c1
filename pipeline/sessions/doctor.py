"""`doctor`: is this machine ready to build and push? One line per problem, each with its fix."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline import console
from pipeline.docker.cli import Docker, find_docker
from pipeline.errors import DoctorFoundProblems, PipelineError
from pipeline.registry.credentials import docker_config_has_auth, resolve_credentials
from pipeline.rules.build_plan import CACHE_EXPORT_FIX, NO_CACHE_EXPORT
from pipeline.rules.failures import BUILDX_FIX
from pipeline.rules.image_ref import is_loopback
from pipeline.rules.platforms import BuilderFacts, unsupported
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
    cli = parser("doctor", "Check engine, buildx, cache export and registry credentials.")
    cli.add_argument(
        "--skip-login", action="store_true", help="do not try the registry credentials"
    )
    args = cli.parse_args(argv)
    if args.dry_run:
        console.step("would check: settings, engine, buildx, cache export, registry credentials")
        return
    findings = run_checks(skip_login=args.skip_login)
    for finding in findings:
        console.output(finding.line())
    problems = [f for f in findings if not f.ok]
    if problems:
        raise DoctorFoundProblems(
            f"doctor found {len(problems)} problem(s): " + "; ".join(p.what for p in problems),
            "apply the fixes on the FAIL lines above",
        )


def run_checks(skip_login: bool = False) -> list[Finding]:
    try:
        settings = load(BuildSettings)
    except PipelineError as error:
        return [Finding(False, "settings", error.cause, error.fix)]
    findings = [Finding(True, "settings", f"repository {settings.image_repository}")]
    state = _State(settings, skip_login)
    for check in (_cli, _engine, _buildx, _builder, _cache_export, _credentials):
        finding = check(state)
        findings.append(finding)
        if not finding.ok and finding.what in ("docker CLI", "engine", "builder"):
            break  # everything after needs an engine and its builder
    return findings


@dataclass
class _State:
    """The settings, and what one check finds that a later one uses."""

    settings: BuildSettings
    skip_login: bool
    cli: Docker | None = None
    builder: BuilderFacts | None = None

    def docker(self) -> Docker:
        assert self.cli is not None  # the docker CLI check came first and passed
        return self.cli

    @property
    def endpoint(self) -> str:
        return self.settings.docker_host or "the default socket"


def _cli(state: _State) -> Finding:
    try:
        state.cli = find_docker(state.settings.docker)
    except PipelineError as error:
        return Finding(False, "docker CLI", error.cause, error.fix)
    return Finding(True, "docker CLI", "found")


def _engine(state: _State) -> Finding:
    version = _ask(state, "version", "--format", "{{.Server.Version}}")
    if version is None:
        return Finding(
            False,
            "engine",
            f"no Docker engine answers at {state.endpoint}",
            "start it (scripts/setup-engine.sh) or set DOCKER_HOST to a running engine",
        )
    return Finding(True, "engine", f"Docker {version or 'unknown'} at {state.endpoint}")


def _buildx(state: _State) -> Finding:
    version = _ask(state, "buildx", "version")
    if version is None:
        return Finding(False, "buildx", "docker buildx is not installed", BUILDX_FIX)
    return Finding(True, "buildx", version)


def _ask(state: _State, *args: str) -> str | None:
    """What docker prints (stripped), None when it fails."""
    done = state.docker().run(*args, timeout_s=CHECK_TIMEOUT_S)
    return None if done.code else done.out.strip()


def _builder(state: _State) -> Finding:
    from pipeline.docker.buildx import BuilderProbe

    try:
        with BuilderProbe(state.docker(), state.settings.builder) as probe:
            facts = probe.result(CHECK_TIMEOUT_S)
    except PipelineError as error:
        return Finding(False, "builder", error.cause, error.fix)
    state.builder = facts
    missing = unsupported(state.settings.platforms, facts.platforms) if facts.platforms else ()
    if missing:
        return Finding(
            False,
            "platforms",
            f"builder {facts.name} ({facts.driver}) cannot build SANDBOX_BUILD_PLATFORM "
            f"{', '.join(missing)}; it builds {', '.join(facts.platforms)}",
            "choose platforms the builder lists, or select one that builds them with "
            "BUILDX_BUILDER",
        )
    platforms = ", ".join(facts.platforms) or "not booted yet"
    return Finding(True, "builder", f"{facts.name} ({facts.driver}): {platforms}")


def _cache_export(state: _State) -> Finding:
    from pipeline.docker.buildx import containerd_image_store

    assert state.builder is not None  # the builder check came first and passed
    name, driver = state.builder.name, state.builder.driver
    if driver != "docker":
        return Finding(True, "cache export", f"builder {name} ({driver})")
    store = containerd_image_store(state.docker())
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


def _credentials(state: _State) -> Finding:
    settings, host = state.settings, state.settings.registry_host
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
    if state.skip_login:
        return Finding(True, "registry credentials", f"{host}: {found.source} (not tried)")
    from pipeline.docker.login import login

    # A throw-away Docker config: the check must not store credentials anywhere.
    with tempfile.TemporaryDirectory(prefix="doctor-docker-config-") as config:
        try:
            login(state.docker().with_config(Path(config)), host, found)
        except PipelineError as error:
            return Finding(False, "registry credentials", error.cause, error.fix)
    return Finding(True, "registry credentials", f"{host}: {found.source} accepted")

"""`doctor`: is this machine ready to build and push? One line per problem, each with its fix."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pipeline import console
from pipeline.adapters.registry_auth import docker_config_has_auth, is_loopback, resolve_credentials
from pipeline.errors import PipelineError
from pipeline.sessions.options import parser
from pipeline.settings.build import BuildSettings, load

CHECK_TIMEOUT_S = 20


@dataclass(frozen=True)
class Finding:
    ok: bool
    what: str
    detail: str
    fix: str = ""

    def line(self) -> str:
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
        raise PipelineError(
            f"doctor found {len(problems)} problem(s): " + "; ".join(p.what for p in problems),
            "apply the fixes on the FAIL lines above",
        )


def run_checks(skip_login: bool = False) -> list[Finding]:
    try:
        settings = load(BuildSettings)
    except PipelineError as error:
        return [Finding(False, "settings", error.cause, error.fix)]
    findings = [Finding(True, "settings", f"repository {settings.image_repository}")]
    for check in _checks(settings, skip_login):
        finding = check()
        findings.append(finding)
        if not finding.ok and finding.what in ("docker CLI", "engine"):
            break  # everything after needs an engine
    return findings


def _checks(settings: BuildSettings, skip_login: bool) -> list[Callable[[], Finding]]:
    from python_on_whales.exceptions import DockerException

    from pipeline.adapters.buildx import docker_client
    from pipeline.errors import EngineError

    endpoint = settings.docker_host or "the default socket"

    def cli() -> Finding:
        try:
            docker_client(settings.docker_host)
        except EngineError as error:
            return Finding(False, "docker CLI", error.cause, error.fix)
        return Finding(True, "docker CLI", "found")

    def engine() -> Finding:
        try:
            version = docker_client(settings.docker_host, CHECK_TIMEOUT_S).version()
        except DockerException:
            return Finding(
                False,
                "engine",
                f"no Docker engine answers at {endpoint}",
                "start it (scripts/setup-engine.sh) or set DOCKER_HOST to a running engine",
            )
        server = version.server.version if version.server else "unknown"
        return Finding(True, "engine", f"Docker {server} at {endpoint}")

    def buildx() -> Finding:
        try:
            text = docker_client(settings.docker_host, CHECK_TIMEOUT_S).buildx.version()
        except DockerException:
            return Finding(
                False,
                "buildx",
                "docker buildx is not installed",
                "run scripts/setup-engine.sh (Debian: docker-buildx) or install the buildx plugin",
            )
        return Finding(True, "buildx", text.strip())

    def cache_export() -> Finding:
        client = docker_client(settings.docker_host, CHECK_TIMEOUT_S)
        try:
            builder = client.buildx.inspect(settings.builder)
        except DockerException:
            return Finding(
                False,
                "builder",
                f"buildx builder {settings.builder!r} does not exist",
                "unset BUILDX_BUILDER or create it with `docker buildx create`",
            )
        if builder.driver != "docker":
            return Finding(True, "cache export", f"builder {builder.name} ({builder.driver})")
        status = dict(client.info().driver_status or [])
        if status.get("driver-type") == "io.containerd.snapshotter.v1":
            return Finding(
                True, "cache export", f"builder {builder.name} (docker, containerd image store)"
            )
        return Finding(
            False,
            "cache export",
            "the docker driver without the containerd image store cannot export a registry cache",
            'add {"features": {"containerd-snapshotter": true}} to /etc/docker/daemon.json and '
            "restart dockerd, or select a docker-container builder with BUILDX_BUILDER",
        )

    def credentials() -> Finding:
        host = settings.registry_host
        try:
            found = resolve_credentials(settings)
        except PipelineError as error:
            return Finding(False, "registry credentials", error.cause, error.fix)
        if found is None:
            if docker_config_has_auth(host):
                return Finding(True, "registry credentials", f"{host}: from the Docker config")
            if is_loopback(host):
                return Finding(True, "registry credentials", f"{host}: none (loopback registry)")
            return Finding(
                False,
                "registry credentials",
                f"none for {host} (needed for PUSH=1 and snapshot_push)",
                "set REGISTRY_USERNAME/REGISTRY_PASSWORD (or GITHUB_ACTOR/GITHUB_TOKEN for "
                f"ghcr.io), or run `docker login {host}`",
            )
        if skip_login:
            return Finding(True, "registry credentials", f"{host}: {found.source} (not tried)")
        from pipeline.adapters.registry_auth import login

        # A throw-away Docker config: the check must not store credentials anywhere.
        with tempfile.TemporaryDirectory(prefix="doctor-docker-config-") as config:
            from python_on_whales import DockerClient

            client = DockerClient(
                host=settings.docker_host,
                config=config,
                client_call=["timeout", f"{CHECK_TIMEOUT_S}s", "docker"],
            )
            try:
                login(client, host, found)
            except PipelineError as error:
                return Finding(False, "registry credentials", error.cause, error.fix)
        return Finding(True, "registry credentials", f"{host}: {found.source} accepted")

    return [cli, engine, buildx, cache_export, credentials]

"""Daytona sandboxes for code and tests: `running_sandbox` starts one from a snapshot for a
`with` block and always removes it, also when the block raises or the start fails half-way.

    spec = SandboxSpec(snapshot="prd--20261123-120000", env={...})
    with running_sandbox(client, spec) as sb:
        result = sb.exec("curl -fsS localhost:3000/health")
        preview = sb.preview(3000)   # .url, and .token for X-Daytona-Preview-Token

Every sandbox it makes carries `created-by: sandbox-pipeline` (so `--cleanup` finds the leftovers
of crashed runs) and by default asks Daytona to stop it when idle and delete it once stopped, so
even a leftover that nobody cleans up goes away on its own.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from pipeline import console
from pipeline.daytona.client import DEFAULT_EXEC_TIMEOUT, DaytonaClient
from pipeline.daytona.sandbox_lifecycle import (
    DEFAULT_WAITS,
    SandboxWaits,
    launch_sandbox,
    stop_and_delete,
)
from pipeline.errors import DaytonaError, PipelineError
from pipeline.rules.daytona_models import CreateSandbox, ExecResult, PortPreview, Sandbox
from pipeline.rules.sandbox_rules import (
    DEFAULT_AUTO_DELETE,
    DEFAULT_AUTO_STOP,
    DEFAULT_LOG_LINES,
    DEFAULT_PORT,
    PREVIEW_TOKEN_HEADER,
    new_sandbox_name,
    pipeline_labels,
)

DEFAULT_LOG_GLOB: Final = "/var/log/*/*.log"


@dataclass(frozen=True)
class SandboxSpec:
    """The sandbox `running_sandbox` starts. `env` values may be secrets: not in the repr."""

    snapshot: str
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    labels: Mapping[str, str] = field(default_factory=dict)
    name: str | None = None  # None: sbx-<YYYYMMDD-HHMMSS>-<random>
    public: bool = False
    auto_stop_interval: int = DEFAULT_AUTO_STOP
    auto_delete_interval: int = DEFAULT_AUTO_DELETE

    def request(self, now: datetime) -> CreateSandbox:
        return CreateSandbox(
            snapshot=self.snapshot,
            name=self.name or new_sandbox_name(now, secrets.token_hex(3)),
            env=dict(self.env),
            labels=pipeline_labels(self.labels),
            public=self.public,
            auto_stop_interval=self.auto_stop_interval,
            auto_delete_interval=self.auto_delete_interval,
        )


@dataclass
class SandboxHandle:
    """A started sandbox and the client that reaches it; what `running_sandbox` yields."""

    client: DaytonaClient
    sandbox: Sandbox

    @property
    def id(self) -> str:
        return self.sandbox.id

    @property
    def name(self) -> str:
        return self.sandbox.name

    def exec(
        self,
        command: str,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: int = DEFAULT_EXEC_TIMEOUT,
    ) -> ExecResult:
        """Run a shell command in the sandbox (toolbox `process/execute`, as the SDK)."""
        sandbox, client = self.sandbox, self.client
        base = sandbox.toolbox_proxy_url or client.toolbox_proxy_url(sandbox.id)
        return client.execute(base, sandbox.id, command, cwd=cwd, env=env, timeout=timeout)

    def preview(self, port: int = DEFAULT_PORT) -> PortPreview:
        """URL and token of a port; send the token as `X-Daytona-Preview-Token`."""
        return self.client.preview_url(self.sandbox.id, port)

    def logs(self, *, pattern: str = DEFAULT_LOG_GLOB, lines: int = DEFAULT_LOG_LINES) -> str:
        """The last `lines` of each service log (`tail` prints a header per file), for failure
        messages. Never raises: a sandbox that cannot be asked yields a note saying why."""
        try:
            return self.exec(f"tail -n {lines} {pattern} 2>&1", timeout=15).result
        except PipelineError as error:
            return f"(could not read the service logs of {self.sandbox.name}: {error.cause})"

    def refresh(self) -> Sandbox:
        found = self.client.get_sandbox(self.sandbox.id)
        if found is None:
            raise DaytonaError(f"sandbox {self.sandbox.name} is gone")
        self.sandbox = found
        return found


def preview_headers(preview: PortPreview) -> dict[str, str]:
    """Headers that open a private sandbox's preview URL (never log them)."""
    return {PREVIEW_TOKEN_HEADER: preview.token.get_secret_value()}


@contextmanager
def running_sandbox(
    client: DaytonaClient, spec: SandboxSpec, waits: SandboxWaits = DEFAULT_WAITS
) -> Iterator[SandboxHandle]:
    """A started sandbox from `spec` for the `with` block; stopped and deleted (and waited for
    until gone) when the block ends, also when it raises or creation fails half-way.

    A teardown failure is raised only when the block itself succeeded; otherwise it is printed
    as a warning, so it never hides the block's own error.
    """
    sandbox = launch_sandbox(client, spec.request(datetime.now(UTC)), waits)
    failed = False
    try:
        yield SandboxHandle(client, sandbox)
    except BaseException:
        failed = True
        raise
    finally:
        try:
            stop_and_delete(client, sandbox.id, waits)
        except PipelineError as error:
            if not failed:
                raise
            console.warn(
                f"could not remove sandbox {sandbox.name}: {error}; remove it with "
                f"`nox -s sandbox_daytona -- --down {sandbox.name}`"
            )


__all__ = [
    "SandboxHandle",
    "SandboxSpec",
    "SandboxWaits",
    "preview_headers",
    "running_sandbox",
]

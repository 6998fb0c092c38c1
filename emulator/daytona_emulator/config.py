"""What an emulator instance is started with: API keys, registry credentials, timings, limits.

`Timings` and `Limits` are also the runtime-tunable settings (see `knobs.py`); everything else is
fixed for the life of a server and restored by a reset.
"""

from __future__ import annotations

import secrets
import uuid

from pydantic import BaseModel, ConfigDict, Field

# Daytona's organization resource permissions that an API key can carry
# (organization-resource-permission.enum.ts). Reads need none.
WRITE_SNAPSHOTS = "write:snapshots"
DELETE_SNAPSHOTS = "delete:snapshots"
WRITE_REGISTRIES = "write:registries"
DELETE_REGISTRIES = "delete:registries"
WRITE_SANDBOXES = "write:sandboxes"
DELETE_SANDBOXES = "delete:sandboxes"
ALL_PERMISSIONS: frozenset[str] = frozenset(
    {
        WRITE_SNAPSHOTS,
        DELETE_SNAPSHOTS,
        WRITE_REGISTRIES,
        DELETE_REGISTRIES,
        WRITE_SANDBOXES,
        DELETE_SANDBOXES,
    }
)
# What a key limited to sandbox work looks like (pain point 9 in the spec: 403 on snapshot create).
SANDBOX_ONLY_PERMISSIONS: frozenset[str] = frozenset({WRITE_SANDBOXES, DELETE_SANDBOXES})


def new_id() -> str:
    """A UUID v4, the only id shape the SDK recognises as an id rather than a name."""
    return str(uuid.uuid4())


class ApiKey(BaseModel):
    """A Bearer API key; the organization is implied by the key, as with Daytona's API keys."""

    model_config = ConfigDict(frozen=True)

    key: str = Field(min_length=1)
    organization_id: str = Field(default_factory=new_id)
    permissions: frozenset[str] = ALL_PERMISSIONS

    @classmethod
    def generate(cls, **kwargs: object) -> ApiKey:
        return cls.model_validate({"key": f"dtn_{secrets.token_hex(24)}", **kwargs})


class RegistryCredential(BaseModel):
    """Like a Daytona organization "docker-registry" entry: used when the runner pulls."""

    model_config = ConfigDict(frozen=True)

    username: str
    password: str = Field(repr=False)


class Timings(BaseModel):
    """Dwell times of the state machine. Short by default so tests stay fast."""

    pending_seconds: float = Field(default=0.3, ge=0)
    pulling_seconds: float = Field(default=0.3, ge=0)
    building_seconds: float = Field(default=0.3, ge=0)
    # Real Daytona deletes `removing` rows from a cron every 10 s; the name stays taken meanwhile.
    removal_seconds: float = Field(default=1.0, ge=0)
    # Real Daytona refuses activation for 10 minutes after a deactivation; 0 keeps tests fast.
    activation_cooldown_seconds: float = Field(default=0.0, ge=0)
    registry_timeout_seconds: float = Field(default=5.0, gt=0)
    # Daytona's `POST /sandbox` and `/start` wait up to 30 s for `started` before answering;
    # shorter here so a sandbox that never starts fails a test quickly.
    sandbox_start_wait_seconds: float = Field(default=10.0, ge=0)
    # How long a deleted sandbox stays `destroying` after its container is gone (Daytona's runner
    # takes a moment; meanwhile another delete is a 409).
    sandbox_destroy_seconds: float = Field(default=0.3, ge=0)
    # Grace period of `docker stop` before SIGKILL (`POST /sandbox/{id}/stop?force=true` kills).
    sandbox_stop_timeout_seconds: float = Field(default=5.0, ge=0)


class Limits(BaseModel):
    """Organization quotas (Daytona's v0.190 organization defaults, cloud's snapshot quota)."""

    snapshot_quota: int = Field(default=100, ge=0)
    max_cpu_per_sandbox: float = Field(default=4, ge=0)
    max_memory_per_sandbox: float = Field(default=8, ge=0)
    max_disk_per_sandbox: float = Field(default=10, ge=0)
    gpu_quota: int = Field(default=0, ge=0)
    max_snapshot_size_gb: float = Field(default=20, gt=0)


class SandboxSettings(BaseModel):
    """Where sandboxes run: containers on a Docker engine, reached through 127.0.0.1."""

    model_config = ConfigDict(frozen=True)

    # None: the engine the docker CLI finds by itself (DOCKER_HOST, or the default socket)
    docker_host: str | None = None
    # Container ports published on 127.0.0.1 for preview URLs. Other ports are reached on the
    # container's own address, which works only where the engine's network is routable (Linux).
    published_ports: tuple[int, ...] = (3000, 8080)
    # Daytona's runners pull and run linux/amd64 images only.
    platform: str = "linux/amd64"


class EmulatorConfig(BaseModel):
    """Everything an emulator starts with. `reset` returns the runtime knobs to these values."""

    api_keys: tuple[ApiKey, ...] = ()
    # registry host in image names -> "host:port" actually contacted (e.g. ghcr.io -> a local
    # registry), so pipeline tests can keep production image names while staying offline
    registry_mirrors: dict[str, str] = Field(default_factory=dict)
    timings: Timings = Field(default_factory=Timings)
    limits: Limits = Field(default_factory=Limits)
    regions: tuple[str, ...] = ("us",)
    # Names of Daytona-provided `general: true` snapshots every organization sees in its list
    general_snapshots: tuple[str, ...] = ()
    sandboxes: SandboxSettings = Field(default_factory=SandboxSettings)

    @property
    def default_region(self) -> str:
        return self.regions[0]

    def with_generated_key(self) -> EmulatorConfig:
        """This config, plus one full-permission key if it has none."""
        if self.api_keys:
            return self
        return self.model_copy(update={"api_keys": (ApiKey.generate(),)})

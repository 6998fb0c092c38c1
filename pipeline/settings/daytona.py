"""What the Daytona sessions read from the environment (pydantic-settings, loaded with `load`),
and the limits of the command-line options that have no variable.

Each field is the one place its limit lives: the sessions' argparse flags validate through the
same fields (pipeline/sessions/options.py), so `--cpu 0` and `SANDBOX_SNAPSHOT_CPU=0`
are refused by one rule.
"""

from __future__ import annotations

import shlex
from typing import Annotated, Any

from pydantic import BaseModel, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from pipeline.rules import snapshot_names as naming
from pipeline.rules.daytona_http import DEFAULT_RETRY_TIMEOUT
from pipeline.rules.image_ref import daytona_image_problem
from pipeline.rules.release import digest_problem
from pipeline.rules.sandbox_rules import DEFAULT_AUTO_DELETE, DEFAULT_AUTO_STOP, DEFAULT_PORT
from pipeline.settings.build import _Base

DEFAULT_API_URL = "https://app.daytona.io/api"
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class DaytonaSettings(_Base):
    api_url: str = Field(DEFAULT_API_URL, validation_alias="DAYTONA_API_URL")
    api_key: SecretStr | None = Field(None, validation_alias="DAYTONA_API_KEY")
    organization_id: str | None = Field(None, validation_alias="DAYTONA_ORGANIZATION_ID")
    http_timeout: Seconds = Field(30, validation_alias="DAYTONA_HTTP_TIMEOUT")
    # How long one call keeps retrying 5xx, 429 and connection errors (backoff with jitter).
    retry_timeout: Seconds = Field(DEFAULT_RETRY_TIMEOUT, validation_alias="DAYTONA_RETRY_TIMEOUT")

    @field_validator("api_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("an http(s) URL like https://app.daytona.io/api")
        return value.rstrip("/")


class SnapshotSettings(_Base):
    name: str | None = Field(None, validation_alias="SANDBOX_SNAPSHOT_NAME")
    image: str | None = Field(None, validation_alias="SANDBOX_IMAGE")
    cpu: int = Field(2, gt=0, validation_alias="SANDBOX_SNAPSHOT_CPU")
    memory: int = Field(4, gt=0, validation_alias="SANDBOX_SNAPSHOT_MEMORY")
    disk: int = Field(10, gt=0, validation_alias="SANDBOX_SNAPSHOT_DISK")
    entrypoint: Annotated[tuple[str, ...] | None, NoDecode] = Field(
        None, validation_alias="SANDBOX_SNAPSHOT_ENTRYPOINT"
    )
    timeout: Seconds = Field(1200, validation_alias="DAYTONA_SNAPSHOT_TIMEOUT")

    @field_validator("name", "image")
    @classmethod
    def _name_or_image(cls, value: str | None, info: ValidationInfo) -> str | None:
        check = naming.snapshot_name_problem if info.field_name == "name" else daytona_image_problem
        if value is not None and (problem := check(value)):
            raise ValueError(problem)
        return value

    @field_validator("entrypoint", mode="before")
    @classmethod
    def _entrypoint(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = tuple(shlex.split(value))
            except ValueError:
                raise ValueError("a shell-quoted command like 'sleep infinity'") from None
        return value or None


class DigestSettings(_Base):
    """SANDBOX_IMAGE_DIGEST: the digest the build job pushed (and the image tests booted). The image
    a session promotes or snapshots must resolve to it in its registry. Unlike every other variable,
    set-but-empty is not "unset" here: a workflow passes the digest on as
    `${{ needs.<job>.outputs.digest }}`, and an empty output must fail the release, not quietly
    turn the check off."""

    model_config = SettingsConfigDict(env_ignore_empty=False, str_strip_whitespace=True)

    image_digest: str | None = Field(None, validation_alias="SANDBOX_IMAGE_DIGEST")

    @field_validator("image_digest")
    @classmethod
    def _image_digest(cls, value: str | None) -> str | None:
        if value == "":
            raise ValueError(
                "sha256:<64 lower-case hex>; it is set but empty, so the step that should have "
                "passed the pushed digest on gave none (unset it to check nothing)"
            )
        if value and (problem := digest_problem(value)):
            raise ValueError(problem)
        return value


class StageSettings(_Base):
    iterate_user: str | None = Field(None, validation_alias="ITERATE_USER")
    app_stage: str | None = Field(None, validation_alias="APP_STAGE")
    prefix: str | None = Field(None, validation_alias="DAYTONA_SNAPSHOT_PREFIX")


class RegistryEntrySettings(_Base):
    """The pull credentials `daytona_registry` gives Daytona for the image's registry: a token
    that can only read packages, not the push token (Daytona keeps it for as long as the entry
    lives)."""

    username: str | None = Field(None, validation_alias="DAYTONA_REGISTRY_USERNAME")
    password: SecretStr | None = Field(None, validation_alias="DAYTONA_REGISTRY_PASSWORD")


class SandboxSettings(_Base):
    """Which snapshot `sandbox_daytona` starts, and how long its sandboxes live."""

    snapshot: str | None = Field(None, validation_alias="DAYTONA_SNAPSHOT_NAME")
    timeout: Seconds = Field(300, validation_alias="DAYTONA_SANDBOX_TIMEOUT")
    # Minutes without activity before Daytona stops the sandbox (0: never), and minutes after a
    # stop before it deletes it (0: at once, -1: never). Together they make a forgotten
    # sandbox go away on its own instead of costing money until someone runs --cleanup.
    auto_stop: int = Field(DEFAULT_AUTO_STOP, ge=0, validation_alias="DAYTONA_SANDBOX_AUTO_STOP")
    auto_delete: int = Field(
        DEFAULT_AUTO_DELETE,
        ge=-1,
        description="-1 (never), 0 (at stop) or minutes",
        validation_alias="DAYTONA_SANDBOX_AUTO_DELETE",
    )


class RetentionOptions(BaseModel):
    keep: int = Field(5, ge=0)
    days: float = Field(7.0, ge=0, allow_inf_nan=False)


class SandboxOptions(BaseModel):
    port: int = Field(DEFAULT_PORT, gt=0, le=65535, description="a TCP port (1-65535)")
    older_than: float = Field(0.0, ge=0, allow_inf_nan=False)

"""What the local-docker provider reads from the environment (`sandbox_up`, tests, the app)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, field_validator

from pipeline.sandbox.local_docker import PNPM_STORE_VOLUME
from pipeline.settings.build import _Base

# Docker's own rule for volume names; it also keeps a path (a bind mount) out of this setting.
_VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")


class LocalDockerSettings(_Base):
    image_name: str | None = Field(None, validation_alias="LOCAL_DOCKER_IMAGE_NAME")
    repo_checkout: Path | None = Field(None, validation_alias="LOCAL_DOCKER_REPO_CHECKOUT")
    git_dir: Path | None = Field(None, validation_alias="LOCAL_DOCKER_GIT_DIR")
    common_dir: Path | None = Field(None, validation_alias="LOCAL_DOCKER_COMMON_DIR")
    health_timeout: float = Field(120, gt=0, validation_alias="LOCAL_DOCKER_HEALTH_TIMEOUT")
    # Shared by every sandbox so pnpm installs are warm; the tests use a volume of their own.
    pnpm_volume: str = Field(PNPM_STORE_VOLUME, validation_alias="LOCAL_DOCKER_PNPM_VOLUME")

    @field_validator("pnpm_volume")
    @classmethod
    def _volume_name(cls, value: str) -> str:
        if not _VOLUME_NAME.fullmatch(value):
            raise ValueError(
                "a Docker volume name: letters, digits, '_', '.' and '-', "
                "starting with a letter or digit"
            )
        return value

"""Configuration from the environment (pydantic-settings), under the names CI files and people's
shells already use (the README lists each). A bad value becomes one `ConfigError` line naming the
variable and what it accepts.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pipeline.docker.endpoint import Location
from pipeline.errors import ConfigError
from pipeline.rules.base_image_plan import PROXY_VARIABLES
from pipeline.rules.build_plan import BuildRequest, CacheMode, Mode
from pipeline.rules.git_facts import CiRefs
from pipeline.rules.image_ref import REPOSITORY, split_host
from pipeline.rules.platforms import platform_problem
from pipeline.rules.release import COMMIT

PROJECT_ROOT = Path(__file__).resolve().parents[2]

_PLATFORMS_FORM = "os/arch[/variant], comma-separated, like linux/amd64,linux/arm64"
_DOCKER_HOST_SCHEMES = ("unix://", "tcp://", "ssh://", "npipe://", "fd://")
# What a build reads besides these settings, the context and the images, for the fingerprint and
# the replay's watch (build/record.py). buildx's own variables (BUILDX_GIT_LABELS adds labels,
# BUILDKIT_MULTI_PLATFORM changes the output's shape, …) may each change what it builds, so every
# one counts, by prefix; SOURCE_DATE_EPOCH sets timestamps; SSL_CERT_FILE and HOME place the CA
# bundle's default, docker's config and the caches.
BUILDX_PREFIXES = ("BUILDX_", "BUILDKIT_")
OTHER_VARIABLES = ("SOURCE_DATE_EPOCH", "SSL_CERT_FILE", "HOME")

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


class _Base(BaseSettings):
    model_config = SettingsConfigDict(
        extra="ignore",
        env_ignore_empty=True,  # `PUSH=` in a shell means "not set", not "invalid"
        frozen=True,
    )


class BuildSettings(_Base):
    """Everything `snapshot_local`, `snapshot_push` and `doctor` read from the environment."""

    image_repository: str = Field(
        "ghcr.io/iterate/sandbox", validation_alias="SANDBOX_IMAGE_REPOSITORY"
    )
    base_image: str | None = Field(None, validation_alias="SANDBOX_BASE_IMAGE")
    dockerfile: Path = Field(Path("sandbox/Dockerfile"), validation_alias="SANDBOX_DOCKERFILE")
    build_context: Path = Field(PROJECT_ROOT, validation_alias="SANDBOX_BUILD_CONTEXT")
    platforms: Annotated[tuple[str, ...], NoDecode] = Field(
        ("linux/amd64",), validation_alias="SANDBOX_BUILD_PLATFORM"
    )
    git_sha: str | None = Field(None, validation_alias="GIT_SHA")
    # Build this branch, tag or sha from an export of its tree instead of the checkout.
    repo_ref: str | None = Field(None, validation_alias="SANDBOX_ITERATE_REPO_REF")
    push: bool = Field(False, validation_alias="PUSH")
    # The weekly rebuild (no cache): tagged sha-<sha>-rebuild-<YYYYMMDD>, never over :sha-<sha>.
    rebuild: bool = Field(False, validation_alias="SANDBOX_REBUILD")
    builder: str | None = Field(None, validation_alias="BUILDX_BUILDER")
    # Where docker and buildx find the engine, their config and the builder (docker/endpoint.py).
    docker_host: str | None = Field(None, validation_alias="DOCKER_HOST")
    docker_context: str | None = Field(None, validation_alias="DOCKER_CONTEXT")
    docker_config: Path | None = Field(None, validation_alias="DOCKER_CONFIG")
    buildx_config: Path | None = Field(None, validation_alias="BUILDX_CONFIG")
    docker_tls_verify: str | None = Field(None, validation_alias="DOCKER_TLS_VERIFY")
    docker_cert_path: Path | None = Field(None, validation_alias="DOCKER_CERT_PATH")
    build_timeout: float = Field(
        900, gt=0, allow_inf_nan=False, validation_alias="SANDBOX_BUILD_TIMEOUT"
    )
    cache: CacheMode = Field("auto", validation_alias="SANDBOX_BUILD_CACHE")
    attestations: Annotated[tuple[Literal["provenance", "sbom"], ...], NoDecode] = Field(
        (), validation_alias="SANDBOX_ATTESTATIONS"
    )
    # Trusted by the build's npm step only (a build secret, never a layer): networks whose egress
    # re-signs TLS need their CA there. Default: SSL_CERT_FILE, else Debian's system bundle.
    ca_bundle: Path | None = Field(
        default_factory=lambda: _default_ca_bundle(), validation_alias="SANDBOX_BUILD_CA_BUNDLE"
    )
    registry_username: str | None = Field(None, validation_alias="REGISTRY_USERNAME")
    registry_password: SecretStr | None = Field(None, validation_alias="REGISTRY_PASSWORD")
    github_actor: str | None = Field(None, validation_alias="GITHUB_ACTOR")
    github_token: SecretStr | None = Field(None, validation_alias="GITHUB_TOKEN")
    github_server_url: str | None = Field(None, validation_alias="GITHUB_SERVER_URL")
    github_repository: str | None = Field(None, validation_alias="GITHUB_REPOSITORY")
    github_ref_name: str | None = Field(None, validation_alias="GITHUB_REF_NAME")
    github_head_ref: str | None = Field(None, validation_alias="GITHUB_HEAD_REF")
    # off: never skip a build and never replay one (fastpath/replay.py reads it the same way)
    fast_path: bool = Field(True, validation_alias="SANDBOX_FAST_PATH")
    xdg_cache_home: Path | None = Field(None, validation_alias="XDG_CACHE_HOME")
    # Where background builds keep their state (default: .pipeline/background of the checkout).
    background_dir: Path | None = Field(None, validation_alias="PIPELINE_BACKGROUND_DIR")

    @field_validator("image_repository")
    @classmethod
    def _repository(cls, value: str) -> str:
        if not REPOSITORY.fullmatch(value):
            raise ValueError(
                "an image repository without tag, lower-case, like ghcr.io/iterate/sandbox"
            )
        return value

    @field_validator("platforms", mode="before")
    @classmethod
    def _platforms(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = tuple(p.strip() for p in value.split(",") if p.strip())
        if not value:
            raise ValueError(_PLATFORMS_FORM)
        for platform in value:
            if problem := platform_problem(platform):
                raise ValueError(f"OCI platforms {_PLATFORMS_FORM} ({problem})")
        return value

    @field_validator("attestations", mode="before")
    @classmethod
    def _attestations(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = {p.strip() for p in value.split(",") if p.strip()} - {"none"}
            if parts - {"provenance", "sbom"}:
                raise ValueError("none, provenance, sbom or provenance,sbom")
            return tuple(sorted(parts))
        return value

    @field_validator("git_sha")
    @classmethod
    def _sha(cls, value: str | None) -> str | None:
        if value is not None and not COMMIT.fullmatch(value := value.lower()):
            raise ValueError("a full 40-character hex commit sha")
        return value

    @field_validator("docker_host")
    @classmethod
    def _docker_host(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(_DOCKER_HOST_SCHEMES):
            raise ValueError("unix:///path/docker.sock, tcp://HOST:PORT or ssh://USER@HOST")
        return value

    @field_validator("ca_bundle", mode="before")
    @classmethod
    def _ca_bundle(cls, value: Any) -> Any:
        if isinstance(value, str) and value.lower() == "none":
            return None
        if value is not None and not Path(value).is_file():
            raise ValueError("the path of a PEM CA bundle, or none")
        return value

    # The background worker runs in the project root, not where its launcher was started.
    @field_validator("dockerfile", "build_context", "background_dir")
    @classmethod
    def _relative_to_project(cls, value: Path | None) -> Path | None:
        return value if value is None or value.is_absolute() else PROJECT_ROOT / value

    @property
    def registry_host(self) -> str:
        return split_host(self.image_repository)[0]

    @property
    def docker(self) -> Location:
        return Location(
            host=self.docker_host,
            context=self.docker_context,
            config=self.docker_config,
            buildx_config=self.buildx_config,
            builder=self.builder,
            tls=bool(self.docker_tls_verify or self.docker_cert_path),
        )

    @property
    def docker_config_dir(self) -> Path:
        return self.docker.config_dir

    def request(self, mode: Mode) -> BuildRequest:
        same = ("platforms", "git_sha", "push", "builder", "cache", "attestations", "ca_bundle")
        return BuildRequest(
            mode=mode,
            repository=self.image_repository,
            dockerfile=self.dockerfile,
            context=self.build_context,
            timeout_s=self.build_timeout,
            rebuild=self.rebuild,
            **{name: getattr(self, name) for name in same},
        )

    @property
    def buildx_env(self) -> dict[str, str]:
        return {
            name: value
            for name, value in sorted(os.environ.items())
            if value and (name.startswith(BUILDX_PREFIXES) or name == "SOURCE_DATE_EPOCH")
        }

    @property
    def cache_dir(self) -> Path:
        """Stat caches, the fingerprint key, git-meta clones, the replay's record, build logs, the
        copies buildx is sent from (`contexts`, fastpath/mirror.py)."""
        return (self.xdg_cache_home or Path.home() / ".cache") / "sandbox-pipeline"

    @property
    def fingerprint_dir(self) -> Path:
        """The context's stat caches (fastpath/context.py)."""
        return self.cache_dir / "fingerprint"

    @property
    def offline_base_env(self) -> dict[str, str]:
        """What making the offline base passes on: proxies (kept across sudo) and the npm
        registry."""
        names = (*PROXY_VARIABLES, "NPM_CONFIG_REGISTRY")
        return {name: os.environ[name] for name in names if os.environ.get(name)}

    @property
    def ci(self) -> CiRefs:
        return CiRefs(
            head_ref=self.github_head_ref,
            ref_name=self.github_ref_name,
            server_url=self.github_server_url,
            repository=self.github_repository,
        )


def _default_ca_bundle() -> Path | None:
    for candidate in (os.environ.get("SSL_CERT_FILE"), "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


class ReportSettings(_Base):
    """Where results go, so that nobody has to scrape stdout."""

    report_path: Path | None = Field(None, validation_alias="PIPELINE_REPORT")
    github_output: Path | None = Field(None, validation_alias="GITHUB_OUTPUT")
    github_step_summary: Path | None = Field(None, validation_alias="GITHUB_STEP_SUMMARY")
    github_actions: bool = Field(False, validation_alias="GITHUB_ACTIONS")
    traceback: bool = Field(False, validation_alias="PIPELINE_TRACEBACK")  # show it behind an error


class ViewSettings(_Base):
    """How a build shows its progress: a live view in a terminal, buildx's plain log elsewhere.
    (Not a decision's input: the replay watches none of these.)"""

    progress: Literal["auto", "live", "plain"] = Field("auto", validation_alias="PIPELINE_PROGRESS")
    ci: bool = Field(False, validation_alias="CI")
    github_actions: bool = Field(False, validation_alias="GITHUB_ACTIONS")
    term: str | None = Field(None, validation_alias="TERM")

    def live(self, terminal: bool) -> bool:
        """Whether a build shows the live view (`terminal`: stderr is one)."""
        if self.progress != "auto":
            return self.progress == "live"
        return terminal and not self.github_actions and not self.ci and self.term != "dumb"


def env_names(*classes: type[BaseSettings]) -> list[str]:
    return [name for cls in classes for f in cls.model_fields.values() if (name := _alias(f))]


def _alias(field: FieldInfo | None) -> str | None:
    alias = field.validation_alias if field else None
    return alias if isinstance(alias, str) else None


def load(cls: type[SettingsT]) -> SettingsT:
    """Build settings from the environment, turning pydantic's report into one ConfigError line."""
    try:
        return cls()
    except ValidationError as error:
        problems = []
        for item in error.errors():
            accepted = _ACCEPTS.get(item["type"]) or _PYDANTIC_WORDS.sub("", str(item["msg"]))
            if not (loc := item["loc"]):  # a rule across variables: its message names them
                problems.append(accepted)
                continue
            variable = _alias(cls.model_fields.get(str(loc[0]))) or ".".join(map(str, loc))
            shown = item.get("input")
            if isinstance(shown, str | int | float) and "password" not in variable.lower():
                variable += f"={shown!r}"  # a password's value is never shown
            problems.append(f"{variable} is not valid: expected {accepted}")
        raise ConfigError("; ".join(problems), "correct or unset the variable") from None


_ACCEPTS = {
    "bool_parsing": "1, 0, true, false, yes or no",
    "bool_type": "1, 0, true, false, yes or no",
    "float_parsing": "a number of seconds",
    "finite_number": "a finite number of seconds",
    "int_parsing": "a whole number",
}

_PYDANTIC_WORDS = re.compile(r"^(Value error, )?(Input should be )?")

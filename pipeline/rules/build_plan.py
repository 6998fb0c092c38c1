"""Pure decisions: which tags, cache refs, labels and args a build gets.

Facts (git) + settings in, a frozen `BuildPlan` out; nothing here touches docker, git or the
network, so every rule is pinned by a table of unit tests.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from pipeline.errors import ConfigError, EngineError, GitError
from pipeline.rules.git_facts import GitFacts
from pipeline.rules.platforms import BuilderFacts, unsupported
from pipeline.settings.build import BuildSettings, CacheMode

Mode = Literal["local", "push"]
MAX_TAG_LENGTH = 128
_TAG_BAD_CHARS = re.compile(r"[^A-Za-z0-9_.-]")
NO_CACHE_EXPORT = (
    "the docker driver without the containerd image store cannot export a registry cache"
)
CACHE_EXPORT_FIX = (
    'enable the containerd image store ({"features": {"containerd-snapshotter": true}} in '
    "/etc/docker/daemon.json, or the setting of Docker Desktop/OrbStack) and restart the engine, "
    "or select a docker-container builder with BUILDX_BUILDER"
)


class CacheRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: Literal["registry"] = "registry"
    ref: str

    def buildx(self) -> dict[str, str]:
        return {"type": self.type, "ref": self.ref}


class CacheExport(CacheRef):
    def buildx(self) -> dict[str, str]:
        # buildx 0.13 defaults to a manifest list GHCR handles badly; say what we want, and never
        # let a failed export fail a build that succeeded (it is reported instead).
        return {
            **super().buildx(),
            "mode": "max",
            "image-manifest": "true",
            "oci-mediatypes": "true",
            "ignore-error": "true",
        }


class BuildPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    mode: Mode
    repository: str
    sha: str
    dirty: bool
    branch: str | None
    dockerfile: Path
    context: Path
    platforms: tuple[str, ...]
    build_args: dict[str, str]
    labels: dict[str, str]
    push: bool
    load: bool
    pushed_tags: tuple[str, ...]  # built and pushed (the first is the one the build names)
    local_tags: tuple[str, ...]  # tagged in the local engine after the build, never pushed
    cache_from: tuple[CacheRef, ...]
    cache_to: CacheExport | None
    provenance: bool
    sbom: bool
    builder: str | None
    timeout_s: float
    git_context: Path | None  # the repo to clone one commit of, as build context `git-meta`
    ca_bundle: Path | None  # build secret `extra_ca_certs`
    cache_export_skipped: str | None = None  # why a planned cache export was dropped

    @property
    def all_tags(self) -> tuple[str, ...]:
        return self.pushed_tags + self.local_tags

    @property
    def build_tags(self) -> tuple[str, ...]:
        """Tags given to buildx: pushing sends every one of them, so only pushable tags."""
        return self.pushed_tags if self.push else self.all_tags

    def describe(self) -> list[str]:
        """The plan as the lines a person reads before anything happens."""
        lines = [
            f"mode:       {self.mode} ({'push' if self.push else 'load into local engine'})",
            f"commit:     {self.sha}{' (dirty work tree)' if self.dirty else ''}"
            + (f" on {self.branch}" if self.branch else ""),
            f"dockerfile: {self.dockerfile}",
            f"context:    {self.context}",
            f"platforms:  {', '.join(self.platforms)}",
            f"builder:    {self.builder or 'default (BUILDX_BUILDER unset)'}",
            f"timeout:    {self.timeout_s:g} s",
        ]
        lines += [f"tag:        {t}{' (pushed)' if self.push else ''}" for t in self.pushed_tags]
        lines += [f"tag:        {t} (local only)" for t in self.local_tags if self.push]
        if not self.push:
            lines += [f"tag:        {t}" for t in self.local_tags]
        lines += [f"build arg:  {k}={v}" for k, v in self.build_args.items()]
        lines += [f"label:      {k}={v}" for k, v in self.labels.items()]
        lines += [f"cache from: {c.ref}" for c in self.cache_from] or ["cache from: local only"]
        if self.cache_to:
            lines.append(f"cache to:   {self.cache_to.ref} (mode=max)")
        elif self.cache_export_skipped:
            lines.append(f"cache to:   - (skipped: {self.cache_export_skipped})")
        else:
            lines.append("cache to:   -")
        if self.git_context:
            lines.append(f"context:    git-meta = one-commit clone of {self.sha}")
        if self.ca_bundle:
            lines.append(f"secret:     extra_ca_certs from {self.ca_bundle}")
        attest = [n for n, on in (("provenance", self.provenance), ("sbom", self.sbom)) if on]
        lines.append(f"attest:     {', '.join(attest) or 'none'}")
        return lines


def sanitize_tag(tag: str) -> str:
    """Docker's tag rules: [A-Za-z0-9_.-], no leading . or -, at most 128 characters."""
    cleaned = _TAG_BAD_CHARS.sub("-", tag).lstrip(".-")
    return cleaned[:MAX_TAG_LENGTH] or "unknown"


def sha_tag(sha: str, dirty: bool) -> str:
    return sanitize_tag(f"sha-{sha}{'-dirty' if dirty else ''}")


def plan_build(
    mode: Mode,
    settings: BuildSettings,
    facts: GitFacts,
    built_at: datetime,
    git_context: bool = False,
    ref_build: bool = False,
) -> BuildPlan:
    """Decide everything about one build; raises when the inputs cannot make a sound build.

    `ref_build`: the commit is one SANDBOX_ITERATE_REPO_REF named, not the checkout's HEAD.
    Its push never moves `:main` (a branch build must not become what main runs)."""
    _check_git_sha(settings.git_sha, facts)
    sha = facts.sha
    repo = settings.image_repository
    if mode == "push":
        if facts.dirty:
            raise GitError(
                "the work tree is dirty; snapshot_push pushes an immutable sha- tag that must "
                "match the commit",
                "commit or stash your changes (see `git status --porcelain`), "
                "or use `PUSH=1 nox -s snapshot_local` for a -dirty tag",
            )
        push = True
        pushed: tuple[str, ...] = (f"{repo}:{sha_tag(sha, False)}",)
        if not ref_build:
            pushed += (f"{repo}:main",)
        local: tuple[str, ...] = ()
    else:
        push = settings.push
        pushed = (f"{repo}:{sha_tag(sha, facts.dirty)}",)
        local = (f"{repo}:local",)
    if len(settings.platforms) > 1 and not push:
        raise ConfigError(
            f"SANDBOX_BUILD_PLATFORM has {len(settings.platforms)} platforms, but a local engine "
            "can load only one",
            "set PUSH=1 to push a multi-platform image, or choose one platform",
        )
    cache_from, cache_to = _cache(settings, push, repo)
    return BuildPlan(
        mode=mode,
        repository=repo,
        sha=sha,
        dirty=facts.dirty,
        branch=facts.branch,
        dockerfile=settings.dockerfile,
        context=settings.build_context,
        platforms=settings.platforms,
        # BASE_IMAGE only when asked for: the Dockerfile's default is the official Node image.
        build_args={
            "GIT_SHA": sha,
            **({"BASE_IMAGE": settings.base_image} if settings.base_image else {}),
        },
        labels=_labels(sha, facts, built_at),
        push=push,
        load=not push,
        pushed_tags=pushed,
        local_tags=local,
        cache_from=cache_from,
        cache_to=cache_to,
        provenance="provenance" in settings.attestations,
        sbom="sbom" in settings.attestations,
        builder=settings.builder,
        timeout_s=settings.build_timeout,
        git_context=facts.common_dir if git_context else None,
        ca_bundle=settings.ca_bundle,
    )


def _check_git_sha(git_sha: str | None, facts: GitFacts) -> None:
    """The files built are HEAD's: another commit's tags must never point at them."""
    if git_sha is not None and git_sha != facts.sha:
        raise GitError(
            f"GIT_SHA={git_sha} is not the commit being built: {facts.work_tree} is at {facts.sha}",
            f"unset GIT_SHA, or check out {git_sha} and rerun",
        )


def _cache(
    settings: BuildSettings, push: bool, repo: str
) -> tuple[tuple[CacheRef, ...], CacheExport | None]:
    mode = settings.cache
    if mode == "auto":
        mode = "readwrite" if push else "off"
    ref = f"{repo}:buildcache"
    cache_from = (CacheRef(ref=ref),) if mode in ("read", "readwrite") else ()
    cache_to = CacheExport(ref=ref) if mode == "readwrite" else None
    return cache_from, cache_to


def _labels(sha: str, facts: GitFacts, built_at: datetime) -> dict[str, str]:
    labels = {
        "org.opencontainers.image.revision": sha,
        "org.opencontainers.image.created": built_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if facts.source_url:
        labels["org.opencontainers.image.source"] = facts.source_url
    return labels


def builder_problem(plan: BuildPlan, builder: BuilderFacts) -> ConfigError | None:
    """Refuse platforms the builder does not list (an unbooted builder lists none: not known)."""
    if not builder.platforms:
        return None
    missing = unsupported(plan.platforms, builder.platforms)
    if not missing:
        return None
    return ConfigError(
        f"SANDBOX_BUILD_PLATFORM={','.join(plan.platforms)}: builder {builder.name} "
        f"({builder.driver}) cannot build {', '.join(missing)}; it builds "
        + ", ".join(builder.platforms),
        "choose platforms the builder lists, or select one that builds them with BUILDX_BUILDER "
        "(e.g. a docker-container builder on a machine with QEMU binfmt)",
    )


def needs_image_store_check(plan: BuildPlan, builder: BuilderFacts) -> bool:
    """Only the docker driver exports a registry cache through the engine's image store."""
    return plan.cache_to is not None and builder.driver == "docker"


def settle_cache_export(
    plan: BuildPlan, containerd_store: bool | None, cache_mode: CacheMode
) -> BuildPlan:
    """Without the containerd image store buildx fails the export only after building: say so
    now. An asked-for export (SANDBOX_BUILD_CACHE=readwrite) is refused; the automatic one is
    dropped, and the build reports it."""
    if plan.cache_to is None or containerd_store is not False:
        return plan
    if cache_mode == "readwrite":
        raise EngineError(
            f"SANDBOX_BUILD_CACHE=readwrite, but {NO_CACHE_EXPORT}",
            CACHE_EXPORT_FIX + ", or set SANDBOX_BUILD_CACHE=read",
        )
    return plan.model_copy(update={"cache_to": None, "cache_export_skipped": NO_CACHE_EXPORT})


def main_tag(plan: BuildPlan) -> str | None:
    """The `:main` tag this plan pushes, if it pushes one."""
    tag = f"{plan.repository}:main"
    return tag if plan.push and tag in plan.pushed_tags else None


def hold_main(plan: BuildPlan) -> BuildPlan:
    """The plan without its `:main` push (the sha tag is still pushed)."""
    tag = main_tag(plan)
    if tag is None:
        return plan
    return plan.model_copy(update={"pushed_tags": tuple(t for t in plan.pushed_tags if t != tag)})

"""Pure decisions: which tags, cache refs, labels, args and contexts a build gets, and whether it
needs building at all.

Every fact is gathered first (build/facts.py), then `plan_build` decides once; nothing patches a
plan after it is made, so every rule is pinned by a table of unit tests. A build never moves
`:main`: that is `snapshot_push -- --from`, after the image tests (build/promote.py).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from pipeline.errors import ConfigError, EngineError, GitError
from pipeline.rules.fingerprint import LABEL, VERSION, InputFacts
from pipeline.rules.git_facts import GitFacts
from pipeline.rules.platforms import BuilderFacts, unsupported
from pipeline.rules.release import rebuild_tag

Mode = Literal["local", "push"]
CacheMode = Literal["auto", "off", "read", "readwrite"]
Attestation = Literal["provenance", "sbom"]
MAX_TAG_LENGTH = 128
GIT_META = "git-meta"  # the named build context holding a one-commit clone (git/meta_context.py)
_TAG_BAD_CHARS = re.compile(r"[^A-Za-z0-9_.-]")
NO_CACHE_EXPORT = (
    "the docker driver without the containerd image store cannot export a registry cache"
)
CACHE_EXPORT_FIX = (
    'enable the containerd image store ({"features": {"containerd-snapshotter": true}} in '
    "/etc/docker/daemon.json, or the setting of Docker Desktop/OrbStack) and restart the engine, "
    "or select a docker-container builder with BUILDX_BUILDER"
)


class BuildRequest(BaseModel, frozen=True):
    mode: Mode
    repository: str
    dockerfile: Path
    context: Path
    platforms: tuple[str, ...] = ("linux/amd64",)
    git_sha: str | None = None  # GIT_SHA: a check, never an override
    push: bool = False  # PUSH (local mode); push mode always pushes
    builder: str | None = None
    timeout_s: float = 900.0
    cache: CacheMode = "auto"
    attestations: tuple[Attestation, ...] = ()
    ca_bundle: Path | None = None
    rebuild: bool = False  # SANDBOX_REBUILD: the weekly rebuild, tagged sha-<sha>-rebuild-<day>

    @property
    def pushes(self) -> bool:
        return self.mode == "push" or self.push


class BuildFacts(BaseModel, frozen=True):
    """Everything gathered before the plan is made. `None` means "not asked": a dry run asks
    no engine, a push asks for no fingerprint."""

    request: BuildRequest
    git: GitFacts
    base_image: str | None = None  # BASE_IMAGE (None: the Dockerfile's own default)
    git_meta: Path | None = None  # the git-meta context's folder, when the Dockerfile uses it
    builder: BuilderFacts | None = None
    containerd_store: bool | None = None  # asked only for a cache export on the docker driver
    inputs: InputFacts | None = None  # what buildx would read (a local build only)
    day: str | None = None  # the UTC day (YYYYMMDD) of a rebuild, for its tag
    # The digest the registry has for the commit tag a push would push (None: absent, or not
    # asked: a dry run, a dirty tree). Such a tag names one image forever: it is reused.
    registry_digest: str | None = None


class BuildPlan(BaseModel, frozen=True):
    request: BuildRequest
    git: GitFacts
    build_args: dict[str, str]
    labels: dict[str, str]
    push: bool
    load: bool
    pushed_tags: tuple[str, ...]  # built and pushed (the first is the one the build names)
    local_tags: tuple[str, ...]  # tagged in the local engine after the build, never pushed
    cache_from: tuple[str, ...]  # registry cache refs (cache_option gives buildx's value)
    cache_to: str | None
    provenance: bool
    sbom: bool
    git_context: Path | None  # the named build context GIT_META's folder
    cache_export_skipped: str | None = None  # why the registry cache is not exported
    fingerprint: str | None = None  # the inputs' digest (label LABEL on a local image)
    fingerprint_note: str = ""  # why there is none, or what it covered
    # "tag": `:local` already holds these inputs; its image gets the tags, nothing is built.
    # "reuse": the registry has the pushed tag already (`registry_digest`): nothing is built or
    # pushed over it.
    action: Literal["build", "tag", "reuse"] = "build"
    registry_digest: str | None = None
    image_id: str | None = None  # with "tag": the image the tags go to
    retag: tuple[str, ...] = ()  # with "tag": the tags not on that image yet

    @property
    def all_tags(self) -> tuple[str, ...]:
        return self.pushed_tags + self.local_tags

    @property
    def build_tags(self) -> tuple[str, ...]:
        """Tags given to buildx: pushing sends every one of them, so only pushable tags."""
        return self.pushed_tags if self.push else self.all_tags

    def describe(self) -> list[str]:
        request, git = self.request, self.git
        lines = [
            f"mode:       {request.mode} ({'push' if self.push else 'load into local engine'})",
            f"commit:     {git.sha}{' (dirty work tree)' if git.dirty else ''}"
            + (f" on {git.branch}" if git.branch else ""),
            f"dockerfile: {request.dockerfile}",
            f"context:    {request.context}",
            f"platforms:  {', '.join(request.platforms)}",
            f"builder:    {request.builder or 'default (BUILDX_BUILDER unset)'}",
            f"timeout:    {request.timeout_s:g} s",
        ]
        lines += [f"tag:        {t}{' (pushed)' if self.push else ''}" for t in self.pushed_tags]
        lines += [f"tag:        {t}{' (local only)' if self.push else ''}" for t in self.local_tags]
        if self.action == "reuse":
            lines.append(
                f"reuse:      {self.pushed_tags[0]} is {self.registry_digest} in the registry: "
                "a tag that names a commit names one image forever; nothing built or pushed"
            )
        lines += [f"build arg:  {k}={v}" for k, v in self.build_args.items()]
        lines += [f"label:      {k}={v}" for k, v in self.labels.items()]
        lines += [f"cache from: {ref}" for ref in self.cache_from] or ["cache from: local only"]
        if self.cache_to:
            lines.append(f"cache to:   {self.cache_to} (mode=max)")
        elif self.cache_export_skipped:
            lines.append(f"cache to:   - (skipped: {self.cache_export_skipped})")
        else:
            lines.append("cache to:   -")
        if self.git_context:
            lines.append(f"context:    {GIT_META} = one-commit clone of {git.sha}")
        if request.ca_bundle:
            lines.append(f"secret:     extra_ca_certs from {request.ca_bundle}")
        attest = [n for n, on in (("provenance", self.provenance), ("sbom", self.sbom)) if on]
        lines.append(f"attest:     {', '.join(attest) or 'none'}")
        if self.fingerprint_note:
            lines.append(f"inputs:     {self.fingerprint_note}")
        return lines


def sanitize_tag(tag: str) -> str:
    """Docker's tag rules: [A-Za-z0-9_.-], no leading . or -, at most 128 characters."""
    cleaned = _TAG_BAD_CHARS.sub("-", tag).lstrip(".-")
    return cleaned[:MAX_TAG_LENGTH] or "unknown"


def sha_tag(sha: str, dirty: bool) -> str:
    return sanitize_tag(f"sha-{sha}{'-dirty' if dirty else ''}")


def commit_tag(request: BuildRequest, git: GitFacts, day: str | None) -> str | None:
    """The tag `snapshot_push` names for this commit forever (`sha-<sha>`, or the rebuild's),
    or None: another mode, or a dirty tree (a `-dirty` tag names no commit). `PUSH=1
    snapshot_local` is a developer's build and keeps pushing what it built."""
    if request.mode != "push" or git.dirty:
        return None
    if request.rebuild:
        return None if day is None else rebuild_tag(git.sha, day)
    return sha_tag(git.sha, dirty=False)


def build_args(git: GitFacts, base_image: str | None) -> dict[str, str]:
    # BASE_IMAGE only when asked for: the Dockerfile's default is the official Node image.
    return {"GIT_SHA": git.sha, **({"BASE_IMAGE": base_image} if base_image else {})}


def cache_refs(request: BuildRequest) -> tuple[tuple[str, ...], str | None]:
    """(refs read, ref exported): the repository's `:buildcache`, as SANDBOX_BUILD_CACHE says."""
    mode = request.cache
    if mode == "auto":
        mode = "readwrite" if request.pushes else "off"
    ref = f"{request.repository}:buildcache"
    return (ref,) if mode in ("read", "readwrite") else (), ref if mode == "readwrite" else None


def cache_option(ref: str, *, export: bool = False) -> str:
    """buildx's --cache-from / --cache-to value. An export says what it wants (buildx 0.13
    defaults to a manifest list GHCR handles badly), and a failed export never fails a build
    that succeeded (it is reported instead)."""
    exported = ",mode=max,image-manifest=true,oci-mediatypes=true,ignore-error=true"
    return f"type=registry,ref={ref}" + (exported if export else "")


def needs_image_store_check(request: BuildRequest, builder: BuilderFacts | None) -> bool:
    """Only the docker driver exports a registry cache through the engine's image store."""
    return cache_refs(request)[1] is not None and builder is not None and builder.driver == "docker"


def labels(git: GitFacts) -> dict[str, str]:
    # The commit time, not the wall clock: an unchanged rebuild then yields the same digest.
    found = {
        "org.opencontainers.image.revision": git.sha,
        "org.opencontainers.image.created": git.commit_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if git.source_url:
        found["org.opencontainers.image.source"] = git.source_url
    return found


def plan_build(facts: BuildFacts) -> BuildPlan:
    request, git = facts.request, facts.git
    repo, sha = request.repository, git.sha
    if request.git_sha is not None and request.git_sha != sha:
        # the files built are HEAD's: another commit's tags must never point at them
        raise GitError(
            f"GIT_SHA={request.git_sha} is not the commit being built: {git.work_tree} is at {sha}",
            f"unset GIT_SHA, or check out {request.git_sha} and rerun",
        )
    if request.mode == "push" and git.dirty:
        raise GitError(
            "the work tree is dirty; snapshot_push pushes an immutable sha- tag that must "
            "match the commit",
            "commit or stash your changes (see `git status --porcelain`), "
            "or use `PUSH=1 nox -s snapshot_local` for a -dirty tag",
        )
    push = request.pushes
    if request.rebuild and not push:
        raise ConfigError(
            "SANDBOX_REBUILD=1 names a pushed image, but this build is not pushed",
            "run it with nox -s snapshot_push, or unset SANDBOX_REBUILD",
        )
    tag = commit_tag(request, git, facts.day) or sha_tag(sha, git.dirty)
    if len(request.platforms) > 1 and not push:
        raise ConfigError(
            f"SANDBOX_BUILD_PLATFORM has {len(request.platforms)} platforms, but a local engine "
            "can load only one",
            "set PUSH=1 to push a multi-platform image, or choose one platform",
        )
    if facts.builder is not None and (problem := builder_problem(request, facts.builder)):
        raise problem
    cache_from, cache_to = cache_refs(request)
    skipped = None
    if cache_to is not None and facts.containerd_store is False:
        # buildx would fail the export only after building: say so now. An asked-for export is
        # refused; the automatic one is dropped, and the build reports it.
        if request.cache == "readwrite":
            raise EngineError(
                f"SANDBOX_BUILD_CACHE=readwrite, but {NO_CACHE_EXPORT}",
                CACHE_EXPORT_FIX + ", or set SANDBOX_BUILD_CACHE=read",
            )
        cache_to, skipped = None, NO_CACHE_EXPORT
    plan = BuildPlan(
        request=request,
        git=git,
        build_args=build_args(git, facts.base_image),
        labels=labels(git),
        push=push,
        load=not push,
        pushed_tags=(f"{repo}:{tag}",),
        local_tags=() if request.mode == "push" else (f"{repo}:local",),
        cache_from=cache_from,
        cache_to=cache_to,
        provenance="provenance" in request.attestations,
        sbom="sbom" in request.attestations,
        git_context=facts.git_meta,
        cache_export_skipped=skipped,
    )
    if request.mode == "push" and facts.registry_digest is not None:
        return plan.model_copy(update={"action": "reuse", "registry_digest": facts.registry_digest})
    return _with_fingerprint(plan, facts)


def _with_fingerprint(plan: BuildPlan, facts: BuildFacts) -> BuildPlan:
    """A local build's fingerprint goes on its image as a label; when `:local` already carries
    it, the plan is to tag that image and build nothing. Pushed images get no label (a
    machine-local value has no place in a registry)."""
    if plan.push or not plan.load or facts.inputs is None:
        return plan
    value, note = fingerprint_for(plan, facts.inputs)
    if value is None:
        return plan.model_copy(update={"fingerprint_note": note})
    current = facts.inputs.local_image
    labelled = {**plan.labels, LABEL: value}
    update: dict[str, object] = {"labels": labelled, "fingerprint": value, "fingerprint_note": note}
    if current is not None and current.labels.get(LABEL) == value:
        known = facts.inputs.tag_ids
        others = [t for t in plan.build_tags if t != plan.local_tags[0]]
        update.update(
            action="tag",
            image_id=current.id,
            retag=tuple(t for t in others if known.get(t) != current.id),
        )
    return plan.model_copy(update=update)


def fingerprint_for(plan: BuildPlan, inputs: InputFacts) -> tuple[str | None, str]:
    """(the fingerprint, what it covered), or (None, why it cannot be known). One digest of
    canonical JSON, so dict order never matters."""
    if inputs.unknown is not None:
        return None, f"unknown ({inputs.unknown}); building"
    options = {name: str(getattr(plan, name)) for name in ("provenance", "sbom", "push", "load")}
    document = {
        "version": VERSION,
        **inputs.model_dump(include={"context", "ignore_file", "dockerfile"}),
        "build_args": plan.build_args,
        "labels": {k: v for k, v in plan.labels.items() if k != LABEL},
        "platforms": plan.request.platforms,
        **inputs.model_dump(include={"base_images", "secrets", "contexts"}),
        "options": {**options, **inputs.env},
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest(), inputs.summary


def builder_problem(request: BuildRequest, builder: BuilderFacts) -> ConfigError | None:
    """Refuse platforms the builder does not list (an unbooted builder lists none: not known)."""
    missing = unsupported(request.platforms, builder.platforms) if builder.platforms else ()
    if not missing:
        return None
    return ConfigError(
        f"SANDBOX_BUILD_PLATFORM={','.join(request.platforms)}: builder {builder.name} "
        f"({builder.driver}) cannot build {', '.join(missing)}; it builds "
        + ", ".join(builder.platforms),
        "choose platforms the builder lists, or select one that builds them with BUILDX_BUILDER "
        "(e.g. a docker-container builder on a machine with QEMU binfmt)",
    )

"""Gather every fact a build needs before `plan_build` decides (rules/build_plan.py). What is
asked depends only on the request (a dry run asks no engine and no registry; a push no fingerprint).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from pipeline import console
from pipeline.base_image import rootfs
from pipeline.base_image.choose import choose_build_base
from pipeline.docker import images
from pipeline.docker.buildx import BuilderProbe, containerd_image_store
from pipeline.docker.cli import Docker, find_docker
from pipeline.errors import ConfigError, RegistryError
from pipeline.git.facts import read_git_facts
from pipeline.git.meta_context import cache_path, cached_git_context, dockerfile_wants_git_context
from pipeline.git.refs import ExportedTree, export_ref
from pipeline.rules.build_plan import (
    BuildFacts,
    BuildRequest,
    Mode,
    build_args,
    commit_tag,
    needs_image_store_check,
)
from pipeline.rules.fingerprint import InputFacts
from pipeline.rules.git_facts import GitFacts
from pipeline.settings.build import BuildSettings


def gather(
    settings: BuildSettings, mode: Mode, tree: ExportedTree | None, *, dry_run: bool = False
) -> tuple[BuildFacts, Docker | None]:
    """The facts of one build, and the docker CLI they were read with (None in a dry run)."""
    request = settings.request(mode)
    day = datetime.now(UTC).strftime("%Y%m%d") if request.rebuild else None
    if not request.context.is_dir():
        what = "is not a directory" if request.context.exists() else "does not exist"
        raise ConfigError(
            f"SANDBOX_BUILD_CONTEXT={request.context} {what}",
            "point it at the folder to send to the build (default: the repo root)",
        )
    wants_meta = dockerfile_wants_git_context(request.dockerfile)
    if dry_run:
        git = git_facts(settings, tree)
        would = cache_path(settings.cache_dir / "git-meta", git.sha, git.branch, git.source_url)
        meta_dir = would if wants_meta else None
        return BuildFacts(request=request, git=git, git_meta=meta_dir, day=day), None
    docker = find_docker(settings.docker)
    # Asked now, answered while git is read: the check costs an unchanged build almost nothing.
    with BuilderProbe(docker, request.builder) as probe:
        git = git_facts(settings, tree)
        if not request.dockerfile.is_file():
            raise ConfigError(
                f"SANDBOX_DOCKERFILE={request.dockerfile} does not exist",
                "point SANDBOX_DOCKERFILE at the sandbox Dockerfile (default sandbox/Dockerfile)",
            )
        builder = probe.result()
    # One session on every machine: a local build finds (or makes) a base it can use.
    base = build_base(docker, settings) if mode == "local" else settings.base_image
    meta: Path | None = None
    if wants_meta:
        root = settings.cache_dir / "git-meta"
        meta = cached_git_context(root, git.common_dir, git.sha, git.branch, git.source_url)
    facts = BuildFacts(
        request=request,
        git=git,
        base_image=base,
        git_meta=meta,
        builder=builder,
        containerd_store=(
            containerd_image_store(docker) if needs_image_store_check(request, builder) else None
        ),
        day=day,
        registry_digest=registry_digest(settings, request, git, day),
    )
    if request.pushes:
        return facts, docker
    if not settings.fast_path:
        off = InputFacts(unknown="SANDBOX_FAST_PATH=off: every run builds")
        return facts.model_copy(update={"inputs": off}), docker
    from pipeline.build.inputs import read_inputs

    inputs = read_inputs(
        lambda refs: images.inspect(docker, refs),
        request,
        git,
        build_args(git, base),
        git_meta=wants_meta,
        builder_driver=builder.driver,
        # an export is a new folder each time: a stat cache of it would never be read again
        cache_dirs=() if tree else (settings.fingerprint_dir,),
        key_dir=settings.cache_dir,  # one key for every keyed digest (the replay's, too)
        env=settings.buildx_env,
    )
    return facts.model_copy(update={"inputs": inputs}), docker


def git_facts(settings: BuildSettings, tree: ExportedTree | None) -> GitFacts:
    if tree is None:
        return read_git_facts(settings.build_context, settings.ci)
    return tree.facts(read_git_facts(tree.work_tree, settings.ci))


def build_base(docker: Docker, settings: BuildSettings) -> str | None:
    def make(tag: str) -> str:
        cache = settings.cache_dir / "base-image"  # verified npm tarballs
        return rootfs.make_base_image(docker, settings.offline_base_env, cache, tag)

    return choose_build_base(docker, settings.base_image, settings.dockerfile, make)


def registry_digest(
    settings: BuildSettings, request: BuildRequest, git: GitFacts, day: str | None
) -> str | None:
    """The registry's digest for the commit tag this push would push (a tag that names a commit
    names one image forever, so an existing one is reused); None when it has none."""
    tag = commit_tag(request, git, day)
    if tag is None:
        return None
    from pipeline.registry.client import reader_for, resolve_digest

    image = f"{request.repository}:{tag}"
    with reader_for(image, settings) as reader:
        response = reader.manifest()
        if response.status_code == 404:
            return None
        if response.status_code not in (200, 401, 403):
            # Not knowing is not "absent": a push then could replace a tested image.
            raise RegistryError(
                f"the push to {reader.ref.host} failed before it began: it answered "
                f"{response.status_code} when asked whether {image} exists",
                f"check that {reader.ref.host} is up and the credentials can read it, then "
                "rerun (a tag that names a commit is never pushed over)",
            )
        digest = reader.ok(response).headers.get("Docker-Content-Digest")
    return str(digest) if digest else resolve_digest(image, settings)


@contextmanager
def ref_source(settings: BuildSettings) -> Iterator[tuple[BuildSettings, ExportedTree | None]]:
    """The settings to build with: unchanged, or pointing into an export of SANDBOX_ITERATE_REPO_REF
    for as long as the build runs (the checkout itself is never touched)."""
    ref = settings.repo_ref
    if ref is None:
        yield settings, None
        return
    with export_ref(settings.build_context, ref) as tree:
        console.step(f"building {ref} = {tree.sha} from an export of its tree ({tree.path})")
        moved: dict[str, Path] = {
            "build_context": tree.map(settings.build_context),
            "dockerfile": tree.map(settings.dockerfile),
        }
        yield settings.model_copy(update=moved), tree

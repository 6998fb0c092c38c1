"""Build plans for tests: the facts a test cares about, the rest as a plain build would have."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pipeline.build.inputs import read_inputs
from pipeline.docker import images
from pipeline.docker.images import Image
from pipeline.rules.build_plan import (
    BuildFacts,
    BuildPlan,
    BuildRequest,
    Mode,
    fingerprint_for,
    plan_build,
)
from pipeline.rules.fingerprint import LABEL, InputFacts
from pipeline.rules.git_facts import GitFacts
from pipeline.rules.platforms import BuilderFacts
from pipeline.settings.build import BuildSettings


def git_facts(
    sha: str = "b" * 40,
    *,
    dirty: bool = False,
    branch: str | None = "main",
    repo: Path = Path("/repo"),
    when: datetime = datetime(2026, 1, 1, tzinfo=UTC),
    source: str | None = None,
) -> GitFacts:
    return GitFacts(
        sha=sha,
        dirty=dirty,
        branch=branch,
        work_tree=repo,
        git_dir=repo / ".git",
        common_dir=repo / ".git",
        commit_time=when,
        source_url=source,
    )


def make_plan(
    mode: Mode,
    settings: BuildSettings,
    git: GitFacts,
    *,
    git_context: bool = False,
    builder: BuilderFacts | None = None,
    containerd_store: bool | None = None,
    inputs: InputFacts | None = None,
    registry_digest: str | None = None,
    day: str | None = None,
) -> BuildPlan:
    """`settings`' plan for `git`, with SANDBOX_BASE_IMAGE as the chosen base."""
    facts = BuildFacts(
        request=settings.request(mode),
        git=git,
        base_image=settings.base_image,
        git_meta=git.common_dir if git_context else None,
        builder=builder,
        containerd_store=containerd_store,
        inputs=inputs,
        registry_digest=registry_digest,
        day=day,
    )
    return plan_build(facts)


@dataclass(frozen=True)
class Fingerprint:
    value: str | None  # None: unknown, never matches
    reason: str  # why it is unknown, or what it covered
    local: Image | None  # what `repo:local` names in the engine now
    also: dict[str, str] = field(default_factory=dict)  # the sha tag's image, when it exists

    @property
    def local_fingerprint(self) -> str | None:
        return self.local.labels.get(LABEL) if self.local else None


def fingerprint_build(
    plan: BuildPlan,
    *,
    cache_dirs: Sequence[Path],
    env: dict[str, str],
    builder_driver: str = "docker",
    inspect: Callable[[Sequence[str]], Mapping[str, Image | None]] | None = None,
    repository: str = "repo",
) -> Fingerprint:
    """What build/facts.py reads for `plan`'s build, fingerprinted as the plan does; `inspect`
    defaults to the engine of this test's environment. `local` is `<repository>:local`."""
    if inspect is None:
        from tests.conftest import docker_here

        docker = docker_here()

        def inspect(refs: Sequence[str]) -> Mapping[str, Image | None]:
            return images.inspect(docker, refs)

    request = BuildRequest(
        mode="local",
        repository=repository,
        dockerfile=plan.request.dockerfile,
        context=plan.request.context,
        ca_bundle=plan.request.ca_bundle,
    )
    git = GitFacts(
        sha=plan.git.sha,
        dirty=plan.git.dirty,
        branch=plan.git.branch,
        work_tree=plan.request.context,
        git_dir=plan.request.context / ".git",
        common_dir=plan.request.context / ".git",
        commit_time=datetime(2026, 11, 23, tzinfo=UTC),
        source_url=plan.labels.get("org.opencontainers.image.source"),
    )
    inputs = read_inputs(
        inspect,
        request,
        git,
        plan.build_args,
        git_meta=plan.git_context is not None,
        builder_driver=builder_driver,
        cache_dirs=cache_dirs,
        key_dir=cache_dirs[0],
        env=env,
    )
    value, note = fingerprint_for(plan, inputs)
    local = inputs.local_image
    also = {tag: found for tag, found in inputs.tag_ids.items() if found}
    return Fingerprint(value, note, Image(local.id, local.labels) if local else None, also)

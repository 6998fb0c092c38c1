"""Collect a build's inputs from disk and the engine and fingerprint them (rules/fingerprint.py
decides what counts); tag an image that already has the fingerprint instead of building.

One `docker image inspect` answers for the base images and the image to compare with. Anything
that cannot be read makes the fingerprint unknown (`value is None`, with the reason): a build
then runs as it would without fingerprints.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.docker.engine_api import uses_engine_images
from pipeline.errors import EngineError, PipelineError
from pipeline.fastpath.context import (
    ContextDigest,
    cache_file_for,
    default_cache_dir,
    digest_context,
    ignore_rules,
)
from pipeline.fastpath.local_key import local_key
from pipeline.rules.build_plan import BuildPlan
from pipeline.rules.fingerprint import (
    ENV_INPUTS,
    LABEL,
    BuildInputs,
    UnknownBase,
    base_images,
    fingerprint,
    git_meta_identity,
)

INSPECT_TIMEOUT_S = 30


@dataclass(frozen=True)
class LocalImage:
    id: str
    labels: dict[str, str]

    @property
    def fingerprint(self) -> str | None:
        return self.labels.get(LABEL)


Inspect = Callable[[Sequence[str], str | None], "list[LocalImage] | None"]


@dataclass(frozen=True)
class Fingerprint:
    value: str | None  # None: unknown, never matches
    reason: str  # why it is unknown, or what it covered
    local: LocalImage | None  # what `compare_with` names in the engine now
    also: dict[str, str] = field(default_factory=dict)  # `also_look_up` found: ref -> image id
    context: ContextDigest | None = None
    bases: dict[str, str] = field(default_factory=dict)  # the base images it covers: ref -> id


def fingerprint_build(
    plan: BuildPlan,
    *,
    docker_host: str | None,
    cache_dirs: Sequence[Path],
    compare_with: str | None,
    env: Mapping[str, str],
    also_look_up: Sequence[str] = (),
    builder_driver: str | None = None,
    inspect: Inspect | None = None,
) -> Fingerprint:
    """The fingerprint of `plan`'s inputs, and the image `compare_with` names (if any); the
    ids of `also_look_up` come with it when all of them exist (one engine call in the common
    case: the tags a skipped build would re-apply may need no tagging).
    `builder_driver`: the driver `docker buildx inspect` reported, when the caller asked it."""
    if builder_driver is not None and builder_driver != "docker":
        return Fingerprint(
            None,
            f"the buildx builder's driver is {builder_driver}, not docker "
            "(it resolves base images remotely)",
            None,
        )
    if builder_driver is None and not uses_engine_images(plan.builder, env):
        return Fingerprint(
            None,
            "the buildx builder may not be the engine's own (it would "
            "resolve base images remotely)",
            None,
        )
    try:
        dockerfile = plan.dockerfile.read_bytes()
        bases = base_images(dockerfile.decode("utf-8", "surrogateescape"), plan.build_args)
        rules = ignore_rules(plan.dockerfile, plan.context)
        cache_file = cache_file_for(cache_dirs, plan.context, rules)
        context = digest_context(plan.context, rules, cache_file)
    except UnknownBase as error:
        return Fingerprint(None, f"base image unknown before the build: {error}", None)
    except (OSError, PipelineError) as error:
        return Fingerprint(None, f"context not readable as buildx reads it: {error}", None)
    found = _engine_images(
        bases, compare_with, also_look_up, docker_host, inspect or inspect_images
    )
    images, local, also = found
    if isinstance(images, str):
        return Fingerprint(None, images, local)
    key_dir = cache_file.parent if cache_file else default_cache_dir()
    try:
        inputs = _inputs(plan, context, dockerfile, images, key_dir, env)
    except OSError as error:
        return Fingerprint(None, f"a secret is not readable: {error}", local)
    summary = f"{context.files} paths, {context.hashed_files} read ({context.hashed_bytes} bytes)"
    return Fingerprint(fingerprint(inputs), summary, local, also, context, images)


def _inputs(
    plan: BuildPlan,
    context: ContextDigest,
    dockerfile: bytes,
    images: dict[str, str],
    key_dir: Path,
    env: Mapping[str, str],
) -> BuildInputs:
    return BuildInputs(
        context=context.digest,
        ignore_file=str(context.ignore.path) if context.ignore.path else None,
        dockerfile=hashlib.sha256(dockerfile).hexdigest(),
        build_args=dict(plan.build_args),
        labels={k: v for k, v in plan.labels.items() if k != LABEL},
        platforms=plan.platforms,
        base_images=images,
        secrets=_secrets(plan, key_dir),
        contexts=_contexts(plan),
        options={
            "provenance": str(plan.provenance),
            "sbom": str(plan.sbom),
            "push": str(plan.push),
            "load": str(plan.load),
            **{name: env[name] for name in ENV_INPUTS if name in env},
        },
    )


def _engine_images(
    bases: Sequence[str],
    compare_with: str | None,
    also: Sequence[str],
    docker_host: str | None,
    inspect: Inspect,
) -> tuple[dict[str, str] | str, LocalImage | None, dict[str, str]]:
    """(base reference -> image id, or why there is none), the image to compare with, and the
    ids of `also`. Missing images cost more calls; the usual case is one."""
    compare = [compare_with] if compare_with else []
    attempts = [[*bases, *compare, *also], [*bases, *compare], list(bases)]
    for wanted in dict.fromkeys(tuple(a) for a in attempts if a):
        found = inspect(wanted, docker_host)
        if found is None:
            continue
        ids = {ref: image.id for ref, image in zip(wanted, found, strict=True)}
        local = found[len(bases)] if len(wanted) > len(bases) and compare else None
        extra = {ref: ids[ref] for ref in also if ref in ids}
        return {ref: ids[ref] for ref in bases}, local, extra
    if not bases:
        return {}, None, {}
    return f"a base image is not in the engine ({', '.join(bases)}): buildx would pull it", None, {}


def inspect_images(refs: Sequence[str], docker_host: str | None) -> list[LocalImage] | None:
    """The images, in order, from one `docker image inspect`; None when any is missing."""
    env = dict(os.environ, **({"DOCKER_HOST": docker_host} if docker_host else {}))
    argv = ["docker", "image", "inspect", "--format", "{{.Id}}\t{{json .Config.Labels}}", *refs]
    try:
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=INSPECT_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode:
        if "Cannot connect to the Docker daemon" in done.stderr:
            raise EngineError(
                "the Docker engine does not answer",
                "start it (scripts/setup-engine.sh) or point DOCKER_HOST at a running engine",
            )
        return None
    images = []
    for line in done.stdout.splitlines():
        image_id, _, labels = line.partition("\t")
        parsed = json.loads(labels) if labels.strip() else None
        images.append(
            LocalImage(image_id.strip(), dict(parsed) if isinstance(parsed, dict) else {})
        )
    return images if len(images) == len(refs) else None


def _secrets(plan: BuildPlan, key_dir: Path) -> dict[str, str]:
    """Secret content as an HMAC under a key that never leaves this machine: the fingerprint is
    a label, and a plain hash of a weak secret could be tested against guesses."""
    if plan.ca_bundle is None:
        return {}
    key = local_key(key_dir)
    content = Path(plan.ca_bundle).read_bytes()
    return {"extra_ca_certs": hmac.new(key, content, hashlib.sha256).hexdigest()}


def _contexts(plan: BuildPlan) -> dict[str, str]:
    if plan.git_context is None:
        return {}
    source = plan.labels.get("org.opencontainers.image.source")
    return {"git-meta": git_meta_identity(plan.sha, plan.branch, source)}


def tag_image(image_id: str, tags: Sequence[str], docker_host: str | None) -> None:
    """Point `tags` at an image the engine already has (the skipped build's result)."""
    env = dict(os.environ, **({"DOCKER_HOST": docker_host} if docker_host else {}))
    for tag in tags:
        done = subprocess.run(
            ["docker", "image", "tag", image_id, tag],
            env=env,
            capture_output=True,
            text=True,
            timeout=INSPECT_TIMEOUT_S,
            check=False,
        )
        if done.returncode:
            raise EngineError(
                f"could not tag {image_id[:19]} as {tag}: {done.stderr.strip()}",
                "check that the engine answers (docker info), then rerun",
            )

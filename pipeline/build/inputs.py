"""Read what a local build's buildx would read, for its fingerprint (rules/fingerprint.py). Anything
that cannot be read makes the inputs unknown (with the reason): the build then runs as it would
without fingerprints.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pipeline.docker.images import Image
from pipeline.errors import PipelineError
from pipeline.fastpath.context import cache_file_for, digest_context, ignore_rules
from pipeline.fastpath.files import local_key
from pipeline.rules.build_plan import BuildRequest, sha_tag
from pipeline.rules.fingerprint import (
    InputFacts,
    LocalImage,
    UnknownBase,
    base_images,
    git_meta_identity,
)
from pipeline.rules.git_facts import GitFacts

Lookup = Callable[[Sequence[str]], Mapping[str, Image | None]]  # docker/images.py `inspect`


def read_inputs(
    lookup: Lookup,
    request: BuildRequest,
    git: GitFacts,
    args: Mapping[str, str],
    *,
    git_meta: bool,
    builder_driver: str,
    cache_dirs: Sequence[Path],
    key_dir: Path,
    env: Mapping[str, str],
) -> InputFacts:
    """`lookup` answers for the base images, `:local` and the other tags at once; `env`: the
    variables buildx takes from its environment; `cache_dirs`: where the stat cache may live."""
    if git_info := sorted(name for name in env if name.startswith("BUILDX_GIT_")):
        return InputFacts(
            unknown=f"{', '.join(git_info)}: buildx adds what it reads from the checkout's git"
        )
    if builder_driver != "docker":
        return InputFacts(
            unknown=f"the buildx builder's driver is {builder_driver}, not docker (it resolves "
            "base images remotely)"
        )
    try:
        dockerfile = request.dockerfile.read_bytes()
        bases = base_images(dockerfile.decode("utf-8", "surrogateescape"), args)
        rules = ignore_rules(request.dockerfile, request.context)
        cache_file = cache_file_for(cache_dirs, request.context, rules)
        context = digest_context(request.context, rules, cache_file)
        secrets: dict[str, str] = {}
        if request.ca_bundle is not None:  # an HMAC under the local key: the fingerprint is a label
            content = request.ca_bundle.read_bytes()
            secrets["extra_ca_certs"] = hmac.new(local_key(key_dir), content, "sha256").hexdigest()
    except UnknownBase as error:
        return InputFacts(unknown=f"base image unknown before the build: {error}")
    except (OSError, PipelineError) as error:
        return InputFacts(unknown=f"context not readable as buildx reads it: {error}")
    repo = request.repository
    tags = [f"{repo}:local", f"{repo}:{sha_tag(git.sha, git.dirty)}"]
    found = lookup([*bases, *tags])
    missing = [ref for ref in bases if found[ref] is None]
    local = found[tags[0]]
    local_image = LocalImage(id=local.id, labels=local.labels) if local else None
    if missing:
        return InputFacts(
            unknown=f"a base image is not in the engine ({', '.join(missing)}): buildx would "
            "pull it",
            local_image=local_image,
        )
    source = git.source_url
    return InputFacts(
        context=context.digest,
        ignore_file=str(context.ignore.path) if context.ignore.path else None,
        dockerfile=hashlib.sha256(dockerfile).hexdigest(),
        base_images={ref: image.id for ref in bases if (image := found[ref]) is not None},
        secrets=secrets,
        contexts={"git-meta": git_meta_identity(git.sha, git.branch, source)} if git_meta else {},
        env=dict(env),
        summary=f"{context.files} paths, {context.hashed_files} read "
        f"({context.hashed_bytes} bytes)",
        local_image=local_image,
        tag_ids={tag: (image.id if (image := found[tag]) else None) for tag in tags[1:]},
    )

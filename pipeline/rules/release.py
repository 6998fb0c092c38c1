"""Release-chain decisions (pure): is the registry's image the one that was built, which image a
promotion names, and may `:main` move to a commit.

Tags that name a commit name one image forever: `sha-<sha>` (what `snapshot_push` pushes) and
`sha-<sha>-rebuild-<YYYYMMDD>` (the weekly rebuild's, with no cache). `pinned-<hex>` names a
digest, so that Daytona, which cannot pull by digest, can be sent a tag for any image.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pipeline.errors import ConfigError, GitError
from pipeline.rules.image_ref import DIGEST, ImageRefError, image_repository, parse_image_ref

COMMIT = re.compile(r"^[0-9a-f]{40}$")
COMMIT_TAG = re.compile(r"^sha-(?P<sha>[0-9a-f]{40})(?:-rebuild-(?P<day>[0-9]{8}))?$")
HISTORY_FIX = (
    "give the release job the history it needs: a full clone (actions/checkout with "
    "fetch-depth: 0), or a remote git can fetch from with credentials"
)


def digest_problem(value: str) -> str | None:
    """Why `value` cannot be an image digest (SANDBOX_IMAGE_DIGEST), or None when it can."""
    if DIGEST.fullmatch(value):
        return None
    return "sha256:<64 lower-case hex>, the digest the build job reported"


def rebuild_tag(sha: str, day: str) -> str:
    return f"sha-{sha}-rebuild-{day}"


def pinned_tag(digest: str) -> str:
    return "pinned-" + digest.removeprefix("sha256:")


@dataclass(frozen=True)
class MainSource:
    image: str  # <repository>:<tag>
    tag: str
    commit: str


def main_source(text: str, repository: str) -> MainSource:
    """`--from`'s value: a full commit sha (its `:sha-<sha>`), a commit tag of the repository
    (`sha-<sha>`, `sha-<sha>-rebuild-<YYYYMMDD>`), or that tag as a full reference."""
    value = text.strip()
    if COMMIT.fullmatch(value.lower()):
        tag = f"sha-{value.lower()}"
    elif ":" in value or "/" in value:
        try:
            ref = parse_image_ref(value)
        except ImageRefError as error:
            raise ConfigError(f"--from {value!r}: {error}", _SOURCE_FIX) from None
        if ref.digest or image_repository(value) != repository:
            raise ConfigError(
                f"--from {value!r} is not a tag of SANDBOX_IMAGE_REPOSITORY={repository}",
                _SOURCE_FIX,
            )
        tag = ref.tag or ""
    else:
        tag = value
    found = COMMIT_TAG.fullmatch(tag)
    if found is None:
        raise ConfigError(f"--from {value!r} names no commit's image", _SOURCE_FIX)
    return MainSource(f"{repository}:{tag}", tag, found["sha"])


_SOURCE_FIX = (
    "give the full 40-character sha of a commit whose image was pushed, or its tag "
    "(sha-<sha>, sha-<sha>-rebuild-<YYYYMMDD>)"
)


def revision_problem(source: MainSource, revision: str | None) -> str | None:
    """Why the image `source` names is not its commit's (by its revision label), or None."""
    if revision == source.commit:
        return None
    return (
        f"{source.image} carries revision {revision or 'no revision label'}, not {source.commit}: "
        "it was not built from that commit"
    )


def digest_mismatch(expected: str, actual: str) -> str | None:
    if expected == actual:
        return None
    return (
        f"the registry now has {actual} for this tag, not the built {expected}: "
        "the tag was pushed again after the build"
    )


@dataclass(frozen=True)
class Ancestry:
    """Git's answer to "is the commit being built a strict ancestor of `:main`'s commit?"."""

    answer: Literal["ancestor", "not-ancestor", "unknown"]
    detail: str = ""  # why, for "unknown" above all (shallow clone, no remote, …)


@dataclass(frozen=True)
class MainMove:
    move: bool
    reason: str


def decide_main_move(current: str | None, building: str, ancestry: Ancestry | None) -> MainMove:
    """Whether `:main` moves from `current` (its image's revision label) to commit `building`.
    Never backwards: a re-run of an old release or a late job of an older commit must not replace
    a newer image. When git cannot tell, the release fails (GitError): a hold that passes green
    would leave `:main` behind forever, as it did in a private repository whose shallow checkout
    could not fetch."""
    short = building[:12]
    if current is None:
        return MainMove(True, "`:main` does not exist yet or has no revision label")
    if not COMMIT.fullmatch(current):
        return MainMove(True, f"`:main`'s revision label {current!r} is not a commit sha")
    if current == building:
        return MainMove(True, f"`:main` already points at {short}")
    if ancestry is None or ancestry.answer == "unknown":
        why = ancestry.detail if ancestry and ancestry.detail else "no ancestry answer"
        raise GitError(
            f"cannot tell whether {short} is older than {current[:12]}, which `:main` points at "
            f"({why}); `:main` was not moved",
            HISTORY_FIX,
        )
    if ancestry.answer == "ancestor":
        return MainMove(
            False,
            f"{short} is an ancestor of {current[:12]} that `:main` points at: `:main` never "
            "moves backwards, only the sha tag was pushed",
        )
    return MainMove(True, f"{short} is not an ancestor of {current[:12]} on `:main`")


def platform_manifest(index: dict[str, Any], platform: str | None) -> str | None:
    """The digest of `platform`'s image (`os/arch[/variant]`; None: the first image) in an image
    index, or None. Attestation manifests (platform `unknown/unknown`) are never chosen."""
    want_os, _, rest = (platform or "").partition("/")
    want_arch, _, want_variant = rest.partition("/")
    for entry in index.get("manifests") or []:
        found = (entry.get("platform") or {}) if isinstance(entry, dict) else {"os": "unknown"}
        if found.get("os") == "unknown":  # an attestation manifest (or no entry), not an image
            continue
        if platform is not None and (
            (found.get("os"), found.get("architecture")) != (want_os, want_arch)
            or (want_variant and found.get("variant") != want_variant)
        ):
            continue
        if isinstance(digest := entry.get("digest"), str):
            return digest
    return None

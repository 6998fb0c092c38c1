"""Release-chain decisions (pure): is the registry's image the one that was built, and may `:main`
move to the commit being built.

The adapters gather the facts (a digest from the registry, the revision label of the image
`:main` points at, git's ancestry answer); these functions only decide and word the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pipeline.rules.image_ref import DIGEST

COMMIT = re.compile(r"^[0-9a-f]{40}$")

AncestryAnswer = Literal["ancestor", "not-ancestor", "unknown"]


def digest_problem(value: str) -> str | None:
    """Why `value` cannot be an image digest (SANDBOX_IMAGE_DIGEST), or None when it can."""
    if DIGEST.fullmatch(value):
        return None
    return "sha256:<64 lower-case hex>, the digest the build job reported"


def digest_mismatch(expected: str, actual: str) -> str | None:
    """The one-line cause when the registry's digest is not the built one, else None."""
    if expected == actual:
        return None
    return (
        f"the registry now has {actual} for this tag, not the built {expected}: "
        "the tag was pushed again after the build"
    )


@dataclass(frozen=True)
class Ancestry:
    """Git's answer to "is the commit being built a strict ancestor of `:main`'s commit?"."""

    answer: AncestryAnswer
    detail: str = ""  # why, for "unknown" above all (shallow clone, no remote, …)


@dataclass(frozen=True)
class MainMove:
    move: bool
    reason: str


def decide_main_move(current: str | None, building: str, ancestry: Ancestry | None) -> MainMove:
    """Whether `:main` moves from `current` (its image's revision label) to commit `building`.

    `:main` never moves backwards: a re-run of an old release, or a late job of an older commit,
    must not replace a newer image. When git cannot tell, `:main` stays where it is; the sha tag
    is pushed either way, so nothing is lost but the move.
    """
    short = building[:12]
    if current is None:
        return MainMove(True, "`:main` does not exist yet or has no revision label")
    if not COMMIT.fullmatch(current):
        return MainMove(True, f"`:main`'s revision label {current!r} is not a commit sha")
    if current == building:
        return MainMove(True, f"`:main` already points at {short}; it is pushed again")
    if ancestry is None or ancestry.answer == "unknown":
        why = ancestry.detail if ancestry and ancestry.detail else "no ancestry answer"
        return MainMove(
            False,
            f"cannot tell whether {short} is older than {current[:12]} on `:main` ({why}); "
            "`:main` was left where it is",
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
        if not isinstance(entry, dict):
            continue
        found = entry.get("platform") or {}
        if found.get("os") == "unknown":  # an attestation manifest, not an image
            continue
        if platform is not None:
            if (found.get("os"), found.get("architecture")) != (want_os, want_arch):
                continue
            if want_variant and found.get("variant") != want_variant:
                continue
        digest = entry.get("digest")
        if isinstance(digest, str):
            return digest
    return None

"""The release chain's two questions, each one call for a session: is the tag still the built
image (SANDBOX_IMAGE_DIGEST), and may `:main` move to a commit (GitError when git cannot tell)."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import RegistryError
from pipeline.git.ancestry import strict_ancestry
from pipeline.registry.client import image_revision, resolve_digest
from pipeline.registry.credentials import Sources
from pipeline.rules.release import COMMIT, MainMove, decide_main_move, digest_mismatch


def verify_digest(image: str, expected: str, settings: Sources) -> str:
    """RegistryError naming both digests unless `image` resolves to `expected`."""
    actual = resolve_digest(image, settings)
    if problem := digest_mismatch(expected, actual):
        raise RegistryError(
            f"{image}: {problem}",
            f"find out who pushed the tag again; to ship {expected}, promote it under a tag of "
            "its own (snapshot_stage -- --from <snapshot>), or set SANDBOX_IMAGE_DIGEST to the "
            "digest of the build that pushed the tag last, if that one was tested",
        )
    return actual


def main_tag_move(main_image: str, building: str, repo: Path, settings: Sources) -> MainMove:
    """Whether `<repository>:main` may move to commit `building` of the repository holding
    `repo`: the revision label of the image it names now, and git about the two commits."""
    current = image_revision(main_image, settings)
    ancestry = None
    if current is not None and COMMIT.fullmatch(current) and current != building:
        ancestry = strict_ancestry(repo, building, current)
    return decide_main_move(current, building, ancestry)

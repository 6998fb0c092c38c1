"""Moving or creating a tag without building: the manifest is read by its digest and put back,
byte for byte with its own media type, under the new tag. No blob moves, so what was tested is
what the tag serves; the write is read back before it counts. Tags that name a commit
(`:sha-<sha>`) or a digest (`:pinned-<hex>`) name one image forever (`may_move=False`); `:main`
moves only forward (`main_tag_move`).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import RegistryError
from pipeline.git.ancestry import strict_ancestry
from pipeline.registry.client import (
    MANIFEST_TYPES,
    RegistryReader,
    content_digest,
    error_code,
    image_revision,
    reader_for,
)
from pipeline.registry.credentials import Sources
from pipeline.rules.release import COMMIT, MainMove, decide_main_move


def put_tag(repository: str, digest: str, tag: str, settings: Sources, *, may_move: bool) -> bool:
    """Point `<repository>:<tag>` at `digest` (already in that repository); False when it
    already named that digest."""
    target = f"{repository}:{tag}"
    with reader_for(target, settings, actions="pull,push") as reader:
        current = reader.manifest()
        if current.status_code == 200:
            now = current.headers.get("Docker-Content-Digest")
            if now == digest:
                return False
            if not may_move:
                raise RegistryError(
                    f"{target} already names {now or 'another image'}, not {digest}: a tag that "
                    "names a commit or a digest is never moved",
                    f"use the image {target} names, or promote {digest} under another tag",
                )
        elif current.status_code != 404:
            raise reader.fail(current)
        body, media_type = _manifest(reader, repository, digest)
        written = reader.request(
            "PUT",
            reader.url("manifests", tag),
            {"Accept": ", ".join(MANIFEST_TYPES), "Content-Type": media_type},
            content=body,
        )
        if written.status_code not in (200, 201):
            raise reader.fail(written, writing=target)
        check = reader.manifest()
        landed = check.headers.get("Docker-Content-Digest") if check.status_code == 200 else None
    if landed != digest:
        raise RegistryError(
            f"{target} resolves to {landed or 'nothing'} after it was written with {digest}",
            "another run moved it at the same moment; rerun the release",
        )
    return True


def _manifest(reader: RegistryReader, repository: str, digest: str) -> tuple[bytes, str]:
    response = reader.manifest(digest, method="GET")
    if response.status_code == 404:
        raise RegistryError(
            f"{repository}@{digest} is not in the registry ({error_code(response)})",
            "promote a digest that was pushed to this repository (nox -s snapshot_push)",
        )
    body = reader.ok(response).content
    if content_digest(response) != digest:
        raise RegistryError(
            f"the registry served {repository}@{digest} with other bytes",
            "check the registry's status and retry",
        )
    media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
    if media_type not in MANIFEST_TYPES:
        raise RegistryError(
            f"{repository}@{digest} is a {media_type or 'manifest without a type'}, not an image",
            "promote the digest of a container image or image index",
        )
    return body, media_type


def main_tag_move(main_image: str, building: str, repo: Path, settings: Sources) -> MainMove:
    """Whether `<repository>:main` may move to commit `building` of the repository holding
    `repo`: the revision label of the image it names now, and git about the two commits."""
    current = image_revision(main_image, settings)
    ancestry = None
    if current is not None and COMMIT.fullmatch(current) and current != building:
        ancestry = strict_ancestry(repo, building, current)
    return decide_main_move(current, building, ancestry)

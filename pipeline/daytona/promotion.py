"""The image `snapshot_stage -- --from` promotes: a tag, and the digest it must hold. Read from the
registry for a commit, from Daytona (then the registry) for a snapshot. Reads only; a tag that
has to be made first is named in `Promotion.make_tag` and made by the session.

Daytona cannot pull a digest reference (image_ref.DAYTONA_DIGEST_PROBLEM), so a promotion always
sends a tag: the commit's `:sha-<sha>`, the rolled-back snapshot's own tag when it still resolves
to the digest that snapshot pulled, or else `:pinned-<hex>`, a tag that names that digest.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.daytona.client import DaytonaClient
from pipeline.errors import DaytonaError, RegistryError
from pipeline.registry.client import resolve_digest
from pipeline.registry.credentials import Sources
from pipeline.rules.daytona_models import Snapshot
from pipeline.rules.image_ref import ImageRefError, image_repository, parse_image_ref
from pipeline.rules.release import pinned_tag
from pipeline.rules.snapshot_names import (
    PromoteFrom,
    missing_source_fix,
    one_line,
    pulled_digest,
    sha_image,
)


@dataclass(frozen=True)
class Promotion:
    source: PromoteFrom
    image: str  # the tag the new snapshot registers
    digest: str  # what that tag must resolve to, and Daytona must pull
    origin: str  # where the image came from, one line for the plan
    read: str  # what finding the image read ("the registry was"), for a dry run's last line
    snapshot: Snapshot | None = None  # the snapshot rolled back to, for a snapshot source
    make_tag: bool = False  # `image` is a `:pinned-<hex>` tag to make (a registry-side copy)

    def plan(self) -> tuple[str, ...]:
        lines: tuple[str, ...] = (f"from:       {self.source.describe()}: {self.origin}",)
        if self.make_tag:
            lines += (f"tag:        {self.image} is made for {self.digest} (no build)",)
        return lines


def from_commit(source: PromoteFrom, repository: str, registry: Sources) -> Promotion:
    """`<repository>:sha-<sha>` and the digest it has in the registry now (`registry`: where
    the credentials for reading it come from). The tag names that commit's image forever."""
    tagged = sha_image(repository, source.value, dirty=False)
    digest = resolve_digest(tagged, registry)
    origin = f"{tagged} is {digest} in the registry (no build)"
    return Promotion(source, tagged, digest, origin, "the registry was")


def from_snapshot(source: PromoteFrom, registry: Sources, api: DaytonaClient) -> Promotion:
    """The image an existing snapshot runs: the digest Daytona pulled for it (its `ref`), sent
    as its own tag if that still resolves there, else as a `:pinned-<hex>` tag to make."""
    found = api.get_snapshot(source.value)
    if found is None:
        raise DaytonaError(
            f"--from: no snapshot is named {source.value}", missing_source_fix(source.value)
        )
    if found.failed:
        raise DaytonaError(
            f"--from: snapshot {found.name} is in state {found.state} "
            f"({one_line(found.error_reason) or 'no reason given'}); its image never worked",
            "roll back to a snapshot that was active",
        )
    image = found.image_name
    if not image:
        raise DaytonaError(
            f"--from: snapshot {found.name} has no image name (built from a Dockerfile)",
            "promote a commit's image (`--from <sha>`) or a snapshot made from an image",
        )
    try:
        ref = parse_image_ref(image)
    except ImageRefError:
        raise DaytonaError(
            f"--from: the image of snapshot {found.name}, {image!r}, is not a reference to pin",
            "promote a commit's image instead (`--from <sha>`)",
        ) from None
    pulled = pulled_digest(found)
    read = "Daytona was"
    if pulled is not None:
        digest, origin = pulled, f"Daytona pulled {pulled} for it (from {image})"
    elif ref.digest is not None:
        digest, origin = ref.digest, f"its image {image}, by digest"
    else:
        digest = resolve_digest(image, registry)
        read = "Daytona and the registry were"
        origin = f"its image {image} is {digest} in the registry now (Daytona did not say)"
        if not (ref.tag or "").startswith("sha-"):  # not a tag that names one image forever
            origin += " (a tag that can move: check that this is the image you mean)"
    if ref.tag is not None and ref.digest is None:
        read = "Daytona and the registry were"
        if _resolves(image, digest, registry):
            return Promotion(source, image, digest, origin, read, found)
    pinned = f"{image_repository(image)}:{pinned_tag(digest)}"
    return Promotion(source, pinned, digest, origin, read, found, make_tag=True)


def _resolves(image: str, digest: str, registry: Sources) -> bool:
    try:
        return resolve_digest(image, registry) == digest
    except RegistryError:
        return False

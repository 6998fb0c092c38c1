"""The image `snapshot_stage -- --from` promotes, pinned by digest: read from the registry for a
commit, from Daytona (then the registry) for a snapshot. Reads only; nothing is built or changed.

A snapshot registered by tag is pinned to the digest that tag has *now*: Daytona does not say
which digest it pulled, so for a tag that moves (`:main`) the plan says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.daytona.client import DaytonaClient
from pipeline.errors import DaytonaError
from pipeline.registry.client import resolve_digest
from pipeline.registry.credentials import Sources
from pipeline.rules.daytona_models import Snapshot
from pipeline.rules.image_ref import ImageRefError, parse_image_ref
from pipeline.rules.snapshot_names import (
    PromoteFrom,
    missing_source_fix,
    one_line,
    pin_digest,
    sha_image,
)


@dataclass(frozen=True)
class Promotion:
    source: PromoteFrom
    image: str  # `<repository>@sha256:…`, what the new snapshot registers
    digest: str
    origin: str  # where the image came from, one line for the plan
    read: str  # what finding the image read ("the registry was"), for a dry run's last line
    snapshot: Snapshot | None = None  # the snapshot rolled back to, for a snapshot source

    def plan(self) -> tuple[str, ...]:
        return (f"from:       {self.source.describe()}: {self.origin}",)


def from_commit(source: PromoteFrom, repository: str, registry: Sources) -> Promotion:
    """`<repository>:sha-<sha>` as it is in the registry now, by digest (`registry`: where
    the credentials for reading it come from)."""
    tagged = sha_image(repository, source.value, dirty=False)
    digest = resolve_digest(tagged, registry)
    return Promotion(
        source,
        pin_digest(tagged, digest),
        digest,
        f"{tagged} is {digest} in the registry (no build)",
        "the registry was",
    )


def from_snapshot(source: PromoteFrom, registry: Sources, api: DaytonaClient) -> Promotion:
    """The image of an existing snapshot, by digest (a tag is resolved in its registry now)."""
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
    pinned = ref.digest
    if pinned is not None:
        origin = f"its image {image}, already by digest"
        return Promotion(source, pin_digest(image, pinned), pinned, origin, "Daytona was", found)
    digest = resolve_digest(image, registry)
    origin = f"its image {image} is {digest} in the registry now"
    if not (ref.tag or "").startswith("sha-"):  # snapshot_push's tag of a commit's image
        origin += " (a tag that can move: check that this is the image you mean)"
    read = "Daytona and the registry were"
    return Promotion(source, pin_digest(image, digest), digest, origin, read, found)

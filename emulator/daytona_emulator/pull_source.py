"""Where an image is pulled from and with which credentials: one rule for the snapshot's registry
probe and for the sandbox's `docker pull`, so the two cannot disagree.

Credentials: the organization's registry entry for the image (Daytona's rule, registries.py),
else the emulator's own per-host credentials (`--registry-auth`, the `registry-auth` knob; like
the registries Daytona itself is configured with). Mirrors swap the host contacted, not the name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from daytona_emulator.config import RegistryCredential
from daytona_emulator.registries import RegistryEntry, entry_for_image
from pipeline.rules.image_ref import ImageRef, is_loopback, parse_image_ref


@dataclass(frozen=True)
class PullSource:
    image: str  # as the snapshot names it
    ref: ImageRef
    target: str  # host[:port] actually contacted
    credential: RegistryCredential | None

    @property
    def reachable(self) -> bool:
        """There is no network here: only loopback registries, or hosts someone configured
        credentials for, can answer; any other host would only hang on DNS."""
        return self.credential is not None or is_loopback(self.target)

    @property
    def base_url(self) -> str:
        return f"{'http' if is_loopback(self.target) else 'https'}://{self.target}"

    @property
    def reference(self) -> str:
        """What `docker pull` gets: the image's name with the contacted host."""
        name = f"{self.target}/{self.ref.repository}"
        if self.ref.digest:
            return f"{name}@{self.ref.digest}"
        return f"{name}:{self.ref.tag}" if self.ref.tag else name


def pull_source(
    image: str,
    *,
    entries: Sequence[RegistryEntry],
    credentials: Mapping[str, RegistryCredential],
    mirrors: Mapping[str, str],
) -> PullSource:
    """Raises `ImageRefError` for a name that is no image reference."""
    ref = parse_image_ref(image)
    target = mirrors.get(ref.host, ref.host)
    entry = entry_for_image(entries, image)
    credential = (
        entry.credential
        if entry is not None
        else credentials.get(ref.host) or credentials.get(target)
    )
    return PullSource(image=image, ref=ref, target=target, credential=credential)

"""Where an image is pulled from and with which credentials: one rule for the snapshot's registry
probe and for the sandbox's `docker pull`, so the two cannot disagree.

Daytona v0.190 (snapshot.manager.ts `handleSnapshotStatePending`): the API picks the
organization's registry entry for the image (`registries.entry_for_image`), rebuilds the name
(`daytona_images.runner_inspect_name`) and asks its runner to inspect that name in the registry
with the entry's credentials; the runner's docker reads the name with docker's grammar
(`docker_reference`). Two steps are kinder here than Daytona, each kept in one function so that
making it faithful is one change (/work/notes/daytona-faithfulness.md):

- `inspected_name`: the emulator inspects the name as given, digests included;
- `credential_for`: without an entry the emulator still has its own per-host credentials.

Mirrors swap the host contacted, not the name.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from daytona_emulator.config import RegistryCredential
from daytona_emulator.daytona_images import ImageNameError
from daytona_emulator.docker_reference import Reference, ReferenceError, parse_normalized_named
from daytona_emulator.registries import RegistryEntry, entry_for_image

# A name Daytona's parser (`parseDockerImage`) or docker's grammar refuses; `str()` says why.
UNREADABLE_NAME = (ImageNameError, ReferenceError)


def is_loopback(host: str) -> bool:
    """Docker's registries without TLS by default: 127.0.0.0/8 (moby registry/config.go,
    `loadInsecureRegistries`), ::1, and `localhost`, which resolves to them; any port."""
    hostname = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    hostname = hostname.removeprefix("[").split("]")[0]
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class PullSource:
    image: str  # as the snapshot names it
    ref: Reference  # the name inspected, as docker reads it
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
        name = f"{self.target}/{self.ref.path}"
        if self.ref.digest:
            return f"{name}@{self.ref.digest}"
        return f"{name}:{self.ref.tag}" if self.ref.tag else name


def inspected_name(image: str, entry: RegistryEntry | None) -> str:
    """The name the runner inspects (and the emulator pulls).

    KINDER than Daytona: the name as given. Daytona hands its runner
    `runner_inspect_name(image, entry.url if entry else None)`, which rebuilds
    `repo@sha256:<hex>` as `repo:sha256:<hex>` (and `repo:tag@sha256:<hex>` as
    `repo:tag:sha256:<hex>`); docker refuses both with "invalid reference format", so on Daytona a
    digest-pinned snapshot ends in `error` (daytonaio/daytona#4532). Returning that instead is
    the whole change."""
    return image  # `entry` is where Daytona borrows a host from, for a name without one


def credential_for(
    entry: RegistryEntry | None, host_credential: RegistryCredential | None
) -> RegistryCredential | None:
    """The credentials the inspect (and the emulator's pull) uses.

    With an entry, its credentials, as Daytona. KINDER without one: the emulator's own
    credentials for the host (`--registry-auth`, the `registry-auth` knob). Daytona then inspects
    with `createTemporaryRegistryConfig`'s empty username and password, which the runner sends as
    no credentials at all, so a private image fails; returning None here is the whole change."""
    return entry.credential if entry is not None else host_credential


def pull_source(
    image: str,
    *,
    entries: Sequence[RegistryEntry],
    credentials: Mapping[str, RegistryCredential],
    mirrors: Mapping[str, str],
) -> PullSource:
    """Raises one of `UNREADABLE_NAME` for a name that Daytona or docker cannot read."""
    entry = entry_for_image(entries, image)
    ref = parse_normalized_named(inspected_name(image, entry))
    target = mirrors.get(ref.domain, ref.domain)
    host_credential = credentials.get(ref.domain) or credentials.get(target)
    return PullSource(
        image=image, ref=ref, target=target, credential=credential_for(entry, host_credential)
    )

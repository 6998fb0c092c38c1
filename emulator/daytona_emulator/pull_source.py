"""Where an image is pulled from and with which credentials: one rule for the snapshot's registry
probe and for the sandbox's `docker pull`, so the two cannot disagree.

Daytona v0.190 (snapshot.manager.ts `handleSnapshotStatePending`): the API picks the
organization's registry entry for the image (`registries.entry_for_image`), rebuilds the name
(`daytona_images.runner_inspect_name`) and asks its runner to inspect that name in the registry
with the entry's credentials; the runner's docker reads the name with docker's grammar
(`docker_reference`). Two steps are kinder here than Daytona, each kept in one function so that
each is kept in one function here:

- `inspected_name`: the name rebuilt as Daytona rebuilds it, so a digest reference fails with
  docker's "invalid reference format" (daytonaio/daytona#4532);
- `credential_for`: without an organization entry the inspect is anonymous: Daytona lends no
  credentials of its own to a customer's registry.

Mirrors swap the host contacted, not the name.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from daytona_emulator.config import RegistryCredential
from daytona_emulator.daytona_images import ImageNameError, runner_inspect_name
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
        """There is no network here: only loopback registries, or hosts an organization entry
        lends credentials for, can answer; any other host would only hang on DNS."""
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
    """The name the runner inspects (and the emulator pulls): Daytona's `parseDockerImage` +
    `getFullName`, with the entry's host for a name without one (snapshot.manager.ts
    l. 1259-1263). It rebuilds `repo@sha256:<hex>` as `repo:sha256:<hex>` (and
    `repo:tag@sha256:<hex>` as `repo:tag:sha256:<hex>`), which docker refuses with "invalid
    reference format": on Daytona a digest-pinned snapshot ends in `error`."""
    return runner_inspect_name(image, entry.url if entry else None)


def credential_for(entry: RegistryEntry | None) -> RegistryCredential | None:
    """The credentials the inspect (and the emulator's pull) uses: the organization entry's.
    Without one Daytona inspects with `createTemporaryRegistryConfig`'s empty username and
    password, which the runner sends as no credentials at all, so a private image fails; the
    credentials Daytona holds itself serve only its own registries, never a customer's."""
    return entry.credential if entry is not None else None


def pull_source(
    image: str,
    *,
    entries: Sequence[RegistryEntry],
    mirrors: Mapping[str, str],
) -> PullSource:
    """Raises one of `UNREADABLE_NAME` for a name that Daytona or docker cannot read."""
    entry = entry_for_image(entries, image)
    ref = parse_normalized_named(inspected_name(image, entry))
    target = mirrors.get(ref.domain, ref.domain)
    return PullSource(image=image, ref=ref, target=target, credential=credential_for(entry))

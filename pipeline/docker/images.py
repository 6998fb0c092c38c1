"""Images in the engine: look up (over the socket when endpoint.py can, else the CLI), tag,
pull, remove, import. The one place that does each."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from pipeline.docker import cli, endpoint
from pipeline.docker.cli import Docker, repeated
from pipeline.errors import EngineError, PipelineError
from pipeline.process_group import Stdin

PULL_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class Image:
    id: str
    labels: dict[str, str] = field(default_factory=dict)
    size: int = 0  # bytes, as `docker image inspect` reports it

    @classmethod
    def from_inspect(cls, document: dict[str, Any]) -> Image:
        labels = (document.get("Config") or {}).get("Labels") or {}
        return cls(
            id=str(document["Id"]),
            labels={str(k): str(v) for k, v in labels.items()},
            size=int(document.get("Size") or 0),
        )


def inspect(docker: Docker, refs: Sequence[str]) -> dict[str, Image | None]:
    try:
        found = endpoint.inspect_images(docker.location, refs)
    except endpoint.Unsupported:
        found = {ref: cli.inspect(docker, "image", ref) for ref in dict.fromkeys(refs)}
    return {ref: Image.from_inspect(doc) if doc else None for ref, doc in found.items()}


def one(docker: Docker, ref: str) -> Image | None:
    return inspect(docker, [ref])[ref]


def label(docker: Docker, ref: str, name: str) -> str | None:
    """A label of the image under `ref`: "" without that label, None if there is no image."""
    image = one(docker, ref)
    return None if image is None else image.labels.get(name, "")


def history(docker: Docker, ref: str) -> list[tuple[int, str]]:
    """The image's layers as (size in bytes, the instruction that made it), newest first; []
    when it cannot be read (a picture of the build is never worth failing it)."""
    done = docker.run(
        "image", "history", "--human=false", "--no-trunc", "--format", "{{.Size}}\t{{.CreatedBy}}",
        ref,
    )  # fmt: skip
    if done.code:
        return []
    layers = []
    for line in done.out.splitlines():
        size, _, made_by = line.partition("\t")
        if size.strip().isdigit():  # BuildKit marks what it made: a note, not the instruction
            layers.append((int(size), made_by.strip().removesuffix("# buildkit").strip()))
    return layers


def tag(docker: Docker, image: str, tags: Iterable[str]) -> None:
    for target in tags:
        done = docker.run("image", "tag", image, target)
        if done.code:
            raise EngineError(
                f"could not tag {image[:19]} as {target}: {done.last_line()}",
                "check that the engine answers (docker info), then rerun",
            )


def pull(docker: Docker, ref: str, timeout_s: float = PULL_TIMEOUT_S) -> str | None:
    """None when it worked, else the engine's reason (one line)."""
    done = docker.run("pull", "--quiet", ref, timeout_s=timeout_s)
    if done.timed_out:
        return f"no answer within {timeout_s:g} s"
    return None if done.code == 0 else done.last_line()


def ensure(docker: Docker, ref: str) -> None:
    """Pull `ref` unless the engine has it (a remote builder leaves nothing local)."""
    if one(docker, ref) is None and (why := pull(docker, ref)) is not None:
        raise EngineError(f"cannot pull {ref}: {why}", "check the registry and the credentials")


def remove(docker: Docker, refs: Sequence[str]) -> None:
    """Untag (best effort: the engine may be gone); image data another tag uses stays."""
    if refs:
        with suppress(OSError, PipelineError):
            docker.run("image", "rm", "--force", "--no-prune", *refs)


def import_rootfs(
    docker: Docker, rootfs: Stdin, tag_as: str, changes: Iterable[str], timeout_s: float
) -> str:
    """`docker import` a root file system tarball; returns the image id."""
    args = ["import", *repeated("--change", changes), "-", tag_as]
    doing = f"importing {tag_as}"
    return docker.checked(*args, stdin=rootfs, timeout_s=timeout_s, doing=doing).strip()

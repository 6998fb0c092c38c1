"""What goes into a build's fingerprint, the one digest (build_plan.fingerprint_for) of every
input that can change what `docker buildx build --load` makes (pure). `snapshot_local` stores it
on the image as the label `LABEL`; when `:local` already carries the same value, nothing is built.

Over-counting only costs a build; under-counting is a wrong skip, so anything the pipeline
cannot read (an image that is not local, a variable in a FROM it cannot resolve) makes the
fingerprint unknown instead of guessing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel

from pipeline.rules.dockerfile import Dockerfile, Instruction, global_args, parse, stage_names

LABEL = "dev.iterate.sandbox-pipeline.inputs"
VERSION = 2  # bump when what goes in changes, so old labels stop matching


class LocalImage(BaseModel, frozen=True):
    id: str
    labels: dict[str, str] = {}


class InputFacts(BaseModel, frozen=True):
    """What was read for a local build's fingerprint (build/inputs.py), before the plan adds
    its own args, labels and options. `unknown`: why the inputs cannot be known (never skip)."""

    unknown: str | None = None
    context: str = ""  # context_digest of the files buildx sends
    ignore_file: str | None = None  # which ignore file chose them (its rules show in `context`)
    dockerfile: str = ""  # sha256 of the Dockerfile's bytes
    base_images: dict[str, str] = {}  # image reference as written -> local image id
    secrets: dict[str, str] = {}  # secret id -> keyed digest of its content (never a plain hash)
    contexts: dict[str, str] = {}  # named build context -> what determines its content
    # what buildx takes from its environment (SOURCE_DATE_EPOCH sets timestamps, BUILDX_*)
    env: dict[str, str] = {}
    summary: str = ""  # what was read, for people
    local_image: LocalImage | None = None  # what `:local` names now
    tag_ids: dict[str, str | None] = {}  # the build's other tags -> image id now


def git_meta_identity(sha: str, branch: str | None, source_url: str | None) -> str:
    """The git-meta context's bytes depend on exactly these (see git/meta_context.py)."""
    return json.dumps(["git-meta", sha, branch, source_url])


class UnknownBase(ValueError):
    """A FROM or --from the pipeline cannot resolve to an image reference without building."""


_VARIABLE = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-+])?(?P<word>[^}]*)\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)
# Sources BuildKit fetches itself: not files of the context, nor images in the engine.
_REMOTE = re.compile(r"^(?:https?://|git@|git://|ssh://|github\.com/)|\.git(?:#.*)?$")
# BuildKit's automatic platform ARGs: BUILDPLATFORM, BUILDOS, …, TARGETVARIANT
_PLATFORM_ARGS = {
    f"{w}{p}" for w in ("BUILD", "TARGET") for p in ("PLATFORM", "OS", "ARCH", "VARIANT")
}


@dataclass
class _Stage:
    name: str | None
    base: str | UnknownBase  # the FROM reference with global ARGs expanded, or why it cannot be
    sources: list[str]  # COPY --from= and RUN --mount=...,from= values, as written
    remote: list[str] = field(default_factory=list)  # what ADD fetches from the network


def base_images(dockerfile: str, build_args: Mapping[str, str]) -> tuple[str, ...]:
    """The images the final stage needs, through its FROM and every COPY --from / RUN --mount
    from= of the stages it depends on, except `scratch` and stage names. Stages it does not
    reach are left out, as BuildKit never resolves their images. Raises UnknownBase when a
    needed reference depends on something only the build knows, or when the build reads
    something that is neither the context nor an image (a custom frontend, a remote source)."""
    parsed = parse(dockerfile)
    if "syntax" in parsed.directives:
        raise UnknownBase(
            f"the Dockerfile names its own frontend (# syntax={parsed.directives['syntax']}), "
            "which BuildKit fetches and which decides what every instruction means"
        )
    stages = _stages(parsed, build_args)
    if not stages:
        raise UnknownBase("the Dockerfile has no FROM")
    found: list[str] = []
    todo, seen = [len(stages) - 1], set()
    while todo:
        index = todo.pop()
        if index in seen:
            continue
        seen.add(index)
        stage = stages[index]
        if isinstance(stage.base, UnknownBase):
            raise stage.base
        if stage.remote:
            raise UnknownBase(f"ADD fetches {stage.remote[0]}, which is neither file nor image")
        for reference in (stage.base, *stage.sources):
            earlier = _earlier_stage(reference, stages[:index])
            if earlier is not None:
                todo.append(earlier)
            elif "$" in reference:
                raise UnknownBase(f"files come from {reference!r}, a variable")
            elif reference.lower() != "scratch":
                found.append(reference)
    return tuple(dict.fromkeys(found))


def _earlier_stage(reference: str, earlier: Sequence[_Stage]) -> int | None:
    if reference.isdigit():
        return int(reference) if int(reference) < len(earlier) else None
    named = [index for index, stage in enumerate(earlier) if stage.name == reference.lower()]
    return named[-1] if named else None


def _stages(dockerfile: Dockerfile, build_args: Mapping[str, str]) -> list[_Stage]:
    defaults = global_args(dockerfile)
    names = stage_names(dockerfile)
    stages: list[_Stage] = []
    for instruction in dockerfile.instructions:
        if instruction.keyword == "FROM":
            words = instruction.operands
            base: str | UnknownBase
            try:
                base = _expand(words[0], defaults, build_args) if words else UnknownBase("FROM")
            except UnknownBase as error:
                base = error
            stages.append(_Stage(names[len(stages)], base, []))
        elif instruction.keyword in ("COPY", "RUN", "ADD") and stages:
            stages[-1].sources.extend(_from_flags(instruction))
            if instruction.keyword == "ADD" and not instruction.heredocs:
                stages[-1].remote.extend(w for w in instruction.operands[:-1] if _REMOTE.search(w))
    return stages


def _from_flags(instruction: Instruction) -> Iterable[str]:
    flags = instruction.flags
    if flags.get("from"):
        yield flags["from"]
    for word in instruction.words:
        if word.lower().startswith("--mount="):
            for option in word.split("=", 1)[1].split(","):
                key, _, value = option.partition("=")
                if key.lower() == "from" and value:
                    yield value


def _expand(word: str, defaults: Mapping[str, str | None], args: Mapping[str, str]) -> str:
    def value(name: str) -> str | None:
        if name in defaults:
            return args.get(name, defaults[name])
        if name in _PLATFORM_ARGS:
            raise UnknownBase(f"FROM uses ${name}, which buildx sets per platform")
        return None  # undeclared: empty, as Docker does

    def substitute(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bare")
        current = value(name)
        op, alternative = match.group("op"), match.group("word") or ""
        if op in (":-", "-") and (current is None or (op == ":-" and current == "")):
            return alternative
        if op in (":+", "+"):
            return alternative if current is not None and (op == "+" or current) else ""
        return current or ""

    expanded = _VARIABLE.sub(substitute, word)
    if "$" in expanded:
        raise UnknownBase(f"cannot resolve {word!r}")
    return expanded

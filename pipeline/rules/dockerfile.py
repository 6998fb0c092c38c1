"""Dockerfiles read as BuildKit reads them (moby/buildkit frontend/dockerfile/parser, v0.13):
the one reader of the project (pure).

- Parser directives only at the very top: the first line that is not one ends them.
- An instruction continues while its line ends with the escape character; comment lines and
  empty lines inside a continuation are dropped.
- Heredocs (several on one line, too) belong to RUN, COPY and ADD: the lines up to the
  terminator are their bodies, never instructions, whatever they start with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import dropwhile

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_HEREDOC = re.compile(r"^(\d*)<<(-?)(['\"]?)([^<'\"\s]+)\3$")
HEREDOC_INSTRUCTIONS = frozenset({"RUN", "COPY", "ADD"})


@dataclass(frozen=True)
class Heredoc:
    name: str
    body: str


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    args: str  # the rest of the logical line, continuations joined
    heredocs: tuple[Heredoc, ...] = ()

    @property
    def words(self) -> list[str]:
        return self.args.split()

    @property
    def flags(self) -> dict[str, str]:
        """`--name=value` flags before the arguments (`--name` alone: "")."""
        found: dict[str, str] = {}
        for word in self.words:
            if not word.startswith("--"):
                break
            name, _, value = word[2:].partition("=")
            found[name.lower()] = value
        return found

    @property
    def operands(self) -> list[str]:
        return list(dropwhile(lambda word: word.startswith("--"), self.words))


@dataclass(frozen=True)
class Dockerfile:
    directives: dict[str, str] = field(default_factory=dict)
    instructions: tuple[Instruction, ...] = ()


def parse(text: str) -> Dockerfile:
    lines = text.removeprefix("\ufeff").splitlines()
    directives: dict[str, str] = {}
    for index, line in enumerate(lines):  # noqa: B007 (the index after the loop is used)
        match = _DIRECTIVE.match(line)
        if not match or match.group(1).lower() in directives:
            break
        directives[match.group(1).lower()] = match.group(2)
    else:
        index = len(lines)
    escape = "`" if directives.get("escape") == "`" else "\\"
    found: list[Instruction] = []
    while index < len(lines):
        stripped = lines[index].strip()
        index += 1
        if not stripped or stripped.startswith("#"):
            continue
        parts = [stripped]
        while parts[-1].endswith(escape):
            parts[-1] = parts[-1][: -len(escape)]
            following = ""
            while index < len(lines) and (not following or following.startswith("#")):
                following = lines[index].strip()  # comments and empty lines are dropped
                index += 1
            if not following or following.startswith("#"):
                break  # the file ended inside a continuation
            parts.append(following)
        logical = " ".join(part.strip() for part in parts).strip()
        keyword, _, args = logical.partition(" ")
        keyword = keyword.upper()
        heredocs: list[Heredoc] = []
        if keyword in HEREDOC_INSTRUCTIONS:
            for word in args.split():
                heredoc = _HEREDOC.match(word)
                if heredoc is None:
                    continue
                strip_tabs, name = heredoc.group(2) == "-", heredoc.group(4)
                body: list[str] = []
                while index < len(lines):
                    raw = lines[index]
                    index += 1
                    candidate = raw.lstrip("\t") if strip_tabs else raw
                    if candidate == name:
                        break
                    body.append(candidate)
                heredocs.append(Heredoc(name, "\n".join(body)))
        found.append(Instruction(keyword, args.strip(), tuple(heredocs)))
    return Dockerfile(directives, tuple(found))


def stage_names(dockerfile: Dockerfile) -> list[str | None]:
    """Each stage's name (`FROM image AS name`, lower-cased), None for unnamed stages."""
    names: list[str | None] = []
    for instruction in dockerfile.instructions:
        if instruction.keyword == "FROM":
            words = instruction.operands
            named = len(words) >= 3 and words[1].lower() == "as"
            names.append(words[2].lower() if named else None)
    return names


def global_args(dockerfile: Dockerfile) -> dict[str, str | None]:
    """ARGs declared before the first FROM, with their defaults (None: no default)."""
    found: dict[str, str | None] = {}
    for instruction in dockerfile.instructions:
        if instruction.keyword == "FROM":
            break
        if instruction.keyword == "ARG":
            for word in instruction.words:
                name, equals, value = word.partition("=")
                found[name] = value.strip("\"'") if equals else None
    return found

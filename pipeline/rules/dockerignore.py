""".dockerignore semantics exactly as buildx 0.13 applies them when it sends a build context (pure).

Ported line by line from Go, because a fingerprint that disagrees with buildx about which files
are sent would skip a build that changes the image: moby/patternmatcher's `ignorefile.ReadAll`,
`Pattern.compile`/`match` (with the exact/prefix/suffix shortcuts and their quirks: `**foo` is a
plain suffix test, so it also matches `barfoo`) and `MatchesUsingParentResults`; and
tonistiigi/fsutil's FilterFS rule for which excluded directories are still walked. Every case in
tests/unit/test_dockerignore.py was checked against a real `docker buildx build`
(tests/integration/engine/test_dev_loop.py re-checks them live).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Literal

from pipeline.errors import ConfigError

_BOM = "\ufeff"
# Go's unicode.IsSpace, which strings.TrimSpace uses (Python's str.strip() also strips \x1c-\x1f).
_GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
# The regexp metacharacters filepath.Match does not use (patternmatcher's shouldEscape).
_ESCAPED = set(".+()|{}$")
# filepath.Match's syntax: `\` escapes any character; a class is `[`, an optional `^`, at least
# one lo or lo-hi range (a character or an escape, never a bare `-` or `]`), and `]`.
_MEMBER = r"(?:[^\\\]-]|\\.)"
_GLOB = re.compile(rf"(?:[^\\[]|\\.|\[\^?+(?:{_MEMBER}(?:-{_MEMBER})?)+\])*", re.DOTALL)
_Kind = Literal["exact", "prefix", "suffix", "regexp"]  # Go's shortcuts, or the regexp
_POSIX_CLASS = re.compile(r"\[:(.*?):\]", re.DOTALL)  # RE2's [:alpha:] inside a class
_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7f",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}


class DockerignoreError(ConfigError):
    """A pattern buildx refuses (it fails the build with the same complaint)."""


def ignore_file_candidates(dockerfile: PurePath, context: PurePath) -> tuple[PurePath, PurePath]:
    """Where buildx looks, in order; the first that exists is used whole (they never merge)."""
    return dockerfile.with_name(dockerfile.name + ".dockerignore"), context / ".dockerignore"


def read_patterns(text: str) -> list[str]:
    """`ignorefile.ReadAll`: a line whose first byte is `#` is a comment (an indented `#` is
    not); whitespace trimmed; `filepath.Clean`; one leading `/` dropped; `!` makes an exception."""
    patterns: list[str] = []
    for number, raw in enumerate(text.split("\n")):
        line = raw.removesuffix("\r")  # bufio.ScanLines drops one trailing CR
        if number == 0:
            line = line.removeprefix(_BOM)
        if line.startswith("#"):
            continue
        pattern = line.strip(_GO_SPACE)
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip(_GO_SPACE)
        if pattern:
            pattern = go_clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


def go_clean(path: str) -> str:
    """Go's `filepath.Clean` on a slash-separated path: posixpath.normpath, except that Go makes a
    leading `//` one `/`."""
    cleaned = posixpath.normpath(path)
    return cleaned[1:] if cleaned.startswith("//") else cleaned


@dataclass(frozen=True)
class Pattern:
    text: str  # cleaned, without the leading "!"
    exclusion: bool
    kind: _Kind
    regexp: re.Pattern[str] | None

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        assert self.regexp is not None
        return self.regexp.match(path) is not None


def compile_pattern(raw: str) -> Pattern | None:
    """patternmatcher.New for one pattern; None for a blank one (skipped, as in Go)."""
    text = raw.strip(_GO_SPACE)
    if not text:
        return None
    text = go_clean(text)
    exclusion = text.startswith("!")
    if exclusion:
        if len(text) == 1:
            raise DockerignoreError(
                'illegal exclusion pattern: "!"', "give the exception a path, e.g. !keep.txt"
            )
        text = text[1:]
    validate_glob(text)
    kind, regexp = _translate(text)
    return Pattern(text=text, exclusion=exclusion, kind=kind, regexp=regexp)


def _translate(text: str) -> tuple[_Kind, re.Pattern[str] | None]:
    """Pattern.compile: which shortcut Go takes, or the regexp (`*` and `?` stop at `/`, `**`
    crosses it; built as Go builds it, then read as RE2 reads it)."""
    out = ["^"]
    kind: _Kind = "exact"
    i, n, index = 0, len(text), 0
    while i < n:
        ch = text[i]
        i += 1
        if ch == "*" and i < n and text[i] == "*":
            i += 1
            if i < n and text[i] == "/":
                i += 1
            if i < n:
                out.append("(.*/)?")
                kind = "regexp"
            elif kind == "exact":
                kind = "prefix"
            else:
                out.append(".*")
                kind = "regexp"
            if index == 0:
                kind = "suffix"
        elif ch == "*":
            out.append("[^/]*")
            kind = "regexp"
        elif ch == "?":
            out.append("[^/]")
            kind = "regexp"
        elif ch in _ESCAPED:
            out.append("\\" + ch)
        elif ch == "\\":  # never the last character: validate_glob refuses that
            out.append("\\" + text[i])
            i += 1
            kind = "regexp"
        elif ch in "[]":
            out.append(ch)
            kind = "regexp"
        else:
            out.append(ch)
        index += 1
    if kind != "regexp":
        return kind, None
    # Go's regexp ends in $, which in RE2 is the end of the text: Python's \Z.
    return kind, _re2_to_python("".join(out), text)


def _re2_to_python(regex: str, pattern: str) -> re.Pattern[str]:
    """The regexp Go built, as Python's `re` with RE2's meaning (classes and escapes differ)."""
    out: list[str] = []
    i, n = 0, len(regex)
    while i < n:
        ch = regex[i]
        if ch == "\\":
            out.append(_re2_escape(regex[i + 1], pattern, in_class=False))
            i += 2
        elif ch == "[":
            klass, i = _re2_class(regex, i + 1, pattern)
            out.append(klass)
        else:
            out.append(ch)
            i += 1
    out.append(r"\Z")
    try:
        return re.compile("".join(out), re.ASCII)
    except re.error as error:
        raise DockerignoreError(
            f".dockerignore pattern {pattern!r} is not a valid expression ({error})",
            "fix the pattern; buildx refuses it too",
        ) from None


def _re2_escape(ch: str, pattern: str, *, in_class: bool) -> str:
    if not (ch.isascii() and ch.isalnum()):
        return re.escape(ch)
    if ch == "s":
        return r"\t\n\f\r " if in_class else r"[\t\n\f\r ]"  # RE2's \s has no \v
    if ch in "dDwWaftnrv" or (ch in "bBA" and not in_class):
        return "\\" + ch
    if ch == "z" and not in_class:
        return r"\Z"
    return _unsupported(pattern, f"the escape \\{ch}")


def _re2_class(regex: str, i: int, pattern: str) -> tuple[str, int]:
    """One RE2 character class (after its `[`) as a Python class, and the index after its `]`."""
    n = len(regex)
    out = ["["]
    if i < n and regex[i] == "^":
        out.append("^")
        i += 1
    first = True
    while True:
        if i >= n:
            raise DockerignoreError(
                f".dockerignore pattern {pattern!r} has an unclosed [", "close the class with ]"
            )
        if regex[i] == "]" and not first:
            return "".join(out) + "]", i + 1
        first = False
        if named := _POSIX_CLASS.match(regex, i):
            if named[1] not in _POSIX_CLASSES:
                _unsupported(pattern, f"the class {named[0]}")
            out.append(_POSIX_CLASSES[named[1]])
            i = named.end()
            continue
        low, i = _class_char(regex, i, pattern)
        if i + 1 < n and regex[i] == "-" and regex[i + 1] != "]":
            high, i = _class_char(regex, i + 1, pattern)
            if len(low) != 1 or len(high) != 1 or ord(high) < ord(low):
                _unsupported(pattern, f"the range {low}-{high}")
            out.append(f"{re.escape(low)}-{re.escape(high)}")
        else:
            out.append(re.escape(low) if len(low) == 1 else low)


def _class_char(regex: str, i: int, pattern: str) -> tuple[str, int]:
    """A class member: one literal character, or a translated escape (several characters)."""
    if regex[i] != "\\":
        return regex[i], i + 1
    escaped = regex[i + 1]
    if escaped.isascii() and escaped.isalnum():
        return _re2_escape(escaped, pattern, in_class=True), i + 2
    return escaped, i + 2


def _unsupported(pattern: str, what: str) -> str:
    raise DockerignoreError(
        f".dockerignore pattern {pattern!r} uses {what}, which the pipeline does not model",
        "write the pattern with plain characters, *, ?, ** and simple [a-z] classes",
    )


def validate_glob(pattern: str) -> None:
    """filepath.Match's syntax check (Go >= 1.16 validates the whole pattern)."""
    if not _GLOB.fullmatch(pattern):
        raise DockerignoreError(
            f"syntax error in .dockerignore pattern {pattern!r} (buildx refuses it too)",
            "fix the pattern: close every [ and do not end it with \\",
        )


@dataclass(frozen=True)
class Matcher:
    """patternmatcher.PatternMatcher plus fsutil's knowledge of when an excluded directory must
    still be walked (an exception below it may bring files back)."""

    patterns: tuple[Pattern, ...]

    @classmethod
    def from_patterns(cls, patterns: Iterable[str]) -> Matcher:
        compiled = (compile_pattern(p) for p in patterns)
        return cls(tuple(p for p in compiled if p is not None))

    def match(self, path: str, parent: Sequence[bool] | None) -> tuple[bool, tuple[bool, ...]]:
        """MatchesUsingParentResults (the last pattern that matches wins; a match on a directory
        covers everything under it): (excluded?, per-pattern results to hand to children).
        `parent` is None at the top level of the context."""
        matched = False
        results: list[bool] = []
        for index, pattern in enumerate(self.patterns):
            hit = bool(parent and parent[index])
            if not hit and pattern.exclusion == matched:
                hit = pattern.match(path)
                if not hit and parent is None:
                    hit = _parent_matches(pattern, path)
            results.append(hit)
            if hit:
                matched = not pattern.exclusion
        return matched, tuple(results)

    def descend_excluded(self, directory: str) -> bool:
        """Whether buildx walks into a directory that is itself excluded: always, unless every
        exception is a plain path; then only when one lies below it."""
        # fsutil's patternWithoutTrailingGlob of each exception
        exceptions = [
            p.text.removesuffix("/**").removesuffix("/*") for p in self.patterns if p.exclusion
        ]
        if any(c in e for e in exceptions for c in "*[]?^\\"):
            return True
        return any((e + "/").startswith(directory + "/") for e in exceptions)


def _parent_matches(pattern: Pattern, path: str) -> bool:
    parts = path.split("/")[:-1]
    return any(pattern.match("/".join(parts[: i + 1])) for i in range(len(parts)))

""".dockerignore semantics, pinned by a table of cases each checked against a real
`docker buildx build` (buildx 0.13.1): `COPY . /ctx` on scratch, exported with
`--output type=local`. tests/integration/engine/test_dev_loop.py re-runs the whole table live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.fastpath.context import ignore_rules, is_sent, walk
from pipeline.rules.dockerignore import (
    DockerignoreError,
    Matcher,
    go_clean,
    ignore_file_candidates,
    read_patterns,
)

FILES = (
    "a.txt", "b.py", "b.pyc", ".env", ".git/HEAD", ".git/objects/x", "build/out.o", "dir/a.txt",
    "dir/sub/a.txt", "dir/sub/keep.md", "dir/sub/deep/x.pyc", "docs/readme.md", "docs/.env",
    "barfoo", "foo/bar", "foobar.txt", "x^y", "sp ace.txt", "[x].txt",
)  # fmt: skip


def make_tree(root: Path) -> None:
    """The context every case is run on: files, an empty directory and a symlink."""
    for name in FILES:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
    (root / "empty").mkdir()
    os.symlink("a.txt", root / "link")


def _everything() -> set[str]:
    paths = {"empty", "link"}
    for name in FILES:
        parts = name.split("/")
        paths.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return paths


EVERYTHING: set[str] = _everything()
DIR = {"dir", "dir/a.txt", "dir/sub", "dir/sub/a.txt", "dir/sub/deep", "dir/sub/deep/x.pyc",
       "dir/sub/keep.md"}  # fmt: skip
DOT_GIT = {".git", ".git/HEAD", ".git/objects", ".git/objects/x"}
TOP_TXT = {"[x].txt", "a.txt", "foobar.txt", "sp ace.txt"}

# (case, ignore file text, paths buildx does NOT send): each observed with buildx 0.13.1.
CASES: list[tuple[str, str, set[str]]] = [
    ("none", "", set()),
    ("star-txt", "*.txt", TOP_TXT),
    ("deep-txt", "**/*.txt", TOP_TXT | {"dir/a.txt", "dir/sub/a.txt"}),
    ("dir", "dir", DIR),
    # the excluded dir and dir/sub are still sent, because a file inside them is
    ("dir-except-file", "dir\n!dir/sub/keep.md", DIR - {"dir", "dir/sub", "dir/sub/keep.md"}),
    ("dir-children-except-sub", "dir/*\n!dir/sub", {"dir/a.txt"}),
    ("all-but-docs", "*\n!docs", EVERYTHING - {"docs", "docs/.env", "docs/readme.md"}),
    ("doublestar", "**", EVERYTHING),
    (
        "doublestar-except-md",
        "**\n!**/*.md",
        EVERYTHING - {"dir", "dir/sub", "dir/sub/keep.md", "docs", "docs/readme.md"},
    ),
    ("leading-slash-dot", "/a.txt\n./b.py", {"a.txt", "b.py"}),
    ("suffix-quirk", "**foo", {"barfoo", "foo", "foo/bar"}),  # a plain suffix test in Go
    ("prefix-quirk", "foo**", {"foo", "foo/bar", "foobar.txt"}),
    ("dir-doublestar", "dir/**", DIR - {"dir"}),
    ("class", "*.py[co]", {"b.pyc"}),
    ("comments", "  # not a comment\n# comment\n  b.py  ", {"b.py"}),
    ("later-wins-exclude", "!a.txt\n*.txt", TOP_TXT),
    ("later-wins-include", "*.txt\n!a.txt", TOP_TXT - {"a.txt"}),
    ("nested-exception", "dir/sub\n!dir/sub/deep", {"dir/sub/a.txt", "dir/sub/keep.md"}),
    ("question", "?.txt", {"a.txt"}),
    ("dot-top", ".git\n.env", DOT_GIT | {".env"}),
    ("dot-any", "**/.env", {".env", "docs/.env"}),
    ("caret-exact", "x^y", {"x^y"}),
    ("caret-glob", "x^*", set()),  # in a regexp, ^ asserts the start: never matches
    ("bracket-class", "[x].txt", set()),
    ("escaped-brackets", "\\[x\\].txt", {"[x].txt"}),
    ("symlink", "link", {"link"}),
    ("empty-dir", "empty", {"empty"}),
    ("clean-dotdot", "dir/../a.txt", {"a.txt"}),
    ("space", "sp ace.txt", {"sp ace.txt"}),
    ("one-level", "*/a.txt", {"dir/a.txt"}),
    ("two-levels", "dir/*/a.txt", {"dir/sub/a.txt"}),
    ("glob-exception", "dir\n!dir/sub/*.md", DIR - {"dir", "dir/sub", "dir/sub/keep.md"}),
    ("deep-dir", "**/deep", {"dir/sub/deep", "dir/sub/deep/x.pyc"}),
    ("bom-crlf", "\ufeffa.txt\r\nb.py\r\n", {"a.txt", "b.py"}),
    ("everything", "*", EVERYTHING),
    ("hidden", ".*", DOT_GIT | {".env"}),
    ("trailing-slash", "dir/sub/", DIR - {"dir", "dir/a.txt"}),
    (
        "exception-in-globbed-dir",
        "dir/sub/*\n!dir/sub/keep.md",
        {"dir/sub/a.txt", "dir/sub/deep", "dir/sub/deep/x.pyc"},
    ),
    ("negated-class", "[^a].txt", set()),
    ("range-class", "[a-c].*", {"a.txt", "b.py", "b.pyc"}),
    ("exception-then-reexclude", "dir\n!dir/sub\ndir/sub/a.txt", {"dir/a.txt", "dir/sub/a.txt"}),
    ("posix-class", "[[:alpha:]].txt", {"a.txt"}),
    ("perl-escape", "x\\d", set()),
]

# Patterns buildx refuses (checked: it fails the build naming the pattern).
BAD_PATTERNS = ["[", "!", "a\\", "[]a]", "[z-a]"]


def sent_paths(context: Path, ignore_text: str) -> set[str]:
    return {path for path, _ in walk(context, Matcher.from_patterns(read_patterns(ignore_text)))}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("context")
    make_tree(root)
    return root


@pytest.mark.parametrize(("case", "text", "excluded"), CASES, ids=[c[0] for c in CASES])
def test_context_matches_buildx(tree: Path, case: str, text: str, excluded: set[str]) -> None:
    assert sent_paths(tree, text) == EVERYTHING - excluded


@pytest.mark.parametrize("pattern", BAD_PATTERNS)
def test_pattern_buildx_refuses_is_refused(pattern: str) -> None:
    with pytest.raises(DockerignoreError):
        Matcher.from_patterns(read_patterns(pattern))


@pytest.mark.parametrize(
    ("path", "cleaned"),
    [
        ("", "."),
        ("a//b/./c/", "a/b/c"),
        ("a/../..", ".."),
        ("../a/..", ".."),
        ("/..", "/"),
        ("//a", "/a"),
        ("!a/./b", "!a/b"),
        ("./", "."),
    ],
)
def test_go_clean(path: str, cleaned: str) -> None:
    assert go_clean(path) == cleaned


def test_read_patterns_keeps_order_and_exceptions() -> None:
    text = "\ufeff# comment\n a \n\n!/b/../c\n/\n  !  d/\n#x\n \t# kept\n"
    assert read_patterns(text) == ["a", "!c", "/", "!d", "# kept"]


def test_ignore_file_beside_dockerfile_wins_over_context_root(tmp_path: Path) -> None:
    context, other = tmp_path / "ctx", tmp_path / "df"
    make_tree(context)
    other.mkdir()
    (context / ".dockerignore").write_text("dir\n")
    dockerfile = other / "Dockerfile"
    assert ignore_rules(dockerfile, context).path == context / ".dockerignore"
    (other / "Dockerfile.dockerignore").write_text("docs\n")
    rules = ignore_rules(dockerfile, context)
    assert rules.path == other / "Dockerfile.dockerignore"
    sent = {p for p, _ in walk(context, rules.matcher)}
    assert "dir/a.txt" in sent and "docs" not in sent  # whole replacement, never merged


def test_candidates_order() -> None:
    dockerfile, context = Path("/r/sandbox/Dockerfile"), Path("/r")
    assert ignore_file_candidates(dockerfile, context) == (
        Path("/r/sandbox/Dockerfile.dockerignore"),
        Path("/r/.dockerignore"),
    )


def test_excluded_parents_are_sent_once_with_their_included_child(tree: Path) -> None:
    order = [p for p, _ in walk(tree, Matcher.from_patterns(["dir", "!dir/sub/keep.md"]))]
    assert order.count("dir") == order.count("dir/sub") == 1
    assert order.index("dir") < order.index("dir/sub") < order.index("dir/sub/keep.md")


@pytest.mark.parametrize(
    ("patterns", "relative", "sent"),
    [
        ([".pipeline"], ".pipeline/cache/x.json", False),
        (["*", "!.pipeline/cache"], ".pipeline/cache/x.json", True),
        ([], ".pipeline/cache/x.json", True),
        (["**/*.json"], ".pipeline/cache/x.json", False),
    ],
)
def test_is_sent(tmp_path: Path, patterns: list[str], relative: str, sent: bool) -> None:
    matcher = Matcher.from_patterns(patterns)
    assert is_sent(tmp_path / relative, tmp_path, matcher) is sent
    assert is_sent(Path("/elsewhere/x.json"), tmp_path, matcher) is False

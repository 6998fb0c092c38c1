"""The one Dockerfile reader (rules/dockerfile.py) follows BuildKit's grammar: directives only at
the top, continuations, and heredoc bodies that are never instructions."""

from __future__ import annotations

import pytest

from pipeline.rules.dockerfile import global_args, parse, stage_names
from pipeline.rules.fingerprint import UnknownBase, base_images


def keywords(text: str) -> list[str]:
    return [i.keyword for i in parse(text).instructions]


def test_a_heredoc_body_is_never_an_instruction() -> None:
    text = "FROM a AS one\nCOPY <<EOT /x\nFROM scratch\nRUN evil\nEOT\nFROM b\n"
    parsed = parse(text)
    assert keywords(text) == ["FROM", "COPY", "FROM"]
    assert parsed.instructions[1].heredocs[0].body == "FROM scratch\nRUN evil"
    assert stage_names(parsed) == ["one", None]


def test_heredoc_forms() -> None:
    text = (
        "FROM a\n"
        "RUN <<-EOF cat > /x\n\tFROM tabs\n\tEOF\n"
        "RUN <<'ONE' <<\"TWO\" sh\nfirst\nONE\nsecond\nTWO\n"
        "COPY 3<<X /y\nFROM x\nX\n"
    )
    parsed = parse(text)
    assert keywords(text) == ["FROM", "RUN", "RUN", "COPY"]
    assert [h.body for h in parsed.instructions[1].heredocs] == ["FROM tabs"]
    assert [h.name for h in parsed.instructions[2].heredocs] == ["ONE", "TWO"]
    assert [h.body for h in parsed.instructions[2].heredocs] == ["first", "second"]


def test_heredocs_belong_to_run_copy_and_add_only() -> None:
    assert keywords("FROM a\nLABEL x=<<EOF\nFROM b\n") == ["FROM", "LABEL", "FROM"]


def test_continuations_comments_and_directives() -> None:
    text = (
        "# syntax=docker/dockerfile:1\n# escape=`\nFROM `\n  # a comment inside\n\n  img:1 AS x\n"
    )
    parsed = parse(text)
    assert parsed.directives == {"syntax": "docker/dockerfile:1", "escape": "`"}
    assert parsed.instructions[0].operands == ["img:1", "AS", "x"]
    # a directive after anything else is a comment
    late = parse("FROM a\n# syntax=other\n")
    assert late.directives == {} and keywords("FROM a\n# syntax=other\n") == ["FROM"]
    assert parse("# a comment\n# escape=`\nFROM a\n").directives == {}


def test_global_args_and_flags() -> None:
    parsed = parse("ARG A=1 B\nARG C='x'\nFROM --platform=$X img AS s\nARG D=2\n")
    assert global_args(parsed) == {"A": "1", "B": None, "C": "x"}
    assert parsed.instructions[2].flags == {"platform": "$X"}


@pytest.mark.parametrize(
    ("dockerfile", "expected"),
    [
        # issue 18: a heredoc line starting with FROM is not the last stage
        ("ARG B=base:1\nFROM ${B}\nCOPY <<EOT /x\nFROM scratch\nEOT\n", ("base:1",)),
        # …and a SQL heredoc line like `FROM users` does not make the base unknown
        ("FROM base:2\nRUN <<SQL psql\nSELECT *\nFROM users;\nSQL\n", ("base:2",)),
        ("FROM base:3\nADD <<EOF /x\nFROM $NOTHING\nEOF\n", ("base:3",)),
    ],
)
def test_base_images_through_heredocs(dockerfile: str, expected: tuple[str, ...]) -> None:
    assert base_images(dockerfile, {}) == expected


@pytest.mark.parametrize(
    ("dockerfile", "why"),
    [
        ("# syntax=docker/dockerfile:1\nFROM a\n", "frontend"),
        ("# syntax=example.com/custom:1\nFROM a\n", "frontend"),
        ("FROM a\nADD https://example.com/x.tar /x\n", "https://example.com/x.tar"),
        ("FROM a\nADD --keep-git-dir git@github.com:o/r.git /src\n", "git@github.com"),
        ("FROM a\nADD https://github.com/o/r.git#main /src\n", "github.com/o/r.git"),
    ],
)
def test_inputs_outside_the_model_make_the_base_unknown(dockerfile: str, why: str) -> None:
    with pytest.raises(UnknownBase, match=why):
        base_images(dockerfile, {})


def test_a_remote_add_in_a_stage_the_build_never_reaches_is_ignored() -> None:
    text = "FROM a AS unused\nADD https://example.com/x /x\nFROM b\n"
    assert base_images(text, {}) == ("b",)

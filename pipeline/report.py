"""One result, several outputs: a JSON report file, `$GITHUB_OUTPUT` and the step summary. Each
session publishes one section (`build`, `snapshot`, ...); sections from several sessions in one
job share the report file, so a later step can read all of them.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.fastpath.files import json_object

if TYPE_CHECKING:  # the replay (fastpath/replay.py) publishes without loading pydantic
    from pipeline.settings.build import ReportSettings


def publish(
    section: str,
    values: Mapping[str, Any],
    settings: ReportSettings,
    summary: Sequence[tuple[str, str]] = (),
    picture: str = "",
) -> None:
    """`picture`: a Mermaid diagram for the step summary (GitHub draws it)."""
    if path := settings.report_path:
        merged = {**json_object(path), section: dict(values)}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(merged, indent=2, sort_keys=True, default=str) + "\n")
        tmp.replace(path)
    if settings.github_output:
        with settings.github_output.open("a") as handle:
            handle.write("\n".join(output_lines(values)) + "\n")
    if settings.github_step_summary and (summary or picture):
        _append_summary(settings.github_step_summary, section, summary, picture)


def output_lines(values: Mapping[str, Any]) -> list[str]:
    """`key=value` lines for `$GITHUB_OUTPUT`; lists become comma-separated, multi-line values
    use GitHub's heredoc form so they cannot inject other keys."""
    lines: list[str] = []
    for key, value in values.items():
        if isinstance(value, Mapping):
            continue
        text = _flat(value)
        if "\n" in text:
            marker = f"EOF_{secrets.token_hex(8)}"
            lines += [f"{key}<<{marker}", text, marker]
        else:
            lines.append(f"{key}={text}")
    return lines


def _flat(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ",".join(_flat(v) for v in value)
    return str(value)


def _append_summary(
    path: Path, section: str, rows: Sequence[tuple[str, str]], picture: str
) -> None:
    table = [f"### sandbox-pipeline: {section}", ""]
    if rows:
        # GitHub ends a cell at any `|`, even inside backticks, unless it is escaped.
        cells = [(key, value.replace("|", "\\|")) for key, value in rows]
        table += ["| | |", "|---|---|", *(f"| {key} | {value} |" for key, value in cells), ""]
    if picture:
        table += ["```mermaid", picture, "```", ""]
    with path.open("a") as handle:
        handle.write("\n".join(table) + "\n")

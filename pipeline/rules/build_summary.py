"""A picture of one build (pure): where the time went, which steps were cached, how big the image
and its largest layers are. It becomes the terminal's closing table, the report's `timeline` and
a Mermaid gantt chart in GitHub's step summary.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.rules.progress import ProgressStats, step_place

LARGEST_LAYERS = 3
SLOWEST_STEPS = 5
# Mermaid ends a task's name at `:` and a statement at `;` or a newline, and `#` starts its
# entity codes: colons and semicolons are written as entities, the rest as spaces.
_UNSAFE_IN_TASK = re.compile(r"[#`\n\r]")
_UNSAFE_IN_TITLE = re.compile(r"[#;\n\r]")
# The axis: ticks from this list (ms, Mermaid's words), the first that gives at most 10 of them.
_TICKS = [
    (100, "100millisecond"), (250, "250millisecond"), (500, "500millisecond"),
    (1_000, "1second"), (2_000, "2second"), (5_000, "5second"), (10_000, "10second"),
    (30_000, "30second"), (60_000, "1minute"), (120_000, "2minute"), (300_000, "5minute"),
    (600_000, "10minute"), (1_800_000, "30minute"),
]  # fmt: skip
# `docker history` shows a RUN as `RUN |2 A=1 B=2 /bin/sh -c CMD # buildkit`: the build args
# it saw, the shell, and the builder's mark.
_HISTORY_NOISE = [
    (re.compile(r" # buildkit$"), ""),
    (re.compile(r"^RUN \|\d+ (?:\S+=\S* )*"), "RUN "),
    (re.compile(r"^(?:RUN )?/bin/(?:ba)?sh (?:-o pipefail )?-c #\(nop\)\s*"), ""),
    (re.compile(r"^(?:RUN )?/bin/(?:ba)?sh (?:-o pipefail )?-c "), "RUN "),
]


@dataclass(frozen=True)
class Step:
    title: str
    start_s: float
    duration_s: float
    cached: bool
    failed: bool = False


@dataclass(frozen=True)
class Layer:
    size: int  # bytes
    created_by: str


def layer_name(created_by: str) -> str:
    """The instruction behind a layer, as the Dockerfile says it (not as `docker history` does)."""
    text = " ".join(created_by.split())
    for pattern, replacement in _HISTORY_NOISE:
        text = pattern.sub(replacement, text)
    return text


def steps(stats: ProgressStats, now_s: float) -> list[Step]:
    """The Dockerfile's steps and the export, in the order buildx started them."""
    return [
        Step(
            title=vertex.title,
            start_s=round(vertex.started_s, 3),
            duration_s=round(vertex.duration_s(now_s), 3),
            cached=vertex.state == "cached",
            failed=vertex.state == "error",
        )
        for vertex in stats.vertices.values()
        if vertex.is_step or vertex.title.startswith("exporting")
    ]


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def largest(layers: Sequence[Layer], count: int = LARGEST_LAYERS) -> list[Layer]:
    return sorted((layer for layer in layers if layer.size), key=lambda layer: -layer.size)[:count]


def short(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def table(found: Sequence[Step], size: int | None, layers: Sequence[Layer]) -> list[str]:
    built = sorted((s for s in found if not s.cached), key=lambda s: -s.duration_s)
    cached = [s for s in found if s.cached]
    lines = [f"{'step':<62} {'time':>8}"]
    lines += [f"{short(s.title):<62} {s.duration_s:>6.1f} s" for s in built[:SLOWEST_STEPS]]
    if len(built) > SLOWEST_STEPS:
        rest = sum(s.duration_s for s in built[SLOWEST_STEPS:])
        lines.append(f"{f'… {len(built) - SLOWEST_STEPS} more built':<62} {rest:>6.1f} s")
    if cached:
        lines.append(f"{f'{len(cached)} cached':<62} {'-':>8}")
    if size is not None:
        biggest = ", ".join(
            f"{human_size(layer.size)} {short(layer.created_by, 40)}" for layer in largest(layers)
        )
        lines.append(
            f"image {human_size(size)}" + (f" (largest layers: {biggest})" if biggest else "")
        )
    return lines


def gantt(found: Sequence[Step], title: str, started_ms: int) -> str:
    """A Mermaid gantt chart of the timeline: cached steps done, built ones active with their
    time, a failed one critical, the export on its own. Times are the clock's (ms since the
    epoch, from `started_ms`): Mermaid draws the axis in the viewer's time zone, which shifts
    times counted from 0 by the zone's offset."""
    end_ms = max((int((s.start_s + s.duration_s) * 1000) for s in found), default=1000)
    tick_ms, tick = next(((ms, t) for ms, t in _TICKS if end_ms / ms <= 10), _TICKS[-1])
    axis = "%H:%M:%S.%L" if tick_ms < 1000 else ("%H:%M:%S" if tick_ms < 60_000 else "%H:%M")
    lines = ["gantt", f"    title {_UNSAFE_IN_TITLE.sub(' ', title).strip()}", "    dateFormat x"]
    lines += [f"    axisFormat {axis}", f"    tickInterval {tick}"]
    exporting = [s for s in found if s.title.startswith("exporting")]
    cached = sorted((s for s in found if s.cached), key=lambda s: step_place(s.title) or ("", 0))
    sections = [
        ("cached", cached),
        ("built", [s for s in found if not s.cached and s not in exporting]),
        ("export", exporting),
    ]
    for section, picked in sections:
        if picked:
            lines.append(f"    section {section}")
        for index, step in enumerate(picked):
            tag = "crit" if step.failed else ("done" if step.cached else "active")
            start = started_ms + int(step.start_s * 1000)
            end = start + max(1, int(step.duration_s * 1000))
            name = short(step.title, 60) + ("" if step.cached else f" ({step.duration_s:.1f} s)")
            lines.append(
                f"    {_task_text(name) or 'step'} :{tag}, {section}{index}, {start}, {end}"
            )
    return "\n".join(lines)


def _task_text(text: str) -> str:
    text = " ".join(_UNSAFE_IN_TASK.sub(" ", text).split())
    return re.sub(r"[:;]", lambda found: f"#{ord(found.group())};", text)

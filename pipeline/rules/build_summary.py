"""A picture of one build (pure): where the time went, which steps were cached, how big the image
and its largest layers are. It becomes the terminal's closing table, the report's `timeline` and
a Mermaid gantt chart in GitHub's step summary.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.rules.progress import ProgressStats

LARGEST_LAYERS = 3
SLOWEST_STEPS = 5
_UNSAFE_IN_TASK = re.compile(r"[:;#`\n]")  # Mermaid reads these inside a task's name


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


def steps(stats: ProgressStats, now_s: float) -> list[Step]:
    """The Dockerfile's steps and the export, in the order buildx started them."""
    found = []
    for vertex in stats.vertices.values():
        if not vertex.is_step and not vertex.title.startswith("exporting"):
            continue
        found.append(
            Step(
                title=vertex.title,
                start_s=round(vertex.started_s, 3),
                duration_s=round(vertex.duration_s(now_s), 3),
                cached=vertex.state == "cached",
                failed=vertex.state == "error",
            )
        )
    return found


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


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


def gantt(found: Sequence[Step], title: str) -> str:
    """Cached steps done, built ones active, a failed one critical; times in milliseconds."""
    lines = ["gantt", f"    title {_task_text(title)}", "    dateFormat x", "    axisFormat %M:%S"]
    for section, wanted in (("cached", True), ("built", False)):
        picked = [s for s in found if s.cached is wanted]
        if not picked:
            continue
        lines.append(f"    section {section}")
        for index, step in enumerate(picked):
            tag = "crit" if step.failed else ("done" if step.cached else "active")
            start = int(step.start_s * 1000)
            end = start + max(1, int(step.duration_s * 1000))
            name = _task_text(short(step.title, 50)) or "step"
            lines.append(f"    {name} :{tag}, {section}{index}, {start}, {end}")
    return "\n".join(lines)


def _task_text(text: str) -> str:
    return _UNSAFE_IN_TASK.sub(" ", text).strip()

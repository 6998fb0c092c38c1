"""What a person sees while buildx builds: in a terminal, a live compact view of the steps (the
whole log kept in a file whose path is printed); elsewhere (CI, a pipe, `PIPELINE_PROGRESS=plain`)
buildx's plain log, line by line. Either way every line reaches the log file and the failure
classification (rules/failures.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

from pipeline import console
from pipeline.fastpath.files import keep_newest
from pipeline.rules.progress import ProgressStats

if TYPE_CHECKING:  # rich is imported only when a terminal shows the live view
    from rich.console import RenderableType

LOGS_KEPT = 20
SHOWN_RUNNING = 6  # running steps listed at once; finished ones fold into a count
SHOWN_FINISHED = 3


class BuildView:
    """Takes buildx's lines (`line`); shows them live or plain; keeps them all in `log`."""

    def __init__(self, log: IO[str], path: Path, live: bool, title: str) -> None:
        self.log, self.path, self.live, self.title = log, path, live, title
        self.stats = ProgressStats()  # fed by the build (docker/buildx.py), read by the view
        self.started = time.monotonic()

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def line(self, text: str) -> None:
        self.log.write(text + "\n")
        if not self.live:
            console.say(text)

    def render(self) -> RenderableType:
        from rich.table import Table
        from rich.text import Text

        now = self.elapsed_s
        # buildx's own first line ("building with … instance") is not a piece of work
        vertices = [v for v in self.stats.vertices.values() if v.id != 0]
        running = [v for v in vertices if v.state == "running"]
        finished = [v for v in vertices if v.state != "running"]
        cached = sum(1 for v in finished if v.state == "cached" and v.is_step)
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(width=1, no_wrap=True)
        grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        grid.add_column(justify="right", min_width=8, no_wrap=True)
        grid.add_row("", Text(f"{self.title}  {now:.1f} s", style="bold"), "")
        if len(finished) > SHOWN_FINISHED:
            folded = len(finished) - SHOWN_FINISHED
            grid.add_row("", Text(f"{folded} more finished ({cached} steps cached)", "dim"), "")
        for vertex in [*finished[-SHOWN_FINISHED:], *running[:SHOWN_RUNNING]]:
            mark, style = _MARKS.get(vertex.state, ("?", ""))
            when = "cached" if vertex.state == "cached" else f"{vertex.duration_s(now):.1f} s"
            grid.add_row(Text(mark, style), Text(vertex.title), Text(when, style="dim"))
        if len(running) > SHOWN_RUNNING:
            grid.add_row("", Text(f"{len(running) - SHOWN_RUNNING} more running", "dim"), "")
        return grid


_MARKS = {
    "running": ("…", "yellow"),
    "cached": ("=", "cyan"),
    "done": ("✓", "green"),
    "error": ("✗", "red"),
    "canceled": ("-", "dim"),
}


@contextmanager
def build_view(cache_dir: Path, live: bool, title: str) -> Iterator[BuildView]:
    """The view for one build: its log file opened (and its path said) first."""
    folder = cache_dir / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path = folder / f"build-{stamp}-{os.getpid()}.log"
    keep_newest(folder.glob("build-*.log"), LOGS_KEPT - 1)  # and the one opened now
    console.step(f"build log: {path}")
    with path.open("w", encoding="utf-8", errors="replace") as log:
        view = BuildView(log, path, live, title)
        if not live:
            yield view
            return
        from rich.console import Console
        from rich.live import Live

        screen = Console(stderr=True)
        with Live(get_renderable=view.render, console=screen, refresh_per_second=8, transient=True):
            yield view

"""Reads buildx's plain progress: which steps ran or were cached, and how the cache behaved.

buildx 0.13 has no machine-readable progress (`rawjson` came later), so the plain format is the
contract: `#N [stage k/n] INSTRUCTION` opens a step, `#N CACHED` marks a cache hit,
`#N ERROR: ...` ends a vertex with an error, `#N naming to REF` and `#N pushing layers` are the
exporter's, and a line `ERROR: ...` without `#N` is buildx's own verdict at the end.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field

_VERTEX = re.compile(r"^#(?P<id>\d+) (?P<rest>.*)$")
# "[2/3] RUN …" or, in multi-stage builds, "[stage-1  2/12] RUN …" (buildx pads the number).
# FROM is resolved, never "CACHED", so it is not a step that could be cached.
_STEP = re.compile(r"^\[(?P<stage>[\w.-]+ +)?(?P<k>\d+)/\d+\] (?!FROM )")
_NAMING = re.compile(r"^naming to (?P<ref>\S+)")
_DONE = re.compile(r"^DONE (?P<seconds>[\d.]+)s$")
TAIL_LINES = 25
MAX_FINAL_ERRORS = 5


def step_place(title: str) -> tuple[str, int] | None:
    """Where a Dockerfile step sits in its build: the stage and k of "[stage k/n]"; None for
    buildx's own work."""
    place = _STEP.match(title)
    return None if place is None else ((place["stage"] or "").strip(), int(place["k"]))


@dataclass
class Vertex:
    """A step, or buildx's own work, timed from the build's start."""

    id: int
    title: str
    started_s: float
    ended_s: float | None = None
    state: str = "running"  # running | cached | done | error | canceled
    reported_s: float | None = None  # what BuildKit says it took (`#N DONE 1.2s`)

    @property
    def is_step(self) -> bool:
        return _STEP.match(self.title) is not None

    def duration_s(self, now_s: float) -> float:
        if self.reported_s is not None:
            return self.reported_s
        return (self.ended_s if self.ended_s is not None else now_s) - self.started_s


@dataclass
class ProgressStats:
    cache_import: str = "off"  # off | hit | empty (no cache yet) | failed: <reason>
    cache_export: str = "off"  # off | ok | failed: <reason>
    first_error: str | None = None
    failed_vertex: str | None = None  # title of the first vertex (not a cache one) that failed
    final_errors: list[str] = field(default_factory=list)  # buildx's own `ERROR:` lines
    named: list[str] = field(default_factory=list)  # references the exporter (re)tagged
    pushing: bool = False  # the exporter started pushing to a registry
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    vertices: dict[int, Vertex] = field(default_factory=dict)  # in the order buildx showed them
    _places: set[tuple[str, int]] = field(default_factory=set)  # (stage, k) of our steps
    _foreign: set[int] = field(default_factory=set)  # vertices another build named

    @property
    def steps(self) -> dict[int, str]:  # the Dockerfile's, not buildx's own work
        return {v.id: v.title for v in self.vertices.values() if v.is_step}

    @property
    def steps_total(self) -> int:
        return len(self.steps)

    @property
    def steps_cached(self) -> int:
        return sum(v.is_step and v.state == "cached" for v in self.vertices.values())

    def feed(self, line: str, at_s: float = 0.0) -> None:
        """`at_s`: seconds after the build started."""
        line = line.rstrip("\n")
        if line.strip():
            self.tail.append(line)
        match = _VERTEX.match(line)
        if not match:
            if line.startswith("ERROR:"):
                reason = line.removeprefix("ERROR:").strip()
                if len(self.final_errors) < MAX_FINAL_ERRORS:
                    self.final_errors.append(reason)
                if self.first_error is None:
                    self.first_error = reason
            return
        vertex, rest = int(match["id"]), match["rest"]
        # BuildKit shares a vertex between concurrent builds on one engine that have the same step
        # (two checkouts, parallel tests) and shows it in each build's stream, under the other
        # build's name too ("[1/2] COPY x" beside our "[1/3] COPY x"): one build has one step per
        # place, so a second vertex there is another build's.
        if vertex in self._foreign:
            return
        if vertex not in self.vertices and (key := step_place(rest)) is not None:
            if key in self._places:
                self._foreign.add(vertex)
                return
            self._places.add(key)
        self._time(vertex, rest, at_s)
        if rest.startswith("importing cache manifest from "):
            if self.cache_import == "off":
                self.cache_import = "hit"
        elif rest == "exporting cache to registry":
            self.cache_export = "ok"
        elif rest.startswith("pushing "):
            self.pushing = True
        elif naming := _NAMING.match(rest):
            if naming["ref"] not in self.named:
                self.named.append(naming["ref"])
        elif rest.startswith("ERROR: "):
            self._error(vertex, rest.removeprefix("ERROR: ").strip())

    def _time(self, vertex: int, rest: str, at_s: float) -> None:
        timed = self.vertices.setdefault(vertex, Vertex(vertex, rest, at_s))
        ended = {"CACHED": "cached", "CANCELED": "canceled"}.get(rest)
        if done := _DONE.match(rest):
            ended, timed.reported_s = "done", float(done["seconds"])
        elif rest.startswith("ERROR"):
            ended = "error"
        if ended is not None:
            timed.state, timed.ended_s = ended, at_s

    def _error(self, vertex: int, reason: str) -> None:
        failed = self.vertices[vertex]
        if failed.title.startswith("importing cache manifest from "):
            # A first build has no cache to import yet: that is expected, not a warning.
            self.cache_import = "empty" if reason.endswith("not found") else f"failed: {reason}"
        elif failed.title == "exporting cache to registry":
            self.cache_export = f"failed: {reason}"
        else:
            if self.failed_vertex is None:
                self.failed_vertex = failed.title
            if self.first_error is None:
                self.first_error = f"{failed.title}: {reason}" if failed.is_step else reason

    @property
    def failed_in_step(self) -> bool:
        return self.failed_vertex is not None and _STEP.match(self.failed_vertex) is not None

"""The picture of a build (rules/build_summary.py): the timeline read from buildx's progress, the
closing table, and the Mermaid gantt chart of the step summary, checked by Mermaid's own parser
(the npm package, run with node: tests/helpers/mermaid/)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest

from pipeline.base_image import rootfs
from pipeline.errors import PipelineError
from pipeline.report import publish
from pipeline.rules.build_summary import Layer, gantt, human_size, steps, table
from pipeline.rules.progress import ProgressStats
from pipeline.settings.build import ReportSettings
from tests.conftest import _unavailable

HERE = Path(__file__).resolve().parents[1] / "helpers" / "mermaid"
PROGRESS = [
    (0.0, '#0 building with "default" instance using docker driver'),
    (0.1, "#1 [internal] load build definition from Dockerfile"),
    (0.2, "#1 DONE 0.0s"),
    (0.3, "#5 [stage-1 2/4] RUN apt-get install -y curl"),
    (0.3, "#5 CACHED"),
    (0.4, "#6 [stage-1 3/4] RUN npm install --global 'x@1': with; odd # characters"),
    (9.4, "#6 DONE 9.0s"),
    (9.5, "#7 [stage-1 4/4] COPY . ."),
    (9.9, "#7 ERROR: failed to compute cache key"),
    (10.0, "#8 exporting to image"),
    (10.5, "#8 DONE 0.5s"),
]


def fed() -> ProgressStats:
    stats = ProgressStats()
    for at, line in PROGRESS:
        stats.feed(line, at)
    return stats


def test_the_timeline_has_the_steps_and_the_export_timed_by_buildx() -> None:
    found = steps(fed(), now_s=11.0)
    assert [s.title.split("]")[0] for s in found] == [
        "[stage-1 2/4",
        "[stage-1 3/4",
        "[stage-1 4/4",
        "exporting to image",
    ]
    apt, npm, copy, export = found
    assert apt.cached and apt.duration_s == 0.0
    assert not npm.cached and npm.start_s == 0.4 and npm.duration_s == 9.0  # buildx's own
    assert copy.failed and copy.duration_s == pytest.approx(0.4)
    assert export.duration_s == 0.5


def test_the_closing_table_names_slow_steps_cached_ones_and_the_biggest_layers() -> None:
    layers = [Layer(900_000_000, "RUN npm install"), Layer(0, "ENV X=1"), Layer(5_000, "COPY")]
    lines = table(steps(fed(), 11.0), 900_005_000, layers)
    assert "npm install" in lines[1] and lines[1].endswith("9.0 s")  # the slowest first
    assert any(line.startswith("1 cached") for line in lines)
    assert lines[-1].startswith("image 900.0 MB") and "900.0 MB RUN npm install" in lines[-1]
    assert human_size(999) == "999 B" and human_size(1_500_000_000) == "1.5 GB"


CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sandbox-pipeline-tests"


def node_and_npm() -> tuple[str, list[str]]:
    """node and npm: the machine's, else the npm registry's own builds (integrity-checked, as
    the offline base image takes them), kept in the tests' cache: no system package needed."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node and npm:
        return node, [npm]
    plan = rootfs.plan_here()
    staging = CACHE / f"node-{plan.node.version}"
    if not (staging / "usr" / "local" / "bin" / "node").exists():
        shutil.rmtree(staging, ignore_errors=True)
        try:
            with httpx.Client(timeout=120, verify=ssl.create_default_context()) as client:
                rootfs.stage_node(plan, staging, client, CACHE / "npm-tarballs")
        except PipelineError as error:
            _unavailable(f"no node/npm, and none from the npm registry: {error}")
    local = staging / "usr" / "local"
    node = str(local / "bin" / "node")
    return node, [node, str(local / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js")]


@pytest.fixture(scope="session")
def mermaid() -> tuple[str, Path]:
    """node, and Mermaid's parser installed once per lock file into the tests' cache (never
    into the checkout)."""
    node, npm = node_and_npm()
    lock = (HERE / "package-lock.json").read_bytes()
    place = CACHE / f"mermaid-{hashlib.sha256(lock).hexdigest()[:12]}"
    if not (place / "node_modules" / "mermaid").is_dir():
        place.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(HERE / name, place / name)
        done = subprocess.run(
            [*npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=place,
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "PATH": f"{Path(node).parent}{os.pathsep}{os.environ['PATH']}"},
        )
        assert done.returncode == 0, done.stderr[-2000:]
    shutil.copy(HERE / "parse.mjs", place / "parse.mjs")
    return node, place


def parse(mermaid: tuple[str, Path], text: str) -> dict[str, object]:
    node, place = mermaid
    script = str(place / "parse.mjs")
    done = subprocess.run([node, script], input=text, capture_output=True, text=True, timeout=120)
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_the_gantt_chart_is_a_diagram_mermaid_reads(mermaid: tuple[str, Path]) -> None:
    chart = gantt(steps(fed(), 11.0), "ghcr.io/iterate/sandbox:sha-x: 10.5 s, 1/3 steps cached")
    assert parse(mermaid, chart) == {"ok": True, "type": "gantt"}, chart
    # the check can fail: a task line Mermaid cannot read is refused
    assert parse(mermaid, chart + "\n    a task without its data\n")["ok"] is False


def test_the_step_summary_holds_the_picture(tmp_path: Path, mermaid: tuple[str, Path]) -> None:
    summary = tmp_path / "summary.md"
    settings = ReportSettings.model_construct(
        report_path=None, github_output=None, github_step_summary=summary, github_actions=True
    )
    chart = gantt(steps(fed(), 11.0), "a build")
    publish("build", {"image": "x"}, settings, summary=[("tags", "`x`")], picture=chart)
    text = summary.read_text()
    assert "| tags | `x` |" in text
    block = text.split("```mermaid\n", 1)[1].split("\n```", 1)[0]
    assert parse(mermaid, block)["ok"] is True

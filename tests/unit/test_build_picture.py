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
from pipeline.rules.build_summary import Layer, Step, gantt, human_size, layer_name, steps, table
from pipeline.rules.progress import ProgressStats
from pipeline.settings.build import BuildSettings, ReportSettings
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


def npm_env(node: str) -> dict[str, str]:
    """npm's environment: its node first on PATH and, unless the caller chose otherwise, the CA
    bundle the build's npm step trusts (SSL_CERT_FILE, else the system's). node trusts only its
    own CA list: behind a TLS-inspecting proxy `npm ci` fails with "self-signed certificate in
    certificate chain" where the README's answer (the proxy's CA in the system) works for the
    build."""
    env = {**os.environ, "PATH": f"{Path(node).parent}{os.pathsep}{os.environ['PATH']}"}
    bundle = BuildSettings().ca_bundle
    if bundle is not None:
        env.setdefault("NODE_EXTRA_CA_CERTS", str(bundle))
    return env


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
            env=npm_env(node),
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
    chart = gantt(
        steps(fed(), 11.0), "ghcr.io/iterate/sandbox:sha-x — 10.5 s, 1/3 steps cached", STARTED
    )
    assert parse(mermaid, chart) == {"ok": True, "type": "gantt"}, chart
    # the title keeps its colon; a task's colon and semicolon are entities, its `#` a space
    assert "    title ghcr.io/iterate/sandbox:sha-x — 10.5 s, 1/3 steps cached" in chart
    assert "RUN npm install --global 'x@1'#58; with#59; odd c… (9.0 s) :active," in chart
    # the check can fail: a task line Mermaid cannot read is refused
    assert parse(mermaid, chart + "\n    a task without its data\n")["ok"] is False


def test_the_step_summary_holds_the_picture(tmp_path: Path, mermaid: tuple[str, Path]) -> None:
    summary = tmp_path / "summary.md"
    settings = ReportSettings.model_construct(
        report_path=None, github_output=None, github_step_summary=summary, github_actions=True
    )
    chart = gantt(steps(fed(), 11.0), "a build", STARTED)
    rows = [("tags", "`x`"), ("image size", "1 GB (largest: `RUN a | b`)")]
    publish("build", {"image": "x"}, settings, summary=rows, picture=chart)
    text = summary.read_text()
    assert "| tags | `x` |" in text
    assert "| image size | 1 GB (largest: `RUN a \\| b`) |" in text  # GitHub ends a cell at `|`
    block = text.split("```mermaid\n", 1)[1].split("\n```", 1)[0]
    assert parse(mermaid, block)["ok"] is True


STARTED = 1_796_620_907_054  # the build's start on the clock, in ms since the epoch


def chart_of(length_s: float) -> list[str]:
    built = Step("[stage-1 2/2] RUN make", 0.0, length_s, cached=False)
    return gantt([built], "t", STARTED).splitlines()


def test_the_axis_is_the_clock_with_ticks_that_suit_the_builds_length() -> None:
    # Clock times, not times from 0: Mermaid draws the axis in the viewer's zone, and 0 shifted
    # by +05:30 or +05:45 reads as a wrong minute.
    assert "    RUN make" not in chart_of(2.9)
    task = next(line for line in chart_of(2.9) if "RUN make" in line)
    assert task.endswith(f", {STARTED}, {STARTED + 2900}")
    assert {"    axisFormat %H:%M:%S.%L", "    tickInterval 500millisecond"} <= set(chart_of(2.9))
    assert {"    axisFormat %H:%M:%S", "    tickInterval 10second"} <= set(chart_of(95))
    assert {"    axisFormat %H:%M", "    tickInterval 2minute"} <= set(chart_of(1100))


def test_cached_steps_read_in_dockerfile_order_and_the_export_stands_apart() -> None:
    found = [
        Step("[stage-2 9/12] COPY b /b", 0.1, 0.0, cached=True),
        Step("[stage-2 2/12] RUN apt-get update", 0.1, 0.0, cached=True),
        Step("[stage-2 11/12] COPY . .", 0.2, 0.2, cached=False),
        Step("exporting to image", 0.5, 1.1, cached=False),
    ]
    lines = gantt(found, "t", STARTED).splitlines()
    names = [line.split(" :")[0].strip() for line in lines if " :" in line]
    assert names == [
        "[stage-2 2/12] RUN apt-get update",
        "[stage-2 9/12] COPY b /b",
        "[stage-2 11/12] COPY . . (0.2 s)",
        "exporting to image (1.1 s)",
    ]
    sections = [line.strip() for line in lines if line.strip().startswith("section")]
    assert sections == ["section cached", "section built", "section export"]


def test_layers_are_named_as_the_dockerfile_says_them() -> None:
    bash = (
        "RUN |1 DEBIAN_FRONTEND=noninteractive /bin/bash -o pipefail -c apt-get update # buildkit"
    )
    assert layer_name(bash) == "RUN apt-get update"
    assert layer_name("RUN /bin/sh -c npm ci # buildkit") == "RUN npm ci"
    assert layer_name("COPY . . # buildkit") == "COPY . ."
    assert layer_name('/bin/sh -c #(nop)  CMD ["node"]') == 'CMD ["node"]'
    assert layer_name("/bin/sh -c apt-get update") == "RUN apt-get update"
    assert layer_name("") == ""

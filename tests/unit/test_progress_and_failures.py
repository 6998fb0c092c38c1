"""Reading buildx's plain progress (from captured real runs) and classifying failures."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.errors import BuildError, DeadlineExceeded, EngineError, RegistryError
from pipeline.rules.build_plan import BuildPlan
from pipeline.rules.failures import classify_failure
from pipeline.rules.git_facts import GitFacts
from pipeline.rules.progress import TAIL_LINES, ProgressStats
from pipeline.settings.build import BuildSettings
from tests.helpers.plans import make_plan

DATA = Path(__file__).resolve().parents[1] / "data"


def feed(text: str) -> ProgressStats:
    stats = ProgressStats()
    for line in text.splitlines(keepends=True):
        stats.feed(line)
    return stats


def test_all_cached_with_missing_cache_and_failed_export() -> None:
    # Real output: cache-from a ref that does not exist yet, cache-to an unreachable registry.
    stats = feed((DATA / "buildx-cached-export-failed.txt").read_text())
    assert (stats.steps_total, stats.steps_cached) == (3, 3)
    assert stats.cache_import == "empty"  # "not found" on import is a first build, not a failure
    assert stats.cache_export.startswith("failed: error writing layer blob")
    assert stats.first_error is None


def test_partial_cache() -> None:
    # Real output: the last RUN step ran again, the first two came from the cache.
    stats = feed((DATA / "buildx-partial-cache.txt").read_text())
    assert stats.steps_total == 3
    assert stats.steps_cached == 2
    assert stats.cache_export == "off" and stats.cache_import == "off"


def test_a_step_another_build_shares_is_counted_once() -> None:
    # Seen with two builds at once on one engine: BuildKit shows the vertex both share under the
    # other build's name too. Ours has three steps, all cached; "[1/2]" is the other build's.
    stats = feed(
        "#5 [1/2] COPY sandbox/busybox /bin/busybox\n"
        "#5 CACHED\n"
        "#6 [1/3] COPY sandbox/busybox /bin/busybox\n"
        "#6 CACHED\n"
        "#7 [2/3] RUN /bin/busybox --install -s /bin\n"
        "#7 CACHED\n"
        "#8 [3/3] RUN echo 1 > /nonce\n"
        "#8 CACHED\n"
        "#9 [stage-1  2/3] RUN true\n"
        "#9 DONE 0.1s\n"
    )
    assert (stats.steps_total, stats.steps_cached) == (4, 3)
    assert [v.id for v in stats.vertices.values()] == [5, 7, 8, 9]  # the picture's steps too


def test_step_error_names_the_step() -> None:
    stats = feed(
        '#5 [2/3] RUN make\n#5 0.2 boom\n#5 ERROR: process "make" did not complete '
        "successfully: exit code: 2\n"
    )
    assert stats.first_error == (
        '[2/3] RUN make: process "make" did not complete successfully: exit code: 2'
    )


def test_cache_import_hit_and_other_import_failure() -> None:
    assert (
        feed("#3 importing cache manifest from r:buildcache\n#3 DONE 0.1s\n").cache_import == "hit"
    )
    failed = feed(
        "#3 importing cache manifest from r:buildcache\n#3 ERROR: unexpected status 500\n"
    )
    assert failed.cache_import == "failed: unexpected status 500"


def test_tail_is_bounded() -> None:
    stats = feed("".join(f"line {i}\n" for i in range(200)))
    assert len(stats.tail) == TAIL_LINES and stats.tail[-1] == "line 199"


def _plan(monkeypatch: pytest.MonkeyPatch, mode: str = "local") -> BuildPlan:
    monkeypatch.delenv("PUSH", raising=False)
    facts = GitFacts(
        sha="a" * 40,
        dirty=False,
        branch=None,
        work_tree=Path("/r"),
        git_dir=Path("/r/.git"),
        common_dir=Path("/r/.git"),
        commit_time=datetime.now(UTC),
        source_url=None,
    )
    return make_plan(mode, BuildSettings(), facts)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "stderr", "progress", "probe", "kind", "words"),
    [
        (
            1,
            "ERROR: Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon "
            "running?",
            "",
            True,
            EngineError,
            "at unix:///x.sock",
        ),
        (1, "docker: unknown command: docker buildx", "", True, EngineError, "buildx is not"),
        (125, "unknown flag: --progress", "", False, EngineError, "buildx is not installed"),
        (1, 'ERROR: no builder "cloud" found', "", True, EngineError, "BUILDX_BUILDER"),
        (1, "", "#5 [1/2] RUN false\n#5 ERROR: exit code: 1\n", True, BuildError, "RUN false"),
    ],
)
def test_classify_failure(
    monkeypatch: pytest.MonkeyPatch,
    code: int,
    stderr: str,
    progress: str,
    probe: bool,
    kind: type[Exception],
    words: str,
) -> None:
    error = classify_failure(code, stderr, feed(progress), _plan(monkeypatch), lambda: probe)
    assert isinstance(error, kind)
    assert words in str(error)
    assert "\n" not in str(error) and "fix:" in str(error)


@pytest.mark.parametrize(
    ("progress", "words"),
    [("#5 [1/2] RUN sleep 1000\n", "timeout"), ("", "SANDBOX_BUILD_TIMEOUT")],
)
def test_timeout_is_deadline_exceeded(
    monkeypatch: pytest.MonkeyPatch, progress: str, words: str
) -> None:
    # The adapter enforces the timeout itself and says so; the exit code is whatever the
    # stopped process group left (-2 after SIGINT).
    error = classify_failure(-2, "", feed(progress), _plan(monkeypatch), timed_out=True)
    assert isinstance(error, DeadlineExceeded)
    assert words in str(error)
    assert "\n" not in str(error) and "fix:" in str(error)


def test_push_auth_failure_is_registry_error(monkeypatch: pytest.MonkeyPatch) -> None:
    progress = "#9 pushing layers\n#9 ERROR: failed to push: 401 Unauthorized\n"
    error = classify_failure(1, "", feed(progress), _plan(monkeypatch, "push"), lambda: True)
    assert isinstance(error, RegistryError) and "REGISTRY_USERNAME" in str(error)


def test_probe_not_asked_once_buildx_printed_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    def probe() -> bool:
        raise AssertionError("buildx was running: no need to probe")

    error = classify_failure(1, "", feed("#1 [internal] load\n"), _plan(monkeypatch), probe)
    assert isinstance(error, BuildError)


def test_multistage_steps_with_padded_numbers_and_no_from() -> None:
    # Real output of the sandbox image (a git-meta stage, then stage-1 with 12 instructions).
    stats = feed((DATA / "buildx-multistage.txt").read_text())
    assert "[stage-1 10/12] WORKDIR /home/iterate/src/github.com/iterate/iterate" in (
        stats.steps.values()
    )
    assert not any(" FROM " in name for name in stats.steps.values())
    assert stats.steps_total == 5

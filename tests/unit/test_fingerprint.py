"""A build's fingerprint changes with every input that changes the image, and only with those.

A wrong skip is a defect, so each kind of input is changed on its own and the fingerprint must
move; an excluded file and a touched-but-unchanged file must not move it. The engine is stood in
for by a table of image ids here (tests/integration/engine/test_dev_loop.py asks a real one).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.docker.images import Image
from pipeline.fastpath import context as context_files
from pipeline.fastpath.context import digest_context, ignore_rules
from pipeline.rules.build_plan import BuildPlan
from pipeline.rules.fingerprint import LABEL, UnknownBase, base_images
from pipeline.rules.git_facts import GitFacts
from pipeline.settings.build import BuildSettings
from tests.helpers.git import git as _git
from tests.helpers.plans import Fingerprint, fingerprint_build, make_plan
from tests.helpers.settings_env import use_repo_settings

SHA = "0123456789abcdef0123456789abcdef01234567"
BASE = "sandbox-base/node24-bookworm:local"
DOCKERFILE = "ARG BASE_IMAGE=node:24-bookworm\nFROM scratch AS git-meta\nFROM ${BASE_IMAGE}\n"
IGNORE = ".git\nexcluded.txt\nexcluded-dir\n"


class Engine:
    """Images by reference, as the engine would report them."""

    def __init__(self) -> None:
        self.images = {BASE: Image("sha256:" + "1" * 64, {})}

    def inspect(self, refs: Sequence[str]) -> dict[str, Image | None]:
        return {ref: self.images.get(ref) for ref in refs}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "sandbox").mkdir(parents=True)
    (root / "sandbox" / "Dockerfile").write_text(DOCKERFILE)
    (root / "sandbox" / "Dockerfile.dockerignore").write_text(IGNORE)
    (root / ".gitignore").write_text("ignored.txt\n")
    (root / "tracked.txt").write_text("tracked\n")
    (root / "ignored.txt").write_text("git ignores me, the build context does not\n")
    (root / "excluded.txt").write_text("the .dockerignore drops me\n")
    (root / "excluded-dir").mkdir()
    (root / "script.sh").write_text("#!/bin/sh\n")
    os.symlink("tracked.txt", root / "link")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "x")
    return root


@pytest.fixture
def plan(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> BuildPlan:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    use_repo_settings(monkeypatch, repo, SANDBOX_BASE_IMAGE=BASE, SANDBOX_BUILD_CA_BUNDLE=str(ca))
    facts = GitFacts(
        sha=SHA,
        dirty=False,
        branch="main",
        work_tree=repo,
        git_dir=repo / ".git",
        common_dir=repo / ".git",
        commit_time=datetime(2026, 11, 23, tzinfo=UTC),
        source_url="https://github.com/iterate/iterate",
    )
    return make_plan("local", BuildSettings(), facts, git_context=True)


@pytest.fixture
def measure(tmp_path: Path) -> Callable[..., Fingerprint]:
    engine = Engine()

    def run(plan: BuildPlan, engine: Engine = engine) -> Fingerprint:
        return fingerprint_build(
            plan,
            cache_dirs=[tmp_path / "cache"],
            env={},
            builder_driver="docker",
            inspect=engine.inspect,
        )

    return run


def test_fingerprint_is_stable(plan: BuildPlan, measure: Callable[..., Fingerprint]) -> None:
    first, second = measure(plan), measure(plan)
    assert first.value is not None and first.value == second.value
    assert len(first.value) == 64


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda r: (r / "tracked.txt").write_text("edited\n"), id="tracked-file"),
        pytest.param(lambda r: (r / "new.txt").write_text("new\n"), id="untracked-file"),
        pytest.param(lambda r: (r / "ignored.txt").write_text("x\n"), id="git-ignored-file"),
        pytest.param(lambda r: (r / "tracked.txt").unlink(), id="deleted-file"),
        pytest.param(lambda r: (r / "empty-dir").mkdir(), id="new-empty-dir"),
        pytest.param(lambda r: (r / "script.sh").chmod(0o755), id="executable-bit"),
        pytest.param(lambda r: _retarget(r / "link", "script.sh"), id="symlink-target"),
        pytest.param(lambda r: (r / "tracked.txt").rename(r / "renamed.txt"), id="renamed-file"),
        pytest.param(
            lambda r: (r / "sandbox" / "Dockerfile").write_text(DOCKERFILE + "RUN true\n"),
            id="dockerfile",
        ),
        pytest.param(
            lambda r: (r / "sandbox" / "Dockerfile.dockerignore").write_text(".git\n"),
            id="ignore-file-sends-more",
        ),
    ],
)
def test_changed_file_changes_fingerprint(
    repo: Path,
    plan: BuildPlan,
    measure: Callable[..., Fingerprint],
    change: Callable[[Path], object],
) -> None:
    before = measure(plan).value
    change(repo)
    after = measure(plan).value
    assert before is not None and after is not None and after != before


def _retarget(link: Path, target: str) -> None:
    link.unlink()
    os.symlink(target, link)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda r: (r / "excluded.txt").write_text("changed\n"), id="excluded-file"),
        pytest.param(lambda r: (r / "excluded-dir" / "f").write_text("x\n"), id="excluded-dir"),
        pytest.param(lambda r: os.utime(r / "tracked.txt", (1, 1)), id="mtime-only"),
        pytest.param(lambda r: _git(r, "tag", "v1"), id="git-metadata"),
    ],
)
def test_unsent_change_keeps_fingerprint(
    repo: Path,
    plan: BuildPlan,
    measure: Callable[..., Fingerprint],
    change: Callable[[Path], object],
) -> None:
    before = measure(plan).value
    change(repo)
    assert measure(plan).value == before


def _ca_changed(plan: BuildPlan) -> BuildPlan:
    assert plan.request.ca_bundle is not None
    Path(plan.request.ca_bundle).write_text(
        "-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n"
    )
    return plan


def _vary(plan: BuildPlan, part: str, **update: object) -> BuildPlan:
    return plan.model_copy(update={part: getattr(plan, part).model_copy(update=update)})


@pytest.mark.parametrize(
    "vary",
    [
        pytest.param(
            lambda p: p.model_copy(update={"build_args": {**p.build_args, "GIT_SHA": "f" * 40}}),
            id="build-arg",
        ),
        pytest.param(
            lambda p: p.model_copy(update={"build_args": {**p.build_args, "EXTRA": "1"}}),
            id="new-build-arg",
        ),
        pytest.param(lambda p: p.model_copy(update={"labels": {**p.labels, "x": "y"}}), id="label"),
        pytest.param(lambda p: _vary(p, "request", platforms=("linux/arm64",)), id="platform"),
        pytest.param(lambda p: p.model_copy(update={"sbom": True}), id="attestation"),
        pytest.param(lambda p: _vary(p, "request", ca_bundle=None), id="secret-dropped"),
        pytest.param(_ca_changed, id="ca-bundle-content"),
        pytest.param(lambda p: _vary(p, "git", branch="feature"), id="git-meta-branch"),
        pytest.param(lambda p: _vary(p, "git", sha="e" * 40), id="git-meta-sha"),
    ],
)
def test_changed_setting_changes_fingerprint(
    plan: BuildPlan, measure: Callable[..., Fingerprint], vary: Callable[[BuildPlan], BuildPlan]
) -> None:
    before = measure(plan).value
    after = measure(vary(plan)).value
    assert before is not None and after is not None and after != before


def test_base_image_id_changes_fingerprint(
    plan: BuildPlan, measure: Callable[..., Fingerprint]
) -> None:
    engine = Engine()
    before = measure(plan, engine).value
    engine.images[BASE] = Image("sha256:" + "2" * 64, {})
    after = measure(plan, engine).value
    assert before is not None and after is not None and after != before


def test_base_image_not_in_engine_means_unknown(
    plan: BuildPlan, measure: Callable[..., Fingerprint]
) -> None:
    engine = Engine()
    del engine.images[BASE]
    result = measure(plan, engine)
    assert result.value is None and BASE in result.reason


def test_compare_with_returns_local_image_and_its_label(plan: BuildPlan, tmp_path: Path) -> None:
    engine = Engine()
    engine.images["repo:local"] = Image("sha256:" + "3" * 64, {LABEL: "abc"})
    result = fingerprint_build(
        plan,
        cache_dirs=[tmp_path / "cache"],
        env={},
        builder_driver="docker",
        inspect=engine.inspect,
    )
    assert result.local is not None and result.local_fingerprint == "abc"
    assert result.value is not None and result.local_fingerprint != result.value
    del engine.images["repo:local"]
    first_build = fingerprint_build(
        plan,
        cache_dirs=[tmp_path / "cache"],
        env={},
        builder_driver="docker",
        inspect=engine.inspect,
    )
    assert first_build.local is None and first_build.value == result.value


def test_other_builder_driver_means_unknown(plan: BuildPlan, tmp_path: Path) -> None:
    result = fingerprint_build(
        plan,
        cache_dirs=[tmp_path],
        env={},
        builder_driver="docker-container",
        inspect=Engine().inspect,
    )
    assert result.value is None and "docker-container" in result.reason


def test_source_date_epoch_counts(plan: BuildPlan, tmp_path: Path) -> None:
    def run(env: dict[str, str]) -> str | None:
        return fingerprint_build(
            plan,
            cache_dirs=[tmp_path],
            env=env,
            builder_driver="docker",
            inspect=Engine().inspect,
        ).value

    assert run({}) != run({"SOURCE_DATE_EPOCH": "0"})


def test_secret_content_is_keyed_not_plainly_hashed(plan: BuildPlan, tmp_path: Path) -> None:
    """Two machines (two keys) give different fingerprints for the same CA bundle."""
    results = {
        fingerprint_build(
            plan,
            cache_dirs=[tmp_path / name],
            env={},
            builder_driver="docker",
            inspect=Engine().inspect,
        ).value
        for name in ("machine-a", "machine-b")
    }
    assert len(results) == 2
    assert (tmp_path / "machine-a" / "fingerprint-key").stat().st_mode & 0o077 == 0


def test_stat_cache_rereads_nothing_when_unchanged(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(context_files, "RACY_MARGIN_NS", 0)
    rules = ignore_rules(repo / "sandbox" / "Dockerfile", repo)
    cache = tmp_path / "stat-cache.json"
    cold = digest_context(repo, rules, cache)
    warm = digest_context(repo, rules, cache)
    assert cold.hashed_files > 0 and warm.hashed_files == 0
    assert warm.digest == cold.digest
    (repo / "tracked.txt").write_text("TRACKED\n")  # same size, new content
    edited = digest_context(repo, rules, cache)
    assert edited.hashed_files == 1 and edited.digest != cold.digest


def test_racily_clean_files_are_not_trusted(repo: Path, tmp_path: Path) -> None:
    """A file written just now could change again within its mtime's granularity: re-read."""
    rules = ignore_rules(repo / "sandbox" / "Dockerfile", repo)
    cache = tmp_path / "stat-cache.json"
    digest_context(repo, rules, cache)
    again = digest_context(repo, rules, cache)
    assert again.hashed_files > 0


@pytest.mark.parametrize(
    ("dockerfile", "args", "expected"),
    [
        (DOCKERFILE, {}, ("node:24-bookworm",)),
        (DOCKERFILE, {"BASE_IMAGE": BASE}, (BASE,)),
        ("FROM a AS build\nFROM build\nCOPY --from=build /x /x\n", {}, ("a",)),
        ("FROM scratch\nCOPY --from=busybox:1 /bin/busybox /b\n", {}, ("busybox:1",)),
        ("FROM scratch\nRUN --mount=type=bind,from=tools,target=/t true\n", {}, ("tools",)),
        ("ARG V=1\nFROM img:${V:-2}\n", {}, ("img:1",)),
        ("ARG V\nFROM img:${V:-2}\n", {}, ("img:2",)),
        ("FROM \\\n  --platform=linux/amd64 \\\n  img:1 AS x\n", {}, ("img:1",)),
        ("# escape=`\nFROM `\n  img:1\n", {}, ("img:1",)),
        ("FROM a\nFROM scratch\nCOPY --from=0 / /\n", {}, ("a",)),
        # stages the final one does not reach are never resolved by BuildKit (checked)
        ("ARG B=official\nFROM node:24 AS official\nFROM ${B}\n", {"B": "local:1"}, ("local:1",)),
        ("ARG B=official\nFROM node:24 AS official\nFROM ${B}\n", {}, ("node:24",)),
        ("FROM img:$TARGETARCH AS unused\nFROM scratch\n", {}, ()),
        (
            "FROM a AS one\nFROM b AS two\nCOPY --from=one / /\nFROM scratch\nCOPY --from=1 / /\n",
            {},
            ("b", "a"),
        ),
    ],
)
def test_base_images(dockerfile: str, args: dict[str, str], expected: tuple[str, ...]) -> None:
    assert base_images(dockerfile, args) == expected


@pytest.mark.parametrize(
    "dockerfile",
    ["FROM img:$TARGETARCH\n", "FROM scratch\nARG S\nCOPY --from=$S / /\n", "FROM\n"],
)
def test_base_images_unknown(dockerfile: str) -> None:
    with pytest.raises(UnknownBase):
        base_images(dockerfile, {})


def test_also_look_up_reports_tags_that_exist(plan: BuildPlan, tmp_path: Path) -> None:
    engine = Engine()
    engine.images["repo:local"] = Image("sha256:" + "3" * 64, {LABEL: "abc"})

    def run() -> Fingerprint:
        return fingerprint_build(
            plan,
            cache_dirs=[tmp_path / "cache"],
            env={},
            builder_driver="docker",
            inspect=engine.inspect,
        )

    missing = run()  # the sha tag is not there: the local image is still found
    assert missing.local is not None and missing.also == {} and missing.value is not None
    engine.images[f"repo:sha-{SHA}"] = engine.images["repo:local"]
    both = run()
    assert both.also == {f"repo:sha-{SHA}": "sha256:" + "3" * 64} and both.value == missing.value

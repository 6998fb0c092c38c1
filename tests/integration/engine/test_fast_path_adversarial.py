"""Issue 18's rule, tried as a hostile user would: the image tagged `:local` is what buildx would
build from the inputs now. Every case changes one thing the fast path might miss, and is judged
by the image's content (`docker run … cat`), never by what the tool says.

Each case runs three times: a build with a report (the full path), the change, a run as a
developer runs it (the replay first, which must step aside), a second change (mostly: undoing
the first), and the full path again. Both paths meet every change.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import TEST_IMAGE_NAMESPACE, FixtureRepo, make_fixture_repo, run_pipeline

pytestmark = pytest.mark.usefixtures("engine")

HOST = "127.0.0.1:5999"  # never pushed to: a name only
DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${{BASE_IMAGE}}
COPY . /ctx
ARG GIT_SHA
RUN ["/bin/busybox", "sh", "-c", "echo $GIT_SHA > /git_sha; echo {{nonce}} > /nonce"]
"""


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def base_image(tag: str, tmp: Path, marker: str) -> str:
    """busybox on scratch with /marker: a base whose content a test can read back."""
    folder = tmp / f"base-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    shutil.copy("/bin/busybox", folder / "busybox")
    (folder / "marker").write_text(marker)
    (folder / "Dockerfile").write_text("FROM scratch\nCOPY busybox /bin/busybox\nCOPY marker /\n")
    docker("buildx", "build", "-q", "--load", "-t", tag, str(folder))
    return tag


@dataclass
class Case:
    repo: FixtureRepo
    tmp: Path
    base: str

    @property
    def local(self) -> str:
        return f"{self.repo.repository}:local"

    def env(self, **extra: str) -> dict[str, str]:
        return self.repo.env(
            SANDBOX_BASE_IMAGE=self.base,
            SANDBOX_BUILD_CA_BUNDLE="none",
            XDG_CACHE_HOME=str(self.tmp / "cache"),
            **extra,
        )

    def run(self, via: str, expect: int = 0, **extra: str) -> str:
        """`snapshot_local`: via "full" with a report (never replayed), via "replay" as a
        developer runs it (replayed when it may be), via "nox" through a plain nox."""
        if via == "full":
            extra.setdefault(
                "PIPELINE_REPORT", str(self.tmp / f"report-{uuid.uuid4().hex[:6]}.json")
            )
        env = self.env(**extra)
        run = run_pipeline("snapshot_local", env=env, via_nox=via == "nox")
        assert run.returncode == expect, run.output[-3000:]
        return run.output

    def read(self, path: str, image: str | None = None) -> str:
        """What the image holds at `path` (inside the container)."""
        done = docker(
            "run", "--rm", "--entrypoint", "/bin/busybox", image or self.local, "cat", path,
            check=False,
        )  # fmt: skip
        return done.stdout if done.returncode == 0 else f"<missing: {done.stderr.strip()}>"

    def holds_the_tree(self, *paths: str, left_out: tuple[str, ...] = ()) -> None:
        """The image holds each file as the checkout has it now, and not those an ignore file
        leaves out (the test names them: buildx's rules, not the pipeline's, are the judge)."""
        for path in (*paths, *left_out):
            on_disk = self.repo.path / path
            got = self.read(f"/ctx/{path}")
            if path in left_out or not on_disk.is_file():
                assert got.startswith("<missing"), f"{path} should not be in the image"
            else:
                expected = on_disk.read_text()
                assert got == expected, f"{path}: image has {got!r}, the tree {expected!r}"

    def commit(self, message: str = "x", *args: str) -> None:
        self.repo.git("add", "-A")
        self.repo.git(
            "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-q",
            "--allow-empty", "-m", message, *args,
        )  # fmt: skip


@pytest.fixture
def case(tmp_path: Path) -> Iterator[Case]:
    tag = f"{TEST_IMAGE_NAMESPACE}adversary-base-{uuid.uuid4().hex[:8]}:1"
    base = base_image(tag, tmp_path, "one\n")
    repo = make_fixture_repo(tmp_path / "repo", HOST, dockerfile=DOCKERFILE)
    (repo.path / "app.txt").write_text("one\n")
    (repo.path / "other.txt").write_text("other\n")
    made = Case(repo, tmp_path, base)
    made.commit("files")
    yield made
    listed = docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", repo.repository)
    for reference in [*listed.stdout.split(), base]:
        docker("image", "rm", reference, check=False)


def cycle(
    case: Case, first: Callable[[], object], second: Callable[[], object], *paths: str
) -> None:
    """Build, change, run as a developer (the replay must step aside), judge; change again,
    run the full path, judge."""
    case.run("full")
    case.holds_the_tree(*paths)
    first()
    case.run("replay")
    case.holds_the_tree(*paths)
    second()
    case.run("full")
    case.holds_the_tree(*paths)


def set_file(case: Case, path: str, text: str) -> Callable[[], None]:
    return lambda: (case.repo.path / path).write_text(text)


# --- the cases reproduced in issue 18 -----------------------------------------------------------


def test_a_heredoc_line_starting_with_from_is_not_the_base(case: Case) -> None:
    """The base stays in the model when a heredoc body holds `FROM scratch`: a base tag moved to
    other content is rebuilt."""
    dockerfile = case.repo.path / "sandbox" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "COPY <<EOT /note\nFROM scratch\nEOT\n")
    case.commit("heredoc")
    case.run("full")
    assert case.read("/marker") == "one\n"
    base_image(case.base, case.tmp, "two\n")  # the tag moved to other content
    case.run("replay")
    assert case.read("/marker") == "two\n"
    base_image(case.base, case.tmp, "three\n")
    case.run("full")
    assert case.read("/marker") == "three\n"


def test_a_sql_heredoc_line_keeps_the_fast_path(case: Case) -> None:
    """`FROM users` inside a heredoc neither hides the base nor makes the inputs unknown."""
    dockerfile = case.repo.path / "sandbox" / "Dockerfile"
    sql = "COPY <<SQL /query.sql\nSELECT *\nFROM users;\nSQL\n"
    dockerfile.write_text(dockerfile.read_text() + sql)
    case.commit("sql")
    case.run("full")
    assert case.read("/query.sql") == "SELECT *\nFROM users;\n"
    report = case.tmp / "unchanged.json"
    case.run("replay")  # recorded
    assert "nothing built" in case.run("full", PIPELINE_REPORT=str(report))
    assert json.loads(report.read_text())["build"]["skipped"] is True


def test_edits_while_the_build_runs_never_reach_a_current_label(case: Case) -> None:
    """A file flipped between two contents during the run, then left as it was: whatever the
    build caught, the image tagged `:local` holds the tree as it is now (after the next run)."""
    target = case.repo.path / "app.txt"
    case.run("full")
    stop = threading.Event()

    def flip() -> None:
        while not stop.is_set():
            for text in ("BBB\n", "one\n"):
                target.write_text(text)
                time.sleep(0.002)

    flipper = threading.Thread(target=flip, daemon=True)
    (case.repo.path / "other.txt").write_text("changed, so the run builds\n")
    flipper.start()
    try:
        run = run_pipeline("snapshot_local", env=case.env())
        assert run.returncode in (0, 5), run.output[-3000:]  # 5: it kept changing (one line)
    finally:
        stop.set()
        flipper.join()
    target.write_text("one\n")
    for via in ("replay", "full"):
        case.run(via)
        case.holds_the_tree("app.txt", "other.txt")


def test_an_edit_whose_mtime_is_put_back_reaches_the_image(case: Case) -> None:
    """Same size, mtime restored (`touch -r`, archives unpacked with fixed times): buildx's
    transfer would keep the old content; the image must not."""
    path = case.repo.path / "app.txt"

    def same_size_same_mtime(text: str) -> Callable[[], None]:
        def change() -> None:
            times = path.stat()
            path.write_text(text)
            os.utime(path, ns=(times.st_atime_ns, times.st_mtime_ns))

        return change

    cycle(case, same_size_same_mtime("two\n"), same_size_same_mtime("one\n"), "app.txt")


# --- inputs that are not files of the context ----------------------------------------------------


class _Served(http.server.BaseHTTPRequestHandler):
    body = b"first\n"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_HEAD = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_remote_add_is_fetched_again(case: Case) -> None:
    """ADD of a URL reads the network, not the context: the fast path steps aside for it."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Served)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/file"
        dockerfile = case.repo.path / "sandbox" / "Dockerfile"
        dockerfile.write_text(dockerfile.read_text() + f"ADD {url} /remote\n")
        case.commit("remote")
        case.run("full")
        assert case.read("/remote") == "first\n"
        _Served.body = b"second\n"
        case.run("replay")
        assert case.read("/remote") == "second\n"
        _Served.body = b"third\n"
        case.run("full")
        assert case.read("/remote") == "third\n"
    finally:
        _Served.body = b"first\n"
        server.shutdown()
        server.server_close()


def test_buildx_variables_count(case: Case) -> None:
    """BUILDX_GIT_LABELS=1 makes buildx add git labels: a run with it must build."""

    def labels() -> dict[str, str]:
        found = docker("image", "inspect", "--format", "{{json .Config.Labels}}", case.local)
        return dict(json.loads(found.stdout))

    case.run("full")
    assert "com.docker.image.source.entrypoint" not in labels()
    case.run("replay", BUILDX_GIT_LABELS="1")
    assert "com.docker.image.source.entrypoint" in labels()
    case.run("full")
    assert "com.docker.image.source.entrypoint" not in labels()


def test_the_base_tag_moved_to_other_content(case: Case) -> None:
    case.run("full")
    base_image(case.base, case.tmp, "two\n")
    case.run("replay")
    assert case.read("/marker") == "two\n"
    base_image(case.base, case.tmp, "three\n")
    case.run("full")
    assert case.read("/marker") == "three\n"


# --- git ----------------------------------------------------------------------------------------


def test_an_amended_commit_with_the_same_tree(case: Case) -> None:
    case.run("full")
    case.commit("amended", "--amend")
    case.run("replay")
    assert case.read("/git_sha").strip() == case.repo.sha
    case.commit("again", "--amend")
    case.run("full")
    assert case.read("/git_sha").strip() == case.repo.sha


def test_switching_branches(case: Case) -> None:
    case.repo.git("checkout", "-q", "-b", "feature")
    (case.repo.path / "app.txt").write_text("feature\n")
    case.commit("feature")
    case.repo.git("checkout", "-q", "main")
    cycle(
        case,
        lambda: case.repo.git("checkout", "-q", "feature"),
        lambda: case.repo.git("checkout", "-q", "main"),
        "app.txt",
    )


def test_a_stash_makes_the_tree_clean_again(case: Case) -> None:
    (case.repo.path / "app.txt").write_text("dirty\n")
    case.run("full")
    case.repo.git("stash", "-q")
    case.run("replay")
    case.holds_the_tree("app.txt")
    clean_tag = f"{case.repo.repository}:sha-{case.repo.sha}"
    assert docker("image", "inspect", clean_tag).returncode == 0
    case.repo.git("stash", "pop", "-q")
    case.run("full")
    case.holds_the_tree("app.txt")


# --- ignore files, links, modes -------------------------------------------------------------------


def test_a_dockerfile_ignore_file_appearing_wins_over_dot_dockerignore(case: Case) -> None:
    (case.repo.path / ".dockerignore").write_text("other.txt\n")
    case.commit("ignore other")
    beside = case.repo.path / "sandbox" / "Dockerfile.dockerignore"
    case.run("full")
    case.holds_the_tree("app.txt", left_out=("other.txt",))
    beside.write_text("app.txt\n")  # buildx reads <Dockerfile>.dockerignore first
    case.run("replay")
    case.holds_the_tree("other.txt", left_out=("app.txt",))
    beside.unlink()
    case.run("full")
    case.holds_the_tree("app.txt", left_out=("other.txt",))


def test_an_exception_in_the_ignore_file(case: Case) -> None:
    (case.repo.path / "vendor").mkdir()
    (case.repo.path / "vendor" / "keep.txt").write_text("kept\n")
    ignore = case.repo.path / ".dockerignore"
    ignore.write_text("vendor\n")
    case.run("full")
    case.holds_the_tree("app.txt", left_out=("vendor/keep.txt",))
    ignore.write_text("vendor\n!vendor/keep.txt\n")
    case.run("replay")
    case.holds_the_tree("vendor/keep.txt")
    ignore.write_text("vendor\n")
    case.run("full")
    case.holds_the_tree("app.txt", left_out=("vendor/keep.txt",))


def test_a_symlink_retargeted(case: Case) -> None:
    link = case.repo.path / "link"
    link.symlink_to("app.txt")

    def retarget(target: str) -> Callable[[], None]:
        def change() -> None:
            link.unlink()
            link.symlink_to(target)

        return change

    cycle(case, retarget("other.txt"), retarget("app.txt"), "link")


def test_a_mode_change(case: Case) -> None:
    script = case.repo.path / "tool.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)

    def mode() -> str:
        done = docker(
            "run", "--rm", "--entrypoint", "/bin/busybox", case.local, "stat", "-c", "%a",
            "/ctx/tool.sh",
        )  # fmt: skip
        return done.stdout.strip()

    case.run("full")
    assert mode() == "644"
    script.chmod(0o755)
    case.run("replay")
    assert mode() == "755"
    script.chmod(0o700)
    case.run("full")
    assert mode() == "700"


# --- the engine's images, the record, the switches ----------------------------------------------


def test_local_retagged_by_hand(case: Case) -> None:
    case.run("full")
    stranger = base_image(f"{case.repo.repository}:stranger", case.tmp, "not ours\n")
    docker("tag", stranger, case.local)  # someone points :local at another image
    case.run("replay")
    case.holds_the_tree("app.txt")
    docker("tag", stranger, case.local)
    case.run("full")
    case.holds_the_tree("app.txt")


def test_local_removed(case: Case) -> None:
    case.run("full")
    docker("image", "rm", case.local)
    case.run("replay")
    case.holds_the_tree("app.txt")
    docker("image", "rm", case.local)
    case.run("full")
    case.holds_the_tree("app.txt")


def test_a_damaged_record_is_not_trusted(case: Case) -> None:
    case.run("replay")
    assert "nothing built" in case.run("replay")  # recorded, and replayed
    for record in (case.tmp / "cache" / "sandbox-pipeline" / "replay").glob("*.json"):
        record.write_text("{not json")
    (case.repo.path / "app.txt").write_text("two\n")
    case.run("replay")
    case.holds_the_tree("app.txt")


def test_the_fast_path_can_be_turned_off(case: Case) -> None:
    case.run("full")
    case.run("replay")  # recorded: the next run would be replayed
    for _ in range(2):
        output = case.run("replay", SANDBOX_FAST_PATH="off")
        assert "nothing built" not in output and "steps cached" in output  # buildx ran
        labels = docker("image", "inspect", "--format", "{{json .Config.Labels}}", case.local)
        assert "dev.iterate.sandbox-pipeline.inputs" not in labels.stdout  # it claims nothing
        case.holds_the_tree("app.txt")


def test_through_a_plain_nox(case: Case) -> None:
    """The replay in nox's own interpreter meets a change too."""
    case.run("nox")
    assert "nothing built" in case.run("nox")
    path = case.repo.path / "app.txt"
    times = path.stat()
    path.write_text("two\n")
    os.utime(path, ns=(times.st_atime_ns, times.st_mtime_ns))
    case.run("nox")
    case.holds_the_tree("app.txt")

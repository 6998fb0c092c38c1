"""Failure classes from buildx's real output (buildx 0.13.1, docker driver, captured here): the
phase decides, so a registry or engine outage never sends anyone to debug their Dockerfile."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.errors import BuildError, EngineError, PipelineError, RegistryError
from pipeline.rules.auth_words import says_auth_refused
from pipeline.rules.build_plan import BuildPlan
from pipeline.rules.failures import classify_failure, untag_after_failed_push
from pipeline.rules.git_facts import GitFacts
from pipeline.rules.progress import ProgressStats
from pipeline.settings.build import BuildSettings, env_names
from tests.helpers.plans import make_plan

REPO = "127.0.0.1:45001/iterate-test/x"
SHA = "a" * 40
BLOB = "http://127.0.0.1:45001/v2/iterate-test/x/blobs/sha256:d2476d10a339d1841210b30c2f40de53"
EXPORT = f"""\
#5 [1/2] COPY busybox /bin/busybox
#5 CACHED

#6 [2/2] RUN ["/bin/busybox", "sh", "-c", "echo h13-a1 > /x"]
#6 CACHED

#7 exporting to image
#7 exporting layers done
#7 exporting manifest sha256:9da8054029257f7703a95422d94c2c17ccc9f3f13ad7c744b85770fd35b09ab1 done
#7 naming to {REPO}:sha-{SHA} done
#7 unpacking to {REPO}:sha-{SHA} 0.0s done
#7 pushing layers
"""
PUSH_500 = (
    EXPORT
    + f"""\
#7 0.087 error: unexpected status from HEAD request to {BLOB}: 500 Internal Server Error
#7 0.088 retrying in 1s
#7 pushing layers 7.0s done
#7 ERROR: failed to push {REPO}:sha-{SHA}: unexpected status from HEAD request to {BLOB}: \
500 Internal Server Error
------
 > exporting to image:
------
ERROR: failed to solve: failed to push {REPO}:sha-{SHA}: unexpected status from HEAD request \
to {BLOB}: 500 Internal Server Error
"""
)
PUSH_REFUSED_CONNECTION = (
    EXPORT
    + f"""\
#7 ERROR: failed to push {REPO}:sha-{SHA}: failed to do request: Head "{BLOB}": dial tcp \
127.0.0.1:45001: connect: connection refused
ERROR: failed to solve: failed to push {REPO}:sha-{SHA}: failed to do request: Head "{BLOB}": \
dial tcp 127.0.0.1:45001: connect: connection refused
"""
)
# The blob digest holds "401" on purpose: a digest must never read as "401 Unauthorized".
PUSH_EOF = (
    EXPORT
    + f"""\
#7 ERROR: failed to push {REPO}:sha-{SHA}: failed to copy: Put "{BLOB}401f": EOF
ERROR: failed to solve: failed to push {REPO}:sha-{SHA}: failed to copy: Put "{BLOB}401f": EOF
"""
)
# Seen on this machine (buildx 0.13.1) when the registry died between requests of one push.
_IDLE_CLOSED = f'failed to push {REPO}:sha-{SHA}: failed to do request: Head "{BLOB}401f": ' + (
    "http: server closed idle connection"
)
PUSH_IDLE_CLOSED = EXPORT + f"#7 ERROR: {_IDLE_CLOSED}\nERROR: failed to solve: {_IDLE_CLOSED}\n"
PUSH_401 = (
    EXPORT
    + f"""\
#7 ERROR: failed to push {REPO}:sha-{SHA}: unexpected status from HEAD request to {BLOB}: \
401 Unauthorized
ERROR: failed to solve: failed to push {REPO}:sha-{SHA}: unexpected status from HEAD request \
to {BLOB}: 401 Unauthorized
"""
)
BASE_UNREACHABLE = """\
#2 [internal] load metadata for 127.0.0.1:1/iterate-test/nothing:v1
#2 ERROR: failed to do request: Head "https://127.0.0.1:1/v2/iterate-test/nothing/manifests/v1": \
dial tcp 127.0.0.1:1: connect: connection refused
ERROR: failed to solve: 127.0.0.1:1/iterate-test/nothing:v1: failed to resolve source metadata \
for 127.0.0.1:1/iterate-test/nothing:v1: failed to do request: Head \
"https://127.0.0.1:1/v2/iterate-test/nothing/manifests/v1": dial tcp 127.0.0.1:1: connect: \
connection refused
"""
# An own engine SIGKILLed while a RUN step slept (tests/integration/engine/test_build_faults.py).
ENGINE_KILLED = """\
#5 [2/2] RUN ["/bin/busybox", "sh", "-c", "echo started-6989c6a58f68; /bin/busybox sleep 60"]
#5 0.583 started-6989c6a58f68
ERROR: failed to receive status: rpc error: code = Unavailable desc = error reading from server: EOF
"""
# A failing step whose own output mentions "permission denied" and a connection error, on a push
# build: still the Dockerfile's failure.
STEP_FAILED = """\
#6 [2/2] RUN ./deploy.sh
#6 0.2 curl: (7) connection refused; mkdir: permission denied
#6 ERROR: process "/bin/sh -c ./deploy.sh" did not complete successfully: exit code: 1
------
 > [2/2] RUN ./deploy.sh:
0.2 curl: (7) connection refused; mkdir: permission denied
------
ERROR: failed to solve: process "/bin/sh -c ./deploy.sh" did not complete successfully: exit \
code: 1
"""


def feed(text: str) -> ProgressStats:
    stats = ProgressStats()
    for line in text.splitlines():
        stats.feed(line)
    return stats


@pytest.fixture
def push_plan(monkeypatch: pytest.MonkeyPatch) -> BuildPlan:
    for name in env_names(BuildSettings):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SANDBOX_IMAGE_REPOSITORY", REPO)
    monkeypatch.setenv("PUSH", "1")
    facts = GitFacts(
        sha=SHA,
        dirty=False,
        branch="main",
        work_tree=Path("/r"),
        git_dir=Path("/r/.git"),
        common_dir=Path("/r/.git"),
        commit_time=datetime(2026, 1, 1, tzinfo=UTC),
        source_url=None,
    )
    return make_plan("local", BuildSettings(), facts)


def classify(output: str, plan: BuildPlan) -> PipelineError:
    error = classify_failure(1, "", feed(output), plan, lambda: True)
    assert "\n" not in str(error) and " — fix: " in str(error)
    return error


@pytest.mark.parametrize(
    ("output", "words"),
    [
        (PUSH_500, "answered 500 Internal Server Error"),
        (PUSH_REFUSED_CONNECTION, "stopped answering or cannot be reached"),
        (PUSH_EOF, "stopped answering or cannot be reached (EOF:"),
        (PUSH_IDLE_CLOSED, "stopped answering or cannot be reached (server closed idle"),
    ],
)
def test_registry_outage_during_push_is_the_registrys(
    push_plan: BuildPlan, output: str, words: str
) -> None:
    error = classify(output, push_plan)
    assert isinstance(error, RegistryError) and error.exit_code == 7
    assert "the push to 127.0.0.1:45001 failed" in str(error) and words in str(error)
    assert "Dockerfile" not in str(error) and "failing step" not in str(error)


def test_refused_credentials_during_push(push_plan: BuildPlan) -> None:
    error = classify(PUSH_401, push_plan)
    assert isinstance(error, RegistryError)
    assert "127.0.0.1:45001 refused the push" in str(error)
    assert "REGISTRY_USERNAME/REGISTRY_PASSWORD" in str(error)


def test_unreachable_base_image_is_a_registry_error(push_plan: BuildPlan) -> None:
    error = classify(BASE_UNREACHABLE, push_plan)
    assert isinstance(error, RegistryError)
    assert "cannot get 127.0.0.1:1/iterate-test/nothing:v1 from 127.0.0.1:1" in str(error)
    assert "SANDBOX_BASE_IMAGE" in str(error)


def test_engine_lost_mid_build_is_the_engines(push_plan: BuildPlan) -> None:
    error = classify(ENGINE_KILLED, push_plan)
    assert isinstance(error, EngineError) and error.exit_code == 3
    assert "the Docker engine stopped answering during the build" in str(error)


def test_a_failing_step_stays_the_dockerfiles(push_plan: BuildPlan) -> None:
    error = classify(STEP_FAILED, push_plan)
    assert isinstance(error, BuildError) and error.exit_code == 5
    assert "[2/2] RUN ./deploy.sh" in str(error)


def test_failed_push_untags_what_it_named(push_plan: BuildPlan) -> None:
    assert untag_after_failed_push(feed(PUSH_500), push_plan) == (f"{REPO}:sha-{SHA}",)
    # A step failed before the exporter ran: the tags were not moved by this build, keep them.
    assert untag_after_failed_push(feed(STEP_FAILED), push_plan) == ()


def test_a_local_build_never_untags(monkeypatch: pytest.MonkeyPatch, push_plan: BuildPlan) -> None:
    local = push_plan.model_copy(update={"push": False, "load": True})
    assert untag_after_failed_push(feed(PUSH_500), local) == ()


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("unexpected status: 401 Unauthorized", True),
        ("received unexpected HTTP status: 401", True),
        ("denied: requested access to the resource is denied", True),
        ("access denied.", True),
        ("403 Forbidden", True),
        # a registry's port, a tag or an id that holds "401" is no status
        (
            "failed to push 127.0.0.1:40185/iterate-test/sandbox:sha-1: 500 Internal Server Error",
            False,
        ),
        ("PUT http 127.0.0.1:401/v2/x: 500 Internal Server Error", False),
        ("sha-4011abc: 500 Internal Server Error", False),
        ("layer a401b: 502 Bad Gateway", False),
    ],
)
def test_auth_words_are_whole_words_not_parts_of_addresses(text: str, refused: bool) -> None:
    assert says_auth_refused(text) is refused

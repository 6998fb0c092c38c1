"""The release waits for the tests, checked offline on the workflow files themselves.

Two ways: structurally (every job that runs a release session needs, directly or not, every job
that runs a test session of the same workflow, and none overrides a failed need with always() or
the like), and by simulating GitHub's job scheduling of ci.yml for the events it runs on (a
small evaluator of the `if:` expressions it uses): a failed test job means no push and no
snapshot. Also the upkeep around it: the weekly rebuild, Dependabot, the containerd-store script,
and which job installs what.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from pipeline.rules.base_image_plan import dockerfile_default_base
from tests.unit.test_workflows import (
    DEPENDABOT,
    ROOT,
    load_workflow,
    run_scripts,
    schema_check,
    sessions_run_by,
)

CI = ROOT / ".github" / "workflows" / "ci.yml"
TEST_SESSIONS = frozenset(
    {"lint", "unit", "unit_system_python", "test_engine", "test_local_docker", "test_daytona"}
    | {"snapshot_local"}  # the pull-request image build is a check too
)
RELEASE_SESSIONS = frozenset({"snapshot_push", "snapshot_daytona", "snapshot_stage"})
STATUS_CALLS = ("always()", "cancelled()", "failure()", "success()")


# --- structure -----------------------------------------------------------------------------


def job_sessions(job: Mapping[str, Any]) -> set[str]:
    return set().union(set(), *map(sessions_run_by, run_scripts({"jobs": {"j": job}})))


def needs(job: Mapping[str, Any]) -> list[str]:
    value = job.get("needs") or []
    return [value] if isinstance(value, str) else list(value)


def needed(jobs: Mapping[str, Mapping[str, Any]], name: str) -> set[str]:
    """Every job `name` waits for, directly or through other jobs."""
    found: set[str] = set()
    pending = needs(jobs[name])
    while pending:
        current = pending.pop()
        if current not in found:
            found.add(current)
            pending += needs(jobs[current])
    return found


def gate_problems(workflow: Mapping[str, Any]) -> list[str]:
    """Why a release job of this workflow could run without every test job having passed."""
    jobs = workflow.get("jobs") or {}
    tests = {name for name, job in jobs.items() if job_sessions(job) & TEST_SESSIONS}
    problems = []
    for name, job in jobs.items():
        if not job_sessions(job) & RELEASE_SESSIONS:
            continue
        if not tests:
            problems.append(f"{name} releases in a workflow that runs no test")
        if missing := tests - needed(jobs, name):
            problems.append(f"{name} does not wait for {sorted(missing)}")
        for gate in [name, *sorted(needed(jobs, name) - tests)]:
            condition = str(jobs[gate].get("if", ""))
            if "always()" in condition:
                problems.append(f"{gate} runs with always(), whatever its needs did")
            elif any(call in condition for call in STATUS_CALLS):
                unchecked = [
                    n
                    for n in needs(jobs[gate])
                    if f"needs.{n}.result == 'success'" not in condition
                ]
                if unchecked:
                    problems.append(f"{gate} overrides the result of {unchecked} without checking")
    return problems


def test_the_release_jobs_wait_for_every_test_job() -> None:
    workflow = load_workflow(CI.read_text())
    releasing = [n for n, j in workflow["jobs"].items() if job_sessions(j) & RELEASE_SESSIONS]
    assert sorted(releasing) == ["image", "snapshot"]
    assert gate_problems(workflow) == []


def releasing_workflows(folder: Path) -> list[str]:
    """The workflows in `folder` with a job that runs a release session."""
    found = []
    for path in sorted(folder.glob("*.yml")):
        jobs = load_workflow(path.read_text()).get("jobs") or {}
        if any(job_sessions(job) & RELEASE_SESSIONS for job in jobs.values()):
            found.append(path.name)
    return found


def test_no_other_workflow_releases(tmp_path: Path) -> None:
    assert releasing_workflows(CI.parent) == [CI.name]  # ci.yml releases, and only it
    # the check sees a second workflow that would release outside the gate
    (tmp_path / "ci.yml").write_text(CI.read_text())
    (tmp_path / "sneaky.yml").write_text(
        "on: push\njobs:\n  ship:\n    runs-on: x\n    steps:\n      - run: nox -s snapshot_push\n"
    )
    assert releasing_workflows(tmp_path) == ["ci.yml", "sneaky.yml"]


BAD_GATES = {
    "no needs": ("image:\n    runs-on: x\n", ["image does not wait for ['test']"]),
    "always": (
        "image:\n    needs: test\n    if: always()\n    runs-on: x\n",
        ["image runs with always(), whatever its needs did"],
    ),
    "unchecked": (
        "image:\n    needs: test\n    if: ${{ !cancelled() }}\n    runs-on: x\n",
        ["image overrides the result of ['test'] without checking"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_GATES))
def test_the_gate_check_finds_a_release_that_does_not_wait(case: str) -> None:
    release, expected = BAD_GATES[case]
    text = (
        "on: push\njobs:\n  test:\n    runs-on: x\n    steps:\n      - run: nox -s unit\n"
        f"  {release}    steps:\n      - run: nox -s snapshot_push\n"
    )
    assert gate_problems(load_workflow(text)) == expected


# --- simulation of GitHub's scheduling -----------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<op>==|!=|&&|\|\||!|\(|\))"
    r"|(?P<call>[a-z]+)\(\)|(?P<name>[A-Za-z_][\w.-]*))"
)


def evaluate(expression: str, context: Mapping[str, str], calls: Mapping[str, bool]) -> Any:
    """A GitHub expression of the kinds ci.yml uses: strings, names, ==, !=, &&, ||, !, (),
    status functions. `&&`/`||` return operands and '' is false, as on GitHub; `!` applies to
    the operand after it (ci.yml never compares a negation)."""
    text = expression.strip()
    if text.startswith("${{") and text.endswith("}}"):
        text = text[3:-2]
    python, position = [], 0
    while position < len(text.rstrip()):
        token = _TOKEN.match(text, position)
        assert token, f"cannot read {text[position:]!r}"
        position = token.end()
        if token["str"]:
            python.append(repr(token["str"][1:-1].replace("''", "'")))
        elif token["op"]:
            python.append({"&&": " and ", "||": " or ", "!": " not "}.get(token["op"], token["op"]))
        elif token["call"]:
            python.append(repr(calls[token["call"]]))
        else:
            python.append(repr(context.get(token["name"], "")))
    return eval("".join(python), {"__builtins__": {}})  # noqa: S307 - our own tokens only


def simulate(
    workflow: Mapping[str, Any], context: Mapping[str, str], fail: frozenset[str] = frozenset()
) -> dict[str, str]:
    """Each job's result for an event, jobs in `fail` failing when they run."""
    jobs = workflow["jobs"]
    results: dict[str, str] = {}
    while len(results) < len(jobs):
        for name, job in jobs.items():
            if name in results or any(n not in results for n in needs(job)):
                continue
            states = [results[n] for n in needs(job)]
            calls = {
                "success": all(s == "success" for s in states),
                "failure": any(s == "failure" for s in states),
                "always": True,
                "cancelled": False,
            }
            condition = str(job.get("if", "true"))
            local = {**context, **{f"needs.{n}.result": results[n] for n in needs(job)}}
            if not any(call in condition for call in STATUS_CALLS) and not calls["success"]:
                results[name] = "skipped"  # GitHub's implicit success()
            elif condition != "true" and not evaluate(condition, local, calls):
                results[name] = "skipped"
            else:
                results[name] = "failure" if name in fail else "success"
    return results


def event(name: str, ref: str = "refs/heads/main", git_sha: str = "") -> dict[str, str]:
    return {"github.event_name": name, "github.ref": ref, "inputs.git_sha": git_sha}


SHA = "a" * 40
RAN = "success"
SCENARIOS: dict[str, tuple[dict[str, str], frozenset[str], dict[str, str]]] = {
    "push to main": (event("push"), frozenset(), dict.fromkeys(["image", "snapshot"], RAN)),
    "push, tests fail": (
        event("push"),
        frozenset({"test"}),
        {"image": "skipped", "snapshot": "skipped"},
    ),
    "push, image build fails": (
        event("push"),
        frozenset({"sandbox-image"}),
        {"image": "skipped", "snapshot": "skipped"},
    ),
    "push, push fails": (event("push"), frozenset({"image"}), {"snapshot": "skipped"}),
    "pull request": (
        event("pull_request", "refs/pull/7/merge"),
        frozenset(),
        {"test": RAN, "sandbox-image": RAN, "image": "skipped", "snapshot": "skipped"},
    ),
    "weekly rebuild": (
        event("schedule"),
        frozenset(),
        {"test": RAN, "image": RAN, "snapshot": "skipped"},
    ),
    "weekly rebuild, tests fail": (
        event("schedule"),
        frozenset({"test"}),
        {"image": "skipped"},
    ),
    "by hand on main": (event("workflow_dispatch"), frozenset(), {"test": RAN, "snapshot": RAN}),
    "by hand on a branch": (
        event("workflow_dispatch", "refs/heads/x"),
        frozenset(),
        {"test": RAN, "image": "skipped", "snapshot": "skipped"},
    ),
    "snapshot of an existing image": (
        event("workflow_dispatch", git_sha=SHA),
        frozenset(),
        {"test": "skipped", "image": "skipped", "snapshot": RAN},
    ),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_ci_runs_the_release_only_after_its_tests_passed(scenario: str) -> None:
    context, failing, expected = SCENARIOS[scenario]
    results = simulate(load_workflow(CI.read_text()), context, failing)
    assert {job: results[job] for job in expected} == expected, results


def test_the_evaluator_reads_githubs_operators() -> None:
    calls = {"success": True, "failure": False, "always": True, "cancelled": False}
    context = {"a": "x", "b": ""}
    assert evaluate("${{ a == 'x' && 'off' || 'readwrite' }}", context, calls) == "off"
    assert evaluate("b == 'x' && 'off' || 'readwrite'", context, calls) == "readwrite"
    assert evaluate("!cancelled() && (!b && a != 'y')", context, calls) is True
    assert evaluate("${{ !a }}", context, calls) is False


def test_the_weekly_rebuild_reads_no_stale_cache() -> None:
    workflow = load_workflow(CI.read_text())
    assert [entry["cron"] for entry in workflow["on"]["schedule"]] == ["23 4 * * 1"]
    step = next(s for s in workflow["jobs"]["image"]["steps"] if s.get("id") == "push")
    mode = step["env"]["SANDBOX_BUILD_CACHE"]
    calls: dict[str, bool] = {}
    assert evaluate(mode, event("schedule"), calls) == "off"
    assert evaluate(mode, event("push"), calls) == "readwrite"


# --- what each job runs and installs -------------------------------------------------------


def scripts_of(job: Mapping[str, Any]) -> str:
    return "\n".join(run_scripts({"jobs": {"j": job}}))


def test_the_containerd_store_is_one_script_run_only_where_a_cache_is_exported() -> None:
    jobs = load_workflow(CI.read_text())["jobs"]
    for path in sorted((ROOT / ".github" / "workflows").glob("*.yml")):
        assert "daemon.json" not in path.read_text(), f"{path.name} edits daemon.json itself"
    using = {n for n, j in jobs.items() if "scripts/enable-containerd-store.sh" in scripts_of(j)}
    # test_engine exports a cache (test), snapshot_push writes :buildcache (image).
    assert using == {"test", "image"}


def test_each_job_installs_only_what_it_uses() -> None:
    jobs = load_workflow(CI.read_text())["jobs"]
    installs = {n: scripts_of(j) for n, j in jobs.items()}
    # Test-only tools come with the test command only.
    assert [n for n, text in installs.items() if "scripts/test.sh" in text] == ["test"]
    for name, text in installs.items():
        assert "setup-test-tools" not in text and "apt-get" not in text, name
        assert "pip install" not in text and ".[dev]" not in text, name
    # The snapshot job talks to Daytona only: no engine set-up, no login, a plain pinned nox.
    snapshot = jobs["snapshot"]
    assert "scripts/setup" not in installs["snapshot"]
    assert not any("login" in str(s.get("uses", "")) for s in snapshot["steps"])
    assert re.search(r"pipx run --spec 'nox\[uv\]==[\d.]+' nox ", installs["snapshot"])


def test_nox_comes_from_a_plain_install_in_every_job() -> None:
    for name, job in load_workflow(CI.read_text())["jobs"].items():
        text = scripts_of(job)
        if ".venv/bin/nox" in text:
            # scripts/setup.sh makes .venv with nox (and uv) only; sessions install the rest.
            assert text.index("bash scripts/setup.sh") < text.index(".venv/bin/nox"), name


# --- Dependabot ----------------------------------------------------------------------------


def test_dependabot_updates_actions_the_lock_file_and_the_base_image() -> None:
    done = schema_check(DEPENDABOT, schema="dependabot")
    assert done.returncode == 0, done.stdout + done.stderr
    config = load_workflow(DEPENDABOT.read_text())
    ecosystems = {(u["package-ecosystem"], u["directory"]) for u in config["updates"]}
    assert ecosystems == {("github-actions", "/"), ("uv", "/"), ("docker", "/sandbox")}
    assert (ROOT / "uv.lock").is_file()
    # Dependabot reads plain `FROM image` lines, not ARG defaults: the image the build uses by
    # default must stand in such a line of sandbox/Dockerfile.
    dockerfile = (ROOT / "sandbox" / "Dockerfile").read_text()
    default = dockerfile_default_base(dockerfile)
    assert default == "node:24-bookworm"
    assert re.search(rf"^FROM {re.escape(default)}( |$)", dockerfile, re.MULTILINE)


def test_dependabot_schema_check_rejects_an_unknown_ecosystem(tmp_path: Path) -> None:
    bad = tmp_path / "dependabot.yml"
    bad.write_text(
        "version: 2\nupdates:\n  - package-ecosystem: nope\n    directory: /\n"
        "    schedule:\n      interval: weekly\n"
    )
    assert schema_check(bad, schema="dependabot").returncode == 1

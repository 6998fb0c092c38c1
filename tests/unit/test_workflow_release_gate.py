"""The release waits for the tests, and no release is ever lost, checked offline on the workflow
files themselves.

Three ways: structurally (every job that runs a release session needs, directly or not, every
job that runs a test session on the same events, and none overrides a failed need with always()
or the like); by simulating GitHub's job scheduling of ci.yml for the events it runs on (a small
evaluator of the expressions it uses): a failed test job means no `:main` and no snapshot; and by
simulating GitHub's concurrency groups over a sequence of arriving runs (one running per group;
pending ones replaced with `queue: single`, kept in order with `queue: max`; cancel-in-progress):
a dispatch or the schedule never cancels a waiting release, pull requests still cancel their own
older runs. Also the upkeep around it: the weekly rebuild, Dependabot, the containerd-store
script, and which job installs what.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
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
# Sessions that release: move `:main` (`snapshot_push -- --from`) or make a Daytona snapshot.
# `snapshot_push` without `--from` builds and pushes a commit's candidate `:sha-<sha>`, which
# the image tests then boot: it must wait for the tests too, but not for the image tests.
RELEASE_SESSIONS = frozenset({"snapshot_push --from", "snapshot_daytona", "snapshot_stage"})
STATUS_CALLS = ("always()", "cancelled()", "failure()", "success()")
PROMOTE = re.compile(r"nox\b.*-s snapshot_push\b.*-- --from\b")


# --- structure -----------------------------------------------------------------------------


def job_sessions(job: Mapping[str, Any]) -> set[str]:
    scripts = list(run_scripts({"jobs": {"j": job}}))
    names: set[str] = set().union(set(), *map(sessions_run_by, scripts))
    if "snapshot_push" in names and any(PROMOTE.search(script) for script in scripts):
        names = (names - {"snapshot_push"}) | {"snapshot_push --from"}
    return names


def runs_on_main(job: Mapping[str, Any]) -> bool:
    """Whether a job's own `if` lets it run for a push to main when its needs succeeded."""
    condition = str(job.get("if", "true"))
    calls = {"success": True, "failure": False, "always": True, "cancelled": False}
    context = {**event("push"), **{f"needs.{n}.result": "success" for n in needs(job)}}
    return condition == "true" or bool(evaluate(condition, context, calls))


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
    every_test = {name for name, job in jobs.items() if job_sessions(job) & TEST_SESSIONS}
    problems = []
    for name, job in jobs.items():
        if not job_sessions(job) & RELEASE_SESSIONS:
            continue
        # the test jobs that run where releases run (the pull-request image build does not)
        tests = {t for t in every_test if runs_on_main(jobs[t])} or every_test
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
    jobs = workflow["jobs"]
    releasing = [n for n, j in jobs.items() if job_sessions(j) & RELEASE_SESSIONS]
    assert sorted(releasing) == ["release", "snapshot"]
    assert gate_problems(workflow) == []
    # the image tests boot the pushed candidate, so they come between its build and the release
    assert "snapshot_push" in job_sessions(jobs["image"]) and "test" in needed(jobs, "image")
    assert {"image", "image-tests", "test"} <= needed(jobs, "release")


def releasing_workflows(folder: Path) -> list[str]:
    """The workflows in `folder` with a job that publishes: a release session, or a push."""
    found = []
    for path in sorted(folder.glob("*.yml")):
        jobs = load_workflow(path.read_text()).get("jobs") or {}
        if any(job_sessions(job) & (RELEASE_SESSIONS | {"snapshot_push"}) for job in jobs.values()):
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
        f"  {release}    steps:\n      - run: nox -s snapshot_push -- --from x\n"
    )
    assert gate_problems(load_workflow(text)) == expected


# --- simulation of GitHub's scheduling -----------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<op>==|!=|&&|\|\||!|\(|\)|,)"
    r"|(?P<fn>format)\(|(?P<call>[a-z]+)\(\)|(?P<name>[A-Za-z_][\w.-]*))"
)
_EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}")


def _format(template: str, *values: Any) -> str:
    return template.format(*(_text(v) for v in values))


def _text(value: Any) -> str:
    """How GitHub renders a value in a string: booleans as true/false."""
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def interpolate(text: str, context: Mapping[str, str]) -> str:
    """A value with `${{ … }}` parts (a concurrency group), each rendered as GitHub does."""
    return _EXPRESSION.sub(lambda m: _text(evaluate(m.group(1), context, NO_CALLS)), text)


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
        elif token["fn"]:
            python.append("_format(")
        elif token["call"]:
            python.append(repr(calls[token["call"]]))
        else:
            python.append(repr(context.get(token["name"], "")))
    scope = {"__builtins__": {}, "_format": _format}
    return eval("".join(python), scope)  # noqa: S307 - our own tokens only


NO_CALLS = {"success": True, "failure": False, "always": True, "cancelled": False}


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


def event(
    name: str, ref: str = "refs/heads/main", git_sha: str = "", pr: str = ""
) -> dict[str, str]:
    return {
        "github.event_name": name,
        "github.ref": ref,
        "inputs.git_sha": git_sha,
        "github.event.pull_request.number": pr,
    }


SHA = "a" * 40
RAN = "success"
SKIP = "skipped"
MAIN_JOBS = ["image", "image-tests", "release", "snapshot"]
SCENARIOS: dict[str, tuple[dict[str, str], frozenset[str], dict[str, str]]] = {
    "push to main": (
        event("push"),
        frozenset(),
        {"test": RAN, "sandbox-image": SKIP, **dict.fromkeys(MAIN_JOBS, RAN)},
    ),
    "push, tests fail": (event("push"), frozenset({"test"}), dict.fromkeys(MAIN_JOBS, SKIP)),
    "push, build and push fail": (
        event("push"),
        frozenset({"image"}),
        dict.fromkeys(["image-tests", "release", "snapshot"], SKIP),
    ),
    "push, the image tests fail on the pushed digest": (
        event("push"),
        frozenset({"image-tests"}),
        {"image": RAN, "release": SKIP, "snapshot": SKIP},
    ),
    "push, moving :main fails": (event("push"), frozenset({"release"}), {"snapshot": SKIP}),
    "pull request": (
        event("pull_request", "refs/pull/7/merge"),
        frozenset(),
        {"test": RAN, "sandbox-image": RAN, **dict.fromkeys(MAIN_JOBS, SKIP)},
    ),
    "weekly rebuild": (
        event("schedule"),
        frozenset(),
        {"test": RAN, "image": RAN, "image-tests": RAN, "release": RAN, "snapshot": SKIP},
    ),
    "weekly rebuild, tests fail": (
        event("schedule"),
        frozenset({"test"}),
        dict.fromkeys(MAIN_JOBS, SKIP),
    ),
    "by hand on main": (
        event("workflow_dispatch"),
        frozenset(),
        {"test": RAN, **dict.fromkeys(MAIN_JOBS, RAN)},
    ),
    "by hand on a branch": (
        event("workflow_dispatch", "refs/heads/x"),
        frozenset(),
        {"test": RAN, "sandbox-image": RAN, **dict.fromkeys(MAIN_JOBS, SKIP)},
    ),
    "snapshot of an existing image": (
        event("workflow_dispatch", git_sha=SHA),
        frozenset(),
        {"test": SKIP, "image": SKIP, "release": SKIP, "snapshot": RAN},
    ),
    "snapshot of an existing image, dispatched from a branch": (
        event("workflow_dispatch", "refs/heads/x", git_sha=SHA),
        frozenset(),
        dict.fromkeys(["test", *MAIN_JOBS], SKIP),
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
    assert evaluate("format('pr-{0}', a)", context, calls) == "pr-x"
    assert interpolate("ci-${{ b == '' && format('run-{0}', a) || 'x' }}", context) == "ci-run-x"


def test_the_weekly_rebuild_reads_no_stale_cache() -> None:
    workflow = load_workflow(CI.read_text())
    assert [entry["cron"] for entry in workflow["on"]["schedule"]] == ["23 4 * * 1"]
    step = next(s for s in workflow["jobs"]["image"]["steps"] if s.get("id") == "push")
    mode, rebuild = step["env"]["SANDBOX_BUILD_CACHE"], step["env"]["SANDBOX_REBUILD"]
    calls: dict[str, bool] = {}
    assert evaluate(mode, event("schedule"), calls) == "off"
    assert evaluate(mode, event("push"), calls) == "readwrite"
    # its own tags (sha-<sha>-rebuild-<day>), never pushed over the commit's :sha-<sha>
    assert evaluate(rebuild, event("schedule"), calls) == "1"
    assert evaluate(rebuild, event("push"), calls) == "0"


# --- simulation of GitHub's concurrency groups ------------------------------------------------


@dataclass
class Slot:
    """A run (job None) or a job of a run, as concurrency groups see it."""

    run: int
    job: str | None
    group: str | None = None
    state: str = "new"  # new, pending, running, success, failure, skipped, cancelled
    ends: int = 0


@dataclass
class Concurrency:
    """GitHub's rule per group: one running; a newcomer waits (`queue: single`, the default,
    keeps only the newest waiting one and cancels the one it replaces; `queue: max` keeps up to
    100 in order); cancel-in-progress cancels the running one (and those waiting)."""

    running: dict[str, Slot] = field(default_factory=dict)
    waiting: dict[str, list[Slot]] = field(default_factory=dict)

    def enter(self, slot: Slot, group: str, queue: str, cancel: bool) -> list[Slot]:
        slot.group, cancelled = group, []
        queued = self.waiting.setdefault(group, [])
        if cancel:
            cancelled += [*queued, *([self.running.pop(group)] if group in self.running else [])]
            queued.clear()
        elif queue != "max":
            cancelled += queued
            queued.clear()
        assert len(queued) < 100, "GitHub keeps at most 100 waiting"
        queued.append(slot)
        slot.state = "pending"
        return cancelled

    def leave(self, slot: Slot) -> None:
        if slot.group is None:
            return
        if self.running.get(slot.group) is slot:
            del self.running[slot.group]
        queued = self.waiting.get(slot.group, [])
        if slot in queued:
            queued.remove(slot)

    def startable(self) -> list[Slot]:
        started = []
        for group, queued in self.waiting.items():
            if group not in self.running and queued:
                self.running[group] = queued.pop(0)
                started.append(self.running[group])
        return started


def settings_of(block: Any, context: Mapping[str, str]) -> tuple[str, str, bool] | None:
    """(group, queue, cancel-in-progress) of a `concurrency:` block, expressions evaluated."""
    if not block:
        return None
    if isinstance(block, str):
        return interpolate(block, context), "single", False
    cancel = block.get("cancel-in-progress", False)
    if isinstance(cancel, str):
        cancel = interpolate(cancel, context) == "true"
    return interpolate(block["group"], context), block.get("queue", "single"), bool(cancel)


def schedule_runs(
    workflow: Mapping[str, Any], arrivals: list[tuple[int, dict[str, str]]], duration: int = 3
) -> list[dict[str, str]]:
    """Each arriving run's job results ("cancelled" included) once everything has settled;
    every job takes `duration` ticks once it runs."""
    jobs, groups = workflow["jobs"], Concurrency()
    runs: list[dict[str, Slot]] = []
    contexts: list[dict[str, str]] = []
    whole: list[Slot] = []

    def cancel(slot: Slot) -> None:
        groups.leave(slot)
        if slot.job is None:  # a cancelled run cancels every job it has not finished
            for job in runs[slot.run].values():
                if job.state in ("new", "pending", "running"):
                    groups.leave(job)
                    job.state = "cancelled"
        slot.state = "cancelled"

    for tick in range(400):
        for at, context in arrivals:
            if at == tick:
                number = len(runs)
                contexts.append({**context, "github.run_id": str(1000 + number)})
                runs.append({name: Slot(number, name) for name in jobs})
                whole.append(Slot(number, None))
                found = settings_of(workflow.get("concurrency"), contexts[number])
                if found is None:
                    whole[number].state = "running"
                else:
                    for loser in groups.enter(whole[number], *found):
                        cancel(loser)
        for slot in groups.startable():
            slot.state, slot.ends = "running", tick + duration
        for number, run in enumerate(runs):
            if whole[number].state != "running":
                continue
            for name, slot in run.items():
                if slot.state == "running" and slot.job and slot.ends <= tick:
                    slot.state = "success"
                    groups.leave(slot)
                if slot.state != "new" or any(run[n].state not in FINAL for n in needs(jobs[name])):
                    continue
                results = {n: run[n].state for n in needs(jobs[name])}
                if not _would_run(jobs[name], contexts[number], results):
                    slot.state = "skipped"
                    continue
                found = settings_of(jobs[name].get("concurrency"), contexts[number])
                if found is None:
                    slot.state, slot.ends = "running", tick + duration
                else:
                    for loser in groups.enter(slot, *found):
                        cancel(loser)
            if all(slot.state in FINAL for slot in run.values()):
                whole[number].state = "success"
                groups.leave(whole[number])
        for slot in groups.startable():
            slot.state, slot.ends = "running", tick + duration
    assert all(w.state in FINAL for w in whole), "the simulation did not settle"
    return [{name: slot.state for name, slot in run.items()} for run in runs]


FINAL = frozenset({"success", "failure", "skipped", "cancelled"})


def _would_run(
    job: Mapping[str, Any], context: Mapping[str, str], results: Mapping[str, str]
) -> bool:
    calls = {
        "success": all(r == "success" for r in results.values()),
        "failure": any(r == "failure" for r in results.values()),
        "always": True,
        "cancelled": False,
    }
    condition = str(job.get("if", "true"))
    if not any(call in condition for call in STATUS_CALLS) and not calls["success"]:
        return False
    local = {**context, **{f"needs.{n}.result": r for n, r in results.items()}}
    return condition == "true" or bool(evaluate(condition, local, calls))


def push(sha: str) -> dict[str, str]:
    return {**event("push"), "github.sha": sha}


# Three merges in a row, then a dispatch and the weekly schedule while they all still wait.
BUSY_MORNING = [
    (0, push("1" * 40)),
    (1, push("2" * 40)),
    (2, push("3" * 40)),
    (3, {**event("workflow_dispatch", git_sha="1" * 40), "github.sha": "3" * 40}),
    (4, {**event("schedule"), "github.sha": "3" * 40}),
]


def test_no_release_is_lost_to_a_dispatch_or_the_schedule() -> None:
    results = schedule_runs(load_workflow(CI.read_text()), BUSY_MORNING)
    for number in range(3):  # each merge moves :main and gets its snapshot
        assert results[number]["release"] == "success", (number, results[number])
        assert results[number]["snapshot"] == "success", (number, results[number])
    assert results[3]["snapshot"] == "success"  # the dispatch's snapshot
    assert results[4]["release"] == "success"  # the weekly rebuild moves :main too
    assert not any("cancelled" in run.values() for run in results), results


def test_the_simulation_sees_a_release_lost_without_queueing() -> None:
    """The same morning under the old settings (one workflow group per ref, one waiting run) and
    with `queue: max` dropped from the release jobs: releases are cancelled, so the check above
    is not vacuous."""
    text = CI.read_text().replace("      queue: max\n", "")
    without_queue = load_workflow(text)
    lost = schedule_runs(without_queue, BUSY_MORNING)
    assert any(run["release"] == "cancelled" or run["snapshot"] == "cancelled" for run in lost)
    old = load_workflow(text)
    old["concurrency"] = {
        "group": "ci-${{ github.event.pull_request.number || github.ref }}",
        "cancel-in-progress": "${{ github.event_name == 'pull_request' }}",
    }
    lost = schedule_runs(old, BUSY_MORNING)
    assert any(run["release"] == "cancelled" for run in lost[:3]), lost


def test_a_pull_request_cancels_its_own_older_run_and_nothing_else() -> None:
    pr = event("pull_request", "refs/pull/7/merge", pr="7")
    other = event("pull_request", "refs/pull/8/merge", pr="8")
    results = schedule_runs(
        load_workflow(CI.read_text()),
        [(0, push("1" * 40)), (1, pr), (2, other), (3, pr)],
    )
    assert results[0]["snapshot"] == "success"  # main's release is untouched
    assert "cancelled" in results[1].values()  # the older run of PR 7
    assert results[2]["test"] == results[3]["test"] == "success"
    assert results[3]["sandbox-image"] == "success"


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
    # The release jobs talk to the registry and Daytona only: no engine set-up.
    for name in ("release", "snapshot"):
        assert "scripts/setup" not in installs[name], name
    # No login action anywhere: a login leaves its token in ~/.docker/config.json for every
    # later step; the pipeline (and the image tests) log in to a temporary config instead.
    for name, job in jobs.items():
        assert not any("login" in str(s.get("uses", "")) for s in job["steps"]), name
    # Every job that holds a write token or Daytona's secrets runs an exactly pinned nox, never
    # whatever version an index serves that day next to those tokens.
    for name, job in jobs.items():
        writes = "write" in str(job.get("permissions", {}).get("packages", ""))
        if writes or "environment" in job:
            nox_lines = [line for line in installs[name].splitlines() if " nox " in line]
            assert nox_lines, name
            for line in nox_lines:
                assert re.search(r"pipx run --spec 'nox\[uv\]==[\d.]+' nox ", line), (name, line)


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

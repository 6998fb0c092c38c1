"""The GitHub Actions workflows, checked offline: schema, zizmor, actionlint, nox sessions, env
names.

GitHub is not needed: check-jsonschema ships GitHub's workflow schema, zizmor runs with
`--offline`, and the sessions and settings come from this checkout. Each checker is also run on
a deliberately bad workflow, so a checker that silently accepts everything fails here too.
"""

from __future__ import annotations

import functools
import importlib
import json
import pkgutil
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
DEPENDABOT = ROOT / ".github" / "dependabot.yml"
BIN = Path(sys.executable).parent  # the venv's bin dir: zizmor is a binary, not a module

# Variables a workflow may set although no pipeline settings model reads them: each is read by
# an action, a tool or a script. Everything else a workflow sets must be a settings name, so a
# typo like SANDBOX_BUILD_CACHES cannot pass silently.
ENV_ALLOW_LIST = {
    "CI": "tests/conftest.py (a missing engine fails instead of skipping), pip, pytest",
    "FORCE_COLOR": "colour in pytest, ruff and nox output",
    "NO_COLOR": "no colour in tools that honour it",
    "PYTHON": "scripts/setup.sh: the interpreter that creates .venv",
    "PIPELINE_TRACEBACK": "noxfile.py: show tracebacks of PipelineError (os.environ, no model)",
    "SANDBOX_TEST_IMAGE": "tests/helpers/given_image.py: the image tier boots this pushed image",
}

BAD_WORKFLOW = """\
name: bad
on: [pull_request_target]
jobs:
  build:
    runs-on: ubuntu-latest
    env:
      SANDBOX_BUILD_CACHES: readwrite
    steps:
      - uses: actions/checkout@v4
      - run: echo "${{ github.event.pull_request.title }}"
      - run: .venv/bin/nox -s lint no_such_session
"""
# Valid YAML, invalid workflow: a step's timeout must be a number or an expression.
BAD_SCHEMA_WORKFLOW = BAD_WORKFLOW + '        timeout-minutes: "soon"\n'


def load_workflow(text: str) -> dict[str, Any]:
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    if True in data:  # YAML 1.1 reads the key `on` as the boolean true
        data["on"] = data.pop(True)
    return data


# --- (a) schema ----------------------------------------------------------------------------


def schema_check(
    *paths: Path, schema: str = "github-workflows"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            f"vendor.{schema}",
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- (b) zizmor ----------------------------------------------------------------------------


def zizmor_findings(*paths: Path) -> list[dict[str, Any]]:
    """zizmor's findings, offline, at its strictest persona (`auditor`).

    Suppressions, if ever needed, go into .github/zizmor.yml (found by zizmor's own config
    discovery) with a comment saying why; zizmor then leaves them out of this list.
    """
    done = subprocess.run(
        [
            str(BIN / "zizmor"),
            "--offline",
            "--persona",
            "auditor",
            "--format",
            "json",
            "--no-progress",
            "--no-exit-codes",
            "--strict-collection",
            *map(str, paths),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"zizmor failed to run:\n{done.stderr[-3000:]}"
    findings = json.loads(done.stdout)
    assert isinstance(findings, list)
    return [finding for finding in findings if not finding.get("ignored")]


def describe(findings: list[dict[str, Any]]) -> str:
    lines = []
    for finding in findings:
        where = [
            f"{loc['symbolic']['key'].get('Local', {}).get('verbatim_path', '?')}:"
            f"{loc['concrete']['location']['start_point']['row'] + 1}"
            for loc in finding.get("locations", [])
            if loc.get("symbolic", {}).get("kind") == "Primary"
        ]
        lines.append(f"{finding['ident']}: {finding['desc']} at {', '.join(where) or '?'}")
    return "\n".join(lines)


# --- (b2) actionlint -----------------------------------------------------------------------


def actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    """actionlint's findings, one per line (expressions, job graph, `needs`, runner labels).
    shellcheck and pyflakes are left out: they are not on every machine, and actionlint would
    silently skip them where they are missing."""
    return subprocess.run(
        [str(BIN / "actionlint"), "-shellcheck=", "-pyflakes=", "-no-color", *map(str, paths)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- (c) nox sessions ----------------------------------------------------------------------


@functools.cache
def nox_sessions() -> frozenset[str]:
    done = subprocess.run(
        [sys.executable, "-m", "nox", "-l"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return frozenset(
        line[2:].split(" -> ", 1)[0].strip()
        for line in done.stdout.splitlines()
        if line[:2] in ("* ", "- ")
    )


def run_scripts(workflow: dict[str, Any]) -> Iterator[str]:
    for job in (workflow.get("jobs") or {}).values():
        for step in job.get("steps") or []:
            if isinstance(step.get("run"), str):
                yield step["run"]


def _commands(script: str) -> Iterator[list[str]]:
    """Each shell command of a script as argv (continuations joined, comments dropped)."""
    for line in script.replace("\\\n", " ").splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        command: list[str] = []
        for word in [*words, ";"]:
            if word in (";", "&&", "||", "|", "exec"):
                if command:
                    yield command
                command = []
            else:
                command.append(word)


_ARRAY = re.compile(r"^\s*(\w+)\+?=\(([^)]*)\)", re.MULTILINE)
_ARRAY_USE = re.compile(r"\$\{(\w+)\[@\]\}")


def _nox_position(argv: list[str]) -> int | None:
    """Where nox's own arguments start: `nox`, `.venv/bin/nox`, `python -m nox`, or a nox run by
    `pipx run [--spec S] nox` / `uvx [--from S] nox`."""
    for index, word in enumerate(argv):
        if Path(word).name == "nox":
            return index + 1
        if argv[index : index + 2] == ["-m", "nox"]:
            return index + 2
    return None


# Where a command's words end: `2>&1`, `>log`, `||`, `;;`, `|`, `&`.
_SHELL_OPERATOR = re.compile(r"[0-9]*[<>]|[|&;]")


def sessions_run_by(script: str, seen: frozenset[Path] = frozenset()) -> set[str]:
    """Session names of every `nox -s ...` in a shell script, following `bash scripts/X.sh`
    into the repository's own scripts (the README's `bash scripts/test.sh` runs nox there)."""
    names: set[str] = set()
    # Shell arrays (`sessions=(a b)`, `sessions+=(c)`), for `nox -s "${sessions[@]}"`.
    arrays: dict[str, list[str]] = {}
    for name, words in _ARRAY.findall(script):
        arrays.setdefault(name, []).extend(words.split())
    for argv in _commands(script):
        if argv[0] in ("bash", "sh") and len(argv) > 1:
            called = (ROOT / argv[1]).resolve()
            if called.is_file() and called.is_relative_to(ROOT) and called not in seen:
                names |= sessions_run_by(called.read_text(), seen | {called})
            continue
        start = _nox_position(argv)
        if start is None:
            continue
        taking = False
        for word in argv[start:]:
            if word in ("-s", "--session", "--sessions"):
                taking = True
            elif word.startswith(("--sessions=", "--session=")):
                names |= set(word.split("=", 1)[1].split(","))
                taking = False
            elif word == "--" or word.startswith("-") or _SHELL_OPERATOR.match(word):
                taking = False
            elif taking and (array := _ARRAY_USE.fullmatch(word)):
                names |= set(arrays.get(array.group(1), []))
            elif taking and "$" not in word:  # "$@": extra sessions chosen by the caller
                names.add(word)
    return names


# --- (d) environment names -----------------------------------------------------------------


def settings_env_names() -> set[str]:
    """Every variable a pydantic-settings model of `pipeline` reads (its validation_alias)."""
    import pipeline

    for module in pkgutil.walk_packages(pipeline.__path__, "pipeline."):
        if module.name.rsplit(".", 1)[-1] != "__main__":  # __main__ runs a command on import
            importlib.import_module(module.name)
    names: set[str] = set()
    pending: list[type[BaseSettings]] = [BaseSettings]
    while pending:
        cls = pending.pop()
        pending += cls.__subclasses__()
        if not cls.__module__.startswith("pipeline"):
            continue
        for name, field in cls.model_fields.items():
            alias = field.validation_alias
            if isinstance(alias, str):
                names.add(alias)
            elif isinstance(alias, AliasChoices):
                names |= {choice for choice in alias.choices if isinstance(choice, str)}
            else:  # no alias: pydantic-settings reads the field name (case-insensitively)
                names.add(name.upper())
    return names


def env_names(workflow: dict[str, Any]) -> set[str]:
    """Keys of the workflow's, every job's and every step's `env:`."""
    blocks = [workflow.get("env")]
    for job in (workflow.get("jobs") or {}).values():
        blocks.append(job.get("env"))
        blocks += [step.get("env") for step in job.get("steps") or []]
    return {key for block in blocks if isinstance(block, dict) for key in block}


# --- the tests -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workflows() -> dict[str, dict[str, Any]]:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml"}
    return {path.name: load_workflow(path.read_text()) for path in WORKFLOWS}


def write_workflow(tmp_path: Path, text: str) -> Path:
    path = tmp_path / ".github" / "workflows" / "bad.yml"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return path


def test_workflows_match_githubs_schema() -> None:
    done = schema_check(*WORKFLOWS)
    assert done.returncode == 0, done.stdout + done.stderr


def test_schema_check_rejects_a_bad_workflow(tmp_path: Path) -> None:
    assert schema_check(write_workflow(tmp_path / "ok", BAD_WORKFLOW)).returncode == 0
    done = schema_check(write_workflow(tmp_path / "bad", BAD_SCHEMA_WORKFLOW))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "'soon' is not of type 'number'" in done.stdout


def test_zizmor_finds_nothing() -> None:
    findings = zizmor_findings(*WORKFLOWS, DEPENDABOT)
    assert not findings, describe(findings)


def test_zizmor_flags_a_bad_workflow(tmp_path: Path) -> None:
    found = {
        finding["ident"] for finding in zizmor_findings(write_workflow(tmp_path, BAD_WORKFLOW))
    }
    expected = {"template-injection", "unpinned-uses", "excessive-permissions", "artipacked"}
    assert expected <= found, found


def test_actionlint_finds_nothing() -> None:
    done = actionlint(*WORKFLOWS)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_flags_a_bad_workflow(tmp_path: Path) -> None:
    bad = BAD_WORKFLOW.replace(
        "runs-on: ubuntu-latest", "needs: nowhere\n    runs-on: ubuntu-latest"
    )
    done = actionlint(write_workflow(tmp_path, bad))
    assert done.returncode == 1, done.stdout + done.stderr
    assert 'job "build" needs job "nowhere" which does not exist' in done.stdout
    assert "potentially untrusted" in done.stdout  # the template injection, as zizmor finds


def test_every_nox_session_a_workflow_runs_exists(workflows: dict[str, dict[str, Any]]) -> None:
    available = nox_sessions()
    assert {"lint", "unit"} <= available
    missing = {}
    for name, workflow in workflows.items():
        used = set().union(*map(sessions_run_by, run_scripts(workflow)))
        assert used, f"{name} runs no nox session"
        if used - available:
            missing[name] = sorted(used - available)
    assert not missing, f"sessions that `nox -l` does not list: {missing}"


def test_the_ci_workflow_runs_the_readme_test_command(
    workflows: dict[str, dict[str, Any]],
) -> None:
    assert "bash scripts/test.sh" in set(run_scripts(workflows["ci.yml"]))
    assert {"lint", "unit", "test_engine"} <= sessions_run_by("bash scripts/test.sh")


def test_session_parser_finds_a_missing_session() -> None:
    scripts = list(run_scripts(load_workflow(BAD_WORKFLOW)))
    used = set().union(*map(sessions_run_by, scripts))
    assert used == {"lint", "no_such_session"}
    assert used - nox_sessions() == {"no_such_session"}
    assert sessions_run_by(
        'set -e\n.venv/bin/nox --no-color -s a b -- --flag\nexec nox --sessions=c,d "$@"'
    ) == {"a", "b", "c", "d"}
    assert sessions_run_by("pipx run --spec 'nox[uv]==1' nox -s e\nuvx nox -s f") == {"e", "f"}
    assert sessions_run_by('s=(a b)\nif x; then\n  s+=(c)\nfi\nnox -s "${s[@]}" "$@"') == {
        "a",
        "b",
        "c",
    }
    assert sessions_run_by("pipx run --spec 'nox[uv]==1' black -s g") == set()


def test_every_env_name_a_workflow_sets_is_read_by_the_pipeline(
    workflows: dict[str, dict[str, Any]],
) -> None:
    known = settings_env_names()
    # The models this project is known to have: if discovery broke, this fails first.
    assert {"SANDBOX_BUILD_CACHE", "GIT_SHA", "PIPELINE_REPORT", "DAYTONA_API_KEY"} <= known
    for name, workflow in workflows.items():
        unknown = env_names(workflow) - known - ENV_ALLOW_LIST.keys()
        assert not unknown, f"{name} sets variables nothing reads: {sorted(unknown)}"


def test_env_check_flags_an_unknown_name() -> None:
    names = env_names(load_workflow(BAD_WORKFLOW))
    assert names - settings_env_names() - ENV_ALLOW_LIST.keys() == {"SANDBOX_BUILD_CACHES"}


def test_secrets_are_only_in_the_steps_that_use_them(
    workflows: dict[str, dict[str, Any]],
) -> None:
    """Secrets never sit in workflow or job `env:`, where every step would see them."""
    secret = re.compile(r"\$\{\{\s*secrets\.")
    for name, workflow in workflows.items():
        blocks = [workflow.get("env") or {}]
        blocks += [job.get("env") or {} for job in workflow["jobs"].values()]
        for block in blocks:
            leaked = [key for key, value in block.items() if secret.search(str(value))]
            assert not leaked, f"{name}: secrets in a shared env block: {leaked}"


def test_every_job_is_bounded_and_every_action_pinned(
    workflows: dict[str, dict[str, Any]],
) -> None:
    pinned = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
    for name, workflow in workflows.items():
        assert workflow["permissions"] == {}, f"{name}: top-level permissions must be {{}}"
        assert "concurrency" in workflow, name
        for job_name, job in workflow["jobs"].items():
            assert isinstance(job.get("timeout-minutes"), int), f"{name}:{job_name}"
            for step in job.get("steps", []):
                uses = step.get("uses")
                if uses:
                    assert pinned.match(uses), f"{name}:{job_name}: {uses} is not a full sha"
                if uses and uses.startswith("actions/checkout@"):
                    assert step.get("with", {}).get("persist-credentials") is False


def test_release_passes_the_pipelines_outputs_on(workflows: dict[str, dict[str, Any]]) -> None:
    release = workflows["ci.yml"]
    jobs = release["jobs"]
    image, snapshot = jobs["image"], jobs["snapshot"]
    assert image["outputs"]["sha"] == "${{ steps.push.outputs.sha }}"
    assert image["outputs"]["digest"] == "${{ steps.push.outputs.digest }}"
    assert snapshot["needs"] == ["image", "release"]
    step = next(s for s in snapshot["steps"] if s.get("id") == "snapshot")
    assert step["env"]["GIT_SHA"] == "${{ needs.image.outputs.sha || inputs.git_sha }}"
    # a digest always: the image job's, or the dispatch's (an empty one fails the session)
    digest = "${{ needs.image.outputs.digest || inputs.image_digest }}"
    assert step["env"]["SANDBOX_IMAGE_DIGEST"] == digest
    assert {"git_sha", "image_digest"} <= release["on"]["workflow_dispatch"]["inputs"].keys()
    # the image tests boot exactly the pushed digest; :main moves to the same one
    tests = next(
        s for s in jobs["image-tests"]["steps"] if "SANDBOX_TEST_IMAGE" in s.get("env", {})
    )
    assert tests["env"]["SANDBOX_TEST_IMAGE"] == (
        "${{ needs.image.outputs.image }}@${{ needs.image.outputs.digest }}"
    )
    main = next(s for s in jobs["release"]["steps"] if s.get("id") == "main")
    assert main["env"]["SANDBOX_IMAGE_DIGEST"] == "${{ needs.image.outputs.digest }}"
    assert '-- --from "$SANDBOX_IMAGE"' in main["run"]
    # the ancestry check has the whole history (private repositories cannot fetch it later)
    checkout = jobs["release"]["steps"][0]
    assert checkout["uses"].startswith("actions/checkout@")
    assert checkout["with"]["fetch-depth"] == 0
    # Runs on main are never cancelled: a release must not stop half-way; releases queue.
    assert "github.event_name == 'pull_request'" in release["concurrency"]["cancel-in-progress"]
    for name in ("release", "snapshot"):
        assert jobs[name]["concurrency"] == {"group": "release-main", "queue": "max"}, name
    for job in release["jobs"].values():
        for step in job["steps"]:
            assert "grep" not in step.get("run", "") or "DriverStatus" in step["run"], (
                "outputs come from $GITHUB_OUTPUT written by the pipeline, not from logs"
            )

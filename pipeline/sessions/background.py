"""`snapshot_local --background` and `--status`: the dev launcher's build, detached.

The worker is `python -m pipeline.sessions.background worker STATE_ROOT COMMAND...`: it runs
COMMAND (a foreground `snapshot_local`, which skips itself when nothing changed) again while a
rerun was asked for, and records each result. It inherits the launcher's environment, so its
settings name the same context, Dockerfile and key. State under `.pipeline/background/<key>/`
(git-ignored, and excluded from the image context).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from pathlib import Path

from pipeline import console
from pipeline.background.builds import (
    BackgroundStart,
    Result,
    Status,
    dump_status,
    run_worker,
    start_background,
    status,
)
from pipeline.errors import BuildError, PipelineError
from pipeline.fastpath.context import cache_file_for, digest_context, ignore_rules
from pipeline.settings.build import PROJECT_ROOT, BuildSettings, load

# Outputs meant for a CI step; a background build in a dev shell must not append to them.
_NOT_FOR_BACKGROUND = ("PIPELINE_REPORT", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY")


def background_key(context: Path, repository: str) -> str:
    name = re.sub(r"[^a-z0-9]+", "-", repository.rsplit("/", 1)[-1].lower()).strip("-")
    digest = hashlib.sha256(f"{os.path.realpath(context)}\0{repository}".encode()).hexdigest()
    return f"{name or 'image'}-{digest[:12]}"


def _key(settings: BuildSettings) -> str:
    return background_key(settings.build_context, settings.image_repository)


def state_root() -> Path:
    return load(BuildSettings).background_dir or PROJECT_ROOT / ".pipeline" / "background"


def tree_state(settings: BuildSettings) -> str | None:
    """What a build would start from, cheaply (stat-cached): the context's files as buildx sends
    them and the Dockerfile. None when unreadable (then any call asks for a rerun)."""
    context, dockerfile = settings.build_context, settings.dockerfile
    try:
        rules = ignore_rules(dockerfile, context)
        cache = cache_file_for((settings.fingerprint_dir,), context, rules)
        files = digest_context(context, rules, cache)
        recipe = hashlib.sha256(dockerfile.read_bytes()).hexdigest()
    except (OSError, PipelineError):
        return None
    return hashlib.sha256(f"{files.digest}\0{recipe}".encode()).hexdigest()


def launch() -> BackgroundStart:
    settings = load(BuildSettings)
    repository, key, root = settings.image_repository, _key(settings), state_root()
    worker = [
        sys.executable, "-m", "pipeline.sessions.background", "worker", str(root),
        sys.executable, "-m", "pipeline", "snapshot_local",
    ]  # fmt: skip
    started = start_background(root, key, worker, tree_state=tree_state(settings), cwd=PROJECT_ROOT)
    if started.outcome == "started":
        console.step(f"building {repository}:local in the background (pid {started.pid})")
    elif started.outcome == "already-building":
        console.step(f"a background build of {repository}:local is already running; not started")
    else:
        console.step(
            f"a background build of {repository}:local is running and the tree changed since it "
            "started: it builds again when it ends"
        )
    console.output(str(started.log))  # the log's path, once, on stdout (for launchers)
    return started


def show_status(*, as_json: bool = False) -> Status:
    current = status(state_root(), _key(load(BuildSettings)))
    if as_json:
        console.output(dump_status(current))
        return current
    console.output(current.state)
    if current.state == "building" and current.started_at:
        console.say(f"building since {_when(current.started_at)} (pid {current.pid})")
    if current.rerun_pending:
        console.say("the tree changed while it builds: it builds again when it ends")
    last, good = current.last, current.last_good
    if last and last.ok:
        console.say(
            f"last build: {last.image} {last.detail}, {last.duration_s:.1f} s, "
            f"finished {_when(last.finished_at)}"
        )
    elif last:
        console.say(f"last build failed {_when(last.finished_at)}: {last.error}")
        if good:
            console.say(f"last good: {good.image}, {_when(good.finished_at)}")
    console.say(f"log: {current.log}")
    return current


def _when(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def command_build(command: Sequence[str], report: Path) -> Result:
    """Runs `command` with its output in our log; its report or its one `error:` line is the
    result."""
    report.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in _NOT_FOR_BACKGROUND}
    env["PIPELINE_REPORT"] = str(report)
    error = ""
    with subprocess.Popen(
        list(command),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
        errors="replace",
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)
            if line.startswith("error: "):
                error = line.removeprefix("error: ").strip()
    if process.returncode:
        raise BuildError(error or f"{command[-1]} exited with {process.returncode}")
    return _result(report)


def _result(report: Path) -> Result:
    try:
        built = json.loads(report.read_text()).get("build") or {}
    except (OSError, ValueError, AttributeError):
        built = {}
    tags = built.get("tags") or [built.get("image") or "?"]
    local = [t for t in tags if str(t).endswith(":local")]
    image = str((local or tags)[0])
    if built.get("skipped"):
        return Result(image=image, detail="(unchanged: tagged, not built)")
    cached = f"{built.get('steps_cached', '?')}/{built.get('steps_total', '?')} steps cached"
    return Result(image=image, detail=f"(built, {cached})")


def worker(root: Path, command: Sequence[str]) -> int:
    settings = load(BuildSettings)
    key = _key(settings)
    ok = run_worker(
        root,
        key,
        partial(command_build, command, root / key / "report.json"),
        tree_state=lambda: tree_state(settings),
    )
    return 0 if ok else 1


if __name__ == "__main__":
    if sys.argv[1:2] != ["worker"] or len(sys.argv) < 4:
        sys.exit("usage: python -m pipeline.sessions.background worker STATE_ROOT COMMAND...")
    sys.exit(worker(Path(sys.argv[2]), sys.argv[3:]))

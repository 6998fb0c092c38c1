"""Replay the last decision of `snapshot_local` when nothing it read has changed since.

The full path of an unchanged build (build/run.py) means, under nox, a second Python importing
pydantic: more than raw buildx takes to find nothing to do. So each decision that ends with the
tags on an image whose label matches leaves a record: what it read (`Watch`) and what it saw
(`Observation`). The next run observes the same things and, when every one is as recorded,
prints the recorded outcome without starting anything.

What is observed covers the fingerprint (rules/fingerprint.py): a keyed digest of every variable
the settings read; HEAD, branch, dirtiness and origin URL, asked of git itself so that every
config file and include counts; the context through the fingerprint's own walk and stat cache;
every other file the decision read (Dockerfile, ignore files, CA bundle, apt sources, the
pipeline's code); the builder buildx uses; and the images' ids, straight from the engine API.
Anything that cannot be observed means no replay. A record is written only when what the run saw
before deciding equals what it sees after, so a change made during a run is never recorded.

Standard library only, and no syntax newer than Python 3.10: it runs in nox's own interpreter.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline.docker import endpoint
from pipeline.docker.endpoint import Location
from pipeline.errors import PipelineError
from pipeline.fastpath.context import digest_context, file_digest, ignore_rules
from pipeline.fastpath.files import local_key, read_json, write_json
from pipeline.git.runner import git
from pipeline.process_group import Finished

RECORD_FORMAT = 3
# Set by noxfile.py for `python -m pipeline` after a replay it tried found a change: the child
# does not observe the same things again (internal: not a setting).
TRIED_VARIABLE = "PIPELINE_REPLAY_TRIED"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
GIT_TIMEOUT_S = 10
# SANDBOX_FAST_PATH's values that turn it off, as the settings' bool reads them
OFF_VALUES = ("0", "off", "false", "no", "n", "f")


@dataclass(frozen=True)
class Watch:
    """What a replay observes; chosen by the full path, which knows what its decision read."""

    context: str
    dockerfile: str
    cache_file: str | None  # the fingerprint's stat cache for this context
    env_names: tuple[str, ...]  # the settings' variables (matched as pydantic-settings does)
    env_prefixes: tuple[str, ...]  # every variable starting so counts too (buildx's own)
    report_names: tuple[str, ...]  # when one is set, the full path runs (it writes reports)
    files: tuple[str, ...]
    refs: tuple[str, ...] = ()  # images whose ids must be as recorded


@dataclass(frozen=True)
class Observation:
    env: str
    git: tuple[str, str, bool, str]  # HEAD commit, branch (or "(detached)"), dirty, origin URL
    context: str
    files: dict[str, str | None]
    # the builder buildx uses, `name:driver:endpoint` (the first build in a new Docker config
    # writes buildx's files; what they decide is what matters)
    builder: str
    images: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Record:
    watch: Watch
    seen: Observation
    message: str  # the outcome, printed again by a replay


class Unobservable(Exception):
    pass


def cache_root(env: Mapping[str, str]) -> Path:
    """settings/build.py `cache_dir`, for the replay (which runs before any settings load)."""
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sandbox-pipeline"


def record_path(env: Mapping[str, str]) -> Path:
    """One record per checkout of the pipeline, outside every build context it sends."""
    key = hashlib.sha256(str(PROJECT_ROOT).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return cache_root(env) / "replay" / f"snapshot_local-{key}.json"


def observe(watch: Watch, env: Mapping[str, str], refs: Sequence[str] | None = None) -> Observation:
    """What `watch` names, as it is now; the images of `refs` (default: `watch.refs`)."""
    wanted = watch.refs if refs is None else refs
    location = Location.from_env(env)  # an engine it cannot ask: endpoint.Unsupported
    images = endpoint.image_ids(location, wanted) if wanted else {}
    context = Path(watch.context)
    rules = ignore_rules(Path(watch.dockerfile), context)
    cache_file = Path(watch.cache_file) if watch.cache_file else None
    return Observation(
        env=env_digest(watch.env_names, env, local_key(cache_root(env)), watch.env_prefixes),
        git=git_state(context),
        context=digest_context(context, rules, cache_file).digest,
        files={path: file_state(path) for path in watch.files},
        builder=endpoint.builder_identity(location),
        images=images,
    )


def env_digest(
    names: Iterable[str], env: Mapping[str, str], key: bytes, prefixes: tuple[str, ...] = ()
) -> str:
    """A keyed digest of the named variables' values (names matched case-insensitively and
    empty values left out, as the settings read them; values may be secrets, hence the key),
    and of every variable starting with one of `prefixes` (as buildx reads them)."""
    wanted = {name.lower() for name in names}
    pairs = sorted(
        (k, v)
        for k, v in env.items()
        if v != "" and (k.lower() in wanted or (prefixes and k.startswith(prefixes)))
    )
    return hmac.new(key, json.dumps(pairs).encode("utf-8", "surrogateescape"), "sha256").hexdigest()


def git_state(path: Path) -> tuple[str, str, bool, str]:
    """HEAD's commit, the branch and dirtiness from one `git status` (dirty: any entry, as
    `git status --porcelain` counts them; untracked files count, ignored ones do not), and the
    origin's URL (a build's source label) as git's whole config resolves it."""
    status = _git(path, "status", "--porcelain=v2", "--branch")
    if status.code:
        raise Unobservable(f"git status failed: {status.err.strip()}")
    lines = status.out.splitlines()
    # "# branch.oid <commit>", "# branch.head <name>", …: (name, value); any other line: an entry
    headers = dict(line[2:].partition(" ")[::2] for line in lines if line.startswith("# "))
    dirty = any(line and not line.startswith("# ") for line in lines)
    commit = headers.get("branch.oid", "")
    if len(commit) not in (40, 64):
        raise Unobservable("HEAD has no commit")
    origin = _git(path, "config", "--get", "remote.origin.url")
    if origin.code not in (0, 1):  # 1: not set
        raise Unobservable(f"git config failed: {origin.err.strip()}")
    return commit, headers.get("branch.head", ""), dirty, origin.out.strip()


def _git(path: Path, *args: str) -> Finished:
    try:
        return git(path, *args, timeout_s=GIT_TIMEOUT_S)
    except (OSError, PipelineError) as error:
        raise Unobservable(f"git {args[0]}: {error}") from None


def file_state(path: str) -> str | None:
    """A file's content digest, a directory's listing; None when absent. Content, not stat:
    buildx rewrites its config files unchanged on every build."""
    if os.path.isdir(path):
        return "dir:" + "\0".join(sorted(os.listdir(path)))
    return file_digest(path) if os.path.exists(path) else None  # gone meanwhile: ContextError


def fast_path_off(env: Mapping[str, str]) -> bool:
    """SANDBOX_FAST_PATH=off (any case, as the settings read it): never skip, never replay."""
    values = [v for k, v in env.items() if k.upper() == "SANDBOX_FAST_PATH" and v != ""]
    return bool(values) and values[-1].strip().lower() in OFF_VALUES


def write_record(record: Record, env: Mapping[str, str]) -> None:
    write_json(record_path(env), {"format": RECORD_FORMAT, **asdict(record)})


def forget(env: Mapping[str, str]) -> None:
    """No record: the next run takes the full path (quietly, whatever stands in the way)."""
    with contextlib.suppress(OSError):
        record_path(env).unlink(missing_ok=True)


def load_record(env: Mapping[str, str]) -> Record | None:
    document = read_json(record_path(env), RECORD_FORMAT)
    try:
        parts: list[dict[str, Any]] = [  # JSON made the tuples lists
            {k: tuple(v) if isinstance(v, list) else v for k, v in document[part].items()}
            for part in ("watch", "seen")
        ]
        return Record(Watch(**parts[0]), Observation(**parts[1]), str(document["message"]))
    except (KeyError, TypeError, AttributeError):
        return None


def remember(
    watch: Watch,
    before: Observation,
    image_id: str,
    tags: Sequence[str],
    fixed: Mapping[str, str],
    message: str,
    env: Mapping[str, str],
    *,
    built_from: tuple[str, str],
) -> bool:
    """Record a decision that left `tags` on `image_id`, if nothing moved while it was made
    (else the old record goes too); True when written. `before` was observed ahead of it;
    `fixed` are the ids the decision itself used (its bases); `built_from` the context and
    Dockerfile digests it decided on (a file caught mid-write can be read the same way twice
    around a build that read it otherwise, so the observations agreeing is not enough). Never
    raises: a record that cannot be made only costs the next run the full path."""
    if fast_path_off(env):
        forget(env)
        return False
    expected = [*before.images.items(), *fixed.items(), *((tag, image_id) for tag in tags)]
    refs = tuple(dict.fromkeys(ref for ref, _ in expected))
    # the record is an optimisation; the decision stands without it
    with contextlib.suppress(Exception):
        after = observe(watch, env, refs)
        steady = (
            replace(before, images={}) == replace(after, images={})  # images: ref by ref
            and (after.context, file_state(watch.dockerfile)) == built_from
            and all(after.images.get(ref) == seen for ref, seen in expected)
        )
        if steady:
            write_record(Record(replace(watch, refs=refs), after, message), env)
            return True
    forget(env)
    return False


def replay(argv: Sequence[str], env: Mapping[str, str], say: Callable[[str], None]) -> bool:
    """`snapshot_local` without options, when its last decision still holds: say its outcome
    and return True. False (run the full path) otherwise, whatever the reason."""
    if argv or fast_path_off(env):
        return False
    try:
        record = load_record(env)
        if record is None:
            return False
        reports = {name.lower() for name in record.watch.report_names}
        asked = any(k.lower() in reports and v for k, v in env.items())  # a report: full path
        if asked or observe(record.watch, env) != record.seen:
            return False
    except Exception:
        return False
    say(record.message)
    return True

"""Benchmark of the build core, ratios measured side by side in one run.

  nox -s bench                                   # tiny fixture image
  nox -s bench -- --image sandbox                # the real sandbox/Dockerfile
  nox -s bench -- --nox /path/to/nox             # the nox a user has (pipx, uvx)

(1) overhead: an unchanged `nox -s snapshot_local` and `python -m pipeline snapshot_local`
    against the raw `docker buildx build --load` of the same context with the same flags and
    base (goal <= 1.0x); nox's start-up is measured on its own. Each pipeline run must be
    replayed (pipeline/fastpath/replay.py), or the bench stops. The full path (settings, git,
    fingerprint, label; what runs when a report is asked for) is measured as well. The nox is
    the one `--nox` names, else `nox` on PATH, else this Python's.
(2) registry cache: on an engine of the bench's own with an empty build cache (started for the
    purpose, tests/helpers/engines.py; pruned between builds), a build warmed from the registry
    cache against a cold one (goal <= 0.15x, every step cached). The user's engine and its build
    cache are never pruned. With --image sandbox that engine gets network access through
    slirp4netns (apt, npm) and a copy of SANDBOX_BASE_IMAGE.
Runs alternate between the contenders so machine noise hits both alike; medians are printed.
The images the bench tags on the user's engine (all under its own registry's host) are removed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.build.record import REPLAYED  # noqa: E402
from pipeline.git.meta_context import dockerfile_wants_git_context, make_git_context  # noqa: E402
from pipeline.registry.server import start_registry  # noqa: E402
from pipeline.settings.build import _default_ca_bundle  # noqa: E402
from tests.conftest import choose_base, make_fixture_repo  # noqa: E402
from tests.helpers.engines import EngineStartError, OwnEngine, start_engine  # noqa: E402
from tests.helpers.host_engine import (  # noqa: E402
    enter_session,
    image_references,
    leave_session,
    registry_host,
)


def timed(argv: list[str], env: dict[str, str], expect: str | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"bench: command failed: {argv[:4]}...\n{done.stderr[-2000:]}")
    if expect is not None and expect not in done.stdout + done.stderr:
        sys.exit(f"bench: {argv[:4]}... did not say {expect!r}:\n{done.stderr[-2000:]}")
    return elapsed


def nox_command(given: str | None) -> list[str]:
    """The nox to measure: the one given, else the user's (on PATH), else this Python's."""
    if given:
        return [given]
    found = shutil.which("nox")
    return [found] if found else [sys.executable, "-m", "nox"]


def main() -> None:
    cli = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    cli.add_argument("--image", choices=("fixture", "sandbox"), default="fixture")
    cli.add_argument("--runs", type=int, default=7, help="repetitions of the overhead pair")
    cli.add_argument("--cache-runs", type=int, default=2, help="repetitions of cold/warm")
    cli.add_argument("--nox", help="the nox executable to measure (default: nox on PATH)")
    cli.add_argument(
        "--skip-cache-rounds", action="store_true", help="only (1); no engine of the bench's own"
    )
    args = cli.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-"))
    registry = start_registry(work / "registry", username="bench")
    enter_session()  # test sessions meanwhile leave the bench's test-named images alone
    try:
        env = dict(os.environ, DOCKER_CONFIG=str(work / "docker-config"))
        for key in ("PUSH", "GIT_SHA", "PIPELINE_REPORT", "GITHUB_OUTPUT"):
            env.pop(key, None)
        if args.image == "fixture":
            repo = make_fixture_repo(work / "repo", registry.host)
            context, dockerfile, repository = (
                repo.path,
                repo.path / "sandbox/Dockerfile",
                repo.repository,
            )
        else:
            context, dockerfile = ROOT, ROOT / "sandbox" / "Dockerfile"
            repository = f"{registry.host}/iterate/sandbox-bench"
        env.update(
            SANDBOX_BUILD_CONTEXT=str(context),
            SANDBOX_DOCKERFILE=str(dockerfile),
            SANDBOX_IMAGE_REPOSITORY=repository,
            REGISTRY_USERNAME=registry.username,
            REGISTRY_PASSWORD=registry.password,
        )
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=context, capture_output=True, text=True, check=True
        ).stdout.strip()
        extra_args: list[str] = []
        # The base the pipeline builds from (it finds one itself: the Dockerfile's own, else the
        # offline base); the raw build gets the same.
        base = choose_base(env.get("SANDBOX_BASE_IMAGE"), dockerfile)
        if base:
            extra_args = ["--build-arg", f"BASE_IMAGE={base}"]
        # The raw build gets what the pipeline passes too (made once here; the pipeline makes
        # its git-meta clone on every run, which is part of the overhead being measured).
        if dockerfile_wants_git_context(dockerfile):
            common = Path(
                subprocess.run(
                    ["git", "rev-parse", "--git-common-dir"],
                    cwd=context,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.strip()
            )
            clone = make_git_context((context / common).resolve(), sha, "main", None, work / "gm")
            extra_args += ["--build-context", f"git-meta={clone}"]
        if ca := _default_ca_bundle():
            extra_args += ["--secret", f"id=extra_ca_certs,src={ca}"]
        nox = [*nox_command(args.nox), "-f", str(ROOT / "noxfile.py")]
        ours = [*nox, "-s", "snapshot_local"]
        module = [sys.executable, "-m", "pipeline", "snapshot_local"]
        plan = json.loads(
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import json; from pipeline.build.facts import gather;"
                    "from pipeline.rules.build_plan import plan_build;"
                    "from pipeline.settings.build import BuildSettings, load;"
                    "facts, _ = gather(load(BuildSettings), 'local', None, dry_run=True);"
                    "print(json.dumps(plan_build(facts).labels))",
                ],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        raw = [
            "docker",
            "buildx",
            "build",
            "--progress",
            "plain",
            "--load",
            "--provenance=false",
            "--sbom=false",
            "-f",
            str(dockerfile),
            "--build-arg",
            f"GIT_SHA={sha}",
            *extra_args,
            *[a for k, v in plan.items() for a in ("--label", f"{k}={v}")],
            # A tag of its own: were it :local, the pipeline's next run would find an image
            # without its fingerprint label there and build instead of skipping.
            "-t",
            f"{repository}:bench-raw",
            str(context),
        ]

        print(f"image: {args.image} ({dockerfile})", flush=True)
        print(f"nox:   {' '.join(ours)}", flush=True)
        timed(ours, env)  # the first build, and the session's venv: every later run is unchanged
        timed(raw, env)  # the raw build's own image (its labels differ from the pipeline's)
        # An unchanged run is replayed (pipeline/fastpath/replay.py) unless a report is asked
        # for: then the full path decides (settings, git, fingerprint, label), measured apart.
        replayed = REPLAYED
        full_env = dict(env, PIPELINE_REPORT=str(work / "full-path-report.json"))
        ours_s, raw_s, nox_s, module_s, full_s = [], [], [], [], []
        for _ in range(args.runs):
            ours_s.append(timed(ours, env, replayed))
            raw_s.append(timed(raw, env))
            nox_s.append(timed([*nox, "-l"], env))
            module_s.append(timed(module, env, replayed))
            full_s.append(timed(module, full_env, "nothing built"))
        o, r, m, f = (statistics.median(x) for x in (ours_s, raw_s, module_s, full_s))
        print(f"(1) unchanged rebuild, median of {args.runs}:")
        print(f"    raw docker buildx build --load {r:6.2f} s")
        print(f"    nox -s snapshot_local          {o:6.2f} s   ratio {o / r:.2f}x (goal <= 1.0x)")
        print(f"    python -m pipeline (no nox)    {m:6.2f} s   ratio {m / r:.2f}x")
        print(f"    the full path (a report asked) {f:6.2f} s   ratio {f / r:.2f}x")
        print(f"    nox -l (nox start-up alone)    {statistics.median(nox_s):6.2f} s", flush=True)
        if args.skip_cache_rounds:
            return

        push_env = dict(env, PUSH="1", PIPELINE_REPORT=str(work / "report.json"))
        port = int(registry.host.rsplit(":", 1)[1])
        cache_rounds(args, ours, push_env, repository, work, port)
    finally:
        registry.stop()
        # What the bench tagged on the user's engine: everything under its registry's host.
        mine = [ref for ref in image_references() if registry_host(ref) == registry.host]
        if mine:
            subprocess.run(["docker", "image", "rm", *mine], capture_output=True, check=False)
        leave_session()


def own_engine_for_cache(image: str, base: str | None, registry_port: int) -> OwnEngine:
    try:
        engine = start_engine(tcp=False, egress=image == "sandbox")
    except EngineStartError as error:
        sys.exit(f"bench: (2) needs an engine of its own, which did not start: {error}")
    engine.reach_host_port(registry_port)
    if base:  # the offline base lives in the user's engine: a copy, nothing pulled
        save = subprocess.Popen(["docker", "image", "save", base], stdout=subprocess.PIPE)
        load = subprocess.run(
            ["docker", "image", "load"],
            stdin=save.stdout,
            env=dict(os.environ, **engine.env()),
            capture_output=True,
            check=False,
        )
        if save.wait() or load.returncode:
            engine.stop()
            sys.exit(f"bench: could not copy {base} into the bench's engine")
    return engine


def cache_rounds(
    args: argparse.Namespace,
    ours: list[str],
    push_env: dict[str, str],
    repository: str,
    work: Path,
    registry_port: int,
) -> None:
    engine = own_engine_for_cache(args.image, push_env.get("SANDBOX_BASE_IMAGE"), registry_port)
    cold_s, warm_s, cached = [], [], []
    try:
        for i in range(args.cache_runs):
            # A repository per round: the cold build finds no cache and exports one; the warm
            # build, after the engine's build cache is pruned again, can only get it from there.
            round_env = dict(push_env, SANDBOX_IMAGE_REPOSITORY=f"{repository}-round{i}")
            round_env.update(engine.env())
            engine.docker("builder", "prune", "-af")  # the bench's own engine: nobody else's
            cold_s.append(timed(ours, round_env))
            engine.docker("builder", "prune", "-af")
            warm_s.append(timed(ours, round_env))
            report = json.loads((work / "report.json").read_text())["build"]
            cached.append(f"{report['steps_cached']}/{report['steps_total']}")
    finally:
        engine.stop()
    c, w = statistics.median(cold_s), statistics.median(warm_s)
    print(
        f"(2) own engine, empty build cache (builder prune -af of that engine), median of "
        f"{args.cache_runs}:"
    )
    print(f"    cold build (no cache)          {c:6.2f} s")
    print(f"    warm from registry cache       {w:6.2f} s   ratio {w / c:.2f}x (goal <= 0.15x)")
    print(f"    steps cached in warm builds    {', '.join(cached)}")


if __name__ == "__main__":
    main()

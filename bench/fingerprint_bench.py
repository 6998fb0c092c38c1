"""Time to fingerprint a build's inputs, cold (no stat cache: every file read and hashed) and
warm (stat cache from the previous run: nothing re-read).

  .venv/bin/python bench/fingerprint_bench.py                # this repo: root context,
                                                             # sandbox/Dockerfile(.dockerignore)
  .venv/bin/python bench/fingerprint_bench.py --runs 20

Settings come from the environment as for `nox -s snapshot_local` (SANDBOX_BASE_IMAGE,
SANDBOX_BUILD_CONTEXT, ...). Two figures each: the context alone (walk + digests), and the whole
fingerprint (plus Dockerfile, CA bundle and one `docker image inspect` of the base image and
`:local`). The stat cache lives in a temporary folder, never in the repository's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.build.facts import build_base, gather  # noqa: E402
from pipeline.build.inputs import read_inputs  # noqa: E402
from pipeline.docker import images  # noqa: E402
from pipeline.docker.cli import find_docker  # noqa: E402
from pipeline.fastpath.context import cache_file_for, digest_context, ignore_rules  # noqa: E402
from pipeline.rules.build_plan import BuildPlan, build_args, fingerprint_for, plan_build  # noqa: E402
from pipeline.settings.build import BuildSettings, load  # noqa: E402

SETTINGS = load(BuildSettings)


def plan() -> BuildPlan:
    facts, _ = gather(SETTINGS, "local", None, dry_run=True)
    return plan_build(facts)


def context_only(built: BuildPlan, cache_dir: Path) -> tuple[float, str]:
    started = time.perf_counter()
    context = built.request.context
    rules = ignore_rules(built.request.dockerfile, context)
    result = digest_context(context, rules, cache_file_for([cache_dir], context, rules))
    elapsed = time.perf_counter() - started
    summary = (
        f"{result.files} paths, {result.hashed_files} files read "
        f"({result.hashed_bytes / 1e6:.1f} MB), ignore file {result.ignore.path}"
    )
    return elapsed, summary


def whole(built: BuildPlan, cache_dir: Path) -> tuple[float, str]:
    """What a local build reads for its fingerprint (build/inputs.py), engine look-ups included."""
    started = time.perf_counter()
    docker = find_docker(SETTINGS.docker)
    facts, _ = gather(SETTINGS, "local", None, dry_run=True)
    inputs = read_inputs(
        lambda refs: images.inspect(docker, refs),
        facts.request,
        facts.git,
        build_args(facts.git, build_base(docker, SETTINGS)),
        git_meta=built.git_context is not None,
        builder_driver="docker",
        cache_dirs=[cache_dir],
        key_dir=cache_dir,
        env=SETTINGS.buildx_env,
    )
    value, note = fingerprint_for(built, inputs)
    elapsed = time.perf_counter() - started
    return elapsed, f"{value or 'unknown'} ({note})"


def main() -> None:
    cli = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    cli.add_argument("--runs", type=int, default=10, help="warm repetitions (median printed)")
    args = cli.parse_args()
    built = plan()
    print(f"context:    {built.request.context}\ndockerfile: {built.request.dockerfile}")
    for name, measure in (("context only", context_only), ("whole fingerprint", whole)):
        with tempfile.TemporaryDirectory(prefix="fingerprint-bench-") as tmp:
            cache_dir = Path(tmp)
            cold, cold_summary = measure(built, cache_dir)
            warm_runs = [measure(built, cache_dir) for _ in range(args.runs)]
        warm = statistics.median(t for t, _ in warm_runs)
        print(f"\n{name}:")
        print(f"  cold: {cold * 1000:7.1f} ms   {cold_summary}")
        print(f"  warm: {warm * 1000:7.1f} ms   median of {args.runs}, {warm_runs[-1][1]}")


if __name__ == "__main__":
    main()

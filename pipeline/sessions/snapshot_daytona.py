"""`snapshot_daytona`, and the steps `snapshot_stage` shares with it.

Daytona is sent a tag, never a digest (it cannot pull one, daytonaio/daytona#4532): a tag the
run has just verified in its registry to resolve to the expected digest, which is
SANDBOX_IMAGE_DIGEST (what the build job pushed and the image tests booted) when set, else what
the tag resolves to at the check. Once the snapshot is active, Daytona's `ref` must name that
same digest; an existing snapshot counts as done only then. A given digest is checked even with
--skip-image-check.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, replace

from pipeline import console
from pipeline.daytona.promotion import Promotion
from pipeline.daytona.snapshots import SNAPSHOT_POLL, Outcome, ensure_snapshot
from pipeline.errors import ConfigError
from pipeline.registry.client import resolve_digest, verify_digest
from pipeline.report import publish
from pipeline.rules.image_ref import daytona_image_problem
from pipeline.rules.snapshot_names import (
    ImageCheck,
    SnapshotSpec,
    image_check,
    sha_image,
    sha_snapshot_name,
    snapshot_name_problem,
)
from pipeline.sessions.daytona_common import LIVE, Seams, api_line, commit
from pipeline.sessions.options import add_setting_flag, parser
from pipeline.settings.build import BuildSettings, ReportSettings, load
from pipeline.settings.daytona import DaytonaSettings, DigestSettings, SnapshotSettings


def snapshot_daytona(argv: Sequence[str], seams: Seams = LIVE) -> None:
    cli = parser("snapshot_daytona")
    cli.add_argument(
        "--name",
        help="snapshot name (default: SANDBOX_SNAPSHOT_NAME, else iterate-sandbox-<sha>[-dirty])",
    )
    cli.add_argument(
        "--force",
        action="store_true",
        help="replace a snapshot of that name that failed, or has another image or resources",
    )
    snapshot_options(cli)
    args = cli.parse_args(argv)
    settings, build = load(SnapshotSettings), load(BuildSettings)
    name = args.name or settings.name
    image = args.image or settings.image
    if name is None or image is None:
        sha, dirty = commit(build)
        name = name or sha_snapshot_name(sha, dirty)
        image = image or sha_image(build.image_repository, sha, dirty)
    job = SnapshotJob.from_args(args, settings, name, image, force=args.force)
    make(job, build, seams)


def snapshot_options(cli: argparse.ArgumentParser) -> None:
    cli.add_argument(
        "--image",
        help="image to snapshot (default: SANDBOX_IMAGE, else "
        "$SANDBOX_IMAGE_REPOSITORY:sha-<sha>[-dirty])",
    )
    add_setting_flag(cli, "--cpu", SnapshotSettings, "vCPUs")
    add_setting_flag(cli, "--memory", SnapshotSettings, "GB")
    add_setting_flag(cli, "--disk", SnapshotSettings, "GB")
    add_setting_flag(cli, "--timeout", SnapshotSettings, "seconds to wait for active")
    cli.add_argument(
        "--skip-image-check",
        action="store_true",
        help="do not read the tag's digest in its registry, nor hold Daytona's pull to it "
        "(SANDBOX_IMAGE_DIGEST, when set, is checked all the same)",
    )


@dataclass(frozen=True)
class SnapshotJob:
    spec: SnapshotSpec
    timeout: float
    dry_run: bool
    image_check: ImageCheck
    image_digest: str | None  # the tag must resolve to it (SANDBOX_IMAGE_DIGEST, --from)
    force: bool = False
    plan: tuple[str, ...] = ()  # extra lines at the top of the printed plan
    promotion: Promotion | None = None  # what `--from` of snapshot_stage found

    @classmethod
    def from_args(
        cls,
        args: argparse.Namespace,
        settings: SnapshotSettings,
        name: str,
        image: str,
        *,
        force: bool = False,
        plan: tuple[str, ...] = (),
        promotion: Promotion | None = None,
    ) -> SnapshotJob:
        """Flags over variables; a bad name or image is one ConfigError, and so is a
        SANDBOX_IMAGE_DIGEST that is not what a promotion found the image to be."""
        for flag, value, problem in (
            ("--name/SANDBOX_SNAPSHOT_NAME", name, snapshot_name_problem(name)),
            ("--image/SANDBOX_IMAGE", image, daytona_image_problem(image)),
        ):
            if problem:
                raise ConfigError(
                    f"{flag} {value!r} is not valid: expected {problem}",
                    "correct the option or variable",
                )
        given = load(DigestSettings).image_digest
        found = promotion.digest if promotion else None
        if given is not None and found is not None and given != found:
            raise ConfigError(
                f"SANDBOX_IMAGE_DIGEST={given}, but {image} is {found}",
                "promote the image that was tested, or unset SANDBOX_IMAGE_DIGEST",
            )
        digest = found or given
        spec = SnapshotSpec(
            name=name,
            image=image,
            cpu=args.cpu or settings.cpu,
            memory=args.memory or settings.memory,
            disk=args.disk or settings.disk,
            entrypoint=settings.entrypoint,
        )
        check = image_check(image_digest=digest, skip_tag_check=args.skip_image_check)
        timeout = args.timeout or settings.timeout
        return cls(spec, timeout, args.dry_run, check, digest, force, plan, promotion)


def make(job: SnapshotJob, build: BuildSettings, seams: Seams) -> None:
    daytona = load(DaytonaSettings)
    _print_plan(job, daytona)
    if job.dry_run:
        if job.promotion:
            console.say(f"dry run: {job.promotion.read} only read for the plan; nothing changed")
        else:
            console.say("dry run: Daytona and the registry were not contacted; nothing changed")
        return
    expected = _expected_digest(job, build)
    wanted = job.spec.model_copy(update={"digest": expected})

    def check() -> None:
        # Right before the first create (or delete): the tag Daytona is sent is the image.
        if expected is not None:
            verify_digest(wanted.image, expected, build)

    with seams.daytona(daytona) as api:
        console.step(f"Daytona snapshot {job.spec.name}")
        outcome = ensure_snapshot(
            api,
            wanted,
            timeout=job.timeout,
            force=job.force,
            check_image=check,
            interval=seams.interval or SNAPSHOT_POLL,
        )
    _report(replace(job, spec=wanted, image_digest=expected), outcome)


def _expected_digest(job: SnapshotJob, build: BuildSettings) -> str | None:
    """The digest the tag must hold, checked now, before Daytona hears of the image; None only
    with --skip-image-check and no given digest."""
    image = job.spec.image
    if job.image_check is ImageCheck.DIGEST:
        assert job.image_digest is not None
        verify_digest(image, job.image_digest, build)
        console.say(f"   image digest verified: {image} is {job.image_digest}")
        return job.image_digest
    if job.image_check is ImageCheck.TAG:
        digest = resolve_digest(image, build)
        console.say(f"   image exists: {image} is {digest}; Daytona must pull that digest")
        return digest
    console.warn(f"--skip-image-check: neither {image}'s digest nor Daytona's pull is checked")
    return None


def _print_plan(job: SnapshotJob, daytona: DaytonaSettings) -> None:
    console.step("Daytona snapshot plan")
    for line in (*job.plan, *job.spec.describe()):
        console.say(line)
    console.say(api_line(daytona))
    console.say(f"deadline:   {job.timeout:g} s")
    if job.image_digest is not None:
        console.say(
            f"digest:     {job.image_digest} (the tag must resolve to it in its registry before "
            "any POST, and Daytona must pull it)"
        )
    console.say(f"image check: {job.image_check}")
    if job.force:
        console.say("force:      replace a failed snapshot or one with another image or resources")


def _report(job: SnapshotJob, outcome: Outcome) -> None:
    spec, snap = job.spec, outcome.snapshot
    console.step(
        f"snapshot {snap.name} is {snap.state} ({outcome.action}, {outcome.duration_s:.1f} s)"
    )
    values = {
        "name": snap.name,
        "id": snap.id,
        "state": snap.state,
        "image": snap.image_name or spec.image,
        "image_digest": job.image_digest,  # verified before any POST and in Daytona's ref
        "promoted_from": job.promotion.source.describe() if job.promotion else None,
        "cpu": snap.cpu,
        "memory": snap.mem,
        "disk": snap.disk,
        "action": outcome.action,
        "duration_s": round(outcome.duration_s, 1),
    }
    publish(
        "snapshot",
        values,
        load(ReportSettings),
        [
            ("snapshot", f"`{snap.name}` ({snap.state}, {outcome.action})"),
            ("id", f"`{snap.id}`"),
            ("image", f"`{values['image']}`"),
            ("image digest", f"`{job.image_digest}` (verified)" if job.image_digest else "-"),
            ("resources", snap.resources()),
            ("duration", f"{outcome.duration_s:.1f} s"),
        ],
    )

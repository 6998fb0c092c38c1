"""`snapshot_push -- --from <sha or tag>`: move `:main` to an image that was pushed (and tested)
already, without building: the registry copies the manifest under `:main` (registry/tags.py), so
`:main` serves the very digest the tests booted. Neither the engine nor the Dockerfile is read.

Gates, in order, before anything is written: the source tag resolves to SANDBOX_IMAGE_DIGEST
when that is set; the image's revision label is the commit the tag names; `:main` never moves
backwards (rules/release.py), and when git cannot tell, the release fails instead of holding.
"""

from __future__ import annotations

from pipeline import console
from pipeline.errors import RegistryError
from pipeline.registry.client import image_revision, resolve_digest
from pipeline.registry.tags import main_tag_move, put_tag
from pipeline.report import publish
from pipeline.rules.release import digest_mismatch, main_source, revision_problem
from pipeline.settings.build import BuildSettings, ReportSettings, load
from pipeline.settings.daytona import DigestSettings

MAIN = "main"


def promote_main(text: str, *, dry_run: bool) -> None:
    settings = load(BuildSettings)
    expected = load(DigestSettings).image_digest
    repository = settings.image_repository
    source = main_source(text, repository)
    main = f"{repository}:{MAIN}"
    console.step(f"Moving {main} to {source.image} (no build)")
    digest = resolve_digest(source.image, settings)
    if expected is not None and (problem := digest_mismatch(expected, digest)):
        raise RegistryError(
            f"{source.image}: {problem}",
            "promote the digest the image tests booted: rerun the release of the build that "
            "pushed it, or set SANDBOX_IMAGE_DIGEST to the digest of the build that was tested",
        )
    pinned = f"{repository}@{digest}"
    if problem := revision_problem(source, image_revision(pinned, settings)):
        raise RegistryError(problem, "promote a tag the pipeline pushed for that commit")
    decision = main_tag_move(main, source.commit, settings.build_context, settings)
    for line in (
        f"source:     {source.image} = {digest}"
        + (" (SANDBOX_IMAGE_DIGEST verified)" if expected else ""),
        f"commit:     {source.commit}",
        f"main:       {main} {'moves' if decision.move else 'stays'}: {decision.reason}",
    ):
        console.say(f"    {line}")
    if dry_run:
        console.step("dry run: the registry and git were only read; nothing was moved")
        return
    written = decision.move and put_tag(repository, digest, MAIN, settings, may_move=True)
    if decision.move:
        console.step(f"{main} is {digest}" + ("" if written else " already; nothing written"))
    else:
        console.warn(decision.reason)
    values = {
        "image": source.image,
        "digest": digest,
        "sha": source.commit,
        "tags": [main] if decision.move else [],
        "pushed": written,
        "built": False,
        "promoted_from": source.image,
        "main_moved": decision.move,
        "main_reason": decision.reason,
    }
    summary = [
        ("source", f"`{source.image}`"),
        ("digest", f"`{digest}`"),
        (":main", "moved" if decision.move else f"not moved: {decision.reason}"),
        ("built", "no: promoted"),
    ]
    publish("build", values, load(ReportSettings), summary=summary)

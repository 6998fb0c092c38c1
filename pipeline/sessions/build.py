"""The build job (build/run.py), or for the dev launcher its background build."""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.build.run import run_build
from pipeline.sessions.options import parser


def snapshot_local(argv: Sequence[str]) -> None:
    cli = parser("snapshot_local")
    cli.add_argument(
        "--background",
        action="store_true",
        help="start the build detached and return at once, printing its log's path (one build "
        "per repository and image; a call during a build asks for one more if the tree changed)",
    )
    cli.add_argument(
        "--status",
        action="store_true",
        help="print idle, building or failed, with the last background build's result",
    )
    cli.add_argument("--json", action="store_true", help="with --status: JSON on stdout")
    args = cli.parse_args(argv)
    if args.status:
        from pipeline.sessions.background import show_status

        show_status(as_json=args.json)
    elif args.background:
        from pipeline.sessions.background import launch

        launch()
    else:
        run_build("local", dry_run=args.dry_run)


def snapshot_push(argv: Sequence[str]) -> None:
    cli = parser("snapshot_push")
    cli.add_argument(
        "--from",
        dest="source",
        metavar="SHA_OR_TAG",
        help="move :main to this commit's pushed image (a full sha, or its tag: sha-<sha>, "
        "sha-<sha>-rebuild-<YYYYMMDD>) without building; checked against SANDBOX_IMAGE_DIGEST "
        "when set; :main never moves backwards",
    )
    args = cli.parse_args(argv)
    if args.source is not None:
        from pipeline.build.promote import promote_main  # no engine, no Dockerfile

        promote_main(args.source, dry_run=args.dry_run)
        return
    run_build("push", dry_run=args.dry_run)

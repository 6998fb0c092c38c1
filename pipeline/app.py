"""What the app imports from the pipeline (and only this): the newest snapshot of a stage.

    from pipeline.app import latest_snapshot
    latest_snapshot("prd")  # -> "prd--20261123-120000", or None

The client is made from the DAYTONA_* variables, as the sessions make it; answers are cached
five minutes per prefix (never for `dev-`/`local-`).
"""

from __future__ import annotations

from pipeline.daytona import latest
from pipeline.daytona.latest import DEFAULT_CACHE, LatestCache
from pipeline.sessions.daytona_common import connect
from pipeline.settings.build import load
from pipeline.settings.daytona import DaytonaSettings


def latest_snapshot(prefix: str, *, cache: LatestCache = DEFAULT_CACHE) -> str | None:
    with connect(load(DaytonaSettings)) as client:
        return latest.latest_snapshot(prefix, client, cache=cache)

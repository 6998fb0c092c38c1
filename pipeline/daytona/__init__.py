"""Daytona snapshots: an httpx client, the rules for names and retention, and the sessions.

The app imports `latest_snapshot` from here; the noxfile imports `pipeline.daytona.commands`.
"""

from pipeline.daytona.client import DaytonaClient, RetryPolicy
from pipeline.daytona.latest import LatestCache, latest_snapshot

__all__ = ["DaytonaClient", "LatestCache", "RetryPolicy", "latest_snapshot"]

"""How the pipeline talks to people: progress on stderr, folded and annotated on GitHub."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


def on_github() -> bool:
    """Inside a GitHub Actions step (GITHUB_ACTIONS, read by ReportSettings)."""
    from pipeline.errors import ConfigError
    from pipeline.settings.build import ReportSettings, load

    try:
        return load(ReportSettings).github_actions
    except ConfigError:  # a bad report variable is reported by the session itself
        return False


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def step(message: str) -> None:
    say(f"==> {message}")


def warn(message: str) -> None:
    say(f"::warning::{message}" if on_github() else f"warning: {message}")


def output(message: str) -> None:
    """A result meant for scripts (stdout), e.g. a snapshot name."""
    print(message, flush=True)


@contextmanager
def group(title: str) -> Iterator[None]:
    """Fold long tool output on GitHub; elsewhere just a heading."""
    if on_github():
        say(f"::group::{title}")
        try:
            yield
        finally:
            say("::endgroup::")
    else:
        step(title)
        yield

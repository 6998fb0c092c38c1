"""How the pipeline talks to people: progress on stderr, folded and annotated on GitHub."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


class _Where:
    """Where output goes; set once at start-up from the settings (`python -m pipeline`)."""

    github = False  # inside a GitHub Actions step (GITHUB_ACTIONS)


WHERE = _Where()


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def step(message: str) -> None:
    say(f"==> {message}")


def warn(message: str) -> None:
    say(f"::warning::{message}" if WHERE.github else f"warning: {message}")


def output(message: str) -> None:
    """A result meant for scripts (stdout), e.g. a snapshot name."""
    print(message, flush=True)


@contextmanager
def group(title: str) -> Iterator[None]:
    """Fold long tool output on GitHub; elsewhere just a heading."""
    if WHERE.github:
        say(f"::group::{title}")
        try:
            yield
        finally:
            say("::endgroup::")
    else:
        step(title)
        yield

"""What every session command shares: an argparse parser whose errors are pipeline errors."""

from __future__ import annotations

import argparse
from typing import NoReturn

from pipeline.errors import ConfigError


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so a bad option is one ConfigError line."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{self.prog}: {message}", f"see `{self.prog} --help`")


def parser(session: str, description: str) -> ArgumentParser:
    result = ArgumentParser(prog=f"nox -s {session} --", description=description)
    result.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan and exit without touching docker, registries or APIs",
    )
    return result

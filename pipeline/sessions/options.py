"""What every session command shares: an argparse parser whose errors are pipeline errors, and
flags whose limits come from the settings models (one place for each limit).

`add_setting_flag(cli, "--cpu", SnapshotSettings, "vCPUs")` validates `--cpu` through the `cpu`
field itself, so `--cpu 0` is refused by the same `gt=0` as `SANDBOX_SNAPSHOT_CPU=0`, and the help
names the variable and its default. Flags without a variable use the plain models of
pipeline/settings/daytona.py the same way.
"""

from __future__ import annotations

import argparse
from typing import Annotated, Any, NoReturn

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings

from pipeline.catalog import COMMANDS
from pipeline.errors import ConfigError


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so a bad option is one ConfigError line."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{self.prog}: {message}", f"see `{self.prog} --help`")


def parser(
    session: str,
    dry_run: str = "print the plan and exit without touching docker, registries or APIs",
) -> ArgumentParser:
    """The description is the catalog's; `dry_run` says what `--dry-run` of this session still
    reads, when it reads anything."""
    result = ArgumentParser(prog=f"nox -s {session} --", description=COMMANDS[session].plain)
    result.add_argument("--dry-run", action="store_true", help=dry_run)
    return result


def limit_message(error: ErrorDetails, info: FieldInfo, text: str) -> str:
    """What a flag accepts, in words, from pydantic's error and the field's limits."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in ("int_parsing", "int_from_float"):
        return f"{text!r} is not a whole number"
    if kind == "float_parsing":
        return f"{text!r} is not a number"
    if info.description:  # the field says in words what it accepts
        return f"must be {info.description}"
    if kind == "finite_number":
        return "must be a finite number"
    if kind == "greater_than":  # an int's bound is exclusive: name the least allowed
        gt = ctx["gt"]
        return f"must be at least {gt + 1}" if isinstance(gt, int) else f"must be more than {gt:g}"
    if kind == "greater_than_equal":
        return "must not be negative" if ctx["ge"] == 0 else f"must be at least {ctx['ge']:g}"
    if kind == "less_than_equal":
        return f"must be at most {ctx['le']:g}"
    return str(error["msg"]).removeprefix("Input should be ").removeprefix("Value error, ")


def add_setting_flag(
    cli: argparse.ArgumentParser | argparse._ArgumentGroup,
    flag: str,
    model: type[BaseModel],
    help: str,
    **options: Any,
) -> None:
    """Add `--some-flag`, validated as `model.some_flag` is. For a settings model the flag defaults
    to None (the variable's value is used then) and the help names the variable; for an options
    model it defaults to the field's default."""
    info = model.model_fields[flag.removeprefix("--").replace("-", "_")]
    field_type: Any = Annotated[info.annotation, *info.metadata]  # the type with its limits
    adapter: TypeAdapter[Any] = TypeAdapter(field_type)

    def parse(text: str) -> Any:
        try:
            return adapter.validate_python(text)
        except ValidationError as error:
            raise argparse.ArgumentTypeError(limit_message(error.errors()[0], info, text)) from None

    alias = info.validation_alias
    if issubclass(model, BaseSettings) and isinstance(alias, str):
        where, default = f"{alias}, {info.default:g}", None
    else:
        where, default = f"default {info.default:g}", info.default
    options.setdefault("default", default)
    cli.add_argument(flag, type=parse, help=f"{help} ({where})", **options)

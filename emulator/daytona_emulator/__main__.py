"""`python -m daytona_emulator`: serve the emulator in the foreground for offline demos."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from daytona_emulator.app import create_app
from daytona_emulator.clock import ManualClock
from daytona_emulator.config import (
    SANDBOX_ONLY_PERMISSIONS,
    ApiKey,
    EmulatorConfig,
    SandboxSettings,
    Timings,
)
from daytona_emulator.server import listening_socket, uvicorn_config


def _mirror(value: str) -> tuple[str, str]:
    host, equals, target = value.partition("=")
    if not host or not equals or not target:
        raise argparse.ArgumentTypeError(f"expected HOST=TARGET_HOST:PORT, got {value!r}")
    return host, target


def _add_time_and_sandbox_options(parser: argparse.ArgumentParser) -> None:
    defaults = Timings()
    parser.add_argument("--pending-seconds", type=float, default=defaults.pending_seconds)
    parser.add_argument("--pulling-seconds", type=float, default=defaults.pulling_seconds)
    parser.add_argument("--removal-seconds", type=float, default=defaults.removal_seconds)
    parser.add_argument(
        "--general-snapshot",
        action="append",
        default=[],
        metavar="NAME",
        help="seed a Daytona-provided general snapshot every organization lists",
    )
    parser.add_argument(
        "--frozen-clock",
        action="store_true",
        help="start with time stood still; move it with POST /_emulator/clock/advance "
        '{"seconds": N}',
    )
    sandbox_defaults = SandboxSettings()
    parser.add_argument(
        "--docker-host",
        default=None,
        metavar="URL",
        help="Docker engine that runs sandboxes (default: what the docker CLI uses)",
    )
    parser.add_argument(
        "--publish-port",
        action="append",
        type=int,
        default=None,
        metavar="PORT",
        help="container port published on 127.0.0.1 for preview URLs (repeatable; default: "
        + ", ".join(str(port) for port in sandbox_defaults.published_ports)
        + ")",
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m daytona_emulator",
        description="Offline emulator of Daytona's snapshot and sandbox REST API "
        "(sandboxes are containers on the local Docker engine). "
        "Point DAYTONA_API_URL at http://HOST:PORT/api.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=3986, help="port (0 picks a free one)")
    parser.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY",
        help="accepted Bearer API key with all permissions (repeatable; one org for all)",
    )
    parser.add_argument(
        "--sandbox-only-api-key",
        action="append",
        default=[],
        metavar="KEY",
        help="key without write:snapshots/delete:snapshots (gets 403 Access denied on create)",
    )
    parser.add_argument(
        "--registry-mirror",
        action="append",
        default=[],
        type=_mirror,
        metavar="HOST=TARGET",
        help="contact TARGET (host:port) for images named HOST/..., e.g. ghcr.io=127.0.0.1:5000",
    )
    _add_time_and_sandbox_options(parser)
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> EmulatorConfig:
    organization = ApiKey.generate().organization_id
    keys = [ApiKey(key=key, organization_id=organization) for key in args.api_key]
    keys += [
        ApiKey(key=key, organization_id=organization, permissions=SANDBOX_ONLY_PERMISSIONS)
        for key in args.sandbox_only_api_key
    ]
    return EmulatorConfig(
        api_keys=tuple(keys),
        registry_mirrors=dict(args.registry_mirror),
        timings=Timings(
            pending_seconds=args.pending_seconds,
            pulling_seconds=args.pulling_seconds,
            removal_seconds=args.removal_seconds,
        ),
        general_snapshots=tuple(args.general_snapshot),
        sandboxes=SandboxSettings(
            docker_host=args.docker_host,
            published_ports=tuple(args.publish_port or SandboxSettings().published_ports),
        ),
    ).with_generated_key()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = build_config(args)
    app, _ = create_app(config, ManualClock() if args.frozen_clock else None)
    sock = listening_socket(args.host, args.port)
    port = sock.getsockname()[1]
    print(f"Daytona emulator on http://{args.host}:{port}/api", flush=True)
    if not args.api_key:
        print(f"API key: {config.api_keys[0].key}", flush=True)
    uvicorn.Server(uvicorn_config(app, log_level="info")).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())

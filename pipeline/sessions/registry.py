from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from pipeline import console
from pipeline.registry.server import start_registry
from pipeline.sessions.options import parser
from pipeline.settings.build import BuildSettings, load


def registry(argv: Sequence[str]) -> None:
    cli = parser("registry")
    cli.add_argument("--port", type=int, default=5000)
    cli.add_argument("--username", default="pipeline")
    cli.add_argument("--root", type=Path, help="storage folder (default: a temporary one)")
    args = cli.parse_args(argv)
    if args.dry_run:
        console.step(f"would serve a registry on 127.0.0.1:{args.port} for {args.username}")
        return
    root = args.root or Path(tempfile.mkdtemp(prefix="sandbox-registry-"))
    # A password from the environment is kept; otherwise one is made and stored 0600, not printed.
    secret = load(BuildSettings).registry_password
    password = secret.get_secret_value() if secret is not None else None
    served = start_registry(root, username=args.username, port=args.port, password=password)
    secret_file = root / "password"
    secret_file.touch(mode=0o600)
    secret_file.write_text(served.password)
    console.step(f"registry on {served.host}, user {served.username}, storage {root}")
    console.output(
        f"export SANDBOX_IMAGE_REPOSITORY={served.host}/iterate/sandbox "
        f'REGISTRY_USERNAME={served.username} REGISTRY_PASSWORD="$(cat {secret_file})"'
    )
    try:
        served.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        served.stop()

#!/usr/bin/env bash
# Everything a fresh Debian machine needs before any session: the Docker engine, buildx, the
# local registry binary (scripts/setup-engine.sh), and .venv with nox and the project.
# Idempotent and quick when nothing changed (the venv is rebuilt only when pyproject.toml changes).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

bash scripts/setup-engine.sh

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  echo "[setup] error: $PYTHON is older than 3.11 — fix: install Python 3.11+ or set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
  log "installing python3-venv"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi

stamp=.venv/.installed-from
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "installing the project into .venv (nox, pipeline, test tools)"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  echo "$want" > "$stamp"
fi
log "ready: .venv/bin/nox -l lists the sessions"

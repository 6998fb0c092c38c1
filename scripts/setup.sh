#!/usr/bin/env bash
# The main job's set-up on a fresh machine: a Docker engine with buildx (scripts/setup-engine.sh
# installs one only where none answers) and a nox to run the sessions: .venv holds nox and uv
# only; every session installs what it needs into its own venv under .nox/ from uv.lock.
# Already have nox (pipx, uvx)? Then `nox -s snapshot_local` needs nothing from this script but
# the engine. Idempotent: about a second when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

bash scripts/setup-engine.sh

PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null 2>&1 || die "no $PYTHON on PATH — fix: install Python 3.11+ or set PYTHON=/path/to/python3"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "$PYTHON is older than 3.11 — fix: install Python 3.11+ or set PYTHON=/path/to/python3.11"
needs_apt=()
# Debian and Ubuntu ship venv's pip bootstrap in a package of its own.
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || needs_apt+=(python3-venv)
# Where the Dockerfile's base (node:24-bookworm) can be neither found nor pulled, snapshot_local
# makes the same base offline, which takes mmdebstrap (Debian's archive only). One manifest look-up
# decides; on machines that can pull it nothing is installed.
if [ -r /etc/os-release ] && (. /etc/os-release && [ "${ID:-}" = debian ]) \
    && ! command -v mmdebstrap >/dev/null 2>&1 \
    && ! docker image inspect node:24-bookworm >/dev/null 2>&1 \
    && ! timeout 30 docker buildx imagetools inspect node:24-bookworm >/dev/null 2>&1; then
  log "node:24-bookworm cannot be pulled here: snapshot_local will make the base offline"
  needs_apt+=(mmdebstrap)
fi
if [ ${#needs_apt[@]} -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 \
    || die "$PYTHON has no venv/ensurepip — fix: install a Python with venv, or set PYTHON"
  # shellcheck source=scripts/lib/apt.sh
  . scripts/lib/apt.sh
  apt_install "${needs_apt[@]}"
fi

want="nox[uv]>=2025.2.9 $("$PYTHON" -c 'import sys; print(sys.version)' | head -n 1)"
stamp=.venv/.nox-only
if [ ! -x .venv/bin/nox ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "creating .venv with nox and uv only"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check 'nox[uv]>=2025.2.9'
  printf '%s' "$want" > "$stamp"
fi
log "ready: .venv/bin/nox -l lists the sessions (any nox ≥ 2025.2.9 works the same)"

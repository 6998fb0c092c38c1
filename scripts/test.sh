#!/usr/bin/env bash
# The whole test suite on a fresh machine: set-up, then lint, unit and every integration tier.
# Nothing is skipped here: under CI=true a tier without its engine fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/nox --no-color -s lint unit test_engine test_local_docker test_daytona "$@"

#!/usr/bin/env bash
# The whole test suite on a fresh machine: set-up, test-only tools, then lint, unit and every
# integration tier through the same nox path users take. Nothing is skipped here: under CI=true a
# tier without its engine fails instead of skipping, and pytest's "no tests ran" (exit 5) fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup-test-tools.sh
sessions=(lint unit test_engine test_local_docker test_daytona)
# The distribution's own python3 (Debian bookworm: 3.11.2) lacks what newer 3.11s have: the unit
# tier runs on it too wherever it is a different interpreter from the one nox uses.
if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    && [ "$(/usr/bin/python3 -c 'import sys; print(sys.version)')" != "$(.venv/bin/python -c 'import sys; print(sys.version)')" ]; then
  sessions+=(unit_system_python)
fi
exec .venv/bin/nox --no-color -s "${sessions[@]}" "$@"

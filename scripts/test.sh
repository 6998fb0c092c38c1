#!/usr/bin/env bash
# The whole test suite on a fresh machine: set-up, test-only tools, then lint, unit and every
# integration tier through the same nox path users take. Nothing is skipped here: under CI=true a
# tier without its engine fails instead of skipping, and pytest's "no tests ran" (exit 5) fails.
#
# Two lanes run at once, because the engine tiers spend much of their time waiting on the engine
# while the others need the CPU: lane 1 runs the engine tiers (its output as is), lane 2 the rest
# (its lines prefixed "[lane 2]"). Test sessions are built to share one engine
# (tests/helpers/host_engine.py). SANDBOX_TEST_LANES=1 runs them one after another instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup-test-tools.sh
engine_tiers=(test_engine test_local_docker)
other_tiers=(lint unit test_daytona)
# The distribution's own python3 (Debian bookworm: 3.11.2) lacks what newer 3.11s have: the unit
# tier runs on it too wherever it is a different interpreter from the one nox uses.
if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    && [ "$(/usr/bin/python3 -c 'import sys; print(sys.version)')" != "$(.venv/bin/python -c 'import sys; print(sys.version)')" ]; then
  other_tiers+=(unit_system_python)
fi
case "${SANDBOX_TEST_LANES:-2}" in
  1) exec .venv/bin/nox --no-color -s "${other_tiers[@]}" "${engine_tiers[@]}" "$@" ;;
  2) ;;
  *) echo "error: SANDBOX_TEST_LANES=${SANDBOX_TEST_LANES} — fix: use 1 (one after another) or 2 (two lanes)" >&2; exit 2 ;;
esac

prefix() { while IFS= read -r line || [ -n "$line" ]; do printf '[lane 2] %s\n' "$line"; done; }
lane2_status="$(mktemp "${TMPDIR:-/tmp}/sandbox-tests-lane2.XXXXXX")"
set -m  # lane 2 in a process group of its own, with SIGINT not ignored (as in a terminal)
{ code=0; .venv/bin/nox --no-color -s "${other_tiers[@]}" "$@" 2>&1 || code=$?; echo "$code" >"$lane2_status"; } | prefix &
lane2=$!
lane2_group="$(jobs -p | tail -n 1)"
set +m
# Interrupted: lane 2 gets Ctrl-C too, so pytest's teardowns stop what its tests started.
stop_lane2() { kill -INT -- "-$lane2_group" 2>/dev/null || true; wait "$lane2" 2>/dev/null || true; }
trap 'stop_lane2; rm -f "$lane2_status"; exit 130' INT
trap 'stop_lane2; rm -f "$lane2_status"; exit 143' TERM
status1=0
.venv/bin/nox --no-color -s "${engine_tiers[@]}" "$@" || status1=$?
wait "$lane2" || true
trap - INT TERM
status2="$(cat "$lane2_status")"
rm -f "$lane2_status"
echo "lanes: engine tiers exit ${status1}, other tiers exit ${status2:-missing}"
[ "$status1" -eq 0 ] && [ "${status2:-1}" -eq 0 ]

#!/usr/bin/env bash
# Turns on the containerd image store of a GitHub-hosted runner's Docker engine, which the
# default `docker` buildx driver needs to export a registry cache (PUSH=1, test_engine).
#
# It rewrites /etc/docker/daemon.json and restarts the engine, so it runs only where that engine
# is CI's own throwaway machine: GITHUB_ACTIONS=true on a github-hosted runner. Anywhere else
# (a laptop, a self-hosted runner, this project's .ci/run) it changes nothing and says how to do
# it by hand. Idempotent: an engine that already has the store is left alone.
set -euo pipefail

log() { printf '[enable-containerd-store] %s\n' "$*" >&2; }
die() { printf '[enable-containerd-store] error: %s\n' "$*" >&2; exit 1; }

driver_status() { timeout 30 docker info --format '{{json .DriverStatus}}' 2>/dev/null; }
store_on() { driver_status | grep -q io.containerd.snapshotter.v1; }

# An engine that does not answer (or not to this user) is never restarted on a guess. Some docker
# CLIs (26.x) exit 0 and print "null" when the engine is down, so the answer itself is checked.
answers() { local status; status=$(driver_status) || return 1; [ -n "$status" ] && [ "$status" != null ]; }
answers || die "docker info does not answer: start the engine (or fix access to its socket) first"
if store_on; then
  log "the engine already uses the containerd image store"
  exit 0
fi
if [ "${GITHUB_ACTIONS:-}" != true ] || [ "${RUNNER_ENVIRONMENT:-}" != github-hosted ]; then
  die "not on a GitHub-hosted runner, so this engine is left as it is — fix: add \"features\": {\"containerd-snapshotter\": true} to /etc/docker/daemon.json and restart the engine yourself (Docker Desktop: Settings > General > containerd image store), or select a docker-container builder with BUILDX_BUILDER"
fi
command -v jq >/dev/null 2>&1 || die "jq is missing (GitHub's runners have it)"

config=/etc/docker/daemon.json
log "enabling the containerd image store in $config and restarting docker"
{ sudo cat "$config" 2>/dev/null || echo '{}'; } \
  | jq '.features["containerd-snapshotter"] = true' \
  | sudo tee "$config.new" >/dev/null
sudo mv "$config.new" "$config"
sudo systemctl restart docker.service
for _ in $(seq 1 60); do
  store_on && { log "done: $(docker info --format '{{.Driver}}') with the containerd image store"; exit 0; }
  sleep 1
done
die "docker did not come back with the containerd image store within 60 s: see journalctl -u docker"

#!/usr/bin/env bash
# Makes sure a Docker engine with buildx answers, installing one only where none does.
#
# - An engine that answers with buildx (macOS with OrbStack/Docker Desktop, GitHub's runners, a
#   developer's own Docker) is used as it is: nothing is installed, nothing is reconfigured.
# - macOS and other systems without apt: nothing can be installed here; one line says what to do.
# - Debian bookworm: docker.io, docker-cli, docker-buildx and containerd are selected one by one
#   from trixie (pinned low), never `-t trixie`, which would upgrade the base system. A simulation
#   runs first and the script refuses when it would upgrade or remove anything not asked for.
# - Debian trixie and later, Ubuntu: the distribution's own packages, from its own archive only.
# - An engine that runs but whose socket this user may not use: one line with the fix (the
#   docker group); this script never changes a user's groups.
# SETUP_ENGINE_PACKAGES="name[/release] ..." replaces the package list (to check the guard).
# Idempotent: a second run takes about a second.
set -euo pipefail

log() { printf '[setup-engine] %s\n' "$*" >&2; }
die() { printf '[setup-engine] error: %s\n' "$*" >&2; exit 1; }

docker_info() {
  # Its errors on stdout, its output dropped. coreutils' timeout is not on macOS; the engine
  # check must not need it.
  if command -v timeout >/dev/null 2>&1; then
    { timeout 15 docker info >/dev/null; } 2>&1
  else
    { docker info >/dev/null; } 2>&1
  fi
}
# up: the engine answers; denied: it runs but this user may not use its socket; down: otherwise.
engine_state() {
  command -v docker >/dev/null 2>&1 || { echo down; return; }
  local errors
  if errors=$(docker_info); then echo up
  elif printf '%s' "$errors" | grep -qi 'permission denied'; then echo denied
  else echo down
  fi
}
buildx_answers() { docker buildx version >/dev/null 2>&1; }
refuse_denied() {
  die "the engine runs but $(id -un) may not use its socket — fix: sudo usermod -aG docker $(id -un), then log in again (or run \`newgrp docker\`)"
}

state=$(engine_state)
if [ "$state" = up ] && buildx_answers; then
  log "engine answers with buildx: $(docker version --format '{{.Server.Version}}' 2>/dev/null), nothing to install"
  exit 0
fi
[ "$state" = denied ] && buildx_answers && refuse_denied

if [ -n "${DOCKER_HOST:-}" ]; then
  die "DOCKER_HOST=$DOCKER_HOST does not answer (or has no buildx): start that engine, or unset DOCKER_HOST to use a local one"
fi

if [ "$(uname -s)" != Linux ] || ! command -v apt-get >/dev/null 2>&1; then
  die "no Docker engine with buildx answers and this system has no apt: start Docker Desktop or OrbStack (or set DOCKER_HOST), then rerun"
fi

# shellcheck disable=SC1091
. /etc/os-release
case " ${ID:-} ${ID_LIKE:-} " in
  *" ubuntu "*) family=ubuntu ;;
  " debian "*) family=debian ;;
  *) family=other ;;
esac

[ "$family" = ubuntu ] && APT_HINT="on Ubuntu, docker-buildx is in the universe component: sudo add-apt-repository universe"
# shellcheck source=scripts/lib/apt.sh
. "$(dirname "$0")/lib/apt.sh"

MARK="# written by sandbox-pipeline scripts/setup-engine.sh"
add_trixie_source() {
  # Only on Debian bookworm: its archive has no buildx. Pinned at 100, so nothing comes from trixie
  # unless a package is selected as name/trixie. A trixie source of the user's own is left alone
  # (the simulation guard still refuses any upgrade it would cause).
  local sources=/etc/apt/sources.list.d/trixie.sources pin=/etc/apt/preferences.d/trixie-low
  if [ ! -f $sources ]; then
    log "adding a low-priority trixie apt source (docker.io, docker-cli, docker-buildx, containerd)"
    printf '%s\n' "$MARK" "Types: deb" "URIs: http://deb.debian.org/debian" "Suites: trixie" \
      "Components: main" "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" \
      | $SUDO tee $sources >/dev/null
    apt_updated=0
  fi
  if [ ! -f $pin ]; then
    printf '%s\n' "$MARK" "Package: *" "Pin: release n=trixie" "Pin-Priority: 100" \
      | $SUDO tee $pin >/dev/null
  fi
}

write_daemon_json() {
  # Before installing: on systemd hosts the package's postinst starts the engine at once, and an
  # engine started without the containerd image store cannot export a registry cache.
  if [ -f /etc/docker/daemon.json ]; then
    grep -q containerd-snapshotter /etc/docker/daemon.json && return 0
    log "note: /etc/docker/daemon.json has no containerd-snapshotter feature; left as it is (PUSH=1 cache export needs it: nox -s doctor says more)"
    return 0
  fi
  $SUDO mkdir -p /etc/docker
  echo '{"features": {"containerd-snapshotter": true}}' | $SUDO tee /etc/docker/daemon.json >/dev/null
}

start_dockerd() {
  local pid=""
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    log "starting docker.service"
    $SUDO systemctl start docker.service
  else
    log "starting dockerd (log: /var/log/dockerd.log)"
    # Without systemd's docker.socket, a non-root user reaches the socket through their own
    # group: no group membership (and no new login) is needed.
    local group_flag=""
    [ -n "$SUDO" ] && group_flag="--group $(id -gn)"
    pid=$($SUDO sh -c "nohup dockerd $group_flag >/var/log/dockerd.log 2>&1 & echo \$!")
  fi
  for _ in $(seq 1 120); do
    case $(engine_state) in
      up) return 0 ;;
      denied) refuse_denied ;;
    esac
    if [ -n "${pid:-}" ] && [ ! -d "/proc/$pid" ]; then
      $SUDO tail -n 5 /var/log/dockerd.log >&2 || true
      die "dockerd exited at start: $($SUDO tail -n 1 /var/log/dockerd.log) (full log: /var/log/dockerd.log)"
    fi
    sleep 0.5
  done
  $SUDO tail -n 20 /var/log/dockerd.log >&2 || true
  die "dockerd did not answer within 60 s: see /var/log/dockerd.log"
}

archive_has() { apt-cache show "$1" >/dev/null 2>&1; }

case "$family:${VERSION_CODENAME:-}" in
  debian:bookworm)
    add_trixie_source
    packages=(docker.io/trixie docker-cli/trixie docker-buildx/trixie containerd/trixie) ;;
  debian:* | ubuntu:*)
    # docker-cli is a package of its own from Debian trixie on (docker.io only recommends it).
    packages=(docker.io docker-buildx)
    apt_update
    archive_has docker-cli && packages+=(docker-cli) ;;
  *)
    die "no Docker engine answers and ${ID:-this system} is neither Debian nor Ubuntu: install Docker Engine with buildx, start it, then rerun" ;;
esac
if [ -n "${SETUP_ENGINE_PACKAGES:-}" ]; then
  read -r -a packages <<<"$SETUP_ENGINE_PACKAGES"
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1 \
    || ! buildx_answers; then
  write_daemon_json
  apt_install "${packages[@]}"
fi
command -v docker >/dev/null 2>&1 || die "no docker command after installing ${packages[*]}: install docker-cli and rerun"
case $(engine_state) in
  up) ;;
  denied) refuse_denied ;;
  down) write_daemon_json; start_dockerd ;;
esac
buildx_answers || die "docker answers but has no buildx plugin: install docker-buildx and rerun"
log "engine: $(docker version --format '{{.Server.Version}}'), buildx: $(docker buildx version | cut -d' ' -f2)"

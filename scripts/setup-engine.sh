#!/usr/bin/env bash
# Makes sure a Docker engine with buildx answers, installing one only where none does.
#
# - An engine that answers with buildx (macOS with OrbStack/Docker Desktop, GitHub's runners, a
#   developer's own Docker) is used as it is: nothing is installed, nothing is reconfigured.
# - macOS and other systems without apt: nothing can be installed here; one line says what to do.
# - Debian bookworm: docker.io, docker-cli, docker-buildx and containerd are selected one by one
#   from trixie (pinned low), never `-t trixie`, which would upgrade the base system. A simulation
#   runs first and the script refuses when it would upgrade or remove anything not asked for.
# - Debian trixie and Ubuntu: the distribution's own packages, from its own archive only.
# Idempotent: a second run takes about a second.
set -euo pipefail

log() { printf '[setup-engine] %s\n' "$*" >&2; }
die() { printf '[setup-engine] error: %s\n' "$*" >&2; exit 1; }

engine_answers() {
  # coreutils' timeout is not on macOS; the engine check must not need it.
  if command -v timeout >/dev/null 2>&1; then
    timeout 15 docker info >/dev/null 2>&1
  else
    docker info >/dev/null 2>&1
  fi
}
buildx_answers() { docker buildx version >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && engine_answers && buildx_answers; then
  log "engine answers with buildx: $(docker version --format '{{.Server.Version}}' 2>/dev/null), nothing to install"
  exit 0
fi

if [ -n "${DOCKER_HOST:-}" ]; then
  die "DOCKER_HOST=$DOCKER_HOST does not answer (or has no buildx): start that engine, or unset DOCKER_HOST to use a local one"
fi

if [ "$(uname -s)" != Linux ] || ! command -v apt-get >/dev/null 2>&1; then
  die "no Docker engine with buildx answers and this system has no apt: start Docker Desktop or OrbStack (or set DOCKER_HOST), then rerun"
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || die "not root and no sudo: run as root or install sudo"
  SUDO="sudo"
fi

# shellcheck disable=SC1091
. /etc/os-release
distro="${ID:-}:${VERSION_CODENAME:-}"

apt_updated=0
apt_update() {
  [ $apt_updated = 1 ] && return 0
  log "apt-get update"
  $SUDO apt-get update -qq
  apt_updated=1
}

guard_simulation() {
  # Refuses when installing "$@" would remove any package, or upgrade one that was not asked for.
  local asked=" "
  for spec in "$@"; do asked+="${spec%%/*} "; done
  local sim bad
  sim=$(DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -s -y --no-install-recommends "$@")
  bad=$(printf '%s\n' "$sim" | awk -v asked="$asked" '
    /^Remv / { print; next }
    /^Inst [^ ]+ \[/ { if (index(asked, " " $2 " ") == 0) print }')
  if [ -n "$bad" ]; then
    printf '%s\n' "$bad" >&2
    die "installing $* would upgrade or remove the packages above: refusing (install Docker by hand, or free the conflict)"
  fi
}

apt_install() {
  # Installs the given package specs (name or name/release) that are not installed yet.
  local missing=()
  for spec in "$@"; do
    dpkg-query -W -f='${Status}' "${spec%%/*}" 2>/dev/null | grep -q 'install ok installed' \
      || missing+=("$spec")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  apt_update
  guard_simulation "${missing[@]}"
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

add_trixie_source() {
  # Only on Debian bookworm: its archive has no buildx. Pinned at 100, so nothing comes from trixie
  # unless a package is selected as name/trixie.
  [ -f /etc/apt/sources.list.d/trixie.sources ] && return 0
  log "adding a low-priority trixie apt source (docker.io, docker-cli, docker-buildx, containerd)"
  $SUDO tee /etc/apt/sources.list.d/trixie.sources >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  $SUDO tee /etc/apt/preferences.d/trixie-low >/dev/null <<'PIN'
Package: *
Pin: release n=trixie
Pin-Priority: 100
PIN
  apt_updated=0
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
  engine_answers && return 0
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    log "starting docker.service"
    $SUDO systemctl start docker.service
  else
    log "starting dockerd (log: /var/log/dockerd.log)"
    # Non-root users reach the socket through their own group rather than a docker group they
    # may not be in.
    local group_flag=""
    [ -n "$SUDO" ] && group_flag="--group $(id -gn)"
    $SUDO sh -c "nohup dockerd $group_flag >/var/log/dockerd.log 2>&1 &"
  fi
  for _ in $(seq 1 120); do
    engine_answers && return 0
    sleep 0.5
  done
  $SUDO tail -n 20 /var/log/dockerd.log >&2 || true
  die "dockerd did not answer within 60 s: see /var/log/dockerd.log"
}

case "$distro" in
  debian:bookworm)
    add_trixie_source
    packages=(docker.io/trixie docker-cli/trixie docker-buildx/trixie containerd/trixie) ;;
  debian:*)
    packages=(docker.io docker-cli docker-buildx containerd) ;;
  ubuntu:*)
    packages=(docker.io docker-buildx) ;;
  *)
    die "no Docker engine answers and ${ID:-this system} is neither Debian nor Ubuntu: install Docker Engine with buildx, start it, then rerun" ;;
esac

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1 \
    || ! buildx_answers; then
  write_daemon_json
  apt_install "${packages[@]}"
fi
if ! engine_answers; then
  write_daemon_json
  start_dockerd
fi
buildx_answers || die "docker answers but has no buildx plugin: install docker-buildx and rerun"
log "engine: $(docker version --format '{{.Server.Version}}'), buildx: $(docker buildx version | cut -d' ' -f2)"

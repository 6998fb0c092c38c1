#!/usr/bin/env bash
# Installs and starts what the pipeline needs from the machine: Docker Engine with buildx and the
# containerd image store, a local OCI registry binary, and the tools that make offline base images.
# Idempotent: every step checks first, so a second run takes about a second. On a machine where a
# Docker engine already answers, that engine is used and nothing is installed for it.
set -euo pipefail

log() { printf '[setup-engine] %s\n' "$*" >&2; }
die() { printf '[setup-engine] error: %s\n' "$*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || die "not root and no sudo: run as root or install sudo"
  SUDO="sudo"
fi

apt_updated=0
apt_install() {
  # $1: target release ('' for the default), then package names; installs only the missing ones.
  local target=$1; shift
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ $apt_updated = 0 ]; then
    log "apt-get update"
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  log "installing ${missing[*]}${target:+ from $target}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    ${target:+-t "$target"} "${missing[@]}" >/dev/null
}

engine_answers() { timeout 10 docker info >/dev/null 2>&1; }

# Debian bookworm has no buildx and an older engine; trixie's are pinned low so that only what is
# asked for with -t trixie comes from there.
add_trixie_source() {
  [ -f /etc/apt/sources.list.d/trixie.sources ] && return 0
  . /etc/os-release
  [ "${VERSION_CODENAME:-}" = trixie ] && return 0
  log "adding a low-priority trixie apt source (for docker.io and docker-buildx)"
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
  # The containerd image store is what lets the default `docker` buildx driver export a registry
  # cache (mode=max); without it the driver refuses --cache-to.
  local want='{"features": {"containerd-snapshotter": true}}'
  if [ -f /etc/docker/daemon.json ] && grep -q containerd-snapshotter /etc/docker/daemon.json; then
    return 0
  fi
  [ -f /etc/docker/daemon.json ] && die "/etc/docker/daemon.json exists without \"containerd-snapshotter\": add {\"features\": {\"containerd-snapshotter\": true}} to it and rerun"
  $SUDO mkdir -p /etc/docker
  echo "$want" | $SUDO tee /etc/docker/daemon.json >/dev/null
}

start_dockerd() {
  engine_answers && return 0
  log "starting dockerd (log: /var/log/dockerd.log)"
  $SUDO sh -c 'nohup dockerd >/var/log/dockerd.log 2>&1 &'
  for _ in $(seq 1 60); do
    engine_answers && return 0
    sleep 0.5
  done
  tail -n 20 /var/log/dockerd.log >&2 || true
  die "dockerd did not answer within 30 s: see /var/log/dockerd.log"
}

if [ -n "${DOCKER_HOST:-}" ] && ! engine_answers; then
  die "DOCKER_HOST=$DOCKER_HOST does not answer: start that engine, or unset DOCKER_HOST to use a local one"
fi

if ! engine_answers; then
  if ! command -v dockerd >/dev/null; then
    add_trixie_source
    apt_install trixie docker.io docker-buildx
  fi
  write_daemon_json
  start_dockerd
fi
docker buildx version >/dev/null 2>&1 || { add_trixie_source; apt_install trixie docker-buildx; }

# The registry stands in for GHCR in tests; mmdebstrap and busybox make base images offline.
apt_install "" docker-registry apache2-utils mmdebstrap busybox-static rsync git

log "engine: $(docker version --format '{{.Server.Version}}'), buildx: $(docker buildx version | cut -d' ' -f2)"

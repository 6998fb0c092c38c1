#!/usr/bin/env bash
# Test-only tools, installed by the test command only (never by the main job's set-up):
# docker-registry (a real OCI registry, the stand-in for GHCR), apache2-utils (htpasswd),
# mmdebstrap (the offline base image), busybox-static (tiny test images), rsync (dev sync checks).
# Each is installed only when missing, from the distribution's own archive, after a simulation
# shows that nothing else would be upgraded or removed.
set -euo pipefail

log() { printf '[setup-test-tools] %s\n' "$*" >&2; }
die() { printf '[setup-test-tools] error: %s\n' "$*" >&2; exit 1; }

wanted=(docker-registry apache2-utils mmdebstrap busybox-static rsync git)
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

command -v apt-get >/dev/null 2>&1 \
  || die "missing ${missing[*]} and this system has no apt: the engine tiers need a Debian or Ubuntu machine (or install them yourself)"
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || die "not root and no sudo: run as root or install sudo"
  SUDO="sudo"
fi
log "apt-get update"
$SUDO apt-get update -qq
sim=$(DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -s -y --no-install-recommends "${missing[@]}")
bad=$(printf '%s\n' "$sim" | grep -E '^(Remv |Inst [^ ]+ \[)' || true)
if [ -n "$bad" ]; then
  printf '%s\n' "$bad" >&2
  die "installing ${missing[*]} would upgrade or remove the packages above: refusing"
fi
log "installing ${missing[*]}"
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

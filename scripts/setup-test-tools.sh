#!/usr/bin/env bash
# Test-only tools, installed by the test command only (never by the main job's set-up):
# docker-registry (a real OCI registry, the stand-in for GHCR), apache2-utils (htpasswd),
# busybox-static (tiny test images), iproute2 (the tests' own engine), slirp4netns (network for
# an own engine's RUN steps: only `bench --image sandbox` uses it), git; on Debian also
# mmdebstrap, for the offline base image where node:24-bookworm cannot be pulled (this project's
# own machines; on Ubuntu and GitHub's runners the official image is pulled instead).
# Each is installed only when missing, from the distribution's own archive, after a simulation
# shows that nothing else would be upgraded or removed.
set -euo pipefail

log() { printf '[setup-test-tools] %s\n' "$*" >&2; }
die() { printf '[setup-test-tools] error: %s\n' "$*" >&2; exit 1; }

wanted=(docker-registry apache2-utils busybox-static iproute2 slirp4netns git)
# shellcheck disable=SC1091
if [ -r /etc/os-release ] && (. /etc/os-release && [ "${ID:-}" = debian ]); then
  wanted+=(mmdebstrap)
fi
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

command -v apt-get >/dev/null 2>&1 \
  || die "missing ${missing[*]} and this system has no apt: the engine tiers need a Debian or Ubuntu machine (or install them yourself)"
# shellcheck source=scripts/lib/apt.sh
. "$(dirname "$0")/lib/apt.sh"
apt_install "${missing[@]}"

# shellcheck shell=bash
# The one way the set-up scripts install Debian/Ubuntu packages: only what is missing, from the
# distribution's own archive (or a release the caller names as name/release), with
# --no-install-recommends, after a simulation that refuses any removal and any upgrade of a
# package not asked for. Sourced by setup.sh, setup-engine.sh and setup-test-tools.sh, which
# define log() and die() first. APT_HINT, when set, is added to an "apt cannot install" error.

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || die "not root and no sudo: run as root or install sudo"
  SUDO="sudo"
fi

# Another apt (unattended-upgrades on a fresh runner, a second set-up) may hold dpkg's lock for a
# while: wait for it, up to five minutes, instead of failing at once.
APT_WAIT=(-o DPkg::Lock::Timeout=300)

apt_updated=0
apt_update() {
  [ "$apt_updated" = 1 ] && return 0
  log "apt-get update"
  $SUDO apt-get "${APT_WAIT[@]}" update -qq 2> >(grep -v 'since apt-utils is not installed' >&2)
  apt_updated=1
}

guard_simulation() {
  # Refuses when installing "$@" would remove any package, or upgrade one that was not asked for.
  local asked=" " sim bad spec
  for spec in "$@"; do asked+="${spec%%/*} "; done
  if ! sim=$(DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -s -y --no-install-recommends "$@" 2>&1); then
    printf '%s\n' "$sim" | grep -E '^(E|W):' >&2 || true
    die "apt cannot install $* (see above)${APT_HINT:+ — $APT_HINT}"
  fi
  bad=$(printf '%s\n' "$sim" | awk -v asked="$asked" '
    /^Remv / { print; next }
    /^Inst [^ ]+ \[/ { if (index(asked, " " $2 " ") == 0) print }')
  if [ -n "$bad" ]; then
    printf '%s\n' "$bad" >&2
    die "installing $* would upgrade or remove the packages above: refusing (install them by hand, or free the conflict)"
  fi
}

apt_install() {
  # Installs the given package specs (name or name/release) that are not installed yet.
  local missing=() spec
  for spec in "$@"; do
    dpkg-query -W -f='${Status}' "${spec%%/*}" 2>/dev/null | grep -q 'install ok installed' \
      || missing+=("$spec")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  apt_update
  guard_simulation "${missing[@]}"
  log "installing ${missing[*]}"
  # debconf says it delays configuration when apt-utils is absent (minimal Debian): true, and
  # nothing to act on, so that one line is left out.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${APT_WAIT[@]}" install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null 2> >(grep -v 'since apt-utils is not installed' >&2)
}

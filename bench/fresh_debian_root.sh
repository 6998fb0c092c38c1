#!/usr/bin/env bash
# Issue 20's "done when", measured: in a fresh Debian bookworm root (mmdebstrap minbase plus
# python3, git, ca-certificates, sudo), as a normal user with passwordless sudo and Debian's
# default user PATH, time the README's two commands and print what they did to the machine and the
# checkout: times, package diff, skipped tests, processes left running, files changed.
#
# Everything runs in namespaces of its own (mount, pid, network, uts, ipc, cgroup), so the root's
# dockerd never meets this machine's engine or network: its network is slirp4netns (outbound only,
# no host loopback). Whatever fails, the trap stops what the script started and removes the root
# (unless --keep). Needs root on the host (mmdebstrap, namespaces, chroot).
set -euo pipefail

SOURCE=/work/main
REF=HEAD
BASE=/work/tmp-fresh-root
MIRROR=http://deb.debian.org/debian
KEEP=0
STEPS="setup snapshot1 snapshot2 test"
# A TLS-inspecting proxy's CA, as a user behind one would add it (README: "Behind a
# TLS-inspecting proxy"). Empty: none.
PROXY_CAS=$(ls /usr/local/share/ca-certificates/*.crt 2>/dev/null || true)

usage() {
  cat <<EOF
usage: sudo bench/fresh_debian_root.sh [--source DIR] [--ref REF] [--base DIR] [--keep]
                                       [--steps "setup snapshot1 snapshot2 test"] [--no-proxy-ca]

Makes a fresh Debian bookworm root under BASE/<run>/root, adds user dev (passwordless sudo,
Debian's default user PATH), clones SOURCE at REF into ~dev/sandbox-pipeline and, as dev, in the
root's own namespaces, times: scripts/setup.sh, .venv/bin/nox -s snapshot_local twice (the second
unchanged), scripts/test.sh. Prints a figures block: times, package diff per step, skipped tests
with reasons, processes left running, files of the checkout changed by the tests.

  --source DIR   git repository to clone (default $SOURCE)
  --ref REF      commit or branch of SOURCE (default $REF)
  --base DIR     where the run's directory goes, ext4 or similar (default $BASE)
  --keep         keep the root afterwards (default: removed; logs and figures are kept)
  --steps LIST   subset of: setup snapshot1 snapshot2 test (default: all, in that order)
  --no-proxy-ca  do not add this machine's /usr/local/share/ca-certificates/*.crt to the root
  --figures DIR  print the figures block of an earlier run's results directory, and exit
EOF
}

die() { printf '[fresh-root] error: %s\n' "$*" >&2; exit 1; }
log() { printf '[fresh-root] %s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# The figures block, from a run's results directory (also: --figures DIR, for an earlier run).
figures() {
  python3 - "$1" "$2" <<'PY'
import json, os, re, sys
from collections import defaultdict

out, commit = sys.argv[1], sys.argv[2]
def read(name, default=""):
    try:
        with open(os.path.join(out, name)) as f:
            return f.read()
    except OSError:
        return default

print("\n===== figures: fresh Debian bookworm root, user dev (passwordless sudo) =====")
print(f"commit {commit}; debian_version {read('debian_version.before').strip()} -> "
      f"{read('debian_version.after').strip() or '?'}")
user = read("user.txt").splitlines()
print(f"user PATH {user[0] if user else '?'}; {' '.join(user[1:])}")
print("\n-- times --")
for line in read("steps.tsv").splitlines():
    step, rc, secs = line.split("\t")
    s = float(secs)
    print(f"  {step:<11} exit {rc:<3} {s:8.1f} s  ({int(s // 60)} min {s % 60:.0f} s)")
sessions = re.findall(r"nox > Session (\S+) (was successful|failed|was skipped)[^\n]*?(?: in ([^\n.]+))?\.?\n",
                      re.sub(r"^\[lane \d\] ", "", read("test.log"), flags=re.M))
if sessions:
    print("  test.sh per nox session:")
    for name, verdict, took in sessions:
        print(f"    {name:<20} {verdict:<15} {took}")

print("\n-- packages (dpkg-query -W) --")
def pk(name):
    return dict(l.split("\t", 1) for l in read(name).splitlines() if "\t" in l)
names = sorted((n for n in os.listdir(out) if n.startswith("pkgs.")), key=lambda n: int(n.split(".")[1].split("-")[0]))
first = pk(names[0]) if names else {}
print(f"  start: {len(first)} packages")
prev = first
for n in names[1:]:
    cur = pk(n)
    added = sorted(set(cur) - set(prev))
    removed = sorted(set(prev) - set(cur))
    changed = sorted(p for p in set(cur) & set(prev) if cur[p] != prev[p])
    print(f"  {n.split('-', 1)[1]:<10} +{len(added)} added, {len(changed)} upgraded/changed, {len(removed)} removed")
    if added:
        print("    added: " + " ".join(f"{p}={cur[p]}" for p in added))
    for p in changed:
        print(f"    changed: {p} {prev[p]} -> {cur[p]}")
    if removed:
        print("    removed: " + " ".join(removed))
    prev = cur
if names:
    last = pk(names[-1])
    print(f"  total: +{len(set(last) - set(first))} added, "
          f"{sum(1 for p in set(last) & set(first) if last[p] != first[p])} upgraded, "
          f"{len(set(first) - set(last))} removed")

print("\n-- tests: pytest summaries and skips (test.log) --")
# scripts/test.sh runs two lanes: the second's lines carry a prefix.
log = re.sub(r"^\[lane \d\] ", "", read("test.log"), flags=re.M)
for m in re.finditer(r"^=* ?((?:\d+ \w+,? )+in [\d.]+s\b.*?|no tests ran.*?) ?=*$", log, re.M):
    print("  " + m.group(1))
skips = re.findall(r"^SKIPPED \[\d+\] .*$", log, re.M)
print(f"  skipped lines: {len(skips)}")
for s in skips:
    print("    " + s[:220])
fails = re.findall(r"^(?:FAILED|ERROR) .*$", log, re.M)
for f in fails[:40]:
    print("  " + f[:220])

print("\n-- processes --")
def procs(name):
    return {l.split("\t")[0]: l.split("\t", 2)[2] for l in read(name).splitlines() if l.count("\t") >= 2}
base = procs("procs.after-setup")
print(f"  after setup.sh (the engine it started): {len(base)}")
for p, c in base.items():
    print(f"    {p} {c[:150]}")
for when in ("procs.after-main-job", "procs.after-test"):
    if not read(when):
        continue
    now = procs(when)
    extra = {p: c for p, c in now.items() if p not in base}
    gone = [p for p in base if p not in now]
    print(f"  {when.split('.', 1)[1]}: {len(extra)} other processes running"
          + (f"; setup's engine processes gone: {gone}" if gone else ""))
    for p, c in extra.items():
        print(f"    {p} {c[:200]}")

print("\n-- checkout: after the main job -> after test.sh --")
a_txt, b_txt = read("snap.main-job"), read("snap.after-test")
if a_txt and b_txt:
    a, b = json.loads(a_txt), json.loads(b_txt)
    groups = defaultdict(lambda: [0, 0, 0])
    contents = set()  # groups where a changed file's contents changed, not its mtime alone
    def group(path):
        parts = path.split(os.sep)
        if parts[0] == ".nox" and len(parts) > 1:
            return ".nox/" + parts[1]
        if "__pycache__" in parts:
            return "__pycache__ (anywhere)"
        for i, part in enumerate(parts[:-1]):  # tools' caches and setuptools' metadata
            if part.endswith(("_cache", ".egg-info")):
                return "/".join(parts[: i + 1]) + "/"
        return path
    for p in set(a) | set(b):
        if p not in a:
            groups[group(p)][0] += 1
        elif p not in b:
            groups[group(p)][1] += 1
        elif a[p] != b[p]:
            groups[group(p)][2] += 1
            if a[p][2:] != b[p][2:] or a[p][0] != b[p][0]:
                contents.add(group(p))
    if not groups:
        print("  no file added, removed or changed")
    for g in sorted(groups):
        n_add, n_rm, n_ch = groups[g]
        new_dir = g.startswith(".nox/") and not any(p.startswith(g + "/") for p in a)
        note = " (new venv made by test.sh)" if new_dir else ""
        if n_ch:
            note += " (contents changed)" if g in contents else " (mtime only)"
        print(f"  {g}: +{n_add} -{n_rm} ~{n_ch}{note}")
    pa, pb = read("snap.main-job.porcelain"), read("snap.after-test.porcelain")
    print(f"  git status --porcelain after main job: {pa.strip() or '(clean)'}")
    print(f"  git status --porcelain after test.sh:  {pb.strip() or '(clean)'}")
else:
    print("  (no snapshots: a step did not run)")
PY
}

while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --source) SOURCE=${2:?}; shift 2 ;;
    --ref) REF=${2:?}; shift 2 ;;
    --base) BASE=${2:?}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --steps) STEPS=${2:?}; shift 2 ;;
    --no-proxy-ca) PROXY_CAS=""; shift ;;
    --figures) figures "${2:?}" "$(cat "${2:?}/commit" 2>/dev/null || echo '?')"; exit 0 ;;
    *) die "unknown argument $1 — fix: see --help" ;;
  esac
done

[ "$(id -u)" = 0 ] || die "needs root on the host (mmdebstrap, namespaces, chroot) — fix: sudo $0"
for tool in mmdebstrap unshare slirp4netns chroot python3 git; do
  command -v "$tool" >/dev/null || die "$tool not found — fix: apt-get install $tool"
done
commit=$(git -C "$SOURCE" rev-parse --verify "$REF^{commit}") \
  || die "$REF is not a commit of $SOURCE — fix: --ref <commit or branch>"

run="$(date -u +%Y%m%dT%H%M%SZ)-${commit:0:7}"
work=$BASE/$run
root=$work/root
out=$work/results
mkdir -p "$root" "$out"
echo "$commit" >"$out/commit"
checkout=/home/dev/sandbox-pipeline

ns_pid=""
slirp_pid=""
cgroups=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if [ -n "$ns_pid" ] && kill -0 "$ns_pid" 2>/dev/null; then
    # The namespace's init is the inner script: when it goes, the kernel kills every process of
    # the pid namespace (the root's dockerd, test engines, anything left behind).
    kill -TERM "$ns_pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$ns_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$ns_pid" 2>/dev/null
    wait "$ns_pid" 2>/dev/null
  fi
  [ -n "$slirp_pid" ] && { kill -TERM "$slirp_pid" 2>/dev/null; wait "$slirp_pid" 2>/dev/null; }
  local cg
  for cg in "${cgroups[@]}"; do
    # Bottom-up: the root's dockerd made children of its own; all are empty once the pid
    # namespace is gone (allow a moment for the kernel to reap them).
    for _ in $(seq 1 25); do
      find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
      [ -d "$cg" ] || break
      sleep 0.2
    done
    [ -d "$cg" ] && log "could not remove cgroup $cg"
  done
  if [ "$KEEP" = 0 ] && [ -d "$root" ]; then
    if grep -qF " $root/" /proc/mounts || grep -qF " $root " /proc/mounts; then
      log "something is still mounted under $root: left in place"
    else
      rm -rf "$root"
    fi
  fi
  log "results in $out"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. the root ---------------------------------------------------------------------------------
log "mmdebstrap bookworm minbase into $root"
t0=$(date +%s.%N)
mmdebstrap --quiet --variant=minbase --include=python3,git,ca-certificates,sudo \
  bookworm "$root" "$MIRROR" >"$out/mmdebstrap.log" 2>&1 \
  || { tail -n 20 "$out/mmdebstrap.log" >&2; die "mmdebstrap failed (log: $out/mmdebstrap.log)"; }
printf 'mmdebstrap\t0\t%s\n' "$(python3 -c "print(round($(date +%s.%N) - $t0, 1))")" >"$out/steps.tsv"

# --- 2. the user and the checkout ----------------------------------------------------------------
echo fresh-root >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tfresh-root\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
  >"$root/etc/hosts"
echo 'nameserver 10.0.2.3' >"$root/etc/resolv.conf" # slirp4netns's DNS forwarder
chroot "$root" /usr/sbin/useradd --create-home --uid 1000 --shell /bin/bash dev
echo 'dev ALL=(ALL:ALL) NOPASSWD: ALL' >"$root/etc/sudoers.d/dev"
chmod 0440 "$root/etc/sudoers.d/dev"
if [ -n "$PROXY_CAS" ]; then
  # This machine reaches the internet through a TLS-inspecting proxy: a user behind one adds its
  # CA to the system (README), and sets SSL_CERT_FILE for pip's fallback and the build's npm.
  # shellcheck disable=SC2086
  cp $PROXY_CAS "$root/usr/local/share/ca-certificates/"
  chroot "$root" /usr/sbin/update-ca-certificates >/dev/null 2>&1
  echo 'export SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' >>"$root/home/dev/.profile"
fi
git clone --quiet --no-hardlinks "$SOURCE" "$root$checkout"
git -C "$root$checkout" checkout --quiet -B main "$commit"
# A clone of a local path: its origin would be that path, as it is for a user who clones from disk.
chroot "$root" /bin/chown -R dev:dev "$checkout"
cat "$root/etc/debian_version" >"$out/debian_version.before"

# --- 3. the runner inside the namespaces ---------------------------------------------------------
cat >"$work/inner.sh" <<'INNER'
#!/usr/bin/env bash
# Runs as the pid namespace's init, with the host's tools, before and around chroot.
set -euo pipefail
root=$1 out=$2 checkout=$3 steps=$4
log() { printf '[fresh-root] %s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
stop() { log "stopping: the namespace goes with this process"; exit 143; }
trap stop TERM INT

# slirp4netns --configure gives tap0 its address and the default route: wait for the route.
for _ in $(seq 1 100); do grep -qE '^tap0\s+00000000' /proc/net/route && break; sleep 0.1; done
grep -qE '^tap0\s+00000000' /proc/net/route || { log "no route through slirp4netns's tap0"; exit 1; }
ip link set lo up
hostname fresh-root

# runc makes / of the build's containers a slave mount: in a bare chroot / is no mount point
# and that fails (EINVAL). A root bound onto itself is one, as on a real machine.
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
# The cgroup namespace's own view: the hierarchies this machine has (v1 controllers plus the
# unified v2), each rooted at the run's own cgroup.
mount -t tmpfs -o mode=0755 cgroup "$root/sys/fs/cgroup"
while read -r _ mnt fstype opts _; do
  case $fstype in
    cgroup) sub=${mnt#/sys/fs/cgroup/}; mkdir -p "$root/sys/fs/cgroup/$sub"
      ctl=$(printf '%s' "$opts" | tr ',' '\n' | grep -vE '^(rw|ro|nosuid|nodev|noexec|relatime)$' | paste -sd,)
      mount -t cgroup -o "$ctl" cgroup "$root/sys/fs/cgroup/$sub" ;;
    cgroup2)
      if [ "$mnt" = /sys/fs/cgroup ]; then umount "$root/sys/fs/cgroup"; mount -t cgroup2 cgroup2 "$root/sys/fs/cgroup"
      else sub=${mnt#/sys/fs/cgroup/}; mkdir -p "$root/sys/fs/cgroup/$sub"; mount -t cgroup2 cgroup2 "$root/sys/fs/cgroup/$sub"; fi ;;
  esac
done < <(grep -E ' /sys/fs/cgroup' /proc/mounts)

mount -t tmpfs -o mode=0755,nosuid dev "$root/dev"
for node in null zero full random urandom tty; do
  touch "$root/dev/$node"; mount --bind "/dev/$node" "$root/dev/$node"
done
mkdir -p "$root/dev/net" "$root/dev/pts" "$root/dev/shm"
touch "$root/dev/net/tun"; mount --bind /dev/net/tun "$root/dev/net/tun"
if [ -e /dev/fuse ]; then touch "$root/dev/fuse"; mount --bind /dev/fuse "$root/dev/fuse"; fi
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev shm "$root/dev/shm"
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"; ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"
mount -t tmpfs -o mode=0755,nosuid,nodev run "$root/run"
mkdir -p "$root/run/lock"; chmod 1777 "$root/run/lock"

# The root becomes the mount namespace's own root (pivot_root, not chroot): runc's `docker exec`
# joins a container's mount namespace at that namespace's root, which under a bare chroot is
# this machine's / (an exec there saw the host's files). After the pivot the host's files are
# gone from the namespace; the results directory alone is bound in.
mkdir -m 0700 "$root/run/fresh-root"
mkdir "$root/run/fresh-root/results" "$root/run/fresh-root/oldroot"
mount --bind "$out" "$root/run/fresh-root/results"
cp "$out/../procs.py" "$out/../snap.py" "$out/../stage2.sh" "$root/run/fresh-root/"
cd "$root"
pivot_root . run/fresh-root/oldroot
cd /
umount -l /run/fresh-root/oldroot
rmdir /run/fresh-root/oldroot
exec /bin/bash /run/fresh-root/stage2.sh "$checkout" "$steps" "$out"
INNER

cat >"$work/stage2.sh" <<'STAGE2'
#!/bin/bash
# Runs as the pid namespace's init, inside the root (after pivot_root), with the root's tools.
set -euo pipefail
checkout=$1 steps=$2 out=/run/fresh-root/results shown=$3 # shown: the same, on this machine
log() { printf '[fresh-root] %s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
stop() { log "stopping: the namespace goes with this process"; exit 143; }
trap stop TERM INT

as_dev() { /usr/sbin/runuser -l dev -c "$1"; }
pkgs() { dpkg-query -W -f='${Package}\t${Version}\n' >"$1"; }
procs() { python3 /run/fresh-root/procs.py >"$1"; }
snap() {
  python3 /run/fresh-root/snap.py "$checkout" >"$1"
  as_dev "cd $checkout && git status --porcelain" >"$1.porcelain"
}

as_dev 'printf "%s\n" "$PATH"; id; sudo -n true && echo sudo-ok' >"$out/user.txt" 2>&1
pkgs "$out/pkgs.0-start"
nr=0
for step in $steps; do
  case $step in
    setup) cmd='scripts/setup.sh' ;;
    snapshot1 | snapshot2) cmd='.venv/bin/nox -s snapshot_local' ;;
    test) cmd='scripts/test.sh' ;;
    # A quick look at the root from inside (network, sudo, mounts): for checking this script.
    probe) cmd='python3 -c "import urllib.request as u; print(u.urlopen(\"https://pypi.org/simple/nox/\").status)"; sudo -n true && echo sudo-ok; cat /proc/mounts; ls -l /sys/fs/cgroup; cat /proc/self/cgroup' ;;
    *) log "unknown step $step"; exit 2 ;;
  esac
  nr=$((nr + 1))
  [ "$step" = test ] && procs "$out/procs.before-test"
  log "step $step: $cmd (log: $shown/$step.log)"
  t0=$(date +%s.%N)
  set +e
  as_dev "cd $checkout && $cmd" </dev/null >"$out/$step.log" 2>&1
  rc=$?
  set -e
  t1=$(date +%s.%N)
  secs=$(python3 -c "print(round($t1 - $t0, 1))")
  printf '%s\t%s\t%s\n' "$step" "$rc" "$secs" >>"$out/steps.tsv"
  log "step $step: exit $rc in $secs s"
  pkgs "$out/pkgs.$nr-$step"
  case $step in
    setup) procs "$out/procs.after-setup" ;;
    snapshot2) snap "$out/snap.main-job"; procs "$out/procs.after-main-job" ;;
    snapshot1) [[ " $steps " == *" snapshot2 "* ]] || { snap "$out/snap.main-job"; procs "$out/procs.after-main-job"; } ;;
    test) sleep 2; snap "$out/snap.after-test"; procs "$out/procs.after-test" ;;
  esac
done
cat /etc/debian_version >"$out/debian_version.after"
log "steps done"
STAGE2

# Every process of the pid namespace, as pid, ppid, command line; not the inner script's own
# ancestry (the namespace's init and this listing itself).
cat >"$work/procs.py" <<'PY'
import os
mine = set()
pid = os.getpid()
while pid > 0:
    mine.add(pid)
    with open(f"/proc/{pid}/stat") as f:
        pid = int(f.read().rsplit(")", 1)[1].split()[1])
for name in sorted((p for p in os.listdir("/proc") if p.isdigit()), key=int):
    try:
        with open(f"/proc/{name}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        with open(f"/proc/{name}/stat") as f:
            stat = f.read()
    except OSError:
        continue
    if int(name) in mine or not cmd:  # kernel threads have no command line
        continue
    ppid = stat.rsplit(")", 1)[1].split()[1]
    print(f"{name}\t{ppid}\t{cmd[:300]}")
PY

# Every file of the checkout outside .git: size, mtime, sha256 (symlinks: their target).
cat >"$work/snap.py" <<'PY'
import hashlib, json, os, sys
top = sys.argv[1]
files = {}
for d, dirs, names in os.walk(top):
    rel_d = os.path.relpath(d, top)
    if rel_d == ".git" or rel_d.startswith(".git" + os.sep):
        dirs[:] = []
        continue
    for n in names + [x for x in dirs if os.path.islink(os.path.join(d, x))]:
        p = os.path.join(d, n)
        rel = os.path.normpath(os.path.join(rel_d, n))
        st = os.lstat(p)
        if os.path.islink(p):
            files[rel] = ["link", os.readlink(p)]
            continue
        if not os.path.isfile(p):
            continue
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        files[rel] = [st.st_size, st.st_mtime_ns, h.hexdigest()]
json.dump(files, sys.stdout)
PY

# The run's own cgroup in every hierarchy, under the one this script runs in, so that the root's
# dockerd makes its cgroups there and nowhere else.
run_cg="fresh-root-$run"
while IFS=: read -r _ ctl path; do
  case $ctl in
    "") dir=$(awk '$3=="cgroup2"{print $2; exit}' /proc/mounts) ;;
    *) dir=$(awk -v c="$ctl" '$3=="cgroup" && ("," $4 ",") ~ ("," c ",") {print $2; exit}' /proc/mounts) ;;
  esac
  [ -n "$dir" ] || continue
  cg="$dir${path%/}/$run_cg"
  mkdir "$cg"
  cgroups+=("$cg")
  if [ -f "$cg/cpuset.cpus" ]; then
    cat "$(dirname "$cg")/cpuset.cpus" >"$cg/cpuset.cpus"
    cat "$(dirname "$cg")/cpuset.mems" >"$cg/cpuset.mems"
  fi
done </proc/self/cgroup

log "entering the namespaces (network: slirp4netns)"
# The subshell joins the run's cgroups, then becomes unshare (same pid): the cgroup namespace is
# rooted there.
(
  for cg in "${cgroups[@]}"; do echo "$BASHPID" >"$cg/cgroup.procs"; done
  exec unshare --mount --pid --net --uts --ipc --cgroup --fork --kill-child --mount-proc \
    --propagation private bash "$work/inner.sh" "$root" "$out" "$checkout" "$STEPS"
) &
ns_pid=$!
# slirp4netns must join the new network namespace, never this machine's: wait until it exists.
for _ in $(seq 1 100); do
  [ "$(readlink "/proc/$ns_pid/ns/net" 2>/dev/null)" != "$(readlink /proc/self/ns/net)" ] \
    && [ "$(readlink "/proc/$ns_pid/exe" 2>/dev/null)" = "$(readlink -f "$(command -v unshare)")" ] \
    && break
  sleep 0.1
done
[ "$(readlink "/proc/$ns_pid/ns/net")" != "$(readlink /proc/self/ns/net)" ] \
  || die "the runner has no network namespace of its own"
slirp4netns --configure --mtu=65520 --disable-host-loopback "$ns_pid" tap0 \
  >"$out/slirp4netns.log" 2>&1 &
slirp_pid=$!
set +e
wait "$ns_pid"
inner_rc=$?
set -e
ns_pid=""
log "runner exited $inner_rc"

# --- 5. figures ----------------------------------------------------------------------------------
figures "$out" "$commit"
[ "$inner_rc" = 0 ] || exit "$inner_rc"
# A step that failed fails the run (the figures above say which).
awk -F'\t' '$2 != 0 { failed = 1 } END { exit failed }' "$out/steps.tsv"

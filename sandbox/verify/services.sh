#!/bin/bash
# Boots the image and checks what the sandbox promises at run time:
#   /tmp/reached-entrypoint, GET /api/health (gitSha = the image's GIT_SHA), /api/processes,
#   /api/versions; the agent CLIs answer --version; the supervisor runs daemon, egress-proxy,
#   opencode (+ env-watcher); `processes restart` works; a ~/.iterate/.env change restarts
#   opencode ~0.5 s and the daemon ~5 s later and leaves the proxy alone; the proxy forwards
#   through ITERATE_EGRESS_PROXY_URL; arguments to the container are exec'd instead.
#
#   sandbox/verify/services.sh [IMAGE]      (default sandbox-dev:try; exit 0 = all good)
set -euo pipefail
IMAGE=${1:-sandbox-dev:try}
NAME=sandbox-verify-$$
PORT=${VERIFY_DAEMON_PORT:-13000}
failures=0
ok() { echo "OK   $*"; }
bad() { echo "FAIL $*"; failures=$((failures + 1)); }
inside() { docker exec "$NAME" bash -c "$1"; }
# The host side needs no curl (a fresh Debian has none): python3 is there wherever this runs.
get() {
  python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$1"
}
cleanup() { docker rm -f "$NAME" >/dev/null 2>&1 || true; }
trap cleanup EXIT

expected_sha=$(docker image inspect "$IMAGE" --format '{{range .Config.Env}}{{println .}}{{end}}' |
  sed -n 's/^GIT_SHA=//p')
started=$(date +%s.%N)
docker run -d --name "$NAME" -p "127.0.0.1:$PORT:3000" -p 127.0.0.1::4096 -p 127.0.0.1::8888 \
  "$IMAGE" >/dev/null
health=""
for _ in $(seq 1 100); do
  health=$(get "http://127.0.0.1:$PORT/api/health" 2>/dev/null) && break
  sleep 0.1
done
booted=$(python3 -c "import time; print(f'{time.time() - $started:.1f}')")
[[ -n $health ]] && ok "boot: /api/health answered after ${booted} s: $health" || bad "boot: no /api/health"
python3 - "$health" "$expected_sha" <<'PY' && ok "health: ok=true, gitSha=$expected_sha" || bad "health body"
import json, sys
body = json.loads(sys.argv[1])
assert body["ok"] is True and body["gitSha"] == sys.argv[2] and body["uptimeSeconds"] >= 0, body
PY
inside 'test -f /tmp/reached-entrypoint' && ok "/tmp/reached-entrypoint exists" || bad "no /tmp/reached-entrypoint"

for cli in "claude --version" "opencode --version" "pi --version" "gh --version" "pnpm --version" \
  "tsx --version" "bun --version" "node --version"; do
  out=$(inside "$cli 2>&1 | head -1") && ok "$cli -> $out" || bad "$cli"
done
inside 'id -un; git config user.name; git config user.email' | paste -sd' ' | sed 's/^/OK   user, git identity: /'

sleep 3  # startsecs: opencode and the proxy count as RUNNING after 2 s
status=$(inside 'pidnap status' || true)
echo "$status" | sed 's/^/       /'
for service in daemon egress-proxy opencode env-watcher; do
  grep -Eq "^$service +RUNNING" <<<"$status" && ok "$service RUNNING" || bad "$service not RUNNING"
done
for port in 3000 4096 8888; do
  inside "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", $port), 2)'" &&
    ok "port $port accepts connections" || bad "port $port closed"
done
processes=$(get "http://127.0.0.1:$PORT/api/processes")
python3 -c "import json,sys; p={x['name']: x['state'] for x in json.loads(sys.argv[1])['processes']}; assert all(p.get(n) == 'RUNNING' for n in ('daemon','egress-proxy','opencode')), p; print('OK   /api/processes:', p)" "$processes" || bad "/api/processes"
versions=$(get "http://127.0.0.1:$PORT/api/versions")
python3 -c "import json,sys; v=json.loads(sys.argv[1])['versions']; assert all(v.get(k) for k in ('claude','opencode','pi','gh','pnpm','tsx','node')), v; print('OK   /api/versions:', {k: v[k] for k in ('claude','opencode','pi','bun','pnpm','tsx','gh')})" "$versions" || bad "/api/versions"

pid_of() { inside "supervisorctl status $1" | grep -o 'pid [0-9]*' | cut -d' ' -f2; }
before=$(pid_of opencode)
inside 'processes restart opencode' >/dev/null
after=$(pid_of opencode)
[[ -n $after && $after != "$before" ]] && ok "processes restart opencode: pid $before -> $after" || bad "restart"
inside 'processes stop daemon >/dev/null; processes get daemon >/dev/null' && bad "stop" ||
  ok "processes stop daemon: get exits non-zero while STOPPED"
inside 'processes start daemon >/dev/null; processes get daemon >/dev/null' && ok "processes start daemon" || bad "start"

# .env watch: delays from env-watcher's own log (monotonic clock), proxy pid unchanged.
proxy_before=$(pid_of egress-proxy)
inside 'echo "VERIFY_WATCH=$RANDOM" >> ~/.iterate/.env'
sleep 8
inside 'grep "after the change" /var/log/env-watcher/env-watcher.log | tail -2' | sed 's/^/       /'
delays=$(inside 'grep -o "restarting [a-z-]* ([0-9.]* s" /var/log/env-watcher/env-watcher.log | tail -2')
oc=$(sed -n 's/restarting opencode (\([0-9.]*\) s/\1/p' <<<"$delays")
dm=$(sed -n 's/restarting daemon (\([0-9.]*\) s/\1/p' <<<"$delays")
python3 -c "import sys; assert 0.5 <= float('$oc') < 0.8 and 5.0 <= float('$dm') < 5.3" &&
  ok ".env change: opencode restarted after $oc s, daemon after $dm s" || bad ".env delays: '$delays'"
[[ $(pid_of egress-proxy) == "$proxy_before" ]] && ok ".env change: egress-proxy not restarted" ||
  bad "egress-proxy restarted"
inside 'supervisorctl status daemon opencode' | grep -c RUNNING | grep -q 2 &&
  ok "daemon and opencode RUNNING again" || bad "services not back"

# Egress through an upstream: a second mitmdump on :9999 stands in for ITERATE_EGRESS_PROXY_URL.
inside '(mitmdump --listen-host 127.0.0.1 --listen-port 9999 --set confdir=/tmp/upstream >/tmp/upstream.log 2>&1 &)
    echo "ITERATE_EGRESS_PROXY_URL=http://user:secret@127.0.0.1:9999" >> ~/.iterate/.env
    listening() { for _ in $(seq 60); do (: </dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.5; done; return 1; }
    listening 9999 && processes restart egress-proxy >/dev/null && listening 8888 &&
    curl -fsS -o /dev/null -x http://127.0.0.1:8888 http://deb.debian.org/debian/dists/bookworm/Release' &&
  inside 'grep -q "GET http://deb.debian.org/debian/dists/bookworm/Release" /tmp/upstream.log' &&
  ok "egress: a request to :8888 went out through the upstream on :9999" || bad "egress upstream"
inside 'grep "egress:" /var/log/egress-proxy/egress-proxy.log | tail -1' | sed 's/^/       /'
inside 'grep -q secret /var/log/egress-proxy/egress-proxy.log' && bad "credentials in proxy log" ||
  ok "egress: credentials not in the log"

# Arguments are exec'd instead of the supervisor; without mounts the baked-in checkout is used.
out=$(docker run --rm "$IMAGE" bash -c \
  'test -f /tmp/reached-entrypoint && ! pgrep supervisord >/dev/null && echo "$PWD $GIT_SHA" && ls sandbox/Dockerfile' 2>/dev/null)
[[ $out == *"sandbox/Dockerfile"* ]] && ok "docker run IMAGE CMD: exec'd without supervisor, baked: $(head -1 <<<"$out")" ||
  bad "args: $out"

echo "$failures failed"
exit $((failures > 0))

#!/bin/bash
# The sandbox's entrypoint.
#
# With dev-sync mounts present, the container mirrors the host's checkout first:
#   /host/repo-checkout  the work tree (read-only)
#   /host/gitdir         its git dir (for a linked worktree: <main>/.git/worktrees/<name>)
#   /host/commondir      the repository's common dir (<main>/.git; may be absent or the same
#                        as /host/gitdir for a plain checkout)
# so that `git rev-parse --abbrev-ref HEAD`, `git rev-parse HEAD` and `git status --porcelain`
# inside equal the host's; a worktree becomes a plain repository. Without the mounts, what the
# image has baked in runs as it is.
#
# Then: arguments given to the container are exec'd; without any, the supervisor runs.
set -euo pipefail

touch /tmp/reached-entrypoint

REPO="${SANDBOX_REPO_DIR:-$HOME/src/github.com/iterate/iterate}"
HOST_CHECKOUT=/host/repo-checkout
HOST_GITDIR=/host/gitdir
HOST_COMMONDIR=/host/commondir
SUPERVISOR_CONF=/etc/supervisor/supervisord.conf
# Per-worktree state in a git dir (gitrepository-layout(5)); everything else is shared.
PER_WORKTREE=(HEAD index ORIG_HEAD FETCH_HEAD MERGE_HEAD MERGE_MSG MERGE_MODE MERGE_RR
  CHERRY_PICK_HEAD REVERT_HEAD AUTO_MERGE BISECT_LOG BISECT_START BISECT_TERMS BISECT_EXPECTED_REV
  BISECT_ANCESTORS_OK BISECT_NAMES config.worktree logs/HEAD rebase-merge rebase-apply sequencer
  refs/bisect refs/worktree refs/rewritten)

log() { echo "sandbox-entry: $*" >&2; }

# rsync's "some files could not be read" (23) and "vanished while copying" (24) leave the rest
# of the sync good: say so and go on rather than leave the container without its checkout.
tolerant() {
  local rc=0
  "$@" || rc=$?
  if ((rc == 23 || rc == 24)); then
    log "warning: some files could not be copied (rsync exit $rc); see the lines above"
  elif ((rc != 0)); then
    return "$rc"
  fi
}

copy_git_metadata() {
  local commondir=$HOST_COMMONDIR
  [[ -d $commondir ]] || commondir=$HOST_GITDIR
  local staged="$REPO/.git.sync.$$"
  rm -rf "$staged"
  # The shared part: objects, refs, config, hooks, info/exclude, packed-refs, modules...
  rsync -a --no-owner --no-group --exclude=/worktrees/ "$commondir/" "$staged/"
  if [[ $(readlink -f "$HOST_GITDIR") != $(readlink -f "$commondir") ]]; then
    # A linked worktree: its own HEAD, index, logs/HEAD, ... replace the main worktree's.
    local item
    for item in "${PER_WORKTREE[@]}"; do rm -rf "${staged:?}/$item"; done
    rsync -a --no-owner --no-group --exclude=/commondir --exclude=/gitdir \
      "$HOST_GITDIR/" "$staged/"
  fi
  rm -f "$staged/commondir" "$staged/gitdir" "$staged/gc.pid" "$staged/index.lock"
  rm -rf "$REPO/.git"
  mv "$staged" "$REPO/.git"
}

sync_checkout() {
  local started=$SECONDS
  mkdir -p "$REPO"
  if [[ -d $HOST_GITDIR ]]; then
    copy_git_metadata
  fi
  # The work tree, honouring .gitignore files; the checkout's own .git (dir or worktree file)
  # never comes across.
  tolerant rsync -a --delete --no-owner --no-group --exclude=/.git --filter=':- .gitignore' \
    "$HOST_CHECKOUT/" "$REPO/"
  if [[ -d $REPO/.git ]]; then
    # rsync's reading of .gitignore is not git's (negations, info/exclude, tracked files that
    # match an ignore pattern): copy what git itself says belongs to the work tree.
    git --git-dir="$REPO/.git" --work-tree="$HOST_CHECKOUT" \
      ls-files -z --cached --others --exclude-standard |
      tolerant rsync -a --no-owner --no-group --from0 --files-from=- --ignore-missing-args \
        "$HOST_CHECKOUT/" "$REPO/"
    # Stat data in the index is the host's: refresh it so the first status is quick and quiet.
    git -C "$REPO" update-index -q --really-refresh >/dev/null 2>&1 || true
  fi
  copy_home_skeleton "$REPO/sandbox/home-skeleton"
  log "synced $HOST_CHECKOUT into $REPO in $((SECONDS - started)) s"
}

copy_home_skeleton() {
  local skeleton=$1
  [[ -d $skeleton ]] || return 0
  # Configs follow the checkout; a real ~/.iterate/.env is never overwritten by the example.
  rsync -a --no-owner --no-group --exclude=/.iterate/.env "$skeleton/" "$HOME/"
  if [[ -f $skeleton/.iterate/.env && ! -e $HOME/.iterate/.env ]]; then
    cp "$skeleton/.iterate/.env" "$HOME/.iterate/.env"
  fi
}

if [[ -d $HOST_CHECKOUT ]]; then
  sync_checkout
else
  log "no $HOST_CHECKOUT mount: running the baked-in checkout at $REPO"
fi

if [[ $# -gt 0 ]]; then
  exec "$@"
fi
exec supervisord --nodaemon --configuration "$SUPERVISOR_CONF"

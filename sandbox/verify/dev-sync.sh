#!/bin/bash
# Dev-sync check: a plain checkout and a linked worktree, each with staged, unstaged and
# untracked changes (plus ignored files, a negated ignore pattern, a force-added ignored file, a
# deletion, a mode change and a symlink), mounted the way dev-sync mounts them. Inside the
# container `git rev-parse --abbrev-ref HEAD`, `git rev-parse HEAD` and `git status --porcelain`
# must print exactly what they print on the host.
#
#   sandbox/verify/dev-sync.sh [IMAGE]      (default sandbox-dev:try; exit 0 = all equal)
set -euo pipefail
IMAGE=${1:-sandbox-dev:try}
SOURCE_REPO=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
work=$(mktemp -d /tmp/dev-sync-XXXXXX)
trap 'rm -rf "$work"' EXIT
facts='git rev-parse --abbrev-ref HEAD; git rev-parse HEAD; git status --porcelain'

git clone -q "$SOURCE_REPO" "$work/plain"
cd "$work/plain"
git config user.email dev@example.invalid && git config user.name dev
printf '*.log\n!keep.log\n' >>.gitignore                 # unstaged change + negation
echo staged >>README.md && git add README.md             # staged change
echo both >>pyproject.toml && git add pyproject.toml && echo more >>pyproject.toml  # MM
git rm -q --cached scripts/setup-engine.sh 2>/dev/null || true  # staged deletion, file stays
mkdir -p build newdir && echo forced >build/forced.txt && git add -f build/forced.txt
echo untracked >notes.txt && echo x >newdir/a.txt && echo kept >keep.log && echo no >drop.log
mkdir -p .venv __pycache__ && echo ignored >.venv/x && echo ignored >__pycache__/y.pyc
ln -s README.md link-to-readme
chmod +x noxfile.py 2>/dev/null || chmod +x pyproject.toml

git worktree add -q -b feature/dev-sync "$work/wt"
cd "$work/wt"
echo wt-staged >>README.md && git add README.md
echo wt-unstaged >>.gitignore
echo wt-untracked >wt-notes.txt && mkdir -p node_modules && echo ignored >node_modules/z
rm -f pipeline/__init__.py                               # unstaged deletion

check() { # NAME CHECKOUT GITDIR COMMONDIR
  local name=$1 checkout=$2 gitdir=$3 commondir=$4 host inside
  host=$(cd "$checkout" && bash -c "$facts")
  inside=$(docker run --rm \
    -v "$checkout:/host/repo-checkout:ro" -v "$gitdir:/host/gitdir:ro" \
    -v "$commondir:/host/commondir:ro" "$IMAGE" bash -c "$facts")
  if [[ $host == "$inside" ]]; then
    echo "OK   $name: $(wc -l <<<"$host") lines equal"
    sed 's/^/       /' <<<"$host"
  else
    echo "FAIL $name"
    diff <(echo "$host") <(echo "$inside") | sed 's/^/       /'
    return 1
  fi
}

status=0
check "plain checkout" "$work/plain" "$work/plain/.git" "$work/plain/.git" || status=1
check "linked worktree" "$work/wt" "$work/plain/.git/worktrees/wt" "$work/plain/.git" || status=1
exit $status

#!/bin/bash
# cmake/GitSha.cmake, which every build runs: the commit of the sources, "-dirty" while tracked
# files differ from it (a new untracked file is not a change), the new commit once committed,
# "unknown" outside a git checkout; the file is rewritten only when its text changes.
# Usage: test_git_sha.sh SOURCE_DIR WORK_DIR
set -uo pipefail
SRC=$1; WORK=$2
rm -rf "$WORK"; mkdir -p "$WORK/repo"; cd "$WORK/repo"
# The work folder may lie inside the project's own checkout: git must not look above it.
export GIT_CEILING_DIRECTORIES=$WORK
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }
sha_of() { cmake -DSOURCE_DIR="$WORK/repo" -DOUTPUT="$WORK/git_sha.cpp" -P "$SRC/cmake/GitSha.cmake" \
  && sed -n 's/.*return "\(.*\)";.*/\1/p' "$WORK/git_sha.cpp"; }
git init -q . && git config user.email t@example.org && git config user.name test
echo a > file.txt && git add file.txt && git commit -qm one
head=$(git rev-parse --short=12 HEAD)
[ "$(sha_of)" = "$head" ] && ok "a clean checkout" || fail "clean: $(sha_of), expected $head"
before=$(stat -c %Y.%N "$WORK/git_sha.cpp"); sleep 1.1; sha_of > /dev/null
[ "$(stat -c %Y.%N "$WORK/git_sha.cpp")" = "$before" ] && ok "unchanged text: file not rewritten" \
  || fail "the file was rewritten with the same text (everything would relink)"
echo new > untracked.txt
[ "$(sha_of)" = "$head" ] && ok "an untracked file is not a change" || fail "untracked: $(sha_of)"
echo b >> file.txt
[ "$(sha_of)" = "$head-dirty" ] && ok "a changed tracked file: -dirty" || fail "dirty: $(sha_of), expected $head-dirty"
git commit -qam two
[ "$(sha_of)" = "$(git rev-parse --short=12 HEAD)" ] && [ "$(sha_of)" != "$head" ] \
  && ok "after a commit: the new commit" || fail "after commit: $(sha_of)"
rm -rf .git
[ "$(sha_of)" = "unknown" ] && ok "outside git: unknown" || fail "outside git: $(sha_of)"
echo "test_git_sha: $failures failure(s)"
[ "$failures" = 0 ]

# lib.sh — helpers for shell tests; source it first.
#   need_shared FILE...  skip (exit 77) with a message when ../shared assets are absent
#   fail MSG             print and exit 1
#   expect_fail CMD...   the command must exit nonzero with a one-line "error:" message
set -u -o pipefail   # a failing producer in a pipe fails the test too (so never cut a
                     # producer short with head: it would die of SIGPIPE; use sed -n 1p)
: "${LBDPO_BIN:?run through make test}"
export PATH="$LBDPO_BIN:$PATH"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
ROOT="${LBDPO_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
fail() { echo "FAIL: $*"; exit 1; }
need_shared() {
	[ -n "${LBDPO_SHARED:-}" ] || { echo "skipped: ../shared not found (set LBDPO_SHARED)"; exit 77; }
	for f in "$@"; do [ -e "$LBDPO_SHARED/$f" ] || { echo "skipped: $LBDPO_SHARED/$f absent"; exit 77; }; done
}
expect_fail() {
	local out rc
	out=$("$@" 2>&1 >/dev/null); rc=$?
	[ $rc -ne 0 ] || fail "expected failure: $*"
	[ "$(printf '%s\n' "$out" | grep -c 'error:')" -ge 1 ] || fail "no error message from: $* (got: $out)"
	printf '%s\n' "$out" | grep 'error:' | head -1
}

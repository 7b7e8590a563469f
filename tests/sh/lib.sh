# lib.sh — helpers for shell tests; source it first.
#   need_shared FILE...  skip (exit 77) with a message when ../shared assets are absent
#   fail MSG             print and exit 1
#   expect_fail CMD...   the command must exit nonzero with a one-line "error:" message
#   kill_mid_run PID GLOB  stop PID, let it run in 50 ms slices until the files GLOB
#                        hold over 2000 bytes, then SIGKILL it: the kill lands mid-run
#                        however fast the machine is
#   num_close A B TOL    two text files equal but for numbers, which agree within TOL
#                        relative (absolute below 1); prints the worst difference
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
# need_mpi PROG: skip (77) unless mpirun is there and PROG was linked with MPI;
# then the environment every MPI test runs under and mpi(), an mpirun for
# this host. Open MPI as root needs the two ALLOW variables; ranks of one host
# share memory without the single-copy (CMA) mechanism containers forbid.
need_mpi() {
	command -v mpirun >/dev/null || { echo "skipped: mpirun not found (scripts/deps.sh --mpi installs Open MPI)"; exit 77; }
	ldd "$LBDPO_BIN/$1" | grep libmpi >/dev/null ||
		{ echo "skipped: $1 built without MPI (mpicc absent at build time, or MPI=0)"; exit 77; }
	export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
	export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
	export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
	export LBDPO_TEST_MARK="$T" # finds this test's ranks among other processes
}
mpi() { mpirun -q --oversubscribe "$@"; }
# rank_pid R PATTERN: the process id of rank R among this test's ranks whose
# command line matches PATTERN (pgrep -f), found by the environment need_mpi set
rank_pid() {
	local p e
	for p in $(pgrep -f "$2"); do
		e=$(tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null)
		grep -qx "LBDPO_TEST_MARK=$T" <<<"$e" && grep -qx "OMPI_COMM_WORLD_RANK=$1" <<<"$e" && { echo "$p"; return; }
	done
}
kill_mid_run() {
	local i s
	kill -STOP "$1"
	for i in $(seq 400); do
		s=$(eval "cat $2" 2>/dev/null | wc -c)
		[ "$s" -gt 2000 ] && break
		kill -CONT "$1"; sleep 0.05; kill -STOP "$1"
	done
	kill -9 "$1" 2>/dev/null; wait "$1" 2>/dev/null
}
num_close() {
	local a b
	a=$(wc -l <"$1") b=$(wc -l <"$2")
	[ "$a" = "$b" ] || { echo "num_close: $1 has $a lines, $2 has $b"; return 1; }
	paste -d '\n' "$1" "$2" | awk -v tol="$3" -v f1="$1" -v f2="$2" '
	function split_nums(s, nums, rest,   n, r) {
		n = 0; r = ""
		while (match(s, /-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?/)) {
			nums[++n] = substr(s, RSTART, RLENGTH) + 0
			r = r substr(s, 1, RSTART - 1) "#"
			s = substr(s, RSTART + RLENGTH)
		}
		rest[0] = r s
		return n
	}
	NR % 2 == 1 { line1 = $0; next }
	{
		n1 = split_nums(line1, x, r1); n2 = split_nums($0, y, r2)
		if (n1 != n2 || r1[0] != r2[0]) { printf "num_close: line %d differs beyond its numbers\n", NR / 2; bad = 1; exit 1 }
		for (i = 1; i <= n1; i++) {
			d = x[i] - y[i]; if (d < 0) d = -d
			m = x[i] < 0 ? -x[i] : x[i]; if (m < 1) m = 1
			if (d / m > w) w = d / m
			if (d / m > tol) { printf "num_close: line %d: %.17g vs %.17g\n", NR / 2, x[i], y[i]; bad = 1; exit 1 }
		}
	}
	END { if (!bad) printf "num_close %s %s: worst relative difference %.2g\n", f1, f2, w; exit bad }'
}

#!/usr/bin/env bash
# run.sh — run every unit test binary and every shell test; print one
# closing line "N passed, N failed, N skipped" and exit nonzero on failure.
#
# Shell tests (tests/sh/test_*.sh) exit 0 = pass, 77 = skip (with a reason on
# stdout/stderr), anything else = fail. Unit test binaries are Criterion's.
set -u
cd "$(dirname "$0")/.."
: "${LBDPO_BIN:=$PWD/bin}" "${LBDPO_TESTBIN:=$PWD/build/rel/tests}"
export LBDPO_BIN LBDPO_TESTBIN LBDPO_ROOT="$PWD" PATH="$LBDPO_BIN:$PATH"
# Real assets beside the checkout (CI has them; a user's clone may not).
if [ -z "${LBDPO_SHARED:-}" ] && [ -d "$PWD/../shared" ]; then export LBDPO_SHARED="$PWD/../shared"; fi
if [ -z "${LBDPO_ASSETS:-}" ] && [ -n "${LBDPO_SHARED:-}" ]; then export LBDPO_ASSETS="$LBDPO_SHARED/assets"; fi
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}" UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
pass=0 fail=0 skip=0 failed=()
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
only="${TESTS:-}"   # TESTS='pat1 pat2' runs the tests whose names contain any pattern
wanted() {
	[ -z "$only" ] && return 0
	local p
	for p in $only; do [[ $1 == *$p* ]] && return 0; done
	return 1
}

for t in "$LBDPO_TESTBIN"/test_*; do
	[ -x "$t" ] || continue
	n=${t##*/}
	wanted "$n" || continue
	# --verbose: Criterion names skipped tests only then ("[SKIP] suite::test: reason")
	"$t" --jobs 2 --verbose >"$log/$n" 2>&1; rc=$?
	syn=$(grep -a 'Synthesis:' "$log/$n" | tail -1)
	p=$(sed -n 's/.*Passing: \([0-9]*\).*/\1/p' <<<"$syn"); p=${p:-0}
	f=$(sed -n 's/.*Failing: \([0-9]*\).*/\1/p' <<<"$syn"); f=${f:-0}
	c=$(sed -n 's/.*Crashing: \([0-9]*\).*/\1/p' <<<"$syn"); c=${c:-0}
	s=$(grep -ac '^\[SKIP\]' "$log/$n")
	if [ "$rc" != 0 ] && [ $((f + c)) = 0 ]; then f=1; fi
	pass=$((pass + p)); fail=$((fail + f + c)); skip=$((skip + s))
	printf '%-40s %s\n' "$n" "${syn:-exit $rc}"
	if [ "$rc" != 0 ]; then failed+=("$n"); grep -a -E 'FAIL|CRASH|error|ERROR|Assertion|runtime error' "$log/$n" | grep -av '^\[\(RUN \|PASS\)\]' | head -30; fi
	[ "$s" -gt 0 ] && grep -a '^\[SKIP\]' "$log/$n" | head -5
done

for t in tests/sh/test_*.sh; do
	[ -f "$t" ] || continue
	n=$(basename "$t" .sh)
	wanted "$n" || continue
	start=$(date +%s)
	bash "$t" >"$log/$n" 2>&1; rc=$?
	dt=$(( $(date +%s) - start ))
	case $rc in
	0) pass=$((pass + 1)); printf '%-40s ok (%ss)\n' "$n" "$dt" ;;
	77) skip=$((skip + 1)); printf '%-40s SKIP: %s\n' "$n" "$(tail -1 "$log/$n")" ;;
	*) fail=$((fail + 1)); failed+=("$n"); printf '%-40s FAIL (exit %s, %ss)\n' "$n" "$rc" "$dt"; tail -25 "$log/$n" | sed 's/^/    /' ;;
	esac
done

[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]

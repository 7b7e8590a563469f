#!/usr/bin/env bash
# make fuzz's reporting (tests/fuzz/run.sh) on planted targets
# (tests/fuzz/selftest/): an input that hangs is cut by the per-input timeout
# and counted, UBSan's "runtime error:" is counted, both fail the run; a clean
# target passes; the summary gives executions per target.
. "$(dirname "$0")/lib.sh"
command -v clang >/dev/null || { echo "skipped: clang (libFuzzer) not installed"; exit 77; }
printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }\n' >"$T/probe.c"
clang -fsanitize=fuzzer,address,undefined "$T/probe.c" -o "$T/probe" 2>/dev/null ||
	{ echo "skipped: clang cannot build libFuzzer targets"; exit 77; }
run() { FUZZ_OUT="$T/out" FUZZ_DIR=tests/fuzz/selftest FUZZ_LINK= FUZZ_SECONDS=3 FUZZ_TIMEOUT=2 FUZZ=$1 \
	bash "$ROOT/tests/fuzz/run.sh" >"$T/log" 2>&1; }
row() { awk -v t="$1" '$1 == t { print $2, $3 }' "$T/log"; }

run fuzz_clean || fail "a clean target failed: $(cat "$T/log")"
read -r ex found < <(row fuzz_clean)
[ "${ex:-0}" -gt 100 ] && [ "$found" = 0 ] || fail "clean target: executions ${ex:-?}, findings ${found:-?}: $(cat "$T/log")"
grep -q '^fuzz: no findings$' "$T/log" || fail "no verdict: $(cat "$T/log")"

start=$(date +%s)
run fuzz_slow && fail "a hang did not fail the run: $(cat "$T/log")"
[ $(($(date +%s) - start)) -lt 60 ] || fail "the hang was not cut by the per-input timeout"
read -r ex found < <(row fuzz_slow)
[ "${found:-0}" -ge 1 ] || fail "hang not counted: $(cat "$T/log")"
grep -q 'ERROR: libFuzzer: timeout after [0-9]* seconds' "$T/log" || fail "timeout not reported: $(cat "$T/log")"
ls "$T/out"/fuzz_slow-timeout-* >/dev/null || fail "no timeout input saved"

run fuzz_ub && fail "UBSan's report did not fail the run: $(cat "$T/log")"
read -r ex found < <(row fuzz_ub)
[ "${found:-0}" -ge 1 ] || fail "UBSan report not counted: $(cat "$T/log")"
grep -q 'runtime error: signed integer overflow' "$T/log" || fail "UBSan report not shown: $(cat "$T/log")"
grep -q '^fuzz: FAILED' "$T/log" || fail "no verdict: $(cat "$T/log")"
echo ok

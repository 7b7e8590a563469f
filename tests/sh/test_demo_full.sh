#!/usr/bin/env bash
# `make demo` as shipped (default settings, ~1 min): the table is complete and
# preference training beats the SFT reference on held-out pairs, for DPO and
# for LB-DPO. (The reduced-setting checks of the pipeline's mechanics are in
# test_pipeline_demo.sh.)
. "$(dirname "$0")/lib.sh"
make --no-print-directory -f "$ROOT/pipelines/demo.mk" LBDPO_BIN="$LBDPO_BIN" W="$T/d" >"$T/log" 2>&1 ||
	{ tail -20 "$T/log"; fail "make demo failed"; }
tab="$T/d/table.txt"
cat "$tab"
col() { grep -F "$1" "$tab" | awk -v c="$2" '{ print $(NF - 3 + c) }'; }  # c = 1 overall, 2 math, 3 open
ref=$(col "pref acc  reference" 1); dpo=$(col "pref acc  DPO" 1); lb=$(col "pref acc  LB-DPO" 1)
[ -n "$ref" ] && [ -n "$dpo" ] && [ -n "$lb" ] || fail "accuracy rows missing"
awk -v r="$ref" -v d="$dpo" -v l="$lb" 'BEGIN { exit !(d >= r + 0.15 && l >= r + 0.15) }' ||
	fail "held-out preference accuracy: reference $ref, DPO $dpo, LB-DPO $lb (want both >= reference + 0.15)"
# greedy arithmetic answers improve over the reference too
a=$(grep -F "arithmetic answer acc" "$tab")
awk -v s="$a" 'BEGIN { n = split(s, f, " +"); exit !(f[n - 1] > f[n - 2] && f[n] > f[n - 2]) }' ||
	fail "arithmetic answers did not improve: $a"
exit 0

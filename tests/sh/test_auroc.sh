#!/usr/bin/env bash
# pipelines/auroc.awk (the study's AUROC of per-pair β for flipped vs clean
# pairs) against hand-computed cases, ties included.
. "$(dirname "$0")/lib.sh"
A="$ROOT/pipelines/auroc.awk"
au() { sort -g -k2,2 | awk -f "$A"; }
# group a: positives 0.9 0.5 0.5, negatives 0.5 0.2 0.1 0.9. Per positive
# (> counts 1, = counts ½): 0.9 → 3 + ½ = 3.5; each 0.5 → 2 + ½ = 2.5;
# U = 8.5 of 3·4 = 12 → 0.708333333
# group b: positive 0.3, negatives 0.3 0.3 → ½ (all ties); group c: no
# negative → nan. all: 5 positives, 6 negatives; by hand: 0.9 beats 0.5
# 0.2 0.1 0.3 0.3, ties 0.9 → 5.5; each 0.5 beats 0.2 0.1 0.3 0.3, ties 0.5
# → 4.5 (twice); 0.3 beats 0.2 0.1, ties 0.3 0.3 → 3; c's 0.7 is a positive
# too: beats 0.5 0.2 0.1 0.3 0.3 → 5. U = 5.5 + 9 + 3 + 5 = 22.5 of 5·6 = 30 → 0.75
printf '%s\n' "a 0.9 1" "a 0.5 1" "a 0.5 1" "a 0.5 0" "a 0.2 0" "a 0.1 0" "a 0.9 0" \
	"b 0.3 1" "b 0.3 0" "b 0.3 0" "c 0.7 1" >"$T/in"
au <"$T/in" >"$T/out" || fail "auroc.awk failed"
cat "$T/out"
printf '%s\n' "a 0.708333333 3 4" "b 0.5 1 2" "c nan 1 0" "all 0.75 5 6" | diff - "$T/out" || fail "wrong AUROC"
# order of equal-score lines does not matter; a perfect and an inverted ranking
tac "$T/in" | au | diff - "$T/out" >/dev/null || fail "order of tied lines changed the result"
printf '%s\n' "g 1 1" "g 2 1" "g -1 0" "g 0 0" | au | grep -qx "g 1 2 2" || fail "perfect ranking is not 1"
printf '%s\n' "g 1 0" "g 2 0" "g -1 1" "g 0 1" | au | grep -qx "g 0 2 2" || fail "inverted ranking is not 0"
# scientific notation and negative scores sort numerically
printf '%s\n' "g 1e-3 1" "g -2e-3 0" "g 5e-4 0" | au | grep -qx "g 1 1 2" || fail "exponent scores"
# bad input: a one-line error, exit 2
printf '%s\n' "g 0.5 2" | awk -f "$A" 2>"$T/err"; [ $? = 2 ] && grep -q 'error: line 1' "$T/err" || fail "bad label accepted"
printf '%s\n' "g 0.5 1" "g 0.1 0" | awk -f "$A" 2>"$T/err"; [ $? = 2 ] && grep -q 'not sorted' "$T/err" || fail "unsorted input accepted"
echo ok

#!/usr/bin/env bash
# pipelines/demo.mk end to end on a reduced setting (small data, few steps):
# it finishes, prints the table with every cell filled, and the table's
# accuracies agree with a recount from the raw outputs.
. "$(dirname "$0")/lib.sh"
MK=(make --no-print-directory -f "$ROOT/pipelines/demo.mk" LBDPO_BIN="$LBDPO_BIN" W="$T/d"
    N_TRAIN=300 N_TEST=80 SFT_STEPS=60 STEPS=10)
"${MK[@]}" >"$T/log" 2>&1 || { tail -20 "$T/log"; fail "demo pipeline failed"; }
sed -n '/lbdpo demo/,$p' "$T/log"
tab="$T/d/table.txt"
[ -s "$tab" ] || fail "no table"
for r in "pref acc  reference" "pref acc  DPO" "pref acc  LB-DPO" "reward acc DPO" "reward acc LB-DPO" "mean beta LB-DPO"; do
	line=$(grep -F "$r" "$tab") || fail "row '$r' missing"
	echo "$line" | grep -Eq "^$r +[0-9]+\.[0-9]{3} +[0-9]+\.[0-9]{3} +[0-9]+\.[0-9]{3}$" || fail "row not filled: $line"
done
grep -Eq '^arithmetic answer acc +[0-9.]+ +[0-9.]+ +[0-9.]+$' "$tab" || fail "answer row"
grep -q '(80 pairs; ' "$tab" || fail "pair count"
# recount the reference's overall preference accuracy from its scores
want=$(lbdpo-show --no-header -i <(lbdpo-logprob -q -m "$T/d/ref" -i "$T/d/test.tok") |
	awk '{ match($0, /"chosen_logp":-?[0-9.eE+-]+/); c = substr($0, RSTART + 14, RLENGTH - 14)
	       match($0, /"rejected_logp":-?[0-9.eE+-]+/); r = substr($0, RSTART + 16, RLENGTH - 16)
	       n++; k += (c + 0 > r + 0) } END { printf "%.3f", k / n }')
grep -Eq "^pref acc  reference +$want " "$tab" || fail "reference accuracy $want not in table"
# the answers: one greedy answer per held-out arithmetic question
nq=$(grep -c '"group":"math"' "$T/d/data/test.jsonl")
[ "$(wc -l <"$T/d/ref.answers.jsonl")" = "$nq" ] || fail "answers"
# nothing to redo
"${MK[@]}" -q "$T/d/lbdpo.eval.json" "$T/d/ref.answers.jsonl" || fail "re-running would redo work"
echo ok

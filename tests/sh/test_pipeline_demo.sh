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
for r in "pref acc  reference" "pref acc  DPO" "pref acc  LB-DPO" "reward acc DPO" "reward acc LB-DPO" \
	 "mean beta LB-DPO" "beta factor f LB-DPO" "arithmetic answer acc" "open: tone follows" "open: mean words" \
	 "open: distinct-2"; do
	line=$(grep -F "$r" "$tab") || fail "row '$r' missing"
	echo "$line" | grep -Eq "^$r +[0-9]+\.[0-9]{3} +[0-9]+\.[0-9]{3} +[0-9]+\.[0-9]{3}$" || fail "row not filled: $line"
done
# f = 1 + eps*tanh(a) lies in [1 - eps, 1 + eps] (eps from LBDPO_OPTS, 0.5)
grep "^beta factor f LB-DPO " "$tab" | awk '{ for (i = NF - 2; i <= NF; i++) if ($i < 0.5 || $i > 1.5) exit 1 }' || fail "beta factor out of range"
grep -q '(80 pairs; ' "$tab" || fail "pair count"
# recount the reference's overall preference accuracy from its scores
want=$(lbdpo-show --no-header -i <(lbdpo-logprob -q -m "$T/d/ref" -i "$T/d/test.tok") |
	awk '{ match($0, /"chosen_logp":-?[0-9.eE+-]+/); c = substr($0, RSTART + 14, RLENGTH - 14)
	       match($0, /"rejected_logp":-?[0-9.eE+-]+/); r = substr($0, RSTART + 16, RLENGTH - 16)
	       n++; k += (c + 0 > r + 0) } END { printf "%.3f", k / n }')
grep -Eq "^pref acc  reference +$want " "$tab" || fail "reference accuracy $want not in table"
# the answers: one greedy answer per held-out prompt
[ "$(wc -l <"$T/d/ref.answers.jsonl")" = 80 ] || fail "answers"
# the generation statistics are lbdpo-eval's, on the open-ended answers
no=$(grep -c '"group":"open"' "$T/d/data/test.jsonl")
grep -A1 '"generations"' "$T/d/dpo.eval.json" | grep -q "\"n\": $no," || fail "generations in dpo.eval.json: want n = $no"
# nothing to redo
"${MK[@]}" -q "$T/d/lbdpo.eval.json" "$T/d/ref.eval.json" "$T/d/lbdpo.beta.jsonl" "$T/d/ref.answers.jsonl" ||
	fail "re-running would redo work"
echo ok

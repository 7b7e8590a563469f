#!/usr/bin/env bash
# pipelines/online.mk end to end, QUICK=1 (one seed, 2 rounds, little data):
# every round's files are there, its pairs well formed (scores ordered, the
# judge's pairs right by the oracle), its DPO metrics written, the report
# filled; round 2 trained from round 1's checkpoint (recomputed from it: the
# same weights; from the reference: others); a removed round is redone alone
# and a finished run has nothing left to do.
. "$(dirname "$0")/lib.sh"
MK=(make --no-print-directory -f "$ROOT/pipelines/online.mk" LBDPO_BIN="$LBDPO_BIN" W="$T/o" QUICK=1)
t0=$(date +%s)
"${MK[@]}" >"$T/log" 2>&1 || { tail -20 "$T/log"; fail "online pipeline failed"; }
echo "QUICK=1 pipeline: $(($(date +%s) - t0)) s"
sed -n '/online DPO/,$p' "$T/log"
S="$T/o/s1"
for a in judge rm; do
	for k in 1 2; do
		R="$S/$a/r$k"
		for f in prompts.jsonl samples.jsonl scored.jsonl pairs.jsonl pairs.tok pairs.ref policy/config.json \
			metrics.jsonl answers.jsonl answers.oracle.jsonl samples.oracle.jsonl; do
			[ -s "$R/$f" ] || fail "$a round $k: $f missing or empty"
		done
		[ "$(wc -l <"$R/prompts.jsonl")" = 40 ] || fail "$a round $k: want P = 40 prompts"
		[ "$(wc -l <"$R/scored.jsonl")" = 160 ] || fail "$a round $k: want P x N = 160 scored samples"
		[ "$(grep -c '"reward":' "$R/scored.jsonl")" = 160 ] || fail "$a round $k: a sample without a reward"
		# pairs: prompt, distinct chosen and rejected, the chosen scored higher
		awk '{ c = $0; sub(/.*"chosen":"/, "", c); sub(/".*/, "", c); r = $0; sub(/.*"rejected":"/, "", r); sub(/".*/, "", r)
		       cs = $0; sub(/.*"chosen_score":/, "", cs); sub(/,.*/, "", cs); rs = $0; sub(/.*"rejected_score":/, "", rs); sub(/}.*/, "", rs)
		       if ($0 !~ /^\{"id":"train-[0-9]+","group":"(math|open)","prompt":"Q: [^"]*","chosen":"[^"]*","rejected":"[^"]*","chosen_score":[-0-9.e]+,"rejected_score":[-0-9.e]+\}$/ ||
			   c == r || c == "" || r == "" || !(cs + 0 > rs + 0)) { print "bad pair at line " NR ": " $0; exit 1 } }' \
			"$R/pairs.jsonl" || fail "$a round $k: a malformed pair"
		np=$(wc -l <"$R/pairs.jsonl")
		[ "$np" -ge 1 ] || fail "$a round $k: no pairs"
		[ "$(lbdpo-show --no-header -i "$R/pairs.ref" | grep -c '"ref_chosen_logp"')" = "$np" ] ||
			fail "$a round $k: pairs.ref holds another number of records than pairs.jsonl"
		[ "$(grep -c '"loss": ' "$R/metrics.jsonl")" = 5 ] || fail "$a round $k: want 5 steps of metrics"
		[ "$(wc -l <"$R/answers.jsonl")" = "$(wc -l <"$S/base/data/test.jsonl")" ] || fail "$a round $k: answers"
	done
done
# the judge's pairs are right by the oracle
for k in 1 2; do
	[ "$(grep -c '"chosen_score":1.0,"rejected_score":0.0}' "$S/judge/r$k/pairs.jsonl")" = "$(wc -l <"$S/judge/r$k/pairs.jsonl")" ] ||
		fail "judge round $k: pairs not 1 vs 0"
done
# the report: every row filled
rep="$T/o/report.txt"
for r in "ref 0" "judge 1" "judge 2" "rm 1" "rm 2" "offline 2"; do
	set -- $r
	grep -Eq "^$1 +$2 +[0-9]+\.[0-9]{3} +[0-9]+\.[0-9]{3} +[0-9]+\.[0-9]{3}" "$rep" || fail "report row '$r' not filled"
done
grep -Eq "held-out pair ranking accuracy +[01]\.[0-9]{3}" "$rep" || fail "reward model accuracy missing"
[ -s "$T/o/plot.gp" ] && [ -s "$T/o/plot.dat" ] || fail "plot data"
# the plot's points are the table's: round 2 of the judge, the mean accuracy
want=$(awk -F '\t' '$1 == "judge" && $2 == 2 && $3 == "acc" { print $5 }' "$T/o/stats.tsv")
got=$(awk 'NF == 3 && $1 == 2 { print $2; exit }' "$T/o/plot.dat")
[ -n "$want" ] && [ "$want" = "$got" ] || fail "plot.dat's judge round 2 is '$got', stats.tsv says '$want'"
# the same accuracy recounted from the judged answers
re=$(grep -c '"reward":1}$' "$S/judge/r2/answers.oracle.jsonl")
na=$(wc -l <"$S/judge/r2/answers.oracle.jsonl")
awk -v a="$want" -v r="$re" -v n="$na" 'BEGIN { exit !(a - r / n < 1e-6 && r / n - a < 1e-6) }' ||
	fail "judge round 2 accuracy $want, recounted $re / $na"
grep -Eq "^  judge round 2 - reference +[-+]0\.[0-9]{3}" "$rep" || fail "paired differences missing"
if command -v gnuplot >/dev/null; then [ -s "$T/o/online.png" ] || fail "no online.png"; fi

# ---- round 2 started from round 1's checkpoint ----
cmd=$(grep -F -- "-o $S/judge/r2/policy" "$T/log" | sed 's/ 2>.*//')
[ -n "$cmd" ] || fail "round 2's lbdpo-step command not in the log"
case $cmd in *"--model $S/judge/r1/policy "*) ;; *) fail "round 2 does not start from round 1's policy: $cmd" ;; esac
again=${cmd//"-o $S/judge/r2/policy"/-o $T/again}
again=${again//"--metrics $S/judge/r2/metrics.jsonl"/}
eval "$again" 2>/dev/null || fail "re-running round 2's step"
cmp -s "$T/again/model.safetensors" "$S/judge/r2/policy/model.safetensors" || fail "round 2's weights are not those trained from round 1's"
fromref=${again//"--model $S/judge/r1/policy"/--model $S/base/ref}
fromref=${fromref//"-o $T/again"/-o $T/fromref}
eval "$fromref" 2>/dev/null || fail "round 2's step from the reference"
cmp -s "$T/fromref/model.safetensors" "$S/judge/r2/policy/model.safetensors" && fail "round 2 from the reference gives the same weights: the check proves nothing"

# ---- resumable: a removed round-2 policy is redone alone ----
"${MK[@]}" >"$T/log1b" 2>&1 || fail "re-running a finished run"
grep -q 'lbdpo-\|awk -f' "$T/log1b" && fail "a finished run has work left: $(grep 'lbdpo-\|awk -f' "$T/log1b" | sed -n 1p)"
before=$(stat -c %Y "$S/judge/r1/policy/model.safetensors")
rm -rf "$S/judge/r2/policy"
"${MK[@]}" >"$T/log2" 2>&1 || { tail -5 "$T/log2"; fail "re-run after removing round 2"; }
grep -q "judge/r2/policy" "$T/log2" || fail "round 2 not redone"
grep -q -- "-o $S/judge/r1/" "$T/log2" && fail "round 1 redone"
[ "$(stat -c %Y "$S/judge/r1/policy/model.safetensors")" = "$before" ] || fail "round 1's policy rewritten"
cmp -s "$T/again/model.safetensors" "$S/judge/r2/policy/model.safetensors" || fail "the redone round 2 differs"
echo ok

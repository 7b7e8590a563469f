#!/bin/sh
# study-collect.sh — pieces of pipelines/study.mk (sh + awk):
#   valacc SCORES.jsonl        preference accuracy (log p(chosen) > log p(rejected))
#                              over every pair of an lbdpo-logprob output
#   klrecs TEST.tok SAMPLES    ($LBDPO_SHOW: the lbdpo-show to run) JSON Lines for lbdpo-show --from-json: the header
#                              of TEST.tok, then per sample (lbdpo-sample on TEST.tok)
#                              a record whose chosen and rejected completions are
#                              the sampled ids (+ EOS when it stopped there), so
#                              lbdpo-logprob under two models scores the same tokens
#   greedy ANSWERS.jsonl       "group share" of greedy answers right by the rule (below)
#   seed DIR SEED "ARMS" "BETAS" "LEARNED"
#                              one seed's rows: seed <TAB> arm <TAB> metric <TAB> group <TAB> value
# Metrics of `seed` (group "all" and each group of the data):
#   pref_acc      clean held-out preference accuracy (test split)
#   val_acc       validation preference accuracy (the split β is picked on)
#   greedy_ok     greedy answers right by the demo's oracle (demo-judge.awk):
#                 math, the sum; other groups, an adjective of the asked tone
#   kl            KL(πθ ‖ πref) estimate: mean over held-out prompts of
#                 log πθ(y|x) − log πref(y|x), y one temperature-1 sample of πθ
#   auroc_margin  AUROC of the policy's margin −Δ separating flipped from clean
#                 training pairs (a flipped pair should keep a low Δ)
#   beta, f       learned-β arms: mean β and f over the training pairs
#   auroc_beta, auroc_f   learned-β arms: AUROC of −β and −f for flipped vs clean
#   beta_pick     arm dpo: the β picked on the validation split
# arm "dpo" repeats the rows of dpo-b<picked β>; arm "ref" is the SFT
# reference (pref_acc, greedy_ok, ppl: its mean prompt PPL per group on the
# training prompts); arm "data": flip_rate, the share of flipped training labels.
set -eu
D=$(dirname "$0")
# num KEY: the number after "KEY": on the current line
NUM='function num(k,   s) { if (!match($0, "\"" k "\":-?[0-9.eE+-]+")) return "nan"; s = substr($0, RSTART + length(k) + 3, RLENGTH - length(k) - 3); return s + 0 }
function grp(   g) { g = "other"; if (match($0, /"group":"[^"]*"/)) g = substr($0, RSTART + 9, RLENGTH - 10); return g }'

valacc() {
	awk "$NUM"'
	/"chosen_logp"/ { n++; a += (num("chosen_logp") > num("rejected_logp")) }
	END { printf "%s\n", n ? a / n : "nan" }' "$1"
}

klrecs() {
	lbdpo_show=${LBDPO_SHOW:-lbdpo-show}
	"$lbdpo_show" -i "$1" | sed -n 1p
	eos=$("$lbdpo_show" -i "$1" | sed -n '1s/.*"eos":\([0-9]*\).*/\1/p')
	awk -v eos="$eos" '
	function arr(k,   s) { if (!match($0, "\"" k "\":\\[[0-9,]*\\]")) return ""; s = substr($0, RSTART + length(k) + 3, RLENGTH - length(k) - 3); return s }
	function str(k) { if (!match($0, "\"" k "\":\"[^\"]*\"")) return ""; return substr($0, RSTART, RLENGTH) }
	{ ids = arr("ids"); sub(/^\[/, "", ids); sub(/\]$/, "", ids)
	  if ($0 ~ /"stop":"eos"/ && eos != "") ids = ids (ids == "" ? "" : ",") eos
	  if (ids == "") { skipped++; next } # nothing sampled and no EOS: nothing to score
	  printf "{%s,%s,\"prompt_ids\":%s,\"chosen_ids\":[%s],\"rejected_ids\":[%s]}\n", str("id"), str("group"), arr("prompt_ids"), ids, ids }
	END { if (skipped) printf "study-collect.sh: %d empty samples left out of the KL\n", skipped > "/dev/stderr" }' "$2"
}

# per-group mean of an expression over lines; prints "group value" lines, "all" first
# usage: ... | groupmean  (input: "group value")
groupmean() {
	awk '{ s[$1] += $2; n[$1]++; S += $2; N++ } END { if (N) printf "all %.9g\n", S / N; for (g in n) printf "%s %.9g\n", g, s[g] / n[g] }'
}

# auroc SCOREKEY SIGN FILE [FLIPFILE]: "group auroc" lines of SIGN·SCORE for
# flipped (positive) vs clean training pairs; flipped from FILE's own
# "flipped" key, or by id from FLIPFILE (train.ref.jsonl) when given
auroc() {
	if [ $# -ge 4 ]; then
		awk "$NUM"'
		FNR == NR { if (match($0, /"id":"[^"]*"/)) fl[substr($0, RSTART, RLENGTH)] = ($0 ~ /"flipped":true/); next }
		match($0, /"id":"[^"]*"/) { id = substr($0, RSTART, RLENGTH); if (!(id in fl)) next; v = num(k); if (v == "nan") next
			printf "%s %.17g %d\n", grp(), s * v, fl[id] }' k="$1" s="$2" "$4" "$3"
	else
		awk "$NUM"'/"flipped":/ { v = num(k); if (v == "nan") next; printf "%s %.17g %d\n", grp(), s * v, ($0 ~ /"flipped":true/) }' k="$1" s="$2" "$3"
	fi | sort -g -k2,2 | awk -f "$D/auroc.awk" | awk '{ print $1, $2 }'
}

# greedy ANSWERS.jsonl: "group share" lines (and "all") of greedy answers
# right by the known rule, the demo's oracle pipelines/demo-judge.awk (math:
# the leading number is a+b of the prompt; the others: " The <topic> is
# <adjective>." with an adjective of the asked tone)
greedy() {
	awk -f "$D/demo-judge.awk" "$1" | awk '
	{ g = "other"; if (match($0, /"group":"[^"]*"/)) g = substr($0, RSTART + 9, RLENGTH - 10)
	  match($0, /"reward":[01]}$/); print g, substr($0, RSTART + 9, 1) }' | groupmean
}

seed() {
	W=$1 S=$2 ARMS=$3 BETAS=$4 LEARNED=$5
	pick=$(cat "$W/beta.pick")
	rows() { # ARM METRIC < "group value" lines
		awk -v s="$S" -v a="$1" -v m="$2" -v OFS='\t' '{ print s, a, m, $1, $2 }'
	}
	prefacc() { awk "$NUM"'/"chosen_logp"/ { print grp(), (num("chosen_logp") > num("rejected_logp")) }' "$1" | groupmean; }
	kl() { # POLICY.jsonl REF.jsonl, same records in the same order
		paste -d '\n' "$1" "$2" | awk "$NUM"'NR % 2 { g = grp(); p = num("chosen_logp"); next } { print g, p - num("chosen_logp") }' | groupmean
	}
	# the data: true flip rates per group; the reference
	awk '{ g = "other"; if (match($0, /"group":"[^"]*"/)) g = substr($0, RSTART + 9, RLENGTH - 10); print g, ($0 ~ /"flipped":true/) }' \
		"$W/data/train.jsonl" | groupmean | rows data flip_rate
	prefacc "$W/ref.scores.jsonl" | rows ref pref_acc
	greedy "$W/ref.answers.jsonl" | rows ref greedy_ok
	awk "$NUM"'{ print grp(), exp(-num("ref_prompt_logp")) }' "$W/train.ref.jsonl" | groupmean | rows ref ppl
	for a in $ARMS; do
		{
			prefacc "$W/$a.scores.jsonl" | rows "$a" pref_acc
			echo "all $(valacc "$W/$a.val.jsonl")" | rows "$a" val_acc
			greedy "$W/$a.answers.jsonl" | rows "$a" greedy_ok
			kl "$W/$a.kl.pol.jsonl" "$W/$a.kl.ref.jsonl" | rows "$a" kl
			auroc delta -1 "$W/$a.train.pr.jsonl" "$W/train.ref.jsonl" | rows "$a" auroc_margin
			case " $LEARNED " in *" $a "*)
				awk "$NUM"'/"beta_f"/ { print grp(), num("beta") }' "$W/$a.beta.jsonl" | groupmean | rows "$a" beta
				awk "$NUM"'/"beta_f"/ { print grp(), num("beta_f") }' "$W/$a.beta.jsonl" | groupmean | rows "$a" f
				auroc beta -1 "$W/$a.beta.jsonl" | rows "$a" auroc_beta
				auroc beta_f -1 "$W/$a.beta.jsonl" | rows "$a" auroc_f
			esac
		} >"$W/$a.rows.tmp"
		cat "$W/$a.rows.tmp"
		if [ "$a" = "dpo-b$pick" ]; then awk -F '\t' -v OFS='\t' '{ $2 = "dpo"; print }' "$W/$a.rows.tmp"; fi
		rm -f "$W/$a.rows.tmp"
	done
	echo "all $pick" | rows dpo beta_pick
}

cmd=$1
shift
case $cmd in
valacc | klrecs | greedy | seed) "$cmd" "$@" ;;
*) echo "study-collect.sh: error: unknown command '$cmd'" >&2; exit 2 ;;
esac

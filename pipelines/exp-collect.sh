#!/bin/sh
# exp-collect.sh — one seed's results of pipelines/experiment.mk as rows
#   seed <TAB> arm <TAB> metric <TAB> group <TAB> value
# groups: all, math, open. Metrics (the demo's, pipelines/demo-metrics.sh):
#   pref_acc     log p(chosen) > log p(rejected) on held-out pairs (lbdpo-logprob)
#   reward_acc   implicit-reward accuracy, β(pc − rc) > β(pr − rr) (lbdpo-eval)
#   answer_acc   greedy arithmetic answers correct (math only)
#   tone         greedy open-ended answers follow the asked tone (open only)
#   beta_mean    mean β of the held-out prompts (lbdpo-eval)
#   f            mean learned factor f of LB-DPO's β (lbdpo-beta; LB-DPO arms)
#   distinct2    distinct-2 of the open-ended answers (lbdpo-eval --generations)
# arm "ref" is the SFT reference (pref_acc, answer_acc, tone).
# Usage: sh exp-collect.sh SEED_DIR SEED "ARM..."
set -eu
W=$1 S=$2 ARMS=$3
D=$(dirname "$0")
. "$D/demo-metrics.sh"
row() { printf '%s\t%s\t%s\t%s\t%s\n' "$S" "$1" "$2" "$3" "$4"; }
three() { # arm metric "<all> <math> <open>"
	set -- "$1" "$2" $3
	row "$1" "$2" all "$3"; row "$1" "$2" math "$4"; row "$1" "$2" open "$5"
}
ev() { awk -F '\t' -v k="$2" '$1 == k { print $2; f = 1 } END { if (!f) print "nan" }' "$1"; }
three ref pref_acc "$(prefacc "$W/ref.scores.jsonl")"
set -- $(ansacc "$W/ref.answers.jsonl"); row ref answer_acc math "$1"
row ref tone open "$(toneacc "$W/ref.answers.jsonl")"
for a in $ARMS; do
	three "$a" pref_acc "$(prefacc "$W/$a.scores.jsonl")"
	awk -f "$D/jsonflat.awk" "$W/$a.eval.json" >"$W/$a.eval.flat"
	F="$W/$a.eval.flat"
	three "$a" reward_acc "$(ev "$F" rewards/accuracies) $(ev "$F" groups.math.rewards/accuracies) $(ev "$F" groups.open.rewards/accuracies)"
	set -- $(ansacc "$W/$a.answers.jsonl"); row "$a" answer_acc math "$1"
	row "$a" tone open "$(toneacc "$W/$a.answers.jsonl")"
	three "$a" beta_mean "$(ev "$F" beta/mean) $(ev "$F" groups.math.beta/mean) $(ev "$F" groups.open.beta/mean)"
	[ -s "$W/$a.beta.jsonl" ] && three "$a" f "$(meanf "$W/$a.beta.jsonl")"
	row "$a" distinct2 open "$(ev "$F" generations.distinct-2)"
done

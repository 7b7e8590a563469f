#!/bin/sh
# demo-table.sh — the demo's result table, from the files pipelines/demo.mk
# leaves in WORKDIR (no Python, no jq: sh + awk):
#   {ref,dpo,lbdpo}.scores.jsonl   lbdpo-logprob of the held-out pairs (via lbdpo-show)
#   {ref,dpo,lbdpo}.eval.json      lbdpo-eval of the held-out pairs (with
#                                  --generations: the open-ended answers)
#   lbdpo.beta.jsonl               lbdpo-beta of the held-out pairs (via lbdpo-show)
#   {ref,dpo,lbdpo}.answers.jsonl  lbdpo-sample --greedy on every held-out prompt
# Columns:
#   pref acc   share of held-out pairs whose chosen completion the model
#              finds more likely than the rejected one: log p(y_w|x) > log p(y_l|x)
#   reward acc DPO's implicit-reward accuracy, share with Δ(x) > 0 (lbdpo-eval)
#   mean β     LB-DPO's β(x) averaged over the group's held-out prompts
#   factor f   the learned part of β(x) = w · PPL(x) · f, f = 1 + ε·tanh(NN(h(x)));
#              f = 1 for every prompt before training (the head starts at 0)
#   answer acc share of held-out arithmetic questions whose greedy answer's
#              leading number is the correct result
#   tone       share of held-out open-ended prompts whose greedy answer is
#              " The <prompt's noun> is <adjective>." with an adjective of the
#              asked tone (the lists of lbdpo-gendata)
#   words, distinct-2  lbdpo-eval --generations on the open-ended answers
# Usage: sh pipelines/demo-table.sh WORKDIR
set -eu
W=${1:?usage: demo-table.sh WORKDIR}
D=$(dirname "$0")
FLAT="$D/jsonflat.awk"

. "$D/demo-metrics.sh"
# eval key for a group ("" = overall)
ev() { awk -F '\t' -v k="$2" '$1 == k { print $2; f = 1 } END { if (!f) print "nan" }' "$W/$1.eval.flat"; }
for m in ref dpo lbdpo; do awk -f "$FLAT" "$W/$m.eval.json" >"$W/$m.eval.flat"; done

set -- $(prefacc "$W/ref.scores.jsonl"); r0=$1 r1=$2 r2=$3
set -- $(prefacc "$W/dpo.scores.jsonl"); d0=$1 d1=$2 d2=$3
set -- $(prefacc "$W/lbdpo.scores.jsonl"); l0=$1 l1=$2 l2=$3
set -- $(ansacc "$W/ref.answers.jsonl"); ar=$1 nq=$2
set -- $(ansacc "$W/dpo.answers.jsonl"); ad=$1
set -- $(ansacc "$W/lbdpo.answers.jsonl"); al=$1
set -- $(meanf "$W/lbdpo.beta.jsonl"); f0=$1 f1=$2 f2=$3

f() { awk -v x="$1" 'BEGIN { if (x == "nan" || x == "") printf "%8s", "-"; else printf "%8.3f", x }'; }
row() { printf '%-24s' "$1"; shift; for v in "$@"; do f "$v"; done; printf '\n'; }
n=$(grep -c '"chosen_logp"' "$W/ref.scores.jsonl" || true)
no=$(grep -c '"group":"open"' "$W/ref.answers.jsonl" || true)
echo
echo "lbdpo demo: held-out results ($n pairs; $nq arithmetic questions, $no open-ended prompts)"
printf '%-24s%8s%8s%8s\n' "" overall math open
row "pref acc  reference" "$r0" "$r1" "$r2"
row "pref acc  DPO" "$d0" "$d1" "$d2"
row "pref acc  LB-DPO" "$l0" "$l1" "$l2"
row "reward acc DPO" "$(ev dpo rewards/accuracies)" "$(ev dpo groups.math.rewards/accuracies)" "$(ev dpo groups.open.rewards/accuracies)"
row "reward acc LB-DPO" "$(ev lbdpo rewards/accuracies)" "$(ev lbdpo groups.math.rewards/accuracies)" "$(ev lbdpo groups.open.rewards/accuracies)"
row "mean beta LB-DPO" "$(ev lbdpo beta/mean)" "$(ev lbdpo groups.math.beta/mean)" "$(ev lbdpo groups.open.beta/mean)"
row "beta factor f LB-DPO" "$f0" "$f1" "$f2"
echo
printf '%-24s%8s%8s%8s\n' "greedy answers" ref DPO LB-DPO
row "arithmetic answer acc" "$ar" "$ad" "$al"
row "open: tone follows" "$(toneacc "$W/ref.answers.jsonl")" "$(toneacc "$W/dpo.answers.jsonl")" "$(toneacc "$W/lbdpo.answers.jsonl")"
row "open: mean words" "$(ev ref generations.mean_words)" "$(ev dpo generations.mean_words)" "$(ev lbdpo generations.mean_words)"
row "open: distinct-2" "$(ev ref generations.distinct-2)" "$(ev dpo generations.distinct-2)" "$(ev lbdpo generations.distinct-2)"
echo
echo "pref acc: log p(chosen) > log p(rejected); reward acc: DPO implicit reward margin > 0;"
echo "beta factor f: learned part of LB-DPO's beta, 1 for every prompt before training."
echo "Training 'open' labels: $(awk '/"group":"open"/ { n++; f += /"flipped":true/ } END { printf "%.0f%%", n ? 100 * f / n : 0 }' "$W/data/train.jsonl") flipped; held-out labels follow the rule."

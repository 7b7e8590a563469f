#!/usr/bin/env bash
# bench_step.sh — lbdpo-step throughput (pairs/s, tokens/s) per loss on a
# random llama model and synthetic pairs, and the cost of the β paths:
# lbdpo (--beta-grad full) vs dpo (same tokens, no β model).
#   LBDPO_BIN=bin bash bench/bench_step.sh [DIM LAYERS VOCAB PROMPT COMP STEPS THREADS]
set -eu
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}" # idle OpenMP threads must not spin on a shared machine
: "${LBDPO_BIN:=$(dirname "$0")/../bin}"
export PATH="$LBDPO_BIN:$PATH"
D=${1:-256} L=${2:-4} V=${3:-512} P=${4:-48} C=${5:-48} N=${6:-6} TH=${7:-2}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
lbdpo-init -q -o "$T/m" --dim "$D" --layers "$L" --heads $((D / 64 > 0 ? D / 64 : 1)) --vocab "$V" --max-seq $((P + 2 * C + 8))
fp=$(lbdpo-init -q -m "$T/m" --info | sed 's/.*fingerprint=\([0-9a-f]*\).*/\1/')
awk -v fp="$fp" -v n=64 -v V="$V" -v P="$P" -v C="$C" 'BEGIN { srand(1); printf "{\"lbdpo\": 1, \"kind\": \"ref\", \"history\": [], \"reference\": {\"path\": \"m\", \"fingerprint\": \"%s\"}}\n", fp
	for (r = 0; r < n; r++) { printf "{\"prompt_ids\": ["; for (i = 0; i < P; i++) printf "%s%d", i ? "," : "", int(rand() * V)
		for (k = 0; k < 2; k++) { printf "], \"%s_ids\": [", k ? "rejected" : "chosen"; for (i = 0; i < C; i++) printf "%s%d", i ? "," : "", int(rand() * V) }
		printf "], \"ref_chosen_logp\": %f, \"ref_rejected_logp\": %f, \"ref_prompt_logp\": -6.2}\n", -C * log(V), -C * log(V) } }' |
	lbdpo-show --from-json -o "$T/d.ref"
echo "model dim $D layers $L vocab $V; pairs of $P+$C+$C tokens; batch 8; $TH threads"
for l in dpo lbdpo sft; do
	lbdpo-step --model "$T/m" --output "$T/c" -i "$T/d.ref" --loss $l --steps "$N" --batch-size 8 --threads "$TH" --metrics "$T/m.$l"
	# skip the first step (allocation, --beta-init)
	sed 1d "$T/m.$l" | sed 's/.*"tokens_per_s": \([^}]*\)}.*/\1/' |
		awk -v l=$l -v t=$((P + 2 * C)) '{ s += $1; n++ } END { printf "%-6s %10.1f tokens/s %8.2f pairs/s\n", l, s / n, s / n / t }'
	rm -rf "$T/c"
done

#!/usr/bin/env bash
# mpi_step.sh — data-parallel lbdpo-step: 1 rank × 1 thread, 2 ranks × 1
# thread (mpirun, one all-reduce of the gradients per step) and 1 rank × 2
# threads, on a random llama model of the 110M shape (stories110M: dim 768,
# 12 layers, 12 heads, hidden 2048, vocab 32000) and synthetic pairs; tokens/s
# of the whole step (global batch fixed) and the share of the run spent in the
# all-reduce (lbdpo-step's summary line). Skips without mpirun or an MPI build.
#   bash bench/mpi_step.sh [DIM LAYERS HIDDEN VOCAB STEPS]
set -eu
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
: "${LBDPO_BIN:=$(dirname "$0")/../bin}"
export PATH="$LBDPO_BIN:$PATH"
command -v mpirun >/dev/null || { echo "skipped: mpirun not found"; exit 0; }
ldd "$LBDPO_BIN/lbdpo-step" | grep libmpi >/dev/null || { echo "skipped: lbdpo-step built without MPI"; exit 0; }
D=${1:-768} L=${2:-12} H=${3:-2048} V=${4:-32000} N=${5:-4} P=32 C=32 B=4
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
lbdpo-init -q -o "$T/m" --arch llama --dim "$D" --layers "$L" --heads $((D / 64)) --hidden "$H" --vocab "$V" \
	--max-seq $((P + 2 * C + 8))
awk -v n=64 -v V="$V" -v P="$P" -v C="$C" 'BEGIN { srand(1); printf "{\"lbdpo\": 1, \"kind\": \"ref\", \"history\": [], \"reference\": {\"path\": \"synthetic\", \"fingerprint\": \"%064d\"}}\n", 0
	for (r = 0; r < n; r++) { printf "{\"prompt_ids\": ["; for (i = 0; i < P; i++) printf "%s%d", i ? "," : "", int(rand() * V)
		for (k = 0; k < 2; k++) { printf "], \"%s_ids\": [", k ? "rejected" : "chosen"; for (i = 0; i < C; i++) printf "%s%d", i ? "," : "", int(rand() * V) }
		printf "], \"ref_chosen_logp\": %f, \"ref_rejected_logp\": %f, \"ref_prompt_logp\": -6.2}\n", -C * log(V), -C * log(V) } }' |
	lbdpo-show --from-json -o "$T/d.ref"
echo "llama dim $D layers $L hidden $H vocab $V; pairs of $P+$C+$C tokens; global batch $B x 2 (accumulation); $N steps, first skipped"
run() { # label, launcher..., then lbdpo-step's thread count as the last word
	local label=$1 th=${*: -1}
	set -- "${@:2:$#-2}"
	rm -rf "$T/c" "$T/m.jsonl"
	"$@" lbdpo-step --model "$T/m" --output "$T/c" -i "$T/d.ref" --loss lbdpo --steps "$N" --batch-size $B --grad-accum 2 \
		--threads "$th" --metrics "$T/m.jsonl" 2>"$T/err" || { cat "$T/err"; return 1; }
	local tps share
	tps=$(sed 1d "$T/m.jsonl" | sed 's/.*"tokens_per_s": \([^}]*\)}.*/\1/' | awk '{ s += $1; n++ } END { printf "%.1f", s / n }')
	share=$(sed -n 's/.*ranks: \(.*\) in the all-reduce \(.*\)/\1 \2/p' "$T/err")
	printf '%-22s %10s tokens/s   all-reduce: %s\n' "$label" "$tps" "${share:-none (one process)}"
}
run "1 rank x 1 thread" env 1
run "2 ranks x 1 thread" mpirun -q --oversubscribe --bind-to none -np 2 1
run "1 rank x 2 threads" env 2

#!/usr/bin/env bash
# lora.sh — memory and speed of LoRA against full fine-tuning on a random
# model of a real model's shape (bench/shapes/*.json: Qwen2.5-0.5B and -1.5B,
# Llama-3.1-8B), issue #24's benchmark. Not a test: it takes minutes and up
# to ~20 GB.
#
#   LBDPO_BIN=bin bash bench/lora.sh SHAPE [ARM...]
#     SHAPE  qwen2.5-0.5b | qwen2.5-1.5b | llama-3.1-8b (or a config.json path)
#     ARM    full | lora | lora-gc (LoRA with --gradient-checkpointing)
#            (default: full lora lora-gc; name arms again to alternate rounds)
#   environment: STEPS (3; the first one is not timed unless STEPS=1), THREADS (2),
#     DTYPE (fp32 | bf16: the products), SAVE (bfloat16: the base's dtype on
#     disk and so, for LoRA, in memory), PROMPT/COMP (128/192: a pair is
#     PROMPT + 2 COMP tokens, prefix-shared), PAIRS (2 per step), R (16),
#     KEEP (a directory to keep the model in between runs)
#
# Each arm is one lbdpo-step process on LB-DPO (--loss lbdpo) with 2 pairs
# per step; peak RSS is the kernel's (GNU time's maximum resident set), and
# tokens/s the mean of the steps after the first (lbdpo-step's metrics).
# Full fine-tuning's memory is also computed: 16 bytes per parameter (f32
# weights, gradients and AdamW's two moments) before activations; an arm
# that would not fit in the available memory is not started.
set -eu
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
: "${LBDPO_BIN:=$(dirname "$0")/../bin}"
export PATH="$LBDPO_BIN:$PATH"
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || { echo "usage: bench/lora.sh SHAPE [full|lora|lora-gc]..." >&2; exit 2; }
shape=$1; shift
cfg=$shape; [ -f "$cfg" ] || cfg="$here/shapes/$shape.json"
[ -f "$cfg" ] || { echo "lora.sh: no shape $shape (bench/shapes/*.json)" >&2; exit 2; }
arms=${*:-full lora lora-gc}
STEPS=${STEPS:-3} THREADS=${THREADS:-2} DTYPE=${DTYPE:-fp32} SAVE=${SAVE:-bfloat16}
PROMPT=${PROMPT:-128} COMP=${COMP:-192} PAIRS=${PAIRS:-2} R=${R:-16}
command -v /usr/bin/time >/dev/null || { echo "lora.sh: needs GNU time (/usr/bin/time)" >&2; exit 2; }

T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
m=${KEEP:-$T/model}
if [ ! -f "$m/config.json" ]; then
	echo "creating a random $SAVE model of $cfg's shape in $m" >&2
	/usr/bin/time -f '%e %M' -o "$T/init.time" lbdpo-init -q -o "$m" --config "$cfg" --save-dtype "$SAVE"
	read -r s kb < "$T/init.time"; echo "lbdpo-init: $s s, peak RSS $((kb / 1024)) MB" >&2
fi
info=$(lbdpo-init -q -m "$m" --info)
n=$(printf '%s\n' "$info" | sed 's/.*params=\([0-9]*\).*/\1/')
V=$(printf '%s\n' "$info" | sed 's/.*vocab=\([0-9]*\).*/\1/')
mem_kb=$(awk '/MemAvailable/ { print $2 }' /proc/meminfo)

# synthetic pairs with made-up reference scores (speed and memory do not
# depend on them); one step's worth per step
fp=$(printf '%s\n' "$info" | sed 's/.*fingerprint=\([0-9a-f]*\).*/\1/')
awk -v fp="$fp" -v n=$((PAIRS * STEPS)) -v V="$V" -v P="$PROMPT" -v C="$COMP" 'BEGIN { srand(1)
	printf "{\"lbdpo\": 1, \"kind\": \"ref\", \"history\": [], \"reference\": {\"path\": \"m\", \"fingerprint\": \"%s\"}}\n", fp
	for (r = 0; r < n; r++) { printf "{\"prompt_ids\": ["; for (i = 0; i < P; i++) printf "%s%d", i ? "," : "", int(rand() * V)
		for (k = 0; k < 2; k++) { printf "], \"%s_ids\": [", k ? "rejected" : "chosen"; for (i = 0; i < C; i++) printf "%s%d", i ? "," : "", int(rand() * V) }
		printf "], \"ref_chosen_logp\": %f, \"ref_rejected_logp\": %f, \"ref_prompt_logp\": -6.2}\n", -C * log(V), -C * log(V) } }' |
	lbdpo-show --from-json -o "$T/d.ref"

echo "# $(basename "$cfg" .json): $info"
echo "# $(lscpu | sed -n 's/^Model name: *//p'), $THREADS threads; products $DTYPE; base on disk $SAVE;" \
	"$PAIRS pairs/step of $PROMPT+$COMP+$COMP tokens; LB-DPO; $((STEPS > 1 ? STEPS - 1 : 1)) timed steps"
echo "# full fine-tuning needs $(awk -v n="$n" 'BEGIN { printf "%.1f", 16 * n / 1e9 }') GB for weights, gradients and AdamW before activations"
printf '%-8s %12s %12s %10s\n' arm "peak RSS MB" "tokens/s" "step s"
for a in $arms; do
	case $a in
	full) opt="" ;;
	lora) opt="--lora-r $R --lora-targets all-linear" ;;
	lora-gc) opt="--lora-r $R --lora-targets all-linear --gradient-checkpointing" ;;
	*) echo "lora.sh: unknown arm $a" >&2; exit 2 ;;
	esac
	# weights, gradients and moments alone above 90% of the available memory:
	# the kernel would kill it (activations come on top)
	if [ "$a" = full ] && [ $((16 * n / 1024)) -gt $((mem_kb * 9 / 10)) ]; then
		printf '%-8s %12s %12s %10s\n' "$a" "(>$((16 * n / 1000000)) MB)" - -
		continue
	fi
	# shellcheck disable=SC2086
	rc=0
	rm -f "$T/$a.m" # an arm named twice (alternating rounds) starts its metrics anew
	/usr/bin/time -f '%e %M' -o "$T/$a.time" lbdpo-step -q -m "$m" -o "$T/ck.$a" -i "$T/d.ref" --loss lbdpo \
		--steps "$STEPS" --batch-size "$PAIRS" --threads "$THREADS" --dtype "$DTYPE" --metrics "$T/$a.m" $opt || rc=$?
	if [ $rc -ne 0 ]; then
		printf '%-8s %12s\n' "$a" "failed ($(tail -1 "$T/$a.time"))"
		continue
	fi
	read -r s kb < <(tail -1 "$T/$a.time")
	# the first step (allocation) is left out unless it is the only one
	{ if [ "$STEPS" -gt 1 ]; then sed 1d "$T/$a.m"; else cat "$T/$a.m"; fi; } | sed 's/.*"tokens_per_s": \([0-9.e+-]*\).*/\1/' |
		awk -v a="$a" -v kb="$kb" -v t=$((PAIRS * (PROMPT + 2 * COMP))) \
			'{ s += $1; k++ } END { printf "%-8s %12d %12.1f %10.2f\n", a, kb / 1024, s / k, t / (s / k) }'
	rm -rf "$T/ck.$a"
done

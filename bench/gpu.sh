#!/usr/bin/env bash
# gpu.sh — the CUDA programs beside PyTorch on the same GPU and precision
# (issue 12): tokens/s, TFLOP/s and MFU of the forward (lbdpo-logprob) and
# the DPO step (lbdpo-step --loss dpo; lbdpo too) on a 124M and a 0.5B llama
# shape, with bench/torch_gpu.py (transformers, eager, TRL's layout) doing
# the same pairs in the same run.
#   bash bench/gpu.sh            (make bench runs it; skips without a GPU)
#   bash bench/gpu.sh --smoke    a tiny shape, torch on the CPU and our
#                                programs wherever LBDPO_CUDA_BIN points (the
#                                emulated ones of build/rel/emu/bin work):
#                                checks this script without a GPU; its
#                                numbers mean nothing
# Environment: LBDPO_CUDA_BIN (the programs with the CUDA backend; default
# build/rel/cuda/bin, else build/cuda-rel/bin), BENCH_PAIRS (pairs a batch,
# default 8), BENCH_PEAK_TFLOPS (the GPU's dense peak for MFU, when the table
# below does not know the GPU; give the TF32 tensor-core peak for TF32 runs).
# Pairs are 128+128+128 tokens; both sides count P+2C tokens a pair. FLOPs:
# bench/model_bench.c's formula on the work each side does (ours: the prompt
# once, prefix-shared; torch: the prompt twice), the backward 2× the forward.
# MFU = achieved FLOP/s ÷ the peak of the precision (fp32: CUDA cores; tf32:
# tensor cores). A TF32 row runs when lbdpo-step has --tf32.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
SMOKE=
[ "${1:-}" = --smoke ] && SMOKE=1
E=${LBDPO_CUDA_BIN:-}
if [ -z "$E" ]; then
	for d in "$ROOT/build/rel/cuda/bin" "$ROOT/build/cuda-rel/bin"; do
		[ -x "$d/lbdpo-step" ] && { E=$d; break; }
	done
fi
H=${LBDPO_BIN:-$ROOT/bin} # host-only tools (lbdpo-init, lbdpo-show)
if [ -z "$SMOKE" ]; then
	if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
		echo "skipped: no NVIDIA GPU (nvidia-smi lists none)"
		exit 0
	fi
	[ -n "$E" ] && [ -x "$E/lbdpo-step" ] ||
		{ echo "skipped: no programs with the CUDA backend (nvcc missing? make bench or make CUDA=1 builds them)"; exit 0; }
fi
[ -n "$E" ] && [ -x "$E/lbdpo-step" ] || { echo "gpu.sh: no lbdpo-step in '$E' (set LBDPO_CUDA_BIN)" >&2; exit 1; }
[ -x "$H/lbdpo-init" ] || { echo "gpu.sh: $H/lbdpo-init not built" >&2; exit 1; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT

B=${BENCH_PAIRS:-8} P=128 C=128 TDEV=cuda SHAPES="llama-124M llama-0.5B"
[ -n "$SMOKE" ] && B=2 P=16 C=16 TDEV=cpu SHAPES=tiny
GPU=$([ -z "$SMOKE" ] && nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
GPU=${GPU:-smoke run (no GPU)}
# dense peaks in TFLOP/s: fp32 (CUDA cores) and tf32 (tensor cores), from
# NVIDIA's data sheets; anything else: BENCH_PEAK_TFLOPS or no MFU
peak() { # precision
	[ -n "${BENCH_PEAK_TFLOPS:-}" ] && { echo "$BENCH_PEAK_TFLOPS"; return; }
	case "$GPU" in
	*H100*PCIe*) [ "$1" = fp32 ] && echo 51.2 || echo 378 ;;
	*H100* | *H200* | *GH200*) [ "$1" = fp32 ] && echo 66.9 || echo 494.7 ;;
	*A100*) [ "$1" = fp32 ] && echo 19.5 || echo 156 ;;
	*L40S*) [ "$1" = fp32 ] && echo 91.6 || echo 183 ;;
	*) echo "" ;;
	esac
}
echo "gpu: $GPU; pairs of $P+$C+$C tokens, $B a batch; programs: $E"

# llama shapes as torch_gpu.py's: dim layers heads hidden vocab
shape_args() {
	case "$1" in
	llama-124M) echo 768 12 12 2048 50257 ;;
	llama-0.5B) echo 1280 24 20 3456 32000 ;;
	tiny) echo 64 2 4 176 512 ;;
	esac
}
# forward FLOPs of one of our batches: B pairs, the prompt once, each
# completion attending to the prompt and itself
our_flops() { # dim layers heads hidden vocab
	awk -v d="$1" -v L="$2" -v h="$3" -v f="$4" -v V="$5" -v B="$B" -v P="$P" -v C="$C" 'BEGIN {
		w = 2 * (L * (4 * d * d + 3 * d * f) + V * d); hd = d / h
		keys = P * (P + 1) / 2 + 2 * (C * P + C * (C + 1) / 2)
		printf "%.6g", B * (w * (P + 2 * C) + 4 * hd * h * L * keys) }'
}
pairs() { # n seed V
	awk -v n="$1" -v seed="$2" -v V="$3" -v P="$P" -v C="$C" -v sha="$(printf '%064d' 0)" 'BEGIN { srand(seed)
		printf "{\"lbdpo\":1,\"kind\":\"tokens\",\"history\":[],\"tokenizer\":{\"path\":\"t.json\",\"sha256\":\"%s\",\"vocab_size\":%d,\"bos\":1,\"eos\":2}}\n", sha, V
		for (r = 0; r < n; r++) {
			printf "{\"id\":\"p%d\",\"group\":\"g\",\"prompt_ids\":[1", r
			for (i = 1; i < P; i++) printf ",%d", 3 + int(rand() * (V - 3))
			for (k = 0; k < 2; k++) {
				printf "],\"%s_ids\":[%d", k ? "rejected" : "chosen", 3 + int(rand() * (V - 3))
				for (i = 1; i < C; i++) printf ",%d", 3 + int(rand() * (V - 3))
			}
			printf "]}\n" } }' | "$H/lbdpo-show" --from-json -o "$T/p$1.tok"
}
# tokens and seconds of an lbdpo-logprob summary line
lp_run() { # model n-pairs prec-flags...
	local m=$1 n=$2
	shift 2
	"$E/lbdpo-logprob" --device cuda -m "$m" -b $((B * (P + 2 * C))) -i "$T/p$n.tok" -o "$T/out.sc" "$@" 2>&1 >/dev/null |
		sed -n 's/.*records, \([0-9]*\) tokens in \([0-9.]*\) s.*/\1 \2/p'
}
median_step_rate() { # metrics file: the median tokens_per_s past the 2 warm-up steps
	sed -n 's/.*"tokens_per_s": \([0-9.e+]*\).*/\1/p' "$1" | tail -n +3 | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

TF=0
"$E/lbdpo-step" --help 2>&1 | grep -q -- '--tf32' && TF=1
precs=fp32
[ $TF = 1 ] && precs="fp32 tf32"
rows=()
for s in $SHAPES; do
	read -r d L h f V <<<"$(shape_args "$s")"
	m="$T/$s"
	"$H/lbdpo-init" -q -o "$m" --dim "$d" --layers "$L" --heads "$h" --hidden "$f" --vocab "$V" --tie --max-seq 1024 \
		--seed 1 || exit 1
	n1=$((B * 4)) n2=$((B * 16))
	pairs $n1 1 "$V" && pairs $n2 2 "$V" || exit 1
	"$E/lbdpo-refcache" -q --device cuda --model "$m" -b $((B * (P + 2 * C))) -i "$T/p$n2.tok" -o "$T/train.ref" || exit 1
	F=$(our_flops "$d" "$L" "$h" "$f" "$V")
	for prec in $precs; do
		pf=()
		[ "$prec" = tf32 ] && pf=(--tf32)
		# forward: the rate between a short and a long run (model loading and
		# the first batch's warm-up cancel)
		read -r k1 s1 <<<"$(lp_run "$m" $n1 "${pf[@]}")"
		read -r k2 s2 <<<"$(lp_run "$m" $n2 "${pf[@]}")"
		[ -n "${k1:-}" ] && [ -n "${k2:-}" ] || { echo "gpu.sh: lbdpo-logprob gave no summary line" >&2; exit 1; }
		fw=$(awk -v a="$k1" -v b="$k2" -v x="$s1" -v y="$s2" 'BEGIN { printf "%.0f", (y > x) ? (b - a) / (y - x) : 0 }')
		rows+=("$s forward $prec ours $fw $(awk -v r="$fw" -v F="$F" -v B="$B" -v P="$P" -v C="$C" 'BEGIN { printf "%.4g", r / (B * (P + 2 * C)) * F * 1e-12 }')")
		for loss in dpo lbdpo; do
			"$E/lbdpo-step" -q --device cuda --model "$m" --output "$T/ck" --steps 7 --batch-size "$B" --loss $loss --lr 1e-6 \
				-i "$T/train.ref" --metrics "$T/m.jsonl" "${pf[@]}" || exit 1
			r=$(median_step_rate "$T/m.jsonl")
			rows+=("$s step-$loss $prec ours $r $(awk -v r="$r" -v F="$F" -v B="$B" -v P="$P" -v C="$C" 'BEGIN { printf "%.4g", r / (B * (P + 2 * C)) * 3 * F * 1e-12 }')")
			rm -rf "$T/ck"
		done
		tf=()
		[ "$prec" = tf32 ] && tf=(--tf32)
		"$PY" bench/torch_gpu.py --shape "$s" --device $TDEV --pairs "$B" --prompt $P --completion $C "${tf[@]}" \
			>"$T/torch" 2>&1 || { cat "$T/torch"; exit 1; }
		cat "$T/torch"
		while read -r _ _ ph r _ t _; do
			[ "$ph" = forward: ] && rows+=("$s forward $prec torch $r $t")
			[ "$ph" = step: ] && rows+=("$s step-dpo $prec torch $r $t")
		done < <(grep -E '^torch [^ ]+ (forward|step): ' "$T/torch")
		grep -q '^skipped' "$T/torch" && echo "(torch half skipped: $(cat "$T/torch"))"
	done
	rm -rf "$m"
done

echo
printf '%s\n' "${rows[@]}" | awk -v pf32="$(peak fp32)" -v ptf32="$(peak tf32)" '
	{ k = $1 " " $2 " " $3; if (!(k in seen)) { seen[k] = 1; keys[++n] = k } tok[k, $4] = $5; tfl[k, $4] = $6 }
	function dash(v) { return v == "" ? "-" : v }
	function mfu(t, prec,  p) { p = (prec == "tf32") ? ptf32 : pf32; if (t == "") return "-"; return (p == "") ? "?" : sprintf("%.1f%%", 100 * t / p) }
	END {
		printf "%-11s %-11s %-5s %11s %11s %7s  %8s %7s  %8s %7s\n", "shape", "phase", "prec", "ours tok/s", "torch tok/s",
			"ratio", "ours TF/s", "MFU", "torch TF/s", "MFU"
		for (i = 1; i <= n; i++) {
			k = keys[i]; split(k, f, " ")
			o = tok[k, "ours"]; t = tok[k, "torch"]
			ratio = (o != "" && t > 0) ? sprintf("%.2fx", o / t) : "-"
			printf "%-11s %-11s %-5s %11s %11s %7s  %8s %7s  %8s %7s\n", f[1], f[2], f[3], dash(o), dash(t), ratio,
				dash(tfl[k, "ours"]), mfu(tfl[k, "ours"], f[3]), dash(tfl[k, "torch"]), mfu(tfl[k, "torch"], f[3])
		}
		print "(ratio = ours / torch tokens/s, P+2C tokens a pair on both sides; torch runs TRL'"'"'s [2·pairs, P+C] layout;"
		print " step-lbdpo has no torch twin: the LB-DPO step beside the DPO one; goal of issue 12: step-dpo ratio ≥ 1.2×)"
	}'

#!/usr/bin/env bash
# torch.sh — our packed transformer core (model_bench) and the lbdpo step
# (step_bench) beside PyTorch doing the same work with the same threads
# (bench/torch_baseline.py: CPU, fp32, eager, transformers models), as one
# table of tokens/s, GFLOP/s and the ratios ours / torch (issues 4 and 7).
#   bash bench/torch.sh [--quick|--bf16]     (BENCH_THREADS=N, BENCH_REPS=N; default: all cores, 2)
# --quick: 2-layer llama shapes only (a smoke run, about a minute on 2 cores);
# the full run takes about 7 minutes on 2 cores.
# Wall-clock ratios move with the load of a shared machine; the "per CPU-s"
# columns (work per CPU-second of the process, all threads) move much less.
# It runs model_bench and step_bench itself (again, under `make bench`) so that
# both sides are timed minutes apart with the same threads and reps.
# bf16 (issue 25), after the fp32 table, or alone with --bf16, where the CPU
# has bf16 products (--version's "bf16:" line): llama-110M fwd+bwd in fp32
# and bf16 (model_bench --dtype), the LB-DPO step in fp32 and bf16
# (step_bench --dtype) and PyTorch's TRL-style DPO step in fp32, under
# autocast and as a bf16 model (torch_baseline.py --precision), alternated
# in BF16_ROUNDS rounds (default 2; the best of each kept) so that a shared
# machine's load falls on all alike; with the bf16 GEMM's peak measured in
# the same process as model_bench's bf16 run.
set -u
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}" # idle OpenMP threads must not spin on a shared machine
: "${LBDPO_BENCHBIN:=$PWD/build/rel/bench/bin}"
PY=${PYTHON:-python3}
TH=${BENCH_THREADS:-$(nproc)} R=${BENCH_REPS:-2} Q=
[ "${1:-}" = --quick ] && Q=--quick
ONLY_BF16=; [ "${1:-}" = --bf16 ] && ONLY_BF16=1
if ! "$PY" -c 'import torch, transformers' 2>/dev/null; then
	echo "skipped: pip install torch transformers"
	exit 0
fi
for b in model_bench step_bench; do
	[ -x "$LBDPO_BENCHBIN/$b" ] || { echo "torch.sh: $LBDPO_BENCHBIN/$b not built (make bench builds it)" >&2; exit 1; }
done
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
echo "threads $TH, best of $R after a warm-up; load average:$(uptime | sed 's/.*load average://')"

bf16_section() {
	local path rounds=${BF16_ROUNDS:-2} L=() r
	path=$("${LBDPO_BIN:-$PWD/bin}/lbdpo-step" --version 2>/dev/null | sed -n 's/^bf16: //p')
	echo; echo "--- bf16 (issue 25): bf16 path: ${path:-?}"
	case "$path" in none*|"") echo "bf16: skipped (no bf16 products here)"; return 0 ;; esac
	[ -n "$Q" ] && L=(--layers 2)
	for r in $(seq "$rounds"); do
		echo "round $r; load average:$(uptime | sed 's/.*load average://')"
		for d in fp32 bf16; do
			"$LBDPO_BENCHBIN/model_bench" --threads "$TH" --reps "$R" --dtype $d ${Q:---only llama} >>"$T/mb_$d" || return 1
			"$LBDPO_BENCHBIN/step_bench" --threads "$TH" --reps "$R" --dtype $d "${L[@]}" >>"$T/sb_$d" || return 1
		done
		for p in fp32 autocast bf16; do
			"$PY" bench/torch_baseline.py --dpo --threads "$TH" --reps "$R" --precision $p "${L[@]}" >>"$T/tb_$p" || return 1
		done
	done
	local sh=llama-110M; [ -n "$Q" ] && sh=llama-2L
	best() { sort -g | tail -1; }
	local mf mb pk ps sf sb tf ta tb
	mf=$(sed -n "s/^$sh .*fwd+bwd: *\([0-9.]*\) tok\/s.*/\1/p" "$T/mb_fp32" | best)
	mb=$(sed -n "s/^$sh .*fwd+bwd: *\([0-9.]*\) tok\/s.*/\1/p" "$T/mb_bf16" | best)
	pk=$(sed -n 's/.*bf16 GEMM (oneDNN, rounding included) peak \([0-9.]*\) GFLOP.*/\1/p' "$T/mb_bf16" | best)
	ps=$(sed -n "s/^$sh .*fwd+bwd: .*( *\([0-9]*\)% of peak).*/\1/p" "$T/mb_bf16" | best)
	sf=$(sed -n 's/^lbdpo step: *\([0-9.]*\) tokens\/s.*/\1/p' "$T/sb_fp32" | best)
	sb=$(sed -n 's/^lbdpo step: *\([0-9.]*\) tokens\/s.*/\1/p' "$T/sb_bf16" | best)
	tf=$(sed -n 's/.*): *\([0-9.]*\) tokens\/s.*/\1/p' "$T/tb_fp32" | best)
	ta=$(sed -n 's/.*): *\([0-9.]*\) tokens\/s.*/\1/p' "$T/tb_autocast" | best)
	tb=$(sed -n 's/.*): *\([0-9.]*\) tokens\/s.*/\1/p' "$T/tb_bf16" | best)
	# per CPU-second of the process (moves less with the load; torch's idle
	# threads may spin, which it charges to itself)
	local mfc mbc sfc sbc tfc tac tbc
	mfc=$(awk -v s="$sh" '$1 == s && /per CPU-second/ { for (i = 1; i < NF; i++) if ($i == "fwd+bwd") print $(i + 1) }' "$T/mb_fp32" | best)
	mbc=$(awk -v s="$sh" '$1 == s && /per CPU-second/ { for (i = 1; i < NF; i++) if ($i == "fwd+bwd") print $(i + 1) }' "$T/mb_bf16" | best)
	sfc=$(sed -n 's/^lbdpo step per CPU-second: *\([0-9.]*\).*/\1/p' "$T/sb_fp32" | best)
	sbc=$(sed -n 's/^lbdpo step per CPU-second: *\([0-9.]*\).*/\1/p' "$T/sb_bf16" | best)
	tfc=$(sed -n 's/^torch DPO step per CPU-second: *\([0-9.]*\).*/\1/p' "$T/tb_fp32" | best)
	tac=$(sed -n 's/^torch DPO step per CPU-second: *\([0-9.]*\).*/\1/p' "$T/tb_autocast" | best)
	tbc=$(sed -n 's/^torch DPO step per CPU-second: *\([0-9.]*\).*/\1/p' "$T/tb_bf16" | best)
	awk -v sh="$sh" -v mf="$mf" -v mb="$mb" -v pk="$pk" -v ps="$ps" -v sf="$sf" -v sb="$sb" -v tf="$tf" -v ta="$ta" -v tb="$tb" \
	    -v rounds="$rounds" -v path="$path" \
	    -v mfc="$mfc" -v mbc="$mbc" -v sfc="$sfc" -v sbc="$sbc" -v tfc="$tfc" -v tac="$tac" -v tbc="$tbc" 'BEGIN {
		printf "\nbf16 beside fp32 and PyTorch, best of %d alternating rounds, tokens/s (bf16 path: %s)\n", rounds, path
		printf "%-34s %10s %10s\n", "", "fp32", "bf16"
		printf "%-34s %10.0f %10.0f   bf16/fp32 %.2fx; bf16 GEMM peak %.0f GFLOP/s, fwd+bwd at %s%% of it\n",
			"lbdpo " sh " fwd+bwd", mf, mb, mb / mf, pk, ps
		printf "%-34s %10.0f %10.0f   bf16/fp32 %.2fx\n", "lbdpo LB-DPO step", sf, sb, sb / sf
		printf "%-34s %10.0f %10.0f   (autocast; bf16 model: %.0f)\n", "torch TRL-style DPO step", tf, ta, tb
		printf "per CPU-second: lbdpo fwd+bwd %s / %s GFLOP/cpu-s (%.2fx), LB-DPO step %s / %s tok/cpu-s (%.2fx); " \
			"torch DPO step %s, autocast %s, bf16 model %s tok/cpu-s\n", mfc, mbc, mbc / mfc, sfc, sbc, sbc / sfc, tfc, tac, tbc
		printf "\ngoals (issue 25), wall clock: fwd+bwd bf16 / fp32 %.2fx (goal >= 1.6x), LB-DPO step bf16 / torch autocast %.2fx (goal >= 1.5x), " \
			"/ torch bf16 model %.2fx (goal >= 1.2x)\n", mb / mf, sb / ta, sb / tb
		printf "goals per CPU-second: %.2fx, %.2fx, %.2fx\n", mbc / mfc, sbc / tac, sbc / tbc
	}'
}
if [ -n "$ONLY_BF16" ]; then
	bf16_section
	exit $?
fi

# ours (model_bench prints its own lines too: sgemm peak, % of peak, prefix sharing)
"$LBDPO_BENCHBIN/model_bench" --threads "$TH" --reps "$R" $Q | tee "$T/ours" || exit 1
"$PY" bench/torch_baseline.py --threads "$TH" --reps "$R" $Q | tee "$T/torch" || exit 1
if [ -z "$Q" ]; then
	"$LBDPO_BENCHBIN/step_bench" --threads "$TH" --reps "$R" | tee "$T/ours_step" || exit 1
	"$PY" bench/torch_baseline.py --dpo --threads "$TH" --reps "$R" | tee "$T/torch_step" || exit 1
else
	"$LBDPO_BENCHBIN/step_bench" --threads "$TH" --reps "$R" --layers 2 | tee "$T/ours_step" || exit 1
	"$PY" bench/torch_baseline.py --dpo --threads "$TH" --reps "$R" --layers 2 | tee "$T/torch_step" || exit 1
fi

# one table: per shape and phase, tokens/s, GFLOP/s and tokens per CPU-second
awk -v TH="$TH" '
FNR == 1 { who = (FILENAME ~ /torch$/) ? "torch" : "ours" }
/ params  T=/ {
	s = $1; shapes[s] = 1
	for (i = 1; i <= NF; i++) {
		if ($i == "forward:") { tok[who, s, "fwd"] = $(i + 1); gf[who, s, "fwd"] = $(i + 3) }
		if ($i == "fwd+bwd:") { tok[who, s, "fb"] = $(i + 1); gf[who, s, "fb"] = $(i + 3) }
	}
}
/per CPU-second:/ {
	s = $1
	for (i = 1; i <= NF; i++) {
		if ($i == "forward" && $(i + 2) ~ /^GFLOP\/cpu-s/) cg[who, s, "fwd"] = $(i + 1)
		if ($i == "fwd+bwd" && $(i + 2) ~ /^GFLOP\/cpu-s/) cg[who, s, "fb"] = $(i + 1)
	}
}
END {
	printf "\nours vs PyTorch, %d threads (ratio = ours / torch; tok/cpu-s = tokens per CPU-second of the process)\n", TH
	printf "(cores = tok/s ÷ tok/cpu-s: the CPUs each run really got; where they differ, trust the tok/cpu-s ratio)\n"
	printf "%-11s %-8s %10s %10s %7s  %9s %9s  %10s %10s %7s  %s\n", "shape", "phase", "ours tok/s", "torch", "ratio",
		"ours GF/s", "torch", "ours tok/cpu-s", "torch", "ratio", "cores ours/torch"
	n = split("llama-110M gpt2-124M llama-2L", order, " ")
	for (k = 1; k <= n; k++) {
		s = order[k]
		if (!(s in shapes)) continue
		split("fwd fb", ph, " ")
		for (j = 1; j <= 2; j++) {
			p = ph[j]
			if (tok["ours", s, p] == "" || tok["torch", s, p] == "") { printf "%-11s %-8s (missing)\n", s, p; continue }
			# tokens per CPU-second from GFLOP/cpu-s: tok/s × (GFLOP/cpu-s ÷ GFLOP/s)
			oc = tok["ours", s, p] * cg["ours", s, p] / gf["ours", s, p]
			tc = tok["torch", s, p] * cg["torch", s, p] / gf["torch", s, p]
			printf "%-11s %-8s %10.0f %10.0f %6.2fx  %9.1f %9.1f  %14.0f %10.0f %6.2fx  %.1f/%.1f\n", s,
				p == "fwd" ? "forward" : "fwd+bwd", tok["ours", s, p], tok["torch", s, p], tok["ours", s, p] / tok["torch", s, p],
				gf["ours", s, p], gf["torch", s, p], oc, tc, oc / tc, tok["ours", s, p] / oc, tok["torch", s, p] / tc
		}
	}
}' "$T/ours" "$T/torch"
o=$(sed -n 's/^lbdpo step: *\([0-9.]*\) tokens\/s.*/\1/p' "$T/ours_step")
t=$(sed -n 's/.*): *\([0-9.]*\) tokens\/s.*/\1/p' "$T/torch_step")
if [ -n "$o" ] && [ -n "$t" ]; then
	awk -v o="$o" -v t="$t" 'BEGIN { printf "%-11s %-8s %10.0f %10.0f %6.2fx   (ours: lbdpo step, --beta-grad full; torch: TRL-style dpo step)\n", "dpo-step", "step", o, t, o / t }'
else
	echo "dpo-step: (missing)"
fi

# issue 10's goals, from the lines above (one run: read them beside the load)
sh=llama-110M; grep -q "^$sh " "$T/ours" || sh=llama-2L # --quick
fb=$(sed -n "s/^$sh .*fwd+bwd: .*( *\([0-9]*\)% of peak).*/\1/p" "$T/ours")
fbc=$(awk -v s="$sh" '$1 == s && /per CPU-second/ { v = $NF; gsub(/[()%]/, "", v); print v }' "$T/ours")
pf=$(sed -n 's/^prefix sharing.*forward [^(]*(\([0-9.]*\)×), fwd+bwd [^(]*(\([0-9.]*\)×).*/\1 \2/p' "$T/ours")
[ -n "$pf" ] || pf="? ?"
pfc=$(sed -n 's/^prefix sharing.*per CPU-second \([0-9.]*×\) \/ \([0-9.]*×\)$/ (per CPU-s \1 \/ \2)/p' "$T/ours")
echo
echo "goals (issue 10): $sh fwd+bwd ${fb:-?}% of sgemm peak (${fbc:-?}% per CPU-s; goal ≥ 70%)," \
	"LB-DPO step / TRL-style step $( [ -n "$o" ] && [ -n "$t" ] && awk -v o="$o" -v t="$t" 'BEGIN { printf "%.2f×", o / t }' || echo ?) (goal ≥ 1.5×)," \
	"prefix sharing forward ${pf% *}× / fwd+bwd ${pf#* }×$pfc (goal > 1× both)"
bf16_section || echo "bf16: failed"

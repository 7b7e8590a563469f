#!/usr/bin/env bash
# torch.sh — our packed transformer core (model_bench) and the lbdpo step
# (step_bench) beside PyTorch doing the same work with the same threads
# (bench/torch_baseline.py: CPU, fp32, eager, transformers models), as one
# table of tokens/s, GFLOP/s and the ratios ours / torch (issues 4 and 7).
#   bash bench/torch.sh [--quick]     (BENCH_THREADS=N, BENCH_REPS=N; default: all cores, 2)
# --quick: 2-layer llama shapes only (a smoke run, about a minute on 2 cores);
# the full run takes about 7 minutes on 2 cores.
# Wall-clock ratios move with the load of a shared machine; the "per CPU-s"
# columns (work per CPU-second of the process, all threads) move much less.
# It runs model_bench and step_bench itself (again, under `make bench`) so that
# both sides are timed minutes apart with the same threads and reps.
set -u
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}" # idle OpenMP threads must not spin on a shared machine
: "${LBDPO_BENCHBIN:=$PWD/build/rel/bench/bin}"
PY=${PYTHON:-python3}
TH=${BENCH_THREADS:-$(nproc)} R=${BENCH_REPS:-2} Q=
[ "${1:-}" = --quick ] && Q=--quick
if ! "$PY" -c 'import torch, transformers' 2>/dev/null; then
	echo "skipped: pip install torch transformers"
	exit 0
fi
for b in model_bench step_bench; do
	[ -x "$LBDPO_BENCHBIN/$b" ] || { echo "torch.sh: $LBDPO_BENCHBIN/$b not built (make bench builds it)" >&2; exit 1; }
done
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
echo "threads $TH, best of $R after a warm-up; load average:$(uptime | sed 's/.*load average://')"

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

#!/usr/bin/env bash
# attn_share.sh — the share of the model's forward+backward CPU time spent in
# attention's own kernels (libcore/nn/cpu/attention.c: attention_forward,
# attention_backward and their OpenMP bodies), sampled by perf (cpu-clock,
# user space, every thread) over step_bench --plain. Two runs, with R1 and
# R2 timed passes: the difference of their samples per symbol is R2 − R1
# forward+backward passes alone (model creation, random init and the
# warm-up cancel out).
# usage: bench/attn_share.sh STEP_BENCH [R1 R2] -- STEP_BENCH_OPTIONS...
#   e.g. bench/attn_share.sh build/rel/bench/bin/step_bench 1 3 -- --dtype bf16 --len 128
set -euo pipefail
SB=$1
shift
R1=1 R2=3
if [ "${1:-}" != -- ]; then R1=$1 R2=$2; shift 2; fi
[ "${1:-}" = -- ] && shift
command -v perf >/dev/null || { echo "attn_share.sh: perf not found (apt-get install linux-perf)" >&2; exit 1; }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
for r in "$R1" "$R2"; do
	perf record -q -e cpu-clock:u -F 999 -o "$W/$r.data" "$SB" --plain --reps "$r" "$@" >"$W/$r.out"
	# samples per symbol: "<samples> <symbol>"
	perf report -i "$W/$r.data" -n --no-children --sort sym --stdio 2>/dev/null |
		awk '/^ *[0-9.]+%/ { n = $2; $1 = $2 = $3 = ""; sub(/^ +/, ""); print n "\t" $0 }' >"$W/$r.sym"
done
sed -n 1p "$W/$R2.out"
sed -n 2p "$W/$R2.out"
awk -F '\t' -v r1="$R1" -v r2="$R2" '
FNR == 1 { f++ }
{ w = f == 1 ? -1 : 1; tot += w * $1
  if ($2 ~ /^attention_forward/) af += w * $1
  else if ($2 ~ /^attention_backward/) ab += w * $1 }
END { if (tot <= 0) { print "attn_share.sh: no samples left after the difference" > "/dev/stderr"; exit 1 }
	printf "samples of %d forward+backward passes: %d; attention forward %.1f%%, backward %.1f%%, together %.1f%%\n",
		r2 - r1, tot, 100 * af / tot, 100 * ab / tot, 100 * (af + ab) / tot }' "$W/$R1.sym" "$W/$R2.sym"

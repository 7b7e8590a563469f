#!/usr/bin/env bash
# run.sh — `make bench`: every bench/*.sh in turn (BENCH=pattern for a subset).
# Benchmarks print ratios measured side by side in one run on this machine;
# nothing here is a pass/fail test.
set -u
cd "$(dirname "$0")/.."
: "${LBDPO_BIN:=$PWD/bin}" "${LBDPO_BENCHBIN:=$PWD/build/rel/bench/bin}"
export LBDPO_BIN LBDPO_BENCHBIN LBDPO_ROOT="$PWD" PATH="$LBDPO_BIN:$PATH"
if [ -z "${LBDPO_ASSETS:-}" ] && [ -d "$PWD/../shared/assets" ]; then export LBDPO_ASSETS="$PWD/../shared/assets"; fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(date -u +%F)"
echo "blas: $("$LBDPO_BIN/lbdpo-step" --version | sed -n 's/^BLAS: //p')"
echo "bf16: $("$LBDPO_BIN/lbdpo-step" --version | sed -n 's/^bf16: //p') (the path of --dtype bf16)"
echo "load: $(uptime | sed 's/.*load average/load average/') (other processes share these cores: rates are noisy, ratios within one run less so)"
status=0
# C benchmark programs (bench/*.c), then the scripted ones (bench/*.sh)
# OpenMP workers that spin between parallel regions steal the cores
# OpenBLAS's own threads need for the sgemm that follows; sleep instead.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
for b in "$LBDPO_BENCHBIN"/*; do
	[ -x "$b" ] || continue
	[ -n "${BENCH:-}" ] && [[ ${b##*/} != *$BENCH* ]] && continue
	echo; echo "=== ${b##*/}"
	"$b" ${BENCH_THREADS:+--threads "$BENCH_THREADS"} || { echo "($b failed)"; status=1; }
done
for b in bench/*.sh; do
	[ "$b" = bench/run.sh ] && continue
	[ -n "${BENCH:-}" ] && [[ $b != *$BENCH* ]] && continue
	echo; echo "=== $(basename "$b" .sh)"
	bash "$b" || { echo "($b failed)"; status=1; }
done
exit $status

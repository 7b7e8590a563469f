#!/usr/bin/env bash
# run.sh — `make bench`: run every benchmark program (bench/*.c, built into
# $LBDPO_BENCHBIN). Not part of `make test`. BENCH_THREADS sets --threads.
set -eu
cd "$(dirname "$0")/.."
: "${LBDPO_BENCHBIN:=$PWD/build/rel/bench/bin}"
# OpenMP workers that spin between parallel regions steal the cores
# OpenBLAS's own threads need for the sgemm that follows; sleep instead.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
for b in "$LBDPO_BENCHBIN"/*; do
	[ -x "$b" ] || continue
	echo "== ${b##*/}"
	"$b" ${BENCH_THREADS:+--threads "$BENCH_THREADS"}
done

#!/usr/bin/env bash
# refcache.sh — lbdpo-refcache scoring throughput on the HH-RLHF test splits
# (GPT-2 tokenizer) with a ~124M random llama (dim 768, 12 layers, tied
# 50257-token embedding), and the speedup of 2 shards x 1 thread over one
# process; also packed batches (-b 4096) against one pair per forward.
#
#   BENCH_RECORDS=N   pairs to score (default 16: a short run); BENCH_FULL=1: all
#                     7552 pairs of the four test splits (hours on 2 cores)
set -u
: "${LBDPO_BIN:?run through make bench}"
export PATH="$LBDPO_BIN:$PATH"
A="${LBDPO_ASSETS:-}"
[ -n "$A" ] && [ -d "$A/hh-rlhf" ] && [ -f "$A/gpt2/tokenizer.json" ] || { echo "skipped: ../shared/assets (hh-rlhf, gpt2) absent"; exit 0; }
command -v lbdpo-tokenize >/dev/null || { echo "skipped: lbdpo-tokenize not built"; exit 0; }
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
N=${BENCH_RECORDS:-16}

zcat "$A"/hh-rlhf/*_test.jsonl.gz >"$W/hh.jsonl"
lbdpo-tokenize -q --skip-invalid --tokenizer "$A/gpt2/tokenizer.json" --max-length 512 --truncation-mode keep_start -i "$W/hh.jsonl" -o "$W/all.tok" || exit 1
if [ "${BENCH_FULL:-0}" = 1 ]; then cp "$W/all.tok" "$W/hh.tok"; else
	# an evenly spread sample, so the lengths are those of the whole set
	lbdpo-show -i "$W/all.tok" | awk -v n="$N" 'NR == 1 { print; next } { r[NR] = $0 } END { t = NR - 1; for (i = 0; i < n && i < t; i++) print r[2 + int(i * t / n)] }' |
		lbdpo-show --from-json -o "$W/hh.tok" || exit 1
fi
lbdpo-init -q --arch llama --dim 768 --layers 12 --heads 12 --hidden 2048 --tie --max-seq 1024 \
	--vocab-from "$A/gpt2/tokenizer.json" --seed 1 -o "$W/m" || exit 1

run() { # label, then the command; prints wall seconds
	local t0 t1; t0=$(date +%s.%N); "$@" || { echo "failed: $*" >&2; return 1; }; t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'
}
n=$(lbdpo-show --no-header -i "$W/hh.tok" | wc -l)
echo "pairs: $n (tokens of prompt+chosen+rejected, prompt once: see summaries below)"
lbdpo-show --header-only -i "$W/hh.tok" | lbdpo-show --from-json -o "$W/empty.tok"
t0=$(run lbdpo-refcache --model "$W/m" -t 2 -i "$W/empty.tok" -o /dev/null 2>/dev/null) || exit 1
t1=$(run lbdpo-refcache --model "$W/m" -t 2 -i "$W/hh.tok" -o "$W/one.ref" 2>"$W/one.log") || exit 1
grep -o '[0-9]* tokens computed' "$W/one.log"
t2=$( { t0=$(date +%s.%N)
	lbdpo-refcache --model "$W/m" -t 1 --shard 0/2 -i "$W/hh.tok" -o "$W/s0.ref" 2>/dev/null &
	lbdpo-refcache --model "$W/m" -t 1 --shard 1/2 -i "$W/hh.tok" -o "$W/s1.ref" 2>/dev/null &
	wait; lbdpo-refcache --merge -o "$W/two.ref" "$W/s0.ref" "$W/s1.ref" 2>/dev/null
	awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; } )
t3=$(run lbdpo-refcache --model "$W/m" -t 2 -b 4096 -i "$W/hh.tok" -o "$W/packed.ref" 2>/dev/null) || exit 1
t4=$(run lbdpo-refcache --model "$W/m" -t 2 -i "$W/hh.tok" -o "$W/again.ref" --cache "$W/c" 2>/dev/null) || exit 1
t5=$(run lbdpo-refcache --model "$W/m" -t 2 -i "$W/hh.tok" -o "$W/again.ref" --cache "$W/c" 2>"$W/cached.log") || exit 1
# 1 vs 2 threads split OpenBLAS's sums differently: compare to fp32 rounding
f() { lbdpo-show --no-header -i "$1" | grep -o '"ref_chosen_logp":[^,]*' | sed 's/.*://'; }
same=$(paste -d' ' <(f "$W/two.ref") <(f "$W/one.ref") | awk '{ d = ($1 - $2) / $2; if (d < 0) d = -d; if (d > m) m = d } END { printf "max relative difference %.1e", m }')
ct=$(sed -n 's/.* \([0-9]*\) tokens computed.*/\1/p' "$W/one.log")
echo "setup (load the model, fingerprint its weights): $t0 s; rates below exclude it"
printf '%-44s %8s %10s %10s\n' configuration seconds pairs/s tokens/s
for row in "1 process, 2 threads, 1 pair/forward:$t1" "2 shards x 1 thread (+ merge):$t2" "1 process, 2 threads, packed -b 4096:$t3" \
	"1 process + cache (cold, writes):$t4"; do
	l=${row%:*}; s=${row##*:}
	awk -v l="$l" -v s="$s" -v z="$t0" -v n="$n" -v t="$ct" 'BEGIN { d = s - z; if (d <= 0) d = 1e-9; printf "%-44s %8.2f %10.2f %10.0f\n", l, s, n / d, t / d }'
done
awk -v l="1 process + cache (warm: nothing computed)" -v s="$t5" -v n="$n" 'BEGIN { printf "%-44s %8.2f %10.2f %10s\n", l, s, n / s, "-" }'
awk -v a="$t1" -v b="$t2" -v z="$t0" 'BEGIN { printf "speedup of 2 shards x 1 thread over 1 process x 2 threads: %.2fx wall, %.2fx excluding setup\n", a / b, (a - z) / (b - z) }'
echo "merged shards vs unsharded records: $same; warm run: $(grep -o '[0-9]* computed, [0-9]* from cache' "$W/cached.log")"

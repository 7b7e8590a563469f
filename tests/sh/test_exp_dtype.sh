#!/usr/bin/env bash
# `make experiment DTYPE=bf16` (pipelines/experiment.mk): every program that
# runs the model gets --dtype bf16, the runs go to their own directory and
# the default's commands carry no --dtype; pipelines/exp-dtype.sh (the
# `compare` target) says whether each arm's mean lies in the other dtype's
# interval and gives the paired difference, on hand-made stats whose answers
# are known.
. "$(dirname "$0")/lib.sh"
mk() { make --no-print-directory -n -f "$ROOT/pipelines/experiment.mk" LBDPO_BIN=/B EW_FP32="$T/e" QUICK=1 SEEDS=1 "$@"; }
mk DTYPE=bf16 >"$T/bf16.n" || fail "make -n DTYPE=bf16"
mk >"$T/fp32.n" || fail "make -n"
# the programs that run the model, and those that do not
for p in step refcache sample eval logprob beta; do
	n=$(grep -o "/B/lbdpo-$p [^ ]* [^ ]*" "$T/bf16.n" | grep -vc -- "--dtype bf16") || true
	[ "$n" = 0 ] || fail "lbdpo-$p: $n calls without --dtype bf16"
	grep -q "/B/lbdpo-$p " "$T/bf16.n" || fail "lbdpo-$p never runs"
done
grep -q -- '--dtype' "$T/fp32.n" && fail "the default run passes --dtype"
grep -q "lbdpo-init --dtype\|lbdpo-gendata --dtype" "$T/bf16.n" && fail "--dtype given to a program without a model run"
grep -q -- "-o $T/e-bf16/s1/lbdpo" "$T/bf16.n" || fail "bf16 run not under $T/e-bf16"
grep -q "$T/e/" "$T/bf16.n" && fail "the bf16 run writes into the fp32 directory"
grep -q "exp-dtype.sh $T/e $T/e-bf16 bf16" <(mk DTYPE=bf16 compare) || fail "compare target"

# ---- exp-dtype.sh on known stats: arm metric group n mean sd ci95 values ----
mkdir -p "$T/a" "$T/b"
printf 'dpo\tpref_acc\tall\t2\t0.90\t0.01\t0.05\t0.89,0.91\n' >"$T/a/stats.tsv"
printf 'lbdpo\tpref_acc\tall\t2\t0.80\t0.01\t0.02\t0.80,0.80\n' >>"$T/a/stats.tsv"
printf 'lbdpo - dpo\tpref_acc\tall\t2\t-0.1\t0\t0\t-0.1,-0.1\n' >>"$T/a/stats.tsv"
printf 'dpo\tpref_acc\tall\t2\t0.93\t0.01\t0.02\t0.92,0.94\n' >"$T/b/stats.tsv"
printf 'lbdpo\tpref_acc\tall\t2\t0.85\t0.01\t0.06\t0.84,0.86\n' >>"$T/b/stats.tsv"
printf '1\tdpo\tpref_acc\tall\t0.89\n2\tdpo\tpref_acc\tall\t0.91\n1\tlbdpo\tpref_acc\tall\t0.80\n2\tlbdpo\tpref_acc\tall\t0.80\n' \
	>"$T/a/rows.all.tsv"
printf '1\tdpo\tpref_acc\tall\t0.92\n2\tdpo\tpref_acc\tall\t0.94\n1\tlbdpo\tpref_acc\tall\t0.84\n2\tlbdpo\tpref_acc\tall\t0.86\n' \
	>"$T/b/rows.all.tsv"
sh "$ROOT/pipelines/exp-dtype.sh" "$T/a" "$T/b" bf16 "dpo lbdpo" >"$T/cmp.md" || fail "exp-dtype.sh"
cat "$T/cmp.md"
# dpo: 0.93 within 0.90 ± 0.05, 0.90 outside 0.93 ± 0.02; paired +0.03 ± 0 (same shift both seeds)
grep -q '^| dpo | pref_acc | all | 0.900 ± 0.050 | 0.930 ± 0.020 | yes | \*\*no\*\* | 0.030 ± 0.000 |$' "$T/cmp.md" ||
	fail "dpo row"
# lbdpo: 0.85 outside 0.80 ± 0.02, 0.80 within 0.85 ± 0.06; paired 0.05 ± 12.706·0.01414/√2
grep -q '^| lbdpo | pref_acc | all | 0.800 ± 0.020 | 0.850 ± 0.060 | \*\*no\*\* | yes | 0.050 ± 0.127 |$' "$T/cmp.md" ||
	fail "lbdpo row"
grep -q 'lbdpo - dpo' "$T/cmp.md" && fail "a paired row taken for an arm"
grep -q '^2 of 4 mean-in-interval checks miss$' "$T/cmp.md" || fail "miss count"
rm "$T/b/rows.all.tsv"
out=$(sh "$ROOT/pipelines/exp-dtype.sh" "$T/a" "$T/b" bf16 "dpo" 2>&1 >/dev/null) && fail "missing input accepted"
grep -q "$T/b/rows.all.tsv: missing" <<<"$out" || fail "missing input: $out"
echo ok

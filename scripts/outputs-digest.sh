#!/usr/bin/env bash
# outputs-digest.sh BINDIR OUTDIR — run the programs of BINDIR on a fixed set
# of jobs (scoring, every loss and option family of lbdpo-step, resume, β,
# eval, sampling; 1 and 2 threads) and write OUTDIR.sums: the sha256 of every
# output file, timings stripped. A refactor that must not change numbers
# (issue #11: "bit-identical on the same machine and thread count") leaves
# the digest unchanged:
#
#     scripts/outputs-digest.sh /tmp/old/bin /tmp/a && scripts/outputs-digest.sh bin /tmp/b
#     diff /tmp/a.sums /tmp/b.sums
#
# The calls use the option spellings of round 1 (aliases since round 2), so
# one script runs old and new binaries alike. Needs ../shared for the
# stories260K model (set LBDPO_SHARED); about a minute on 2 cores.
set -eu
BIN=$(cd "$1" && pwd); O=$2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${LBDPO_SHARED:-$ROOT/../shared}
export PATH="$BIN:$PATH" OMP_WAIT_POLICY=passive
rm -rf "$O"; mkdir -p "$O"; O=$(cd "$O" && pwd); cd "$O"
G="$ROOT/tests/sh/gen_pairs.awk"
lbdpo-init -q -o m0 --dim 32 --layers 2 --heads 4 --vocab 32 --max-seq 64 --seed 3
# records whose reference is the model a run starts from (the provenance
# rule of round 3 refuses others; older binaries ignore the field)
fp() { lbdpo-init --model "$1" --info | sed 's/.*fingerprint=//'; }
awk -v seed=1 -v n=24 -v ref="$(fp m0)" -f "$G" | lbdpo-show --from-json -o train.tok
awk -v seed=2 -v n=16 -v ref="$(fp m0)" -f "$G" | lbdpo-show --from-json -o test.tok
for M in m0 $ROOT/tests/fixtures/hf/gpt2 $ROOT/tests/fixtures/hf/llama_gqa $ROOT/tests/fixtures/hf/qwen2_bias; do
  n=$(basename $M)
  for th in 1 2; do
    lbdpo-logprob -q -t $th -m $M -i test.tok --per-token -o lp_${n}_$th.rec || echo "logprob $n failed (vocab?)"
    lbdpo-logprob -q -t $th -m $M -b 0 -i test.tok -o lp0_${n}_$th.rec || true
  done
done
cp train.tok train.ref
cp test.tok test.ref
S=(--threads 1 --batch-size 4 --lr 3e-3 --beta-lr 1e-2 --beta 0.5 --steps 3 --ppl-from policy) # the default before round 3
for th in 1 2; do
  S[1]=$th
  lbdpo-step -q --init m0 --out c_dpo_$th -i train.ref --loss dpo "${S[@]}" --metrics m_dpo_$th.jsonl
  lbdpo-step -q --init m0 --out c_lbdpo_$th -i train.ref --loss lbdpo "${S[@]}" --grad-accum 2 --schedule cosine --warmup 1 --metrics m_lbdpo_$th.jsonl
  lbdpo-step -q --init m0 --out c_lbmlp_$th -i train.ref --loss lbdpo "${S[@]}" --head mlp --head-hidden 8 --pool mean --range-reg 0.1 --entropy-reg 0.1 --group-reg 0.1 --weight-decay 0.01 --clip 0.01 --metrics m_lbmlp_$th.jsonl
  lbdpo-step -q --init m0 --out c_lbref_$th -i train.ref --loss lbdpo "${S[@]}" --ppl-from ref --beta-grad head --metrics m_lbref_$th.jsonl
  lbdpo-step -q --init m0 --out c_bdpo_$th -i train.ref --loss beta-dpo "${S[@]}" --sft-weight 0.2 --metrics m_bdpo_$th.jsonl
  lbdpo-step -q --init m0 --out c_sft_$th -i train.ref --loss sft "${S[@]}" --metrics m_sft_$th.jsonl
  lbdpo-step -q --init m0 --out c_frz_$th -i train.ref --loss lbdpo "${S[@]}" --freeze-policy --metrics m_frz_$th.jsonl
  lbdpo-step -q --init c_lbdpo_$th --out c_res_$th -i train.ref --loss lbdpo "${S[@]}" --grad-accum 2 --metrics m_res_$th.jsonl
  lbdpo-step -q --init $ROOT/tests/fixtures/hf/gpt2 --out c_g2_$th -i train.tok --loss sft "${S[@]}" --metrics m_g2_$th.jsonl || true
  lbdpo-beta --threads $th -c c_lbdpo_$th -i test.ref -o beta_$th.rec
  lbdpo-eval --threads $th -c c_lbmlp_$th -i test.ref -o eval_$th.json --per-record eval_rec_$th.jsonl
  lbdpo-sample --threads $th -m c_lbdpo_$th -i test.tok --max-new-tokens 8 --seed 3 -o samp_$th.jsonl
  lbdpo-sample --threads $th -m $ROOT/tests/fixtures/hf/llama_gqa -i test.tok --greedy --max-new-tokens 6 -o sampg_$th.jsonl || true
done
lbdpo-step -q --init m0 --out c_ep -i train.ref --loss lbdpo --ppl-from policy --threads 1 --batch-size 5 --epochs 1.5 --beta-init 0.3 --head mlp --metrics m_ep.jsonl
lbdpo-step -q --init m0 --out c_wi -i train.ref --loss lbdpo --ppl-from policy --threads 1 --batch-size 4 --steps 2 --w-init 0.01 --save-every 1 --metrics m_wi.jsonl
awk -v seed=1 -v n=24 -v ref="$(fp c_ep)" -f "$G" | lbdpo-show --from-json -o train_ep.ref
lbdpo-step -q --init c_ep --fresh --out c_fr -i train_ep.ref --loss ipo --threads 1 --batch-size 4 --steps 2 --metrics m_fr.jsonl
lbdpo-step -q --init m0 --out c_h1 -i train.ref --loss beta-dpo --threads 1 --batch-size 4 --steps 2 --total-steps 5 --warmup 1
lbdpo-step -q --init c_h1 --out c_h2 -i train.ref --loss beta-dpo --threads 1 --batch-size 4 --steps 3 --metrics m_h2.jsonl
lbdpo-eval --threads 1 -c c_h2 -i test.ref -o eval_h2.json
SM=$SHARED/assets/stories260K/stories260K.bin
awk -v seed=1 -v n=24 -v ref="$(fp $SM)" -f "$G" | lbdpo-show --from-json -o train_sm.ref
for th in 1 2; do
  lbdpo-logprob -q -t $th -m $SM -i test.tok --per-token -o lp_st_$th.rec
  lbdpo-step -q --init $SM --out c_st_$th -i train_sm.ref --loss lbdpo --ppl-from policy --threads $th --batch-size 4 --steps 2 --lr 1e-4 --metrics m_st_$th.jsonl
  lbdpo-sample --threads $th -m $SM -i test.tok --max-new-tokens 16 --seed 5 -o samp_st_$th.jsonl
done
# strip timings and the run id (round 3, random) from metrics
for f in m_*.jsonl; do sed -i 's/"tokens_per_s": [^}]*}/}/; s/, *"run": "[0-9a-f]*"//' $f; done
rm -f */*.tmp.*
# trainer_state.json holds the run id and, since round 3, more options:
# its numbers are in the optimizer and metrics files, which are summed
find . -type f ! -name trainer_state.json | sort | xargs sha256sum >"$O.sums"
echo "$O.sums: $(wc -l <"$O.sums") files"

#!/usr/bin/env bash
# Reward models: lbdpo-step --loss reward turns a tiny random causal LM into a
# reward model (XxxForSequenceClassification checkpoint) that learns the
# synthetic preference (tests/sh/gen_pairs.awk) — lbdpo-reward ranks held-out
# chosen above rejected; the records' margin enters the loss; resume is
# bit-identical; under mpirun lbdpo-reward and --loss reward match one
# process; misuse and bad input are one-line errors and leave no output.
. "$(dirname "$0")/lib.sh"
cd "$T"
G="$ROOT/tests/sh/gen_pairs.awk"
awk -v seed=1 -v n=64 -f "$G" | lbdpo-show --from-json -o train.ref || fail "gen train"
awk -v seed=2 -v n=32 -f "$G" | lbdpo-show --from-json -o test.ref || fail "gen test"
# the same pairs with a margin of 2 on every record
awk -v seed=1 -v n=64 -f "$G" | sed '1!s/}$/, "margin": 2.0}/' | lbdpo-show --from-json -o margin.ref || fail "gen margin"
lbdpo-init -q -o m0 --dim 32 --layers 2 --heads 4 --vocab 32 --max-seq 64 --seed 3 || fail "lbdpo-init"
S=(--threads 1 --batch-size 8 --lr 3e-3 --ignore-provenance --loss reward)
# fraction of records with reward_chosen > reward_rejected
acc() { lbdpo-show --no-header -i "$1" |
	sed 's/.*"reward_chosen":\([^,}]*\),"reward_rejected":\([^,}]*\).*/\1 \2/' | awk '{ n++; a += $1 > $2 } END { print a / n }'; }

# ---- training learns the preference ----
lbdpo-step -q --model m0 --output rm -i train.ref --steps 40 "${S[@]}" --metrics m.jsonl || fail "lbdpo-step --loss reward"
grep -q '"LlamaForSequenceClassification"' rm/config.json || fail "config.json names no sequence-classification class"
grep -q '"pad_token_id": 2' rm/config.json || fail "pad_token_id (the eos) missing"
for k in loss rewards/accuracies rewards/margins reward/mean reward/std; do
	grep -q "\"$k\": " m.jsonl || fail "metric $k missing"
done
lbdpo-reward -q -m rm -i test.ref -o test.rw || fail "lbdpo-reward"
[ "$(lbdpo-show -i test.rw | sed -n 1p | grep -c '"kind":"rewards"')" = 1 ] || fail "header kind is not rewards"
a=$(acc test.rw)
echo "held-out ranking accuracy $a"
awk -v a="$a" 'BEGIN { exit !(a >= 0.8) }' || fail "held-out accuracy $a < 0.8"
# one pair per forward: the same rewards to float32 rounding
lbdpo-reward -q -m rm -b 0 -i test.ref -o test0.rw || fail "lbdpo-reward -b 0"
lbdpo-show --no-header -i test.rw >a.jsonl && lbdpo-show --no-header -i test0.rw >b.jsonl || fail "show"
num_close a.jsonl b.jsonl 1e-5 || fail "-b 0 differs"

# ---- the margin is read: the first step's loss is −log σ(r_c − r_r − 2), larger ----
lbdpo-step -q --model m0 --output rm_m -i margin.ref --steps 1 "${S[@]}" --metrics mm.jsonl || fail "margin run"
lbdpo-step -q --model m0 --output rm_0 -i train.ref --steps 1 "${S[@]}" --metrics m0.jsonl || fail "plain run"
l0=$(sed -n 's/.*"loss": \([^,]*\),.*/\1/p' m0.jsonl) lm=$(sed -n 's/.*"loss": \([^,]*\),.*/\1/p' mm.jsonl)
awk -v a="$l0" -v b="$lm" 'BEGIN { exit !(b > a + 1) }' || fail "margin 2 did not raise the loss ($l0 -> $lm)"
# a JSONL "margin" passes through lbdpo-tokenize into the records
printf '%s\n' '{"prompt": "ab", "chosen": "cd", "rejected": "ef", "margin": 1.5}' >mj.jsonl
lbdpo-tokenize -q --tokenizer "$ROOT/tests/fixtures/tokenizer/bl_split.json" -i mj.jsonl -o mj.tok || fail "tokenize margin"
lbdpo-show --no-header -i mj.tok | grep -q '"margin":1.5,' || fail "lbdpo-tokenize dropped the margin"
# centering adds c·mean (r_c + r_r)²: larger, and recorded
lbdpo-step -q --model m0 --output rm_c -i train.ref --steps 1 "${S[@]}" --center-rewards-coef 100 --metrics mc.jsonl ||
	fail "centering run"
lc=$(sed -n 's/.*"loss": \([^,]*\),.*/\1/p' mc.jsonl)
awk -v a="$l0" -v b="$lc" 'BEGIN { exit !(b > a) }' || fail "centering did not raise the loss ($l0 -> $lc)"
grep -q '"center_rewards_coef": 100' rm_c/trainer_state.json || fail "center_rewards_coef not recorded"

# ---- resume is bit-identical ----
R=(-i train.ref "${S[@]}" --grad-accum 2 --seed 5 --center-rewards-coef 0.01)
lbdpo-step -q --model m0 --output full "${R[@]}" --steps 4 || fail "run 4"
lbdpo-step -q --model m0 --output half "${R[@]}" --steps 2 --total-steps 4 || fail "run 2"
lbdpo-step -q --model half --output rest "${R[@]}" --steps 2 || fail "resume 2"
cmp -s full/model.safetensors rest/model.safetensors || fail "resume differs"

# ---- under mpirun (when built with MPI): lbdpo-reward writes one process's
# bytes; lbdpo-step --loss reward on 2 ranks takes the one-process steps ----
mkdir one two
(cd one && lbdpo-reward -q -m ../rm -b 0 -i ../test.ref -o r.rw) || fail "lbdpo-reward one process"
(
	need_mpi lbdpo-reward >/dev/null || exit 0
	(cd two && mpi -np 2 lbdpo-reward -q -m ../rm -b 0 -i ../test.ref -o r.rw) || fail "mpirun lbdpo-reward"
	cmp one/r.rw two/r.rw || fail "lbdpo-reward: 2 ranks differ from one process"
	echo "mpirun -np 2: same bytes"
	# data-parallel training: the one-process steps, to float32 rounding
	P=(--model m0 -i "$T/train.ref" --steps 3 "${S[@]}" --center-rewards-coef 0.01)
	lbdpo-step -q "${P[@]}" --output p1 --metrics p1.jsonl || fail "one-process reward steps"
	mpi -np 2 lbdpo-step -q "${P[@]}" --output p2 --metrics p2.jsonl || fail "mpirun lbdpo-step --loss reward"
	sed 's/"tokens_per_s.*//' p1.jsonl >p1.txt && sed 's/"tokens_per_s.*//' p2.jsonl >p2.txt
	num_close p1.txt p2.txt 1e-5 || fail "2 ranks' reward steps differ"
) || exit 1

# ---- errors ----
expect_fail lbdpo-reward -m m0 -i test.ref -o none.rw
[ ! -e none.rw ] || fail "a failed lbdpo-reward left an output file"
expect_fail lbdpo-logprob -m rm -i test.ref -o none.sc
expect_fail lbdpo-refcache -q --model rm -i test.ref -o none.ref
expect_fail lbdpo-eval -m rm -i test.ref -o none.json
expect_fail lbdpo-beta -m rm -i test.ref -o none.beta
expect_fail lbdpo-sample -m rm -i test.ref --max-new-tokens 2 -o none.jsonl
expect_fail lbdpo-eval -m m0 -i test.ref --loss reward -o none.json
[ -z "$(ls none.* 2>/dev/null)" ] || fail "a refusal left an output file"
expect_fail lbdpo-step -q --model rm --fresh --output x -i train.ref --steps 1 --loss dpo --ignore-provenance
expect_fail lbdpo-step -q --model m0 --output x -i train.ref --steps 1 --loss dpo --center-rewards-coef 1
expect_fail lbdpo-step -q --model m0 --output x -i train.ref --steps 1 "${S[@]}" --sft-weight 1
awk -v seed=1 -v n=4 -f "$G" | sed '3s/}$/, "margin": "big"}/' | lbdpo-show --from-json -o badm.ref || fail "gen bad"
msg=$(expect_fail lbdpo-step -q --model m0 --output x -i badm.ref --steps 1 "${S[@]}") || exit 1
case $msg in *badm.ref*"record 2"*margin*) ;; *) fail "bad margin message: $msg" ;; esac
[ ! -e x ] || fail "a failed run left a checkpoint"
exit 0

#!/usr/bin/env bash
# lbdpo-step / lbdpo-eval / lbdpo-beta on a tiny random model and synthetic
# pairs (tests/sh/gen_pairs.awk): training lowers the loss and raises held-out
# accuracy (dpo, lbdpo); resume is bit-identical; a killed run leaves a
# loadable checkpoint; a non-finite loss stops without writing; bad input and
# usage errors are one-line messages.
. "$(dirname "$0")/lib.sh"
cd "$T"
G="$ROOT/tests/sh/gen_pairs.awk"
awk -v seed=1 -v n=64 -f "$G" | lbdpo-show --from-json -o train.ref || fail "gen train"
awk -v seed=2 -v n=32 -f "$G" | lbdpo-show --from-json -o test.ref || fail "gen test"
lbdpo-init -q -o m0 --dim 32 --layers 2 --heads 4 --vocab 32 --max-seq 64 --seed 3 || fail "lbdpo-init"
S=(--threads 1 --batch-size 8 --lr 3e-3 --beta-lr 1e-2 --beta 0.5 --ppl-from policy --ignore-provenance) # the default before ref; synthetic reference scores
jget() { sed -n "s|^ \"$1\": \([^,]*\),*$|\1|p" "$2" | head -1; }

# ---- training: dpo and lbdpo ----
for loss in dpo lbdpo; do
	lbdpo-eval --threads 1 -m m0 --loss dpo --beta 0.5 -i test.ref -o before.json || fail "eval m0"
	lbdpo-step --model m0 --output c_$loss -i train.ref --steps 30 --loss $loss "${S[@]}" --metrics m_$loss.jsonl \
		|| fail "lbdpo-step --loss $loss"
	lbdpo-eval --threads 1 -m c_$loss -i test.ref -o after.json || fail "eval c_$loss"
	a0=$(jget rewards/accuracies before.json) a1=$(jget rewards/accuracies after.json)
	l0=$(jget loss before.json) l1=$(jget loss after.json)
	echo "$loss: held-out accuracy $a0 -> $a1, loss $l0 -> $l1"
	awk -v a="$a1" 'BEGIN { exit !(a >= 0.8) }' || fail "$loss: held-out accuracy $a1 < 0.8"
	awk -v a="$l0" -v b="$l1" 'BEGIN { exit !(b < a - 0.2) }' || fail "$loss: loss did not fall ($l0 -> $l1)"
	[ "$(wc -l < m_$loss.jsonl)" = 30 ] || fail "expected 30 metric lines"
	for k in loss rewards/chosen rewards/rejected rewards/accuracies rewards/margins logps/chosen \
		logps/rejected grad_norm learning_rate beta/mean beta/std beta/min beta/max beta/w ppl/prompt tokens_per_s; do
		grep -q "\"$k\": " m_$loss.jsonl || fail "metric $k missing"
	done
done
for f in config.json model.safetensors beta_head.safetensors optimizer.safetensors trainer_state.json; do
	[ -s c_lbdpo/$f ] || fail "checkpoint lacks $f"
done

# ---- lbdpo-beta: β = w·PPL·f per record ----
lbdpo-beta --threads 1 -m c_lbdpo -i test.ref | lbdpo-show --no-header > beta.jsonl || fail "lbdpo-beta"
[ "$(wc -l < beta.jsonl)" = 32 ] || fail "lbdpo-beta: expected 32 records"
sed 's/.*"beta":\([^,]*\),"beta_w":\([^,]*\),"beta_ppl":\([^,]*\),"beta_f":\([^,]*\),.*/\1 \2 \3 \4/' beta.jsonl |
	awk '{ d = $1 - $2 * $3 * $4; if (d < 0) d = -d; if (d > 1e-9 * $1 || $4 < 0.9 || $4 > 1.1) bad++ } END { exit bad > 0 }' ||
	fail "lbdpo-beta: beta != w*PPL*f or f outside [1-eps, 1+eps]"

# ---- resume is bit-identical (lbdpo, beta-dpo, loss lists; grad accumulation) ----
for loss in lbdpo beta-dpo "nca_pair,aot,sft --loss-weights 0.5,1,0.2" \
	"bco_pair,apo_down --loss-weights 1,0.3 --learned-beta --group-reg 0.5"; do
	# shellcheck disable=SC2206
	R=(-i train.ref --loss $loss "${S[@]}" --grad-accum 2 --warmup 2 --schedule cosine --seed 5)
	lbdpo-step --model m0 --output full "${R[@]}" --steps 6 || fail "run 6"
	lbdpo-step --model m0 --output half "${R[@]}" --steps 3 --total-steps 6 || fail "run 3"
	lbdpo-step --model half --output rest "${R[@]}" --steps 3 || fail "resume 3"
	for f in model.safetensors beta_head.safetensors optimizer.safetensors; do
		cmp -s full/$f rest/$f || fail "$loss: resume differs in $f"
	done
	grep -q '"step": 6' rest/trainer_state.json || fail "resumed step count"
	rm -rf full half rest
done

# ---- a killed run leaves a loadable checkpoint ----
lbdpo-step --model m0 --output killed -i train.ref "${S[@]}" --steps 100000 --save-every 1 --loss dpo &
pid=$!
for _ in $(seq 100); do [ -f killed/trainer_state.json ] && break; sleep 0.1; done
sleep 0.3
kill -9 $pid; wait $pid 2>/dev/null
[ -f killed/trainer_state.json ] || fail "no checkpoint after a killed run"
lbdpo-eval --threads 1 -m killed -i test.ref -o /dev/null || fail "killed run's checkpoint does not load"
lbdpo-step --model killed --output killed2 -i train.ref "${S[@]}" --steps 1 --loss dpo || fail "cannot resume a killed run"

# ---- non-finite loss: error, nothing written ----
lbdpo-show -i train.ref > t.jsonl
sed '2s/"ref_chosen_logp":[^,]*/"ref_chosen_logp":1.7e308/; 2s/"ref_rejected_logp":[^,]*/"ref_rejected_logp":-1.7e308/' t.jsonl |
	lbdpo-show --from-json -o nan.ref || fail "make nan.ref"
expect_fail lbdpo-step --model m0 --output nanck -i nan.ref "${S[@]}" --steps 20 --batch-size 64 --loss dpo
[ ! -e nanck ] || fail "a checkpoint was written after a non-finite loss"

# ---- bad input and usage ----
expect_fail lbdpo-step --model m0 --output x --steps 1 -i /nonexistent
expect_fail lbdpo-step --model m0 --steps 1 -i train.ref
expect_fail lbdpo-step --model m0 --output x --steps 1 --loss nope -i train.ref
for bad in "--loss dpo,nope|unknown loss" "--loss dpo,sft --loss-weights 1|1 weights for 2 losses" \
	"--loss exo_pair|exo_pair needs --label-smoothing > 0" "--loss dpo,aot --learned-beta|aot has no per-pair beta" \
	"--loss lbdpo,sft|cannot be in a list (use dpo" "--loss sft --learned-beta|the loss has no beta"; do
	# shellcheck disable=SC2086
	msg=$(expect_fail lbdpo-step --model m0 --output x --steps 1 ${bad%%|*} -i train.ref)
	echo "$msg" | grep -qF "${bad#*|}" || fail "lbdpo-step ${bad%%|*}: $msg"
done
# lbdpo is dpo with --learned-beta: the same checkpoint
lbdpo-step --model m0 --output lb1 -i train.ref "${S[@]}" --steps 2 --loss lbdpo || fail "lbdpo"
lbdpo-step --model m0 --output lb2 -i train.ref "${S[@]}" --steps 2 --loss dpo --learned-beta || fail "dpo --learned-beta"
for f in model.safetensors beta_head.safetensors optimizer.safetensors; do
	cmp -s lb1/$f lb2/$f || fail "lbdpo and dpo --learned-beta differ in $f"
done
rm -rf lb1 lb2
expect_fail lbdpo-step --model m0 --output x --steps 1 --epsilon 1.5 -i train.ref
head -c 200 train.ref > trunc.ref
expect_fail lbdpo-step --model m0 --output x --steps 1 -i trunc.ref
sed '3s/"ref_chosen_n":4/"ref_chosen_n":5/' t.jsonl | lbdpo-show --from-json -o badn.ref
msg=$(expect_fail lbdpo-step --model m0 --output x --steps 1 -i badn.ref)
echo "$msg" | grep -q 'record 2' || fail "error does not name the record: $msg"
sed '3s/"prompt_ids":\[[12],/"prompt_ids":[99,/' t.jsonl | lbdpo-show --from-json -o badtok.ref
expect_fail lbdpo-step --model m0 --output x --steps 1 -i badtok.ref
sed 's/,"ref_prompt_logp":[^,]*//' t.jsonl | lbdpo-show --from-json -o noplogp.ref
expect_fail lbdpo-step --model m0 --output x --steps 1 --ppl-from ref -i noplogp.ref --ignore-provenance
expect_fail lbdpo-beta -m m0 -i test.ref
expect_fail lbdpo-eval -i test.ref
[ ! -e x ] || fail "an output was written on error"
for p in lbdpo-step lbdpo-beta lbdpo-eval; do
	$p --version | grep -qx "$p lbdpo [0-9.]*" || fail "$p --version"
	$p --help | grep -q -- '--threads' || fail "$p --help"
done
echo ok

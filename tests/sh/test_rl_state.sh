#!/usr/bin/env bash
# test_rl_state.sh — lbdpo-step --loss ppo|grpo|rloo across calls, and with
# LoRA, on synthetic rollouts of a tiny random model (token_logps: another
# model's, so the ratio is not 1):
#  - one optimizer over the run: two calls of one epoch each, the second
#    from the first's output, give what one call of two epochs gives (the
#    same rollouts: the same advantages and old log-probs): the AdamW moments
#    and the weights within 1e-5 of each tensor's largest magnitude
#    (measured: 3e-7; only the mini-batch's row order differs, epoch_perm; AdamW turns
#    rounding in a near-zero gradient into an order-dependent fraction of
#    lr, test_mpi_step.sh); moments restarted at zero in the second call
#    miss by far more (the first step of fresh moments moves every weight by
#    ~lr); the step count goes on (trainer_state.json, "global_step"), and
#    with it --schedule linear over --total-steps; --fresh restarts;
#  - PPO: the value model's moments go on too (OUT/value/optimizer.safetensors
#    "step");
#  - LoRA: at step 0 the adapted policy scores as the base, bit for bit (the
#    metrics of the first mini-batch, computed before the update, equal the
#    full model's); the output is a PEFT adapter directory that lbdpo-logprob
#    runs; -m ADAPTER and -m BASE --adapter ADAPTER continue alike, bit for
#    bit, with the optimizer state; a call killed (SIGKILL) leaves nothing
#    and, run again, writes the uninterrupted call's files bit for bit;
#  - refusals: --schedule linear without --total-steps; --lora-r with an
#    adapter; a preference loss from an RL checkpoint without --fresh.
. "$(dirname "$0")/lib.sh"
CLOSE="${LBDPO_TESTBIN:?}/mpi/st_close"
[ -x "$CLOSE" ] || fail "$CLOSE not built"
cd "$T"
lbdpo-init -q -o m0 --dim 32 --layers 2 --heads 4 --vocab 32 --max-seq 64 --seed 3 || fail "lbdpo-init"
lbdpo-init -q -o ref --dim 32 --layers 2 --heads 4 --vocab 32 --max-seq 64 --seed 4 || fail "lbdpo-init ref"
awk 'BEGIN { srand(7)
	for (p = 0; p < 4; p++) {
		pr = "1"; for (i = 0; i < 3; i++) pr = pr "," 3 + int(rand() * 28)
		for (s = 0; s < 4; s++) {
			k = 1 + (p * 4 + s) % 5; ids = ""
			for (i = 0; i < k; i++) ids = ids (i ? "," : "") 3 + int(rand() * 28)
			printf "{\"prompt_ids\":[%s],\"ids\":[%s],\"eos_id\":2,\"reward\":%.4f}\n", pr, ids, rand() } } }' >raw.jsonl
# the sampler's per-token log-probs: the other model's
lbdpo-logprob -q -m ref -i raw.jsonl | sed 's/"ref_token_logps"/"token_logps"/' >roll.jsonl || fail "token_logps"
grep -q '"token_logps":\[' roll.jsonl || fail "no token_logps"
S=(--ref ref --threads 1 --lr 1e-3 -q -i roll.jsonl)
jget() { sed -n "s|^ \"$1\": \([^,]*\),*$|\1|p" "$2" | head -1; }
mget() { sed 's|.*"'"$1"'":\([-0-9.eE+]*\).*|\1|' "$2"; }

# 1. two calls == one call of two epochs
for a in grpo rloo; do
	lbdpo-step --loss $a -m m0 "${S[@]}" --epochs 2 -o one_$a || fail "$a: one call"
	lbdpo-step --loss $a -m m0 "${S[@]}" --epochs 1 -o c1_$a || fail "$a: call 1"
	lbdpo-step --loss $a -m c1_$a "${S[@]}" --epochs 1 --metrics c2_$a.m -o c2_$a || fail "$a: call 2"
	"$CLOSE" one_$a/optimizer.safetensors c2_$a/optimizer.safetensors 1e-5 || fail "$a: moments of two calls differ from one call's"
	"$CLOSE" one_$a/model.safetensors c2_$a/model.safetensors 1e-5 || fail "$a: weights of two calls differ from one call's"
	[ "$(jget step c2_$a/trainer_state.json)" = 2 ] || fail "$a: step $(jget step c2_$a/trainer_state.json) after two calls"
	[ "$(mget global_step c2_$a.m)" = 2 ] || fail "$a: global_step $(mget global_step c2_$a.m)"
done
# --fresh: new moments, step 1; far from the continued run
lbdpo-step --loss grpo -m c1_grpo --fresh "${S[@]}" --epochs 1 -o fr || fail "--fresh"
[ "$(jget step fr/trainer_state.json)" = 1 ] || fail "--fresh: step $(jget step fr/trainer_state.json)"
"$CLOSE" one_grpo/optimizer.safetensors fr/optimizer.safetensors 1e-2 >/dev/null && fail "--fresh: the moments went on"
# the schedule goes on: linear over 4 steps, two calls of 2 (the metric is the last step's)
L=(--schedule linear --total-steps 4 --num-mini-batches 2 --epochs 1)
lbdpo-step --loss grpo -m m0 "${S[@]}" "${L[@]}" --metrics l1.m -o l1 || fail "schedule call 1"
lbdpo-step --loss grpo -m l1 "${S[@]}" "${L[@]}" --metrics l2.m -o l2 || fail "schedule call 2"
awk -v a="$(mget lr l1.m)" -v b="$(mget lr l2.m)" 'BEGIN { exit !(a == 0.00075 && b == 0.00025) }' ||
	fail "linear schedule: lr $(mget lr l1.m), $(mget lr l2.m); want 0.00075, 0.00025"
out=$(expect_fail lbdpo-step --loss grpo -m m0 "${S[@]}" --schedule cosine -o x)
grep -q 'needs --total-steps' <<<"$out" || fail "--schedule without --total-steps: $out"

# an RL checkpoint under a preference loss: refused unless --fresh (its
# moments are another objective's); lbdpo-eval scores it without a warning
awk -v seed=1 -v n=8 -f "$ROOT/tests/sh/gen_pairs.awk" | lbdpo-show --from-json -o p.ref || fail "gen pairs"
out=$(expect_fail lbdpo-step --loss dpo -m c1_grpo -i p.ref --steps 1 --ignore-provenance -o d1)
grep -q 'c1_grpo: a checkpoint of lbdpo-step --loss grpo: give --fresh' <<<"$out" || fail "dpo from an RL checkpoint: $out"
[ ! -e d1 ] || fail "refused, but wrote d1"
lbdpo-step -q --loss dpo --fresh -m c1_grpo -i p.ref --steps 1 --ignore-provenance -o d1 2>/dev/null || fail "dpo --fresh from an RL checkpoint"
lbdpo-eval -m c1_grpo -i p.ref >/dev/null 2>ev.err || fail "lbdpo-eval on an RL checkpoint"
grep -q warning ev.err && fail "lbdpo-eval on an RL checkpoint: $(cat ev.err)"

# 2. PPO: the value model's moments go on
lbdpo-step --loss ppo -m m0 "${S[@]}" --epochs 2 -o p1 || fail "ppo call 1"
lbdpo-step --loss ppo -m p1 --value-model p1/value "${S[@]}" --epochs 2 -o p2 || fail "ppo call 2"
head -c 400 p2/value/optimizer.safetensors | grep -q '"step":"4"' || fail "ppo: value step not 4 after two calls"
[ "$(jget step p2/trainer_state.json)" = 4 ] || fail "ppo: policy step"

# 3. LoRA
# step 0 scores as the base: the metrics before the update are the full model's
for a in ppo grpo; do
	lbdpo-step --loss $a -m m0 "${S[@]}" --epochs 1 --metrics full_$a.m -o full_$a || fail "$a full"
	lbdpo-step --loss $a -m m0 "${S[@]}" --epochs 1 --lora-r 4 --metrics lora_$a.m -o lora_$a || fail "$a lora"
	for k in objective/kl objective/entropy loss/policy_avg policy/approxkl_avg policy/clipfrac_avg val/ratio; do
		[ "$(mget $k full_$a.m)" = "$(mget $k lora_$a.m)" ] || fail "$a: LoRA at step 0: $k $(mget $k lora_$a.m), full model $(mget $k full_$a.m)"
	done
	[ -f lora_$a/adapter_config.json ] && [ -f lora_$a/adapter_model.safetensors ] && [ ! -e lora_$a/model.safetensors ] ||
		fail "$a: not an adapter directory: $(ls lora_$a)"
done
[ -f lora_ppo/value/model.safetensors ] || fail "LoRA ppo: no value model"
lbdpo-logprob -q -m lora_grpo -i raw.jsonl -o lp_lora.jsonl || fail "lbdpo-logprob on the adapter"
lbdpo-logprob -q -m m0 -i raw.jsonl -o lp_m0.jsonl || fail "lbdpo-logprob on the base"
cmp -s lp_lora.jsonl lp_m0.jsonl && fail "the adapter changed nothing"
# -m ADAPTER and -m BASE --adapter ADAPTER: the same continuation
lbdpo-step --loss grpo -m lora_grpo "${S[@]}" --epochs 1 -o la || fail "-m adapter"
lbdpo-step --loss grpo -m m0 --adapter lora_grpo "${S[@]}" --epochs 1 -o lb || fail "--adapter"
for f in adapter_model.safetensors optimizer.safetensors; do
	cmp la/$f lb/$f || fail "-m ADAPTER and --adapter ADAPTER differ in $f"
done
[ "$(jget step la/trainer_state.json)" = 2 ] || fail "LoRA: step $(jget step la/trainer_state.json) after two calls"
out=$(expect_fail lbdpo-step --loss grpo -m lora_grpo --lora-r 2 "${S[@]}" -o x)
grep -q 'no --lora-r with it' <<<"$out" || fail "--lora-r with an adapter: $out"
# killed, run again: the uninterrupted call's files, bit for bit
K=(--loss ppo -m lora_ppo --value-model lora_ppo/value "${S[@]}" --epochs 1000)
lbdpo-step "${K[@]}" -o straight || fail "uninterrupted"
lbdpo-step "${K[@]}" -o killed &
pid=$!
sleep 1
kill -KILL $pid 2>/dev/null || fail "the call ended before the kill: make it longer"
wait $pid
[ ! -e killed ] || fail "a killed call left $(ls killed)"
lbdpo-step "${K[@]}" -o killed || fail "run again"
for f in adapter_model.safetensors optimizer.safetensors value/model.safetensors value/optimizer.safetensors rl_state.json; do
	cmp straight/$f killed/$f || fail "killed and run again: $f differs"
done
echo ok

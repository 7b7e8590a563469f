#!/usr/bin/env bash
# test_lora.sh — LoRA adapters through the programs (lbdpo(7) LORA):
# lbdpo-step --lora-r trains an adapter on a frozen base (held-out accuracy
# rises) and writes PEFT's adapter files; step 0 scores exactly as the base;
# a killed-and-resumed run is bit-identical (dropout and accumulation on); an
# adapter written by PEFT continues training; --adapter works in logprob,
# refcache, eval, beta and sample; lbdpo-init --merge gives the adapter's
# numbers; an adapter on another base and records scored by another base
# are refused in one line; bad adapters and options are one-line errors.
. "$(dirname "$0")/lib.sh"
cd "$T"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
G="$ROOT/tests/sh/gen_pairs.awk" D="$ROOT/tests/fixtures/demo_tok"
awk -v seed=1 -v n=64 -f "$G" | lbdpo-show --from-json -o train.ref || fail "gen train"
awk -v seed=2 -v n=32 -f "$G" | lbdpo-show --from-json -o test.ref || fail "gen test"
lbdpo-init -q -o m0 --dim 32 --layers 2 --heads 4 --vocab 32 --max-seq 64 --seed 3 || fail "init m0"
lbdpo-init -q -o m1 --dim 32 --layers 2 --heads 4 --vocab 32 --max-seq 64 --seed 4 || fail "init m1"
S=(--threads 1 --batch-size 8 --lr 3e-2 --beta-lr 1e-2 --beta 0.5 --ppl-from policy --ignore-provenance)
jget() { sed -n "s|^ \"$1\": \([^,]*\),*$|\1|p" "$2" | head -1; }
scores() { lbdpo-logprob -q -t 1 "$@" -i test.ref | lbdpo-show --no-header; }

# ---- training an adapter: accuracy rises, PEFT's files, the base untouched ----
cp -r m0 m0.orig
lbdpo-eval --threads 1 -m m0 --loss dpo --beta 0.5 -i test.ref -o before.json || fail "eval m0"
lbdpo-step -q --model m0 --output c -i train.ref --steps 30 --loss dpo "${S[@]}" --lora-r 8 || fail "lbdpo-step --lora-r"
lbdpo-eval --threads 1 -m c -i test.ref -o after.json || fail "eval the LoRA checkpoint"
a0=$(jget rewards/accuracies before.json) a1=$(jget rewards/accuracies after.json)
echo "LoRA dpo: held-out accuracy $a0 -> $a1"
awk -v a="$a1" 'BEGIN { exit !(a >= 0.8) }' || fail "held-out accuracy $a1 < 0.8 after LoRA training"
for f in adapter_config.json adapter_model.safetensors beta_head.safetensors optimizer.safetensors trainer_state.json; do
	[ -s c/$f ] || fail "LoRA checkpoint lacks $f"
done
[ ! -e c/model.safetensors ] || fail "a LoRA checkpoint holds the base's weights"
for k in '"peft_type": "LORA"' '"task_type": "CAUSAL_LM"' '"r": 8' '"lora_alpha": 16' '"bias": "none"' \
	'"base_model_name_or_path": "m0"' '"fan_in_fan_out": false' '"q_proj"' '"down_proj"'; do
	grep -q "$k" c/adapter_config.json || fail "adapter_config.json lacks $k"
done
grep -aq 'base_model.model.model.layers.1.mlp.down_proj.lora_B.weight' c/adapter_model.safetensors ||
	fail "adapter_model.safetensors lacks PEFT's key names"
diff -r m0 m0.orig >/dev/null || fail "training an adapter changed the base model's files"
# scoring with the adapter, given either way, differs from the base
scores -m m0 > base.jsonl || fail "logprob base"
scores -m m0 --adapter c > ad.jsonl || fail "logprob --adapter"
scores -m c > ad2.jsonl || fail "logprob -m ADAPTER_DIR"
cmp -s ad.jsonl ad2.jsonl || fail "-m ADAPTER_DIR and -m BASE --adapter DIR score differently"
cmp -s base.jsonl ad.jsonl && fail "the adapter changes no log-prob"

# ---- step 0 (PEFT's init, B = 0) is the base, bit for bit ----
lbdpo-step -q --model m0 --output c0 -i train.ref --steps 0 --loss dpo "${S[@]}" --lora-r 4 || fail "--steps 0"
scores -m m0 --adapter c0 > s0.jsonl || fail "logprob step 0"
cmp -s base.jsonl s0.jsonl || fail "step 0 of a LoRA run does not score as the base"

# ---- resume is bit-identical (dropout, rsLoRA, targets, grad accumulation) ----
R=(-i train.ref --loss lbdpo "${S[@]}" --grad-accum 2 --warmup 2 --schedule cosine --seed 5)
L=(--lora-r 4 --lora-alpha 6 --lora-dropout 0.1 --use-rslora --lora-targets q_proj,v_proj,up_proj)
lbdpo-step -q --model m0 --output full "${R[@]}" "${L[@]}" --steps 6 || fail "run 6"
lbdpo-step -q --model m0 --output half "${R[@]}" "${L[@]}" --steps 3 --total-steps 6 || fail "run 3"
lbdpo-step -q --model half --output rest "${R[@]}" --steps 3 || fail "resume 3 (-m ADAPTER_DIR)"
lbdpo-step -q --model m0 --adapter half --output rest2 "${R[@]}" --steps 3 || fail "resume 3 (--adapter)"
for f in adapter_model.safetensors beta_head.safetensors optimizer.safetensors; do
	cmp -s full/$f rest/$f || fail "LoRA resume differs in $f"
	cmp -s full/$f rest2/$f || fail "LoRA resume with --adapter differs in $f"
done
grep -q '"use_rslora": true' full/adapter_config.json || fail "use_rslora not saved"
grep -q '"up_proj"' full/adapter_config.json && ! grep -q '"k_proj"' full/adapter_config.json ||
	fail "--lora-targets not saved as given"
# saving over a LoRA checkpoint (--save-every, -m DIR -o DIR) replaces its adapter files
lbdpo-step -q --model m0 --output sv "${R[@]}" "${L[@]}" --steps 6 --save-every 1 || fail "--save-every on a LoRA run"
cmp -s full/adapter_model.safetensors sv/adapter_model.safetensors || fail "--save-every changed the run"
touch sv/notes.txt
lbdpo-step -q --model sv --output sv "${R[@]}" --steps 1 || fail "-m DIR -o DIR on a LoRA checkpoint"
[ -e sv/notes.txt ] && grep -q '"step": 7' sv/trainer_state.json || fail "a LoRA checkpoint replaced in place"
expect_fail lbdpo-step -q --model half --output x "${R[@]}" --steps 1 --lora-r 2 | grep -q "no --lora-r" ||
	fail "--lora-r on an adapter is not refused"

# ---- an adapter PEFT wrote continues training (and loads in every program) ----
H="$ROOT/tests/fixtures/hf" F="$ROOT/tests/fixtures/lora"
lbdpo-step -q --model "$H/gpt2" --adapter "$F/gpt2" --output pg -i train.ref --steps 2 --loss dpo "${S[@]}" ||
	fail "lbdpo-step --adapter (a PEFT adapter)"
cmp -s pg/adapter_model.safetensors "$F/gpt2/adapter_model.safetensors" && fail "training left the PEFT adapter as it was"
grep -q '"fan_in_fan_out": true' pg/adapter_config.json || fail "GPT-2's adapter lost fan_in_fan_out"
lbdpo-eval --threads 1 -m "$H/gpt2" --adapter pg -i test.ref -o /dev/null || fail "eval --adapter"
lbdpo-beta -t 1 -m "$H/gpt2" --adapter pg -i test.ref -o /dev/null || fail "beta --adapter"

# ---- lbdpo-init --merge: a plain model with the adapter's numbers ----
lbdpo-init -q --merge -m m0 --adapter c -o merged || fail "--merge"
[ -s merged/model.safetensors ] && [ -s merged/config.json ] || fail "--merge wrote no model"
scores -m merged > mg.jsonl || fail "logprob merged"
num_close ad.jsonl mg.jsonl 1e-5 || fail "the merged model scores differently from base + adapter"
lbdpo-init -q --merge -m "$H/llama_bf16" --adapter "$F/llama" -o mbf || fail "--merge on a bf16 base"
grep -q '"BF16"' <(head -c 400 mbf/model.safetensors) || fail "--merge did not keep the base's bf16"

# ---- provenance: another base, or a reference of another base ----
msg=$(expect_fail lbdpo-logprob -t 1 -m m1 --adapter c -i test.ref -o /dev/null)
echo "$msg" | grep -q "adapter trained on base model" || fail "an adapter on another base: $msg"
msg=$(expect_fail lbdpo-step -q --model m1 --adapter half --output x "${R[@]}" --steps 1)
echo "$msg" | grep -q "adapter trained on base model" || fail "resuming on another base: $msg"
lbdpo-tokenize -q --tokenizer "$D/tokenizer.json" -i "$D/data.jsonl" -o d.tok || fail "tokenize"
lbdpo-init -q -o A --vocab-from "$D/tokenizer.json" --dim 16 --layers 1 --heads 2 --max-seq 64 --seed 3 || fail "init A"
lbdpo-init -q -o B --vocab-from "$D/tokenizer.json" --dim 16 --layers 1 --heads 2 --max-seq 64 --seed 9 || fail "init B"
lbdpo-refcache -q -t 1 -m B -i d.tok -o dB.ref || fail "refcache B"
lbdpo-refcache -q -t 1 -m A -i d.tok -o dA.ref || fail "refcache A"
P=(--threads 1 --batch-size 4 --loss dpo --steps 1 -q --lora-r 2)
msg=$(expect_fail lbdpo-step -m A -o x "${P[@]}" -i dB.ref)
echo "$msg" | grep -q "records scored by reference" || fail "LoRA on A with B's reference scores: $msg"
[ ! -e x ] || fail "a checkpoint was written on refused records"
lbdpo-step -m A -o cA "${P[@]}" -i dA.ref || fail "LoRA on A with A's reference scores (B = 0: the base)"
lbdpo-refcache -q -t 1 -m A --adapter cA -i d.tok -o dAc.ref || fail "refcache --adapter"
cmp -s dA.ref dAc.ref && fail "refcache --adapter scored as the base"
lbdpo-sample -q -t 1 -m A --adapter cA -i d.tok --max-new-tokens 2 -o samp.jsonl || fail "sample --adapter"
[ -s samp.jsonl ] || fail "sample --adapter wrote nothing"
msg=$(expect_fail lbdpo-step -m A -o x "${P[@]}" -i dAc.ref)
echo "$msg" | grep -q "records scored by reference" || fail "records scored by base + adapter taken as the base's: $msg"

# ---- bad adapters and options: one line, nothing written ----
cp -r c bad && sed -i 's/"LORA"/"IA3"/' bad/adapter_config.json
expect_fail lbdpo-logprob -t 1 -m m0 --adapter bad -i test.ref -o /dev/null | grep -q "bad/adapter_config.json: peft_type IA3" ||
	fail "another peft_type"
cp -r c bad2 && sed -i 's/"q_proj",/"q_proj", "nope_proj",/' bad2/adapter_config.json
expect_fail lbdpo-eval --threads 1 -m m0 --adapter bad2 -i test.ref -o /dev/null | grep -q "nope_proj" ||
	fail "an unknown target module"
cp -r c bad3 && sed -i 's/"r": 8/"r": 4/' bad3/adapter_config.json
expect_fail lbdpo-logprob -t 1 -m m0 --adapter bad3 -i test.ref -o /dev/null | grep -q "bad3/adapter_model.safetensors: tensor .*shape" ||
	fail "a tensor of the wrong shape"
expect_fail lbdpo-logprob -t 1 -m m0 --adapter m1 -i test.ref -o /dev/null | grep -q "not an adapter directory" ||
	fail "a model given as --adapter"
expect_fail lbdpo-step -q --model m0 --output x -i train.ref --steps 1 --lora-r 2 --lora-targets c_attn "${S[@]}" |
	grep -q "'c_attn' is not a linear layer of this llama model" || fail "a GPT-2 target on llama"
expect_fail lbdpo-step -q --model m0 --output x -i train.ref --steps 1 --lora-alpha 4 "${S[@]}" | grep -q "need --lora-r" ||
	fail "--lora-alpha without --lora-r"
expect_fail lbdpo-init --merge -m m0 -o y | grep -q "not an adapter directory" || fail "--merge without an adapter"
[ ! -e x ] && [ ! -e y ] || fail "an output was written after an error"
echo "ok"

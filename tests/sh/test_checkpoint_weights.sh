#!/usr/bin/env bash
# test_checkpoint_weights.sh — a bf16 checkpoint has one policy: lbdpo-eval and
# lbdpo-beta score model.safetensors as shipped (what transformers,
# lbdpo-logprob and lbdpo-sample load), never the f32 master weights in
# optimizer.safetensors, which only a resumed lbdpo-step continues from. And
# the checkpoint's config.json is the input's, carried key for key (eos_token_id
# lists, layer_types, pad_token_id, initializer_range, rope_parameters...),
# with only torch_dtype changed when the weights are saved in another dtype.
. "$(dirname "$0")/lib.sh"
cd "$T"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# A Qwen2-style config.json as transformers writes it, with what lbdpo does not model
cat > cfg.json <<'EOF'
{
  "architectures": ["Qwen2ForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 1,
  "eos_token_id": [2, 3],
  "pad_token_id": 0,
  "hidden_act": "silu",
  "hidden_size": 16,
  "initializer_range": 0.01,
  "intermediate_size": 32,
  "layer_types": ["full_attention", "full_attention"],
  "max_position_embeddings": 64,
  "max_window_layers": 2,
  "model_type": "qwen2",
  "num_attention_heads": 2,
  "num_hidden_layers": 2,
  "num_key_value_heads": 1,
  "rms_norm_eps": 1e-06,
  "rope_parameters": {"rope_theta": 1000000.0, "rope_type": "default"},
  "rope_theta": 1000000.0,
  "sliding_window": null,
  "tie_word_embeddings": true,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.57.1",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 32
}
EOF
lbdpo-init -q --config cfg.json --seed 2 -o q || fail "lbdpo-init --config"
cp cfg.json q/config.json   # the model as a user has it: transformers' own config.json
head -c 400 q/model.safetensors | grep -q '"BF16"' || fail "not a bf16 model"
fp=$(lbdpo-init --model q --info | sed 's/.*fingerprint=//')
awk -v seed=1 -v n=16 -v ref="$fp" -f "$ROOT/tests/sh/gen_pairs.awk" | lbdpo-show --from-json -o train.ref || fail "gen pairs"
P=(--threads 1 -i train.ref --batch-size 8 --lr 1e-2 --beta-lr 1e-2 -q)
lbdpo-step -m q -o ck "${P[@]}" --steps 3 --loss lbdpo || fail "lbdpo-step bf16"
lbdpo-step -m q -o ck32 "${P[@]}" --steps 1 --loss lbdpo --save-dtype float32 || fail "lbdpo-step float32"
head -c 400 ck/optimizer.safetensors | grep -q '"policy.w"' || fail "no f32 master weights"

# ---- item: every program scores the shipped weights ----
# ckY: ck without its master copy (the optimizer state of an f32 checkpoint of
# the same shapes, which holds none). Same shipped weights, so the same scores.
cp -r ck ckY && cp ck32/optimizer.safetensors ckY/
head -c 400 ckY/optimizer.safetensors | grep -q '"policy.w"' && fail "ckY still has master weights"
for c in ck ckY; do
	lbdpo-eval --threads 1 -m $c -i train.ref --per-record $c.rec -o $c.sum || fail "lbdpo-eval $c"
	lbdpo-beta -t 1 -m $c -i train.ref | lbdpo-show --no-header > $c.beta || fail "lbdpo-beta $c"
done
cmp -s ck.rec ckY.rec || fail "lbdpo-eval scores the master weights, not model.safetensors: $(diff ck.rec ckY.rec | sed -n 2p)"
cmp -s ck.beta ckY.beta || fail "lbdpo-beta scores the master weights, not model.safetensors: $(diff ck.beta ckY.beta | sed -n 2p)"
# the master copy is not the shipped weights (else the above proves nothing)
lbdpo-init -q --export ck --save-dtype float32 -o m32 || fail "export master"
lbdpo-init -q --export ck -o pub || fail "export"
[ "$(lbdpo-init --model m32 --info)" != "$(lbdpo-init --model pub --info)" ] || fail "master weights equal the shipped ones"
# resuming continues from the master weights: 0 steps keep them bit for bit
lbdpo-step -m ck -o ck0 "${P[@]}" --steps 0 --loss lbdpo || fail "resume 0 steps"
cmp -s ck/optimizer.safetensors ck0/optimizer.safetensors || fail "a resumed run did not continue from the master weights"
lbdpo-step -m ckY -o ckY0 "${P[@]}" --steps 0 --loss lbdpo || fail "resume ckY 0 steps"
cmp -s ck/optimizer.safetensors ckY0/optimizer.safetensors && fail "no master copy, yet resumed from the master weights"

# ---- item: config.json is carried, not regenerated ----
canon() { { echo '{"lbdpo":1,"kind":"config","history":[]}'; tr -d '\n' < "$1"; echo; } |
	lbdpo-show --from-json | lbdpo-show --no-header; }
canon cfg.json > want || fail "canon cfg.json"
for d in ck ck0 pub; do
	canon $d/config.json > got.$d || fail "canon $d/config.json"
	cmp -s want got.$d || fail "$d/config.json is not the input's: $(diff want got.$d | tail -1)"
done
# float32 weights: torch_dtype says so, every other key as it was
sed 's/"torch_dtype":"bfloat16"/"torch_dtype":"float32"/' want > want32
grep -q '"torch_dtype":"float32"' want32 || fail "sed"
for d in ck32 m32; do
	canon $d/config.json > got.$d || fail "canon $d/config.json"
	cmp -s want32 got.$d || fail "$d/config.json is not the input's with torch_dtype float32: $(diff want32 got.$d | tail -1)"
done
# transformers 5's "dtype" is changed like torch_dtype
sed 's/"torch_dtype": "bfloat16"/"dtype": "bfloat16"/' cfg.json > q/config.json
lbdpo-step -m q -o ck5 "${P[@]}" --steps 1 --loss dpo --save-dtype float32 || fail "lbdpo-step dtype"
canon ck5/config.json | grep -q '"dtype":"float32"' || fail "dtype not changed: $(cat ck5/config.json)"
canon ck5/config.json | grep -q 'torch_dtype' && fail "torch_dtype added beside dtype"
# a model without a config.json of its own (llama2.c, random) gets one generated
lbdpo-init -q -o r --dim 16 --layers 1 --heads 2 --vocab 32 --seed 3 || fail "random model"
grep -q '"initializer_range": 0.02' r/config.json || fail "generated config.json"
echo ok

#!/usr/bin/env bash
# test_checkpoint_files.sh — a checkpoint's policy directory stands alone
# (tokenizer files and generation_config.json copied from the model the run
# started from), keeps the dtype the model came in (bf16 in, bf16 out, f32
# master weights in optimizer.safetensors), lbdpo-init --export writes just
# the policy; pytorch_model.bin-only directories and pairs longer than
# max_position_embeddings are refused with messages that say why (pairs
# longer than a Mistral sliding window are scored).
. "$(dirname "$0")/lib.sh"
cd "$T"
lbdpo-init -q -o m0 --dim 32 --layers 1 --heads 4 --vocab 32 --max-seq 64 --seed 3 || fail "lbdpo-init"
[ -s m0/generation_config.json ] || fail "random model lacks generation_config.json"
lbdpo-init -q --model m0 --save-dtype bfloat16 -o mb || fail "--save-dtype bfloat16"
printf '{"model":{"vocab":{"a":0}},"added_tokens":[]}\n' > mb/tokenizer.json
printf '{"chat_template":"{{ messages }}","bos_token":"<s>"}\n' > mb/tokenizer_config.json
printf '{"bos_token":"<s>"}\n' > mb/special_tokens_map.json
printf '{"bos_token_id":1,"eos_token_id":[2,3],"temperature":0.7}\n' > mb/generation_config.json
head -c 400 mb/model.safetensors | grep -q '"BF16"' || fail "bf16 model not saved as BF16"
awk -v seed=1 -v n=16 -f "$ROOT/tests/sh/gen_pairs.awk" | lbdpo-show --from-json -o train.ref || fail "gen pairs"
lbdpo-step --threads 1 --model mb --output ck -i train.ref --steps 2 --batch-size 8 --loss dpo --ignore-provenance || fail "lbdpo-step"
for f in config.json model.safetensors generation_config.json tokenizer.json tokenizer_config.json \
	special_tokens_map.json; do
	[ -s ck/$f ] || fail "checkpoint lacks $f"
done
for f in tokenizer.json tokenizer_config.json special_tokens_map.json generation_config.json; do
	cmp -s mb/$f ck/$f || fail "checkpoint's $f differs from the model's"
done
grep -q '"torch_dtype": "bfloat16"' ck/config.json || fail "checkpoint config.json not bfloat16"
head -c 400 ck/model.safetensors | grep -q '"BF16"' || fail "checkpoint policy not BF16"
head -c 400 ck/optimizer.safetensors | grep -q '"policy.w"' || fail "no f32 master weights in optimizer.safetensors"
# resuming continues from the f32 master weights, not the rounded ones
lbdpo-step --threads 1 --model ck --output ck2 -i train.ref --steps 1 --batch-size 8 --loss dpo || fail "resume"
[ -s ck2/tokenizer.json ] || fail "resumed checkpoint lacks tokenizer.json"
lbdpo-step --threads 1 --model mb --output ck32 -i train.ref --steps 1 --batch-size 8 --loss dpo --save-dtype float32 --ignore-provenance \
	|| fail "--save-dtype float32"
head -c 400 ck32/model.safetensors | grep -q '"F32"' || fail "--save-dtype float32 not F32"
head -c 400 ck32/optimizer.safetensors | grep -q '"policy.w"' && fail "f32 policy needs no master copy"

# ---- export ----
lbdpo-init -q --export ck pub || fail "--export"
for f in config.json model.safetensors generation_config.json tokenizer.json tokenizer_config.json; do
	[ -s pub/$f ] || fail "export lacks $f"
done
for f in optimizer.safetensors beta_head.safetensors trainer_state.json; do
	[ -e pub/$f ] && fail "export has $f"
done
head -c 400 pub/model.safetensors | grep -q '"BF16"' || fail "export not BF16"
lbdpo-init -q --export ck --save-dtype float32 -o pub32 || fail "--export --save-dtype float32"
f1=$(lbdpo-init --model pub32 --info | sed 's/.*fingerprint=//') f2=$(lbdpo-init --model pub --info | sed 's/.*fingerprint=//')
[ "$f1" != "$f2" ] || fail "float32 export should hold the master weights, not the bf16 ones"
expect_fail lbdpo-init --export m0 pubx

# ---- random models of a config.json's shape keep its family and RoPE ----
for f in fam_phi3 fam_llama31 fam_qwen2_yarn; do
	lbdpo-init -q --config "$ROOT/tests/fixtures/hf/$f/config.json" --seed 2 -o r_$f || fail "--config $f"
	for k in model_type rope_type max_position_embeddings; do
		a=$(grep -m1 "\"$k\"" "$ROOT/tests/fixtures/hf/$f/config.json") b=$(grep -m1 "\"$k\"" r_$f/config.json)
		[ "${a%,}" = "${b%,}" ] || fail "--config $f: $k '$a' became '$b'"
	done
done
head -c 2000 r_fam_phi3/model.safetensors | grep -qa 'self_attn.qkv_proj.weight' || fail "phi3 random model not saved with fused qkv_proj"
expect_fail lbdpo-init --config "$ROOT/tests/fixtures/hf/fam_phi3/config.json" --dim 8 -o r_bad

# ---- refusals that say why ----
mkdir pt && cp m0/config.json pt/ && : > pt/pytorch_model.bin
out=$(lbdpo-init --model pt -o x 2>&1); [ $? -eq 1 ] || fail "pytorch_model.bin: exit 1 expected"
echo "$out" | grep -q "safetensors" || fail "pytorch_model.bin error does not point to safetensors: $out"
# a pair longer than Mistral's sliding window (16) is scored; one longer
# than max_position_embeddings (64) is refused, naming the record
ids=$(seq -s, 1 17)
printf '{"lbdpo": 1, "kind": "tok", "history": []}\n{"prompt_ids": [%s], "chosen_ids": [1], "rejected_ids": [2]}\n' \
	"$ids" | lbdpo-show --from-json -o long.tok || fail "gen long pair"
out=$(lbdpo-logprob -q --model "$ROOT/tests/fixtures/hf/fam_mistral" -i long.tok 2>&1 | lbdpo-show --no-header)
echo "$out" | grep -q '"chosen_logp":-' || fail "pair longer than the window not scored: $out"
ids=$(seq 1 70 | awk '{ printf "%s%d", (NR > 1 ? "," : ""), $1 % 40 }')
printf '{"lbdpo": 1, "kind": "tok", "history": []}\n{"prompt_ids": [%s], "chosen_ids": [1], "rejected_ids": [2]}\n' \
	"$ids" | lbdpo-show --from-json -o toolong.tok || fail "gen too long pair"
out=$(lbdpo-logprob -q --model "$ROOT/tests/fixtures/hf/fam_mistral" -i toolong.tok -o /dev/null 2>&1)
[ $? -eq 1 ] || fail "pair longer than max_position_embeddings: exit 1 expected ($out)"
echo "$out" | grep -q "64 positions" || fail "length refusal does not name the limit: $out"
echo "$out" | grep -q "record 1" || fail "length refusal does not name the record: $out"
echo ok

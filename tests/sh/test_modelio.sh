#!/usr/bin/env bash
# test_modelio.sh — lbdpo-init and the model loaders: save -> load is
# bit-identical; every kind of corrupt safetensors / config.json / llama2.c
# file gives a one-line error naming the file and a nonzero exit.
. "$(dirname "$0")/lib.sh"

# err_has WANT CMD...: exit status 1, exactly one stderr line, containing
# "error:" and WANT.
err_has() {
	local want=$1 out rc
	shift
	out=$("$@" 2>&1 >/dev/null); rc=$?
	[ $rc -eq 1 ] || fail "exit $rc (want 1) from: $* ($out)"
	[ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] || fail "not one line from: $*: $out"
	case $out in *error:*"$want"*) ;; *) fail "error from $* lacks '$want': $out" ;; esac
}

# le32 N: 4 little-endian bytes
le32() { printf "$(printf '\\%03o\\%03o\\%03o\\%03o' $(($1 & 255)) $(($1 >> 8 & 255)) $(($1 >> 16 & 255)) $(($1 >> 24 & 255)))"; }
# mkst FILE HEADER DATA-FILE: a safetensors file by hand
mkst() { { le32 ${#2}; le32 0; printf '%s' "$2"; cat "$3"; } >"$1"; }
# poke FILE OFFSET BYTES(printf format)
poke() { printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }

SHAPE="--dim 16 --layers 1 --heads 2 --hidden 24 --vocab 32 --max-seq 16"

# ---- options, help, man page
lbdpo-init --version | grep -qx "lbdpo-init lbdpo [0-9.]*" || fail "--version"
lbdpo-init --help >"$T/help" || fail "--help"   # against the man page: test_man_help.sh
out=$(lbdpo-init --dim 0 -o "$T/x" 2>&1); [ $? -eq 2 ] || fail "bad --dim should exit 2: $out"
out=$(lbdpo-init --arch gpt2 --no-tie -o "$T/x" 2>&1); [ $? -eq 2 ] || fail "gpt2 --no-tie should exit 2: $out"
out=$(lbdpo-init --heads 3 --dim 16 -o "$T/x" 2>&1); [ $? -eq 2 ] || fail "heads not dividing dim should exit 2: $out"

# ---- save -> load -> save is bit-identical, for every family
for arch in "--arch llama" "--arch llama --kv-heads 1 --tie" "--arch llama --qkv-bias" "--arch gpt2"; do
	rm -rf "$T/a" "$T/b"
	lbdpo-init -q $arch $SHAPE --seed 7 --std 0.5 -o "$T/a" --info >"$T/a.info" || fail "init $arch"
	lbdpo-init -q --model "$T/a" -o "$T/b" --info >"$T/b.info" || fail "reload $arch"
	cmp -s "$T/a/model.safetensors" "$T/b/model.safetensors" || fail "$arch: model.safetensors changed through load/save"
	cmp -s "$T/a/config.json" "$T/b/config.json" || fail "$arch: config.json changed through load/save"
	cmp -s "$T/a.info" "$T/b.info" || fail "$arch: fingerprint changed: $(cat "$T/a.info" "$T/b.info")"
	ls "$T/b" | grep -q tmp && fail "temporary file left in $T/b"
done
grep -q '"model_type": "gpt2"' "$T/a/config.json" || fail "gpt2 config"
grep -q '"transformer.h.0.attn.c_attn.weight"' "$T/a/model.safetensors" || fail "gpt2 names lack the transformer. prefix"
# different seeds give different weights
# --info names the family as config.json's model_type does (Qwen3, Mistral,
# Gemma and Phi-3 compute as llama but are not "llama")
for f in fam_qwen3 fam_mistral fam_gemma2 fam_gemma3 fam_phi3 qwen2_bias llama_gqa gpt2 fam_neox; do
	want=$(sed -n 's/^ *"model_type": "\([^"]*\)".*/\1/p' "$ROOT/tests/fixtures/hf/$f/config.json")
	lbdpo-init --info --model "$ROOT/tests/fixtures/hf/$f" | grep -q "^arch=$want " || fail "--info of $f: $(lbdpo-init --info --model "$ROOT/tests/fixtures/hf/$f"), want arch=$want"
done
lbdpo-init -q $SHAPE --seed 8 --info >"$T/s8" && lbdpo-init -q $SHAPE --seed 9 --info >"$T/s9" || fail "seeds"
cmp -s "$T/s8" "$T/s9" && fail "--seed has no effect"

# ---- a good llama directory to corrupt
lbdpo-init -q $SHAPE --std 0.1 -o "$T/good" || fail "init good"
ST="$T/good/model.safetensors"
size=$(stat -c %s "$ST")
bad() { rm -rf "$T/bad"; cp -r "$T/good" "$T/bad"; }

bad; head -c $((size - 1)) "$ST" >"$T/bad/model.safetensors"
err_has "outside the data section" lbdpo-init --model "$T/bad" --info
bad; head -c 5 "$ST" >"$T/bad/model.safetensors"
err_has "too short" lbdpo-init --model "$T/bad" --info
bad; poke "$T/bad/model.safetensors" 0 '\377\377\377\377\377\377\377\177'
err_has "header length" lbdpo-init --model "$T/bad" --info
bad; poke "$T/bad/model.safetensors" 9 'X'
err_has "bad JSON" lbdpo-init --model "$T/bad" --info
# NaN in the last element of the last tensor
bad; poke "$T/bad/model.safetensors" $((size - 4)) '\000\000\300\177'
err_has "not finite" lbdpo-init --model "$T/bad" --info
bad; poke "$T/bad/model.safetensors" $((size - 4)) '\000\000\200\377'
err_has "not finite" lbdpo-init --model "$T/bad" --info
# hand-made headers
head -c 64 /dev/zero >"$T/z64"
bad; mkst "$T/bad/model.safetensors" '{"model.norm.weight":{"dtype":"F32","shape":[16],"data_offsets":[0,65]}}' "$T/z64"
err_has "outside the data section" lbdpo-init --model "$T/bad" --info
bad; mkst "$T/bad/model.safetensors" '{"model.norm.weight":{"dtype":"F16","shape":[16],"data_offsets":[0,64]}}' "$T/z64"
err_has "need 32" lbdpo-init --model "$T/bad" --info
bad; mkst "$T/bad/model.safetensors" '{"a":{"dtype":"F32","shape":[8],"data_offsets":[0,32]},"b":{"dtype":"F32","shape":[8],"data_offsets":[16,48]}}' "$T/z64"
err_has "overlap" lbdpo-init --model "$T/bad" --info
# a valid file that lacks most weights (I32 reading is refused in test_safetensors)
bad; mkst "$T/bad/model.safetensors" '{"model.norm.weight":{"dtype":"I32","shape":[16],"data_offsets":[0,64]}}' "$T/z64"
err_has "weight files hold only" lbdpo-init --model "$T/bad" --info
# shape mismatch: the weights of one shape with the config of another
lbdpo-init -q --dim 16 --layers 1 --heads 2 --hidden 20 --vocab 32 --max-seq 16 -o "$T/big" || fail "init big"
bad; cp "$T/big/config.json" "$T/bad/config.json"
err_has "config.json implies" lbdpo-init --model "$T/bad" --info
# a config asking for far more weights than the files hold fails before allocating them
bad; sed -i 's/"vocab_size": 32/"vocab_size": 16000000/' "$T/bad/config.json"
err_has "weight files hold only" lbdpo-init --model "$T/bad" --info
# tied <-> untied: a stored lm_head is ignored when tied (as transformers does); a missing one is an error
bad; sed -i 's/"tie_word_embeddings": false/"tie_word_embeddings": true/' "$T/bad/config.json"
lbdpo-init -q --model "$T/bad" --info >/dev/null || fail "tied config with a stored lm_head should load"
lbdpo-init -q $SHAPE --tie -o "$T/tied" || fail "init tied"
sed -i 's/"tie_word_embeddings": true/"tie_word_embeddings": false/' "$T/tied/config.json"
err_has "lm_head.weight' not found" lbdpo-init --model "$T/tied" --info
# q/k/v biases the config does not describe
lbdpo-init -q $SHAPE --qkv-bias -o "$T/qwen" || fail "init qwen"
sed -i 's/"qwen2"/"llama"/; s/Qwen2ForCausalLM/LlamaForCausalLM/' "$T/qwen/config.json"
err_has "unexpected tensor" lbdpo-init --model "$T/qwen" --info
# config.json problems
bad; sed -i 's/"rope_scaling": null/"rope_scaling": {"rope_type": "llama3", "factor": 8.0}/' "$T/bad/config.json"
err_has "rope_scaling" lbdpo-init --model "$T/bad" --info
bad; sed -i 's/"num_key_value_heads": 2/"num_key_value_heads": 3/' "$T/bad/config.json"
err_has "kv heads" lbdpo-init --model "$T/bad" --info
bad; printf '{"model_type": "llama",' >"$T/bad/config.json"
err_has "bad JSON" lbdpo-init --model "$T/bad" --info
bad; rm "$T/bad/config.json"
err_has "no config.json" lbdpo-init --model "$T/bad" --info
bad; rm "$T/bad/model.safetensors"
err_has "no model.safetensors" lbdpo-init --model "$T/bad" --info
# a sharded index may only name files beside it
bad; mv "$T/bad/model.safetensors" "$T/bad/part1.safetensors"
printf '{"weight_map": {"model.norm.weight": "../good/model.safetensors"}}' >"$T/bad/model.safetensors.index.json"
err_has "bad shard file name" lbdpo-init --model "$T/bad" --info
printf '{"weight_map": {"a": "part1.safetensors"}}' >"$T/bad/model.safetensors.index.json"
lbdpo-init -q --model "$T/bad" --info >/dev/null || fail "index naming a local shard should load"
err_has "give the model directory" lbdpo-init --model "$T/good/model.safetensors" --info
# a failed conversion leaves no output behind
rm -rf "$T/out"; bad; poke "$T/bad/model.safetensors" 9 'X'
lbdpo-init -q --model "$T/bad" -o "$T/out" 2>/dev/null && fail "corrupt input converted"
[ -e "$T/out/model.safetensors" ] && fail "output written from a corrupt input"

# ---- llama2.c .bin: a tiny zero model by hand (dim 8, hidden 16, 1 layer,
# 2 heads, 2 kv heads, vocab 10, seq_len 4): 760 floats after the header.
mkbin() { { for v in "$@"; do le32 $v; done; } >"$T/m.bin"; }
mkbin 8 16 1 2 2 10 4; head -c $((760 * 4)) /dev/zero >>"$T/m.bin"
lbdpo-init -q --model "$T/m.bin" --info | grep -q "dim=8 hidden=16 layers=1 heads=2 kv_heads=2 head_dim=4 vocab=10 max_seq=4 tied=1" ||
	fail "tiny llama2.c model"
mkbin 8 16 1 2 2 $(( (1 << 32) - 10 )) 4; head -c $((840 * 4)) /dev/zero >>"$T/m.bin"   # vocab -10: separate classifier
lbdpo-init -q --model "$T/m.bin" --info | grep -q "tied=0" || fail "negative vocab = separate classifier"
mkbin 8 16 1 2 2 10 4; head -c $((760 * 4 - 1)) /dev/zero >>"$T/m.bin"
err_has "truncated" lbdpo-init --model "$T/m.bin" --info
mkbin 8 16 1 2 2 10 4; head -c $((761 * 4)) /dev/zero >>"$T/m.bin"
err_has "trailing bytes" lbdpo-init --model "$T/m.bin" --info
mkbin 2147483647 16 1 2 2 10 4
err_has "dim" lbdpo-init --model "$T/m.bin" --info
mkbin 8 16 1 2 3 10 4; head -c $((760 * 4)) /dev/zero >>"$T/m.bin"
err_has "heads" lbdpo-init --model "$T/m.bin" --info
printf 'abc' >"$T/m.bin"
err_has "too short" lbdpo-init --model "$T/m.bin" --info
mkbin 8 16 1 2 2 10 4; head -c $((760 * 4)) /dev/zero >>"$T/m.bin"; poke "$T/m.bin" $((28 + 4 * 100)) '\000\000\300\177'
err_has "not finite" lbdpo-init --model "$T/m.bin" --info
err_has "No such file" lbdpo-init --model "$T/nonexistent" --info

# ---- the real stories260K (llama2.c) converted to HF and back
if [ -n "${LBDPO_SHARED:-}" ] && [ -f "$LBDPO_SHARED/assets/stories260K/stories260K.bin" ]; then
	B="$LBDPO_SHARED/assets/stories260K/stories260K.bin"
	lbdpo-init -q --model "$B" -o "$T/s260" --info >"$T/s1" || fail "convert stories260K"
	grep -q "dim=64 hidden=172 layers=5 heads=8 kv_heads=4 head_dim=8 vocab=512 max_seq=512 tied=1" "$T/s1" ||
		fail "stories260K header: $(cat "$T/s1")"
	lbdpo-init -q --model "$T/s260" --info >"$T/s2" || fail "reload converted stories260K"
	cmp -s "$T/s1" "$T/s2" || fail "converted stories260K differs after reload"
	cp "$B" "$T/s.bin"; truncate -s -4 "$T/s.bin"
	err_has "truncated" lbdpo-init --model "$T/s.bin" --info
else
	echo "note: ../shared absent, stories260K conversion not tested"
fi

# ---- --vocab-from: GPT-2's tokenizer.json has 50257 tokens, <|endoftext|> = 50256
if [ -n "${LBDPO_SHARED:-}" ] && [ -f "$LBDPO_SHARED/assets/gpt2/tokenizer.json" ]; then
	J="$LBDPO_SHARED/assets/gpt2/tokenizer.json"
	lbdpo-init -q --arch gpt2 --dim 8 --layers 1 --heads 2 --max-seq 8 --vocab-from "$J" -o "$T/g" --info >"$T/g.info" ||
		fail "--vocab-from"
	grep -q "vocab=50257" "$T/g.info" || fail "vocab from tokenizer.json: $(cat "$T/g.info")"
	grep -q '"eos_token_id": 50256' "$T/g/config.json" || fail "eos from tokenizer.json"
	cmp -s "$J" "$T/g/tokenizer.json" || fail "tokenizer.json not copied"
	out=$(lbdpo-init --arch gpt2 --vocab 100 --vocab-from "$J" -o "$T/g2" 2>&1); [ $? -eq 2 ] || fail "--vocab below the tokenizer's: $out"
	printf '{"model": {"vocab": 5}}' >"$T/badtok.json"
	err_has "no model.vocab" lbdpo-init --vocab-from "$T/badtok.json" -o "$T/g3"
fi
echo ok

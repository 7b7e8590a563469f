#!/usr/bin/env bash
# test_store16.sh — frozen bf16 weights stay 16-bit in memory (lbdpo(7)
# DEVICES AND PRECISION): through the programs, a bf16 model directory and
# the same values saved as f32 (f32 storage, as before) give the same bytes:
# lbdpo-logprob's records, lbdpo-refcache's, lbdpo-sample's samples, a
# LoRA lbdpo-step run on refcache records (the provenance check accepts the
# 16-bit base's records, refuses another base's), its adapter and moments,
# lbdpo-init --merge in the base's dtype, --info's fingerprint, --device
# cuda on the emulator; and
# lbdpo-init --config --save-dtype bfloat16 writes main's file at ~2 bytes a
# parameter of peak memory.
. "$(dirname "$0")/lib.sh"
cd "$T"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
D="$ROOT/tests/fixtures/demo_tok"
lbdpo-tokenize -q --tokenizer "$D/tokenizer.json" -i "$D/data.jsonl" -o d.tok || fail "tokenize"
I=(--vocab-from "$D/tokenizer.json" --dim 32 --layers 2 --heads 4 --max-seq 64 --std 0.2)
lbdpo-init -q -o mb "${I[@]}" --seed 3 --no-tie --save-dtype bfloat16 || fail "init mb"
lbdpo-init -q -m mb -o mf --save-dtype float32 || fail "mb as f32"
lbdpo-init -q -o ob "${I[@]}" --seed 4 --no-tie --save-dtype bfloat16 || fail "init ob (another base)"
fb=$(lbdpo-init -m mb --info | sed -n 's/.*fingerprint=//p') ff=$(lbdpo-init -m mf --info | sed -n 's/.*fingerprint=//p')
[ -n "$fb" ] && [ "$fb" = "$ff" ] || fail "fingerprints differ: bf16 $fb, f32 $ff"

body() { lbdpo-show --no-header -i "$1"; }
lbdpo-logprob -q -t 1 -m mb -i d.tok -o lb.rec || fail "logprob mb"
lbdpo-logprob -q -t 1 -m mf -i d.tok -o lf.rec || fail "logprob mf"
[ "$(body lb.rec)" = "$(body lf.rec)" ] || fail "lbdpo-logprob: 16-bit and f32 storage score differently"
lbdpo-refcache -q -t 1 -m mb -i d.tok -o rb.ref || fail "refcache mb"
lbdpo-refcache -q -t 1 -m mf -i d.tok -o rf.ref || fail "refcache mf"
lbdpo-refcache -q -t 1 -m ob -i d.tok -o ro.ref || fail "refcache ob"
[ "$(body rb.ref)" = "$(body rf.ref)" ] || fail "lbdpo-refcache: records differ"
lbdpo-sample -q -t 1 -m mb -i d.tok --max-new-tokens 4 --seed 7 -o sb.jsonl || fail "sample mb"
lbdpo-sample -q -t 1 -m mf -i d.tok --max-new-tokens 4 --seed 7 -o sf.jsonl || fail "sample mf"
[ -s sb.jsonl ] && cmp -s sb.jsonl sf.jsonl || fail "lbdpo-sample: samples differ"

# --device cuda (the CPU emulator, when built): the 16-bit host copy is
# widened on upload; the device computes on f32 weights as before
E="${LBDPO_TESTBIN:-$ROOT/build/rel/tests}/../emu/bin"
if [ -x "$E/lbdpo-logprob" ]; then
	"$E/lbdpo-logprob" -q -t 1 --device cuda -m mb -i d.tok -o cb.rec || fail "cuda logprob mb"
	"$E/lbdpo-logprob" -q -t 1 --device cuda -m mf -i d.tok -o cf.rec || fail "cuda logprob mf"
	[ "$(body cb.rec)" = "$(body cf.rec)" ] || fail "--device cuda: 16-bit and f32 storage score differently"
fi

# LoRA on the 16-bit base: its own reference records pass the provenance
# check, another base's are refused; the run is the f32 storage's bit for bit
P=(--threads 1 --batch-size 4 --loss dpo --steps 3 -q --lora-r 4 --lr 1e-2 --gradient-checkpointing)
lbdpo-step -m mb -o cb "${P[@]}" -i rb.ref || fail "LoRA on the bf16 base"
lbdpo-step -m mf -o cf "${P[@]}" -i rf.ref || fail "LoRA on the f32 base"
for f in adapter_model.safetensors optimizer.safetensors beta_head.safetensors; do
	cmp -s cb/$f cf/$f || fail "LoRA steps: $f differs between 16-bit and f32 storage"
done
msg=$(expect_fail lbdpo-step -m mb -o x "${P[@]}" -i ro.ref)
echo "$msg" | grep -q "records scored by reference" || fail "another base's records on the 16-bit base: $msg"
[ ! -e x ] || fail "a checkpoint was written on refused records"

# merge: in the base's dtype, as the f32 merge saved in bf16
lbdpo-init -q --merge -m mb --adapter cb -o merged_b || fail "merge on bf16"
lbdpo-init -q --merge -m mf --adapter cf --save-dtype bfloat16 -o merged_f || fail "merge on f32"
cmp -s merged_b/model.safetensors merged_f/model.safetensors || fail "merged weights differ"
grep -q '"torch_dtype": "bfloat16"' merged_b/config.json || fail "the merge is not saved as bfloat16"

# a random bf16 model made without an f32 copy: 4 layers of dim 256, vocab 8192
# (about 7M parameters: 14 MB in bf16, 28 MB in f32)
cat > cfg.json <<'EOF'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256, "intermediate_size": 768,
 "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 8192,
 "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "tie_word_embeddings": false}
EOF
rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
if [ -x /usr/bin/time ]; then
	k16=$(rss lbdpo-init -q --config cfg.json --save-dtype bfloat16 -o r16) || fail "random bf16"
	k32=$(rss lbdpo-init -q --config cfg.json --save-dtype float32 -o r32) || fail "random f32"
	echo "lbdpo-init --config: peak RSS $k16 kB (bfloat16), $k32 kB (float32)"
	# the f32 one holds 28 MB of weights, the bf16 one 14 MB: at least 10 MB less
	[ $((k32 - k16)) -ge 10000 ] || fail "a bf16 random model took $k16 kB, the f32 one $k32 kB"
	lbdpo-init -q -m r32 --save-dtype bfloat16 -o r32b || fail "round r32"
	cmp -s r16/model.safetensors r32b/model.safetensors || fail "random bf16 model differs from the f32 one rounded"
fi
echo "ok"

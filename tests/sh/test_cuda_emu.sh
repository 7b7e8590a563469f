#!/usr/bin/env bash
# test_cuda_emu.sh — the real programs with `--device cuda` on the CUDA
# backend (libcore/nn/backend_cuda.c + libcore/nn/cuda kernels) compiled against the
# CPU emulator of tests/gpu/emu (build/*/emu/bin), against `--device cpu`:
# lbdpo-logprob on random and fixture models of every family, 3 lbdpo-step
# steps of dpo and lbdpo (metrics and every checkpoint tensor), resume across
# devices both ways, lbdpo-refcache, -beta, -eval, greedy lbdpo-sample,
# --loss reward and lbdpo-reward; the
# device recorded in headers and summary lines; --device errors.
# The emulator keeps device memory apart from host memory and aborts on a
# host pointer handed to a kernel, so a missing upload or download fails here.
# What this cannot check: GPU code generation and GPU math rounding.
# With LBDPO_CUDA_BIN=DIR (tests/sh/test_gpu.sh on a machine with a GPU) the
# same comparisons run the programs linked with the real CUDA objects.
. "$(dirname "$0")/lib.sh"
E="${LBDPO_CUDA_BIN:-${LBDPO_TESTBIN:-$ROOT/build/rel/tests}/../emu/bin}"
D='cuda:0 (CPU emulator' # the device as headers name it
[ -n "${LBDPO_CUDA_BIN:-}" ] && D='cuda:0 ('
if [ ! -x "$E/lbdpo-step" ]; then
	[ "${SANITIZE:-}" = 1 ] && { echo "skipped: the emulator is not built under SANITIZE=1 (coroutine stacks)"; exit 77; }
	case "${LBDPO_TESTBIN:-}" in */build/cuda-*)
		echo "skipped: a CUDA=1 build (the plain build links the emulated programs)"; exit 77;; esac
	fail "$E/lbdpo-step not built"
fi
cd "$T"
F="$ROOT/tests/fixtures"

# numbers of two JSON(L) files side by side: same count, each within
# 1e-5·max(|a|, |b|, 1) (relative, with a unit floor for values that are
# differences of larger fp32 numbers); prints the worst.
nums() { grep -o -- '-\?[0-9][0-9]*\(\.[0-9]*\)\?\([eE][-+]\?[0-9]*\)\?' "$1"; }
close() { # label a b [tolerance, default 1e-5]
	local na nb
	na=$(nums "$2" | wc -l) nb=$(nums "$3" | wc -l)
	[ "$na" = "$nb" ] && [ "$na" -gt 0 ] || fail "$1: $na vs $nb numbers"
	paste <(nums "$2") <(nums "$3") | awk -v what="$1" -v tol="${4:-1e-5}" '
		{ d = $1 - $2; if (d < 0) d = -d; m = $1 < 0 ? -$1 : $1; b = $2 < 0 ? -$2 : $2; if (b > m) m = b; if (m < 1) m = 1
		  r = d / m; if (r > mx) { mx = r; at = $1 " vs " $2 } n++ }
		END { printf "%-44s %6d numbers, max rel %.1e%s\n", what, n, mx, (mx > 0 ? " (" at ")" : ""); exit (mx > tol) }' ||
		fail "$1: cpu and emulated cuda differ"
}
show() { lbdpo-show --no-header --f32 <"$1"; }
# the float32 data of a safetensors file, one number a line (header compared
# byte for byte: same names, shapes, dtypes, offsets)
st_hdr() { local n; n=$(od -An -tu8 -N8 "$1" | tr -d ' '); head -c $((8 + n)) "$1"; }
st_data() { local n; n=$(od -An -tu8 -N8 "$1" | tr -d ' '); od -An -v -tf4 -j $((8 + n)) "$1" | tr -s ' ' '\n' | grep -v '^$'; }
# checkpoints: every tensor within 1e-5·max(|w|,1), except AdamW sign flips
# (a near-zero gradient of the other sign moves a weight by up to 2·lr per
# step; fp32 noise, not an error): at most 0.1% of the values, each under
# 2·lr·steps (or at most the count given as a 6th argument)
ck_close() { # label dir-a dir-b lr steps [flips]
	local f
	for f in model optimizer beta_head; do
		cmp -s <(st_hdr "$2/$f.safetensors") <(st_hdr "$3/$f.safetensors") || fail "$1: $f.safetensors headers differ"
		paste <(st_data "$2/$f.safetensors") <(st_data "$3/$f.safetensors") |
			awk -v what="$1 $f" -v maxf="${6:-}" -v lim="$(awk -v l="$4" -v s="$5" 'BEGIN { print 2 * l * s }')" '
			{ d = $1 - $2; if (d < 0) d = -d; m = $1 < 0 ? -$1 : $1; if (m < 1) m = 1
			  if (d / m > 1e-5) { flips++; if (d > lim) far++ } if (d / m > mx) mx = d / m; n++ }
			END { printf "%-44s %6d values, max rel %.1e, %d sign flips\n", what, n, mx, flips
			      exit !(n > 0 && far == 0 && flips <= (maxf != "" ? maxf : n / 1000)) }' || fail "$1: $f tensors differ"
	done
	grep -q '"step": '"$5"',' "$3/trainer_state.json" || fail "$1: step count"
}

awk -v seed=1 -v n=16 -f "$ROOT/tests/sh/gen_pairs.awk" | lbdpo-show --from-json -o train.ref || fail "gen train"
awk -v seed=2 -v n=8 -f "$ROOT/tests/sh/gen_pairs.awk" | lbdpo-show --from-json -o test.ref || fail "gen test"
lbdpo-init -q -o gqa --dim 32 --layers 2 --heads 4 --kv-heads 2 --vocab 32 --max-seq 64 --seed 3 || fail "init gqa"
lbdpo-init -q -o g2 --arch gpt2 --dim 32 --layers 2 --heads 2 --vocab 32 --max-seq 64 --seed 4 || fail "init gpt2"
lbdpo-init -q -o hd64 --dim 64 --layers 1 --heads 2 --kv-heads 1 --head-dim 64 --vocab 32 --seed 5 || fail "init hd64"

# ---- lbdpo-logprob: packed batches and one pair per forward, per token ----
# (Qwen3, GPT-NeoX and Gemma 2/3 too: the families' own operations; the
# _swa fixtures' windows of 6 are shorter than these pairs)
for m in gqa g2 hd64 "$F/hf/qwen2_bias" "$F/hf/fam_phi3" "$F/hf/fam_qwen2_yarn" "$F/hf/fam_llama31" "$F/hf/gpt2" \
	"$F/hf/fam_qwen3" "$F/hf/fam_neox" "$F/hf/fam_neox_seq" "$F/hf/fam_gemma2_swa" "$F/hf/fam_gemma3_swa"; do
	for bt in 4096 0; do
		lbdpo-logprob -q --threads 1 -m "$m" -b $bt --per-token --device cpu -i train.ref -o c.sc || fail "logprob cpu $m"
		"$E/lbdpo-logprob" -q -m "$m" -b $bt --per-token --device cuda -i train.ref -o e.sc || fail "logprob emu $m"
		show c.sc >c.jsonl && show e.sc >e.jsonl
		close "logprob $(basename "$m") -b $bt" c.jsonl e.jsonl
	done
done
# the device in the header's history and in the summary line
lbdpo-show --header-only <e.sc | grep -qF "\"device\":\"$D" || fail "no cuda device in the history"
lbdpo-show --header-only <c.sc | grep -q '"device":"cpu"' || fail "no cpu device in the history"
"$E/lbdpo-logprob" -m gqa --device cuda:0 -i train.ref 2>&1 >/dev/null | grep -qF "tokens/s) on $D" ||
	fail "summary line lacks the device"
# default: cpu in a build without CUDA; the emulated build "has a GPU"
lbdpo-logprob -m gqa -i train.ref 2>&1 >/dev/null | grep -q 'tokens/s) on cpu$' || fail "default device of a CPU build"
"$E/lbdpo-logprob" -m gqa -i train.ref 2>&1 >/dev/null | grep -q ' on cuda:0 ' || fail "default device with a GPU"
# --tf32: TF32 products on the CUDA backend, named in the device string (the
# emulator itself computes fp32); the CPU backend ignores it: same scores
"$E/lbdpo-logprob" -m gqa --device cuda --tf32 -i train.ref -o t.sc 2>t.err || fail "logprob --tf32"
grep -q 'tokens/s) on cuda:0 (.*) tf32$' t.err || fail "summary line lacks tf32: $(cat t.err)"
lbdpo-show --header-only <t.sc | grep -q '"device":"cuda:0 ([^"]*) tf32"' || fail "history lacks tf32"
lbdpo-logprob -m gqa --tf32 -i train.ref -o tc.sc 2>t.err || fail "cpu --tf32"
grep -q 'tokens/s) on cpu$' t.err || fail "cpu --tf32 summary: $(cat t.err)"
lbdpo-logprob -m gqa -i train.ref -o nc.sc 2>/dev/null || fail "cpu"
cmp -s <(lbdpo-show --no-header <tc.sc) <(lbdpo-show --no-header <nc.sc) || fail "--tf32 changed the CPU's scores"

# ---- lbdpo-step: 3 steps of dpo and lbdpo ----
S=(--threads 1 --batch-size 4 --lr 3e-3 --beta-lr 1e-2 --beta 0.5 -i train.ref --ppl-from policy --ignore-provenance) # PPL gradient path; synthetic reference scores
for loss in dpo lbdpo; do
	rm -f mc.jsonl me.jsonl # --metrics appends
	lbdpo-step -q --model gqa --output c_$loss --steps 3 --loss $loss "${S[@]}" --metrics mc.jsonl --device cpu || fail "step cpu $loss"
	"$E/lbdpo-step" -q --model gqa --output e_$loss --steps 3 --loss $loss "${S[@]}" --metrics me.jsonl --device cuda ||
		fail "step emu $loss"
	sed 's/, "tokens_per_s": [^}]*//' mc.jsonl >a.jsonl && sed 's/, "tokens_per_s": [^}]*//' me.jsonl >b.jsonl
	close "step $loss metrics (loss, grad_norm, ...)" a.jsonl b.jsonl
	ck_close "step $loss checkpoint" c_$loss e_$loss 3e-3 3
	grep -qF "\"device\": \"$D" e_$loss/trainer_state.json || fail "checkpoint lacks the device"
done
# gpt2 (layernorm, gelu, biases, tied head)
lbdpo-step -q --model g2 --output c_g2 --steps 3 --loss lbdpo "${S[@]}" --device cpu || fail "step cpu g2"
"$E/lbdpo-step" -q --model g2 --output e_g2 --steps 3 --loss lbdpo "${S[@]}" --device cuda || fail "step emu g2"
ck_close "step gpt2 lbdpo checkpoint" c_g2 e_g2 3e-3 3

# the other families, forward and backward: Qwen3 (per-head q/k norm),
# GPT-NeoX (partial rotary, exact GELU, parallel residual), Gemma 2 (soft-caps,
# GeGLU, 1 + w norms, alternating windows), Gemma 3 (its per-head norms, local
# RoPE base)
for f in fam_qwen3 fam_neox fam_gemma2_swa fam_gemma3_swa; do
	rm -f mc.jsonl me.jsonl # --metrics appends
	lbdpo-step -q --model "$F/hf/$f" --output c_$f --steps 3 --loss lbdpo "${S[@]}" --metrics mc.jsonl --device cpu ||
		fail "step cpu $f"
	"$E/lbdpo-step" -q --model "$F/hf/$f" --output e_$f --steps 3 --loss lbdpo "${S[@]}" --metrics me.jsonl \
		--device cuda 2>err.txt || fail "step emu $f: $(cat err.txt)"
	sed 's/, "tokens_per_s": [^}]*//' mc.jsonl >a.jsonl && sed 's/, "tokens_per_s": [^}]*//' me.jsonl >b.jsonl
	# step 1 (one forward and backward from the same weights) within 1e-5;
	# steps 2-3 start from weights after Adam, which moves every weight by
	# ±lr whatever the gradient's size, so fp32 noise in step 1 reaches them
	# amplified: Gemma 3's step-2 grad_norm (88.75, 3.4× step 1's) differs by
	# 1.0e-5 where step 1's differs by 6e-7 (measured); those steps get 5e-5
	sed -n 1p a.jsonl >a1.jsonl && sed -n 1p b.jsonl >b1.jsonl
	close "step $f metrics, step 1" a1.jsonl b1.jsonl
	close "step $f metrics, steps 1-3" a.jsonl b.jsonl 5e-5
	# GPT-NeoX: the key bias's unrotated dims (2 layers × 2 heads × 4 of
	# head_dim 8) have a gradient of exactly 0 in exact math (q·b_k is the
	# same for every key, and the softmax ignores a shift): fp32 noise there
	# flips Adam's first step, so those 16 flips are allowed
	ck_close "step $f checkpoint" c_$f e_$f 3e-3 3 $([ $f = fam_neox ] && echo 16)
done

# ---- resume across devices: 3 + 3 steps vs 6 on the CPU ----
R=("${S[@]}" --loss lbdpo --steps 3 --total-steps 6 --seed 5)
lbdpo-step -q --model gqa --output full "${S[@]}" --loss lbdpo --steps 6 --seed 5 --device cpu || fail "6 steps"
lbdpo-step -q --model gqa --output half_c "${R[@]}" --device cpu || fail "3 steps cpu"
"$E/lbdpo-step" -q --model half_c --output rest_e "${R[@]}" --device cuda || fail "resume cpu -> cuda"
ck_close "resume cpu -> emulated cuda" full rest_e 3e-3 6
"$E/lbdpo-step" -q --model gqa --output half_e "${R[@]}" --device cuda || fail "3 steps emu"
lbdpo-step -q --model half_e --output rest_c "${R[@]}" --device cpu || fail "resume cuda -> cpu"
ck_close "resume emulated cuda -> cpu" full rest_c 3e-3 6

# ---- lbdpo-refcache, lbdpo-beta, lbdpo-eval ----
awk -v seed=11 -v n=12 -v V=32 -v sha=1111111111111111111111111111111111111111111111111111111111111111 -f "$ROOT/tests/sh/pairs_gen.awk" | lbdpo-show --from-json -o p.tok ||
	fail "gen tokens"
lbdpo-refcache -q --model gqa -i p.tok -o c.ref --device cpu || fail "refcache cpu"
"$E/lbdpo-refcache" -q --model gqa -i p.tok -o e.ref --device cuda || fail "refcache emu"
show c.ref >a.jsonl && show e.ref >b.jsonl
close "refcache" a.jsonl b.jsonl
lbdpo-beta -m c_lbdpo -i test.ref -o c.beta --device cpu || fail "beta cpu"
"$E/lbdpo-beta" -m c_lbdpo -i test.ref -o e.beta --device cuda || fail "beta emu"
show c.beta >a.jsonl && show e.beta >b.jsonl
close "beta" a.jsonl b.jsonl
lbdpo-eval --threads 1 -m c_lbdpo -i test.ref -o a.json --device cpu || fail "eval cpu"
"$E/lbdpo-eval" -m c_lbdpo -i test.ref -o b.json --device cuda || fail "eval emu"
grep -qF "\"device\": \"$D" b.json || fail "eval summary lacks the device"
grep -v '"device"\|"checkpoint"' a.json >a2.json && grep -v '"device"\|"checkpoint"' b.json >b2.json
close "eval summary" a2.json b2.json

# ---- reward models: 3 steps of --loss reward (score head through the model), lbdpo-reward ----
rm -f mc.jsonl me.jsonl
lbdpo-step -q --model gqa --output c_rm --steps 3 --loss reward "${S[@]}" --metrics mc.jsonl --device cpu || fail "step cpu reward"
"$E/lbdpo-step" -q --model gqa --output e_rm --steps 3 --loss reward "${S[@]}" --metrics me.jsonl --device cuda ||
	fail "step emu reward"
sed 's/, "tokens_per_s": [^}]*//' mc.jsonl >a.jsonl && sed 's/, "tokens_per_s": [^}]*//' me.jsonl >b.jsonl
close "step reward metrics" a.jsonl b.jsonl
ck_close "step reward checkpoint" c_rm e_rm 3e-3 3
lbdpo-reward -q -m c_rm -i test.ref -o c.rw --device cpu || fail "reward cpu"
"$E/lbdpo-reward" -q -m c_rm -i test.ref -o e.rw --device cuda || fail "reward emu"
show c.rw >a.jsonl && show e.rw >b.jsonl
close "lbdpo-reward" a.jsonl b.jsonl

# ---- greedy decoding through the KV cache: the same tokens ----
SM="$F/sample/model"
{ echo '{"lbdpo":1,"kind":"pairs","history":[]}'
  awk '{ match($0, /"prompt_ids": \[[0-9, ]*\]/); p = substr($0, RSTART, RLENGTH); gsub(/ /, "", p)
         printf "{\"id\":\"g%d\",\"group\":\"x\",%s}\n", NR, p }' "$F/sample/greedy.jsonl"; } >p.jsonl
lbdpo-show --from-json -i p.jsonl -o p.rec || fail "prompts"
lbdpo-sample -m "$SM" --greedy --max-new-tokens 12 -i p.rec -o c.gen --device cpu || fail "sample cpu"
"$E/lbdpo-sample" -m "$SM" --greedy --max-new-tokens 12 -i p.rec -o e.gen --device cuda || fail "sample emu"
cmp -s c.gen e.gen || fail "greedy samples differ between cpu and emulated cuda"
echo "greedy samples: $(wc -l <c.gen) identical"
# Gemma 2 with a window of 6: decoding past the window (attention_ext_decode)
printf '{"lbdpo":1,"kind":"pairs","history":[]}\n{"id":"w","group":"x","prompt_ids":[1,5,9,3,7,11,4,8,2]}\n' |
	lbdpo-show --from-json -o w.rec || fail "window prompt"
lbdpo-sample -m "$F/hf/fam_gemma2_swa" --greedy --max-new-tokens 8 -i w.rec -o c.gen --device cpu || fail "sample cpu gemma"
"$E/lbdpo-sample" -m "$F/hf/fam_gemma2_swa" --greedy --max-new-tokens 8 -i w.rec -o e.gen --device cuda ||
	fail "sample emu gemma"
cmp -s c.gen e.gen || fail "gemma greedy samples differ between cpu and emulated cuda"

# ---- --device errors ----
msg=$(lbdpo-logprob -m gqa --device cuda -i train.ref 2>&1 >/dev/null); rc=$?
[ $rc = 1 ] && grep -qx 'lbdpo-logprob: error: --device cuda: this build has no CUDA backend (build with make CUDA=1)' <<<"$msg" ||
	fail "CPU build with --device cuda: exit $rc: $msg"
lbdpo-step --model gqa --output x -i train.ref --steps 1 --device gpu >/dev/null 2>&1; [ $? = 2 ] || fail "--device gpu: not a usage error"
msg=$("$E/lbdpo-logprob" -m gqa --device cuda:1024 -i train.ref 2>&1 >/dev/null) && fail "cuda:1024 accepted"
grep -q 'error: --device cuda:1024: device 1024 does not exist' <<<"$msg" || fail "cuda:1024: $msg"
msg=$("$E/lbdpo-logprob" -m gqa --device cuda:x -i train.ref 2>&1 >/dev/null) && fail "cuda:x accepted"
grep -q 'error: --device cuda:x: expected cuda:N' <<<"$msg" || fail "cuda:x: $msg"
echo ok

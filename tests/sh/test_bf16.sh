#!/usr/bin/env bash
# test_bf16.sh — --dtype bf16 (and --bf16) in the programs: the Qwen-shaped
# fixture's per-sequence log-probs in bf16 within the bound of
# tests/unit/test_bf16.c (|Δ| ≤ 40·2⁻⁸·√n nats) of fp32, the header names
# "cpu bf16", lbdpo-step trains in bf16; without bf16 hardware (or with
# oneDNN capped below it by DNNL_MAX_CPU_ISA) --dtype bf16 is a one-line
# error and --dtype auto a one-line warning and fp32, identical to the
# default; a bad --dtype is a usage error.
. "$(dirname "$0")/lib.sh"
cd "$T"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
Q="$ROOT/tests/fixtures/hf/qwen2_bias"
lbdpo-logprob --version | grep -q '^bf16: ' || fail "--version names no bf16 path"
awk 'BEGIN { srand(7); print "{\"lbdpo\": 1, \"kind\": \"tok\", \"history\": []}"
	for (p = 0; p < 6; p++) { printf "{\"prompt_ids\": [%d", int(rand() * 64)
		for (i = 0; i < 9; i++) printf ",%d", int(rand() * 64)
		for (k = 0; k < 2; k++) { printf "], \"%s_ids\": [%d", k ? "rejected" : "chosen", int(rand() * 64)
			n = 16 + int(rand() * 40); for (i = 1; i < n; i++) printf ",%d", int(rand() * 64) }
		print "]}" } }' | lbdpo-show --from-json -o p.tok || fail "gen pairs"
lbdpo-logprob -q --model "$Q" -i p.tok -o s32 || fail "fp32"
lbdpo-show --header-only -i s32 | grep -q '"device":"cpu"' || fail "fp32 header device"
expect_fail lbdpo-logprob -q --model "$Q" --dtype fp16 -i p.tok -o x | grep -q 'expected fp32, bf16 or auto' ||
	fail "bad --dtype"
lbdpo-logprob -q --model "$Q" --dtype bogus -i p.tok -o x 2>/dev/null; [ $? = 2 ] || fail "bad --dtype: exit 2"

# ---- without bf16 products: refused when demanded, fp32 on auto ----
no_bf16() {
	local out
	out=$(expect_fail "$@" --dtype bf16 --model "$Q" -i p.tok -o x) || exit 1
	grep -q 'error: --dtype bf16: no bf16 matrix products: none (' <<<"$out" || fail "refusal: $out"
	[ ! -e x ] || fail "--dtype bf16 refused but left an output"
	out=$("$@" --dtype auto --model "$Q" -i p.tok -o a 2>&1 >/dev/null) || fail "--dtype auto: $out"
	[ "$(grep -c 'warning: --dtype auto: running fp32: none (' <<<"$out")" = 1 ] || fail "--dtype auto notice: $out"
	cmp <(lbdpo-show --no-header -i a) <(lbdpo-show --no-header -i s32) || fail "--dtype auto without bf16 is not fp32"
	lbdpo-show --header-only -i a | grep -q '"device":"cpu"' || fail "auto header device"
}
no_bf16 env DNNL_MAX_CPU_ISA=AVX512_CORE lbdpo-logprob -q
# oneDNN 2.5+ reads ONEDNN_MAX_CPU_ISA too: the reason names it, not the CPU
no_bf16 env ONEDNN_MAX_CPU_ISA=AVX512_CORE lbdpo-logprob -q
ONEDNN_MAX_CPU_ISA=AVX512_CORE lbdpo-logprob --version | grep -q '^bf16: none (ONEDNN_MAX_CPU_ISA=AVX512_CORE rules out' ||
	fail "the ISA cap is not named: $(ONEDNN_MAX_CPU_ISA=AVX512_CORE lbdpo-logprob --version | sed -n '/^bf16/p')"
if lbdpo-logprob --version | grep -q '^bf16: none'; then
	no_bf16 lbdpo-logprob -q
	echo "skipped: $(lbdpo-logprob --version | sed -n 's/^bf16: //p'): the bf16 runs need AVX512-BF16 or AMX"
	exit 77
fi

# ---- bf16: within the bound, named in the header; --bf16 is --dtype bf16 ----
lbdpo-logprob -q --model "$Q" --dtype bf16 -i p.tok -o s16 || fail "--dtype bf16"
lbdpo-logprob -q --model "$Q" --bf16 -i p.tok -o b16 || fail "--bf16"
cmp <(lbdpo-show --no-header -i s16) <(lbdpo-show --no-header -i b16) || fail "--bf16 differs from --dtype bf16"
lbdpo-show --header-only -i s16 | grep -q '"device":"cpu bf16"' || fail "bf16 header device"
lbdpo-logprob -q --model "$Q" --dtype auto -i p.tok -o a16 2>err || fail "--dtype auto"
[ ! -s err ] || fail "--dtype auto with bf16 hardware warned: $(cat err)"
cmp <(lbdpo-show --no-header -i a16) <(lbdpo-show --no-header -i s16) || fail "--dtype auto differs from bf16"
for k in chosen rejected; do
	paste <(lbdpo-show --no-header -i s32 | grep -o "\"${k}_logp\":[^,]*" | cut -d: -f2) \
	      <(lbdpo-show --no-header -i s16 | grep -o "\"${k}_logp\":[^,]*" | cut -d: -f2) \
	      <(lbdpo-show --no-header -i s16 | grep -o "\"${k}_n\":[^,]*" | cut -d: -f2) |
	awk -v k=$k '{ d = $1 - $2; if (d < 0) d = -d; b = 40 * 2^-8 * sqrt($3); if (d > b) { print k " " NR ": " $1 " vs " $2 " (bound " b ")"; bad++ }
		if (d > 0) moved++ } END { exit bad > 0 || NR != 6 || moved == 0 }' || fail "$k log-probs: bf16 outside the bound of fp32 (or unchanged)"
done

# ---- lbdpo-step trains in bf16 ----
awk -v seed=1 -v n=32 -f "$ROOT/tests/sh/gen_pairs.awk" | lbdpo-show --from-json -o train.ref || fail "gen train"
lbdpo-init -q -o m0 --dim 32 --layers 2 --heads 4 --vocab 32 --max-seq 64 --seed 3 || fail "lbdpo-init"
lbdpo-step -q --model m0 --output c --bf16 -i train.ref --steps 8 --batch-size 8 --lr 3e-3 --beta 0.5 \
	--ppl-from policy --ignore-provenance --metrics m.jsonl || fail "lbdpo-step --bf16"
grep -q '"device": "cpu bf16"' c/trainer_state.json || fail "trainer_state device: $(grep device c/trainer_state.json)"
[ "$(grep -c '"loss":' m.jsonl)" -ge 8 ] && ! grep -q '"loss":\(nan\|inf\)' m.jsonl || fail "bf16 metrics"
echo ok

#!/usr/bin/env bash
# test_families.sh — Qwen3, GPT-NeoX/Pythia and Gemma 2/3 through the
# programs (the numbers are checked against transformers in
# tests/unit/test_hf_fixtures.c): lbdpo-step trains each fixture and lowers
# the training loss, lbdpo-logprob scores the checkpoint, lbdpo-sample
# decodes from it, lbdpo-init --config makes random models of the same
# family (Gemma's norm gains 1 + w start at w = 0), and Gemma pairs longer
# than the sliding window are scored.
. "$(dirname "$0")/lib.sh"
cd "$T"
FX="$ROOT/tests/fixtures/hf"
awk -v seed=1 -v n=16 -f "$ROOT/tests/sh/gen_pairs.awk" | lbdpo-show --from-json -o train.ref || fail "gen pairs"
printf '{"lbdpo": 1, "kind": "tok", "history": []}\n{"prompt_ids": [1, 5, 7]}\n' | lbdpo-show --from-json -o p.tok ||
	fail "gen prompt"
for f in fam_qwen3 fam_neox fam_neox_seq fam_gemma2 fam_gemma3; do
	lbdpo-step --threads 1 --model "$FX/$f" --output ck_$f -i train.ref --steps 12 --batch-size 16 --loss dpo --lr 1e-2 --ignore-provenance \
		--metrics m_$f.jsonl || fail "lbdpo-step $f"
	l0=$(head -1 m_$f.jsonl | sed 's/.*"loss": \([^,]*\),.*/\1/') l1=$(tail -1 m_$f.jsonl | sed 's/.*"loss": \([^,]*\),.*/\1/')
	awk -v a="$l0" -v b="$l1" 'BEGIN { exit !(b < a) }' || fail "$f: training loss did not fall ($l0 -> $l1)"
	n=$(lbdpo-logprob -q -m ck_$f -i train.ref | lbdpo-show --no-header | grep -c '"chosen_logp":-') || true
	[ "$n" = 16 ] || fail "$f: lbdpo-logprob scored $n of 16 records"
	lbdpo-sample -m ck_$f -i p.tok --max-new-tokens 4 --seed 1 -o s_$f.jsonl || fail "lbdpo-sample $f"
	grep -q '"ids":\[' s_$f.jsonl || grep -q '"completion_ids":\[' s_$f.jsonl || fail "$f: no sampled ids: $(cat s_$f.jsonl)"
	lbdpo-init -q --config "$FX/$f/config.json" --seed 2 -o r_$f || fail "--config $f"
	a=$(grep -m1 '"model_type"' "$FX/$f/config.json") b=$(grep -m1 '"model_type"' r_$f/config.json)
	[ "${a%,}" = "${b%,}" ] || fail "--config $f: model_type '$a' became '$b'"
	lbdpo-logprob -q -m r_$f -i train.ref -o /dev/null || fail "random $f does not score"
done
echo "$(lbdpo-init --info --model r_fam_neox)" | grep -q "arch=gpt_neox" || fail "--info arch of gpt_neox"

# ---- Gemma: pairs longer than the sliding window (16) are scored (masked
# attention, checked against transformers in test_hf_fixtures.c) ----
ids=$(seq -s, 1 17)
printf '{"lbdpo": 1, "kind": "tok", "history": []}\n{"prompt_ids": [%s], "chosen_ids": [1], "rejected_ids": [2]}\n' \
	"$ids" | lbdpo-show --from-json -o long.tok || fail "gen long pair"
for f in fam_gemma2 fam_gemma3; do
	out=$(lbdpo-logprob -q --model "$FX/$f" -i long.tok 2>&1 | lbdpo-show --no-header)
	echo "$out" | grep -q '"chosen_logp":-' || fail "$f: pair longer than the window not scored: $out"
done
echo ok

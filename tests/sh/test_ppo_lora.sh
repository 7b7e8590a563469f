#!/usr/bin/env bash
# pipelines/ppo.mk LORA=4 QUICK=1 (2 rounds; arms ppo, grpo, dpo):
#  - every round's policy is a PEFT adapter directory (adapter_config.json,
#    adapter_model.safetensors, no model.safetensors or config.json); PPO's
#    value model is a full model; round 2's step continued round 1's adapter
#    and optimizer (RL arms: the step count goes on);
#  - the reference stays the base: the seed's reference cache holds one
#    model, whose fingerprint is the SFT reference's (lbdpo-init --info);
#  - the rollouts and the held-out answers come from the base with the
#    round's adapter: round 1 samples from the base (KL ~0), round 2 from
#    round 1's adapter (KL > 0); the greedy answers are those of -m BASE
#    --adapter the round's policy, bit for bit;
#  - the report is filled with finite numbers; a rerun does nothing; a
#    touched round-1 adapter makes round 2 over (the rules depend on
#    adapter_model.safetensors), and a removed one redoes exactly its step;
#  - a DPO round 1 without a pair (every sample of each prompt judged alike)
#    writes an adapter that scores as the base;
#  - the default work directory is LoRA's own; without LORA no command
#    names an adapter.
. "$(dirname "$0")/lib.sh"
# LoRA starts at B = 0 and moves slowly at the full model's learning rate:
# a larger one makes round 2's KL measurable
MK=(make --no-print-directory -f "$ROOT/pipelines/ppo.mk" LBDPO_BIN="$LBDPO_BIN" W="$T/p" QUICK=1 LORA=4
	ARMS="ppo grpo dpo" RL_LR=3e-3 LR=3e-3)
"${MK[@]}" >"$T/log" 2>&1 || { tail -20 "$T/log"; fail "ppo.mk LORA=4 QUICK=1 failed"; }
S="$T/p/s1"
rep="$T/p/report.txt"
sed -n '/^arm /,$p' "$rep"
for a in ppo grpo dpo; do
	for k in 1 2; do
		grep -Eq "^$a +$k +-?[0-9]+\.[0-9]{3} +-?[0-9]+\.[0-9]{3} +-?[0-9]+\.[0-9]{3}" "$rep" || fail "row $a $k not filled"
		d="$S/$a/r$k/policy"
		[ -f "$d/adapter_config.json" ] && [ -f "$d/adapter_model.safetensors" ] && [ ! -e "$d/model.safetensors" ] &&
			[ ! -e "$d/config.json" ] || fail "$a round $k: not an adapter directory: $(ls "$d")"
		# the held-out answers: the base with this round's adapter
		lbdpo-sample -q -m "$S/base/ref" --adapter "$d" --greedy --max-new-tokens 12 --threads 1 -i "$S/test-math.jsonl" \
			-o "$T/ans.jsonl" || fail "lbdpo-sample with $a round $k's adapter"
		cmp -s "$T/ans.jsonl" "$S/$a/r$k/answers.jsonl" || fail "$a round $k: answers not the adapter's"
	done
done
grep -Eq '^ref +0 +[0-9]+\.[0-9]{3}' "$rep" || fail "reference row"
awk -F '\t' '$5 !~ /^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/ { print "rows.tsv line " NR ": " $0; bad = 1 } END { exit bad }' \
	"$T/p/rows.tsv" || fail "a value in rows.tsv is not a finite number"
[ -f "$S/ppo/r2/policy/value/model.safetensors" ] && [ -f "$S/ppo/r2/policy/value/config.json" ] || fail "no full value model"
# round 2 continued round 1's adapter and optimizer
step() { sed -n 's|^ *"step": \([0-9]*\),*$|\1|p' "$1/trainer_state.json" | sed -n 1p; }
for a in ppo grpo; do
	s1=$(step "$S/$a/r1/policy") s2=$(step "$S/$a/r2/policy")
	[ -n "$s1" ] && [ "$s2" = $((2 * s1)) ] || fail "$a: step $s1 after round 1, $s2 after round 2"
	kl1=$(awk -F '\t' -v a=$a '$2 == a && $3 == 1 && $4 == "kl" { print $5 }' "$T/p/rows.tsv")
	kl2=$(awk -F '\t' -v a=$a '$2 == a && $3 == 2 && $4 == "kl" { print $5 }' "$T/p/rows.tsv")
	echo "$a: KL of the rollouts $kl1 (round 1), $kl2 (round 2)"
	awk -v x="$kl1" 'BEGIN { exit !(x < 1e-4 && x > -1e-4) }' || fail "$a round 1: rollouts not the base's (KL $kl1)"
	awk -v x="$kl2" 'BEGIN { exit !(x > 1e-3) }' || fail "$a round 2: rollouts not round 1's adapter's (KL $kl2)"
done
# the reference: the base, no adapter
fp=$(lbdpo-init --model "$S/base/ref" --info | sed 's/.*fingerprint=//')
got=$(cd "$S/cache" && find . -mindepth 1 -maxdepth 1 -type d | sed 's|^\./||')
[ "$got" = "$fp" ] || fail "reference cache: models $got, the base is $fp"
grep -qx "fingerprint $fp" "$S/cache/$fp/model" || fail "reference cache: $(cat "$S/cache/$fp/model")"
# up to date; the rules hang on adapter_model.safetensors (dry runs into
# files: grep -q on a pipe would cut make short)
"${MK[@]}" -n >"$T/dry0"
grep -q 'lbdpo-' "$T/dry0" && fail "re-running would redo work: $(grep -m1 'lbdpo-' "$T/dry0")"
touch "$S/grpo/r1/policy/adapter_model.safetensors"
"${MK[@]}" -n >"$T/dry"
grep -q "lbdpo-sample .*--adapter $S/grpo/r1/policy --logprobs" "$T/dry" && grep -q "lbdpo-step .*-o $S/grpo/r2/policy" "$T/dry" ||
	fail "a newer round-1 adapter does not redo round 2"
grep 'lbdpo-step' "$T/dry" | grep -v grpo >/dev/null && fail "a newer grpo adapter redoes another arm"
"${MK[@]}" >"$T/log2" 2>&1 || fail "redo after touch"
rm -rf "$S/dpo/r2/policy" "$S/dpo/r2/answers"*
"${MK[@]}" -n >"$T/dry1"
[ "$(grep -c 'lbdpo-step' "$T/dry1")" = 1 ] || fail "a removed adapter: not exactly one step redone"
# a DPO round 1 without a pair: an adapter that changes nothing, so round 2
# has one to continue
: >"$S/dpo/r1/pairs.jsonl"
rm -rf "$S/dpo/r1/policy"
"${MK[@]}" "$S/dpo/r1/policy/adapter_model.safetensors" >"$T/log3" 2>&1 || fail "a round without pairs: $(tail -3 "$T/log3")"
grep -q 'no pair: the policy stays' "$T/log3" || fail "a round without pairs: not the no-pair branch"
[ -f "$S/dpo/r1/policy/adapter_config.json" ] && [ ! -e "$S/dpo/r1/policy/model.safetensors" ] ||
	fail "a round without pairs: not an adapter: $(ls "$S/dpo/r1/policy")"
lbdpo-logprob -q -m "$S/base/ref" -i "$S/grpo/r1/scored.jsonl" -o "$T/lp.base" || fail "logprob base"
lbdpo-logprob -q -m "$S/base/ref" --adapter "$S/dpo/r1/policy" -i "$S/grpo/r1/scored.jsonl" -o "$T/lp.ad" ||
	fail "logprob with the no-pair adapter"
[ -s "$T/lp.base" ] && cmp -s "$T/lp.base" "$T/lp.ad" || fail "the no-pair adapter changes the base's log-probs"
# LoRA's own work directory; the full-model path names no adapter
make --no-print-directory -n -f "$ROOT/pipelines/ppo.mk" LBDPO_BIN=bin QUICK=1 LORA=4 >"$T/dryl"
grep -q 'work/ppo-quick-lora4/s1/ppo/r1/policy' "$T/dryl" || fail "LORA=4: not work/ppo-quick-lora4"
make --no-print-directory -n -f "$ROOT/pipelines/ppo.mk" LBDPO_BIN=bin >"$T/dryf"
grep -q 'work/ppo/s1/ppo/r4/policy' "$T/dryf" || fail "the full model's dry run"
grep -Eq -- '--adapter|--lora-r|work/ppo-' "$T/dryf" &&
	fail "without LORA a command names an adapter or another work directory"
echo ok

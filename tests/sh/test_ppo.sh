#!/usr/bin/env bash
# PPO, GRPO, RLOO end to end (lbdpo-sample --logprobs | judge | lbdpo-step
# --loss ppo|grpo|rloo) on pipelines/ppo.mk QUICK=1:
#  - the pipeline finishes and its report has every cell; round 1 samples
#    from the reference, so its KL estimate (log-probs of the sampler minus
#    a forward of the reference, same weights) is ~0, and round 2's is not;
#  - re-running redoes nothing; after a kill in a step, only that step and
#    what follows it are redone;
#  - the reference stage (lbdpo-refcache on the rollouts) keeps every
#    rollout's reference log-probs in the seed's cache;
#  - each RL step moves the policy toward the rewarded samples: rewards set
#    to 1 for sample 0 of each prompt and 0 for the others, the held-out
#    margin log π(sample 0) − log π(worst) grows after one update;
#  - rollouts: token_logps has one entry per id plus the stop token; the
#    reference's, added by lbdpo-logprob, give the update --ref gives;
#  - --device cuda on the CPU emulator of the CUDA backend: the CPU's numbers;
#  - PPO-ptx makes the pretraining data likelier than PPO alone; the
#    adaptive KL coefficient follows TRL's rule from one call to the next;
#  - bad input: a one-line error naming the file and line, nothing written.
. "$(dirname "$0")/lib.sh"
MK=(make --no-print-directory -f "$ROOT/pipelines/ppo.mk" LBDPO_BIN="$LBDPO_BIN" W="$T/p" QUICK=1)
"${MK[@]}" >"$T/log" 2>&1 || { tail -20 "$T/log"; fail "ppo.mk QUICK=1 failed"; }
rep="$T/p/report.txt"
sed -n '/^arm /,$p' "$rep"
for a in ppo grpo rloo dpo; do
	for k in 1 2; do
		grep -Eq "^$a +$k +-?[0-9]+\.[0-9]{3} +-?[0-9]+\.[0-9]{3}" "$rep" || fail "row $a $k not filled"
	done
done
grep -Eq '^ref +0 +[0-9]+\.[0-9]{3}' "$rep" || fail "reference row"
for a in ppo grpo rloo; do
	kl1=$(awk -F '\t' -v a=$a '$2 == a && $3 == 1 && $4 == "kl" { print $5 }' "$T/p/rows.tsv")
	kl2=$(awk -F '\t' -v a=$a '$2 == a && $3 == 2 && $4 == "kl" { print $5 }' "$T/p/rows.tsv")
	awk -v x="$kl1" 'BEGIN { exit !(x < 1e-4 && x > -1e-4) }' || fail "$a round 1: KL of the reference to itself is $kl1"
	awk -v x="$kl2" 'BEGIN { exit !(x > 1e-3) }' || fail "$a round 2: KL $kl2, the policy did not move"
	for key in objective/kl objective/entropy objective/scores policy/approxkl_avg policy/clipfrac_avg loss/policy_avg; do
		grep -q "\"$key\":" "$T/p/s1/$a/r2/metrics.jsonl" || fail "$a metrics lack $key"
	done
done
for key in val/vf_loss val/clipfrac_avg objective/non_score_reward objective/rlhf_reward; do
	grep -q "\"$key\":" "$T/p/s1/ppo/r2/metrics.jsonl" || fail "ppo metrics lack $key"
done
[ -f "$T/p/s1/ppo/r2/policy/value/model.safetensors" ] || fail "no value model"
# nothing to redo; a removed round is redone, and only it and what follows
"${MK[@]}" -n "$T/p/s1/grpo/r2/answers.oracle.jsonl" "$T/p/s1/ppo/r2/answers.oracle.jsonl" | grep -q lbdpo- && fail "re-running would redo work"
# a run killed in round 2's GRPO step: no policy yet, nothing after it
rm -rf "$T/p/s1/grpo/r2/policy" "$T/p/s1/grpo/r2/answers"*
"${MK[@]}" -n | grep -c 'lbdpo-step' | grep -qx 1 || fail "a removed round: not exactly one step redone"
"${MK[@]}" >"$T/log2" 2>&1 || fail "resume failed"
[ -f "$T/p/s1/grpo/r2/policy/config.json" ] || fail "round not redone"

# the reference stage: ref.jsonl (lbdpo-refcache), every rollout cached in
# the seed's cache across rounds and arms: scoring one again computes nothing
for a in ppo grpo rloo; do
	for k in 1 2; do
		[ "$(grep -c '"ref_token_logps":\[' "$T/p/s1/$a/r$k/ref.jsonl")" = "$(wc -l <"$T/p/s1/$a/r$k/scored.jsonl")" ] ||
			fail "$a round $k: ref.jsonl lacks ref_token_logps"
	done
done
lbdpo-refcache -m "$T/p/s1/base/ref" --cache "$T/p/s1/cache" -t 1 -i "$T/p/s1/rloo/r2/scored.jsonl" -o "$T/again.jsonl" 2>"$T/again.err" ||
	fail "lbdpo-refcache on a round's rollouts"
grep -q ' rollouts: 0 computed, ' "$T/again.err" || fail "the reference stage's cache: $(cat "$T/again.err")"
cmp -s "$T/again.jsonl" "$T/p/s1/rloo/r2/ref.jsonl" || fail "cached reference log-probs differ from the stage's"

# rollouts: one log-prob per id, plus the stop token's
S="$T/p/s1/ppo/r1/samples.jsonl"
awk '{ n = gsub(/,/, ",", $0) } { match($0, /"ids":\[[0-9,]*\]/); ids = substr($0, RSTART, RLENGTH); ni = (ids == "\"ids\":[]") ? 0 : gsub(/,/, ",", ids) + 1
       match($0, /"token_logps":\[[^]]*\]/); lp = substr($0, RSTART, RLENGTH); nl = gsub(/,/, ",", lp) + 1
       e = /"stop":"eos"/ && /"eos_id":/; if (nl != ni + e) { print "line " NR ": " ni " ids, eos " e ", " nl " log-probs"; exit 1 } }' "$S" || fail "token_logps count"

# each RL step raises the rewarded sample's log-prob relative to the worst one
ref="$T/p/s1/base/ref"
awk '{ r = /"sample":0,/ ? 1 : 0; sub(/,"reward":[0-9.]+}$/, ",\"reward\":" r "}"); print }' "$T/p/s1/grpo/r1/scored.jsonl" >"$T/rigged.jsonl"
lbdpo-pairs -q -i "$T/rigged.jsonl" | lbdpo-tokenize -q --tokenizer "$T/p/s1/base/data/tokenizer.json" -o "$T/pairs.tok"
margin() { lbdpo-logprob -q -m "$1" -i "$T/pairs.tok" | lbdpo-show --no-header |
	awk '{ match($0, /"chosen_logp":-?[0-9.eE+-]+/); c = substr($0, RSTART + 14, RLENGTH - 14)
	       match($0, /"rejected_logp":-?[0-9.eE+-]+/); r = substr($0, RSTART + 16, RLENGTH - 16); s += c - r; n++ } END { printf "%.6f", s / n }'; }
m0=$(margin "$ref")
for a in grpo rloo ppo; do
	lbdpo-step -q --loss $a -m "$ref" --ref "$ref" -i "$T/rigged.jsonl" --lr 1e-3 --num-mini-batches 2 --threads 1 -o "$T/$a.pol" ||
		fail "$a step"
	m1=$(margin "$T/$a.pol")
	echo "$a: margin of the rewarded samples $m0 -> $m1"
	awk -v a="$m0" -v b="$m1" 'BEGIN { exit !(b > a + 0.05) }' || fail "$a: rewarded samples not made likelier ($m0 -> $m1)"
done

# PPO-ptx: with --ptx-coef the pretraining data (here: the SFT records) end
# up likelier than after the same PPO update without it
lbdpo-show -n 24 -i "$T/p/s1/base/sft.tok" | lbdpo-show --from-json -o "$T/ptx.tok" || fail "ptx data"
ptx_logp() { lbdpo-logprob -q -m "$1" -i "$T/ptx.tok" | lbdpo-show --no-header |
	awk '{ match($0, /"chosen_logp":-?[0-9.eE+-]+/); s += substr($0, RSTART + 14, RLENGTH - 14); n++ } END { printf "%.6f", s / n }'; }
lbdpo-step -q --loss ppo -m "$ref" --ref "$ref" -i "$T/rigged.jsonl" --lr 1e-3 --num-mini-batches 2 --threads 1 \
	--ptx-coef 1 --ptx-data "$T/ptx.tok" --metrics "$T/ptx.m" -o "$T/ppo-ptx.pol" || fail "ppo-ptx step"
grep -q '"ptx/nll":' "$T/ptx.m" || fail "no ptx/nll metric"
p0=$(ptx_logp "$T/ppo.pol") p1=$(ptx_logp "$T/ppo-ptx.pol")
echo "ptx data mean log-prob: ppo $p0, ppo-ptx $p1"
awk -v a="$p0" -v b="$p1" 'BEGIN { exit !(b > a + 0.05) }' || fail "ppo-ptx: pretraining data not likelier ($p0 -> $p1)"
expect_fail lbdpo-step --loss grpo --ptx-coef 1 --ptx-data "$T/ptx.tok" -m "$ref" -i "$T/rigged.jsonl" -o "$T/x" | grep -q 'options of --loss ppo' ||
	fail "--ptx-coef with grpo"
expect_fail lbdpo-step --loss ppo --epochs 1.5 -m "$ref" -i "$T/rigged.jsonl" -o "$T/x" | grep -q 'whole number' || fail "--epochs 1.5"

# the reference's per-token log-probs as a filter stage (lbdpo-logprob on
# rollouts): the same update as --ref
lbdpo-logprob -q -m "$ref" --threads 1 -i "$T/rigged.jsonl" -o "$T/withref.jsonl" || fail "lbdpo-logprob on rollouts"
[ "$(grep -c '"ref_token_logps":\[' "$T/withref.jsonl")" = "$(wc -l <"$T/rigged.jsonl")" ] || fail "ref_token_logps not on every line"
lbdpo-step -q --loss ppo -m "$ref" -i "$T/withref.jsonl" --lr 1e-3 --num-mini-batches 2 --threads 1 --metrics "$T/wr.m" \
	-o "$T/wr.pol" 2>"$T/wr.err" || fail "ppo with ref_token_logps"
grep -q warning "$T/wr.err" && fail "warned: $(cat "$T/wr.err")"
lbdpo-step -q --loss ppo -m "$ref" --ref "$ref" -i "$T/rigged.jsonl" --lr 1e-3 --num-mini-batches 2 --threads 1 \
	--metrics "$T/r.m" -o "$T/r.pol" || fail "ppo with --ref"
sed 's/"run":"[^"]*"//' "$T/wr.m" | diff - <(sed 's/"run":"[^"]*"//' "$T/r.m") || fail "ref_token_logps and --ref differ"

# adaptive KL coefficient: TRL's update from the rollouts' KL, kept in
# OUT/rl_state.json and taken up by the next call from that policy
lbdpo-step -q --loss rloo -m "$ref" --ref "$ref" -i "$T/rigged.jsonl" --kl-coef 0.1 --kl-target 0.5 --kl-horizon 1000 \
	--threads 1 --metrics "$T/akl.m" -o "$T/akl1" || fail "adaptive kl step 1"
want=$(awk '{ match($0, /"objective\/kl":-?[0-9.eE+-]+/); kl = substr($0, RSTART + 15, RLENGTH - 15)
	e = kl / 0.5 - 1; if (e < -0.2) e = -0.2; if (e > 0.2) e = 0.2; printf "%.9g", 0.1 * (1 + e * 64 / 1000) }' "$T/akl.m")
lbdpo-step -q --loss rloo -m "$T/akl1" --ref "$ref" -i "$T/rigged.jsonl" --kl-target 0.5 --kl-horizon 1000 --threads 1 \
	--metrics "$T/akl.m" -o "$T/akl2" || fail "adaptive kl step 2"
got=$(sed -n 2p "$T/akl.m" | sed 's/.*"kl_coef":\([-0-9.eE+]*\).*/\1/')
awk -v a="$got" -v b="$want" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 1e-7 && b < 0.1) }' ||
	fail "adaptive KL: the second call's coefficient is $got, want $want"

# the CUDA backend on the CPU emulator (built by make tests-build): the same
# metrics and the same new policy as the CPU, within 1e-4 (unit floor)
E="${LBDPO_TESTBIN:-$ROOT/build/rel/tests}/../emu/bin"
if [ -x "$E/lbdpo-step" ]; then
	nums() { grep -o -- '-\?[0-9][0-9]*\(\.[0-9]*\)\?\([eE][-+]\?[0-9]*\)\?' "$1"; }
	close() {
		paste <(nums "$2") <(nums "$3") | awk -v what="$1" '{ d = $1 - $2; if (d < 0) d = -d; m = $1 < 0 ? -$1 : $1; b = $2 < 0 ? -$2 : $2
			if (b > m) m = b; if (m < 1) m = 1; if (d / m > mx) mx = d / m; n++ }
			END { printf "%s: %d numbers, max rel %.1e\n", what, n, mx; exit !(n > 10 && mx < 1e-4) }' || fail "$1: cpu and emulated cuda differ"
	}
	sed -n 1,8p "$T/rigged.jsonl" >"$T/r8.jsonl" # the emulator is slow: 2 prompts, 2 epochs of 2 mini-batches
	for a in grpo ppo; do
		"$E/lbdpo-step" --device cuda --loss $a -m "$ref" --ref "$ref" -i "$T/r8.jsonl" --lr 1e-3 --epochs 2 \
			--num-mini-batches 2 --threads 1 --metrics "$T/$a.cuda.m" -o "$T/$a.cuda" 2>/dev/null || fail "$a on emulated cuda"
		lbdpo-step -q --loss $a -m "$ref" --ref "$ref" -i "$T/r8.jsonl" --lr 1e-3 --epochs 2 --num-mini-batches 2 \
			--threads 1 --metrics "$T/$a.cpu.m" -o "$T/$a.cpu" || fail "$a on cpu"
		close "$a metrics" "$T/$a.cpu.m" "$T/$a.cuda.m"
		lbdpo-logprob -q -m "$T/$a.cpu" -i "$T/pairs.tok" | lbdpo-show --no-header >"$T/$a.cpu.lp"
		lbdpo-logprob -q -m "$T/$a.cuda" -i "$T/pairs.tok" | lbdpo-show --no-header >"$T/$a.cuda.lp"
		close "$a new policy's log-probs" "$T/$a.cpu.lp" "$T/$a.cuda.lp"
	done
else
	echo "no emulated CUDA programs in $E: the cpu/cuda comparison is left out"
fi

# a sample's text may hold U+0000 (a byte-level token): not an error
sed '1s/"text":"[^"]*"/"text":"a\\u0000b"/' "$T/rigged.jsonl" >"$T/nul.jsonl"
grep -q 'u0000' "$T/nul.jsonl" || fail "nul.jsonl"
lbdpo-step -q --loss grpo -m "$ref" -i "$T/nul.jsonl" --threads 1 -o "$T/nul.pol" || fail "a text with U+0000 refused"

# bad input
sed '3s/,"reward":[0-9.]*}$/}/' "$T/rigged.jsonl" >"$T/bad.jsonl"
out=$(expect_fail lbdpo-step --loss grpo -m "$ref" -i "$T/bad.jsonl" -o "$T/bad.pol")
grep -q 'bad.jsonl: line 3: no number "reward"' <<<"$out" || fail "missing reward: $out"
[ ! -e "$T/bad.pol" ] || fail "output written on bad input"
awk 'NR == 4 { l4 = $0; next } { print } NR == 5 { print l4 }' "$T/rigged.jsonl" >"$T/swap.jsonl" # line 4: the next prompt's
out=$(expect_fail lbdpo-step --loss rloo --num-generations 4 -m "$ref" -i "$T/swap.jsonl" -o "$T/bad.pol")
grep -q 'swap.jsonl: line 4: not the prompt of line 1' <<<"$out" || fail "broken group: $out"
sed '1s/"token_logps":\[[^]]*\]/"token_logps":[0.5]/' "$T/rigged.jsonl" >"$T/lp.jsonl"
out=$(expect_fail lbdpo-step --loss ppo -m "$ref" -i "$T/lp.jsonl" -o "$T/bad.pol")
grep -q 'lp.jsonl: line 1: "token_logps" must hold' <<<"$out" || fail "short token_logps: $out"
expect_fail lbdpo-step --loss grpo -m "$ref" -i "$T/rigged.jsonl" -o "$T/grpo.pol" | grep -q 'exists' || fail "existing output"
expect_fail lbdpo-step --loss grpo --value-model "$ref" -m "$ref" -i "$T/rigged.jsonl" -o "$T/x" | grep -q 'options of --loss ppo' ||
	fail "--value-model with grpo"
expect_fail lbdpo-step --loss ppo --beta 0.3 -m "$ref" -i "$T/rigged.jsonl" -o "$T/x" | grep -q 'not an option of --loss ppo' ||
	fail "--beta with ppo"
expect_fail lbdpo-step --loss dpo --kl-coef 0.3 -m "$ref" -i "$T/pairs.tok" -o "$T/x" | grep -q 'option of --loss ppo, grpo or rloo' ||
	fail "--kl-coef with dpo"
[ ! -e "$T/x" ] || fail "output written on a refused command"
echo ok

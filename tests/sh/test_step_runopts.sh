#!/usr/bin/env bash
# lbdpo-step's run options: --metrics of a fresh run refuses an existing
# file, a resumed run appends from its own step with the run's id in every
# line; resuming refuses changed options that change what the run trains
# (unless --allow-changed-options), takes the run's where none is given and
# logs the ones it may change; LB-DPO's default PPL source is the reference;
# --loss sigmoid is dpo and an unknown loss lists the valid names.
. "$(dirname "$0")/lib.sh"
cd "$T"
lbdpo-init -q -o m0 --dim 32 --layers 1 --heads 4 --vocab 32 --max-seq 64 --seed 3 || fail "init"
# scores said to be m0's (the provenance rule): a run from m0 takes them
fp0=$(lbdpo-init --model m0 --info | sed 's/.*fingerprint=//')
awk -v seed=1 -v n=16 -v ref="$fp0" -f "$ROOT/tests/sh/gen_pairs.awk" | lbdpo-show --from-json -o t.ref || fail "gen"
S=(-i t.ref --threads 1 --batch-size 4 -q)
run_of() { sed -n 's/.*"run": "\([0-9a-f]*\)"}$/\1/p' "$1" | sort -u; }
steps_of() { sed -n 's/^{"step": \([0-9]*\),.*/\1/p' "$1" | tr '\n' ' '; }

# ---- --metrics ----
lbdpo-step -m m0 -o ck "${S[@]}" --steps 2 --loss lbdpo --lr 1e-3 --metrics m.jsonl || fail "first run"
id=$(run_of m.jsonl)
[ "$(echo "$id" | wc -w)" = 1 ] && [ ${#id} = 16 ] || fail "run id in the lines: '$id'"
grep -q "\"run_id\": \"$id\"" ck/trainer_state.json || fail "run id not in trainer_state.json"
cp m.jsonl m0.jsonl
# a fresh run into the same file: refused before any step, file untouched
msg=$(expect_fail lbdpo-step -m m0 -o other "${S[@]}" --steps 2 --metrics m.jsonl)
echo "$msg" | grep -q 'm.jsonl: exists and is not empty' || fail "fresh run into a used file: $msg"
cmp -s m.jsonl m0.jsonl && [ ! -e other ] || fail "the refused run wrote something"
: >empty.jsonl
lbdpo-step -m m0 -o other "${S[@]}" --steps 1 --metrics empty.jsonl || fail "an empty metrics file is fine"
[ "$(run_of empty.jsonl)" != "$id" ] || fail "two fresh runs share a run id"
# a resume appends with the same id
lbdpo-step -m ck -o ck "${S[@]}" --steps 2 --metrics m.jsonl || fail "resume"
[ "$(steps_of m.jsonl)" = "1 2 3 4 " ] && [ "$(run_of m.jsonl)" = "$id" ] || fail "resume: $(steps_of m.jsonl) / $(run_of m.jsonl)"
# killed after steps 5, 6 were written but before they were saved (and a
# cut last line): resuming from step 4 drops them, so no step is doubled
cp -r ck ck4
lbdpo-step -m ck -o ck "${S[@]}" --steps 2 --metrics m.jsonl || fail "steps 5-6"
sed -n 6p m.jsonl | head -c 50 >>m.jsonl
lbdpo-step -m ck4 -o ck "${S[@]}" --steps 3 --metrics m.jsonl 2>err.txt || fail "resume after the kill: $(cat err.txt)"
[ "$(steps_of m.jsonl)" = "1 2 3 4 5 6 7 " ] || fail "after the kill: $(steps_of m.jsonl)"
# another run's file: refused on resume
msg=$(expect_fail lbdpo-step -m ck -o ck "${S[@]}" --steps 1 --metrics empty.jsonl)
echo "$msg" | grep -q 'empty.jsonl: line 1: written by another run' || fail "another run's file: $msg"

# ---- changed options on resume ----
for bad in "--loss dpo" "--lr 2e-3" "--batch-size 8" "--grad-accum 2" "--seed 5" "--beta-grad head" "--range-reg 1"; do
	msg=$(expect_fail lbdpo-step -m ck -o ck -i t.ref --threads 1 -q --steps 1 $bad)
	echo "$msg" | grep -q "resuming with options that change what the run trains: ${bad%% *} .*--allow-changed-options" ||
		fail "$bad: $msg"
done
for bad in "--epsilon 0.3" "--ppl-from policy" "--pool mean" "--head mlp"; do
	msg=$(expect_fail lbdpo-step -m ck -o ck -i t.ref --threads 1 -q --steps 1 $bad)
	echo "$msg" | grep -q -- "${bad%% *} .*fixed on resume" || fail "$bad: $msg"
done
grep -q '"step": 7' ck/trainer_state.json || fail "a refused resume wrote the checkpoint"
# a loss list's weights, --learned-beta and discopop's tau are the run's too
lbdpo-step -m m0 -o ckl "${S[@]}" --steps 1 --loss dpo,sft --loss-weights 1,0.5 || fail "a loss list"
for bad in "--loss dpo,sft --loss-weights 1,0.2" "--learned-beta" "--discopop-tau 0.1"; do
	msg=$(expect_fail lbdpo-step -m ckl -o ckl -i t.ref --threads 1 -q --steps 1 $bad)
	flag=${bad##*--}
	echo "$msg" | grep -q "resuming with options that change what the run trains: .*--${flag%% *} " || fail "$bad: $msg"
done
lbdpo-step -m ckl -o ckl -i t.ref --threads 1 -q --steps 1 || fail "resume a loss list without options"
grep -q '"loss_weights"' ckl/trainer_state.json || fail "the list's weights were not kept on resume"
# not given: the run's (batch size 4, lr 1e-3), not the defaults
lbdpo-step -m ck -o ck -i t.ref --threads 1 --steps 1 2>err.txt || fail "resume without options: $(cat err.txt)"
grep -q 'resuming: the schedule is now 8 steps long (the run.s: 7), to fit --steps' err.txt ||
	fail "a longer schedule not logged: $(cat err.txt)"
grep -q '"batch_size": 4,' ck/trainer_state.json && grep -q '"lr": 0.001,' ck/trainer_state.json ||
	fail "the run's options not kept: $(grep -E 'batch_size|"lr"' ck/trainer_state.json)"
# asked for: taken, with a warning
lbdpo-step -m ck -o ck -i t.ref --threads 1 --steps 1 --lr 5e-4 --allow-changed-options 2>err.txt || fail "allowed"
grep -q 'warning: resuming with --lr 0.0005 instead of the run.s 0.001' err.txt || fail "no warning: $(cat err.txt)"
grep -q '"lr": 0.00050000000000000001,' ck/trainer_state.json || fail "--lr not taken: $(grep '"lr"' ck/trainer_state.json)"
# what a resume may change is logged
lbdpo-step -m ck -o ck -i t.ref --threads 2 --steps 1 --total-steps 50 --save-every 7 2>err.txt || fail "logged"
grep -q 'resuming with --total-steps 50 (the run.s: ' err.txt && grep -q 'resuming with --threads 2 (the run.s: 1' err.txt &&
	grep -q 'resuming with --save-every 7 (the run.s: 0)' err.txt || fail "not logged: $(cat err.txt)"

# ---- defaults: LB-DPO's PPL(x) from the reference ----
lbdpo-step -m m0 -o d "${S[@]}" --steps 1 || fail "defaults"
grep -q '"ppl_from": "ref"' d/trainer_state.json && grep -q '"beta_grad": "full"' d/trainer_state.json ||
	fail "defaults: $(grep -E 'ppl_from|beta_grad' d/trainer_state.json)"
lbdpo-show -i t.ref | sed 's/,"ref_prompt_logp":[^,]*//' | lbdpo-show --from-json -o noplogp.ref || fail "strip"
msg=$(expect_fail lbdpo-step -m m0 -o d2 -i noplogp.ref --threads 1 --steps 1)
echo "$msg" | grep -q 'no ref_prompt_logp (needed by --ppl-from ref, the default' || fail "no ref_prompt_logp: $msg"
lbdpo-step -m m0 -o d2 -i noplogp.ref --threads 1 --steps 1 -q --ppl-from policy || fail "--ppl-from policy"

# ---- loss names ----
lbdpo-step -m m0 -o sg "${S[@]}" --steps 1 --loss sigmoid || fail "--loss sigmoid"
grep -q '"loss": "dpo"' sg/trainer_state.json || fail "sigmoid is not dpo"
# drdpo's beta' is a run option: kept in the checkpoint, taken on resume, a change refused
lbdpo-step -m m0 -o dr "${S[@]}" --steps 1 --loss drdpo --drdpo-beta-prime 0.5 || fail "--loss drdpo"
grep -q '"drdpo_beta_prime": 0.5' dr/trainer_state.json || fail "drdpo_beta_prime not in the checkpoint"
lbdpo-step -m dr -o dr2 "${S[@]}" --steps 1 || fail "resume drdpo"
grep -q '"drdpo_beta_prime": 0.5' dr2/trainer_state.json || fail "resume lost drdpo_beta_prime"
expect_fail lbdpo-step -m dr -o dr3 "${S[@]}" --steps 1 --drdpo-beta-prime 2 | grep -q 'drdpo-beta-prime 2 (the run.s: 0.5)' ||
	fail "resume took a changed --drdpo-beta-prime"
msg=$(expect_fail lbdpo-step -m m0 -o x "${S[@]}" --steps 1 --loss nope)
echo "$msg" | grep -q "unknown loss 'nope' (valid: lbdpo, dpo (alias sigmoid), ipo, hinge, robust, simpo, ln-dpo, beta-dpo, sft, exo_pair, nca_pair, bco_pair, sppo_hard, aot, aot_unpaired, apo_zero, apo_down, discopop, reward, cdpo, drdpo)" ||
	fail "unknown loss: $msg"
msg=$(expect_fail lbdpo-eval -m sg -i t.ref --loss nope)
echo "$msg" | grep -q "unknown loss 'nope' (valid: lbdpo, dpo" || fail "eval unknown loss: $msg"
echo ok

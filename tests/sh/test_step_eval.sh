#!/usr/bin/env bash
# lbdpo-step --eval-input / --eval-steps / --save-best / --tensorboard: eval/
# lines in --metrics equal lbdpo-eval's summary of the checkpoint; the eval
# records get the provenance check; the best checkpoint lands in OUT.best and
# a resumed run does not overwrite a better best; lbdpo-eval --plot ignores
# the eval lines; a resumed run writes a new events file.
. "$(dirname "$0")/lib.sh"
cd "$T"
G="$ROOT/tests/sh/gen_pairs.awk"
lbdpo-init -q -o m0 --dim 32 --layers 2 --heads 4 --vocab 32 --max-seq 64 --seed 3 || fail "lbdpo-init"
fp=$(lbdpo-init --model m0 --info | sed 's/.*fingerprint=//')
awk -v seed=1 -v n=64 -v ref="$fp" -f "$G" | lbdpo-show --from-json -o train.ref || fail "gen train"
awk -v seed=2 -v n=24 -v ref="$fp" -f "$G" | lbdpo-show --from-json -o test.ref || fail "gen test"
awk -v seed=2 -v n=24 -f "$G" | lbdpo-show --from-json -o other.ref || fail "gen other"
S=(--threads 1 -i train.ref --batch-size 8 --lr 3e-3 --beta-lr 1e-2 --beta 0.5 --ppl-from policy)
num() { sed -n "s|.*\"$1\": \([^,}]*\).*|\1|p"; }
close() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-7 * (1 + (a < 0 ? -a : a))) }'; }

# ---- eval lines every --eval-steps, equal to lbdpo-eval of the checkpoint ----
lbdpo-step -q -m m0 -o c "${S[@]}" --steps 8 --eval-input test.ref --eval-steps 4 --metrics m.jsonl 2>err ||
	fail "lbdpo-step --eval-input: $(cat err)"
[ "$(grep -c '"eval/loss"' m.jsonl)" = 2 ] || fail "expected 2 eval lines"
[ "$(grep -c '"grad_norm"' m.jsonl)" = 8 ] || fail "expected 8 training lines"
[ "$(grep '"eval/loss"' m.jsonl | num step | tr '\n' ' ')" = "4 8 " ] || fail "eval lines not at steps 4 and 8"
for k in eval/loss eval/rewards/chosen eval/rewards/rejected eval/rewards/accuracies eval/rewards/margins \
	eval/logps/chosen eval/logps/rejected eval/beta/mean eval/beta/std eval/beta/min eval/beta/max eval/ppl/prompt; do
	grep -q "\"$k\": " m.jsonl || fail "eval metric $k missing"
done
lbdpo-eval -q --threads 1 -m c -i test.ref -o e.json || fail "lbdpo-eval"
last=$(grep '"eval/loss"' m.jsonl | tail -1)
for k in loss rewards/accuracies rewards/margins rewards/chosen logps/rejected beta/mean beta/max ppl/prompt; do
	a=$(num "eval/$k" <<<"$last") b=$(sed -n "s|^ \"$k\": \([^,]*\),*$|\1|p" e.json)
	close "$a" "$b" || fail "eval/$k $a != lbdpo-eval's $k $b"
done
[ "$(num eval/samples <<<"$last")" = 24 ] || fail "eval/samples"

# a loss list with a learned beta: the eval line's loss is lbdpo-eval's too
lbdpo-step -q -m m0 -o cl "${S[@]}" --steps 2 --loss dpo,sft --loss-weights 1,0.5 --learned-beta \
	--eval-input test.ref --metrics ml.jsonl || fail "a loss list with --eval-input"
lbdpo-eval -q --threads 1 -m cl -i test.ref -o el.json || fail "lbdpo-eval of the list"
last=$(grep '"eval/loss"' ml.jsonl | tail -1)
for k in loss beta/mean beta/std; do
	a=$(num "eval/$k" <<<"$last") b=$(sed -n "s|^ \"$k\": \([^,]*\),*$|\1|p" el.json)
	close "$a" "$b" || fail "loss list: eval/$k $a != lbdpo-eval's $k $b"
done
close "$(num eval/beta/std <<<"$last")" 0 && fail "loss list: the learned beta is constant (head not used)"

# default --eval-steps: once, after the last step
lbdpo-step -q -m m0 -o c1 "${S[@]}" --steps 3 --eval-input test.ref --metrics m1.jsonl || fail "default eval steps"
[ "$(grep '"eval/loss"' m1.jsonl | num step)" = 3 ] || fail "default: one eval line at the last step"

# ---- provenance: eval records of another reference are refused ----
msg=$(expect_fail lbdpo-step -q -m m0 -o c2 "${S[@]}" --steps 1 --eval-input other.ref) || exit 1
grep -q "other.ref" <<<"$msg" || fail "provenance error does not name the eval file: $msg"
[ ! -e c2 ] || fail "refused run wrote a checkpoint"

# ---- usage ----
expect_fail lbdpo-step -m m0 -o c2 "${S[@]}" --steps 1 --eval-steps 2 >/dev/null || exit 1
expect_fail lbdpo-step -m m0 -o c2 "${S[@]}" --steps 1 --save-best eval/loss >/dev/null || exit 1
msg=$(expect_fail lbdpo-step -m m0 -o c2 "${S[@]}" --steps 1 --eval-input test.ref --save-best eval/bogus) || exit 1
grep -q "eval/rewards/accuracies" <<<"$msg" || fail "unknown metric message lists no valid ones: $msg"
expect_fail lbdpo-step -m m0 -o c2 "${S[@]}" --steps 1 --eval-input test.ref --save-best eval/loss \
	--save-best-mode up >/dev/null || exit 1
mkdir c3.best && echo mine > c3.best/notes
expect_fail lbdpo-step -m m0 -o c3 "${S[@]}" --steps 1 --eval-input test.ref --save-best eval/loss >/dev/null || exit 1
[ "$(cat c3.best/notes)" = mine ] && [ ! -e c3 ] || fail "a user's OUT.best was touched"

# ---- --save-best: OUT.best, and a resume keeps a better best ----
lbdpo-step -q -m m0 -o b "${S[@]}" --steps 6 --total-steps 12 --eval-input test.ref --eval-steps 2 \
	--save-best eval/loss || fail "save-best run"
[ -f b.best/.lbdpo-checkpoint ] || fail "no b.best checkpoint"
grep -q '"step": 6' b.best/trainer_state.json || fail "best not at step 6 (the loss falls)"
grep -A4 '"best"' b/trainer_state.json | grep -q '"step": 6' || fail "trainer_state.json of b lacks the best"
cp b.best/model.safetensors best6.st
# lr 0: the eval loss stays what it was, no better: b.best keeps step 6
lbdpo-step -q -m b -o b "${S[@]}" --steps 4 --lr 0 --beta-lr 0 --allow-changed-options --eval-input test.ref \
	--eval-steps 2 --save-best eval/loss --metrics mb.jsonl || fail "resume save-best"
[ "$(grep -c '"eval/loss"' mb.jsonl)" = 2 ] || fail "resumed run evaluated"
grep -q '"step": 6' b.best/trainer_state.json || fail "resume overwrote the best of step 6"
cmp -s best6.st b.best/model.safetensors || fail "b.best weights changed"
grep -q '"step": 10' b/trainer_state.json || fail "resumed to step 10"
# max mode by inference: accuracies; a new metric starts a new best
lbdpo-step -m b -o b "${S[@]}" --steps 2 --allow-changed-options --eval-input test.ref --save-best eval/rewards/accuracies 2>err ||
	fail "save-best accuracies"
grep -q 'starting a new best' err || fail "metric change not reported"
grep -A3 '"best"' b.best/trainer_state.json | grep -q '"mode": "max"' || fail "accuracies: mode max inferred"

# ---- lbdpo-eval --plot ignores the eval lines ----
lbdpo-eval -q --threads 1 -m c -i test.ref -o /dev/null --metrics m.jsonl --plot plots 2>err || fail "plot"
! grep -q "more than one run" err || fail "eval lines taken for another run's: $(cat err)"
[ "$(grep -vc '^#' plots/curves.dat)" = 8 ] || fail "curves.dat: expected the 8 training steps"

# ---- --tensorboard: one events file per invocation ----
lbdpo-step -q -m m0 -o t "${S[@]}" --steps 2 --tensorboard tb || fail "tensorboard"
lbdpo-step -q -m t -o t "${S[@]}" --steps 2 --tensorboard tb || fail "tensorboard resume"
[ "$(ls tb | grep -c '^events\.out\.tfevents\.')" = 2 ] || fail "expected 2 events files: $(ls tb)"
echo "ok"

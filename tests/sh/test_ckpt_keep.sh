#!/usr/bin/env bash
# Replacing a checkpoint in place (the documented `-m ck -o ck` resume, and
# --save-every) keeps everything in the directory that lbdpo did not write:
# a user's eval results, a plot directory with a subdirectory and a symbolic
# link, with their contents and modes; lbdpo's own files are the new ones.
. "$(dirname "$0")/lib.sh"
cd "$T"
lbdpo-init -q -o m0 --dim 32 --layers 1 --heads 4 --vocab 32 --max-seq 64 --seed 3 || fail "init"
# scores said to be m0's (the provenance rule): a run from m0 takes them
fp0=$(lbdpo-init --model m0 --info | sed 's/.*fingerprint=//')
awk -v seed=1 -v n=16 -v ref="$fp0" -f "$ROOT/tests/sh/gen_pairs.awk" | lbdpo-show --from-json -o t.ref || fail "gen"
lbdpo-step --model m0 --output ck -i t.ref --threads 1 --batch-size 8 --steps 1 --loss dpo -q || fail "step"
echo '{"acc": 0.5}' >ck/my_eval_results.json
chmod 640 ck/my_eval_results.json
mkdir -p ck/plots/sub && echo png >ck/plots/a.png && echo deep >ck/plots/sub/b.txt && chmod 750 ck/plots
ln -s my_eval_results.json ck/latest.json
cp ck/trainer_state.json before.json
lbdpo-step --model ck --output ck -i t.ref --threads 1 --batch-size 8 --steps 2 --save-every 1 --loss dpo -q ||
	fail "resume in place"
grep -q '"step": 3' ck/trainer_state.json || fail "not the new checkpoint: $(grep step ck/trainer_state.json)"
[ "$(cat ck/my_eval_results.json 2>/dev/null)" = '{"acc": 0.5}' ] || fail "my_eval_results.json lost"
[ "$(stat -c %a ck/my_eval_results.json)" = 640 ] || fail "mode of my_eval_results.json"
[ "$(cat ck/plots/a.png 2>/dev/null)" = png ] && [ "$(cat ck/plots/sub/b.txt 2>/dev/null)" = deep ] || fail "plots/ lost"
[ "$(readlink ck/latest.json)" = my_eval_results.json ] || fail "symbolic link lost"
[ "$(stat -c %a ck/plots)" = 750 ] || fail "mode of plots/: $(stat -c %a ck/plots)"
[ -z "$(ls -d ck.tmp.* 2>/dev/null)" ] || fail "temporaries left: $(ls -d ck.tmp.*)"
# a checkpoint of another model written over ck: lbdpo's own files (the
# tokenizer) are never carried from the old one
printf '{"model":{"vocab":{"a":0}},"added_tokens":[]}\n' >ck/tokenizer.json
lbdpo-step --model m0 --fresh --output ck -i t.ref --threads 1 --batch-size 8 --steps 1 --loss dpo -q || fail "fresh over ck"
[ ! -e ck/tokenizer.json ] || fail "a stale tokenizer.json of the old checkpoint was carried"
[ -s ck/my_eval_results.json ] && [ -s ck/plots/sub/b.txt ] || fail "user files lost on the fresh run"
echo ok

#!/usr/bin/env bash
# Hardening regressions (issue 17): --out replaces only a checkpoint lbdpo
# wrote; temporaries are created exclusively (a planted symlink is never
# followed), keep the replaced file's mode, and stale ones of killed runs are
# swept; SIGTERM/SIGINT finish lbdpo-step's step and write the checkpoint;
# every program removes its temporary output when signalled.
. "$(dirname "$0")/lib.sh"
set -o pipefail
cd "$T"
G="$ROOT/tests/sh/gen_pairs.awk"
awk -v seed=1 -v n=32 -f "$G" | lbdpo-show --from-json -o train.ref || fail "gen train"
lbdpo-init -q -o m0 --dim 16 --layers 1 --heads 2 --vocab 32 --max-seq 64 --seed 3 || fail "lbdpo-init"
S=(--threads 1 --batch-size 4 --loss dpo -i train.ref)
notmp() { ! ls -a "$1" | grep -q '\.tmp\.' || fail "temporary left in $1: $(ls -a "$1" | grep '\.tmp\.')"; }

# ---- --out never replaces what lbdpo did not write ----
mkdir userdir && echo precious > userdir/notes.txt
msg=$(expect_fail lbdpo-step --init m0 --out userdir "${S[@]}" --steps 1)
echo "$msg" | grep -q 'not a checkpoint lbdpo wrote' || fail "wrong message: $msg"
[ "$(cat userdir/notes.txt)" = precious ] && [ "$(ls userdir)" = notes.txt ] || fail "--out touched a user directory"
echo data > userfile
expect_fail lbdpo-step --init m0 --out userfile "${S[@]}" --steps 1 >/dev/null
[ "$(cat userfile)" = data ] || fail "--out replaced a plain file"
mkdir real && ln -s real link
expect_fail lbdpo-step --init m0 --out link "${S[@]}" --steps 1 >/dev/null
[ -L link ] && [ -z "$(ls real)" ] || fail "--out replaced a symlink"
expect_fail lbdpo-step --init m0 --out m0 "${S[@]}" --steps 1 >/dev/null  # a model dir, not a checkpoint
lbdpo-step --init m0 --out ck "${S[@]}" --steps 2 -q || fail "first checkpoint"
[ -f ck/.lbdpo-checkpoint ] || fail "checkpoint has no marker"
lbdpo-step --init ck --out ck "${S[@]}" --steps 1 -q || fail "a checkpoint lbdpo wrote is replaced"
grep -q '"step": 3' ck/trainer_state.json || fail "resumed in place"
notmp .

# ---- temporaries: exclusive, no symlink followed, mode kept, stale swept ----
echo victim > victim
# exec keeps the PID, so the old predictable name "OUT.tmp.PID" can be planted
bash -c 'ln -s victim out.ref.tmp.$$; exec lbdpo-show -i train.ref -o out.ref' || fail "lbdpo-show -o"
[ "$(cat victim)" = victim ] || fail "a planted symlink's target was overwritten"
rm -f out.ref.tmp.*
[ -s out.ref ] && [ ! -L out.ref ] || fail "no output written"
chmod 640 out.ref
lbdpo-show -i train.ref -o out.ref || fail "rewrite"
[ "$(stat -c %a out.ref)" = 640 ] || fail "mode of the replaced file not kept: $(stat -c %a out.ref)"
dead=$(bash -c 'echo $$')   # a process that has exited
while kill -0 "$dead" 2>/dev/null; do dead=$((dead + 1)); done
head -c 1000 train.ref > "out.ref.tmp.$dead.AbC123"
mkdir "ck.tmp.$dead.xYz789" && echo x > "ck.tmp.$dead.xYz789/model.safetensors"
echo keep > out.ref.tmp.mine; echo keep > "out.ref.tmp.$$.AbC123"   # not ours / a live process
lbdpo-show -i train.ref -o out.ref 2> sweep.err || fail "rewrite 2"
grep -q "removed .*out.ref.tmp.$dead.AbC123" sweep.err || fail "stale file not reported: $(cat sweep.err)"
[ ! -e "out.ref.tmp.$dead.AbC123" ] || fail "stale temporary not swept"
[ -e out.ref.tmp.mine ] && [ -e "out.ref.tmp.$$.AbC123" ] || fail "sweep removed a file that is not a stale temporary"
lbdpo-step --init ck --out ck "${S[@]}" --steps 1 -q 2>/dev/null || fail "step after stale dir"
[ ! -e "ck.tmp.$dead.xYz789" ] || fail "stale checkpoint temporary not swept"
rm -f out.ref.tmp.mine "out.ref.tmp.$$.AbC123"

# ---- signals: lbdpo-step finishes the step, writes, exits 143 / 130 ----
set -m   # job control: a background job does not start with SIGINT ignored
for sig in TERM INT; do
	rm -rf sig; mkdir sdir
	lbdpo-step --init m0 --out sdir/ck "${S[@]}" --steps 100000 --metrics sdir/m.jsonl -q 2>sig.err &
	pid=$!
	for _ in $(seq 200); do [ -s sdir/m.jsonl ] && break; sleep 0.05; done
	[ -s sdir/m.jsonl ] || fail "no step done"
	kill -$sig $pid; wait $pid; rc=$?
	want=$([ $sig = TERM ] && echo 143 || echo 130)
	[ $rc = "$want" ] || fail "SIG$sig: exit $rc, want $want ($(cat sig.err))"
	grep -q 'stopped by signal' sig.err || fail "no message on SIG$sig"
	n=$(wc -l < sdir/m.jsonl)
	grep -q "\"step\": $n," sdir/ck/trainer_state.json || fail "SIG$sig: checkpoint is not at the last step $n"
	lbdpo-eval --threads 1 -c sdir/ck -i train.ref -o /dev/null || fail "checkpoint after SIG$sig does not load"
	notmp sdir
	rm -rf sdir
done

set +m

# ---- every program removes its temporary output when signalled ----
mkfifo fifo
for cmd in "lbdpo-show --from-json -o sdir/out.ref" \
	"lbdpo-tokenize --tokenizer $ROOT/tests/fixtures/demo_tok/tokenizer.json -o sdir/out.tok"; do
	mkdir sdir
	$cmd < fifo 2>/dev/null &
	pid=$!
	exec 3>fifo   # keep the reader waiting for more input
	for _ in $(seq 100); do ls sdir | grep -q '\.tmp\.' && break; sleep 0.05; done
	ls sdir | grep -q '\.tmp\.' || { exec 3>&-; fail "$cmd: no temporary seen"; }
	kill -TERM $pid; wait $pid; rc=$?
	exec 3>&-
	[ $rc = 143 ] || fail "$cmd: exit $rc after SIGTERM, want 143"
	notmp sdir
	rm -rf sdir
done
echo ok

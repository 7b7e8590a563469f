#!/usr/bin/env bash
# test_mpi_step.sh — data-parallel lbdpo-step under mpirun (2 and 3 ranks on
# this host) against one process with the same flags (the global batch is
# fixed: --batch-size × --grad-accum pairs per step for any N):
#   - dpo and lbdpo, with accumulation, even (4 = 2+2) and uneven (5 = 3+2)
#     micro-batches, and 3 ranks on micro-batches of 2 (a rank with none):
#     per-step loss and grad_norm of all 3 steps within 1e-5 relative; the
#     checkpoint's tensors (policy and β head weights, and the AdamW moments,
#     i.e. the accumulated gradients) within 1e-5 of the tensor's largest
#     magnitude (tests/mpi/st_close); the data position identical. At
#     --lr 1e-4: AdamW moves each weight by about lr·g/(|g|+1e-8), so an
#     element whose gradient is zero up to rounding moves by a fraction of lr
#     that depends on the summation order; the weights' difference grows with
#     lr (at 1e-3 one v_proj element in 1024 differs by 6e-5 of the tensor's
#     scale while the gradients agree to 3e-7);
#   - beta-dpo and lbdpo --group-reg, whose loss needs statistics of the
#     whole micro-batch (margin mean/std, sampled selection, group means):
#     the same checks, 2 ranks with accumulation and 3 ranks on micro-batches
#     of 2, plus beta-dpo's sampling state (rng, update count) identical and
#     its moving statistics within 1e-5 relative; a loss list with
#     aot_unpaired (a sort over the micro-batch) and a --learned-beta list;
#   - a LoRA adapter (--lora-r): the same checks on the adapter's tensors;
#   - resume with another N (1 → 2 and 2 → 3 ranks) equals one process
#     running straight through;
#   - refusal of standard input: one line;
#   - a device backend (memory apart from the host's: the CUDA backend on the
#     CPU emulator of tests/gpu/emu, build/*/emu/mpi): 2 ranks vs one
#     process, lbdpo and beta-dpo, the same checks; the summary line says
#     the gradient went through a host copy (NCCL cannot be emulated);
#   - SIGTERM to one rank stops every rank after the same step and rank 0
#     writes the checkpoint; SIGKILL to one rank fails the job and leaves the
#     previous checkpoint intact and resumable.
. "$(dirname "$0")/lib.sh"
need_mpi lbdpo-step
CLOSE="${LBDPO_TESTBIN:?}/mpi/st_close"
[ -x "$CLOSE" ] || fail "$CLOSE not built"
cd "$T"
G="$ROOT/tests/sh/gen_pairs.awk"
awk -v seed=1 -v n=64 -f "$G" | lbdpo-show --from-json -o train.ref || fail "gen train"
lbdpo-init -q -o m0 --dim 32 --layers 2 --heads 4 --vocab 32 --max-seq 64 --seed 3 || fail "lbdpo-init"
S=(--threads 1 --lr 1e-4 --beta-lr 1e-2 --beta 0.5 -q --ppl-from policy --ignore-provenance) # PPL gradient path; synthetic reference scores
jget() { sed -n "s|^ \"$1\": \([^,]*\),*$|\1|p" "$2" | head -1; }

# metrics A B: every line's loss and grad_norm within 1e-5 relative
metrics_close() {
	[ "$(wc -l <"$1")" = "$(wc -l <"$2")" ] || fail "$3: metric line counts differ"
	paste -d' ' <(sed 's/.*"loss": \([^,]*\),.*"grad_norm": \([^,]*\),.*/\1 \2/' "$1") \
		<(sed 's/.*"loss": \([^,]*\),.*"grad_norm": \([^,]*\),.*/\1 \2/' "$2") |
		awk -v what="$3" 'function rel(a, b) { d = a - b; if (d < 0) d = -d; m = a < 0 ? -a : a; return m > 0 ? d / m : d }
		{ r1 = rel($1, $3); r2 = rel($2, $4); if (r1 > w) w = r1; if (r2 > w) w = r2
		  if (r1 > 1e-5 || r2 > 1e-5) { print "FAIL: " what ": step " NR ": loss " $1 " vs " $3 ", grad_norm " $2 " vs " $4; bad = 1 } }
		END { if (!bad) printf "%s: loss and grad_norm of %d steps, worst relative difference %.2g\n", what, NR, w; exit bad }' ||
		exit 1
}
# ckpt_close A B: tensors within 1e-5, same data position and step
ckpt_close() {
	for f in ${CKF:-model.safetensors beta_head.safetensors optimizer.safetensors}; do # CKF: a LoRA checkpoint's
		"$CLOSE" "$1/$f" "$2/$f" 1e-5 || fail "$3: $f differs beyond 1e-5"
	done
	for k in step epoch pos rng bdpo_n; do
		[ "$(jget $k "$1/trainer_state.json")" = "$(jget $k "$2/trainer_state.json")" ] || fail "$3: trainer state $k differs"
	done
	for k in bdpo_m0 bdpo_sd; do
		awk -v a="$(jget $k "$1/trainer_state.json")" -v b="$(jget $k "$2/trainer_state.json")" 'BEGIN {
			d = a - b; if (d < 0) d = -d; m = a < 0 ? -a : a; exit !(d <= 1e-5 * m) }' ||
			fail "$3: trainer state $k differs beyond 1e-5 relative"
	done
}

# 1. N ranks vs one process, 3 steps. The SFT/RPO term's token mean
# spans the whole micro-batch too (dpo --sft-weight, --loss sft).
np_vs_one() { # ranks batch accum loss-options...
	local n=$1 b=$2 a=$3
	shift 3
	local tag
	tag=$(echo "$*" | tr -d ' -')-np$n-b$b-a$a
	lbdpo-step --model m0 --output one_$tag -i "${IN:-train.ref}" --steps 3 --batch-size $b --grad-accum $a \
		"${S[@]}" "$@" --metrics one_$tag.jsonl || fail "$tag: one process"
	mpi -np $n lbdpo-step --model m0 --output dp_$tag -i "${IN:-train.ref}" --steps 3 --batch-size $b \
		--grad-accum $a "${S[@]}" "$@" --metrics dp_$tag.jsonl || fail "$tag: mpirun"
	metrics_close one_$tag.jsonl dp_$tag.jsonl "$tag"
	ckpt_close one_$tag dp_$tag "$tag"
}
for loss in dpo lbdpo; do
	for cfg in "2 4 2" "2 5 2" "3 2 2"; do
		np_vs_one $cfg --loss $loss
	done
done
# chosen completions of 1 to 4 tokens: a rank's token mean is not the batch's
awk -v n=40 'BEGIN { srand(5); lv = log(32)
	printf "{\"lbdpo\": 1, \"kind\": \"ref\", \"history\": [], \"reference\": {\"path\": \"synthetic\", \"fingerprint\": \"%064d\"}}\n", 0
	for (r = 0; r < n; r++) {
		nc = 1 + r % 4; nr = 1 + (r + 1) % 3; p = "1"; c = ""; j = ""
		for (i = 0; i < 3; i++) p = p ", " 3 + int(rand() * 13)
		for (i = 0; i < nc; i++) c = c (i ? ", " : "") 3 + int(rand() * 13)
		for (i = 0; i < nr; i++) j = j (i ? ", " : "") 16 + int(rand() * 16)
		printf "{\"prompt_ids\": [%s], \"chosen_ids\": [%s], \"rejected_ids\": [%s], \"ref_chosen_logp\": %.6f, \"ref_rejected_logp\": %.6f}\n", p, c, j, -nc * lv, -nr * lv } }' |
	lbdpo-show --from-json -o var.ref || fail "gen var.ref"
IN=var.ref np_vs_one 2 5 2 --loss dpo --sft-weight 0.5
IN=var.ref np_vs_one 3 5 1 --loss sft
# Losses over the whole micro-batch: every rank sees every pair's scalars.
for cfg in "2 5 2" "3 2 2"; do
	np_vs_one $cfg --loss beta-dpo --beta 0.5
	np_vs_one $cfg --loss lbdpo --group-reg 0.5
done
# a loss list with aot_unpaired's batch sort, and the learned β on a list
np_vs_one 2 5 2 --loss dpo,aot_unpaired,sft --loss-weights 1,0.5,0.2
np_vs_one 3 5 1 --loss nca_pair,apo_down --loss-weights 1,2 --learned-beta
# LoRA: the workers all-reduce the adapter's gradient alone (the base is
# frozen). The moments (the accumulated gradients) within 1e-5; B starts at
# zero, so after 3 steps its scale is a few lr and Adam's amplification of
# rounding in near-zero gradients (above) shows at 8e-5 of it (1.6e-8
# absolute, measured): the adapter's tensors get 1e-3 of their scale.
CKF="beta_head.safetensors optimizer.safetensors" np_vs_one 2 5 2 --loss lbdpo --lora-r 4
"$CLOSE" one_losslbdpolorar4-np2-b5-a2/adapter_model.safetensors dp_losslbdpolorar4-np2-b5-a2/adapter_model.safetensors \
	1e-3 || fail "LoRA: adapter_model.safetensors differs beyond 1e-3 of its scale"

# 2. Resume with another N: 2 steps + 2 steps vs 4 straight (one process).
for loss in dpo lbdpo; do
	R=(--loss $loss --batch-size 5 --grad-accum 2 --total-steps 4 "${S[@]}")
	lbdpo-step --model m0 --output straight_$loss -i train.ref --steps 4 "${R[@]}" --metrics st_$loss.jsonl || fail "straight"
	lbdpo-step --model m0 --output r12_$loss -i train.ref --steps 2 "${R[@]}" --metrics r12_$loss.jsonl || fail "1 rank, first half"
	mpi -np 2 lbdpo-step --model r12_$loss --output r12_$loss -i train.ref --steps 2 "${R[@]}" --metrics r12_$loss.jsonl ||
		fail "2 ranks, resumed"
	metrics_close st_$loss.jsonl r12_$loss.jsonl "$loss resumed 1 -> 2 ranks"
	ckpt_close straight_$loss r12_$loss "$loss resumed 1 -> 2 ranks"
	mpi -np 2 lbdpo-step --model m0 --output r23_$loss -i train.ref --steps 2 "${R[@]}" --metrics r23_$loss.jsonl || fail "2 ranks, first half"
	mpi -np 3 lbdpo-step --model r23_$loss --output r23_$loss -i train.ref --steps 2 "${R[@]}" --metrics r23_$loss.jsonl ||
		fail "3 ranks, resumed"
	metrics_close st_$loss.jsonl r23_$loss.jsonl "$loss resumed 2 -> 3 ranks"
	ckpt_close straight_$loss r23_$loss "$loss resumed 2 -> 3 ranks"
done

# The CUDA backend on the emulator: its gradient lives in device memory.
EM="${LBDPO_TESTBIN}/../emu/mpi/lbdpo-step"
if [ -x "$EM" ]; then
	for loss in lbdpo beta-dpo; do
		# (not -q: rank 0's summary line says how the gradient was summed)
		E=(--model m0 -i train.ref --device cuda --steps 3 --batch-size 5 --grad-accum 2 --loss $loss
			--threads 1 --lr 1e-4 --beta-lr 1e-2 --beta 0.5 --ppl-from policy --ignore-provenance)
		"$EM" --output emu1_$loss "${E[@]}" -q --metrics emu1_$loss.jsonl || fail "emulated cuda, one process"
		mpi -np 2 "$EM" --output emu2_$loss "${E[@]}" --metrics emu2_$loss.jsonl 2>emu2_$loss.err ||
			fail "emulated cuda, 2 ranks: $(cat emu2_$loss.err)"
		grep -q 'in the all-reduce (.*gradient: MPI through a host copy)' emu2_$loss.err ||
			fail "emulated cuda: the gradient did not go through the host copy: $(cat emu2_$loss.err)"
		metrics_close emu1_$loss.jsonl emu2_$loss.jsonl "emulated cuda $loss"
		ckpt_close emu1_$loss emu2_$loss "emulated cuda $loss"
	done
else
	echo "note: $EM not built (SANITIZE=1 or CUDA=1 build): no device-memory check"
fi

# 2b. --eval-input under 2 ranks: rank 0 scores the held-out records and
# hands every rank the summary, so all take the same --save-best decision
# (a rank that saved alone would hang the parameter check); the eval lines
# agree with one process's; rank 0 alone writes --tensorboard.
awk -v seed=2 -v n=12 -f "$G" | lbdpo-show --from-json -o held.ref || fail "gen held-out"
V=(--model m0 -i train.ref --steps 4 --batch-size 4 --loss lbdpo --eval-input held.ref --eval-steps 2
	--save-best eval/loss "${S[@]}")
lbdpo-step --output ev1 "${V[@]}" --metrics ev1.jsonl || fail "eval, one process"
mpi -np 2 lbdpo-step --output ev2 "${V[@]}" --metrics ev2.jsonl --tensorboard tb2 || fail "eval, 2 ranks"
[ "$(grep -c '"eval/loss"' ev2.jsonl)" = 2 ] || fail "2 ranks: expected 2 eval lines"
paste -d' ' <(grep '"eval/loss"' ev1.jsonl | sed 's/.*"eval\/loss": \([^,]*\).*/\1/') \
	<(grep '"eval/loss"' ev2.jsonl | sed 's/.*"eval\/loss": \([^,]*\).*/\1/') |
	awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 1e-5 * ($1 < 0 ? -$1 : $1)) bad++ } END { exit bad > 0 || NR != 2 }' ||
	fail "eval/loss of 2 ranks differs from one process's"
[ -f ev2.best/trainer_state.json ] && grep -q '"best"' ev2.best/trainer_state.json || fail "2 ranks: no ev2.best"
[ "$(ls tb2 | grep -c tfevents)" = 1 ] || fail "2 ranks: expected one events file: $(ls tb2)"

# 3. Refusal, printed once, nothing written.
refuse() {
	local want=$1
	shift
	mpi -np 2 lbdpo-step --model m0 --output refused --steps 1 "${S[@]}" "$@" >/dev/null 2>err && fail "accepted with 2 ranks: $*"
	grep -q "$want" err || fail "refusal of $*: $(cat err)"
	[ "$(grep -c 'error:' err)" = 1 ] || fail "refusal of $* printed more than once: $(cat err)"
	[ -e refused ] && fail "a refused run wrote --output"
	return 0
}
refuse "error: with 2 MPI ranks the input must be a file" <train.ref

# start a long 2-rank run writing a checkpoint every step; wait for the first
long_run() {
	rm -rf long
	mpirun --oversubscribe -np 2 lbdpo-step --model m0 --output long -i train.ref --steps 100000 --batch-size 4 --save-every 1 \
		"${S[@]}" 2>"$1" &
	mp=$!
	pid=
	for _ in $(seq 400); do
		pid=$(rank_pid 1 'lbdpo-step --model m0 --output long')
		[ -n "$pid" ] && [ -e long/trainer_state.json ] && break
		sleep 0.05
	done
	[ -n "$pid" ] && [ -e long/trainer_state.json ] || { kill $mp; fail "no first checkpoint from the 2-rank run"; }
}

# 4. SIGTERM to rank 1 only: every rank stops after the same step, rank 0
# saves, the job exits 128+15; the checkpoint resumes.
long_run e_term
kill -TERM "$pid"
wait $mp
rc=$?
[ $rc = 143 ] || fail "SIGTERM to rank 1: mpirun exited $rc, expected 143: $(cat e_term)"
grep -q 'lbdpo-step: warning: stopped by signal 15 after step [0-9]*; checkpoint written' e_term || fail "no stop message: $(cat e_term)"
s1=$(jget step long/trainer_state.json)
lbdpo-step --model long --output long -i train.ref --steps 1 --batch-size 4 "${S[@]}" || fail "resume after SIGTERM"
[ "$(jget step long/trainer_state.json)" = $((s1 + 1)) ] || fail "resume after SIGTERM: not at step $((s1 + 1))"

# 5. SIGKILL to rank 1: the job fails; the last checkpoint written is whole
# and resumes with another N.
long_run e_kill
sleep 0.3
kill -KILL "$pid" || fail "cannot kill rank 1"
wait $mp && fail "the job succeeded although rank 1 was killed"
grep -q 'rank 1 .*exited on signal 9' e_kill || fail "mpirun did not name the killed rank: $(cat e_kill)"
s1=$(jget step long/trainer_state.json)
[ -n "$s1" ] && [ "$s1" -ge 1 ] || fail "no checkpoint left after the kill"
mpi -np 3 lbdpo-step --model long --output long -i train.ref --steps 2 --batch-size 4 "${S[@]}" || fail "resume after SIGKILL (3 ranks)"
[ "$(jget step long/trainer_state.json)" = $((s1 + 2)) ] || fail "resume after SIGKILL: not at step $((s1 + 2))"
echo "ok"

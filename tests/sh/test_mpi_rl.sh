#!/usr/bin/env bash
# test_mpi_rl.sh — data-parallel lbdpo-step --loss ppo|grpo|rloo under mpirun
# (2 and 3 ranks on this host) against one process with the same flags, on
# synthetic rollouts of a tiny random model: completions of 0 to 5 tokens,
# with and without the stop token, rewards in [0, 1), no token_logps (the
# step scores them), --ref another model (a KL that is not 0):
#   - ppo with 2 epochs of uneven mini-batches (10 rollouts in 3: 4+4+2, a
#     rank with 1 row of one), PPO-ptx and the global whitening of the
#     advantages; grpo and rloo on groups of 4 (the group statistics); rloo
#     on 3 ranks; ppo with a LoRA adapter; a second call continuing the
#     first's optimizer (-m its output);
#   - every number of the --metrics line within 1e-5 relative (floor 1e-6
#     absolute); the policy's, the value model's and the AdamW moments'
#     tensors within 1e-5 of each tensor's largest magnitude
#     (tests/mpi/st_close). The ranks score other subsets of rows in a
#     forward and sum the gradient in another order: the per-token log-probs
#     and the gradients differ from one process's in the last bits (~1e-7
#     relative); at --lr 1e-4 AdamW moves each weight by about lr·g/|g|, so
#     an element with a gradient that is zero up to rounding moves by an
#     order-dependent fraction of lr (tests/sh/test_mpi_step.sh). The LoRA
#     adapter's B starts at zero: its scale after the update is a few lr and
#     that rounding shows at 2.2e-5 of it (measured): 1e-3 (as test_mpi_step's LoRA);
#   - the global step and the data position in trainer_state.json identical;
#   - the CUDA backend on the CPU emulator (its moments and gradient in memory
#     apart from the host's): 2 ranks vs one process, two calls, the same
#     checks; the second call equals the CPU's within 1e-4 (the emulator's
#     floor in test_ppo; measured 2.3e-6), so the moments reached the device;
#   - standard input refused with 2 ranks, once.
. "$(dirname "$0")/lib.sh"
need_mpi lbdpo-step
CLOSE="${LBDPO_TESTBIN:?}/mpi/st_close"
[ -x "$CLOSE" ] || fail "$CLOSE not built"
cd "$T"
lbdpo-init -q -o m0 --dim 32 --layers 2 --heads 4 --vocab 32 --max-seq 64 --seed 3 || fail "lbdpo-init"
lbdpo-init -q -o ref --dim 32 --layers 2 --heads 4 --vocab 32 --max-seq 64 --seed 4 || fail "lbdpo-init ref"
# n prompts, g samples each: prompt [1, 3 tokens], completion of (i mod 6)
# tokens (the empty one without a stop token), stop token 2 on every other
gen() {
	awk -v n="$1" -v g="$2" -v seed="$3" 'BEGIN { srand(seed)
		for (p = 0; p < n; p++) {
			pr = "1"; for (i = 0; i < 3; i++) pr = pr "," 3 + int(rand() * 28)
			for (s = 0; s < g; s++) {
				k = (p * g + s) % 6; ids = ""
				for (i = 0; i < k; i++) ids = ids (i ? "," : "") 3 + int(rand() * 28)
				eos = (k > 0 && (p + s) % 2) ? ",\"eos_id\":2" : ""
				printf "{\"prompt_ids\":[%s],\"ids\":[%s]%s,\"sample\":%d,\"reward\":%.4f}\n", pr, ids, eos, s, rand() } } }'
}
gen 10 1 1 >ppo.jsonl
gen 3 4 2 >grp.jsonl
awk -v seed=1 -v n=8 -f "$ROOT/tests/sh/gen_pairs.awk" | lbdpo-show --from-json -o ptx.tok || fail "ptx data"
S=(--ref ref --threads 1 --lr 1e-4 -q)

# every number of two metrics lines within 1e-5 relative (1e-6 absolute floor)
metrics_close() {
	paste <(grep -o -- '-\?[0-9][0-9]*\(\.[0-9]*\)\?\([eE][-+]\?[0-9]*\)\?' "$1") \
		<(grep -o -- '-\?[0-9][0-9]*\(\.[0-9]*\)\?\([eE][-+]\?[0-9]*\)\?' "$2") |
		awk -v what="$3" '{ d = $1 - $2; if (d < 0) d = -d; m = $1 < 0 ? -$1 : $1; if (m < 0.1) m = 0.1
			if (d / m > w) w = d / m; if (d > 1e-5 * m && d > 1e-6) { print "FAIL: " what ": " $1 " vs " $2; bad = 1 } n++ }
			END { if (!bad) printf "%s: %d metrics, worst relative difference %.2g\n", what, n, w; exit bad || n < 10 }' ||
		fail "$3: metrics differ"
}
jget() { sed -n "s|^ \"$1\": \([^,]*\),*$|\1|p" "$2" | head -1; }
ckpt_close() { # one dp what files...
	local a=$1 b=$2 what=$3 f
	shift 3
	for f in "$@"; do
		"$CLOSE" "$a/$f" "$b/$f" "${TOL:-1e-5}" || fail "$what: $f differs beyond ${TOL:-1e-5}"
	done
	for k in step epoch pos; do
		[ "$(jget $k "$a/trainer_state.json")" = "$(jget $k "$b/trainer_state.json")" ] || fail "$what: trainer state $k differs"
	done
}
FULL=(model.safetensors optimizer.safetensors)
VAL=(value/model.safetensors value/optimizer.safetensors)
np_vs_one() { # ranks tag files-var input options...
	local n=$1 tag=$2 in=$4
	local -n files=$3
	shift 4
	lbdpo-step -m m0 -i "$in" "${S[@]}" "$@" --metrics one_$tag.m -o one_$tag || fail "$tag: one process"
	mpi -np "$n" lbdpo-step -m m0 -i "$in" "${S[@]}" "$@" --metrics dp_$tag.m -o dp_$tag || fail "$tag: mpirun -np $n"
	[ "$(wc -l <dp_$tag.m)" = 1 ] || fail "$tag: rank 0 alone writes --metrics"
	metrics_close one_$tag.m dp_$tag.m "$tag"
	ckpt_close one_$tag dp_$tag "$tag" "${files[@]}"
}
PPOF=("${FULL[@]}" "${VAL[@]}")
np_vs_one 2 ppo PPOF ppo.jsonl --loss ppo --epochs 2 --num-mini-batches 3 --ptx-coef 0.5 --ptx-data ptx.tok
grep -q '"ptx/nll":' dp_ppo.m || fail "no ptx/nll"
np_vs_one 3 ppo3 PPOF ppo.jsonl --loss ppo --epochs 2 --num-mini-batches 2 --whiten-rewards
np_vs_one 2 grpo FULL grp.jsonl --loss grpo --kl-coef 0.1 --epochs 2 --num-mini-batches 2
np_vs_one 3 rloo FULL grp.jsonl --loss rloo --num-mini-batches 3 --normalize-advantages
LORAF=(optimizer.safetensors "${VAL[@]}")
np_vs_one 2 lora LORAF ppo.jsonl --loss ppo --epochs 2 --num-mini-batches 2 --lora-r 4
TOL=1e-3 ckpt_close one_lora dp_lora "lora adapter" adapter_model.safetensors
# LoRA dropout: the ranks draw other masks than one process (not compared),
# but count the forwards alike: a rank with no row of a mini-batch that
# another rank forwards advances its counter too, so rank 0 saves one
# process's trainer state (6 of 8 completions empty: rank 0 often has none)
for p in 5 6 7 8; do
	for i in 0 1; do
		ids=; [ $p$i = 60 ] && ids=4,5,6; [ $p$i = 81 ] && ids=7,8
		echo "{\"prompt_ids\":[1,$p],\"ids\":[$ids],\"reward\":0.$p$i}"
	done
done >sparse.jsonl
D=(-m m0 -i sparse.jsonl "${S[@]}" --loss grpo --num-generations 2 --epochs 4 --num-mini-batches 4 --lora-r 4 --lora-dropout 0.2)
lbdpo-step "${D[@]}" -o drop1 || fail "dropout, one process"
mpi -np 2 lbdpo-step "${D[@]}" -o drop2 || fail "dropout, 2 ranks"
c1=$(grep -o '"dropout_forwards": [0-9]*' drop1/trainer_state.json) c2=$(grep -o '"dropout_forwards": [0-9]*' drop2/trainer_state.json)
[ -n "$c1" ] && [ "$c1" = "$c2" ] || fail "LoRA dropout counter: one process $c1, 2 ranks $c2"
# a second call from the first's output: the optimizer goes on, on 2 ranks alike
lbdpo-step -m one_grpo -i grp.jsonl "${S[@]}" --loss grpo --kl-coef 0.1 --metrics one_g2.m -o one_g2 || fail "grpo call 2"
mpi -np 2 lbdpo-step -m dp_grpo -i grp.jsonl "${S[@]}" --loss grpo --kl-coef 0.1 --metrics dp_g2.m -o dp_g2 || fail "grpo call 2, 2 ranks"
metrics_close one_g2.m dp_g2.m "grpo, second call"
ckpt_close one_g2 dp_g2 "grpo, second call" "${FULL[@]}"
[ "$(jget step one_g2/trainer_state.json)" = 5 ] || fail "second call: global step $(jget step one_g2/trainer_state.json), want 2·2 + 1"

# the CUDA backend on the CPU emulator (memory apart from the host's: the
# moments are mirrors, the gradient goes through a host copy): 2 ranks vs
# one process, PPO, then a second call continuing the optimizer
EM="${LBDPO_TESTBIN}/../emu/mpi/lbdpo-step"
if [ -x "$EM" ]; then
	E=(--device cuda --loss ppo --epochs 2 --num-mini-batches 2 "${S[@]}" -i ppo.jsonl)
	"$EM" -m m0 "${E[@]}" --metrics emu1.m -o emu1 2>/dev/null || fail "emulated cuda, one process"
	mpi -np 2 "$EM" -m m0 "${E[@]}" --metrics emu2.m -o emu2 2>/dev/null || fail "emulated cuda, 2 ranks"
	metrics_close emu1.m emu2.m "emulated cuda ppo"
	ckpt_close emu1 emu2 "emulated cuda ppo" "${PPOF[@]}"
	"$EM" -m emu1 --value-model emu1/value "${E[@]}" --metrics emu1b.m -o emu1b 2>/dev/null || fail "emulated cuda, call 2"
	mpi -np 2 "$EM" -m emu2 --value-model emu2/value "${E[@]}" --metrics emu2b.m -o emu2b 2>/dev/null || fail "emulated cuda, call 2, 2 ranks"
	metrics_close emu1b.m emu2b.m "emulated cuda ppo, second call"
	ckpt_close emu1b emu2b "emulated cuda ppo, second call" "${PPOF[@]}"
	lbdpo-step -m m0 --loss ppo --epochs 2 --num-mini-batches 2 "${S[@]}" -i ppo.jsonl -o cpu1 || fail "cpu"
	lbdpo-step -m cpu1 --value-model cpu1/value --loss ppo --epochs 2 --num-mini-batches 2 "${S[@]}" -i ppo.jsonl \
		--metrics cpu1b.m -o cpu1b || fail "cpu, call 2"
	TOL=1e-4 ckpt_close cpu1b emu1b "cpu vs emulated cuda, second call" "${PPOF[@]}"
else
	echo "note: $EM not built (SANITIZE=1 or CUDA=1 build): no device-memory check"
fi

# standard input: refused once, nothing written
mpi -np 2 lbdpo-step --loss grpo -m m0 -o refused <grp.jsonl >/dev/null 2>err && fail "stdin accepted with 2 ranks"
grep -q 'error: with 2 MPI ranks the input must be a file' err || fail "stdin refusal: $(cat err)"
[ "$(grep -c 'error:' err)" = 1 ] || fail "refusal printed more than once: $(cat err)"
[ ! -e refused ] || fail "a refused run wrote --output"
echo ok

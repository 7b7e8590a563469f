#!/usr/bin/env bash
# test_gpu.sh — every CUDA kernel against its CPU twin (tests/gpu/gpu_kernels)
# and the device error messages. Skips (77) with the reason on its last line
# when nvcc did not build the harness or no GPU is present; the device-spec
# and no-GPU error paths are checked either way.
. "$(dirname "$0")/lib.sh"
H="${LBDPO_TESTBIN:-$ROOT/build/rel/tests}/gpu/gpu_kernels"
[ -x "$H" ] || { echo "skipped: CUDA kernels not built (nvcc not found)"; exit 77; }
# ASan's shadow-gap guard collides with the CUDA driver's mappings.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}protect_shadow_gap=0"

# malformed --device specs: one-line errors on any machine
for spec in cudax cuda: cuda:-1 cuda:2x gpu; do
	msg=$("$H" --select "$spec" 2>&1 >/dev/null); rc=$?
	[ $rc = 1 ] || fail "--select $spec: exit $rc, want 1"
	[ "$(printf '%s\n' "$msg" | wc -l)" = 1 ] || fail "--select $spec: not one line: $msg"
	grep -q "^gpu_kernels: error: --device $spec: expected" <<<"$msg" || fail "--select $spec: $msg"
done

out=$("$H"); rc=$?
if [ $rc = 77 ]; then
	# no GPU: asking for one is a clean one-line error
	msg=$("$H" --select cuda 2>&1 >/dev/null); rc=$?
	[ $rc = 1 ] || fail "--select cuda without a GPU: exit $rc, want 1"
	[ "$(printf '%s\n' "$msg" | wc -l)" = 1 ] || fail "--select cuda without a GPU: not one line: $msg"
	grep -q '^gpu_kernels: error: --device cuda: no CUDA GPU' <<<"$msg" || fail "unexpected: $msg"
	echo "$out" # the reason, last line
	exit 77
fi
printf '%s\n' "$out"
[ $rc = 0 ] || fail "CUDA kernels differ from their CPU twins (exit $rc)"

# a GPU is present: device numbers out of range and out-of-memory
msg=$("$H" --select cuda:1024 2>&1 >/dev/null) && fail "--select cuda:1024 succeeded"
grep -q 'error: --device cuda:1024: device 1024 does not exist' <<<"$msg" || fail "unexpected: $msg"
msg=$("$H" --oom 2>&1 >/dev/null) && fail "--oom succeeded"
grep -q 'error: cuda: out of GPU memory: asked for 4503599627370496 bytes' <<<"$msg" || fail "unexpected: $msg"
grep -q 'lower the batch tokens' <<<"$msg" || fail "no advice in: $msg"

# TF32 through the backend API (backend_set_tf32), as on the emulator
out=$("$H" --tf32) || fail "--tf32 exited $?"
{ [ "$(sed -n 1p <<<"$out")" = 'cpu | want 1' ] && sed -n 2p <<<"$out" | grep -q '^cuda:0 (.*) tf32 | cuda 1$' &&
	sed -n 3p <<<"$out" | grep -q '^cuda:0 (.* GiB) | cuda 0$'; } || fail "--tf32: $out"

# the programs with --device cuda against --device cpu (test_cuda_emu.sh's
# comparisons, on the GPU)
P="$(dirname "$H")/../../cuda/bin"
if [ -x "$P/lbdpo-step" ]; then
	LBDPO_CUDA_BIN="$P" bash "$ROOT/tests/sh/test_cuda_emu.sh" || fail "programs on the GPU differ from the CPU"
fi
echo "ok"

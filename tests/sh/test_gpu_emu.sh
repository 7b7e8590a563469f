#!/usr/bin/env bash
# test_gpu_emu.sh — the CUDA kernels of libcore/nn/cuda, compiled by g++ against
# the CPU emulator of tests/gpu/emu (threads as coroutines, real barriers and
# warp shuffles, cuBLAS as column-major cblas), against their CPU twins. No
# GPU or nvcc needed; checks indexing, reductions, synchronization and the
# cuBLAS argument mapping, not GPU code generation (test_gpu.sh does that).
. "$(dirname "$0")/lib.sh"
H="${LBDPO_TESTBIN:-$ROOT/build/rel/tests}/gpu/gpu_kernels_emu"
if [ ! -x "$H" ]; then
	[ "${SANITIZE:-}" = 1 ] && { echo "skipped: the emulator is not built under SANITIZE=1 (coroutine stacks)"; exit 77; }
	fail "$H not built"
fi
out=$("$H" 2>&1); rc=$?
printf '%s\n' "$out"
[ $rc = 0 ] || fail "emulated CUDA kernels differ from their CPU twins (exit $rc)"
n=$(grep -c ' ok ' <<<"$out")
[ "$n" -ge 150 ] || fail "only $n checks ran"

# the error messages, on the emulated one-device 16 GiB machine
msg=$("$H" --oom 2>&1 >/dev/null) && fail "--oom succeeded"
grep -q '^gpu_kernels: error: cuda: out of GPU memory: asked for 4503599627370496 bytes (.*) with .* MiB free; lower the batch tokens (--batch-tokens) or the sequence length$' <<<"$msg" || fail "unexpected: $msg"
msg=$("$H" --select cuda:1 2>&1 >/dev/null) && fail "--select cuda:1 succeeded"
grep -q '^gpu_kernels: error: --device cuda:1: device 1 does not exist (1 CUDA device: 0..0)$' <<<"$msg" || fail "unexpected: $msg"
"$H" --select cuda:0 | grep -q '^cuda:0 CPU emulator' || fail "--select cuda:0"
# TF32 through the backend API (backend_set_tf32): ignored by the CPU
# backend, set on the CUDA one whether asked before or after the choice,
# and named in the device description
out=$("$H" --tf32) || fail "--tf32 exited $?"
want='cpu | want 1
cuda:0 (CPU emulator (tests/gpu/emu), 16.0 GiB) tf32 | cuda 1
cuda:0 (CPU emulator (tests/gpu/emu), 16.0 GiB) | cuda 0
cuda:0 (CPU emulator (tests/gpu/emu), 16.0 GiB) tf32 | cuda 1'
[ "$out" = "$want" ] || fail "--tf32: got
$out"
# the emulator's device-memory check: a host pointer handed to a kernel
msg=$("$H" --host-pointer 2>&1 >/dev/null) && fail "--host-pointer ran"
grep -q '^emu: residual_k: argument 2 (0x[0-9a-f]*) is not device memory (a fault on a GPU)$' <<<"$msg" ||
	fail "host pointer not caught: $msg"

#!/usr/bin/env bash
# test_gpu_emu.sh — the CUDA kernels of libcore/cuda, compiled by g++ against
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

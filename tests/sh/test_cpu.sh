#!/usr/bin/env bash
# OpenBLAS core at start-up: --version names BLAS, core and threads; a core
# the user forces is kept; unforced, a CPU with AVX2+FMA never runs an SSE core.
. "$(dirname "$0")/lib.sh"
lbdpo-step --version > "$T/v" || fail "--version"
grep -q '^BLAS: .*, core [A-Za-z0-9_]*.*, [0-9]* threads$' "$T/v" || fail "--version lacks the BLAS line: $(cat "$T/v")"
OPENBLAS_CORETYPE=Prescott lbdpo-logprob --version | grep -q 'core Prescott (OPENBLAS_CORETYPE=Prescott)' ||
	fail "a user's OPENBLAS_CORETYPE is not respected"
if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && grep -q 'DYNAMIC_ARCH' "$T/v"; then
	core=$(env -u OPENBLAS_CORETYPE lbdpo-beta --version | sed -n 's/^BLAS: .*, core \([A-Za-z0-9_]*\).*/\1/p')
	case $core in
	Haswell | Zen | Excavator | SkylakeX | Cooperlake | SapphireRapids) ;;
	*) fail "AVX2 CPU runs OpenBLAS core '$core'" ;;
	esac
fi
exit 0

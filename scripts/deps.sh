#!/usr/bin/env bash
# deps.sh — install the Debian packages lbdpo needs to build and test, only
# when something is missing. Safe to run repeatedly.
#   --mpi   also Open MPI (mpicc, mpirun), which `make test` needs for the
#           multi-rank tests; building and the demo do not.
set -eu
need=()
have_pc() { pkg-config --exists "$1" 2>/dev/null; }
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v make >/dev/null 2>&1 || need+=(make)
have_pc openblas   || need+=(libopenblas-dev)
have_pc msgpack    || need+=(libmsgpack-dev)
have_pc criterion  || need+=(libcriterion-dev)
have_pc jansson    || need+=(libjansson-dev)
have_pc libpcre2-8 || need+=(libpcre2-dev)
have_pc zlib       || need+=(zlib1g-dev)
have_pc libcrypto  || need+=(libssl-dev)
have_pc libutf8proc || need+=(libutf8proc-dev)
# oneDNN: the bf16 matrix products of --dtype bf16 (the build leaves them out
# without it)
[ -e /usr/include/oneapi/dnnl/dnnl.h ] || need+=(libdnnl-dev)
[ -x /usr/bin/time ] || need+=(time)
# plots of lbdpo-eval --plot and make experiment (optional at run time: without
# it they write their data and gnuplot scripts and say so)
command -v gnuplot >/dev/null 2>&1 || need+=(gnuplot-nox)

if [ "${1:-}" = --mpi ]; then
	command -v mpicc >/dev/null 2>&1 || need+=(libopenmpi-dev)
	command -v mpirun >/dev/null 2>&1 || need+=(openmpi-bin)
	# make fuzz's own report is tested on planted libFuzzer targets
	command -v clang >/dev/null 2>&1 || need+=(clang)
	# test_format checks the tree against .clang-format
	command -v clang-format >/dev/null 2>&1 || need+=(clang-format)
fi
[ ${#need[@]} -eq 0 ] && exit 0
echo "lbdpo: installing missing packages: ${need[*]}" >&2
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
		echo "lbdpo: error: not root; run: apt-get install ${need[*]}" >&2; exit 1
	fi
else SUDO=; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true  # may only warn; the install decides
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >&2

#!/usr/bin/env bash
# run.sh — build every tests/fuzz/fuzz_*.c with libFuzzer (clang) and run each
# for FUZZ_SECONDS (default 900). Corpora live in build/fuzz/<name>.corpus/ and
# are seeded from tests/fixtures/fuzz/<name>/ (rebuilt by make_seeds.sh), with
# the dictionary tests/fuzz/<name>.dict.
#
# Findings: a crash, leak, out-of-memory or sanitizer report (UBSan's
# "runtime error:" too: UBSAN_OPTIONS halts on it, so libFuzzer saves the
# input), and an input that runs longer than FUZZ_TIMEOUT seconds (default
# 10; libFuzzer's own default, 1200 s, would outlast a short run and report
# nothing). Each is saved as build/fuzz/<name>-{crash,leak,oom,timeout}-*.
# Prints executions and findings per target, then a summary table; exits 1
# on any finding or a target that did not build or run.
#
# FUZZ=substring runs the matching targets only; FUZZ_OUT (default build/fuzz)
# is where builds, corpora, logs and findings go. FUZZ_DIR (default
# tests/fuzz) and FUZZ_LINK (default "base/*.c formats/*.c", the sources
# every target is linked with) let tests/sh/test_fuzz_report.sh run planted
# targets.
set -eu
cd "$(dirname "$0")/../.."
if ! command -v clang >/dev/null; then
	if [ "$(id -u)" = 0 ]; then
		echo "lbdpo: installing clang for libFuzzer" >&2
		apt-get update -qq || true
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends clang >&2
	else
		echo "make fuzz needs clang (apt-get install clang)" >&2; exit 1
	fi
fi
secs=${FUZZ_SECONDS:-900}
tmo=${FUZZ_TIMEOUT:-10}
only=${FUZZ:-}
dir=${FUZZ_DIR:-tests/fuzz}
link=${FUZZ_LINK-base/*.c formats/*.c}
out=${FUZZ_OUT:-build/fuzz}; mkdir -p "$out"
libs=$(pkg-config --cflags --libs msgpack jansson libpcre2-8 zlib libcrypto libutf8proc)
status=0
summary=()
for src in "$dir"/fuzz_*.c; do
	name=$(basename "$src" .c)
	[ -n "$only" ] && [[ $name != *$only* ]] && continue
	# each target links the format readers it needs; all of formats/ is cheap
	# shellcheck disable=SC2086 # $link is a list of globs
	if ! clang -g -O1 -fsanitize=fuzzer,address,undefined -w -I. "$src" $link $libs -lm -o "$out/$name"; then
		summary+=("$(printf '%-20s %12s %9s' "$name" - "no build")"); status=1; continue
	fi
	mkdir -p "$out/$name.corpus"
	# the template engine also starts from the real chat templates when the
	# shared assets are beside the checkout (never copied into the repo)
	if [ "$name" = fuzz_jinja ]; then
		for t in "${LBDPO_SHARED:-../shared}"/assets/chat/templates/*.jinja; do
			[ -f "$t" ] && cp "$t" "$out/$name.corpus/real_$(basename "$t" .jinja)"
		done
	fi
	seeds="tests/fixtures/fuzz/$name"
	[ -d "$seeds" ] || seeds=""
	dict=""
	[ -f "$dir/$name.dict" ] && dict="-dict=$dir/$name.dict"
	echo "== $name: ${secs}s, ${tmo}s per input"
	stamp="$out/$name.stamp"; : >"$stamp"
	rc=0
	ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 "$out/$name" \
		-max_total_time="$secs" -timeout="$tmo" -print_final_stats=1 -close_fd_mask=2 \
		-artifact_prefix="$out/$name-" $dict "$out/$name.corpus" $seeds 2>"$out/$name.log" || rc=$?
	# executions: the final stats, else the last status line ("#1234 ...")
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$name.log" | tail -1)
	[ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9][0-9]*\)[[:space:]].*/\1/p' "$out/$name.log" | tail -1)
	# findings of this run: the inputs saved since it started, else the
	# reports in its log (a finding whose input could not be saved)
	saved=$(find "$out" -maxdepth 1 -newer "$stamp" \( -name "$name-crash-*" -o -name "$name-leak-*" \
		-o -name "$name-timeout-*" -o -name "$name-oom-*" \) | wc -l)
	reports=$(grep -c -E 'runtime error:|ERROR: (AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer|libFuzzer)' \
		"$out/$name.log" || true)
	found=$saved
	[ "$found" -gt 0 ] || found=$reports
	[ "$found" -gt 0 ] || [ "$rc" = 0 ] || found=1 # exited nonzero for another reason
	grep -E 'runtime error:|ERROR: (AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer|libFuzzer)' "$out/$name.log" | head -5 || true
	find "$out" -maxdepth 1 -newer "$stamp" -name "$name-*-*" ! -name "*.corpus" | sed 's/^/saved: /'
	echo "$name: executions ${execs:-0}, findings (crash, timeout, sanitizer report, out of memory): $found"
	summary+=("$(printf '%-20s %12s %9s' "$name" "${execs:-0}" "$found")")
	[ "$found" = 0 ] || status=1
	rm -f "$stamp"
done
echo "== summary"
printf '%-20s %12s %9s\n' target executions findings
printf '%s\n' "${summary[@]}"
[ "$status" = 0 ] && echo "fuzz: no findings" || echo "fuzz: FAILED (see $out/<target>.log)"
exit $status

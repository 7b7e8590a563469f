#!/usr/bin/env bash
# run.sh — build every tests/fuzz/fuzz_*.c with libFuzzer (clang) and run each
# for FUZZ_SECONDS (default 900). Corpora live in build/fuzz/<name>.corpus/ and
# are seeded from tests/fixtures/fuzz/<name>/ (rebuilt by make_seeds.sh), with
# the dictionary tests/fuzz/<name>.dict. Prints executions and crashes per target.
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
only=${FUZZ:-}
out=build/fuzz; mkdir -p "$out"
libs=$(pkg-config --cflags --libs msgpack jansson libpcre2-8 zlib libcrypto libutf8proc)
status=0
for src in tests/fuzz/fuzz_*.c; do
	name=$(basename "$src" .c)
	[ -n "$only" ] && [[ $name != *$only* ]] && continue
	# each target links the format readers it needs; all of formats/ is cheap
	clang -g -O1 -fsanitize=fuzzer,address,undefined -w -I. "$src" base/*.c formats/*.c \
		$libs -lm -o "$out/$name"
	mkdir -p "$out/$name.corpus"
	seeds="tests/fixtures/fuzz/$name"
	[ -d "$seeds" ] || seeds=""
	dict=""
	[ -f "tests/fuzz/$name.dict" ] && dict="-dict=tests/fuzz/$name.dict"
	echo "== $name: ${secs}s"
	ASAN_OPTIONS=detect_leaks=0 "$out/$name" -max_total_time="$secs" -print_final_stats=1 -close_fd_mask=2 \
		-artifact_prefix="$out/$name-" $dict "$out/$name.corpus" $seeds 2>"$out/$name.log" || status=1
	grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$out/$name.log" || true
	crashes=$(ls "$out/$name"-crash-* "$out/$name"-leak-* "$out/$name"-timeout-* "$out/$name"-oom-* 2>/dev/null | wc -l)
	echo "$name: crashes/timeouts/out-of-memory found: $crashes"
	[ "$crashes" = 0 ] || status=1
done
exit $status

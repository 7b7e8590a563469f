#!/usr/bin/env bash
# A large stream passes through lbdpo-show in constant memory.
. "$(dirname "$0")/lib.sh"
[ -x /usr/bin/time ] || { echo "skipped: /usr/bin/time absent (apt-get install time)"; exit 77; }
n=${STREAM_RECORDS:-200000}
{ echo '{"lbdpo":1,"kind":"tokens","history":[]}'
  awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) printf "{\"id\":%d,\"prompt_ids\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30],\"chosen_ids\":[100,200,300,400,500,600,700,800],\"rejected_ids\":[900,1000,1100,1200,1300],\"group\":\"g%d\",\"text\":\"the quick brown fox jumps over the lazy dog again and again\"}\n", i, i % 7 }'
} > "$T/big.jsonl"
/usr/bin/time -f '%M' -o "$T/rss1" lbdpo-show --from-json -i "$T/big.jsonl" -o "$T/big.rec" || fail "from-json"
/usr/bin/time -f '%M' -o "$T/rss2" lbdpo-show -i "$T/big.rec" -o "$T/big2.jsonl" || fail "show"
size=$(stat -c %s "$T/big.rec")
cmp "$T/big.jsonl" "$T/big2.jsonl" || fail "large stream round trip"
r1=$(tail -1 "$T/rss1"); r2=$(tail -1 "$T/rss2")
echo "stream: $size bytes; peak RSS from-json ${r1} KiB, show ${r2} KiB"
if [ "${SANITIZE:-}" = 1 ]; then echo "skipped: peak RSS is not meaningful under AddressSanitizer (round trip checked)"; exit 77; fi
# constant memory: far below the stream size (the stream is ~60 MB)
[ "$r2" -lt 65536 ] || fail "lbdpo-show used ${r2} KiB on a $size-byte stream"
[ "$r1" -lt 65536 ] || fail "lbdpo-show --from-json used ${r1} KiB"

# JSONL: every reader refuses a line over 16 MiB (JSONL_MAX_LINE) before it
# costs memory (lbdpo-sample took 2 GB for a 100 MiB line) ...
B="$ROOT/tests/fixtures/tokenizer/bl_split.json"
lbdpo-init -q --arch llama --dim 16 --layers 1 --heads 2 --hidden 32 --vocab 700 -o "$T/m" || fail "lbdpo-init"
{ printf '{"prompt":"'; head -c $((17 << 20)) /dev/zero | tr '\0' a; printf '","chosen":" a","rejected":" b"}\n'; } >"$T/long.jsonl"
for cmd in "lbdpo-tokenize --tokenizer $B" "lbdpo-sample -m $T/m --tokenizer $B" "lbdpo-show --from-json"; do
	/usr/bin/time -f '%M' -o "$T/rss" $cmd -i "$T/long.jsonl" -o "$T/out" 2>"$T/err" && fail "$cmd: a 17 MiB line accepted"
	grep -q "long.jsonl: line 1: longer than 16777216 bytes" "$T/err" || fail "$cmd: $(cat "$T/err")"
	r=$(tail -1 "$T/rss"); [ "$r" -lt 65536 ] || fail "$cmd: ${r} KiB to refuse a long line"
	[ ! -e "$T/out" ] || fail "$cmd: output written"
done
# ... and the worst line under the limit, one 15 MiB word (BPE holds ~24
# bytes per byte of a word), stays within the peak lbdpo-tokenize(1) states:
# 450 MiB with Llama 3's tokenizer (390-420 MB measured), 320 MiB with the fixture
{ printf '{"prompt":"'; head -c $((15 << 20)) /dev/zero | tr '\0' a; printf '","chosen":" a","rejected":" b"}\n'; } >"$T/word.jsonl"
L3="${LBDPO_SHARED:-/nonexistent}/assets/tokenizers/llama3/tokenizer.json"
if [ -f "$L3" ]; then tk=$L3 lim=460800; else tk=$B lim=327680; fi
/usr/bin/time -f '%M' -o "$T/rss" lbdpo-tokenize -q --tokenizer "$tk" -i "$T/word.jsonl" -o /dev/null 2>"$T/err"
r=$(tail -1 "$T/rss"); echo "one 15 MiB word, $(basename "$(dirname "$tk")")/$(basename "$tk"): peak RSS ${r} KiB"
[ "$r" -lt "$lim" ] || fail "one 15 MiB word: ${r} KiB (limit ${lim})"
exit 0

#!/usr/bin/env bash
# Hostile sizes (issue 17): a record with 400k keys is checked for duplicate
# keys in O(n log n) (the old pairwise check took minutes); a record with more
# values than RS_MAX_OBJECTS, or a JSONL line over 16 MiB or with more than
# JSONL_MAX_VALUES values, is refused with its position instead of taking
# 24-45 bytes of memory per value; peak memory on the largest accepted record
# stays bounded.
. "$(dirname "$0")/lib.sh"
set -o pipefail
export LC_ALL=C
cd "$T"
hdr() { printf '\x83\xa5lbdpo\x01\xa4kind\xa6tokens\xa7history\x90'; }
be32() { printf "\\x$(printf %02x $(($1 >> 24 & 255)))\\x$(printf %02x $(($1 >> 16 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))\\x$(printf %02x $(($1 & 255)))"; }

# ---- 400k distinct keys: fast; a duplicate among them is found ----
n=400000
{ hdr; printf '\xdf'; be32 $n; awk -v n=$n 'BEGIN { for (i = 0; i < n; i++) printf "%c%06d%c", 166, i, 192 }'; } > keys.rec
# a hang guard, not a timing assert: the sorted check takes well under a second
timeout 120 lbdpo-show -i keys.rec -o /dev/null || fail "400k keys: exit $? (the duplicate-key check is too slow?)"
{ hdr; printf '\xdf'; be32 $n; awk -v n=$n 'BEGIN { for (i = 0; i < n; i++) printf "%c%06d%c", 166, (i == n - 1 ? 123 : i), 192 }'; } > dup.rec
msg=$(timeout 120 lbdpo-show -i dup.rec 2>&1 >/dev/null); rc=$?
[ $rc = 1 ] && echo "$msg" | grep -q "record 1 (byte offset 29): duplicate key '000123'" || fail "duplicate among 400k keys: exit $rc: $msg"

# ---- too many values in one record ----
big() { { hdr; printf '\x81\xa1a\xdd'; be32 "$1"; head -c "$1" /dev/zero | tr '\0' '\1'; } > "$2"; }
big 5000000 many.rec
msg=$(expect_fail lbdpo-show -i many.rec)
echo "$msg" | grep -q 'record 1 (byte offset 29): more than 4194304 values' || fail "5M values accepted: $msg"
big 4000000 ok.rec
/usr/bin/time -f '%M' -o rss lbdpo-show -i ok.rec -o /dev/null 2>/dev/null || fail "4M values refused"
echo "4M-value record (4 MB): peak RSS $(tail -1 rss) KiB"
if [ "${SANITIZE:-}" != 1 ]; then
	[ "$(tail -1 rss)" -lt 262144 ] || fail "4M-value record took $(tail -1 rss) KiB"
fi
{ hdr; printf '\x81\xa1a\xc6'; be32 $((65 << 20)); } > huge.rec
expect_fail lbdpo-show -i huge.rec | grep -q 'exceeds the 67108864-byte record limit' || fail "65 MiB record not refused"

# ---- JSONL lines: length and value count ----
TOK="$ROOT/tests/fixtures/demo_tok/tokenizer.json"
awk 'BEGIN { printf "{\"prompt\":\"x\",\"extra\":[0"; for (i = 0; i < 4200000; i++) printf ",0"; print "],\"chosen\":\"a\",\"rejected\":\"b\"}" }' > vals.jsonl
msg=$(expect_fail lbdpo-tokenize --tokenizer "$TOK" -i vals.jsonl -o out.tok)
echo "$msg" | grep -q 'line 1: more than 4194304 JSON values' || fail "4.2M JSON values accepted: $msg"
awk 'BEGIN { printf "{\"prompt\":\""; for (i = 0; i < 1900000; i++) printf "hello wor"; print "\",\"chosen\":\"a\",\"rejected\":\"b\"}" }' > long.jsonl
msg=$(expect_fail lbdpo-tokenize --tokenizer "$TOK" -i long.jsonl -o out.tok)
echo "$msg" | grep -q 'line 1: longer than 16777216 bytes' || fail "17.1 MB line accepted: $msg"
[ ! -e out.tok ] || fail "output written on error"
echo ok

#!/usr/bin/env bash
# lbdpo-show: JSON <-> msgpack round trips byte for byte, views, errors.
. "$(dirname "$0")/lib.sh"
F="$ROOT/tests/fixtures/streams"
for j in "$F"/*.jsonl; do
	n=$(basename "$j" .jsonl)
	lbdpo-show --from-json -i "$j" -o "$T/$n.rec" || fail "from-json $n"
	lbdpo-show -i "$T/$n.rec" > "$T/$n.json" || fail "show $n"
	lbdpo-show --from-json < "$T/$n.json" > "$T/$n.rec2" || fail "from-json again $n"
	cmp "$T/$n.rec" "$T/$n.rec2" || fail "$n: msgpack -> JSON -> msgpack is not byte-identical"
	# JSON text is canonical: a second pass prints the same text
	lbdpo-show < "$T/$n.rec2" | cmp - "$T/$n.json" || fail "$n: JSON view not stable"
	# --f32 view round-trips too
	lbdpo-show --f32 < "$T/$n.rec" | lbdpo-show --from-json | cmp - "$T/$n.rec" || fail "$n: --f32 round trip"
done
# The fixture's values survive (checked against the source text, not our own output)
grep -q '"u64":{"$u64":"18446744073709551615"}' "$T/types.json" || fail "u64 max lost"
grep -q '"i64":-9000000000000000000' "$T/types.json" || fail "i64 lost"
grep -q '"f64":0.10000000000000001' "$T/types.json" || fail "f64 not printed round-trippable"
# views
[ "$(lbdpo-show --no-header < "$T/tokens.rec" | wc -l)" = 2 ] || fail "--no-header"
[ "$(lbdpo-show --header-only < "$T/tokens.rec" | wc -l)" = 1 ] || fail "--header-only"
# --header-only reads no record: a truncated first record is not an error there
printf '{"lbdpo":1,"kind":"pairs","history":[]}\n{"prompt_ids":[1]}\n' | lbdpo-show --from-json -o "$T/h.rec" || fail "h.rec"
head -c $(($(wc -c <"$T/h.rec") - 3)) "$T/h.rec" >"$T/htrunc.rec"
lbdpo-show --header-only -i "$T/htrunc.rec" >"$T/h.out" || fail "--header-only read a record"
[ "$(cat "$T/h.out")" = '{"lbdpo":1,"kind":"pairs","history":[]}' ] || fail "--header-only: $(cat "$T/h.out")"
expect_fail lbdpo-show -i "$T/htrunc.rec" | grep -q 'record 1' || fail "truncated record not found without --header-only"
[ -z "$(lbdpo-show --header-only --no-header -i "$T/h.rec")" ] || fail "--header-only --no-header prints something"
[ "$(lbdpo-show -n 1 < "$T/tokens.rec" | wc -l)" = 2 ] || fail "-n 1"
# errors: one line, position named, nonzero exit, no output file left behind
msg=$(expect_fail lbdpo-show --from-json -i "$F/../streams/tokens.jsonl" -o "$T/x" --no-header) || exit 1
printf '{"lbdpo":1}\n{"a":[1,2\n' > "$T/bad.jsonl"
msg=$(expect_fail lbdpo-show --from-json -i "$T/bad.jsonl" -o "$T/bad.rec") || exit 1
[[ $msg == *"bad.jsonl: line 2"* ]] || fail "JSON error must name the line: $msg"
[ ! -e "$T/bad.rec" ] || fail "half-written output left behind"
ls "$T" | grep -q 'tmp' && fail "temporary file left behind"
head -c 100 "$T/tokens.rec" > "$T/cut.rec"
msg=$(expect_fail lbdpo-show -i "$T/cut.rec") || exit 1
[[ $msg == *"byte offset"* ]] || fail "truncation must name the byte offset: $msg"
expect_fail lbdpo-show --bogus >/dev/null || exit 1
lbdpo-show --bogus >/dev/null 2>&1; [ $? = 2 ] || fail "usage errors exit 2"
lbdpo-show --version | grep -q '^lbdpo-show lbdpo ' || fail "--version"
lbdpo-show --help | grep -q -- '--from-json' || fail "--help"
# -o onto a FIFO (or a device) writes into it: it is never replaced by a file
mkfifo "$T/fifo"
cat "$T/fifo" > "$T/from_fifo" &
lbdpo-show --from-json -i "$F/tokens.jsonl" -o "$T/fifo" || fail "-o FIFO"
wait
[ -p "$T/fifo" ] || fail "the FIFO was replaced by a regular file"
cmp "$T/from_fifo" "$T/tokens.rec" || fail "data through the FIFO differs"
msg=$(expect_fail lbdpo-show -i "$T/tokens.rec" -o "$T") || exit 1
[[ $msg == *"is a directory"* ]] || fail "-o DIR: $msg"
# A full disk is never silent
if [ -w /dev/full ]; then
	lbdpo-show -i "$T/tokens.rec" > /dev/full 2>/dev/null && fail "writing to a full disk must fail"
fi
exit 0

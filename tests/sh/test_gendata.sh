#!/usr/bin/env bash
# lbdpo-gendata: determinism, format, label rules, split disjointness, and
# its tokenizer against the `tokenizers` package (fixture made by
# tests/ref/check_demo_tokenizer.py).
. "$(dirname "$0")/lib.sh"
G=lbdpo-gendata
$G --version | grep -q '^lbdpo-gendata lbdpo ' || fail "--version"

# Determinism: same seed, same bytes; another seed, other bytes.
$G --seed 5 --n-train 600 --n-test 200 --out-dir "$T/a" --tokenizer-out "$T/a/tok.json" || fail "gendata a"
$G --seed 5 --n-train 600 --n-test 200 --out-dir "$T/b" --tokenizer-out "$T/b/tok.json" || fail "gendata b"
$G --seed 6 --n-train 600 --n-test 200 --out-dir "$T/c" || fail "gendata c"
for f in train.jsonl test.jsonl tok.json; do cmp -s "$T/a/$f" "$T/b/$f" || fail "$f differs for the same seed"; done
cmp -s "$T/a/train.jsonl" "$T/c/train.jsonl" && fail "seeds 5 and 6 give the same data"
# stdout and --output agree
$G --seed 5 --n-train 600 --n-test 200 >"$T/stdout.jsonl" || fail "stdout"
cmp -s "$T/stdout.jsonl" "$T/a/train.jsonl" || fail "stdout differs from --out-dir train.jsonl"

[ "$(wc -l <"$T/a/train.jsonl")" = 600 ] || fail "train line count"
[ "$(wc -l <"$T/a/test.jsonl")" = 200 ] || fail "test line count"

# Format and rules, checked independently of the generator with awk:
# keys in order; math: "a+b" with operands >= 1, chosen = a+b, rejected =
# |a-b| (the wrong-operation mistake); open: both answers name the prompt's
# topic word, chosen's adjective has the prompt's tone (kind when asked to
# praise, harsh when asked to criticize), rejected's the other, unless flipped.
check='
BEGIN { split("calm bright warm clean soft sweet lovely gentle", k); split("cold dark loud dirty harsh ugly broken dull", h)
	for (i in k) tone[k[i]] = "kind"; for (i in h) tone[h[i]] = "harsh" }
function field(k,   r) { if (match($0, "\"" k "\":\"[^\"]*\"")) { r = substr($0, RSTART + length(k) + 4, RLENGTH - length(k) - 5); return r } return "\001" }
function adj(s, w,   a) { if (s !~ ("^ The " w " is [a-z]+\\.$")) return "?"; a = s; sub(/^ The [a-z]+ is /, "", a); sub(/\.$/, "", a); return a in tone ? tone[a] : "?" }
{
	if ($0 !~ /^\{"id":"[a-z]+-[0-9]+","group":"(math|open)","prompt":"[^"]*","chosen":"[^"]*","rejected":"[^"]*","flipped":(true|false)\}$/) { print "bad line " NR ": " $0; bad = 1; exit }
	g = field("group"); p = field("prompt"); c = field("chosen"); r = field("rejected")
	fl = ($0 ~ /"flipped":true/)
	n[g]++
	if (g == "math") {
		if (!match(p, /^Q: [1-9][0-9]*\+[1-9][0-9]*=\? A:$/)) { print "bad math prompt " NR; bad = 1; exit }
		e = substr(p, 4); sub(/=.*/, "", e); split(e, x, "+")
		v = x[1] + x[2]; d = x[1] - x[2]; if (d < 0) d = -d
		if (c != " " v || r != " " d || fl) { print "wrong math label " NR ": " $0; bad = 1; exit }
		q[p] = 1
	} else {
		w = p; sub(/.* the /, "", w); sub(/[.?].*/, "", w)
		want = (p ~ /^Q: (Criticize the|Say something bad about the|What do you dislike about the) /) ? "harsh" : \
		       (p ~ /^Q: (Praise the|Say something nice about the|What do you like about the) /) ? "kind" : "?"
		tc = adj(c, w); tr = adj(r, w)
		if (want == "?" || tc == "?" || tr == "?" || tc == tr || (tc == want) == fl) { print "open rule violated " NR ": " $0; bad = 1; exit }
		nf += fl
	}
}
END { if (bad) exit 1; printf "%d %d %d\n", n["math"], n["open"], nf }'
awk "$check" "$T/a/train.jsonl" >"$T/s1" || fail "train format/rules: $(cat "$T/s1")"
read -r m o nf <"$T/s1"
echo "train: math $m, open $o, flipped $nf"
[ "$m" -gt 240 ] && [ "$m" -lt 360 ] || fail "math share far from 0.5: $m/600"
# flip share 0.3 of ~300 open pairs: binomial sd ~8; allow 4 sd
[ "$nf" -gt $((o * 3 / 10 - 32)) ] && [ "$nf" -lt $((o * 3 / 10 + 32)) ] || fail "flip share: $nf of $o"
awk "$check" "$T/a/test.jsonl" >"$T/s2" || fail "test format/rules: $(cat "$T/s2")"
read -r m o nf <"$T/s2"
[ "$nf" = 0 ] || fail "held-out labels flipped by default"
# Held-out arithmetic questions never occur in training.
awk -F'"prompt":"' '/"group":"math"/ { split($2, a, "\""); print a[1] }' "$T/a/train.jsonl" | sort -u >"$T/trq"
awk -F'"prompt":"' '/"group":"math"/ { split($2, a, "\""); print a[1] }' "$T/a/test.jsonl" | sort -u >"$T/teq"
[ -s "$T/teq" ] || fail "no held-out math"
[ -z "$(comm -12 "$T/trq" "$T/teq")" ] || fail "held-out questions leak into training: $(comm -12 "$T/trq" "$T/teq" | head -3)"

# Bad options: usage errors exit 2.
out=$($G --flip 2 2>&1); [ $? = 2 ] || fail "--flip 2 must be a usage error"; echo "$out" | grep -q 'error:' || fail "no message"
$G --bogus >/dev/null 2>&1; [ $? = 2 ] || fail "unknown option must exit 2"
$G --out-dir "$T/x" --output "$T/y" >/dev/null 2>&1; [ $? = 2 ] || fail "--out-dir with --output must exit 2"

# The tokenizer: the same bytes as the one `tokenizers` checked (fixture),
# and, with lbdpo-tokenize built, the same ids as `tokenizers` gave.
F="$ROOT/tests/fixtures/demo_tok"
$G --seed 7 --n-train 300 --n-test 40 --vocab-size 320 --out-dir "$T/f" --tokenizer-out "$T/f/tokenizer.json" || fail "fixture data"
cmp -s "$T/f/tokenizer.json" "$F/tokenizer.json" || fail "tokenizer differs from the fixture checked by tokenizers (rerun tests/ref/check_demo_tokenizer.py)"
grep -q '"type": "ByteLevel"' "$F/tokenizer.json" || fail "not byte-level"
if command -v lbdpo-tokenize >/dev/null 2>&1; then
	# prompt_ids ++ chosen_ids must be what tokenizers gives for prompt + chosen;
	# rejected_ids what it gives for the rejected text alone (no BOS, no EOS)
	lbdpo-tokenize -q --no-eos --tokenizer "$F/tokenizer.json" -i "$F/data.jsonl" | lbdpo-show --no-header >"$T/ours" || fail "lbdpo-tokenize"
	sed 's/.*"prompt_ids":\[\([0-9,]*\)\],"chosen_ids":\[\([0-9,]*\)\],"rejected_ids":\[\([0-9,]*\)\].*/\1,\2 \3/' "$T/ours" >"$T/o"
	sed 's/.*"rejected_ids": \[\([0-9, ]*\)\], "prompt_chosen_ids": \[\([0-9, ]*\)\].*/\2 \1/; s/, /,/g' "$F/ids.jsonl" >"$T/w"
	[ "$(wc -l <"$T/w")" = 40 ] || fail "fixture ids"
	head -1 "$T/o"; grep -qE "^[0-9,]+ [0-9,]+$" "$T/o" || fail "parse"
	diff "$T/w" "$T/o" >/dev/null || fail "lbdpo-tokenize ids differ from tokenizers: $(diff "$T/w" "$T/o" | head -4)"
	echo "lbdpo-tokenize agrees with tokenizers on 40 pairs"
fi
echo ok

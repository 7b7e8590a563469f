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

# --task noise: groups that differ only in label noise. Every pair is an open
# one whose prompt names its source (a, b, ... in the order of the levels);
# the tone rule holds unless flipped; each group's flip share is near its
# level (binomial, 4 sd), noise0 never flipped; held-out labels clean; the
# validation split is drawn as training (same noise); --n-val leaves the
# other files as they were, and --task mixed is the default task.
$G --task noise --seed 4 --n-train 4000 --n-test 200 --n-val 800 --out-dir "$T/n" || fail "gendata --task noise"
$G --task noise --seed 4 --n-train 4000 --n-test 200 --out-dir "$T/n2" || fail "gendata --task noise without --n-val"
for f in train.jsonl test.jsonl; do cmp -s "$T/n/$f" "$T/n2/$f" || fail "--n-val changed $f"; done
[ ! -e "$T/n2/val.jsonl" ] || fail "val.jsonl without --n-val"
$G --task mixed --seed 5 --n-train 600 --n-test 200 --out-dir "$T/m" || fail "--task mixed"
cmp -s "$T/m/train.jsonl" "$T/a/train.jsonl" || fail "--task mixed is not the default"
noise='
BEGIN { split("calm bright warm clean soft sweet lovely gentle", k); split("cold dark loud dirty harsh ugly broken dull", h)
	for (i in k) tone[k[i]] = "kind"; for (i in h) tone[h[i]] = "harsh"; split("0 10 20 40", L, " "); for (i = 1; i <= 4; i++) src["noise" L[i]] = substr("abcd", i, 1) }
function field(k,   r) { if (match($0, "\"" k "\":\"[^\"]*\"")) { r = substr($0, RSTART + length(k) + 4, RLENGTH - length(k) - 5); return r } return "\001" }
function adj(s, w,   a) { if (s !~ ("^ The " w " is [a-z]+\\.$")) return "?"; a = s; sub(/^ The [a-z]+ is /, "", a); sub(/\.$/, "", a); return a in tone ? tone[a] : "?" }
{
	g = field("group"); p = field("prompt"); c = field("chosen"); r = field("rejected"); fl = ($0 ~ /"flipped":true/)
	if (!(g in src) || p !~ ("^Q \\(source " src[g] "\\): ")) { print "bad group or source " NR ": " $0; bad = 1; exit }
	w = p; sub(/.* the /, "", w); sub(/[.?].*/, "", w)
	want = (p ~ /(Criticize the|Say something bad about the|What do you dislike about the) /) ? "harsh" : "kind"
	tc = adj(c, w); tr = adj(r, w)
	if (tc == "?" || tr == "?" || tc == tr || (tc == want) == fl) { print "tone rule violated " NR ": " $0; bad = 1; exit }
	n[g]++; f[g] += fl
}
END { if (bad) exit 1; for (g in n) printf "%s %d %d\n", g, n[g], f[g] }'
for split in train val test; do
	awk "$noise" "$T/n/$split.jsonl" >"$T/ns" || fail "noise $split: $(cat "$T/ns")"
	[ "$(wc -l <"$T/ns")" = 4 ] || fail "noise $split: not 4 groups: $(cat "$T/ns")"
	while read -r g c f; do
		p=${g#noise}
		[ "$split" = test ] && p=0
		awk -v c="$c" -v f="$f" -v p="$p" 'BEGIN { q = p / 100; sd = sqrt(c * q * (1 - q)); exit !(f >= c * q - 4 * sd - (q == 0 ? 0 : 1) && f <= c * q + 4 * sd + (q == 0 ? 0 : 1)) }' ||
			fail "noise $split: $g has $f flipped of $c (level $p%)"
	done <"$T/ns"
done
out=$($G --task noise --noise-levels 0,0.2,x 2>&1); [ $? = 2 ] && echo "$out" | grep -q 'noise-levels' || fail "bad --noise-levels accepted"
$G --task other >/dev/null 2>&1; [ $? = 2 ] || fail "--task other must be a usage error"

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

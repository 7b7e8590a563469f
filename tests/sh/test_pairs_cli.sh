#!/usr/bin/env bash
# lbdpo-pairs: scored samples into best-vs-worst pairs, every pair above a
# reward gap, or best-of-N records — ties, repeated and empty texts, the
# group's fields passed on, the output read by lbdpo-tokenize; bad input is a
# one-line error naming the file and line, with no output left.
. "$(dirname "$0")/lib.sh"
cd "$T"
# two prompts of 4 samples and one of a single sample (lbdpo-sample's keys)
s() { printf '{"id":"%s","group":"g","prompt":"%s","sample":%d,"text":"%s","ids":[1],"n_new":1,"stop":"eos","reward":%s}\n' "$@"; }
{
	s a "Q: one" 0 " x" 1
	s a "Q: one" 1 " y" 3
	s a "Q: one" 2 " x" 9 # a repeat of " x": counts once, with its first reward
	s a "Q: one" 3 " z" 1
	s b "Q: two" 0 " p" 2
	s b "Q: two" 1 " q" 2
	s b "Q: two" 2 "" 5 # empty: no completion lbdpo-tokenize reads
	s b "Q: two" 3 " r" 2
	s c "Q: three" 0 " only" 7
} >scored.jsonl
lbdpo-pairs -i scored.jsonl -o bw.jsonl 2>log || fail "best-worst"
cat >want.jsonl <<'W'
{"id":"a","group":"g","prompt":"Q: one","chosen":" y","rejected":" z","chosen_score":3.0,"rejected_score":1.0}
W
cmp want.jsonl bw.jsonl || { cat bw.jsonl; fail "best vs worst: the best (first of ties), the worst (last of ties); a tie is no pair"; }
grep -q "9 samples of 3 prompts (1 empty, left out): 1 pairs written; 2 prompts without one" log || fail "summary: $(cat log)"
# every pair more than the gap apart
lbdpo-pairs -q --all-pairs -i scored.jsonl -o all.jsonl || fail "all pairs"
[ "$(sed -E 's/.*"chosen":"([^"]*)","rejected":"([^"]*)".*/\1>\2/' all.jsonl | tr '\n' ' ')" = " y> z  y> x " ] ||
	{ cat all.jsonl; fail "all pairs: order or ties"; }
lbdpo-pairs -q --all-pairs --min-gap 1.5 -i scored.jsonl -o gap.jsonl || fail "gap"
[ "$(wc -l <gap.jsonl)" = 2 ] || fail "gap 1.5: want the two pairs 2 apart"
lbdpo-pairs -q --all-pairs --min-gap 2 -i scored.jsonl -o gap2.jsonl || fail "gap 2"
[ ! -s gap2.jsonl ] || fail "a gap equal to --min-gap made a pair"
lbdpo-pairs -q --margin -i scored.jsonl | grep -q '"margin":2.0}$' || fail "--margin"
# best of N: the best of every prompt with two or more distinct texts
lbdpo-pairs -q --best-of-n -i scored.jsonl -o best.jsonl || fail "best-of-n"
[ "$(sed -E 's/.*"chosen":"([^"]*)".*/\1/' best.jsonl | tr '\n' '|')" = " y| p|" ] || { cat best.jsonl; fail "best-of-n"; }
# what lbdpo-tokenize reads, the sample keys gone
lbdpo-gendata --seed 1 --n-train 20 --n-test 4 --vocab-size 300 --out-dir d --tokenizer-out tok.json >/dev/null 2>&1 || fail "gendata"
lbdpo-tokenize -q --tokenizer tok.json -i all.jsonl -o all.tok || fail "lbdpo-tokenize of the pairs"
lbdpo-show --no-header -i all.tok >all.show || fail "show"
[ "$(wc -l <all.show)" = 2 ] || fail "tokenized pairs"
grep -q '"sample"\|"ids"\|"n_new"\|"reward"' all.show && fail "sample keys passed on"
grep -q '"chosen_score":3' all.show || fail "chosen_score not passed on"
# pairs of lbdpo-sample's output scored by the demo's judge
printf '%s\n' '{"id":"x","prompt":"Q: 2+3=? A:"}' >p.jsonl
lbdpo-init -q --arch llama --dim 16 --layers 1 --heads 2 --max-seq 32 --vocab-from tok.json --seed 1 -o m || fail "init"
lbdpo-sample -q -m m --n 6 --max-new-tokens 3 -i p.jsonl -o smp.jsonl || fail "sample"
awk -f "$ROOT/pipelines/demo-judge.awk" smp.jsonl | lbdpo-pairs -q >jp.jsonl || fail "judge | lbdpo-pairs"
[ "$(wc -l <jp.jsonl)" = 0 ] || [ "$(grep -c '"chosen_score":1.0,"rejected_score":0.0}' jp.jsonl)" = "$(wc -l <jp.jsonl)" ] || fail "judge pairs"

# the stories judge as a reward: a looping text scores below a varied one
printf '%s\n' '{"id":"s","prompt":"Once upon a time a dragon slept","text":" the dragon slept and slept and slept"}' \
	'{"id":"s","prompt":"Once upon a time a dragon slept","text":" the dragon woke up hungry"}' >st.jsonl
awk -v mode=reward -f "$ROOT/pipelines/judge.awk" st.jsonl >st.scored || fail "judge.awk mode=reward"
[ "$(grep -c '"reward":' st.scored)" = 2 ] || fail "judge.awk rewards"
lbdpo-pairs -q -i st.scored | grep -q '"chosen":" the dragon woke up hungry","rejected":" the dragon slept and slept and slept"' ||
	fail "judge.awk's rewards make the wrong pair"

# ---- errors ----
sed '5s/"reward":2/"reward":"2"/' scored.jsonl >bad1.jsonl
msg=$(expect_fail lbdpo-pairs -i bad1.jsonl -o out1.jsonl) || exit 1
case $msg in *"bad1.jsonl: line 5: "*reward*) ;; *) fail "reward not a number: $msg" ;; esac
sed '3s/.*/{"prompt": /' scored.jsonl >bad2.jsonl
msg=$(expect_fail lbdpo-pairs -i bad2.jsonl -o out2.jsonl) || exit 1
case $msg in *"bad2.jsonl: line 3"*) ;; *) fail "bad JSON: $msg" ;; esac
sed -E '2s/,"text":"[^"]*"//' scored.jsonl >bad3.jsonl
msg=$(expect_fail lbdpo-pairs -i bad3.jsonl -o out3.jsonl) || exit 1
case $msg in *"bad3.jsonl: line 2: "*text*) ;; *) fail "no text: $msg" ;; esac
sed -E '2s/"reward":3/"reward":1e999/' scored.jsonl >bad4.jsonl
expect_fail lbdpo-pairs -i bad4.jsonl -o out4.jsonl >/dev/null || exit 1
expect_fail lbdpo-pairs --best-of-n --all-pairs -i scored.jsonl -o out5.jsonl >/dev/null || exit 1
expect_fail lbdpo-pairs --min-gap -1 -i scored.jsonl -o out6.jsonl >/dev/null || exit 1
[ -z "$(ls out*.jsonl 2>/dev/null)" ] || fail "a failed run left an output file"
echo ok

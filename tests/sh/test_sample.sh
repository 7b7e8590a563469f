#!/usr/bin/env bash
# lbdpo-sample against transformers (tests/ref/make_sample_fixture.py):
# greedy generation with the KV cache reproduces transformers' greedy ids;
# sampled first-token frequencies match softmax(logits / T) under
# temperature, top-k and top-p; EOS stop, --n, seeds, bad input.
. "$(dirname "$0")/lib.sh"
F="$ROOT/tests/fixtures/sample"
S="lbdpo-sample --threads 1"
lbdpo-sample --version | grep -q '^lbdpo-sample lbdpo ' || fail "--version"

# Records input built from the fixture's prompts (lbdpo-show --from-json).
{ echo '{"lbdpo":1,"kind":"pairs","history":[]}'
  awk '{ match($0, /"prompt_ids": \[[0-9, ]*\]/); p = substr($0, RSTART, RLENGTH); gsub(/ /, "", p)
         printf "{\"id\":\"g%d\",\"group\":\"x\",%s}\n", NR, p }' "$F/greedy.jsonl"; } >"$T/p.jsonl"
lbdpo-show --from-json -i "$T/p.jsonl" -o "$T/p.rec" || fail "make records"
ids() { sed 's/.*"ids":\[\([0-9,]*\)\].*/\1/' "$1"; }

# 1. greedy == transformers greedy (24 tokens, 6 prompts)
$S -m "$F/model" --greedy --max-new-tokens 24 -i "$T/p.rec" -o "$T/g.jsonl" || fail "greedy run"
sed 's/.*"ids": \[\([0-9, ]*\)\].*/\1/; s/ //g' "$F/greedy.jsonl" >"$T/want"
ids "$T/g.jsonl" >"$T/got"
diff "$T/want" "$T/got" || fail "greedy ids differ from transformers"
grep -q '"id":"g1","group":"x","prompt_ids":\[' "$T/g.jsonl" || fail "id/group/prompt_ids not passed through: $(head -1 "$T/g.jsonl")"
grep -c '"stop":"length"' "$T/g.jsonl" | grep -qx 6 || fail "stop reason"
# top-k 1 and a tiny top-p are greedy too, whatever the temperature
$S -m "$F/model" --top-k 1 --temperature 2 --max-new-tokens 24 -i "$T/p.rec" | sed 's/.*"ids":\[\([0-9,]*\)\].*/\1/' | diff -q "$T/want" - >/dev/null || fail "--top-k 1 is not greedy"
$S -m "$F/model" --top-p 0.000001 --max-new-tokens 24 -i "$T/p.rec" | sed 's/.*"ids":\[\([0-9,]*\)\].*/\1/' | diff -q "$T/want" - >/dev/null || fail "--top-p tiny is not greedy"

# 2. EOS: make the 3rd greedy token of prompt 1 the stop token
eos=$(head -1 "$T/want" | cut -d, -f3)
pre=$(head -1 "$T/want" | cut -d, -f1-2)
$S -m "$F/model" --greedy --max-new-tokens 24 --eos-id "$eos" -i "$T/p.rec" | sed -n 1p >"$T/e"
grep -q "\"ids\":\[$pre\],\"n_new\":2,\"stop\":\"eos\"" "$T/e" || fail "EOS stop: $(cat "$T/e")"
$S -m "$F/model" --greedy --max-new-tokens 24 --eos-id "$eos" --no-eos -i "$T/p.rec" | sed -n 1p | grep -q '"n_new":24' || fail "--no-eos"

# 3. Sampling frequencies of the first token vs transformers' softmax(logits/T).
# One prompt, N one-token samples; allow 4.5 binomial standard deviations.
{ head -1 "$T/p.jsonl"; sed -n 2p "$T/p.jsonl"; } | lbdpo-show --from-json -o "$T/one.rec" || fail "one record"
N=3000
check_freq() { # label, expected-probs key, lbdpo-sample options...
	local label=$1 key=$2; shift 2
	$S -m "$F/model" --max-new-tokens 1 --n $N --seed 7 "$@" -i "${REC:-$T/one.rec}" -o "$T/s.jsonl" || fail "$label: run"
	[ "$(wc -l <"$T/s.jsonl")" = $N ] || fail "$label: --n $N lines"
	sed 's/.*"ids":\[\([0-9]*\)\].*/\1/' "$T/s.jsonl" | sort | uniq -c >"$T/counts"
	# expected: from the fixture, renormalized over the allowed ids (ALLOW, or all)
	awk -v N=$N -v key="$key" -v allow="${ALLOW:-}" -v label="$label" '
		NR == FNR { c[$2] = $1; next }
		{ s = $0; i = index(s, "\"" key "\": [["); s = substr(s, i + length(key) + 6); sub(/\]\].*/, "", s)
		  n = split(s, a, /\], \[/); z = 0
		  for (k = 1; k <= n; k++) { split(a[k], b, ", "); id[k] = b[1]; p[k] = b[2] }
		  if (allow != "") { split(allow, al, ","); for (k in al) ok[al[k]] = 1; for (k = 1; k <= n; k++) if (id[k] in ok) z += p[k] }
		  for (k = 1; k <= 3; k++) {
			q = p[k]; if (allow != "") q = (id[k] in ok) ? q / z : 0
			f = ((id[k] in c) ? c[id[k]] : 0) / N; sd = sqrt((q * (1 - q) + 1e-6) / N)
			printf "%s: id %s freq %.4f expected %.4f\n", label, id[k], f, q
			if (f - q > 4.5 * sd || q - f > 4.5 * sd) bad = 1
		  }
		  if (allow != "") for (t in c) if (!(t in ok)) { printf "%s: id %s outside the allowed set\n", label, t; bad = 1 }
		  exit }
		END { exit bad }' "$T/counts" "${FIX:-$F/greedy.jsonl}" || fail "$label: frequencies off"
}
check_freq "T=1" probs_T1
check_freq "T=0.5" probs_T0.5 --temperature 0.5
# top-k 2 keeps the two most likely; top-p 0.4 keeps the smallest set with mass >= 0.4
top2=$(awk '{ s = $0; sub(/.*"probs_T1": \[\[/, "", s); split(s, a, /[^0-9.]+/); print a[1] "," a[3]; exit }' "$F/greedy.jsonl")
ALLOW=$top2 check_freq "top-k 2" probs_T1 --top-k 2
ALLOW=$top2 check_freq "top-p 0.4" probs_T1 --top-p 0.4

# transformers' repetition penalty, temperature, top-k and top-p together, in
# its order (tests/ref/make_sample_warpers_fixture.py): only the surviving ids
# are drawn, at their frequencies; the prompt holds ids the penalty lowers
W="$F/warpers.jsonl"
{ echo '{"lbdpo":1,"kind":"pairs","history":[]}'; sed -n '1s/.*"warped_prompt_ids": \[\([0-9, ]*\)\].*/{"prompt_ids":[\1]}/p' "$W"; } |
	lbdpo-show --from-json -o "$T/wone.rec" || fail "warped prompt record"
kept=$(awk '{ s = $0; sub(/.*"probs_warped": \[\[/, "", s); sub(/\]\].*/, "", s); n = split(s, a, /\], \[/)
	for (k = 1; k <= n; k++) { split(a[k], b, ", "); if (b[2] > 0) printf "%s%s", (o++ ? "," : ""), b[1] } exit }' "$W")
[ "$(echo "$kept" | tr , '\n' | wc -l)" -ge 2 ] || fail "fixture: fewer than 2 ids survive the warpers"
REC=$T/wone.rec FIX=$W ALLOW=$kept check_freq "warpers" probs_warped --repetition-penalty 1.5 --temperature 0.7 --top-k 10 --top-p 0.9
# greedy with repetition_penalty 1.5 == transformers' greedy ids
sed 's/.*"prompt_ids": \[\([0-9, ]*\)\].*/{"prompt_ids":[\1]}/' "$W" | { echo '{"lbdpo":1,"kind":"pairs","history":[]}'; cat; } |
	lbdpo-show --from-json -o "$T/w.rec" || fail "warpers records"
sed 's/.*"rep_ids": \[\([0-9, ]*\)\].*/\1/; s/ //g' "$W" >"$T/want_rep"
$S -m "$F/model" --greedy --repetition-penalty 1.5 --max-new-tokens 24 -i "$T/w.rec" | ids /dev/stdin >"$T/got_rep" || fail "--repetition-penalty run"
diff "$T/want_rep" "$T/got_rep" || fail "--repetition-penalty 1.5: greedy ids differ from transformers"
cmp -s "$T/want_rep" "$T/want" && fail "fixture: the penalty changes nothing"

# 4. Seeds: same seed, same samples; another seed, other samples.
$S -m "$F/model" --n 2 --seed 3 --max-new-tokens 16 -i "$T/p.rec" >"$T/s1" || fail "seed run"
$S -m "$F/model" --n 2 --seed 3 --max-new-tokens 16 -i "$T/p.rec" >"$T/s2"
$S -m "$F/model" --n 2 --seed 4 --max-new-tokens 16 -i "$T/p.rec" >"$T/s3"
cmp -s "$T/s1" "$T/s2" || fail "same seed, different samples"
cmp -s "$T/s1" "$T/s3" && fail "different seeds, same samples"
[ "$(grep -c '"sample":1' "$T/s1")" = 6 ] || fail "--n 2"
# thread count does not change samples
lbdpo-sample --threads 2 -m "$F/model" --n 2 --seed 3 --max-new-tokens 16 -i "$T/p.rec" | cmp -s - "$T/s1" || fail "threads change samples"

# 5. A padded vocabulary (Qwen2.5: 151936 rows, 151665 tokens): the model
# has 96 rows, its tokenizer 40 tokens (a-z, A-N). The ids 40..95 are never
# sampled (greedy takes the best id below 40) and decode as transformers
# decodes an unknown id: to nothing. The model directory's own tokenizer is
# used without --tokenizer, for records and for JSON Lines.
mkdir "$T/pad" && cp "$F/model/"* "$T/pad/"
{ printf '{"model":{"type":"BPE","vocab":{'; i=0
  for c in a b c d e f g h i j k l m n o p q r s t u v w x y z A B C D E F G H I J K L M N; do
	printf '%s"%s":%d' "$([ $i = 0 ] || echo ,)" "$c" $i; i=$((i + 1)); done
  printf '},"merges":[]},"added_tokens":[]}\n'; } >"$T/pad/tokenizer.json"
awk -F, '{ for (i = 1; i <= NF; i++) if ($i >= 40) n++ } END { exit !(n > 0) }' "$T/want" || fail "fixture: no greedy id >= 40"
$S -m "$T/pad" --tokenizer "$T/pad/tokenizer.json" --greedy --max-new-tokens 24 -i "$T/p.rec" -o "$T/pad.jsonl" ||
	fail "padded vocabulary: no output"
[ "$(wc -l <"$T/pad.jsonl")" = 6 ] || fail "padded vocabulary: $(wc -l <"$T/pad.jsonl") lines"
ids "$T/pad.jsonl" | tr , '\n' | awk '$1 >= 40 { exit 1 }' || fail "an id outside the tokenizer was sampled: $(ids "$T/pad.jsonl" | head -2)"
# the first greedy id of prompt 1 is the most likely id below 40 (fixture: top 8 at T=1)
best=$(awk '{ s = $0; sub(/.*"probs_T1": \[\[/, "", s); sub(/\]\].*/, "", s); n = split(s, a, /\], \[/)
	for (k = 1; k <= n; k++) { split(a[k], b, ", "); if (b[1] < 40) { print b[1]; exit } } exit }' "$F/greedy.jsonl")
[ -n "$best" ] && [ "$(ids "$T/pad.jsonl" | sed -n 1p | cut -d, -f1)" = "$best" ] || fail "masked greedy: first id not $best"
$S -m "$T/pad" --greedy --max-new-tokens 24 -i "$T/p.rec" | cmp -s - "$T/pad.jsonl" || fail "the model directory's tokenizer is not the default"
grep -q '"text":"[a-zA-N]*","ids"' "$T/pad.jsonl" || fail "no text: $(sed -n 1p "$T/pad.jsonl")"
printf '{"lbdpo":1,"kind":"pairs","history":[]}\n{"prompt_ids":[0,95,1]}\n' | lbdpo-show --from-json -o "$T/unk.rec"
$S -m "$T/pad" --greedy --max-new-tokens 2 -i "$T/unk.rec" | grep -q '"prompt":"ab"' || fail "an id the tokenizer lacks must decode to nothing"
printf '{"id":"j","prompt":"abc"}\n' | $S -m "$T/pad" --greedy --max-new-tokens 3 >"$T/j.out" || fail "JSONL with the model directory's tokenizer"
grep -q '"id":"j","prompt":"abc","sample":0,"text":"[a-zA-N]*","ids":\[' "$T/j.out" || fail "JSONL: $(cat "$T/j.out")"

# 6. generation_config.json gives the defaults; options override them.
mkdir "$T/gc" && cp "$F/model/"* "$T/gc/"
e1=$(sed -n 1p "$T/want" | cut -d, -f3) e2=$(sed -n 2p "$T/want" | cut -d, -f5)
p1=$(sed -n 1p "$T/want" | cut -d, -f1-2) p2=$(sed -n 2p "$T/want" | cut -d, -f1-4)
printf '{"do_sample": false, "temperature": 0.7, "eos_token_id": [%s, %s]}\n' "$e1" "$e2" >"$T/gc/generation_config.json"
$S -m "$T/gc" --max-new-tokens 24 -i "$T/p.rec" >"$T/gc.out" || fail "generation_config.json run"
sed -n 1p "$T/gc.out" | grep -q "\"ids\":\[$p1\],\"n_new\":2,\"stop\":\"eos\"" || fail "do_sample false / first eos id: $(sed -n 1p "$T/gc.out")"
sed -n 2p "$T/gc.out" | grep -q "\"ids\":\[$p2\],\"n_new\":4,\"stop\":\"eos\"" || fail "second eos id: $(sed -n 2p "$T/gc.out")"
absent=$(tr , '\n' <"$T/want" | sort -n | awk 'BEGIN { a = 0 } $1 == a { a++ } END { print a }')
$S -m "$T/gc" --max-new-tokens 24 --eos-id "$absent" -i "$T/p.rec" >"$T/gc.out" || fail "--eos-id run"
ids "$T/gc.out" | diff -q "$T/want" - >/dev/null || fail "--eos-id does not override eos_token_id"
# --temperature overrides do_sample false: the same samples as without the file
$S -m "$T/gc" --n 2 --seed 3 --max-new-tokens 16 --temperature 1 --no-eos -i "$T/p.rec" | cmp -s - "$T/s1" || fail "--temperature does not override do_sample false"
printf '{"do_sample": true, "temperature": 0.5, "top_k": 5, "top_p": 0.8, "eos_token_id": 95}\n' >"$T/gc/generation_config.json"
$S -m "$T/gc" --n 2 --seed 3 --max-new-tokens 16 -i "$T/p.rec" >"$T/gc1" || fail "sampling from generation_config.json"
$S -m "$F/model" --n 2 --seed 3 --max-new-tokens 16 --temperature 0.5 --top-k 5 --top-p 0.8 --eos-id 95 -i "$T/p.rec" >"$T/gc2"
cmp -s "$T/gc1" "$T/gc2" || fail "temperature/top_k/top_p of generation_config.json not used"
cmp -s "$T/gc1" "$T/s1" && fail "generation_config.json ignored"
$S -m "$T/gc" --n 2 --seed 3 --max-new-tokens 16 --temperature 1 --top-k 0 --top-p 1 --no-eos -i "$T/p.rec" | cmp -s - "$T/s1" || fail "options do not override generation_config.json"
printf '{"top_k": "x"}\n' >"$T/gc/generation_config.json"
expect_fail $S -m "$T/gc" -i "$T/p.rec" | grep -q 'generation_config.json: "top_k"' || fail "bad top_k accepted"

# 7. Progress off a terminal: a plain line (LBDPO_PROGRESS_SECONDS=0: at every
# sample) and the summary; -q: nothing.
LBDPO_PROGRESS_SECONDS=0 $S -m "$F/model" --greedy --max-new-tokens 4 -i "$T/p.rec" 2>"$T/err" >/dev/null || fail "progress run"
grep -q '^lbdpo-sample: 6 samples, 0:00 elapsed; 24 new tokens$' "$T/err" || fail "no progress line off a terminal: $(cat "$T/err")"
grep -q '^lbdpo-sample: 6 samples, 24 new tokens in ' "$T/err" || fail "no summary off a terminal: $(cat "$T/err")"
LBDPO_PROGRESS_SECONDS=0 $S -q -m "$F/model" --greedy --max-new-tokens 4 -i "$T/p.rec" 2>"$T/err" >/dev/null
[ ! -s "$T/err" ] || fail "-q: $(cat "$T/err")"

# 8. JSON Lines prompts need a tokenizer; with the stories model when present.
printf '{"prompt":"x"}\n' >"$T/j.jsonl"
lbdpo-sample -m "$F/model" -i "$T/j.jsonl" >/dev/null 2>&1; [ $? = 2 ] || fail "JSONL without --tokenizer must be a usage error"
expect_fail lbdpo-sample -m "$F/model" --tokenizer "$ROOT/tests/fixtures/demo_tok/tokenizer.json" -i "$T/j.jsonl" | grep -q 'vocabulary' || fail "tokenizer larger than the model accepted"
printf '{"lbdpo":1,"kind":"pairs","history":[]}\n{"prompt_ids":[1,96]}\n' | lbdpo-show --from-json -o "$T/bad.rec"
expect_fail $S -m "$F/model" -i "$T/bad.rec" | grep -q 'record 1' || fail "id >= vocab: no record position"
lbdpo-sample >/dev/null 2>&1; [ $? = 2 ] || fail "no --model must exit 2"
if [ -n "${LBDPO_ASSETS:-}" ] && [ -f "$LBDPO_ASSETS/stories260K/stories260K.bin" ]; then
	A=$LBDPO_ASSETS/stories260K
	printf '{"id":"a","prompt":"Once upon a time, there was a"}\nnot json\n' >"$T/st.jsonl"
	msg=$(expect_fail $S -m "$A/stories260K.bin" --tokenizer "$A/tok512.bin" --greedy --max-new-tokens 8 -i "$T/st.jsonl")
	echo "$msg" | grep -q 'line 2' || fail "invalid JSON: no line number: $msg"
	head -1 "$T/st.jsonl" | $S -m "$A/stories260K.bin" --tokenizer "$A/tok512.bin" --greedy --max-new-tokens 20 >"$T/st.out" || fail "stories"
	grep -q '"text":" [a-z]' "$T/st.out" || fail "stories text: $(cat "$T/st.out")"
	# --template: message-list prompts rendered with the generation prompt, as
	# lbdpo-tokenize renders them (a Jinja rendering gets no BOS added)
	gen() { sed 's/.*\("ids":.*\)/\1/' "$1"; }
	printf '%s' '{% for m in messages %}{{ m.content | trim }}{% endfor %}{% if add_generation_prompt %} Then{% endif %}' >"$T/t.jinja"
	printf '{"prompt":[{"role":"user","content":"  Once upon a time "}]}\n' >"$T/chat.jsonl"
	printf '{"prompt":"Once upon a time Then"}\n' >"$T/plain.jsonl"
	$S -m "$A/stories260K.bin" --tokenizer "$A/tok512.bin" --template "$T/t.jinja" --greedy --max-new-tokens 12 -i "$T/chat.jsonl" >"$T/c.out" || fail "--template FILE"
	$S -m "$A/stories260K.bin" --tokenizer "$A/tok512.bin" --no-bos --greedy --max-new-tokens 12 -i "$T/plain.jsonl" >"$T/p.out" || fail "plain prompt"
	[ "$(gen "$T/c.out")" = "$(gen "$T/p.out")" ] || fail "--template FILE: $(cat "$T/c.out") vs $(cat "$T/p.out")"
	printf '{"prompt":"\\n\\nHuman:   Once upon a time \\n\\nAssistant:"}\n' >"$T/hh.jsonl"
	$S -m "$A/stories260K.bin" --tokenizer "$A/tok512.bin" --template hh --greedy --max-new-tokens 12 -i "$T/chat.jsonl" >"$T/c.out" || fail "--template hh"
	$S -m "$A/stories260K.bin" --tokenizer "$A/tok512.bin" --greedy --max-new-tokens 12 -i "$T/hh.jsonl" >"$T/p.out" || fail "hh prompt"
	[ "$(gen "$T/c.out")" = "$(gen "$T/p.out")" ] || fail "--template hh: $(cat "$T/c.out") vs $(cat "$T/p.out")"
	msg=$(expect_fail $S -m "$A/stories260K.bin" --tokenizer "$A/tok512.bin" -i "$T/chat.jsonl") || exit 1
	[[ $msg == *"line 1"*"chat template"* ]] || fail "messages without a template: $msg"
	cat "$T/st.out"
else
	echo "note: LBDPO_ASSETS absent, stories part skipped"
fi
echo ok

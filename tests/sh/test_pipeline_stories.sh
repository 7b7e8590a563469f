#!/usr/bin/env bash
# pipelines/stories.mk: the judge's documented rule on hand-made cases, then
# the whole on-policy pipeline on the real stories260K model (a few dozen
# prompts, a few steps): pairs ordered by the judge, the win rate counted
# over every fresh prompt, sampling reproducible.
. "$(dirname "$0")/lib.sh"
J="$ROOT/pipelines/judge.awk"
# judge rule, by hand: repetition loses; staying on topic wins; equal
# scores: shorter wins; equal everything: tie (left out of pairs).
cat >"$T/a.jsonl" <<'X'
{"id":"1","prompt":"Tom found a shiny key","text":" He used the key to open a door."}
{"id":"2","prompt":"Tom found a shiny key","text":" The sun was warm and bright today."}
{"id":"3","prompt":"Lily baked a cake","text":" It was good."}
{"id":"4","prompt":"Lily baked a cake","text":" She \"smiled\" and ate it."}
X
cat >"$T/b.jsonl" <<'X'
{"id":"1","prompt":"Tom found a shiny key","text":" the the the the the the the"}
{"id":"2","prompt":"Tom found a shiny key","text":" He put the shiny key in a box."}
{"id":"3","prompt":"Lily baked a cake","text":" It was very good."}
{"id":"4","prompt":"Lily baked a cake","text":" She \"smiled\" and ate it."}
X
out=$(awk -v mode=compare -f "$J" "$T/a.jsonl" "$T/b.jsonl") || fail "judge compare"
[ "$out" = '{"n":4,"wins":2,"losses":1,"ties":1,"win_rate":0.6250}' ] || fail "judge rule: $out"
cat "$T/a.jsonl" "$T/b.jsonl" | awk -v mode=pairs -f "$J" >"$T/p.jsonl" 2>/dev/null || fail "judge pairs"
[ "$(wc -l <"$T/p.jsonl")" = 3 ] || fail "pairs: ties must be left out: $(cat "$T/p.jsonl")"
grep -q '"id":"2".*"chosen":" He put the shiny key in a box."' "$T/p.jsonl" || fail "pairs: on-topic not chosen"
grep -q '"chosen":" She \\"smiled\\"' "$T/p.jsonl" && fail "tie became a pair"
echo '{"id":"1","prompt":"x"}' | awk -v mode=pairs -f "$J" >/dev/null 2>&1 && fail "judge accepted a line without text"

need_shared assets/stories260K/stories260K.bin assets/stories260K/tok512.bin
A=$LBDPO_SHARED/assets
MK=(make --no-print-directory -f "$ROOT/pipelines/stories.mk" LBDPO_BIN="$LBDPO_BIN" LBDPO_ASSETS="$A"
    W="$T/st" N_PROMPTS=60 N_FRESH=30 STEPS=4)
"${MK[@]}" >"$T/log" 2>&1 || { tail -20 "$T/log"; fail "pipeline failed"; }
tail -2 "$T/log"
w=$(cat "$T/st/winrate.json")
echo "$w" | grep -Eq '^\{"n":30,"wins":[0-9]+,"losses":[0-9]+,"ties":[0-9]+,"win_rate":[0-9.]+\}$' || fail "winrate.json: $w"
echo "$w" | awk -F'[:,}]' '{ if ($4 + $6 + $8 != $2) exit 1 }' || fail "wins + losses + ties != n: $w"
[ "$(wc -l <"$T/st/samples.jsonl")" = 120 ] || fail "2 samples per prompt expected"
np=$(wc -l <"$T/st/pairs.jsonl"); [ "$np" -ge 40 ] || fail "too few pairs: $np"
# every pair's chosen beats its rejected under the same judge
sed 's/"chosen":\("\([^"\\]\|\\.\)*"\),"rejected":.*/"text":\1}/' "$T/st/pairs.jsonl" >"$T/c.jsonl"
sed 's/"chosen":\("\([^"\\]\|\\.\)*"\),"rejected":/"text":/' "$T/st/pairs.jsonl" >"$T/r.jsonl"
cw=$(awk -v mode=compare -f "$J" "$T/c.jsonl" "$T/r.jsonl")
echo "$cw" | grep -q "\"n\":$np,\"wins\":$np," || fail "chosen does not always win: $cw"
# trained and reference fresh samples come from the same prompts, one each
[ "$(wc -l <"$T/st/fresh.trained.jsonl")" = 30 ] && [ "$(wc -l <"$T/st/fresh.reference.jsonl")" = 30 ] || fail "fresh samples"
comm -12 <(sed 's/.*"prompt":"\([^"]*\)".*/\1/' "$T/st/prompts.jsonl" | sort) <(sed 's/.*"prompt":"\([^"]*\)".*/\1/' "$T/st/fresh.jsonl" | sort) | grep -q . && fail "fresh prompts overlap training prompts"
# on-policy sampling is reproducible
lbdpo-sample -m "$A/stories260K/stories260K.bin" --tokenizer "$A/stories260K/tok512.bin" --n 2 --seed 1 \
	--temperature 1 --top-p 0.95 --max-new-tokens 48 --threads 1 -i "$T/st/prompts.jsonl" | cmp -s - "$T/st/samples.jsonl" || fail "sampling not reproducible"
echo ok

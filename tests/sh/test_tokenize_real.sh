#!/usr/bin/env bash
# lbdpo-tokenize on the real assets: GPT-2 ids equal the gpt-3-encoder golden,
# stories260K ids equal llama2.c's encode(), every HH-RLHF test file tokenizes
# (implicit prompt) with only the pairs whose chosen == rejected rejected.
. "$(dirname "$0")/lib.sh"
need_shared assets/gpt2/tokenizer.json assets/stories260K/tok512.bin golden/gpt2_token_ids.jsonl \
	golden/stories260K_logprobs.jsonl assets/hh-rlhf
A="$LBDPO_SHARED/assets" G="$LBDPO_SHARED/golden"

# GPT-2: each golden text as a completion (no BOS for GPT-2; EOS 50256 appended;
# a prompt token, since a pair without one is skipped)
sed 's/^{"text":\(.*\),"ids":\[\(.*\)\]}$/{"prompt": "x", "chosen": \1, "rejected": "zzz", "want": [\2,50256]}/' \
	"$G/gpt2_token_ids.jsonl" > "$T/g.jsonl"
lbdpo-tokenize -q --tokenizer "$A/gpt2/tokenizer.json" -i "$T/g.jsonl" | lbdpo-show --no-header > "$T/g.json" || fail "gpt2"
[ "$(wc -l < "$T/g.json")" = "$(wc -l < "$G/gpt2_token_ids.jsonl")" ] || fail "gpt2: record count"
while IFS= read -r rec; do
	w=$(sed 's/.*"want":\(\[[^]]*\]\).*/\1/' <<<"$rec")
	[[ $rec == *"\"chosen_ids\":$w"* ]] || fail "gpt2 ids differ from golden: $rec"
done < "$T/g.json"

# stories260K: the golden text as the prompt: BOS 1 + dummy-prefix space
sed 's/^{"text":\("[^"]*\(\\"[^"]*\)*"\),"ids":\(\[[^]]*\]\).*$/{"prompt": \1, "chosen": " a", "rejected": " b", "want": \3}/' \
	"$G/stories260K_logprobs.jsonl" > "$T/s.jsonl"
lbdpo-tokenize -q --tokenizer "$A/stories260K/tok512.bin" -i "$T/s.jsonl" | lbdpo-show --no-header > "$T/s.json" || fail "stories"
[ "$(wc -l < "$T/s.json")" = "$(wc -l < "$G/stories260K_logprobs.jsonl")" ] || fail "stories: record count"
while IFS= read -r rec; do
	w=$(sed 's/.*"want":\(\[[^]]*\]\).*/\1/' <<<"$rec")
	[[ $rec == *"\"prompt_ids\":$w"* ]] || fail "stories260K ids differ from llama2.c: $rec"
done < "$T/s.json"

# HH-RLHF: every file, implicit prompt
for f in "$A"/hh-rlhf/*.jsonl.gz; do
	n=$(basename "$f" .jsonl.gz)
	# without --skip-invalid: every pair is valid; ties are dropped and counted
	lbdpo-tokenize --tokenizer "$A/gpt2/tokenizer.json" --max-length 0 -i "$f" -o "$T/$n.tok" 2>"$T/err" || fail "$n: $(cat "$T/err")"
	lines=$(gzip -dc "$f" | grep -c .)
	read -r nr nw nd nt < <(sed -n 's/.*read \([0-9]*\), written \([0-9]*\), truncated 0, dropped \([0-9]*\), invalid 0 (dropped ties: \([0-9]*\)).*/\1 \2 \3 \4/p' "$T/err")
	[ "${nr:-}" = "$lines" ] && [ $((nw + nd)) = "$lines" ] && [ "$nd" = "$nt" ] || fail "$n: $(cat "$T/err")"
	# ties = exactly the lines whose chosen and rejected texts are the same (recounted with awk)
	same=$(gzip -dc "$f" | awk '{ c = index($0, "\"chosen\": "); r = index($0, "\"rejected\": ")
		if (!c || !r) next; if (c < r) { a = substr($0, c + 10, r - c - 10); b = substr($0, r + 12) }
		else { b = substr($0, r + 12, c - r - 12); a = substr($0, c + 10) }
		sub(/[,}[:space:]]*$/, "", a); sub(/[,}[:space:]]*$/, "", b); n += (a == b) } END { print n + 0 }')
	[ "$nt" = "$same" ] || fail "$n: $nt ties dropped, $same identical pairs in the file"
	echo "$n: $(cat "$T/err")"
done
exit 0

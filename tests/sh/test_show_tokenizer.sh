#!/usr/bin/env bash
# lbdpo-show --tokenizer: token records decode back to the original text
# (HH-RLHF pairs, GPT-2 tokenizer, implicit prompt).
. "$(dirname "$0")/lib.sh"
need_shared assets/gpt2/tokenizer.json assets/hh-rlhf
TOK="$LBDPO_SHARED/assets/gpt2/tokenizer.json"
# string value of KEY in a one-line JSON object (our canonical escaping)
field() { grep -o "\"$1\":\"\([^\"\\\\]\|\\\\.\)*\"" | head -1 | sed "s/^\"$1\"://"; }
n=0
for f in "$LBDPO_SHARED"/assets/hh-rlhf/*.jsonl.gz; do
	zcat "$f" | head -25 > "$T/src.jsonl"
	lbdpo-tokenize -q --tokenizer "$TOK" --max-length 0 -i "$T/src.jsonl" -o "$T/p.tok" || fail "tokenize $f"
	lbdpo-show --no-header --tokenizer "$TOK" -i "$T/p.tok" > "$T/dec.json" || fail "show --tokenizer"
	# the source, printed with the same JSON escaping rules as lbdpo-show
	lbdpo-show --from-json -i "$T/src.jsonl" | lbdpo-show > "$T/src.json" || fail "canonicalize"
	[ "$(wc -l < "$T/dec.json")" = "$(wc -l < "$T/src.json")" ] || fail "$f: record count differs"
	while IFS= read -r dec && IFS= read -r src <&3; do
		p=$(field prompt_text <<<"$dec"); c=$(field chosen_text <<<"$dec"); r=$(field rejected_text <<<"$dec")
		want_c=$(field chosen <<<"$src"); want_r=$(field rejected <<<"$src")
		got_c="${p%\"}${c#\"}"; got_r="${p%\"}${r#\"}"
		got_c=${got_c//<|endoftext|>/}; got_r=${got_r//<|endoftext|>/}
		[ "$got_c" = "$want_c" ] || fail "$f record $((n+1)): chosen decodes to $got_c, want $want_c"
		[ "$got_r" = "$want_r" ] || fail "$f record $((n+1)): rejected decodes to $got_r"
		n=$((n + 1))
	done < "$T/dec.json" 3< "$T/src.json"
done
echo "$n pairs decoded back to their source text"
[ "$n" -ge 100 ] || fail "too few pairs checked ($n)"
expect_fail lbdpo-show --from-json --tokenizer "$TOK" >/dev/null || exit 1
exit 0

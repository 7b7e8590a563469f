#!/usr/bin/env bash
# test_tokenize_header.sh — lbdpo-tokenize's header says what was done to the
# records: bos_prepended / eos_appended are true only when lbdpo-tokenize put
# BOS before the prompts / EOS after the completions. A Jinja chat template
# decides its special tokens itself (neither is added), a template that ends
# its turns gets no EOS, plain texts get what the tokenizer and --no-bos /
# --no-eos say; a stream mixing forms that get different ones is refused.
. "$(dirname "$0")/lib.sh"
need_shared assets/stories260K/tok512.bin
cd "$T"
TOK="$LBDPO_SHARED/assets/stories260K/tok512.bin"   # BOS 1 added, EOS 2
printf '%s\n' '{"prompt":"Once upon a time","chosen":" there was a cat.","rejected":" it rained."}' > plain.jsonl
printf '%s\n' '{"prompt":[{"role":"user","content":"Once upon a time"}],"chosen":[{"role":"assistant","content":"there was a cat."}],"rejected":[{"role":"assistant","content":"it rained."}]}' > conv.jsonl
printf '%s' '{% for m in messages %}{{ m.role }}: {{ m.content }}
{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}' > turns.jinja
# hdr FILE: "bos_prepended eos_appended" of its header; first/last: ids of the first record
hdr() { lbdpo-show --header-only -i "$1" | sed 's/.*"bos_prepended":\([a-z]*\),"eos_appended":\([a-z]*\).*/\1 \2/'; }
first_prompt_id() { lbdpo-show --no-header -i "$1" | sed -n '1s/.*"prompt_ids":\[\([0-9]*\).*/\1/p'; }
last_chosen_id() { lbdpo-show --no-header -i "$1" | sed -n '1s/.*"chosen_ids":\[[0-9,]*[^0-9]\([0-9]*\)\].*/\1/p'; }
# check NAME WANT_HEADER tokenize-options...: the header, and the ids agree with it
check() {
	local name=$1 want=$2
	shift 2
	lbdpo-tokenize -q --tokenizer "$TOK" "$@" -o $name.tok || fail "$name: tokenize"
	[ "$(hdr $name.tok)" = "$want" ] || fail "$name: header says '$(hdr $name.tok)', want '$want'"
	local b=$(first_prompt_id $name.tok) e=$(last_chosen_id $name.tok)
	[ "${want% *}" = true ] && [ "$b" != 1 ] && fail "$name: header says BOS prepended, first prompt id is $b"
	[ "${want% *}" = false ] && [ "$b" = 1 ] && fail "$name: header says no BOS, first prompt id is BOS"
	[ "${want#* }" = true ] && [ "$e" != 2 ] && fail "$name: header says EOS appended, last chosen id is $e"
	[ "${want#* }" = false ] && [ "$e" = 2 ] && fail "$name: header says no EOS, last chosen id is EOS"
	:
}
check plain "true true" -i plain.jsonl
check noeos "true false" -i plain.jsonl --no-eos
check nobos "false true" -i plain.jsonl --no-bos
check jinja "false false" -i conv.jsonl --template turns.jinja   # the template decides: neither added
check chatml "true false" -i conv.jsonl --template chatml         # ends its turns: no EOS
check hh "true true" -i conv.jsonl --template hh
# plain records beside a Jinja template: the template is not used
check plainj "true true" -i plain.jsonl --template turns.jinja
# no records: what plain texts would get
: > empty.jsonl
lbdpo-tokenize -q --tokenizer "$TOK" --template turns.jinja -i empty.jsonl -o empty.tok || fail "empty input"
[ "$(hdr empty.tok)" = "true true" ] || fail "empty input header: $(hdr empty.tok)"
# forms that get different BOS/EOS cannot share one header
cat plain.jsonl conv.jsonl > mixed.jsonl
msg=$(expect_fail lbdpo-tokenize -q --tokenizer "$TOK" --template turns.jinja -i mixed.jsonl -o mixed.tok)
echo "$msg" | grep -q 'mixed.jsonl: line 2: a conversational record after plain-text ones' || fail "mixed forms: $msg"
[ ! -e mixed.tok ] || fail "half-written output of a refused stream"
cat plain.jsonl conv.jsonl | lbdpo-tokenize -q --tokenizer "$TOK" --template hh -o mixedhh.tok || fail "hh adds what plain texts get"
echo ok

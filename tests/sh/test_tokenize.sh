#!/usr/bin/env bash
# lbdpo-tokenize with the committed fixture tokenizers: ids equal Hugging Face
# tokenizers' (tests/fixtures/tokenizer/cases.jsonl), record layout, pass-through,
# templates, truncation, bad input (one-line error with the line number).
. "$(dirname "$0")/lib.sh"
FX="$ROOT/tests/fixtures/tokenizer"
BL="$FX/bl_split.json"
# ids of a text in cases.jsonl (tokenizer, bos true/false) as "[a,b,...]"
case_ids() { grep -F "\"tokenizer\": \"$1\", \"text\": $2, \"bos\": $3," "$FX/cases.jsonl" | sed 's/.*"ids": \(\[[^]]*\]\).*/\1/' | tr -d ' '; }
with_eos() { local s=$1; [ "$s" = "[]" ] && echo "[$2]" || echo "${s%]},$2]"; }

P='"Hello, world! How'"'"'s it going?"'
C='"The year 2024 had 366 days; 1234567 items."'
R='"naïve café résumé"'
printf '{"id": "r1", "group": "math", "prompt": %s, "chosen": %s, "rejected": %s, "extra": {"k": [1, 2.5, null]}}\n' "$P" "$C" "$R" > "$T/std.jsonl"
lbdpo-tokenize --tokenizer "$BL" -i "$T/std.jsonl" -o "$T/std.tok" 2>"$T/err" || fail "standard format"
grep -q 'read 1, written 1, truncated 0, dropped 0, invalid 0' "$T/err" || fail "summary: $(cat "$T/err")"
lbdpo-show -i "$T/std.tok" > "$T/std.json" || fail "show"
hdr=$(head -1 "$T/std.json"); rec=$(sed -n 2p "$T/std.json")
[[ $hdr == *'"kind":"tokens"'* ]] || fail "header kind: $hdr"
sha=$(sha256sum "$BL" | cut -d' ' -f1)
[[ $hdr == *"\"sha256\":\"$sha\""* ]] || fail "tokenizer fingerprint in header: $hdr"
[[ $hdr == *'"vocab_size":700'* && $hdr == *'"bos":0'* && $hdr == *'"eos":1'* ]] || fail "header tokenizer fields: $hdr"
want_p=$(case_ids bl_split.json "$P" true)
want_c=$(with_eos "$(case_ids bl_split.json "$C" false)" 1)
want_r=$(with_eos "$(case_ids bl_split.json "$R" false)" 1)
[ -n "$want_p" ] && [ "$want_p" != "[]" ] || fail "fixture lookup"
[[ $rec == *"\"prompt_ids\":$want_p"* ]] || fail "prompt_ids (BOS + text) differ from tokenizers: $rec vs $want_p"
[[ $rec == *"\"chosen_ids\":$want_c"* ]] || fail "chosen_ids differ: $rec vs $want_c"
[[ $rec == *"\"rejected_ids\":$want_r"* ]] || fail "rejected_ids differ: $rec vs $want_r"
[[ $rec == '{"id":"r1","group":"math","extra":{"k":[1,2.5,null]},"prompt_ids"'* ]] || fail "id/group/pass-through: $rec"

# --no-eos, --no-bos, gzip input
gzip -c "$T/std.jsonl" > "$T/std.jsonl.gz"
lbdpo-tokenize -q --tokenizer "$BL" --no-eos --no-bos -i "$T/std.jsonl.gz" | lbdpo-show --no-header > "$T/ne.json" || fail "gzip input"
[[ $(cat "$T/ne.json") == *"\"chosen_ids\":$(case_ids bl_split.json "$C" false)"* ]] || fail "--no-eos"
[[ $(cat "$T/ne.json") == *"\"prompt_ids\":$(case_ids bl_split.json "$P" false)"* ]] || fail "--no-bos"

# tokenizer_config.json beside tokenizer.json names EOS and turns BOS off
mkdir "$T/cfg" && cp "$BL" "$T/cfg/tokenizer.json"
printf '{"bos_token": "<|begin_of_text|>", "eos_token": {"content": "<|im_end|>"}, "add_bos_token": false}' > "$T/cfg/tokenizer_config.json"
lbdpo-tokenize -q --tokenizer "$T/cfg/tokenizer.json" -i "$T/std.jsonl" | lbdpo-show > "$T/cfg.json" || fail "tokenizer_config.json"
grep -q '"eos":3' "$T/cfg.json" && grep -q '"bos_prepended":false' "$T/cfg.json" || fail "tokenizer_config.json ignored: $(head -1 "$T/cfg.json")"
grep -qF "\"prompt_ids\":$(case_ids bl_split.json "$P" false),\"chosen_ids\":$(with_eos "$(case_ids bl_split.json "$C" false)" 3)" "$T/cfg.json" || fail "config BOS/EOS not applied"

# SentencePiece style: the prompt gets the dummy prefix, completions continue it
SP="$FX/sp_bytefallback.json"
lbdpo-tokenize -q --tokenizer "$SP" -i "$T/std.jsonl" | lbdpo-show --no-header > "$T/sp.json" || fail "sp tokenizer"
[[ $(cat "$T/sp.json") == *"\"prompt_ids\":$(case_ids sp_bytefallback.json "$P" true)"* ]] || fail "sp prompt ids"

# conversational, chatml: rendered text (template definition) and ids
cat > "$T/conv.jsonl" <<'J'
{"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}], "chosen": [{"role": "assistant", "content": "Hello."}], "rejected": [{"role": "assistant", "content": "Go away."}]}
{"chosen": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}], "rejected": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "No."}]}
J
lbdpo-tokenize -q --tokenizer "$BL" --template chatml --keep-text -i "$T/conv.jsonl" | lbdpo-show --no-header > "$T/conv.json" || fail "conversational"
grep -qF '"prompt":"<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\n","chosen":"Hello.<|im_end|>\n","rejected":"Go away.<|im_end|>\n"' "$T/conv.json" || fail "chatml rendering: $(head -1 "$T/conv.json")"
grep -qF '"prompt":"<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\n","chosen":"Hello.<|im_end|>\n","rejected":"No.<|im_end|>\n"' "$T/conv.json" || fail "implicit conversational"
# <|im_start|> is an added token: one id (2) in the prompt
grep -q '"prompt_ids":\[0,2,' "$T/conv.json" || fail "special tokens matched before BPE: $(head -1 "$T/conv.json")"
lbdpo-tokenize -q --tokenizer "$BL" --template hh --keep-text -i "$T/conv.jsonl" | lbdpo-show --no-header > "$T/hh.json" || fail "hh"
grep -qF '"prompt":"Be brief.\n\nHuman: Hi?\n\nAssistant:","chosen":" Hello."' "$T/hh.json" || fail "hh rendering: $(head -1 "$T/hh.json")"
lbdpo-tokenize -q --tokenizer "$BL" --template llama3 --keep-text -i "$T/conv.jsonl" | lbdpo-show --no-header > "$T/l3.json" || fail "llama3"
grep -qF '"prompt":"<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n","chosen":"Hello.<|eot_id|>"' "$T/l3.json" || fail "llama3 rendering"
msg=$(expect_fail lbdpo-tokenize --tokenizer "$BL" -i "$T/conv.jsonl" -o "$T/x") || exit 1
[[ $msg == *"line 1"*"--template"* ]] || fail "conversational without template: $msg"

# truncation: prompt keeps its end (BOS first), completions their start
lbdpo-tokenize --tokenizer "$BL" --max-prompt-length 3 --max-length 6 --truncation-mode keep_start -i "$T/std.jsonl" 2>"$T/err" | lbdpo-show --no-header > "$T/tr.json" || fail "truncation"
grep -q 'truncated 1, dropped 0' "$T/err" || fail "truncation count: $(cat "$T/err")"
full=$(case_ids bl_split.json "$P" true | tr -d '[]'); IFS=, read -ra a <<<"$full"; n=${#a[@]}
grep -q "\"prompt_ids\":\[${a[0]},${a[n-2]},${a[n-1]}\]" "$T/tr.json" || fail "keep_end: $(cat "$T/tr.json") from $full"
c3=$(case_ids bl_split.json "$C" false | tr -d '[]' | cut -d, -f1-3)
grep -q "\"chosen_ids\":\[$c3\]" "$T/tr.json" || fail "completion truncation"
lbdpo-tokenize -q --tokenizer "$BL" --max-prompt-length 3 --truncation keep_start -i "$T/std.jsonl" | lbdpo-show --no-header | grep -q "\"prompt_ids\":\[${a[0]},${a[1]},${a[2]}\]" || fail "keep_start"
lbdpo-tokenize --tokenizer "$BL" --max-length "$n" --truncation-mode keep_start -i "$T/std.jsonl" 2>"$T/err" >/dev/null || fail "drop"
grep -q 'written 0, truncated 0, dropped 1' "$T/err" || fail "no room for a completion: dropped ($(cat "$T/err"))"

# --truncation-mode keep_end (the default, TRL's): the prompt loses its start (BOS stays first),
# the completions stay whole; --max-length defaults to 1024 (TRL's), 0 = no limit
cfull=$(case_ids bl_split.json "$C" false | tr -d '[]'); IFS=, read -ra cc <<<"$cfull"; m=${#cc[@]}
lbdpo-tokenize --tokenizer "$BL" --max-length $((m + 1 + 3)) -i "$T/std.jsonl" 2>"$T/err" | lbdpo-show --no-header > "$T/ke.json" ||
	fail "keep_end"
grep -q 'truncated 1, dropped 0' "$T/err" || fail "keep_end count: $(cat "$T/err")"
grep -q "\"prompt_ids\":\[${a[0]},${a[n-2]},${a[n-1]}\]" "$T/ke.json" || fail "keep_end prompt: $(cat "$T/ke.json")"
grep -q "\"chosen_ids\":\[$cfull,[0-9]*\]" "$T/ke.json" || fail "keep_end: the chosen completion was cut: $(cat "$T/ke.json")"
awk 'BEGIN { printf "{\"prompt\": \""; for (i = 0; i < 1500; i++) printf "day "; printf "\", \"chosen\": \" yes\", \"rejected\": \" no\"}\n" }' > "$T/long.jsonl"
lbdpo-tokenize -q --tokenizer "$BL" -i "$T/long.jsonl" | lbdpo-show --no-header > "$T/long.json" || fail "default max-length"
lbdpo-tokenize -q --tokenizer "$BL" --max-length 0 -i "$T/long.jsonl" | lbdpo-show --no-header > "$T/long0.json" || fail "--max-length 0"
plen() { sed 's/.*"prompt_ids":\[\([^]]*\)\].*/\1/' "$1" | tr ',' '\n' | wc -l; }
clen() { sed 's/.*"chosen_ids":\[\([^]]*\)\].*/\1/' "$1" | tr ',' '\n' | wc -l; }
rlen() { sed 's/.*"rejected_ids":\[\([^]]*\)\].*/\1/' "$1" | tr ',' '\n' | wc -l; }
longer=$(( $(clen "$T/long.json") > $(rlen "$T/long.json") ? $(clen "$T/long.json") : $(rlen "$T/long.json") ))
[ $(( $(plen "$T/long.json") + longer )) = 1024 ] || fail "default: prompt + longer completion != 1024"
[ "$(plen "$T/long0.json")" -gt 1024 ] || fail "--max-length 0 cut the prompt"
lbdpo-tokenize --tokenizer "$BL" --max-length 1 -i "$T/std.jsonl" >/dev/null 2>&1; [ $? = 2 ] || fail "--max-length 1 must exit 2"
lbdpo-tokenize --tokenizer "$BL" --truncation-mode middle -i "$T/std.jsonl" >/dev/null 2>&1; [ $? = 2 ] || fail "bad --truncation-mode must exit 2"

# bad input: one line naming the line, nonzero, no output left; --skip-invalid counts
printf '%s\n' '{"prompt": "a", "chosen": "b", "rejected": "c"}' > "$T/ok1"
bad=('{"prompt": "a", "chosen": "b", "rejected": "c"' '{"prompt": "a", "chosen": "b"}' '{"prompt": "a", "chosen": 3, "rejected": "c"}'
     $'{"prompt": "a", "chosen": "b\xff", "rejected": "c"}' '{"prompt": "a", "chosen": "", "rejected": "c"}'
     '{"prompt": "same", "chosen": "same", "rejected": "same"}' '{"prompt": "a", "chosen": "b", "rejected": "c", "id": [1]}' '[1, 2]')
want=("invalid JSON" 'missing key "rejected"' '"chosen" must be' "invalid UTF-8" "empty completion" "equal to both completions" '"id" must be' "not a JSON object")
for i in "${!bad[@]}"; do
	{ cat "$T/ok1"; echo; printf '%s\n' "${bad[i]}"; cat "$T/ok1"; } > "$T/bad$i.jsonl"
	msg=$(expect_fail lbdpo-tokenize --tokenizer "$BL" -i "$T/bad$i.jsonl" -o "$T/bad$i.tok") || exit 1
	[[ $msg == *"bad$i.jsonl: line 3: "*"${want[i]}"* ]] || fail "case $i: message: $msg"
	[ ! -e "$T/bad$i.tok" ] || fail "case $i: half-written output left behind"
	cat "$T/bad$i.jsonl" >> "$T/allbad.jsonl"
done
ls "$T" | grep -q 'tmp' && fail "temporary file left behind"
lbdpo-tokenize --tokenizer "$BL" --skip-invalid -i "$T/allbad.jsonl" -o "$T/allbad.tok" 2>"$T/err" || fail "--skip-invalid"
grep -q "read 24, written 16, truncated 0, dropped 0, invalid 8" "$T/err" || fail "--skip-invalid counts: $(cat "$T/err")"
# ties (identical chosen and rejected, implicit or standard) are dropped and counted, not errors
{ cat "$T/ok1"; echo '{"chosen": "same text", "rejected": "same text"}'; echo '{"prompt": "p", "chosen": " x", "rejected": " x"}'; } > "$T/ties.jsonl"
lbdpo-tokenize --tokenizer "$BL" -i "$T/ties.jsonl" -o "$T/ties.tok" 2>"$T/err" || fail "ties must not be errors: $(cat "$T/err")"
grep -q "read 3, written 1, truncated 0, dropped 2, invalid 0 (dropped ties: 2)" "$T/err" || fail "tie counts: $(cat "$T/err")"
[ "$(lbdpo-show --no-header -i "$T/ties.tok" | wc -l)" = 1 ] || fail "ties written"
# no prompt tokens (an implicit prompt with no common prefix, an empty
# prompt; no BOS): skipped with a warning naming the line, counted; every
# record written has a prompt token (lbdpo-refcache refuses the file otherwise)
printf '{"chosen": "Hello there", "rejected": "Goodbye now"}\n{"prompt": "Q: hi", "chosen": " yes", "rejected": " no"}\n{"prompt": "", "chosen": "a", "rejected": "b"}\n' > "$T/noprompt.jsonl"
lbdpo-tokenize --tokenizer "$BL" --no-bos -i "$T/noprompt.jsonl" -o "$T/noprompt.tok" 2>"$T/err" || fail "empty prompts: $(cat "$T/err")"
grep -q "read 3, written 1, truncated 0, dropped 2, invalid 0 (dropped ties: 0; empty prompts: 2)" "$T/err" || fail "empty prompt counts: $(cat "$T/err")"
grep -q "warning: $T/noprompt.jsonl: line 1: no prompt tokens" "$T/err" && grep -q "line 3: no prompt tokens" "$T/err" || fail "empty prompt warnings: $(cat "$T/err")"
lbdpo-show --no-header -i "$T/noprompt.tok" | grep -q '"prompt_ids":\[\]' && fail "a record without prompt tokens written"
# with BOS every prompt has a token: nothing skipped
lbdpo-tokenize --tokenizer "$BL" -i "$T/noprompt.jsonl" -o "$T/noprompt.tok" 2>"$T/err" && grep -q "read 3, written 3, " "$T/err" || fail "BOS prompts: $(cat "$T/err")"
# a model directory as --tokenizer: its tokenizer.json, named in the header
mkdir "$T/mdir" && cp "$BL" "$T/mdir/tokenizer.json"
lbdpo-tokenize -q --tokenizer "$T/mdir" -i "$T/std.jsonl" -o "$T/dir.tok" || fail "--tokenizer DIR"
cmp -s <(lbdpo-show --no-header -i "$T/dir.tok") <(lbdpo-show --no-header -i "$T/std.tok") || fail "--tokenizer DIR: other ids"
lbdpo-show --header-only -i "$T/dir.tok" | grep -qF "\"path\":\"$T/mdir/tokenizer.json\"" || fail "header path of --tokenizer DIR"
lbdpo-show --tokenizer "$T/mdir" -i "$T/dir.tok" >/dev/null || fail "lbdpo-show --tokenizer DIR"
msg=$(expect_fail lbdpo-tokenize --tokenizer "$T" -i "$T/ok1") || exit 1
[[ $msg == *"$T: a directory with neither tokenizer.json nor tokenizer.model" ]] || fail "directory without a tokenizer: $msg"
# JSONL given to a program that reads records: told to tokenize first
lbdpo-init -q --arch llama --dim 16 --layers 1 --heads 2 --hidden 32 --vocab 700 -o "$T/m" || fail "lbdpo-init"
for p in lbdpo-show lbdpo-logprob lbdpo-refcache; do
	msg=$(expect_fail $p $([ $p = lbdpo-show ] || echo --model "$T/m") -i "$T/std.jsonl") || exit 1
	# lbdpo-logprob and lbdpo-refcache read JSON Lines too (rollouts of lbdpo-sample --logprobs)
	want="std.jsonl: header (byte offset 0): this looks like JSONL, not a record stream: run lbdpo-tokenize first"
	[ $p = lbdpo-show ] || want='std.jsonl: line 1: this looks like preference JSONL ("chosen"), not rollouts: run lbdpo-tokenize first'
	[[ $msg == *"$want"* ]] || fail "$p given JSONL: $msg"
done
# a bad tokenizer file: one line naming it
printf '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}' > "$T/tok.json"
msg=$(expect_fail lbdpo-tokenize --tokenizer "$T/tok.json" -i "$T/ok1") || exit 1
[[ $msg == *"tok.json: model.merges[0]"* ]] || fail "tokenizer error: $msg"
# usage errors exit 2
lbdpo-tokenize -i "$T/ok1" >/dev/null 2>&1; [ $? = 2 ] || fail "missing --tokenizer must exit 2"
lbdpo-tokenize --tokenizer "$BL" --truncation middle -i "$T/ok1" >/dev/null 2>&1; [ $? = 2 ] || fail "bad --truncation must exit 2"
lbdpo-tokenize --version | grep -q '^lbdpo-tokenize lbdpo ' || fail "--version"
exit 0

#!/usr/bin/env bash
# lbdpo-tokenize on conversational data with real chat templates and the real
# Llama-3 vocabulary: token ids equal TRL's own (tests/fixtures/chat/trl_ids.jsonl,
# made by tests/ref/make_chat_fixtures.py with TRL's DPOTrainer), the template
# found beside the tokenizer, --render, template refusals as one-line errors
# naming the record, and the BOS/EOS guard.
. "$(dirname "$0")/lib.sh"
need_shared assets/tokenizers/llama3/tokenizer.json assets/chat/templates/Llama-3.1-Instruct.jinja
FX="$ROOT/tests/fixtures/chat"
TPL="$LBDPO_SHARED/assets/chat/templates"
mkdir "$T/l3"
ln -s "$LBDPO_SHARED/assets/tokenizers/llama3/tokenizer.json" "$T/l3/tokenizer.json"
printf '{"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "add_bos_token": true}\n' > "$T/l3/tokenizer_config.json"
TOK="$T/l3/tokenizer.json"

# ids per (template, line): "prompt_ids":[..],"chosen_ids":[..],"rejected_ids":[..]
ids_of() { sed 's/.*\("prompt_ids":\[[0-9,]*\],"chosen_ids":\[[0-9,]*\],"rejected_ids":\[[0-9,]*\]\).*/\1/'; }
total=0
for name in Llama-3.1-Instruct Qwen2.5-Instruct DeepSeek-R1-Distill-Qwen; do
	lbdpo-tokenize -q --tokenizer "$TOK" --template "$TPL/$name.jinja" -i "$FX/pairs.jsonl" -o "$T/$name.tok" || fail "$name: tokenize"
	lbdpo-show --no-header -i "$T/$name.tok" | ids_of > "$T/ours"
	grep -F "\"template\":\"$name\"" "$FX/trl_ids.jsonl" | ids_of > "$T/trl"
	[ "$(wc -l < "$T/trl")" = 10 ] || fail "$name: fixture lines"
	diff "$T/ours" "$T/trl" > "$T/diff" || fail "$name: ids differ from TRL's: $(head -c 1500 "$T/diff")"
	total=$((total + $(wc -l < "$T/ours")))
done
[ "$total" = 30 ] || fail "compared $total records"

# the tokenizer's own template: chat_template.jinja beside tokenizer.json
ln -s "$TPL/Llama-3.1-Instruct.jinja" "$T/l3/chat_template.jinja"
lbdpo-tokenize -q --tokenizer "$TOK" -i "$FX/pairs.jsonl" -o "$T/own.tok" || fail "own template"
lbdpo-show --no-header -i "$T/own.tok" | ids_of | diff - <(grep -F '"template":"Llama-3.1-Instruct"' "$FX/trl_ids.jsonl" | ids_of) >/dev/null ||
	fail "chat_template.jinja beside the tokenizer not used"
lbdpo-show -i "$T/own.tok" | sed -n 1p | grep '"template":"[^"]*chat_template.jinja"' >/dev/null || fail "template not named in the header"

# --render: the strings TRL's apply_chat_template gives
lbdpo-tokenize -q --tokenizer "$TOK" --render -i "$FX/pairs.jsonl" -o "$T/render.jsonl" || fail "--render"
[ "$(wc -l < "$T/render.jsonl")" = 10 ] || fail "--render lines"
want='{"prompt":"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat is the capital of France?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n","chosen":"The capital of France is Paris.<|eot_id|>","rejected":"It is Lyon.<|eot_id|>"}'
[ "$(head -1 "$T/render.jsonl")" = "$want" ] || fail "--render line 1: $(head -1 "$T/render.jsonl")"
grep -q '^{"id":"implicit-1","prompt":"<|begin_of_text|>.*What is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\\n\\n","chosen":"4<|eot_id|>","rejected":"5<|eot_id|>"}$' "$T/render.jsonl" ||
	fail "--render implicit prompt: $(grep implicit-1 "$T/render.jsonl")"
# DeepSeek-R1: the generation prompt's "<think>\n" is not part of the prompt
lbdpo-tokenize -q --tokenizer "$TOK" --template "$TPL/DeepSeek-R1-Distill-Qwen.jinja" --render -i "$FX/pairs.jsonl" | sed -n 1p |
	grep -qF '<｜Assistant｜>","chosen":"The capital of France is Paris.<｜end▁of▁sentence｜>"' || fail "DeepSeek-R1 prompt cut"

# a template's refusal: one line naming the record, exit 1, no output left
msg=$(expect_fail lbdpo-tokenize --tokenizer "$TOK" --template "$TPL/Gemma-2-it.jinja" -i "$FX/pairs.jsonl" -o "$T/g.tok") || exit 1
[[ $msg == *"pairs.jsonl: line 2: chat template: System role not supported" ]] || fail "refusal message: $msg"
[ ! -e "$T/g.tok" ] || fail "output left after a refusal"
lbdpo-tokenize --tokenizer "$TOK" --template "$TPL/Gemma-2-it.jinja" --skip-invalid -i "$FX/pairs.jsonl" -o "$T/g.tok" 2>"$T/err" || fail "--skip-invalid"
grep -q 'read 10, written 8, truncated 0, dropped 0, invalid 2' "$T/err" || fail "refusals counted: $(cat "$T/err")"
# an unsupported construct in --template FILE: refused when loading, naming the file
printf '{%% macro m() %%}x{%% endmacro %%}' > "$T/bad.jinja"
msg=$(expect_fail lbdpo-tokenize --tokenizer "$TOK" --template "$T/bad.jinja" -i "$FX/pairs.jsonl") || exit 1
[[ $msg == *"bad.jinja: line 1: {% macro %} is not supported"* ]] || fail "unsupported construct: $msg"

# BOS/EOS guard on standard data: text that already has them gets no second one
printf '%s\n' '{"prompt": "<|begin_of_text|>Hi", "chosen": " there<|eot_id|>", "rejected": " you"}' > "$T/std.jsonl"
lbdpo-tokenize -q --tokenizer "$TOK" -i "$T/std.jsonl" | lbdpo-show --no-header > "$T/std.json" || fail "standard"
grep -q '"prompt_ids":\[128000,13347\],"chosen_ids":\[1070,128009\],"rejected_ids":\[499,128009\]' "$T/std.json" ||
	fail "BOS/EOS guard: $(cat "$T/std.json")"

# hostile templates: a 25000-term chain (50 KB) is a one-line error naming the
# template, not a SIGSEGV that leaves a temporary file; so are bytes that are
# not UTF-8 (they were reported as the data line's)
printf '{{ 1%s }}' "$(printf ' ~ 1%.0s' $(seq 25000))" > "$T/chain.jinja"
before=$(ls -A "$T")
msg=$(expect_fail lbdpo-tokenize --tokenizer "$TOK" --template "$T/chain.jinja" -i "$FX/pairs.jsonl" -o "$T/chain.tok") || exit 1
[[ $msg == *"chain.jinja: line 1: expression nested too deeply"* ]] || fail "chain: $msg"
[ "$(ls -A "$T")" = "$before" ] || fail "chain: files left: $(ls -A "$T")"
printf 'x\xff{%% for m in messages %%}{{ m.content }}{%% endfor %%}' > "$T/u8.jinja"
msg=$(expect_fail lbdpo-tokenize --tokenizer "$TOK" --template "$T/u8.jinja" -i "$FX/pairs.jsonl" -o "$T/u8.tok") || exit 1
[[ $msg == *"u8.jinja: line 1: invalid UTF-8 at byte 1 of the template" ]] || fail "UTF-8: $msg"
# a template's raise_exception text reaches the terminal without control characters
printf '{{ raise_exception("a\x1b[31mred") }}' > "$T/esc.jinja"
msg=$(expect_fail lbdpo-tokenize --tokenizer "$TOK" --template "$T/esc.jinja" -i "$FX/pairs.jsonl" -o "$T/esc.tok") || exit 1
[[ $msg == *"chat template: a[31mred" ]] || fail "control characters: $(printf '%s' "$msg" | od -c | head -3)"
# null message keys as datasets' to_json writes them render as transformers does
printf '%s\n' '{"prompt":[{"role":"user","content":"Hi","tool_calls":null}],"chosen":[{"role":"assistant","content":"A","tool_calls":null}],"rejected":[{"role":"assistant","content":"B","tool_calls":null}]}' > "$T/null.jsonl"
lbdpo-tokenize -q --tokenizer "$TOK" --template "$TPL/Llama-3.1-Instruct.jinja" --render -i "$T/null.jsonl" -o "$T/null.out" ||
	fail "null message keys"
grep -qF '"chosen":"A<|eot_id|>","rejected":"B<|eot_id|>"' "$T/null.out" || fail "null keys: $(cat "$T/null.out")"
# strftime_now as Llama 3.2 calls it: today's local date, unless the record's
# chat_template_kwargs pins date_string
cat > "$T/l32.jinja" <<'TPL'
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{{- "Today Date: " + date_string + "\n" }}
{%- for m in messages %}{{ m.role + ": " + m.content + "\n" }}{% endfor %}
TPL
printf '%s\n' '{"prompt":[{"role":"user","content":"Hi"}],"chosen":[{"role":"assistant","content":"A"}],"rejected":[{"role":"assistant","content":"B"}]}' \
	'{"prompt":[{"role":"user","content":"Hi"}],"chosen":[{"role":"assistant","content":"A"}],"rejected":[{"role":"assistant","content":"B"}],"chat_template_kwargs":{"date_string":"26 Jul 2024"}}' > "$T/date.jsonl"
d1=$(date '+%d %b %Y')
lbdpo-tokenize -q --tokenizer "$TOK" --template "$T/l32.jinja" --render -i "$T/date.jsonl" -o "$T/date.out" || fail "strftime_now"
d2=$(date '+%d %b %Y')
sed -n 1p "$T/date.out" | grep -qE "\"prompt\":\"Today Date: ($d1|$d2)\\\\nuser: Hi" || fail "strftime_now: $(sed -n 1p "$T/date.out"), today $d1"
sed -n 2p "$T/date.out" | grep -qF '"prompt":"Today Date: 26 Jul 2024\nuser: Hi' || fail "date_string pinned: $(sed -n 2p "$T/date.out")"
exit 0

#!/usr/bin/env bash
# make_seeds.sh — (re)build the committed seed corpora tests/fixtures/fuzz/<target>/
# from the test fixtures, with the programs in bin/ (run `make` first). Each
# target's first input byte picks its reader (see the target's comment).
# Outputs are small and committed: make fuzz needs no Python and no network.
set -euo pipefail
cd "$(dirname "$0")/../.."
B=$PWD/bin F=tests/fixtures D=tests/fixtures/fuzz
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# records: real streams (the reader takes the bytes as they are)
awk -v seed=1 -v n=3 -f tests/sh/gen_pairs.awk | "$B/lbdpo-show" --from-json -o "$D/fuzz_records/ref_stream"
# (tests/fixtures/streams/*.jsonl are the seeds "tokens" and "types")
head -3 $F/demo_tok/data.jsonl | "$B/lbdpo-tokenize" -q --tokenizer $F/demo_tok/tokenizer.json --keep-text -o "$D/fuzz_records/tok_stream"
# safetensors (byte 0): header of each fixture model, cut after 64 data bytes;
# config.json (byte 170) of each fixture model
for d in $F/hf/*/; do
	n=$(basename "$d")
	for st in "$d"model*.safetensors; do
		[ -f "$st" ] || continue
		h=$(od -An -t u8 -N 8 "$st" | tr -d ' ')
		{ printf '\x00'; head -c $((8 + h + 64)) "$st"; } > "$D/fuzz_safetensors/st_$n$(basename "$st" .safetensors | sed 's/^model//')"
	done
	[ -f "$d/config.json" ] && { printf '\xaa'; cat "$d/config.json"; } > "$D/fuzz_safetensors/cfg_$n"
done
# tokenizer (byte 0): the fixture tokenizer.json files (bl_split is "tokjson_seed"); JSONL (byte 85): demo data,
# conversational and implicit-prompt records
for t in $F/tokenizer/bl_digits.json $F/tokenizer/bl_prefix.json $F/tokenizer/sp_*.json $F/demo_tok/tokenizer.json; do
	n=$(basename "$(dirname "$t")")_$(basename "$t" .json)
	{ printf '\x00'; cat "$t"; } > "$D/fuzz_tokenizer/tok_$n"
done
{ printf '\x55'; head -3 $F/demo_tok/data.jsonl
  echo '{"prompt":[{"role":"user","content":"hi"}],"chosen":[{"role":"assistant","content":"yo"}],"rejected":[{"role":"assistant","content":"no"}]}'
  echo '{"chosen":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}],"rejected":[{"role":"user","content":"q"},{"role":"assistant","content":"b"}]}'
} > "$D/fuzz_tokenizer/jsonl_formats"
# jinja (the input is the template): hostile constructs, committed; chains
# and nesting just past the engine's bounds, budgets, integers past 64 bits
J=$D/fuzz_jinja; mkdir -p "$J"
printf '{{ 1%s }}' "$(printf ' + 1%.0s' $(seq 210))" > "$J/chain_add"
printf '{{ messages%s }}' "$(printf '[0]%.0s' $(seq 210))" > "$J/chain_item"
printf '{{ "a"%s }}' "$(printf '|trim%.0s' $(seq 210))" > "$J/chain_filter"
printf '{{ 1%s }}' "$(printf ' and 1%.0s' $(seq 210))" > "$J/chain_and"
printf '{{ "" * 9223372036854775807 }}{{ "ab" * 99999 }}' > "$J/repeat"
printf '{%% set ns = namespace(a=[1], s="ab") %%}{%% for i in range(40) %%}{%% set ns.a = [ns.a, ns.a] %%}{%% set ns.s = ns.s ~ ns.s %%}{%% endfor %%}{{ ns.a == ns.a }}{{ ns.a | tojson }}' > "$J/doubling"
printf '{{ ("a" * 1000) | replace("a", "bb") | list | length }}{{ ("a," * 1000).split(",") | length }}' > "$J/split_list"
printf '{{ 3 ** 41 }}{{ 2 ** 64 }}{{ -(-9223372036854775807 - 1) }}{{ 1e300 | int }}{{ "99999999999999999999" | int }}{{ 2.5 | round }}{{ 1 // 0.1 }}' > "$J/integers"
printf '{{ raise_exception("a\x1b[31m\n") }}{{ undefined_x + 1 }}' > "$J/messages"
printf '{%% if strftime_now is defined %%}{{ strftime_now("%%d %%b %%Y") }}{%% endif %%}{{ messages[0].tool_calls is none }}' > "$J/strftime"
# and the real chat templates, when the shared assets are here: into the
# working corpus (build/, not committed: they are not ours to copy)
C=build/fuzz/fuzz_jinja.corpus; mkdir -p "$C"
for t in "${LBDPO_SHARED:-../shared}"/assets/chat/templates/*.jinja; do
	[ -f "$t" ] && cp "$t" "$C/real_$(basename "$t" .jinja)"
done
ls -la "$D"/*/ | awk '{ s += $5 } END { print "seed bytes:", s }'

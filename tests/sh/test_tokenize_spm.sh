#!/usr/bin/env bash
# SentencePiece tokenizer.model files read directly, against the sentencepiece
# package (tests/ref/make_spm_fixtures.py): remove_extra_whitespaces on and
# off (a completion keeps its word boundary), BOS from bos_piece when bos_id
# is out of range, and lbdpo-show's decoding (prompt_text + chosen_text is
# sentencepiece's decode of the whole pair).
. "$(dirname "$0")/lib.sh"
FX="$ROOT/tests/fixtures/spm"
for m in squeeze keep bos_range; do
	lbdpo-tokenize -q --tokenizer "$FX/$m.model" --no-eos -i "$FX/cases.jsonl" -o "$T/$m.tok" || fail "$m: tokenize"
	lbdpo-show --no-header -i "$T/$m.tok" >"$T/$m.ids" || fail "$m: show"
	diff "$FX/$m.ids.jsonl" "$T/$m.ids" >"$T/d" || fail "$m: ids differ from sentencepiece's: $(head -4 "$T/d")"
	lbdpo-show --no-header --tokenizer "$FX/$m.model" -i "$T/$m.tok" >"$T/$m.text" || fail "$m: show --tokenizer"
	diff "$FX/$m.text.jsonl" "$T/$m.text" >"$T/d" || fail "$m: decoded texts differ from sentencepiece's: $(head -4 "$T/d")"
done
# a model directory holding only tokenizer.model
mkdir "$T/dir" && cp "$FX/squeeze.model" "$T/dir/tokenizer.model"
lbdpo-tokenize -q --tokenizer "$T/dir" --no-eos -i "$FX/cases.jsonl" | lbdpo-show --no-header >"$T/dir.ids" || fail "--tokenizer DIR"
cmp -s "$T/dir.ids" "$FX/squeeze.ids.jsonl" || fail "--tokenizer DIR with tokenizer.model: other ids"
exit 0

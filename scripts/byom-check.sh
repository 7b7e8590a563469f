#!/usr/bin/env bash
# byom-check.sh — the README's "Bring your own model and data" run as a new
# user would, on five model shapes, with checks that nothing is silently
# mismatched. Run by hand; NOT part of make test, because the models are made
# with Python (torch, transformers, datasets):
#
#   python3 scripts/make_byom_models.py /tmp/byom-models       # once (~15 s)
#   make -j2 && scripts/byom-check.sh /tmp/byom-models [WORKDIR]
#
# MODELS holds llama32/ qwen25/ qwen3/ mistral/ gemma2/ (HF directories, bf16)
# and prefs.jsonl, heldout.jsonl, prefs_nulls.jsonl, prompts.jsonl
# (conversational HH-RLHF pairs; see make_byom_models.py), and expected/:
# what transformers and TRL make of heldout.jsonl with each directory. Programs come from
# LBDPO_BIN (default: bin/ of this checkout); needs jq. Prints one PASS/FAIL
# line per check and exits 1 if any failed. About a minute on one core.
set -u -o pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODELS=${1:?usage: scripts/byom-check.sh MODELS_DIR [WORKDIR] (make MODELS_DIR with scripts/make_byom_models.py)}
MODELS=$(cd "$MODELS" && pwd) || exit 2
SHAPES="llama32 qwen25 qwen3 mistral gemma2"
for s in $SHAPES; do
	[ -f "$MODELS/$s/config.json" ] || { echo "$MODELS/$s: missing; run: python3 scripts/make_byom_models.py $MODELS" >&2; exit 2; }
done
command -v jq >/dev/null || { echo "byom-check.sh: needs jq" >&2; exit 2; }
export PATH="${LBDPO_BIN:-$ROOT/bin}:$PATH"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
if [ $# -ge 2 ]; then W=$2; rm -rf "$W"; mkdir -p "$W"; else W=$(mktemp -d); trap 'rm -rf "$W"' EXIT; fi
W=$(cd "$W" && pwd)
D=$MODELS
NFAIL=0 NPASS=0

res() { # res SHAPE CHECK 0|1 [DETAIL]
	if [ "$3" = 0 ]; then NPASS=$((NPASS + 1)); echo "PASS $1: $2"
	else NFAIL=$((NFAIL + 1)); echo "FAIL $1: $2${4:+ -- $4}"; fi
}
# ok SHAPE CHECK CMD...: the command succeeds
ok() {
	local s=$1 c=$2; shift 2
	if "$@" >"$W/last.out" 2>"$W/last.err"; then res "$s" "$c" 0
	else res "$s" "$c" 1 "$(tail -1 "$W/last.err")"; fi
}
# refused SHAPE CHECK PATTERN OUTFILE CMD...: the command fails with one
# "error:" line matching PATTERN and leaves no OUTFILE ("-": none named)
refused() {
	local s=$1 c=$2 pat=$3 of=$4 rc; shift 4
	"$@" >"$W/last.out" 2>"$W/last.err"; rc=$?
	local e; e=$(grep 'error:' "$W/last.err")
	if [ $rc -ne 0 ] && [ "$(printf '%s\n' "$e" | grep -c 'error:')" = 1 ] && printf '%s\n' "$e" | grep -Eq -- "$pat" &&
		{ [ "$of" = - ] || [ ! -e "$of" ]; }; then
		res "$s" "$c" 0; echo "     ($e)"
	else res "$s" "$c" 1 "rc $rc: $(tr '\n' ' ' <"$W/last.err")"; fi
}
# the same logps within 1e-6 relative (both JSON lists of numbers per line)
close() {
	paste -d ' ' "$1" "$2" | tr -d '[]' | tr ',' ' ' | awk '{ n = NF / 2; for (i = 1; i <= n; i++) {
		a = $i; b = $(i + n); d = a - b; if (d < 0) d = -d; m = (a < 0 ? -a : a); if (m < 1) m = 1
		if (d / m > 1e-6) { print "line " NR ": " a " vs " b; bad = 1 } } } END { exit bad }'
}

prev=gemma2
for s in $SHAPES; do
	M=$D/$s; S=$W/$s; mkdir -p "$S"; cd "$S" || exit 2
	echo "== $s ($M)"
	# the README's commands
	tf=$M/tokenizer.json; [ -f "$tf" ] || tf=$M/tokenizer.model  # Mistral: SentencePiece only
	ok "$s" "lbdpo-tokenize prefs (--tokenizer ${tf##*/})" lbdpo-tokenize --tokenizer "$tf" -i "$D/prefs.jsonl" -o pairs.tok
	ok "$s" "lbdpo-tokenize heldout (model dir as --tokenizer)" lbdpo-tokenize --tokenizer "$M" -i "$D/heldout.jsonl" -o held.tok
	h=$(lbdpo-show --header-only -i pairs.tok | jq -r .tokenizer.sha256)
	[ "$h" = "$(sha256sum <"$tf" | cut -d' ' -f1)" ]; res "$s" "records carry the model's tokenizer hash" $? "$h"
	tp=$(lbdpo-show --header-only -i pairs.tok | jq -r '.template // ""')
	case $tp in "$M"/tokenizer_config.json) r=0 ;; *) r=1 ;; esac
	res "$s" "template taken from the model's tokenizer_config.json" $r "template: $tp"
	bos=$(lbdpo-show --header-only -i pairs.tok | jq -r '.tokenizer.bos // -1')
	eos=$(lbdpo-show --header-only -i pairs.tok | jq -r '.tokenizer.eos // -1')
	n=$(lbdpo-show --no-header -i pairs.tok | jq -c --argjson b "$bos" --argjson e "$eos" \
		'select((.prompt_ids[0] == $b and .prompt_ids[1] == $b) or
			(.chosen_ids[-1] == $e and .chosen_ids[-2] == $e) or (.rejected_ids[-1] == $e and .rejected_ids[-2] == $e))' | wc -l)
	res "$s" "no doubled BOS/EOS (bos $bos, eos $eos)" "$([ "$n" = 0 ]; echo $?)" "$n records"
	lbdpo-tokenize --tokenizer "$M" --render -i "$D/prefs.jsonl" -o render.jsonl 2>/dev/null
	if lbdpo-tokenize --tokenizer "$M" --render -i "$D/prefs_nulls.jsonl" -o render_nulls.jsonl 2>"$W/last.err"; then
		cmp -s <(head -n "$(wc -l <"$D/prefs_nulls.jsonl")" render.jsonl) render_nulls.jsonl
		res "$s" "datasets.to_json data (null keys) renders as without them" $?
	else res "$s" "datasets.to_json data (null keys) renders as without them" 1 "$(tail -1 "$W/last.err")"; fi
	if [ "$s" = llama32 ]; then
		grep -q "Today Date: $(date '+%d %b %Y')" render.jsonl || grep -q "Today Date: $(date -d '-1 min' '+%d %b %Y')" render.jsonl
		res "$s" "strftime_now renders today's date ($(date '+%d %b %Y'))" $? "$(grep -o 'Today Date: [^\\]*' render.jsonl | sed -n 1p)"
	fi
	# against transformers + TRL (MODELS/expected/, made with the models)
	E=$D/expected
	if [ -f "$E/$s.render.jsonl" ]; then
		gd=$(cat "$E/date") td=$(date '+%d %b %Y')
		lbdpo-tokenize -q --tokenizer "$M" --render -i "$D/heldout.jsonl" | jq -S -c . >held_render.jsonl
		sed "s/Today Date: $gd/Today Date: $td/" "$E/$s.render.jsonl" | jq -S -c . >want_render.jsonl
		cmp -s held_render.jsonl want_render.jsonl
		res "$s" "--render = TRL's apply_chat_template with transformers' tokenizer of the directory" $? \
			"$(diff held_render.jsonl want_render.jsonl | sed -n 2p | cut -c1-300)"
	fi
	if [ -f "$E/$s.ids.jsonl" ]; then
		sel='{prompt_ids, chosen_ids, rejected_ids}' what="token ids"
		if [ "$s" = llama32 ] && [ "$gd" != "$td" ]; then sel='{chosen_ids, rejected_ids}' what="completion ids (prompt: models made on $gd)"; fi
		lbdpo-show --no-header -i held.tok | jq -c "$sel" >held_ids.jsonl
		jq -c "$sel" "$E/$s.ids.jsonl" >want_ids.jsonl
		cmp -s held_ids.jsonl want_ids.jsonl; res "$s" "$what = TRL DPOTrainer's" $? "$(diff held_ids.jsonl want_ids.jsonl | sed -n 2p | cut -c1-300)"
	fi
	ok "$s" "lbdpo-refcache" lbdpo-refcache --model "$M" --cache cache/ -i pairs.tok -o pairs.ref
	ok "$s" "lbdpo-refcache heldout" lbdpo-refcache --model "$M" --cache cache/ -i held.tok -o held.ref
	ok "$s" "lbdpo-step (1st)" lbdpo-step --model "$M" --output ckpt-1 --steps 2 -i pairs.ref --metrics m1.jsonl
	ok "$s" "lbdpo-step (2nd, resumes)" lbdpo-step --model ckpt-1 --output ckpt-2 --steps 2 -i pairs.ref --metrics m2.jsonl
	st=$(jq -r '.global_step // .step' ckpt-2/trainer_state.json 2>/dev/null)
	res "$s" "resumed run is at step 4" "$([ "$st" = 4 ]; echo $?)" "step $st"
	ok "$s" "lbdpo-eval" lbdpo-eval --model ckpt-2 -i held.ref -o eval.json --per-record per.jsonl
	ok "$s" "lbdpo-sample -m ckpt-2 (no --tokenizer)" lbdpo-sample -m ckpt-2 -i "$D/prompts.jsonl" -o samples.jsonl --max-new-tokens 8
	[ "$(jq -c 'select(.text | type == "string") | select(.ids | length > 0)' samples.jsonl | wc -l)" = 3 ]
	res "$s" "  3 samples with text and ids" $?
	# generation_config.json's eos list, every id of it: the greedy first
	# tokens put last in the list must stop every sample at once
	g=$(lbdpo-sample -q -m "$M" --greedy -i "$D/prompts.jsonl" --max-new-tokens 1 | jq -s -c '[.[].ids[0]] | unique')
	rm -rf eosm; mkdir eosm; cp "$M"/* eosm/
	jq --argjson g "${g:-[]}" '.eos_token_id = ([.eos_token_id] | flatten) + $g' "$M/generation_config.json" >eosm/generation_config.json
	n=$(lbdpo-sample -q -m eosm --greedy -i "$D/prompts.jsonl" --max-new-tokens 4 | jq -c 'select(.stop == "eos" and (.ids | length) == 0)' | wc -l)
	res "$s" "lbdpo-sample stops at the last ids of generation_config's eos list $(jq -c .eos_token_id eosm/generation_config.json)" \
		"$([ "$n" = 3 ]; echo $?)" "stopped: $n of 3"
	rm -rf eosm
	ok "$s" "lbdpo-sample -m base (no --tokenizer)" lbdpo-sample -m "$M" -i "$D/prompts.jsonl" -o /dev/null --max-new-tokens 4
	ok "$s" "lbdpo-logprob -m ckpt-2" lbdpo-logprob -q -m ckpt-2 -i held.tok -o held.scores
	# checkpoint files
	dt=$(head -c 4000 ckpt-2/model.safetensors | grep -ao '"dtype":"[A-Z0-9]*"' | sort -u | tr '\n' ' ')
	res "$s" "bf16 in, bf16 out (model.safetensors)" "$([ "$dt" = '"dtype":"BF16" ' ]; echo $?)" "$dt"
	lbdpo-show --no-header -i held.scores | jq -c '[.chosen_logp, .rejected_logp]' >lp.txt
	jq -c '[.logp_chosen, .logp_rejected]' per.jsonl >ev.txt
	close lp.txt ev.txt >"$W/last.err"; res "$s" "bf16 checkpoint: lbdpo-eval and lbdpo-logprob logps equal (1e-6)" $? "$(sed -n 1p "$W/last.err")"
	cmp -s ckpt-2/config.json "$M/config.json"; res "$s" "config.json carried byte for byte" $?
	[ "$(jq -c .eos_token_id ckpt-2/config.json)" = "$(jq -c .eos_token_id "$M/config.json")" ]
	res "$s" "  eos_token_id kept ($(jq -c .eos_token_id ckpt-2/config.json))" $?
	r=0; for f in generation_config.json tokenizer_config.json tokenizer.json tokenizer.model; do
		[ -f "$M/$f" ] || continue; cmp -s "$M/$f" "ckpt-2/$f" || { r=1; echo "     $f differs"; }; done
	res "$s" "generation_config.json and tokenizer files carried" $r
	# what must be refused
	echo '{"x":1}' >keep.jsonl
	refused "$s" "--metrics into an existing file (fresh run)" "exists" x1 \
		lbdpo-step --model "$M" --output x1 --steps 1 -i pairs.ref --metrics keep.jsonl
	[ "$(cat keep.jsonl)" = '{"x":1}' ]; res "$s" "  the file is untouched" $?
	refused "$s" "resume with changed --loss" "--loss dpo" x2 lbdpo-step --model ckpt-2 --output x2 --steps 1 -i pairs.ref --loss dpo
	P=$W/$prev
	if [ -f "$P/pairs.ref" ]; then
		refused "$s" "lbdpo-step -m $s with $prev's records" "tokenizer" x3 lbdpo-step --model "$M" --output x3 --steps 1 -i "$P/pairs.ref"
		refused "$s" "lbdpo-eval -m $s with $prev's records" "tokenizer" x4.json lbdpo-eval --model "$M" -i "$P/held.ref" -o x4.json
		refused "$s" "lbdpo-eval -m ckpt-2 with $prev's records" "tokenizer" x4.json lbdpo-eval --model ckpt-2 -i "$P/held.ref" -o x4.json
		refused "$s" "lbdpo-refcache -m $s with $prev's records" "tokenizer" x5 lbdpo-refcache --model "$M" --cache cache/ -i "$P/pairs.tok" -o x5
		refused "$s" "lbdpo-logprob -m $s with $prev's records" "tokenizer" x6 lbdpo-logprob -m "$M" -i "$P/pairs.tok" -o x6
	fi
	refused "$s" "lbdpo-sample -m $s --tokenizer $prev" "tokenizer" x7 \
		lbdpo-sample -m "$M" --tokenizer "$D/$prev" -i "$D/prompts.jsonl" -o x7
	# reference scores from another model (the trained checkpoint, same tokenizer)
	ok "$s" "lbdpo-refcache -m ckpt-2 (another reference)" lbdpo-refcache --model ckpt-2 --cache cache2/ -i pairs.tok -o other.ref
	refused "$s" "new lbdpo-step -m $s with ckpt-2's reference scores" "reference|scored" x8 \
		lbdpo-step --model "$M" --output x8 --steps 1 -i other.ref
	refused "$s" "resume lbdpo-step -m ckpt-2 with ckpt-2's own scores as reference" "reference|scored" x9 \
		lbdpo-step --model ckpt-2 --output x9 --steps 1 -i other.ref
	lbdpo-refcache -q --model ckpt-2 --cache cache2/ -i held.tok -o other_held.ref 2>/dev/null ||
		lbdpo-refcache --model ckpt-2 --cache cache2/ -i held.tok -o other_held.ref 2>/dev/null
	refused "$s" "lbdpo-eval -m ckpt-2 with another reference's scores" "reference|scored" x10.json \
		lbdpo-eval --model ckpt-2 -i other_held.ref -o x10.json
	prev=$s
done
# the first shape against the last one's records (the loop saw none yet)
s=llama32 M=$D/llama32 P=$W/gemma2; cd "$W/$s" || exit 2
refused "$s" "lbdpo-step -m $s with gemma2's records" "tokenizer" x3 lbdpo-step --model "$M" --output x3 --steps 1 -i "$P/pairs.ref"
refused "$s" "lbdpo-eval -m $s with gemma2's records" "tokenizer" x4.json lbdpo-eval --model "$M" -i "$P/held.ref" -o x4.json
echo "byom-check: $NPASS passed, $NFAIL failed"
[ $NFAIL = 0 ]

#!/usr/bin/env bash
# tokenize.sh — tokenization throughput, MB/s of JSONL text, single thread:
# lbdpo-tokenize (GPT-2 tokenizer, implicit prompt, all HH-RLHF test files,
# uncompressed, repeated REPEAT times) side by side with the Hugging Face
# `tokenizers` package doing the same job (bench/tokenize_hf.py), when installed.
set -u
cd "$(dirname "$0")/.."
: "${LBDPO_BIN:=$PWD/bin}" "${LBDPO_ASSETS:=$PWD/../shared/assets}"
tokjson="$LBDPO_ASSETS/gpt2/tokenizer.json"
[ -f "$tokjson" ] && ls "$LBDPO_ASSETS"/hh-rlhf/*.jsonl.gz >/dev/null 2>&1 || { echo "skipped: $LBDPO_ASSETS (gpt2, hh-rlhf) absent"; exit 0; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for _ in $(seq "${REPEAT:-2}"); do gzip -dc "$LBDPO_ASSETS"/hh-rlhf/*.jsonl.gz; done > "$tmp/in.jsonl"
mb=$(awk -v b="$(stat -c %s "$tmp/in.jsonl")" 'BEGIN { printf "%.2f", b / 1e6 }')
echo "input: $mb MB of JSONL, $(wc -l < "$tmp/in.jsonl") pairs (gpt2 tokenizer, implicit prompt)"
best=""
for _ in 1 2 3; do # best of 3 (the machine is shared)
	s=$(date +%s.%N)
	OMP_NUM_THREADS=1 "$LBDPO_BIN/lbdpo-tokenize" -q --skip-invalid --tokenizer "$tokjson" -i "$tmp/in.jsonl" -o "$tmp/out.tok" || exit 1
	e=$(date +%s.%N)
	t=$(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f", e - s }')
	best=$(awk -v a="${best:-1e9}" -v b="$t" 'BEGIN { print (b < a ? b : a) }')
done
ours=$(awk -v m="$mb" -v t="$best" 'BEGIN { printf "%.1f", m / t }')
echo "lbdpo-tokenize:            ${best}s  $ours MB/s (whole program: read, parse, tokenize, write records)"
if python3 -c 'import tokenizers' 2>/dev/null; then
	out=$(python3 bench/tokenize_hf.py "$tokjson" "$tmp/in.jsonl") || exit 1
	tp=$(awk '/hf-pipeline/ { print $2 }' <<<"$out"); tb=$(awk '/hf-encode-batch/ { print $2 }' <<<"$out")
	echo "tokenizers $(python3 -c 'import tokenizers; print(tokenizers.__version__)') pipeline:  ${tp}s  $(awk -v m="$mb" -v t="$tp" 'BEGIN { printf "%.1f", m / t }') MB/s (json.loads + same prompt rule + encode per text)"
	echo "tokenizers encode_batch:   ${tb}s  $(awk -v m="$mb" -v t="$tb" 'BEGIN { printf "%.1f", m / t }') MB/s (encoding only, RAYON_NUM_THREADS=1)"
	echo "ratio lbdpo/tokenizers:    $(awk -v a="$tp" -v b="$best" 'BEGIN { printf "%.2f", a / b }')x pipeline, $(awk -v a="$tb" -v b="$best" 'BEGIN { printf "%.2f", a / b }')x encode-only"
else
	echo "tokenizers (python) not installed: no side-by-side numbers"
fi

#!/usr/bin/env bash
# Real assets end to end: HH-RLHF pairs tokenized with the stories260K
# tokenizer, reference scores from the real stories260K model (lbdpo-refcache),
# then lbdpo-step (lbdpo) trains on them: the training loss falls, the
# checkpoint resumes bit-identically, and lbdpo-eval/lbdpo-beta read it.
. "$(dirname "$0")/lib.sh"
need_shared assets/stories260K/stories260K.bin assets/stories260K/tok512.bin assets/hh-rlhf
A="$LBDPO_SHARED/assets"
hh=$(ls "$A"/hh-rlhf/*helpful-base*.jsonl.gz 2>/dev/null | head -1)
[ -n "$hh" ] || { echo "skipped: no helpful-base file in $A/hh-rlhf"; exit 77; }
cd "$T"
zcat "$hh" | head -48 > pairs.jsonl
lbdpo-tokenize -q --tokenizer "$A/stories260K/tok512.bin" --max-length 96 --truncation-mode keep_start --max-prompt-length 64 -i pairs.jsonl -o pairs.tok ||
	fail "tokenize"
lbdpo-refcache --model "$A/stories260K/stories260K.bin" -t 1 -i pairs.tok -o pairs.ref 2>/dev/null || fail "refcache"
M="$A/stories260K/stories260K.bin"
S=(-i pairs.ref --threads 1 --batch-size 8 --lr 1e-3 --beta 0.1 --seed 2 --ppl-from policy) # the default before ref
lbdpo-step "${S[@]}" --model "$M" --output full --steps 12 --metrics m.jsonl || fail "lbdpo-step on stories260K"
sed -n 's/.*"loss": \([^,]*\),.*/\1/p' m.jsonl | awk 'NR <= 6 { a += $1 } NR > 6 { b += $1 } END {
	printf "stories260K lbdpo: mean loss steps 1-6 %.4f, 7-12 %.4f\n", a / 6, b / 6; exit !(b < a) }' ||
	fail "training loss did not fall"
grep -q '"ppl/prompt"' m.jsonl || fail "no ppl/prompt"
lbdpo-step "${S[@]}" --model "$M" --output half --steps 6 --total-steps 12 || fail "half"
lbdpo-step "${S[@]}" --model half --output rest --steps 6 || fail "resume"
for f in model.safetensors beta_head.safetensors optimizer.safetensors; do
	cmp -s full/$f rest/$f || fail "resume differs in $f"
done
lbdpo-eval --threads 1 -m full -i pairs.ref -o ev.json || fail "eval"
grep -q '"rewards/accuracies"' ev.json || fail "eval summary"
lbdpo-beta --threads 1 -m full -i pairs.ref | lbdpo-show --no-header | grep -c '"beta":' | grep -qx 48 ||
	fail "lbdpo-beta"
echo ok

#!/usr/bin/env bash
# The "flipped" key of lbdpo-gendata's pairs (formats/schema.h KEY_FLIPPED):
# it passes through lbdpo-tokenize, lbdpo-refcache and lbdpo-beta for
# analysis, and training ignores it: the same pairs without the key give the
# same token ids and bit-identical weights after a few steps.
. "$(dirname "$0")/lib.sh"
cd "$T"
lbdpo-gendata --task noise --seed 3 --n-train 64 --n-test 0 --out-dir d --tokenizer-out d/tok.json || fail "gendata"
grep -q '"flipped":true' d/train.jsonl || fail "no flipped pair to carry"
sed 's/,"flipped":\(true\|false\)//' d/train.jsonl >d/plain.jsonl
grep -q flipped d/plain.jsonl && fail "strip"
for v in train plain; do
	lbdpo-tokenize -q --tokenizer d/tok.json -i d/$v.jsonl -o $v.tok || fail "tokenize $v"
done
lbdpo-init -q --arch llama --dim 32 --layers 1 --heads 2 --max-seq 64 --vocab-from d/tok.json --seed 1 -o init || fail "init"
for v in train plain; do
	lbdpo-refcache -q --model init --cache rc -t 1 -i $v.tok -o $v.ref || fail "refcache $v"
	lbdpo-step --loss lbdpo --model init --fresh -i $v.ref --steps 3 --batch-size 8 --threads 1 -q -o m-$v || fail "step $v"
done
# the key survives, in order, with the generator's values
lbdpo-show --no-header -i train.ref >t.jsonl
[ "$(grep -c '"flipped":true' t.jsonl)" = "$(grep -c '"flipped":true' d/train.jsonl)" ] || fail "flipped lost in the records"
lbdpo-beta -m m-train -i train.ref -t 1 | lbdpo-show --no-header | grep -c '"flipped":true' >n
[ "$(cat n)" = "$(grep -c '"flipped":true' d/train.jsonl)" ] || fail "lbdpo-beta lost flipped"
# the same ids and the same training with and without it
diff <(sed 's/"flipped":\(true\|false\),//' t.jsonl | sed 's/"ref_[a-z_]*":[^,}]*[,}]//g') \
	<(lbdpo-show --no-header -i plain.ref | sed 's/"ref_[a-z_]*":[^,}]*[,}]//g') >/dev/null || fail "records differ beyond the key"
cmp -s m-train/model.safetensors m-plain/model.safetensors || fail "training read the flipped key: weights differ"
echo ok

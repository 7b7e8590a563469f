#!/usr/bin/env bash
# test_refcache_tokens.sh — lbdpo-refcache on rollouts (JSON Lines of
# lbdpo-sample --logprobs): "ref_token_logps" are lbdpo-logprob -b 0's bit for
# bit (real sampled rollouts and generated ones); a second run scores nothing
# and writes the same bytes; a batch sharing rollouts with an earlier one
# scores only the new ones; SIGKILL mid-run then a re-run is byte-identical to
# an uninterrupted run; a wrong-model cache, a damaged cache (file and byte
# offset), rollouts whose ids are not their text in the reference's
# tokenizer and bad input are refused in one line with no output; the
# sequence-score mode in the same cache directory is unaffected.
. "$(dirname "$0")/lib.sh"
cd "$T"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
gen() { awk -v seed="$1" -v n="$2" -v V=512 -v L="${4:-0}" -f "$ROOT/tests/sh/rollouts_gen.awk" >"$3"; }
summary() { grep 'rollouts:' "$1" | tail -1; }
computed() { sed -n 's/.* rollouts: \([0-9]*\) computed.*/\1/p' "$1"; }

lbdpo-init -q --arch llama --dim 64 --layers 2 --heads 4 --kv-heads 2 --hidden 128 --vocab 512 --seed 1 -o m1 || fail "lbdpo-init"
lbdpo-init -q --arch llama --dim 64 --layers 2 --heads 4 --kv-heads 2 --hidden 128 --vocab 512 --seed 2 -o m2 || fail "lbdpo-init"

# 1. Real rollouts (lbdpo-sample --logprobs, judged): the values of
#    lbdpo-logprob -b 0, every other key passed through unchanged.
lbdpo-gendata --seed 3 --n-train 60 --n-test 4 --vocab-size 384 --out-dir data --tokenizer-out tok.json >/dev/null 2>&1 || fail "gendata"
lbdpo-init -q --arch llama --dim 32 --layers 2 --heads 4 --max-seq 64 --vocab-from tok.json --seed 3 -o pol || fail "init"
lbdpo-init -q --arch llama --dim 32 --layers 2 --heads 4 --max-seq 64 --vocab-from tok.json --seed 4 -o ref || fail "init"
sed -E 's/,"chosen":.*/}/' data/train.jsonl | sed -n 1,30p >prompts.jsonl
lbdpo-sample -q -m pol --logprobs --n 4 --max-new-tokens 8 --seed 2 --threads 1 -i prompts.jsonl -o s.jsonl || fail "sample"
awk -f "$ROOT/pipelines/demo-judge.awk" s.jsonl >sc.jsonl || fail "judge"
lbdpo-logprob -q -m ref -t 1 -b 0 -i sc.jsonl -o sc.lp || fail "lbdpo-logprob on rollouts"
lbdpo-refcache -m ref -t 1 --cache c -i sc.jsonl -o sc.ref 2>e1 || { cat e1; fail "lbdpo-refcache on rollouts"; }
n=$(wc -l <sc.jsonl)
[ "$(grep -c '"ref_token_logps":\[-' sc.ref)" = "$n" ] || fail "ref_token_logps not on every line"
cmp sc.lp sc.ref || fail "ref_token_logps differ from lbdpo-logprob -b 0's"
sed -E 's/,"ref_token_logps":\[[^]]*\]//' sc.ref | cmp -s - sc.jsonl || fail "lines changed beyond ref_token_logps"
grep -q "$n rollouts: $n computed, 0 from cache" e1 || fail "first run: $(summary e1)"
# lbdpo-logprob's default packing (32 per forward) agrees to float32 rounding
lbdpo-logprob -q -m ref -t 1 -i sc.jsonl -o sc.lp32 || fail "lbdpo-logprob, default packing"
num_close sc.lp32 sc.ref 1e-5 >/dev/null || fail "default packing disagrees beyond float32 rounding"

# 2. A second run scores nothing and writes the same bytes (a file, standard
#    input, a pipe).
lbdpo-refcache -m ref -t 1 --cache c -i sc.jsonl -o sc.ref2 2>e2 || fail "second run"
grep -q "$n rollouts: 0 computed, $n from cache; 0 tokens computed" e2 || fail "second run computed: $(summary e2)"
cmp sc.ref sc.ref2 || fail "cached output differs from computed output"
lbdpo-refcache -q -m ref -t 1 --cache c <sc.jsonl | cmp -s - sc.ref || fail "stdin"
cat sc.jsonl | lbdpo-refcache -q -m ref -t 1 --cache c | cmp -s - sc.ref || fail "pipe"

# 3. A batch sharing rollouts with an earlier one scores only the new ones,
#    and its output is lbdpo-logprob -b 0's.
gen 7 200 a.jsonl
gen 8 100 b.jsonl
{ sed -n '51,150p' a.jsonl; cat b.jsonl; } >ab.jsonl
lbdpo-refcache -m m1 -t 1 --cache c -i a.jsonl -o a.ref 2>e3 || fail "batch a"
lbdpo-refcache -m m1 -t 1 --cache c -i ab.jsonl -o ab.ref 2>e4 || fail "batch ab"
grep -q '200 rollouts: 100 computed, 100 from cache' e4 || fail "shared batch: $(summary e4)"
lbdpo-logprob -q -m m1 -t 1 -b 0 -i ab.jsonl -o ab.lp || fail "lbdpo-logprob ab"
cmp ab.lp ab.ref || fail "shared batch output differs from lbdpo-logprob -b 0's"
# the same rollout twice in one batch is scored once
{ cat b.jsonl; cat b.jsonl; } >bb.jsonl
lbdpo-refcache -m m1 -t 1 -i bb.jsonl -o bb.ref 2>e5 || fail "duplicates"
grep -q '200 rollouts: 100 computed, 100 from cache' e5 || fail "duplicates in a batch: $(summary e5)"

# 4. SIGKILL mid-run, re-run: byte-identical to an uninterrupted run.
gen 9 4000 big.jsonl
mkdir -p ka kb
(cd ka && lbdpo-refcache -m ../m1 -t 1 --cache cache -i ../big.jsonl -o out.jsonl 2>/dev/null) || fail "uninterrupted run"
(cd kb && exec lbdpo-refcache -m ../m1 -t 1 --cache cache -i ../big.jsonl -o out.jsonl 2>/dev/null) &
pid=$!
kill_mid_run $pid "kb/cache/*/tok-*.rc"
[ ! -e kb/out.jsonl ] || fail "killed run left an output file (or finished before the kill)"
(cd kb && lbdpo-refcache -m ../m1 -t 1 --cache cache -i ../big.jsonl -o out.jsonl 2>../e6) || { cat e6; fail "re-run"; }
comp=$(computed e6)
[ -n "$comp" ] && [ "$comp" -gt 0 ] && [ "$comp" -lt 4000 ] || fail "re-run was not a resumed run: $(summary e6)"
cmp ka/out.jsonl kb/out.jsonl || fail "killed + resumed output differs from an uninterrupted run"
lbdpo-logprob -q -m m1 -t 1 -b 0 -i big.jsonl -o big.lp && cmp big.lp ka/out.jsonl || fail "big batch differs from lbdpo-logprob -b 0"

# 5. Refusals: one line, nothing written.
# a segment of model m1 in m2's directory
lbdpo-refcache -q -m m1 -t 1 --cache w -i b.jsonl -o /dev/null || fail "m1 run"
fp1=$(ls w | grep -v LBDPO)
lbdpo-refcache -q -m m2 -t 1 --cache w -i b.jsonl -o /dev/null || fail "m2 run"
fp2=$(ls w | grep -v LBDPO | grep -v "$fp1")
[ -n "$fp2" ] && cp w/"$fp1"/tok-*.rc "w/$fp2/tok-copied.rc" || fail "copying a segment"
msg=$(expect_fail lbdpo-refcache -m m2 -t 1 --cache w -i b.jsonl -o x.jsonl)
[[ $msg == *"tok-copied.rc: cache segment of model ${fp1:0:16}..., not of the reference ${fp2:0:16}...: refusing a wrong-model cache"* ]] ||
	fail "wrong-model cache: $msg"
[ ! -e x.jsonl ] || fail "output written despite a wrong-model cache"
# a damaged entry: refused naming the file and the entry's byte offset
# (fixed-length completions: entry k starts at 56 + k * (56 + 4 * 5))
gen 10 20 f.jsonl 5
lbdpo-refcache -q -m m1 -t 1 --cache d -i f.jsonl -o f.ref || fail "fixed-length run"
fseg=$(ls d/*/tok-*.rc)
[ "$(stat -c %s "$fseg")" = $((56 + 20 * 76)) ] || fail "segment size $(stat -c %s "$fseg")"
cp "$fseg" seg.bak
printf '\x42' | dd of="$fseg" bs=1 seek=$((56 + 7 * 76 + 50)) conv=notrunc status=none
msg=$(expect_fail lbdpo-refcache -m m1 -t 1 --cache d -i f.jsonl -o x.jsonl)
[[ $msg == *"$fseg: byte $((56 + 7 * 76)): damaged per-token cache entry"* ]] || fail "damaged entry: $msg"
[ ! -e x.jsonl ] || fail "output written despite a damaged cache"
# a torn tail (what a kill leaves) is skipped: only its rollout is scored again
head -c $((56 + 19 * 76 + 30)) seg.bak >"$fseg"
lbdpo-refcache -m m1 -t 1 --cache d -i f.jsonl -o f.ref2 2>e7 || fail "run on a torn cache"
grep -q '20 rollouts: 1 computed, 19 from cache.*1 torn tails ignored' e7 || fail "torn tail: $(summary e7)"
cmp f.ref f.ref2 || fail "output after a torn tail differs"
# the provenance rule: a line whose ids are not its text in the reference's
# tokenizer comes from a policy with another tokenizer
[ -e ref/tokenizer.json ] || cp tok.json ref/tokenizer.json
k=$(grep -n -v $'\xef\xbf\xbd' sc.jsonl | sed -n 1p | cut -d: -f1) # a text that is valid UTF-8
[ -n "$k" ] || fail "no sample with a valid UTF-8 text"
sed "${k}s/\"text\":\"[^\"]*\"/\"text\":\"other words\"/" sc.jsonl >other.jsonl
cmp -s other.jsonl sc.jsonl && fail "text not replaced"
msg=$(expect_fail lbdpo-refcache -m ref -t 1 --cache c -i other.jsonl -o x.jsonl)
[[ $msg == *"other.jsonl: line $k: \"ids\" do not decode to \"text\" with ref/tokenizer.json"* ]] || fail "another tokenizer: $msg"
[ ! -e x.jsonl ] || fail "output written for another tokenizer's rollouts"
lbdpo-refcache -m ref -t 1 --cache c --ignore-provenance -i other.jsonl -o x.jsonl 2>e9 && grep -q "warning: other.jsonl: line $k" e9 ||
	fail "--ignore-provenance: $(cat e9)"
rm -f x.jsonl
# options that do not apply to rollouts, and bad lines
expect_fail lbdpo-refcache -m m1 --shard 0/2 -i f.jsonl -o x.jsonl | grep -q 'one process' || fail "--shard with rollouts"
expect_fail lbdpo-refcache -m m1 -b 512 -i f.jsonl -o x.jsonl | grep -q 'one per forward' || fail "-b with rollouts"
sed '3s/,"reward":[0-9]*}/}/' f.jsonl >noreward.jsonl
msg=$(expect_fail lbdpo-refcache -m m1 --cache d -i noreward.jsonl -o x.jsonl)
[[ $msg == *"noreward.jsonl: line 3: "*"reward"* ]] || fail "line without a reward: $msg"
sed '4s/"ids":\[/"ids":[999,/' f.jsonl >badid.jsonl
msg=$(expect_fail lbdpo-refcache -m m1 --cache d -i badid.jsonl -o x.jsonl)
[[ $msg == *"badid.jsonl: line 4: "* ]] || fail "token id beyond the vocabulary: $msg"
[ ! -e x.jsonl ] || fail "output written despite bad input"

# 6. The sequence-score mode beside per-token segments: unchanged.
awk -v seed=11 -v n=20 -v V=512 -v sha=1111111111111111111111111111111111111111111111111111111111111111 \
	-f "$ROOT/tests/sh/pairs_gen.awk" >p.jsonl && lbdpo-show --from-json -i p.jsonl -o p.tok || fail "records"
lbdpo-refcache -q -m m1 -i p.tok -o p0.ref || fail "records, no cache"
lbdpo-refcache -m m1 -i p.tok -o p1.ref --cache d 2>e8 || fail "records, cache with per-token segments"
grep -q '20 records: 20 computed, 0 from cache' e8 || fail "records: $(grep computed e8)"
[ "$(lbdpo-show --no-header -i p0.ref)" = "$(lbdpo-show --no-header -i p1.ref)" ] || fail "records' scores changed by a cache with per-token segments"
exit 0

#!/usr/bin/env bash
# test_refcache.sh — lbdpo-refcache against lbdpo-logprob, the cache (second
# run computes nothing, SIGKILL + re-run is byte-identical, damaged entries are
# recomputed), sharding + merge, and every refusal.
. "$(dirname "$0")/lib.sh"
cd "$T"
# Tiny models: threads only add synchronisation (and the machine is shared).
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
gen() { awk -v seed="$1" -v n="$2" -v V=512 -v sha=1111111111111111111111111111111111111111111111111111111111111111 -f "$ROOT/tests/sh/pairs_gen.awk" >"$3.jsonl" &&
	lbdpo-show --from-json -i "$3.jsonl" -o "$3"; }
recs() { lbdpo-show --no-header -i "$1"; }               # records as JSON lines
field() { grep -o "\"$1\":[^,}]*" | sed 's/.*://'; }      # one value per record
summary() { grep 'computed,' "$1" | tail -1; }

lbdpo-init -q --arch llama --dim 64 --layers 2 --heads 4 --kv-heads 2 --hidden 128 --vocab 512 --seed 1 -o m1 || fail "lbdpo-init"
lbdpo-init -q --arch llama --dim 64 --layers 2 --heads 4 --kv-heads 2 --hidden 128 --vocab 512 --seed 2 -o m2 || fail "lbdpo-init"
lbdpo-init -q --arch llama --dim 64 --layers 2 --heads 4 --kv-heads 2 --hidden 128 --vocab 256 --seed 1 -o small || fail "lbdpo-init"
gen 11 60 p.tok || fail "generating records"

# 1. Same scores as lbdpo-logprob (same packing), every key passed through.
lbdpo-logprob --model m1 -i p.tok -o p.sc -b 0 2>/dev/null || fail "lbdpo-logprob"
lbdpo-refcache --model m1 -i p.tok -o p.ref --cache c1 2>s1 || { cat s1; fail "lbdpo-refcache"; }
for k in chosen_logp rejected_logp chosen_n rejected_n prompt_logp prompt_entropy; do
	a=$(recs p.sc | field "$k"); b=$(recs p.ref | field "ref_$k")
	[ -n "$a" ] && [ "$(wc -l <<<"$a")" = 60 ] || fail "lbdpo-logprob gave no $k"
	[ "$a" = "$b" ] || fail "ref_$k differs from lbdpo-logprob's $k"
done
[ "$(recs p.ref | field group)" = "$(recs p.tok | field group)" ] || fail "keys not passed through"
lbdpo-show --header-only -i p.ref | grep -q '"reference":{"path":"m1","fingerprint":"[0-9a-f]\{64\}"}' ||
	fail "header lacks the reference fingerprint"
lbdpo-show --header-only -i p.ref | grep -q '"sha256":"1111111111111111111111111111111111111111111111111111111111111111"' || fail "header lost the tokenizer"
grep -q '60 records: 60 computed, 0 from cache' s1 || fail "first run summary: $(summary s1)"

# 2. A second run computes nothing and writes the same bytes.
lbdpo-refcache --model m1 -i p.tok -o p.ref --cache c1 2>s2 || fail "second run"
grep -q '60 records: 0 computed, 60 from cache' s2 || fail "second run computed: $(summary s2)"
cp p.ref p.ref.first
lbdpo-refcache --model m1 -i p.tok -o p.ref --cache c1 2>/dev/null && cmp -s p.ref p.ref.first ||
	fail "cached output differs from computed output"
# A grown dataset computes only the new records.
gen 11 75 grown.tok
lbdpo-refcache --model m1 -i grown.tok -o grown.ref --cache c1 2>s3 || fail "grown run"
grep -q '75 records: 15 computed, 60 from cache' s3 || fail "grown run: $(summary s3)"

# 3. Damaged cache entries are ignored and recomputed, never read back.
seg=$(ls c1/*/seg-*.rc | head -1)
printf '\x7f' | dd of="$seg" bs=1 seek=$((56 + 5 * 96 + 45)) conv=notrunc status=none # a chosen_logp byte
lbdpo-refcache --model m1 -i p.tok -o p.ref --cache c1 2>s4 || fail "run on a damaged cache"
grep -q '1 computed, 59 from cache' s4 || fail "damaged entry not recomputed: $(summary s4)"
grep -q '1 damaged ranges ignored' s4 || fail "damage not reported: $(summary s4)"
cmp -s p.ref p.ref.first || fail "output after a damaged cache differs"
head -c $(( $(stat -c %s "$seg") - 50 )) "$seg" >"$seg.cut" && mv "$seg.cut" "$seg" # torn tail
lbdpo-refcache --model m1 -i p.tok -o p.ref --cache c1 2>s5 || fail "run on a torn cache"
cmp -s p.ref p.ref.first || fail "output after a torn cache differs"

# 4. SIGKILL mid-run, re-run: byte-identical to an uninterrupted run.
gen 12 3000 big.tok
mkdir -p a b
(cd a && lbdpo-refcache --model ../m1 -i ../big.tok -o out.ref -b 48 -t 1 --cache cache 2>/dev/null) || fail "uninterrupted run"
(cd b && exec lbdpo-refcache --model ../m1 -i ../big.tok -o out.ref -b 48 -t 1 --cache cache 2>/dev/null) &
pid=$!
kill_mid_run $pid "b/cache/*/seg-*.rc"
[ ! -e b/out.ref ] || fail "killed run left an output file (or finished before the kill)"
(cd b && lbdpo-refcache --model ../m1 -i ../big.tok -o out.ref -b 48 -t 1 --cache cache 2>../s6) || fail "re-run"
comp=$(sed -n 's/.*records: \([0-9]*\) computed.*/\1/p' s6)
[ -n "$comp" ] && [ "$comp" -gt 0 ] && [ "$comp" -lt 3000 ] || fail "re-run was not a resumed run: $(summary s6)"
cmp a/out.ref b/out.ref || fail "killed + resumed output differs from an uninterrupted run"

# 5. Shards merged equal the unsharded output (one pair per forward: exact).
# (-b 1 and the default -b 0 both mean one pair per forward.)
lbdpo-refcache --model m1 -i p.tok -b 1 -o full.ref 2>/dev/null || fail "unsharded"
for i in 0 1 2; do lbdpo-refcache --model m1 -i p.tok -b 1 --shard $i/3 -o sh$i.ref 2>/dev/null || fail "shard $i"; done
[ "$(recs sh1.ref | field id | head -2 | tr '\n' ' ')" = '"r1" "r4" ' ] || fail "shard 1/3 is not records 1, 4, ..."
lbdpo-refcache --merge -o merged.ref sh2.ref sh0.ref sh1.ref 2>/dev/null || fail "merge"
[ "$(recs merged.ref)" = "$(recs full.ref)" ] || fail "merged shards differ from the unsharded output"
lbdpo-show --header-only -i merged.ref | grep -q '"shard"' && fail "merged header still names a shard"
expect_fail lbdpo-refcache --merge sh0.ref sh1.ref
expect_fail lbdpo-refcache --merge sh0.ref sh0.ref sh1.ref
expect_fail lbdpo-refcache --model m1 -i sh0.ref
# Shards of another input (same record count) or another reference model
# are refused in one line naming both files, with no output.
gen 12 60 q.tok || fail "generating records"
lbdpo-refcache --model m1 -i q.tok -b 1 --shard 1/3 -o qsh1.ref 2>/dev/null || fail "shard of q"
msg=$(expect_fail lbdpo-refcache --merge -o mix.ref sh0.ref qsh1.ref sh2.ref)
[[ $msg == *"sh0.ref and qsh1.ref are shards of different inputs"* ]] || fail "mixed inputs merged: $msg"
[ ! -e mix.ref ] || fail "output of a refused merge"
lbdpo-refcache --model m2 -i p.tok -b 1 --shard 1/3 -o m2sh1.ref 2>/dev/null || fail "shard of m2"
msg=$(expect_fail lbdpo-refcache --merge -o mix.ref sh0.ref m2sh1.ref sh2.ref)
[[ $msg == *"sh0.ref and m2sh1.ref are shards of different reference models"* ]] || fail "mixed models merged: $msg"
# The input named by content: a shard read from a redirected file is the
# file's shard; a pipe's shard is named by the input's header.
lbdpo-refcache --model m1 -b 1 --shard 1/3 -o rsh1.ref <p.tok 2>/dev/null || fail "shard of stdin"
lbdpo-refcache --merge -o rmerged.ref sh0.ref rsh1.ref sh2.ref 2>/dev/null && [ "$(recs rmerged.ref)" = "$(recs merged.ref)" ] ||
	fail "shard read from stdin does not merge with the others"
lbdpo-show --header-only -i rsh1.ref | grep -q "\"input\":\"sha256:$(sha256sum p.tok | cut -c1-64)\"" ||
	fail "shard header: $(lbdpo-show --header-only -i rsh1.ref)"
cat p.tok | lbdpo-refcache --model m1 -b 1 --shard 1/3 -o psh1.ref 2>/dev/null || fail "shard of a pipe"
lbdpo-show --header-only -i psh1.ref | grep -q '"input":"header-sha256:[0-9a-f]\{64\}"' || fail "pipe shard header"
# Packed batches: shards agree with the unsharded run to fp32 rounding.
lbdpo-refcache --model m1 -i p.tok -b 512 -o fullb.ref 2>/dev/null && lbdpo-refcache --model m1 -i p.tok -b 512 --shard 0/2 -o b0.ref 2>/dev/null &&
	lbdpo-refcache --model m1 -i p.tok -b 512 --shard 1/2 -o b1.ref 2>/dev/null && lbdpo-refcache --merge -o mb.ref b0.ref b1.ref 2>/dev/null ||
	fail "default-packing shards"
paste -d' ' <(recs mb.ref | field ref_chosen_logp) <(recs fullb.ref | field ref_chosen_logp) |
	awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 1e-4 + 1e-6 * ($2 < 0 ? -$2 : $2)) bad++ } END { exit bad > 0 || NR != 60 }' ||
	fail "packed shards disagree beyond fp32 rounding"

# Progress: records read of the total, percentage and ETA (the total is
# counted in the file, also when it is standard input; a pipe has none).
LBDPO_PROGRESS_SECONDS=0 lbdpo-refcache --model m1 -i p.tok -o /dev/null 2>pg.err || fail "progress run"
[ "$(grep -c '^lbdpo-refcache: [0-9]*/60 records read, [0-9]*:[0-9]* elapsed ([0-9]*%), ETA [0-9]*:[0-9]*; [0-9]* computed, ' pg.err)" = 60 ] ||
	fail "progress lines: $(head -3 pg.err)"
grep -q '^lbdpo-refcache: 60/60 records read' pg.err || fail "progress does not reach the total"
LBDPO_PROGRESS_SECONDS=0 lbdpo-refcache --model m1 -o /dev/null <p.tok 2>pg.err || fail "progress run, stdin"
grep -q '^lbdpo-refcache: 1/60 records read, ' pg.err || fail "progress total from stdin: $(head -1 pg.err)"
cat p.tok | LBDPO_PROGRESS_SECONDS=0 lbdpo-refcache --model m1 -o /dev/null 2>pg.err || fail "progress run, pipe"
grep -q '^lbdpo-refcache: 1 records read, [0-9]*:[0-9]* elapsed; ' pg.err || fail "progress of a pipe: $(head -1 pg.err)"

# 6. Refusals.
fp1=$(ls c1 | grep -v LBDPO); lbdpo-refcache --model m2 -i p.tok -o /dev/null --cache c1 2>/dev/null || fail "m2 run"
fp2=$(ls c1 | grep -v LBDPO | grep -v "$fp1")
cp "$seg" "c1/$fp2/seg-copied.rc"
expect_fail lbdpo-refcache --model m2 -i p.tok -o x.ref --cache c1 | grep -q 'wrong-model cache' || fail "wrong-model cache not refused"
[ ! -e x.ref ] || fail "output written despite the error"
rm "c1/$fp2/seg-copied.rc"
expect_fail lbdpo-refcache --model m2 -i p.ref -o x.ref | grep -q 'already carries reference scores' || fail "other reference not refused"
lbdpo-refcache --model m1 -i p.ref -o again.ref 2>/dev/null || fail "same reference again refused"
expect_fail lbdpo-refcache --model m1 -i p.tok --tokenizer-sha other | grep -q 'tokenizer' || fail "tokenizer sha not checked"
lbdpo-refcache --model m1 -i p.tok --tokenizer-sha 1111111111111111111111111111111111111111111111111111111111111111 -o /dev/null 2>/dev/null || fail "matching tokenizer sha refused"
expect_fail lbdpo-refcache --model small -i p.tok | grep -q 'vocab' || fail "vocab mismatch not refused"
# The model directory's own tokenizer.json must be the one the records name.
echo '{"model":{}}' >m1/tokenizer.json
expect_fail lbdpo-refcache --model m1 -i p.tok | grep -q 'tokenized with tokenizer' || fail "model's tokenizer not checked"
expect_fail lbdpo-logprob --model m1 -i p.tok >/dev/null
awk -v seed=11 -v n=3 -v V=512 -v sha="$(sha256sum m1/tokenizer.json | cut -c1-64)" -f "$ROOT/tests/sh/pairs_gen.awk" >own.jsonl
lbdpo-show --from-json -i own.jsonl -o own.tok
lbdpo-refcache --model m1 -i own.tok -o /dev/null 2>/dev/null || fail "records of the model's own tokenizer refused"
rm m1/tokenizer.json
mkdir notcache && echo x >notcache/file
expect_fail lbdpo-refcache --model m1 -i p.tok --cache notcache >/dev/null
expect_fail lbdpo-refcache --model m1 -i p.tok --shard 3/3 >/dev/null
expect_fail lbdpo-refcache -i p.tok >/dev/null
# A record carrying ref scores under a header without a reference.
head -1 p.tok.jsonl >bad.jsonl
sed -n 2p p.tok.jsonl | sed 's/}$/,"ref_chosen_logp":-1.5}/' >>bad.jsonl
lbdpo-show --from-json -i bad.jsonl -o bad.tok || fail "bad.tok"
expect_fail lbdpo-refcache --model m1 -i bad.tok >/dev/null
echo ok

#!/usr/bin/env bash
# lbdpo-reward on lbdpo-sample's JSON Lines: every line comes back unchanged
# with "reward" added; the reward is the one the token-record path gives the
# same prompt and completion ids; a string prompt is encoded as lbdpo-sample
# encodes it; batching, the cache (a re-run after a partial run scores only
# what is missing, same bytes) and mpirun change nothing; a rule-based judge
# (pipelines/demo-judge.awk) adds the same field; bad input is a one-line
# error naming the file and line, with no output left.
. "$(dirname "$0")/lib.sh"
cd "$T"
lbdpo-gendata --seed 3 --n-train 120 --n-test 20 --vocab-size 384 --out-dir data --tokenizer-out tok.json >/dev/null 2>&1 ||
	fail "gendata"
lbdpo-tokenize -q --tokenizer tok.json -i data/train.jsonl -o train.tok || fail "tokenize"
lbdpo-init -q --arch llama --dim 32 --layers 2 --heads 4 --max-seq 64 --vocab-from tok.json --seed 3 -o m0 ||
	fail "init"
lbdpo-step -q --loss reward --model m0 -i train.tok --steps 10 --batch-size 8 --lr 3e-3 --threads 1 -o rm ||
	fail "reward model"
# samples from token records (the lines carry prompt_ids) and from JSONL prompts
lbdpo-sample -q -m m0 --n 3 --max-new-tokens 6 --seed 2 --threads 1 -i train.tok -o srec.jsonl || fail "sample records"
sed -E 's/,"chosen":.*/}/' data/test.jsonl >prompts.jsonl
lbdpo-sample -q -m m0 --n 3 --max-new-tokens 6 --seed 2 --threads 1 -i prompts.jsonl -o s.jsonl || fail "sample jsonl"
n=$(wc -l <srec.jsonl)

# ---- every line passes through, "reward" added last ----
lbdpo-reward -q -m rm -t 1 -i srec.jsonl -o srec.rw || fail "lbdpo-reward on samples"
[ "$(wc -l <srec.rw)" = "$n" ] || fail "line count"
sed -E 's/,"reward":[-0-9.eE+]+}$/}/' srec.rw | cmp -s - srec.jsonl || fail "lines changed beyond the reward"
[ "$(grep -Ec ',"reward":-?[0-9.eE+-]+}$' srec.rw)" = "$n" ] || fail "a line without a reward"

# ---- the rewards are the token-record path's for the same ids ----
# each sample as a pair record (chosen = rejected = its ids), scored by score_stream
{
	echo '{"lbdpo":1,"kind":"tokens"}'
	sed -E 's/.*"prompt_ids":(\[[0-9,]*\]).*"ids":(\[[0-9,]*\]).*/{"prompt_ids":\1,"chosen_ids":\2,"rejected_ids":\2}/' srec.jsonl
} | lbdpo-show --from-json -o srec.tok || fail "records of the samples"
grep -q '"ids":\[\]' srec.jsonl && fail "an empty sample: the record path refuses it; pick another seed"
lbdpo-reward -q -m rm -t 1 --ignore-provenance -i srec.tok -o srec.tok.rw || fail "lbdpo-reward on records"
lbdpo-show --no-header -i srec.tok.rw | sed -E 's/.*"reward_chosen":([^,]*),.*/\1/' >want.txt
sed -E 's/.*"reward":([^}]*)}$/\1/' srec.rw >got.txt
num_close want.txt got.txt 1e-5 || fail "JSONL rewards differ from the record path's"

# ---- a string prompt is encoded as lbdpo-sample encoded it: the same rewards
# without prompt_ids ----
sed -E 's/,"prompt_ids":\[[0-9,]*\]//' srec.jsonl >stxt.jsonl
grep -q prompt_ids stxt.jsonl && fail "sed"
lbdpo-reward -q -m rm -t 1 -i stxt.jsonl -o stxt.rw || fail "lbdpo-reward, string prompts"
sed -E 's/.*"reward":([^}]*)}$/\1/' stxt.rw >got2.txt
num_close want.txt got2.txt 1e-5 || fail "string prompts encoded otherwise than lbdpo-sample did"

# ---- one sample per forward: the same rewards ----
lbdpo-reward -q -m rm -t 1 -b 0 -i s.jsonl -o s0.rw && lbdpo-reward -q -m rm -t 1 -i s.jsonl -o s.rw || fail "-b"
num_close s.rw s0.rw 1e-5 || fail "-b 0 differs"

# ---- the cache: a run that stopped part way, run again, scores only the rest ----
half=$((n / 2))
sed -n "1,${half}p" srec.jsonl >half.jsonl
lbdpo-reward -m rm -t 1 -b 0 --cache C -i half.jsonl -o half.rw 2>log1 || fail "cache, first half"
grep -q "(0 from the cache)" log1 || fail "a fresh cache served scores: $(cat log1)"
lbdpo-reward -m rm -t 1 -b 0 --cache C -i srec.jsonl -o again.rw 2>log2 || fail "cache, whole"
grep -q "($half from the cache)" log2 || fail "the re-run did not take the $half cached scores: $(cat log2)"
lbdpo-reward -q -m rm -t 1 -b 0 -i srec.jsonl -o srec0.rw || fail "-b 0 without a cache"
cmp -s again.rw srec0.rw || fail "-b 0: output with the cache differs"
# packed passes: the half run's last pass was packed otherwise, so float32 rounding
lbdpo-reward -m rm -t 1 --cache C2 -i half.jsonl -o half.rw 2>/dev/null &&
	lbdpo-reward -m rm -t 1 --cache C2 -i srec.jsonl -o again.rw 2>log3 || fail "cache, packed"
grep -q "($half from the cache)" log3 || fail "packed: cached scores not taken: $(cat log3)"
num_close again.rw srec.rw 1e-5 || fail "output with the cache differs"
# a run killed while scoring keeps the rounds it flushed; the re-run packs the
# rest as the killed run did, so it writes an uninterrupted run's bytes
for i in $(seq 30); do sed "s/\"sample\":/\"copy\":$i,&/" srec.jsonl; done >big.jsonl
lbdpo-reward -q -m rm -t 1 --cache U -i big.jsonl -o big.want || fail "uninterrupted big run"
lbdpo-reward -q -m rm -t 1 --cache K -i big.jsonl -o big.rw &
pid=$!
for _ in $(seq 200); do [ -s "$(ls K/*/seg-* 2>/dev/null | sed -n 1p)" ] && break; sleep 0.02; done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
[ ! -e big.rw ] || fail "a killed run left big.rw"
lbdpo-reward -m rm -t 1 --cache K -i big.jsonl -o big.rw 2>log4 || fail "re-run after kill"
grep -Eq "\(([1-9][0-9]*) from the cache\)" log4 || echo "note: the run ended or was killed before its first flush ($(cat log4))"
cmp -s big.want big.rw || fail "the re-run after a kill differs from an uninterrupted run"

# ---- under mpirun: with one line per pass the same bytes, packed the same
# rewards to float32 rounding (each rank packs its own lines) ----
(
	need_mpi lbdpo-reward >/dev/null || exit 0
	mpi -np 2 lbdpo-reward -q -m rm -b 0 -i srec.jsonl -o mpi0.rw || fail "mpirun lbdpo-reward -b 0 on samples"
	cmp srec0.rw mpi0.rw || fail "-b 0: 2 ranks differ from one process"
	mpi -np 2 lbdpo-reward -q -m rm -i srec.jsonl -o mpi.rw || fail "mpirun lbdpo-reward on samples"
	num_close srec.rw mpi.rw 1e-5 || fail "2 ranks differ from one process"
	echo "mpirun -np 2: same bytes with -b 0"
) || exit 1

# ---- the rule-based judge adds the same field ----
awk -f "$ROOT/pipelines/demo-judge.awk" s.jsonl >judged.jsonl || fail "demo-judge.awk"
[ "$(grep -Ec ',"reward":[01]}$' judged.jsonl)" = "$(wc -l <s.jsonl)" ] || fail "judge rewards"
sed -E 's/,"reward":[01]}$/}/' judged.jsonl | cmp -s - s.jsonl || fail "the judge changed the lines"
printf '%s\n' '{"prompt":"Q: 2+3=? A:","text":" 5"}' '{"prompt":"Q: 2+3=? A:","text":" 6"}' \
	'{"prompt":"Q: Praise the moon. A:","text":" The moon is calm."}' '{"prompt":"Q: Praise the moon. A:","text":" The moon is dull."}' \
	'{"prompt":"Q: What do you dislike about the moon? A:","text":" The moon is dull."}' \
	'{"prompt":"Q: Criticize the moon. A:","text":" The road is dull."}' >j.jsonl
[ "$(awk -f "$ROOT/pipelines/demo-judge.awk" j.jsonl | sed -E 's/.*"reward":([01])}$/\1/' | tr -d '\n')" = 101010 ] ||
	fail "demo judge verdicts"
printf '%s\n' '{"prompt":"Q: 2+3=? A:","text":" 5"}' '{"prompt":"Tell me a story.","text":" no"}' >jbad.jsonl
msg=$(expect_fail awk -f "$ROOT/pipelines/demo-judge.awk" jbad.jsonl) || exit 1
case $msg in *"jbad.jsonl: line 2"*) ;; *) fail "judge error: $msg" ;; esac

# ---- errors: one line naming the file and line, nothing written ----
sed '3s/.*/{"prompt": "x", oops}/' srec.jsonl >bad1.jsonl
msg=$(expect_fail lbdpo-reward -q -m rm -i bad1.jsonl -o out1.rw) || exit 1
case $msg in *"bad1.jsonl: line 3"*) ;; *) fail "bad JSON: $msg" ;; esac
sed -E '2s/,"ids":\[[0-9,]*\]//' srec.jsonl >bad2.jsonl
msg=$(expect_fail lbdpo-reward -q -m rm -i bad2.jsonl -o out2.rw) || exit 1
case $msg in *"bad2.jsonl: line 2"*'"ids"'*) ;; *) fail "no ids: $msg" ;; esac
sed -E '4s/"ids":\[[0-9]+/"ids":[99999/' srec.jsonl >bad3.jsonl
msg=$(expect_fail lbdpo-reward -q -m rm -i bad3.jsonl -o out3.rw) || exit 1
case $msg in *"bad3.jsonl: line 4"*vocabulary*) ;; *) fail "id out of range: $msg" ;; esac
# ids that are not the text's tokens: samples of another tokenizer
# (a line whose text is plain: random weights write invalid UTF-8 too, which
# lbdpo-sample replaced, and such a text is not compared)
ln=$(grep -n '"text":"[A-Za-z0-9 .?=+:]*"' srec.jsonl | sed -n 1p | cut -d: -f1)
[ -n "$ln" ] || fail "no plain-text sample"
sed -E "${ln}s/\"text\":\"[^\"]*\"/\"text\":\"not these words\"/" srec.jsonl >bad4.jsonl
msg=$(expect_fail lbdpo-reward -q -m rm -i bad4.jsonl -o out4.rw) || exit 1
case $msg in *"bad4.jsonl: line $ln:"*tokenizer*) ;; *) fail "tokenizer mismatch: $msg" ;; esac
lbdpo-reward -q -m rm --ignore-provenance -i bad4.jsonl -o out4.rw 2>warn4 || fail "--ignore-provenance"
grep -q warning warn4 || fail "no warning with --ignore-provenance"
rm -f out4.rw
sed -E '5s/"prompt_ids":\[[0-9,]*\],?//; 5s/"prompt":"[^"]*",?//' srec.jsonl >bad5.jsonl
msg=$(expect_fail lbdpo-reward -q -m rm -i bad5.jsonl -o out5.rw) || exit 1
case $msg in *"bad5.jsonl: line 5"*prompt*) ;; *) fail "no prompt: $msg" ;; esac
expect_fail lbdpo-reward -q -m m0 -i srec.jsonl -o out6.rw >/dev/null || exit 1
msg=$(expect_fail lbdpo-reward -q -m rm --cache C -i train.tok -o out7.rw) || exit 1
case $msg in *"JSON Lines"*) ;; *) fail "--cache with records: $msg" ;; esac
[ -z "$(ls out*.rw 2>/dev/null)" ] || fail "a failed run left an output file: $(ls out*.rw)"
echo ok

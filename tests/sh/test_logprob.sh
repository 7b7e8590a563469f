#!/usr/bin/env bash
# test_logprob.sh — lbdpo-logprob --per-token against llama2.c's own log-probs
# (../shared/golden/stories260K_logprobs.jsonl, stories260K.bin): per token
# within 1e-4, sums within 1e-3; packing (-b) and prefix sharing change nothing
# beyond that; bad input is refused with the record named.
. "$(dirname "$0")/lib.sh"
need_shared golden/stories260K_logprobs.jsonl assets/stories260K/stories260K.bin
G="$LBDPO_SHARED/golden/stories260K_logprobs.jsonl" M="$LBDPO_SHARED/assets/stories260K/stories260K.bin"
cd "$T"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# Each text as a pair: prompt = BOS, chosen = rejected = the rest.
{ echo '{"lbdpo":1,"kind":"tokens","history":[],"tokenizer":{"path":"tok512.bin","sha256":"eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee","vocab_size":512,"bos":1,"eos":2}}'
  sed 's/.*"ids":\[\([0-9]*\),\([0-9,]*\)\].*/{"prompt_ids":[\1],"chosen_ids":[\2],"rejected_ids":[\2]}/' "$G"; } >p.jsonl
lbdpo-show --from-json -i p.jsonl -o p.tok || fail "building records"
n=$(wc -l <"$G")
for b in 0 64 4096; do
	lbdpo-logprob -q --model "$M" --per-token -b $b -i p.tok -o s$b || fail "lbdpo-logprob -b $b"
	lbdpo-show --f32 --no-header -i s$b >s$b.json
	[ "$(wc -l <s$b.json)" = "$n" ] || fail "record count"
	for k in chosen rejected; do
		paste -d'\n' <(sed 's/.*"logprobs":\[\([^]]*\)\].*/\1/' "$G") \
			<(sed "s/.*\"${k}_token_logps\":{\"\$f32le\":\[\([^]]*\)\]}.*/\1/" s$b.json) |
		awk -F, 'NR % 2 { split($0, want); nw = NF; next }
			{ if (NF != nw) { print "length " NF " != " nw; bad++ }
			  for (i = 1; i <= NF; i++) { d = $i - want[i]; if (d < 0) d = -d; if (d > 1e-4) { print "token " i ": " $i " vs " want[i]; bad++ } } }
			END { exit bad > 0 }' || fail "$k per-token log-probs differ from llama2.c (-b $b)"
		paste -d' ' <(sed 's/.*"sum_logprob":\([-0-9.e]*\).*/\1/' "$G") <(grep -o "\"${k}_logp\":[^,]*" s$b.json | sed 's/.*://') |
			awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 1e-3) bad++ } END { exit bad > 0 || NR == 0 }' ||
			fail "${k}_logp differs from llama2.c's sum (-b $b)"
	done
done
grep -Eq '"prompt_ppl":1(\.0)?[,}]' s0.json || fail "a one-token prompt must have prompt_ppl 1"
lbdpo-show --header-only -i s0 | grep -q '"kind":"scores".*"model":{"path":"[^"]*","fingerprint":"[0-9a-f]\{64\}"}' || fail "header"
# Refusals: id outside the vocabulary, empty prompt, vocab mismatch.
sed '2s/"prompt_ids":\[1\]/"prompt_ids":[1,512]/' p.jsonl >bad1.jsonl
lbdpo-show --from-json -i bad1.jsonl -o bad1.tok
expect_fail lbdpo-logprob --model "$M" -i bad1.tok -o x | grep -q 'record 1' || fail "bad id not located"
[ ! -e x ] || fail "output left behind"
sed '3s/"prompt_ids":\[1\]/"prompt_ids":[]/' p.jsonl >bad2.jsonl
lbdpo-show --from-json -i bad2.jsonl -o bad2.tok
expect_fail lbdpo-logprob --model "$M" -i bad2.tok -o x | grep -q 'record 2' || fail "empty prompt not located"
sed '1s/"vocab_size":512/"vocab_size":32000/' p.jsonl >bad3.jsonl
lbdpo-show --from-json -i bad3.jsonl -o bad3.tok
expect_fail lbdpo-logprob --model "$M" -i bad3.tok >/dev/null
expect_fail lbdpo-logprob -i p.tok >/dev/null
echo ok

#!/usr/bin/env bash
# test_provenance.sh — one provenance rule in every program (lbdpo(7)
# PROVENANCE): records tokenized with another tokenizer than the one the model
# ships are refused by lbdpo-step, -eval, -beta, -logprob, -refcache and
# -sample alike, and so is lbdpo-sample's --tokenizer; a new lbdpo-step run
# refuses records whose reference scores came from another model than the one
# it starts from, a resumed one those of another reference than it was
# trained against; --ignore-provenance turns every refusal into a warning.
. "$(dirname "$0")/lib.sh"
cd "$T"
D="$ROOT/tests/fixtures/demo_tok"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# A and C: one tokenizer, other weights; B: A's weights, another tokenizer
lbdpo-init -q -o A --vocab-from "$D/tokenizer.json" --dim 16 --layers 1 --heads 2 --max-seq 64 --seed 3 || fail "init A"
lbdpo-init -q -o C --vocab-from "$D/tokenizer.json" --dim 16 --layers 1 --heads 2 --max-seq 64 --seed 4 || fail "init C"
cp -r A B && sed 's/"<s>"/"<s>" /' "$D/tokenizer.json" > B/tokenizer.json
cmp -s A/tokenizer.json B/tokenizer.json && fail "B's tokenizer is A's"
shaA=$(sha256sum A/tokenizer.json | cut -c1-64) shaB=$(sha256sum B/tokenizer.json | cut -c1-64)
fp() { lbdpo-init --model "$1" --info | sed 's/.*fingerprint=//'; }
fpA=$(fp A) fpC=$(fp C)
lbdpo-tokenize -q --tokenizer A/tokenizer.json -i "$D/data.jsonl" -o a.tok || fail "tokenize A"
lbdpo-tokenize -q --tokenizer B/tokenizer.json -i "$D/data.jsonl" -o b.tok || fail "tokenize B"
lbdpo-refcache -q -t 1 -m A -i a.tok -o aA.ref || fail "refcache A"
lbdpo-refcache -q -t 1 -m C -i a.tok -o aC.ref || fail "refcache C"
lbdpo-refcache -q -t 1 -m B -i b.tok -o bB.ref || fail "refcache B"
P=(--threads 1 --batch-size 8 --loss dpo --steps 1 -q)

# ---- tokenizer: every program refuses ids of another tokenizer, naming both ----
want_tok() { echo "$2" | grep -q "tokenizer $shaB, but the model ships tokenizer $shaA (A/tokenizer.json)" ||
	fail "$1: message does not name both tokenizers: $2"; }
want_tok step "$(expect_fail lbdpo-step -m A -o x "${P[@]}" -i bB.ref)"
[ ! -e x ] || fail "lbdpo-step wrote a checkpoint on refused records"
want_tok eval "$(expect_fail lbdpo-eval --threads 1 -m A -i bB.ref -o /dev/null)"
want_tok logprob "$(expect_fail lbdpo-logprob -t 1 -m A -i b.tok -o /dev/null)"
want_tok refcache "$(expect_fail lbdpo-refcache -t 1 -m A -i b.tok -o /dev/null)"
want_tok sample "$(expect_fail lbdpo-sample -t 1 -m A -i b.tok --max-new-tokens 2)"
echo '{"prompt": "Q: 1+1=? A:"}' > q.jsonl
want_tok "sample --tokenizer" "$(expect_fail lbdpo-sample -t 1 -m A --tokenizer B/tokenizer.json -i q.jsonl --max-new-tokens 2)"
lbdpo-sample -t 1 -m A --tokenizer A/tokenizer.json -i q.jsonl --max-new-tokens 2 -o /dev/null ||
	fail "lbdpo-sample with the model's own tokenizer"
# the same records with the model they were made for pass everywhere
lbdpo-step -m B -o cB "${P[@]}" -i bB.ref || fail "step on its own tokenizer's records"
lbdpo-eval --threads 1 -m cB -i bB.ref -o /dev/null || fail "eval on its own tokenizer's records"
lbdpo-logprob -q -t 1 -m B -i b.tok -o /dev/null || fail "logprob on its own tokenizer's records"
# a checkpoint ships the tokenizer it was trained with: eval and beta refuse another
want_tokc() { echo "$2" | grep -q "tokenizer $shaA, but the model ships tokenizer $shaB (cB/tokenizer.json)" ||
	fail "$1: message does not name both tokenizers: $2"; }
lbdpo-step -m A -o cA "${P[@]}" --loss lbdpo -i aA.ref || fail "step A"
want_tokc eval "$(expect_fail lbdpo-eval --threads 1 -m cB -i aA.ref -o /dev/null)"
lbdpo-step -m B -o cBl "${P[@]}" --loss lbdpo -i bB.ref || fail "step B lbdpo"
echo "$(expect_fail lbdpo-beta -t 1 -m cBl -i a.tok)" | grep -q "tokenizer $shaA, but the model ships tokenizer $shaB" ||
	fail "lbdpo-beta takes records of another tokenizer"
# --ignore-provenance: a loud warning, and the run goes on
for p in "lbdpo-logprob -t 1 -m A -i b.tok -o /dev/null" "lbdpo-refcache -t 1 -m A -i b.tok -o /dev/null" \
	"lbdpo-eval --threads 1 -m A -i bB.ref -o /dev/null" "lbdpo-step -m A -o xi ${P[*]} -i bB.ref" \
	"lbdpo-sample -t 1 -m A --tokenizer B/tokenizer.json -i q.jsonl --max-new-tokens 2 -o /dev/null"; do
	$p --ignore-provenance 2>ign.err || fail "$p --ignore-provenance: $(cat ign.err)"
	grep -q "PROVENANCE MISMATCH IGNORED (--ignore-provenance): tokenized with tokenizer $shaB" ign.err ||
		fail "$p --ignore-provenance is not loud: $(cat ign.err)"
done

# ---- reference: a new run starts from the model that scored the records ----
msg=$(expect_fail lbdpo-step -m A -o x "${P[@]}" -i aC.ref)
echo "$msg" | grep -q "records scored by reference $fpC, but the run starts from model $fpA (A)" ||
	fail "new run on another model's reference scores: $msg"
[ ! -e x ] || fail "lbdpo-step wrote a checkpoint on refused records"
lbdpo-step -m C -o cC "${P[@]}" -i aC.ref || fail "new run from the reference model"
# --fresh from a checkpoint: a new run too, from the weights it ships
msg=$(expect_fail lbdpo-step -m cC --fresh -o x "${P[@]}" -i aC.ref)
echo "$msg" | grep -q "records scored by reference $fpC, but the run starts from model $(fp cC)" ||
	fail "--fresh run on the old reference's scores: $msg"
# overridden, the checkpoint remembers the reference it was trained against
# and a resumed run refuses any other
lbdpo-step -m A -o cAC "${P[@]}" -i aC.ref --ignore-provenance 2>ign.err || fail "--ignore-provenance reference"
grep -q "PROVENANCE MISMATCH IGNORED.*reference $fpC" ign.err || fail "reference override is not loud: $(cat ign.err)"
grep -q "\"reference_fingerprint\": \"$fpC\"" cAC/trainer_state.json || fail "checkpoint lost its reference"
msg=$(expect_fail lbdpo-step -m cAC -o cAC "${P[@]}" -i aA.ref)
echo "$msg" | grep -q "records scored by reference $fpA, the checkpoint was trained against reference $fpC" ||
	fail "resume against another reference: $msg"
lbdpo-step -m cAC -o cAC "${P[@]}" -i aC.ref || fail "resume against its own reference"
# sft needs no reference: any scores do
lbdpo-step -m A -o cS "${P[@]}" --loss sft -i aC.ref || fail "sft refused another reference"
echo ok

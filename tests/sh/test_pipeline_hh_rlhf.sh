#!/usr/bin/env bash
# pipelines/hh-rlhf.mk on real HH-RLHF pairs with the real stories260K model:
# a few hundred pairs, 4 steps in 2 blocks, refcache in 2 shards (make -j2).
# Checks: it finishes with held-out metrics; the blocks continue each other
# (step 4 at the end, 2 after block 1); sharded reference scores equal an
# unsharded run; re-running has nothing to do; more steps continue from the
# last block instead of starting over.
. "$(dirname "$0")/lib.sh"
[ -n "${KEEP:-}" ] && trap - EXIT
need_shared assets/hh-rlhf/helpful-base_test.jsonl.gz assets/stories260K/stories260K.bin assets/stories260K/tok512.bin
A=$LBDPO_SHARED/assets
MK=(make --no-print-directory -f "$ROOT/pipelines/hh-rlhf.mk" LBDPO_BIN="$LBDPO_BIN" LBDPO_ASSETS="$A"
    DATA="$A/hh-rlhf/helpful-base_test.jsonl.gz" W="$T/hh" N=240 MAXLEN=192 BLOCK=2 JOBS=2)
"${MK[@]}" -j2 STEPS=4 >"$T/log" 2>&1 || { tail -20 "$T/log"; fail "pipeline failed"; }
tail -6 "$T/log"
[ -s "$T/hh/eval.json" ] || fail "no eval.json"
grep -q '"rewards/accuracies"' "$T/hh/eval.json" || fail "eval.json lacks rewards/accuracies"
n=$(sed -n 's/^ *"n": \([0-9]*\),*$/\1/p' "$T/hh/eval.json" | head -1)
[ "${n:-0}" -gt 5 ] || fail "too few held-out pairs evaluated: $n"
grep -q '"step": 2,' "$T/hh/ckpt-1/trainer_state.json" || fail "block 1 did not stop at step 2"
grep -q '"step": 4,' "$T/hh/ckpt-2/trainer_state.json" || fail "block 2 did not reach step 4"
# the two shards hold disjoint records that merge back to one per input
t1=$(lbdpo-show --no-header -i "$T/hh/train.ref.0" | wc -l); t2=$(lbdpo-show --no-header -i "$T/hh/train.ref.1" | wc -l)
tt=$(lbdpo-show --no-header -i "$T/hh/train.tok" | wc -l); tm=$(lbdpo-show --no-header -i "$T/hh/train.ref" | wc -l)
[ $((t1 + t2)) = "$tt" ] && [ "$tm" = "$tt" ] && [ "$t1" -gt 0 ] && [ "$t2" -gt 0 ] || fail "shards $t1 + $t2 != $tt (merged $tm)"
# sharded = unsharded scores (same records, same order)
lbdpo-refcache --model "$A/stories260K/stories260K.bin" -t 1 -i "$T/hh/train.tok" -o "$T/one.ref" 2>/dev/null || fail "unsharded refcache"
cmp -s <(lbdpo-show --no-header -i "$T/one.ref") <(lbdpo-show --no-header -i "$T/hh/train.ref") || fail "sharded scores differ from unsharded"
# nothing to redo
"${MK[@]}" -q STEPS=4 "$T/hh/eval.json" || fail "re-running would redo work"
# 2 more steps: one more block from ckpt-2, blocks 1-2 untouched
before=$(stat -c %Y "$T/hh/ckpt-2/trainer_state.json")
"${MK[@]}" STEPS=6 >"$T/log2" 2>&1 || { tail -20 "$T/log2"; fail "continuing failed"; }
grep -q -- "--model $T/hh/ckpt-2 " "$T/log2" || fail "block 3 did not start from ckpt-2"
[ "$(grep -c 'lbdpo-step' "$T/log2")" = 1 ] || fail "more than one block rerun: $(grep lbdpo-step "$T/log2")"
[ "$(stat -c %Y "$T/hh/ckpt-2/trainer_state.json")" = "$before" ] || fail "ckpt-2 was rewritten"
grep -q '"step": 6,' "$T/hh/ckpt-3/trainer_state.json" || fail "block 3 did not reach step 6"
echo ok

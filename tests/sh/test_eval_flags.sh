#!/usr/bin/env bash
# lbdpo-eval --label-smoothing and --gamma override the checkpoint's options;
# simpo's rewards are TRL CPO's: β × average completion log-prob.
. "$(dirname "$0")/lib.sh"
cd "$T"
awk -v seed=2 -v n=16 -f "$ROOT/tests/sh/gen_pairs.awk" | lbdpo-show --from-json -o t.ref || fail "gen"
lbdpo-init -q -o m0 --dim 32 --layers 1 --heads 4 --vocab 32 --max-seq 64 --seed 3 || fail "init"
S=(-i t.ref --threads 1 --batch-size 8 --steps 3 --lr 3e-3 -q --ignore-provenance) # synthetic reference scores
lbdpo-step --model m0 --output cs --loss simpo --beta 2 --gamma 0.5 "${S[@]}" || fail "simpo"
lbdpo-step --model m0 --output cr --loss robust --beta 0.5 --label-smoothing 0.1 "${S[@]}" || fail "robust"
E=(--threads 1 -i t.ref)
key() { sed -n "s|^ \"$1\": \\([^,]*\\),\$|\\1|p" "$2"; }
lbdpo-eval "${E[@]}" -m cs -o s0.json --per-record s0.jsonl || fail "eval simpo"
lbdpo-eval "${E[@]}" -m cs --gamma 3 -o s1.json || fail "eval --gamma"
[ "$(key gamma s0.json)" = 0.5 ] && [ "$(key gamma s1.json)" = 3.0 ] || fail "gamma: $(key gamma s0.json) $(key gamma s1.json)"
# z = β(pc/nc − pr/nr) − γ: a larger γ gives a larger −log σ(z)
awk -v a="$(key loss s0.json)" -v b="$(key loss s1.json)" 'BEGIN { exit !(b > a + 0.5) }' ||
	fail "--gamma 3 did not raise the simpo loss ($(key loss s0.json) -> $(key loss s1.json))"
grep -q '"rewards/definition": "beta \* average log-prob' s0.json || fail "simpo rewards not named"
# rewards/chosen = mean over pairs of β·pc/nc (β = 2; every completion of gen_pairs.awk is 4 tokens)
want=$(awk '{ match($0, /"logp_chosen":[^,}]*/); s += substr($0, RSTART + 14, RLENGTH - 14); n++ } END { printf "%.6f", 2 * s / n / 4 }' s0.jsonl)
got=$(key rewards/chosen s0.json)
awk -v a="$want" -v b="$got" 'BEGIN { d = a - b; exit !(d < 1e-5 && d > -1e-5) }' || fail "simpo rewards/chosen $got, want $want"
lbdpo-show -i t.ref | awk 'NR > 1 && !/"chosen_ids": ?\[[0-9]+, ?[0-9]+, ?[0-9]+, ?[0-9]+\]/ { exit 1 }' || fail "fixture: completions not 4 tokens"
lbdpo-eval "${E[@]}" -m cr -o r0.json || fail "eval robust"
lbdpo-eval "${E[@]}" -m cr --label-smoothing 0.3 -o r1.json || fail "eval --label-smoothing"
[ "$(key label_smoothing r0.json)" = 0.1 ] && [ "$(key label_smoothing r1.json)" = 0.3 ] || fail "label smoothing not applied"
[ "$(key loss r0.json)" != "$(key loss r1.json)" ] || fail "--label-smoothing did not change the robust loss"
# progress off a terminal, as lbdpo-step: a plain line (every call with
# LBDPO_PROGRESS_SECONDS=0; batch size 8: before records 0 and 8) and a summary
LBDPO_PROGRESS_SECONDS=0 lbdpo-eval "${E[@]}" -m cr -o p.json 2>err || fail "eval for progress"
grep -q '^lbdpo-eval: 8/16 records scored, 0:00 elapsed (50%), ETA 0:00$' err || fail "no progress line off a terminal: $(cat err)"
grep -q '^lbdpo-eval: 16 records scored in 0:00 (.* records/s) on cpu$' err || fail "no summary off a terminal: $(cat err)"
LBDPO_PROGRESS_SECONDS=0 lbdpo-eval "${E[@]}" -m cr -o p.json -q 2>err || fail "eval -q"
[ ! -s err ] || fail "-q: $(cat err)"
# the range of lbdpo-step's --label-smoothing (the one row of LOSS_CLI_OPTS)
m=$(expect_fail lbdpo-eval "${E[@]}" -m cr --label-smoothing 0.5 -o x.json)
[ "$m" = "lbdpo-eval: error: option --label-smoothing: '0.5' is not a number in [0, 0.499999]" ] || fail "$m"
expect_fail lbdpo-eval "${E[@]}" -m cr --gamma x -o x.json
echo ok

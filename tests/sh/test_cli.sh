#!/usr/bin/env bash
# test_cli.sh — the option names of round 2 (base/cli.h, README "Option names
# (round 2)"): every old spelling gives the same output as the new one plus
# one warning naming the new spelling; -t FILE for a tokenizer is refused;
# every program rejects an unknown option in one line with exit 2.
. "$(dirname "$0")/lib.sh"
cd "$T"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
lbdpo-init -q --dim 16 --layers 1 --heads 2 --vocab 512 --max-seq 64 --seed 3 -o m0 || fail "lbdpo-init"
awk -v seed=5 -v n=16 -v V=512 -v sha="$(printf "%064d" 7)" -f "$ROOT/tests/sh/pairs_gen.awk" | lbdpo-show --from-json -o p.tok ||
	fail "records"

# same_output NAME OLD_WARNING -- CMD_NEW... -- CMD_OLD...: both succeed, OLD's
# stderr is exactly the warning lines given, NEW's has no warning; the files
# new.out and old.out (written by the commands) must be identical.
warn() { echo "$1: warning: $2 is the old spelling of $3; it will be removed in the next release"; }
check_old() { # name, expected warnings file; runs new.sh and old.sh
	bash new.sh 2>new.err || fail "$1, new spelling: $(cat new.err)"
	bash old.sh 2>old.err || fail "$1, old spelling: $(cat old.err)"
	! grep -q 'warning' new.err || fail "$1: the new spelling warns: $(cat new.err)"
	grep 'warning' old.err >old.warn || true
	diff want.warn old.warn >/dev/null || fail "$1: warnings $(cat old.warn), want $(cat want.warn)"
	cmp -s new.out old.out || fail "$1: old and new spellings give different outputs"
}

# lbdpo-refcache: -r/--ref MODEL = -m/--model MODEL
# (record streams compared without their header: it holds the command line)
echo 'lbdpo-refcache -q -m m0 -i p.tok -o p.ref && lbdpo-show --no-header -i p.ref -o new.out' >new.sh
echo 'lbdpo-refcache -q --ref m0 -i p.tok | lbdpo-show --no-header -o old.out' >old.sh
warn lbdpo-refcache --ref --model >want.warn
check_old refcache
echo 'lbdpo-refcache -q -r m0 -i p.tok | lbdpo-show --no-header -o old.out' >old.sh
warn lbdpo-refcache -r -m >want.warn
check_old "refcache -r"

# lbdpo-step: --init = -m/--model, --out = -o/--output (twice: one warning each)
S='--threads 1 --batch-size 4 --loss lbdpo --steps 2 -q -i p.ref'
echo "lbdpo-step -m m0 -o ck $S && cp ck/model.safetensors new.out" >new.sh
echo "lbdpo-step --init m0 --out ck_old --init m0 $S && cp ck_old/model.safetensors old.out" >old.sh
{ warn lbdpo-step --init --model; warn lbdpo-step --out --output; } >want.warn
check_old step

# lbdpo-beta, lbdpo-eval: -c/--checkpoint = -m/--model
show() { [ "$1" = beta ] && echo "| lbdpo-show --no-header" || echo "| cat"; }
for p in beta eval; do
	echo "lbdpo-$p --threads 1 -m ck -i p.ref $(show $p) >new.out" >new.sh
	echo "lbdpo-$p --threads 1 --checkpoint ck -i p.ref $(show $p) >old.out" >old.sh
	warn lbdpo-$p --checkpoint --model >want.warn
	check_old $p
	echo "lbdpo-$p -t 1 -c ck -i p.ref $(show $p) >old.out" >old.sh
	warn lbdpo-$p -c -m >want.warn
	check_old "$p -c"
done

# lbdpo-init: -i/--from = -m/--model
echo 'lbdpo-init -m m0 --info >new.out' >new.sh
echo 'lbdpo-init --from m0 --info >old.out' >old.sh
warn lbdpo-init --from --model >want.warn
check_old init

# lbdpo-gendata: --train = -o/--output
echo 'lbdpo-gendata --n-train 20 --n-test 0 -o new.out' >new.sh
echo 'lbdpo-gendata --n-train 20 --n-test 0 --train old.out' >old.sh
warn lbdpo-gendata --train --output >want.warn
check_old gendata

# -t FILE no longer names the tokenizer
TOK="$ROOT/tests/fixtures/demo_tok/tokenizer.json"
lbdpo-tokenize -t "$TOK" -i "$ROOT/tests/fixtures/demo_tok/data.jsonl" >/dev/null 2>err; rc=$?
[ $rc = 2 ] && grep -q "^lbdpo-tokenize: error: -t no longer names the tokenizer .*give --tokenizer FILE" err ||
	fail "lbdpo-tokenize -t FILE: exit $rc: $(cat err)"
lbdpo-tokenize --tokenizer "$TOK" -i "$ROOT/tests/fixtures/demo_tok/data.jsonl" -q >/dev/null ||
	fail "lbdpo-tokenize --tokenizer"
lbdpo-sample -m m0 -t "$TOK" -i /dev/null >/dev/null 2>err; rc=$?
[ $rc = 2 ] && grep -q "^lbdpo-sample: error: option --threads: .* is not an integer" err ||
	fail "lbdpo-sample -t FILE: exit $rc: $(cat err)"

# every program: an unknown option is one line + the --help hint, exit 2;
# a missing argument names the option as typed
for p in "$LBDPO_BIN"/lbdpo-*; do
	name=${p##*/}
	"$p" --no-such-option >/dev/null 2>err; rc=$?
	[ $rc = 2 ] && [ "$(sed -n 1p err)" = "$name: error: unknown option '--no-such-option'" ] &&
		[ "$(sed -n 2p err)" = "Try '$name --help' for more information." ] && [ "$(wc -l <err)" = 2 ] ||
		fail "$name --no-such-option: exit $rc: $(cat err)"
	"$p" -o >/dev/null 2>err; rc=$?
	[ $rc = 2 ] && [ "$(sed -n 1p err)" = "$name: error: option '-o' needs an argument" ] ||
		fail "$name -o: exit $rc: $(cat err)"
done

# option rows (base/cli.h OPT_*): --help shows each default from the row's
# destination as it is before parsing; a bad value is refused in the one
# shape, named by the long option
lbdpo-step --lr 1 --schedule cosine --help >help.txt || fail "lbdpo-step --help"
grep -q -- '^      --lr X  *policy learning rate (default 5e-6)$' help.txt || fail "--lr default: $(grep -- --lr help.txt)"
grep -q -- '^      --schedule S  *constant|linear|cosine (default linear)$' help.txt || fail "--schedule default"
grep -q -- '^      --beta-max X  *upper end of the beta range (default 10)$' help.txt || fail "--beta-max default"
lbdpo-eval --help | grep -q -- '^      --gamma X  *simpo target margin (default 0.5)$' || fail "lbdpo-eval --gamma default"
bad_value() { # want, command...
	local want=$1 rc
	shift
	"$@" >/dev/null 2>err; rc=$?
	[ $rc = 2 ] && [ "$(sed -n 1p err)" = "$want" ] || fail "$*: exit $rc: $(cat err)"
}
bad_value "lbdpo-step: error: option --lr: '0x' is not a number in [0, 10]" lbdpo-step -m m0 -o x --lr 0x
bad_value "lbdpo-step: error: --schedule: expected constant, linear or cosine, got 'cos'" lbdpo-step --schedule cos
bad_value "lbdpo-sample: error: option --threads: '0' is not an integer in [1, 4096]" lbdpo-sample -t 0
bad_value "lbdpo-tokenize: error: --truncation: expected keep_end or keep_start, got 'end'" lbdpo-tokenize --truncation end
bad_value "lbdpo-eval: error: --model is required" lbdpo-eval --beta 0.2
echo ok

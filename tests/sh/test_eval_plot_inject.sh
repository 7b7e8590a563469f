#!/usr/bin/env bash
# lbdpo-eval --plot: text from the data reaches gnuplot only as an escaped
# string literal. Group names (straight from the dataset's JSONL) planted
# with a quote that would close gnuplot's 'group %s' title and call its
# system(), and with a newline that would start a new gnuplot command, are
# titles, nothing else; the plots still render. And --plot into an existing
# directory never overwrites a user's file of one of its names.
. "$(dirname "$0")/lib.sh"
command -v gnuplot >/dev/null || { echo "skipped: gnuplot not installed (apt-get install gnuplot-nox)"; exit 77; }
cd "$T"
mkdir run && cd run
# even -> a quote injection, odd -> a newline injection (JSON escapes \n)
lbdpo-init -q -o m0 --dim 32 --layers 1 --heads 4 --vocab 32 --max-seq 64 --seed 3 || fail "init"
fp0=$(lbdpo-init --model m0 --info | sed 's/.*fingerprint=//') # scores said to be m0's
awk -v seed=1 -v n=16 -v ref="$fp0" -f "$ROOT/tests/sh/gen_pairs.awk" |
	sed -e "s/\"group\": \"even\"/\"group\": \"x'; system('touch PWNED1'); print '\"/" \
	    -e "s/\"group\": \"odd\"/\"group\": \"y\\\\nsystem('touch PWNED2')\\\\n\`touch PWNED3\` @PW \\\\\"q\"/" |
	lbdpo-show --from-json -o t.ref || fail "gen"
lbdpo-show -i t.ref >t.jsonl && grep -q 'PWNED2' t.jsonl || fail "the planted group names are not in the records"
lbdpo-step --model m0 --output c -i t.ref --threads 1 --batch-size 8 --steps 2 --metrics m.jsonl -q || fail "step"
lbdpo-eval --threads 1 -m c -i t.ref --metrics m.jsonl --plot p -o ev.json 2>err.txt || fail "lbdpo-eval: $(cat err.txt)"
[ -z "$(find "$T" -name 'PWNED*')" ] || fail "a group name ran as a command: $(find "$T" -name 'PWNED*')"
! grep -q 'gnuplot' err.txt || fail "gnuplot complained: $(cat err.txt)"
for f in beta_hist.png beta_ppl.png beta_groups.png curves.png; do
	[ -s "p/$f" ] || fail "p/$f not rendered"
done
# the titles are the names, the quote doubled, the newlines shown as ?
grep -qF "title 'group x''; system(''touch PWNED1''); print '''" p/plots.gp || fail "quote title: $(grep -m1 title p/plots.gp)"
grep -qF "title 'group y?system(''touch PWNED2'')?\`touch PWNED3\` @PW \"q'" p/plots.gp || fail "newline title"
grep -qF "1 \"y?system('touch PWNED2')?\`touch PWNED3\` @PW 'q\"" p/beta_groups.dat || fail "beta_groups.dat: $(cat p/beta_groups.dat)"
[ "$(grep -vc '^#' p/beta_groups.dat)" = 2 ] || fail "beta_groups.dat rows: $(cat p/beta_groups.dat)"

# --plot into a user's directory: a same-named file is refused, untouched
mkdir mine && echo "my notes" >mine/notes.txt && echo "my data" >mine/beta.dat
expect_fail lbdpo-eval --threads 1 -m c -i t.ref --plot mine -o ev.json | grep -q 'mine/beta.dat: exists.*not a plot directory' ||
	fail "no refusal for a user's beta.dat"
[ "$(cat mine/beta.dat)" = "my data" ] && [ "$(cat mine/notes.txt)" = "my notes" ] || fail "user files changed"
[ ! -e mine/plots.gp ] || fail "wrote into the refused directory"
# a directory without such names: plots beside the user's files, which stay
rm mine/beta.dat
lbdpo-eval --threads 1 -m c -i t.ref --plot mine -o ev.json 2>err.txt || fail "into mine: $(cat err.txt)"
[ -s mine/beta_hist.png ] && [ "$(cat mine/notes.txt)" = "my notes" ] || fail "plots beside the user's files"
# again (the directory is now lbdpo-eval's plots): replaced, notes kept,
# and an earlier curves.png without --metrics now does not linger
lbdpo-eval --threads 1 -m c -i t.ref --metrics m.jsonl --plot mine -o ev.json 2>err.txt || fail "again: $(cat err.txt)"
[ -s mine/curves.png ] || fail "curves"
lbdpo-eval --threads 1 -m c -i t.ref --plot mine -o ev.json 2>err.txt || fail "third: $(cat err.txt)"
[ ! -e mine/curves.png ] && [ ! -e mine/curves.dat ] || fail "a stale curves.png from the run before"
[ "$(cat mine/notes.txt)" = "my notes" ] || fail "notes"
# two runs' lines in one --metrics file: drawn, with a warning
cat m.jsonl m.jsonl >twice.jsonl
lbdpo-eval --threads 1 -m c -i t.ref --metrics twice.jsonl --plot q -o ev.json 2>err.txt || fail "twice: $(cat err.txt)"
grep -q 'warning: twice.jsonl: line 3: step 1 after step 2: lines of more than one run' err.txt || fail "no warning: $(cat err.txt)"
echo ok

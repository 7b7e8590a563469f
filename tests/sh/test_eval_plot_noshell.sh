#!/usr/bin/env bash
# lbdpo-eval --plot DIR runs gnuplot without a shell (issue 17 item 2): a plot
# directory named like a shell injection is just a name. A stand-in gnuplot
# first in PATH records where and how it ran, so the test needs no gnuplot.
. "$(dirname "$0")/lib.sh"
cd "$T"
awk -v seed=1 -v n=16 -f "$ROOT/tests/sh/gen_pairs.awk" | lbdpo-show --from-json -o t.ref || fail "gen"
lbdpo-init -q -o m0 --dim 32 --layers 1 --heads 4 --vocab 32 --max-seq 64 --seed 3 || fail "init"
lbdpo-step --model m0 --output c -i t.ref --threads 1 --batch-size 8 --steps 2 -q --ignore-provenance || fail "step"
mkdir fake
cat >fake/gnuplot <<'G'
#!/bin/sh
pwd >"$GP_LOG"; printf '%s\n' "$@" >>"$GP_LOG"
G
chmod +x fake/gnuplot
export GP_LOG="$T/gp.log"
evil="p';touch PWNED;'"
PATH="$T/fake:$PATH" lbdpo-eval --threads 1 -m c -i t.ref --plot "$evil" -o ev.json 2>err.txt || fail "lbdpo-eval: $(cat err.txt)"
[ ! -e PWNED ] && [ ! -e "$evil/PWNED" ] || fail "the plot directory's name ran as a shell command"
[ -s "$evil/plots.gp" ] || fail "no plots.gp in the literal directory"
[ -s gp.log ] || fail "gnuplot was not run"
[ "$(sed -n 1p gp.log)" = "$T/$evil" ] || fail "gnuplot ran in $(sed -n 1p gp.log), not the plot directory"
[ "$(sed -n 2p gp.log)" = plots.gp ] && [ "$(wc -l <gp.log)" = 2 ] || fail "gnuplot arguments: $(cat gp.log)"
# gnuplot absent: data and script written, one warning naming the package
rm -rf "$evil" gp.log
PATH="$LBDPO_BIN" lbdpo-eval --threads 1 -m c -i t.ref --plot "$evil" -o ev.json 2>err.txt || fail "no gnuplot: $(cat err.txt)"
grep -q 'gnuplot not found.*apt-get install gnuplot-nox' err.txt || fail "warning: $(cat err.txt)"
[ -s "$evil/plots.gp" ] && [ ! -e PWNED ] || fail "no gnuplot: outputs"
# gnuplot failing is a warning with its exit status, not an error
printf '#!/bin/sh\nexit 3\n' >fake/gnuplot
PATH="$T/fake:$PATH" lbdpo-eval --threads 1 -m c -i t.ref --plot q -o ev.json 2>err.txt || fail "gnuplot failing: $(cat err.txt)"
grep -q 'gnuplot failed on q/plots.gp (exit 3)' err.txt || fail "warning: $(cat err.txt)"
echo ok

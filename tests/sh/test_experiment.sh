#!/usr/bin/env bash
# `make experiment QUICK=1` (pipelines/experiment.mk: 2 seeds, short runs):
# it finishes, the printed table covers every arm, the intervals are the
# t-intervals of the per-seed values, paired differences are per-seed
# differences, and report.json / report.md / the figures are written.
. "$(dirname "$0")/lib.sh"
E="$T/e"
make --no-print-directory -f "$ROOT/pipelines/experiment.mk" LBDPO_BIN="$LBDPO_BIN" EW="$E" QUICK=1 -j2 \
	>"$T/log" 2>&1 || { tail -30 "$T/log"; fail "make experiment QUICK=1 failed"; }
sed -n '/^lbdpo experiment/,$p' "$T/log"
for f in report.md report.json report.txt stats.tsv plots/plots.gp plots/bars.dat plots/frozen.0.01.dat \
	plots/hazard.haz-full.dat plots/curve.lbdpo.loss.dat; do
	[ -s "$E/$f" ] || fail "$f missing"
done
for a in "reference (SFT)" DPO LB-DPO "LB-DPO eps=0" "LB-DPO grad head" "LB-DPO PPL policy" beta-DPO "DPO, flip 0" \
	"LB-DPO, flip 0" "LB-DPO - DPO" frozen-0.01 frozen-0.5 "PPL policy, grad full, no reg"; do
	grep -q "^$a  " "$E/report.txt" || fail "row '$a' missing from the table"
done
# every arm has both seeds for held-out preference accuracy
for a in ref dpo lbdpo lbdpo-eps0 lbdpo-head lbdpo-pplpol betadpo dpo-flip0 lbdpo-flip0; do
	awk -F '\t' -v a="$a" '$1 == a && $2 == "pref_acc" && $3 == "all" && $4 == 2 { f = 1 } END { exit !f }' \
		"$E/stats.tsv" || fail "$a: pref_acc over 2 seeds missing"
done
# the interval, recomputed from the per-seed rows: t(0.975, 1) = 12.706
v1=$(awk -F '\t' '$2 == "lbdpo" && $3 == "pref_acc" && $4 == "math" { print $5 }' "$E/s1/rows.tsv")
v2=$(awk -F '\t' '$2 == "lbdpo" && $3 == "pref_acc" && $4 == "math" { print $5 }' "$E/s2/rows.tsv")
read -r m ci <<<"$(awk -F '\t' '$1 == "lbdpo" && $2 == "pref_acc" && $3 == "math" { print $5, $7 }' "$E/stats.tsv")"
awk -v a="$v1" -v b="$v2" -v m="$m" -v ci="$ci" 'BEGIN { mm = (a + b) / 2; sd = sqrt((a - mm)^2 + (b - mm)^2)
	want = 12.706 * sd / sqrt(2); exit !((mm - m)^2 < 1e-12 && (want - ci)^2 < 1e-10) }' ||
	fail "lbdpo pref_acc math: stats $m ± $ci, rows $v1 $v2"
# the paired difference is the mean of the per-seed differences
d=$(awk -F '\t' '$1 == "lbdpo - dpo" && $2 == "tone" && $3 == "open" { print $5 }' "$E/stats.tsv")
want=$(cat "$E/s1/rows.tsv" "$E/s2/rows.tsv" | awk -F '\t' '$3 == "tone" && $2 == "lbdpo" { s += $5 } $3 == "tone" && $2 == "dpo" { s -= $5 } END { print s / 2 }')
awk -v a="$d" -v b="$want" 'BEGIN { exit !((a - b)^2 < 1e-12) }' || fail "paired difference $d, want $want"
# frozen policy: one line per block (0, 15, 30), both signs of Δ present
[ "$(wc -l <"$E/s1/frz-0.01.tsv")" = 3 ] || fail "frozen blocks: $(cat "$E/s1/frz-0.01.tsv")"
awk '$5 < 1 || $6 < 1 { exit 1 }' "$E/s1/frz-0.01.tsv" || fail "frozen: a sign of delta has no pairs"
# f = 1 exactly for eps = 0, within [0.5, 1.5] for eps = 0.5
awk -F '\t' '$2 == "lbdpo-eps0" && $3 == "f" && $5 != 1 { exit 1 }' "$E/s1/rows.tsv" || fail "eps=0: f != 1"
awk -F '\t' '$2 == "lbdpo" && $3 == "f" && ($5 < 0.5 || $5 > 1.5) { exit 1 }' "$E/s1/rows.tsv" || fail "f out of range"
grep -q '"arm": "lbdpo - dpo", "metric": "pref_acc", "group": "all", "n": 2' "$E/report.json" || fail "report.json"
grep -q '^| LB-DPO - DPO |' "$E/report.md" || fail "report.md differences"
if command -v gnuplot >/dev/null; then
	for f in results curves frozen hazard beta_hist beta_ppl; do
		[ "$(head -c 4 "$E/plots/$f.png" | od -An -c | tr -d ' ')" = 211PNG ] || fail "plots/$f.png is not a PNG"
		grep -q "(plots/$f.png)" "$E/report.md" || fail "report.md lacks $f.png"
	done
else
	grep -q 'gnuplot not found.*apt-get install gnuplot-nox' "$T/log" || fail "no warning without gnuplot"
fi
# re-running does nothing
make --no-print-directory -f "$ROOT/pipelines/experiment.mk" LBDPO_BIN="$LBDPO_BIN" EW="$E" QUICK=1 -q seeds ||
	fail "a second run would redo work"
echo ok

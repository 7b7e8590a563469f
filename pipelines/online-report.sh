#!/bin/sh
# online-report.sh — pipelines/online.mk's report, from the files it leaves
# in W (sh + awk; the plot with gnuplot when it is installed):
#   rows.tsv     seed, arm, round, metric, value: one row per measure
#   stats.tsv    arm, round, metric, n, mean, ci95 (t, n-1 df), per-seed values
#   online.png   oracle accuracy of greedy answers per round, 95% CI bars
#                (plot.gp and plot.dat are written either way)
# and the table on standard output. Measures:
#   acc, acc_math, acc_open  share of held-out prompts whose greedy answer the
#                oracle (demo-judge.awk) accepts: overall, arithmetic, tone
#   sample_oracle  mean oracle reward of the round's training samples
#   pairs        pairs the round trained on
#   pairs_right  share of them whose chosen answer the oracle scores above the
#                rejected one (1 for the judge by construction)
#   loss, rewacc the round's last DPO step (loss, rewards/accuracies)
#   rm_acc       the reward model's held-out pair ranking accuracy
# Usage: sh online-report.sh W "SEEDS" "ARMS" K
set -eu
W=$1 SEEDS=$2 ARMS=$3 K=$4
case $K in *[!0-9]* | '') echo "online-report.sh: error: K '$K' is not a number" >&2; exit 2 ;; esac
for a in $ARMS; do
	case $a in *[!A-Za-z0-9_-]* | '') echo "online-report.sh: error: arm '$a': letters, digits, - and _ only" >&2; exit 2 ;; esac
done
rows="$W/rows.tsv"
# mean "reward" per group of an oracle file: "<overall> <math> <open>"
oracle() {
	awk '{ r = 0; if (match($0, /"reward":[0-9.]+}$/)) r = substr($0, RSTART + 9, RLENGTH - 10) + 0
	       g = "other"; if (match($0, /"group":"[^"]*"/)) g = substr($0, RSTART + 9, RLENGTH - 10)
	       n[g]++; s[g] += r; N++; S += r }
	     END { printf "%s %s %s\n", N ? S / N : "nan", n["math"] ? s["math"] / n["math"] : "nan", n["open"] ? s["open"] / n["open"] : "nan" }' "$1"
}
# a key of the last line of a --metrics file
last() { tail -n 1 "$1" | awk -v k="$2" '{ if (match($0, "\"" k "\": -?[0-9.eE+-]+")) print substr($0, RSTART + length(k) + 4, RLENGTH - length(k) - 4) + 0; else print "nan" }'; }
# share of pairs whose chosen text the oracle scores above the rejected one
right() {
	awk 'function str(k) { if (!match($0, "\"" k "\":\"[^\"]*\"")) return ""; return substr($0, RSTART + length(k) + 4, RLENGTH - length(k) - 5) }
	     FNR == NR { o[str("id") SUBSEP str("text")] = substr($0, match($0, /"reward":[0-9.]+}$/) + 9) + 0; next }
	     { n++; ok += o[str("id") SUBSEP str("chosen")] > o[str("id") SUBSEP str("rejected")] }
	     END { print n ? ok / n : "nan" }' "$1" "$2"
}
: >"$rows"
put() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" >>"$rows"; }
answers() { # seed arm round oracle-file
	set -- "$1" "$2" "$3" $(oracle "$4")
	put "$1" "$2" "$3" acc "$4"; put "$1" "$2" "$3" acc_math "$5"; put "$1" "$2" "$3" acc_open "$6"
}
for s in $SEEDS; do
	S="$W/s$s"
	answers "$s" ref 0 "$S/r0.answers.oracle.jsonl"
	answers "$s" offline "$K" "$S/offline/answers.oracle.jsonl"
	put "$s" offline "$K" pairs "$(wc -l <"$S/offline/pairs.jsonl" | tr -d ' ')"
	put "$s" offline "$K" loss "$(last "$S/offline/metrics.jsonl" loss)"
	put "$s" offline "$K" rewacc "$(last "$S/offline/metrics.jsonl" rewards/accuracies)"
	put "$s" rm-model 0 rm_acc "$(awk '{ match($0, /"reward_chosen":-?[0-9.eE+-]+/); c = substr($0, RSTART + 16, RLENGTH - 16)
		match($0, /"reward_rejected":-?[0-9.eE+-]+/); r = substr($0, RSTART + 18, RLENGTH - 18); n++; a += c + 0 > r + 0 }
		END { print n ? a / n : "nan" }' "$S/rm-model.test.jsonl")"
	for a in $ARMS; do
		k=1
		while [ "$k" -le "$K" ]; do
			R="$S/$a/r$k"
			answers "$s" "$a" "$k" "$R/answers.oracle.jsonl"
			put "$s" "$a" "$k" sample_oracle "$(oracle "$R/samples.oracle.jsonl" | cut -d ' ' -f 1)"
			put "$s" "$a" "$k" pairs "$(wc -l <"$R/pairs.jsonl" | tr -d ' ')"
			put "$s" "$a" "$k" pairs_right "$(right "$R/samples.oracle.jsonl" "$R/pairs.jsonl")"
			put "$s" "$a" "$k" loss "$(last "$R/metrics.jsonl" loss)"
			put "$s" "$a" "$k" rewacc "$(last "$R/metrics.jsonl" rewards/accuracies)"
			k=$((k + 1))
		done
	done
done
# mean and 95% CI (t with n-1 df) over seeds per arm, round and metric
awk -F '\t' -f "$(dirname "$0")/seed-stats.awk" "$rows" >"$W/stats.tsv"
# "mean ± ci" of arm, round, metric
# (counts with one decimal; every cell 15 characters wide)
cell() { awk -F '\t' -v a="$1" -v r="$2" -v m="$3" '$1 == a && $2 == r && $3 == m { f = 1; fm = m == "pairs" ? "%6.1f" : "%6.3f"
	if ($6 == "nan") printf fm "         ", $5; else printf fm " ± " fm, $5, $6 } END { if (!f) printf "%-15s", "     -" }' "$W/stats.tsv"; }
ns=$(echo $SEEDS | wc -w)
echo
echo "online DPO on the demo's task: $ns seed(s), $K rounds; oracle accuracy of greedy answers on the"
echo "held-out prompts, mean ± 95% CI over seeds (t, n-1 df; no interval for one seed)"
printf '%-8s %5s  %-15s  %-15s  %-15s  %-15s  %-15s  %-15s\n' arm round overall arithmetic tone "sample oracle" pairs "pairs right"
line() { printf '%-8s %5s  %s  %s  %s  %s  %s  %s\n' "$1" "$2" "$(cell "$1" "$2" acc)" "$(cell "$1" "$2" acc_math)" \
	"$(cell "$1" "$2" acc_open)" "$(cell "$1" "$2" sample_oracle)" "$(cell "$1" "$2" pairs)" "$(cell "$1" "$2" pairs_right)"; }
line ref 0
for a in $ARMS; do
	k=1
	while [ "$k" -le "$K" ]; do line "$a" "$k"; k=$((k + 1)); done
done
line offline "$K"
echo
echo "reward model: held-out pair ranking accuracy $(cell rm-model 0 rm_acc)"
echo "last DPO step of round $K: loss / rewards/accuracies"
for a in $ARMS offline; do printf '  %-8s %s / %s\n' "$a" "$(cell "$a" "$K" loss)" "$(cell "$a" "$K" rewacc)"; done
# paired differences: the same seed's data, reference and held-out prompts
echo "paired differences (per seed, then mean ± 95% CI) of the overall accuracy (acc) and the samples' oracle score:"
paired() { # label armA roundA armB roundB [metric]
	awk -F '\t' -v a="$2" -v ra="$3" -v b="$4" -v rb="$5" -v lab="$1" -v met="${6:-acc}" \
	    'BEGIN { split("12.706 4.303 3.182 2.776 2.571 2.447 2.365 2.306 2.262 2.228", T, " ") }
	     $4 == met && $2 == a && $3 == ra { x[$1] = $5 }
	     $4 == met && $2 == b && $3 == rb { y[$1] = $5 }
	     END { for (s in x) if ((s in y) && x[s] != "nan" && y[s] != "nan") { d = x[s] - y[s]; n++; S += d; SS += d * d }
		   if (!n) { printf "  %-32s -\n", lab; exit }
		   m = S / n; ci = "nan"
		   if (n > 1) { v = (SS - n * m * m) / (n - 1); if (v < 0) v = 0; ci = (n - 1 <= 10 ? T[n - 1] : 1.96) * sqrt(v / n) }
		   if (ci == "nan") printf "  %-32s %+.3f\n", lab, m
		   else printf "  %-32s %+.3f ± %.3f  [%+.3f, %+.3f]%s\n", lab, m, ci, m - ci, m + ci, (m - ci > 0 || m + ci < 0) ? "" : "  (0 inside)" }' "$rows"
}
for a in $ARMS; do
	paired "$a round $K - reference" "$a" "$K" ref 0
	paired "$a round $K - offline" "$a" "$K" offline "$K"
	[ "$K" -gt 1 ] && paired "$a samples, round $K - round 1" "$a" "$K" "$a" 1 sample_oracle
done
paired "offline - reference" offline "$K" ref 0
echo "offline: DPO on the first K·P training pairs (their given labels) for K·STEPS steps, from the reference."
echo "Data: rows.tsv, stats.tsv (arm, round, metric, n, mean, ci95, per-seed values)."

# the plot: accuracy per round, one line per arm; the reference at round 0 and
# the offline arm at round K as points
dat="$W/plot.dat" gp="$W/plot.gp"
: >"$dat"
for a in $ARMS; do
	awk -F '\t' -v a="$a" '($1 == a || $1 == "ref") && $3 == "acc" { print $2, $5, ($6 == "nan" ? 0 : $6) }' "$W/stats.tsv" | sort -n >>"$dat"
	printf '\n\n' >>"$dat"
done
awk -F '\t' '$1 == "offline" && $3 == "acc" { print $2, $5, ($6 == "nan" ? 0 : $6) }' "$W/stats.tsv" >>"$dat"
{
	echo "# generated by pipelines/online-report.sh; run in this directory: gnuplot plot.gp"
	echo "set terminal pngcairo size 800,500 font 'DejaVu Sans,11' noenhanced"
	echo "set output 'online.png'"
	echo "set title 'Oracle accuracy of greedy answers per round (mean, 95% CI over $ns seed(s))'"
	echo "set xlabel 'round'; set ylabel 'oracle accuracy'; set grid; set key bottom right"
	echo "set xrange [-0.3:$K.3]; set xtics 1"
	printf "plot 'plot.dat' index 0 with yerrorlines lw 2 title 'online, %s'" "$(echo $ARMS | cut -d ' ' -f 1)"
	i=1
	for a in $(echo $ARMS | cut -d ' ' -f 2-); do
		printf ", '' index %d with yerrorlines lw 2 title 'online, %s'" "$i" "$a"
		i=$((i + 1))
	done
	printf ", '' index %d with yerrorbars pt 7 ps 1.5 title 'offline DPO'\n" "$i"
} >"$gp"
if command -v gnuplot >/dev/null 2>&1; then
	(cd "$W" && gnuplot plot.gp) || echo "online-report.sh: warning: gnuplot failed on $gp" >&2
else
	echo "online-report.sh: warning: gnuplot not found: wrote $dat and $gp only, no online.png (install it: apt-get install gnuplot-nox)" >&2
fi

#!/bin/sh
# exp-report.sh — aggregate pipelines/experiment.mk's seeds: mean ± 95%
# confidence interval over seeds per arm, metric and group, paired
# differences between arms, the frozen-policy and PPL-hazard summaries; prints
# the tables and writes EW/report.json, EW/report.md, EW/stats.tsv and the
# figures in EW/plots/ (gnuplot PNG; without gnuplot the data and scripts).
#
# Interval: mean ± t(0.975, n−1)·s/√n, s the sample standard deviation over
# the n seeds (Student's t: few seeds, unknown variance). A paired difference
# A − B is computed per seed (same data, order and reference) and then gets
# the same interval, which is what tells whether A and B differ.
# Usage: sh exp-report.sh EW "SEEDS" "ARMS" "HAZ" "FRZ_BETAS"
set -eu
EW=$1 SEEDS=$2 ARMS=$3 HAZ=$4 FRZ=$5
D=$(dirname "$0")
P="$EW/plots"
mkdir -p "$P"
# paired differences: "A:B" is A − B
PAIRS="lbdpo:dpo lbdpo-eps0:dpo lbdpo-head:dpo lbdpo-pplpol:dpo betadpo:dpo lbdpo-flip0:dpo-flip0 lbdpo:lbdpo-eps0"

# ---- rows of every seed, plus derived rows ----
# frozen policy: rel_growth = (β_end/β_0 on Δ > 0) / (β_end/β_0 on Δ < 0),
#   w_ratio = w_end/w_0, per seed and starting β
# hazard and LB-DPO arms: ppl_start / ppl_end, beta_start / beta_end = batch
#   mean policy prompt PPL and β over the first / last tenth of the steps
rows="$EW/rows.all.tsv"
{
	for s in $SEEDS; do
		cat "$EW/s$s/rows.tsv"
		for b in $FRZ; do
			awk -v s="$s" -v b="$b" 'NR == 1 { p0 = $2; n0 = $3; w0 = $4 } { p = $2; n = $3; w = $4 }
				END { printf "%s\tfrozen-%s\trel_growth\tall\t%.9g\n", s, b, (p / p0) / (n / n0)
				      printf "%s\tfrozen-%s\tw_ratio\tall\t%.9g\n", s, b, w / w0 }' "$EW/s$s/frz-$b.tsv"
		done
		for h in $HAZ $(echo " $ARMS " | tr ' ' '\n' | grep lbdpo); do
			awk -v s="$s" -v h="$h" '
			function num(k,   v) { if (!match($0, "\"" k "\": -?[0-9.eE+-]+")) return "nan"; v = substr($0, RSTART + length(k) + 4, RLENGTH - length(k) - 4); return v + 0 }
			{ x[NR] = num("ppl/prompt"); y[NR] = num("beta/mean") }
			END { k = int(NR / 10); if (k < 1) k = 1
			      for (i = 1; i <= k; i++) { a += x[i]; b += x[NR - k + i]; c += y[i]; d += y[NR - k + i] }
			      printf "%s\t%s\tppl_start\tall\t%.9g\n%s\t%s\tppl_end\tall\t%.9g\n", s, h, a / k, s, h, b / k
			      printf "%s\t%s\tbeta_start\tall\t%.9g\n%s\t%s\tbeta_end\tall\t%.9g\n", s, h, c / k, s, h, d / k }' \
				"$EW/s$s/$h.metrics.jsonl"
		done
	done
} >"$rows"

# ---- statistics: arm metric group n mean sd ci95 values ----
awk -F '\t' -v pairs="$PAIRS" '
BEGIN { split("12.706 4.303 3.182 2.776 2.571 2.447 2.365 2.306 2.262 2.228 2.201 2.179 2.160 2.145 2.131 2.120 2.110 2.101 2.093 2.086 2.080 2.074 2.069 2.064 2.060 2.056 2.052 2.048 2.045 2.042", T, " ")
	np = split(pairs, PR, " ") }
function add(a, m, g, s, v,   k) { if (v == "nan" || v == "") return; k = a SUBSEP m SUBSEP g
	if (!(k in n)) { order[++nk] = k }; n[k]++; val[k, n[k]] = v; seed[k, n[k]] = s; byseed[k, s] = v; has[k, s] = 1 }
{ add($2, $3, $4, $1, $5); seeds[$1] = 1; am[$2 SUBSEP $3 SUBSEP $4] = 1 }
END {
	# derived: separation of the groups within an arm (math − open)
	for (k in am) { split(k, q, SUBSEP); if (q[3] != "math" || (q[2] != "beta_mean" && q[2] != "f")) continue
		k2 = q[1] SUBSEP q[2] SUBSEP "open"
		for (s in seeds) if (has[k, s] && has[k2, s]) add(q[1], q[2], "math-open", s, byseed[k, s] - byseed[k2, s]) }
	# paired differences
	for (i = 1; i <= np; i++) { split(PR[i], ab, ":")
		for (j = 1; j <= nk; j++) { split(order[j], q, SUBSEP); if (q[1] != ab[1]) continue
			kb = ab[2] SUBSEP q[2] SUBSEP q[3]
			for (s in seeds) if (has[order[j], s] && has[kb, s]) add(ab[1] " - " ab[2], q[2], q[3], s, byseed[order[j], s] - byseed[kb, s]) } }
	for (j = 1; j <= nk; j++) { k = order[j]; split(k, q, SUBSEP); m = 0; for (i = 1; i <= n[k]; i++) m += val[k, i]; m /= n[k]
		ss = 0; for (i = 1; i <= n[k]; i++) ss += (val[k, i] - m) ^ 2
		if (n[k] > 1) { sd = sqrt(ss / (n[k] - 1)); t = n[k] - 1 <= 30 ? T[n[k] - 1] : 1.960; ci = t * sd / sqrt(n[k]) } else { sd = "nan"; ci = "nan" }
		vs = ""; for (i = 1; i <= n[k]; i++) vs = vs (i > 1 ? "," : "") val[k, i]
		printf "%s\t%s\t%s\t%d\t%.9g\t%s\t%s\t%s\n", q[1], q[2], q[3], n[k], m, sd, ci, vs } }' "$rows" >"$EW/stats.tsv"

# ---- tables (text and Markdown) ----
# table FORMAT TITLE "ARM..." "metric:group:header ..."; FORMAT txt or md
table() {
	awk -F '\t' -v fmt="$1" -v title="$2" -v arms="$3" -v cols="$4" '
	function name(a) { return a in N ? N[a] : a }
	function cell(k,   s) { if (!(k in M)) return "-"; if (C[k] == "nan") return sprintf("%.3f", M[k])
		return sprintf("%.3f ± %.3f", M[k], C[k]) }
	BEGIN { split("ref:reference (SFT)|dpo:DPO|lbdpo:LB-DPO|lbdpo-eps0:LB-DPO eps=0|lbdpo-head:LB-DPO grad head|lbdpo-pplpol:LB-DPO PPL policy|betadpo:beta-DPO|dpo-flip0:DPO, flip 0|lbdpo-flip0:LB-DPO, flip 0|haz-full:PPL policy, grad full, no reg|haz-head:PPL policy, grad head|haz-ref:PPL ref, grad full", L, "|")
		for (i in L) { split(L[i], kv, ":"); N[kv[1]] = kv[2] } }
	{ M[$1 SUBSEP $2 SUBSEP $3] = $5; C[$1 SUBSEP $2 SUBSEP $3] = $7 }
	END { na = split(arms, A, " "); nc = split(cols, CO, " ")
		if (fmt == "md") { printf "\n**%s**\n\n| arm |", title; for (c = 1; c <= nc; c++) { split(CO[c], x, ":"); gsub(/_/, " ", x[3]); printf " %s |", x[3] }
			printf "\n|---|"; for (c = 1; c <= nc; c++) printf "---|"; printf "\n" }
		else { printf "\n%s\n%-30s", title, ""; for (c = 1; c <= nc; c++) { split(CO[c], x, ":"); gsub(/_/, " ", x[3]); printf "%20s", x[3] } printf "\n" }
		for (a = 1; a <= na; a++) { ar = A[a]; if (split(ar, ab, ":") == 2) { key = ab[1] " - " ab[2]; label = name(ab[1]) " - " name(ab[2]) } else { key = ar; label = name(ar) }
			if (fmt == "md") printf "| %s |", label; else printf "%-30s", label
			for (c = 1; c <= nc; c++) { split(CO[c], x, ":"); v = cell(key SUBSEP x[1] SUBSEP x[2]); if (fmt == "md") printf " %s |", v; else printf "%20s", v }
			printf "\n" } }' "$EW/stats.tsv"
}
MAIN="ref $ARMS"
C1="pref_acc:all:pref_all pref_acc:math:pref_math pref_acc:open:pref_open reward_acc:all:reward_all reward_acc:math:reward_math reward_acc:open:reward_open"
C2="answer_acc:math:answer_acc tone:open:tone beta_mean:math:beta_math beta_mean:open:beta_open f:math:f_math f:open:f_open"
C3="beta_mean:math-open:beta_math-open f:math-open:f_math-open"
FR=""; for b in $FRZ; do FR="$FR frozen-$b"; done
C4="rel_growth:all:beta_growth_D>0/D<0 w_ratio:all:w_end/w_start"
C5="ppl_start:all:PPL_first_10% ppl_end:all:PPL_last_10% beta_start:all:beta_first_10% beta_end:all:beta_last_10%"
n=$(set -- $SEEDS; echo $#)
report() { # FORMAT
	table "$1" "Held-out accuracy, mean ± 95% CI over $n seeds" "$MAIN" "$C1"
	table "$1" "Greedy answers and beta (f: learned factor of LB-DPO's beta)" "$MAIN" "$C2"
	table "$1" "Paired differences A - B (per seed, then mean ± 95% CI)" "$PAIRS" "$C1"
	table "$1" "Paired differences A - B, answers and beta" "$PAIRS" "$C2"
	table "$1" "Group separation within an arm: math (clean labels) - open (30% flipped)" "lbdpo lbdpo-head lbdpo-pplpol lbdpo-eps0 lbdpo-flip0" "$C3"
	table "$1" "Frozen policy (beta only, from the DPO policy): relative beta growth on D>0 vs D<0 pairs, w" "$FR" "$C4"
	table "$1" "Training: batch-mean policy prompt PPL and beta, first and last tenth of the steps (PPL hazard; does beta collapse?)" "$HAZ $(echo " $ARMS " | tr ' ' '\n' | grep lbdpo | tr '\n' ' ')" "$C5"
}
{
	echo "lbdpo experiment: $n seeds ($SEEDS); arms: $ARMS"
	report txt
} >"$EW/report.txt"

# ---- JSON ----
awk -F '\t' -v seeds="$SEEDS" '
function num(x) { return (x == "nan" || x == "" || x == "-nan" || x == "inf" || x == "-inf") ? "null" : x + 0 }
BEGIN { gsub(/ +/, ", ", seeds); printf "{\n \"seeds\": [%s],\n \"interval\": \"mean +- t(0.975, n-1) * sd / sqrt(n) over seeds\",\n \"results\": [", seeds }
{ printf "%s\n  {\"arm\": \"%s\", \"metric\": \"%s\", \"group\": \"%s\", \"n\": %d, \"mean\": %s, \"sd\": %s, \"ci95\": %s, \"values\": [%s]}", (NR > 1 ? "," : ""), $1, $2, $3, $4, num($5), num($6), num($7), $8 }
END { printf "\n ]\n}\n" }' "$EW/stats.tsv" >"$EW/report.json.tmp"
mv "$EW/report.json.tmp" "$EW/report.json"

# ---- plot data ----
# per step over seeds: "step raw_mean lo hi ema_mean": the raw per-step mean,
# and the mean and 95% band of each seed's EMA (ema ← a·ema + (1−a)·x, a
# from the run length: about 20 steps' memory... 1 − 20/steps in [0.5, 0.99])
curve() { # ARM KEY OUT
	for s in $SEEDS; do
		awk -v s="$s" -v key="$2" '
		function num(k,   v) { if (!match($0, "\"" k "\": -?[0-9.eE+-]+")) return "nan"; v = substr($0, RSTART + length(k) + 4, RLENGTH - length(k) - 4); return v + 0 }
		{ t[NR] = num("step"); x[NR] = num(key) }
		END { a = 1 - 20 / NR; if (a < 0.5) a = 0.5; if (a > 0.99) a = 0.99
			for (i = 1; i <= NR; i++) { if (x[i] == "nan") continue; e = started ? a * e + (1 - a) * x[i] : x[i]; started = 1
				print t[i], x[i], e } }' "$EW/s$s/$1.metrics.jsonl"
	done | awk '
	BEGIN { split("12.706 4.303 3.182 2.776 2.571 2.447 2.365 2.306 2.262 2.228", T, " ") }
	{ n[$1]++; s[$1] += $2; e[$1] += $3; q[$1] += $3 * $3; if ($1 > last) last = $1 }
	END { for (t = 1; t <= last; t++) { if (!(t in n)) continue; m = e[t] / n[t]
			v = n[t] > 1 ? (q[t] - n[t] * m * m) / (n[t] - 1) : 0; if (v < 0) v = 0
			h = n[t] > 1 ? (n[t] - 1 <= 10 ? T[n[t] - 1] : 1.96) * sqrt(v / n[t]) : 0
			printf "%d %.9g %.9g %.9g %.9g\n", t, s[t] / n[t], m - h, m + h, m } }' >"$3"
}
for a in dpo lbdpo lbdpo-eps0; do
	for k in loss rewards/accuracies rewards/margins rewards/chosen rewards/rejected beta/mean beta/min beta/max ppl/prompt; do
		curve "$a" "$k" "$P/curve.$a.$(echo "$k" | tr / _).dat"
	done
done
for h in $HAZ lbdpo-pplpol; do curve "$h" ppl/prompt "$P/hazard.$h.dat"; done
# frozen policy: step, mean and band of β on Δ > 0, on Δ < 0, and of w
for b in $FRZ; do
	for s in $SEEDS; do cat "$EW/s$s/frz-$b.tsv"; done | awk '
	BEGIN { split("12.706 4.303 3.182 2.776 2.571 2.447 2.365 2.306 2.262 2.228", T, " ") }
	{ k = $1; if (!(k in n)) o[++no] = k; n[k]++; for (c = 2; c <= 4; c++) { s[k, c] += $c; q[k, c] += $c * $c } }
	END { for (i = 1; i <= no; i++) { k = o[i]; printf "%s", k
		for (c = 2; c <= 4; c++) { m = s[k, c] / n[k]; v = n[k] > 1 ? (q[k, c] - n[k] * m * m) / (n[k] - 1) : 0; if (v < 0) v = 0
			h = n[k] > 1 ? (n[k] - 1 <= 10 ? T[n[k] - 1] : 1.96) * sqrt(v / n[k]) : 0; printf " %.9g %.9g %.9g", m, m - h, m + h }
		printf "\n" } }' >"$P/frozen.$b.dat"
done
# per-pair β, PPL and group of LB-DPO on the held-out prompts, all seeds
for s in $SEEDS; do cat "$EW/s$s/lbdpo.per-record.jsonl"; done | awk '
function num(k,   v) { if (!match($0, "\"" k "\":-?[0-9.eE+-]+")) return "nan"; v = substr($0, RSTART + length(k) + 3, RLENGTH - length(k) - 3); return v + 0 }
{ g = /"group":"math"/ ? "math" : "open"; print num("beta"), num("ppl") > (dir "/pairs." g ".dat") }' dir="$P"
# bar chart data: arm index, label, pref acc math mean ci, open mean ci
awk -F '\t' -v arms="$MAIN" '
BEGIN { na = split(arms, A, " "); split("ref:SFT ref|dpo:DPO|lbdpo:LB-DPO|lbdpo-eps0:LB eps=0|lbdpo-head:LB grad head|lbdpo-pplpol:LB PPL pol|betadpo:beta-DPO|dpo-flip0:DPO flip0|lbdpo-flip0:LB flip0", L, "|")
	for (i in L) { split(L[i], kv, ":"); N[kv[1]] = kv[2] } }
$2 == "pref_acc" { M[$1, $3] = $5; C[$1, $3] = $7 == "nan" ? 0 : $7 }
END { for (a = 1; a <= na; a++) printf "%d \"%s\" %s %s %s %s\n", a - 1, N[A[a]], M[A[a], "math"], C[A[a], "math"], M[A[a], "open"], C[A[a], "open"] }' \
	"$EW/stats.tsv" >"$P/bars.dat"

# ---- figures ----
sh "$D/exp-plots.sh" "$P" "$FRZ" "$HAZ lbdpo-pplpol" "$n"

# ---- Markdown ----
{
	echo "# lbdpo experiment"
	echo
	echo "The demo task (pipelines/demo.mk) over $n seeds ($SEEDS), every arm with the same data, reference,"
	echo "steps and seed; intervals are 95% confidence intervals over seeds (Student t, n − 1 df)."
	echo "Paired differences are taken per seed, then averaged. Groups: math (labels always right),"
	echo "open (30% of training labels flipped; held-out labels clean)."
	report md
	echo
	for f in results curves frozen hazard beta_hist beta_ppl; do
		[ -s "$P/$f.png" ] && echo "![$f](plots/$f.png)"
	done
	echo
	echo "Data: stats.tsv (arm, metric, group, n, mean, sd, ci95, per-seed values), report.json, s*/rows.tsv."
} >"$EW/report.md.tmp"
mv "$EW/report.md.tmp" "$EW/report.md"
cat "$EW/report.txt"
echo
echo "report: $EW/report.md, $EW/report.json, plots in $P"

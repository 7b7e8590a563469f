#!/bin/sh
# study-report.sh — aggregate pipelines/study.mk: per setting, arm, metric and
# group the mean ± 95% confidence interval over seeds, paired differences
# between arms (per seed, then the same interval), the slope of the learned
# factor over the groups' noise rates; writes SW/stats.tsv, SW/report.json,
# SW/report.md, SW/report.txt and the figures in SW/plots/ (gnuplot PNG).
#
# Interval: mean ± t(0.975, n−1)·s/√n over the n seeds (Student t).
# Usage: sh study-report.sh SW "SETTINGS" "SEEDS" "ARMS" "LEARNED" LEVELS FLIP
set -eu
SW=$1 SETTINGS=$2 SEEDS=$3 ARMS=$4 LEARNED=$5 LEVELS=$6 FLIP=$7
D=$(dirname "$0")
P="$SW/plots"
mkdir -p "$P"
# paired differences "A:B" = A − B; dpo is the β picked on validation
PAIRS="lbdpo:dpo cdpo:dpo rdpo:dpo drdpo:dpo betadpo:dpo ipo:dpo lbdpo:cdpo lbdpo:rdpo lbdpo:drdpo"
for l in $LEARNED; do [ "$l" = lbdpo ] || PAIRS="$PAIRS $l:dpo $l:lbdpo"; done
MAIN="ref dpo $(echo " $ARMS " | tr ' ' '\n' | grep -v '^dpo-b' | tr '\n' ' ') $(echo " $ARMS " | tr ' ' '\n' | grep '^dpo-b' | tr '\n' ' ')"
n=$(set -- $SEEDS; echo $#)

# ---- rows: setting seed arm metric group value ----
rows="$SW/rows.all.tsv"
for t in $SETTINGS; do
	for s in $SEEDS; do awk -v t="$t" -v OFS='\t' '{ print t, $0 }' "$SW/$t/s$s/rows.tsv"; done
done >"$rows"

# ---- statistics: setting arm metric group n mean sd ci95 values ----
# derived per seed: paired differences; for learned arms the OLS slope of β
# and f over the groups' true flip rates (group "slope"), and the gap
# "lowest-noise group − highest-noise group" (group "gap")
awk -F '\t' -v pairs="$PAIRS" '
BEGIN { split("12.706 4.303 3.182 2.776 2.571 2.447 2.365 2.306 2.262 2.228 2.201 2.179 2.160 2.145 2.131 2.120 2.110 2.101 2.093 2.086 2.080 2.074 2.069 2.064 2.060 2.056 2.052 2.048 2.045 2.042", T, " ")
	np = split(pairs, PR, " ") }
function add(t, a, m, g, s, v,   k) { if (v == "nan" || v == "" || v == "-nan") return; k = t SUBSEP a SUBSEP m SUBSEP g
	if (!(k in n)) order[++nk] = k; n[k]++; val[k, n[k]] = v; byseed[k, s] = v; has[k, s] = 1 }
{ add($1, $3, $4, $5, $2, $6); seeds[$2] = 1; sets[$1] = 1
  if ($3 == "data" && $4 == "flip_rate" && $5 != "all") { rate[$1, $2, $5] = $6; grps[$1, $5] = 1 } }
END {
	# slopes and gaps of β, f over the groups of a setting (learned arms)
	nk0 = nk
	for (j = 1; j <= nk0; j++) { split(order[j], q, SUBSEP); if (q[3] != "beta" && q[3] != "f" || q[4] != "all") continue
		for (s in seeds) { sx = sy = sxx = sxy = c = 0; lo = 2; hi = -1
			for (gk in grps) { split(gk, z, SUBSEP); if (z[1] != q[1]) continue; g = z[2]
				kk = q[1] SUBSEP q[2] SUBSEP q[3] SUBSEP g; if (!has[kk, s] || !((q[1], s, g) in rate)) continue
				x = rate[q[1], s, g]; y = byseed[kk, s]; sx += x; sy += y; sxx += x * x; sxy += x * y; c++
				if (x < lo) { lo = x; ylo = y } if (x > hi) { hi = x; yhi = y } }
			if (c >= 2 && c * sxx - sx * sx > 0) { add(q[1], q[2], q[3], "slope", s, (c * sxy - sx * sy) / (c * sxx - sx * sx)); add(q[1], q[2], q[3], "gap", s, ylo - yhi) } } }
	# paired differences
	nk0 = nk
	for (i = 1; i <= np; i++) { split(PR[i], ab, ":")
		for (j = 1; j <= nk0; j++) { split(order[j], q, SUBSEP); if (q[2] != ab[1]) continue
			kb = q[1] SUBSEP ab[2] SUBSEP q[3] SUBSEP q[4]
			for (s in seeds) if (has[order[j], s] && has[kb, s]) add(q[1], ab[1] " - " ab[2], q[3], q[4], s, byseed[order[j], s] - byseed[kb, s]) } }
	for (j = 1; j <= nk; j++) { k = order[j]; split(k, q, SUBSEP); m = 0; for (i = 1; i <= n[k]; i++) m += val[k, i]; m /= n[k]
		ss = 0; for (i = 1; i <= n[k]; i++) ss += (val[k, i] - m) ^ 2
		if (n[k] > 1) { sd = sqrt(ss / (n[k] - 1)); t = n[k] - 1 <= 30 ? T[n[k] - 1] : 1.960; ci = t * sd / sqrt(n[k]) } else { sd = "nan"; ci = "nan" }
		vs = ""; for (i = 1; i <= n[k]; i++) vs = vs (i > 1 ? "," : "") val[k, i]
		printf "%s\t%s\t%s\t%s\t%d\t%.9g\t%s\t%s\t%s\n", q[1], q[2], q[3], q[4], n[k], m, sd, ci, vs } }' "$rows" >"$SW/stats.tsv"

# groups of a setting, in a fixed order (noise levels ascending; math, open)
groups() { awk -F "\t" -v t="$1" '$1 == t && $2 == "data" && $3 == "flip_rate" && $4 != "all" { print $4 }' "$SW/stats.tsv" | sort -V -u; }

# ---- tables: table FORMAT SETTING TITLE "ARM..." "metric:group:header ..." ----
table() {
	awk -F '\t' -v fmt="$1" -v set="$2" -v title="$3" -v arms="$4" -v cols="$5" '
	function name(a) { return a in N ? N[a] : a ~ /^dpo-b/ ? "DPO β=" substr(a, 6) : a ~ /^lbdpo-/ ? "LB-DPO " substr(a, 7) : a }
	function cell(k) { if (!(k in M)) return "-"; if (C[k] == "nan") return sprintf("%.3f", M[k]); return sprintf("%.3f ± %.3f", M[k], C[k]) }
	BEGIN { split("ref:reference (SFT)|dpo:DPO (β picked on val)|cdpo:cDPO|rdpo:rDPO|drdpo:Dr.DPO|betadpo:β-DPO|ipo:IPO|lbdpo:LB-DPO|data:data", L, "|")
		for (i in L) { split(L[i], kv, ":"); N[kv[1]] = kv[2] } }
	$1 == set { M[$2 SUBSEP $3 SUBSEP $4] = $6; C[$2 SUBSEP $3 SUBSEP $4] = $8 }
	END { na = split(arms, A, " "); nc = split(cols, CO, " ")
		if (fmt == "md") { printf "\n**%s**\n\n| arm |", title; for (c = 1; c <= nc; c++) { split(CO[c], x, ":"); gsub(/_/, " ", x[3]); printf " %s |", x[3] }
			printf "\n|---|"; for (c = 1; c <= nc; c++) printf "---|"; printf "\n" }
		else { printf "\n%s\n%-34s", title, ""; for (c = 1; c <= nc; c++) { split(CO[c], x, ":"); gsub(/_/, " ", x[3]); printf "%18s", x[3] } printf "\n" }
		for (a = 1; a <= na; a++) { ar = A[a]; if (split(ar, ab, ":") == 2) { key = ab[1] " - " ab[2]; label = name(ab[1]) " - " name(ab[2]) } else { key = ar; label = name(ar) }
			row = ""; any = 0
			for (c = 1; c <= nc; c++) { split(CO[c], x, ":"); v = cell(key SUBSEP x[1] SUBSEP x[2]); any += v != "-"; row = row (fmt == "md" ? " " v " |" : sprintf("%18s", v)) }
			if (!any) continue
			if (fmt == "md") printf "| %s |%s\n", label, row; else printf "%-34s%s\n", label, row } }' "$SW/stats.tsv"
}
cols() { # METRIC PREFIX GROUPS... → "metric:group:PREFIX_group ..."
	m=$1 pre=$2; shift 2
	for g in all "$@"; do printf '%s:%s:%s_%s ' "$m" "$g" "$pre" "$g"; done
}
report() { # FORMAT
	for t in $SETTINGS; do
		G=$(groups "$t" | tr '\n' ' ')
		case $t in noise) desc="groups that differ only in label noise ($LEVELS flipped), one prompt family" ;;
		mixed) desc="math (clean) / open ($FLIP flipped)" ;; *) desc=$t ;; esac
		table "$1" "$t" "[$t] Data: true flip rate of the training labels, reference PPL(x) of the training prompts" "data ref" \
			"$(cols flip_rate flip $G) $(cols ppl ppl $G)"
		table "$1" "$t" "[$t: $desc] Clean held-out preference accuracy, mean ± 95% CI over $n seeds" "$MAIN" "$(cols pref_acc acc $G) val_acc:all:val_acc"
		table "$1" "$t" "[$t] Greedy answers right by the known rule, and KL(policy || reference) on held-out prompts" "$MAIN" \
			"$(cols greedy_ok greedy $G) kl:all:KL"
		table "$1" "$t" "[$t] Paired differences A - B (per seed, then mean ± 95% CI)" "$PAIRS" \
			"$(cols pref_acc acc $G) greedy_ok:all:greedy_all kl:all:KL"
		table "$1" "$t" "[$t] Learned beta per group (training pairs); slope over the groups' flip rates; gap = lowest-noise minus highest-noise group" \
			"$LEARNED" "$(cols beta beta $G) beta:slope:beta_slope beta:gap:beta_gap"
		table "$1" "$t" "[$t] Learned factor f per group" "$LEARNED" "$(cols f f $G) f:slope:f_slope f:gap:f_gap"
		table "$1" "$t" "[$t] AUROC for flipped vs clean training pairs (0.5 = chance): of -beta, -f (learned arms) and of the policy's own -margin" \
			"$MAIN" "auroc_beta:all:beta auroc_f:all:f auroc_margin:all:margin $(for g in $G; do printf 'auroc_beta:%s:beta_%s ' "$g" "$g"; done)"
	done
}
{
	echo "lbdpo study: $n seeds ($SEEDS); settings: $SETTINGS; arms: $ARMS"
	report txt
} >"$SW/report.txt"

# ---- JSON ----
awk -F '\t' -v seeds="$SEEDS" -v settings="$SETTINGS" -v arms="$ARMS" '
function num(x) { return (x == "nan" || x == "" || x == "-nan" || x == "inf" || x == "-inf") ? "null" : x + 0 }
function list(s, q,   a, n, i, o) { n = split(s, a, " "); o = ""; for (i = 1; i <= n; i++) o = o (i > 1 ? ", " : "") q a[i] q; return o }
BEGIN { printf "{\n \"seeds\": [%s],\n \"settings\": [%s],\n \"arms\": [%s],\n", list(seeds, ""), list(settings, "\""), list(arms, "\"")
	printf " \"interval\": \"mean +- t(0.975, n-1) * sd / sqrt(n) over seeds\",\n \"results\": [" }
{ printf "%s\n  {\"setting\": \"%s\", \"arm\": \"%s\", \"metric\": \"%s\", \"group\": \"%s\", \"n\": %d, \"mean\": %s, \"sd\": %s, \"ci95\": %s, \"values\": [%s]}", (NR > 1 ? "," : ""), $1, $2, $3, $4, $5, num($6), num($7), num($8), $9 }
END { printf "\n ]\n}\n" }' "$SW/stats.tsv" >"$SW/report.json.tmp"
mv "$SW/report.json.tmp" "$SW/report.json"

# ---- plot data ----
# acc_kl.SETTING.dat: index "label" KL lo hi acc lo hi (per arm)
# f.SETTING.ARM.dat: rate f lo hi beta lo hi (per group, learned arms)
# auroc.SETTING.dat: index "label" margin lo hi beta lo hi f lo hi
for t in $SETTINGS; do
	awk -F '\t' -v t="$t" -v arms="$MAIN" -v learned="$LEARNED" -v dir="$P" '
	function lo(k) { return k in M ? M[k] - (C[k] == "nan" ? 0 : C[k]) : "NaN" }
	function hi(k) { return k in M ? M[k] + (C[k] == "nan" ? 0 : C[k]) : "NaN" }
	function mm(k) { return k in M ? M[k] : "NaN" }
	$1 == t { k = $2 SUBSEP $3 SUBSEP $4; M[k] = $6; C[k] = $8; if ($2 == "data" && $3 == "flip_rate" && $4 != "all") R[$4] = $6 }
	END { na = split(arms, A, " "); i = 0
		for (a = 1; a <= na; a++) { x = A[a]; if (x == "ref") { M[x SUBSEP "kl" SUBSEP "all"] = 0; C[x SUBSEP "kl" SUBSEP "all"] = 0 }
			ka = x SUBSEP "pref_acc" SUBSEP "all"; kk = x SUBSEP "kl" SUBSEP "all"
			printf "%d \"%s\" %s %s %s %s %s %s\n", i, x, mm(kk), lo(kk), hi(kk), mm(ka), lo(ka), hi(ka) > (dir "/acc_kl." t ".dat")
			km = x SUBSEP "auroc_margin" SUBSEP "all"; kb = x SUBSEP "auroc_beta" SUBSEP "all"; kf = x SUBSEP "auroc_f" SUBSEP "all"
			if (x != "ref") printf "%d \"%s\" %s %s %s %s %s %s %s %s %s\n", i, x, mm(km), lo(km), hi(km), mm(kb), lo(kb), hi(kb), mm(kf), lo(kf), hi(kf) > (dir "/auroc." t ".dat")
			i++ }
		nl = split(learned, Lr, " ")
		for (l = 1; l <= nl; l++) { f = dir "/f." t "." Lr[l] ".dat"; printf "" > f
			for (g in R) { kf = Lr[l] SUBSEP "f" SUBSEP g; kb = Lr[l] SUBSEP "beta" SUBSEP g
				printf "%s %s %s %s %s %s %s %s\n", R[g], mm(kf), lo(kf), hi(kf), mm(kb), lo(kb), hi(kb), g | ("sort -g > " f) }
			close("sort -g > " f) } }' "$SW/stats.tsv"
done

# ---- figures ----
sh "$D/study-plots.sh" "$P" "$SETTINGS" "$LEARNED" "$n"

# ---- Markdown ----
{
	echo "# lbdpo study: does a learned β help?"
	echo
	echo "pipelines/study.mk over $n seeds ($SEEDS); every arm of a seed has the same data, reference,"
	echo "steps and seed. Intervals: 95% confidence intervals over seeds (Student t, n − 1 df); paired"
	echo "differences are taken per seed, then averaged. \"DPO (β picked on val)\" is, per seed, the DPO run"
	echo "of the sweep with the best validation preference accuracy (validation labels carry the training"
	echo "noise; the test split is never used to choose). cDPO and rDPO use the true flip rate of the seed's"
	echo "training labels; cDPO, rDPO, Dr.DPO and β-DPO use the picked β."
	report md
	echo
	for f in acc_kl f_noise auroc; do
		[ -s "$P/$f.png" ] && echo "![$f](plots/$f.png)"
	done
	echo
	echo "Data: stats.tsv (setting, arm, metric, group, n, mean, sd, ci95, per-seed values), report.json, */s*/rows.tsv."
} >"$SW/report.md.tmp"
mv "$SW/report.md.tmp" "$SW/report.md"
cat "$SW/report.txt"
echo
echo "report: $SW/report.md, $SW/report.json, plots in $P"

#!/usr/bin/awk -f
# auroc.awk — area under the ROC curve per group, exact with ties.
#
# Input: lines "GROUP SCORE LABEL" (LABEL 1 = positive, 0 = negative),
# SORTED BY SCORE ascending (sort -g -k2,2). Output: one line per group and
# one for "all" (every line), in first-seen order, "GROUP AUROC NPOS NNEG":
#   AUROC = P(score of a positive > score of a negative) + ½ P(equal),
# the Mann–Whitney U over n_pos·n_neg; "nan" when a class is empty.
# Equal scores are one run: each positive of the run counts every negative
# below it once and every negative of the run one half.
# Usage: sort -g -k2,2 FILE | awk -f auroc.awk
function flush(   g) {
	for (g in rp) { U[g] += rp[g] * below[g] + 0.5 * rp[g] * rn[g]; below[g] += rn[g] }
	for (g in rp) delete rp[g]
	for (g in rn) delete rn[g]
}
function add(g, y) {
	if (!(g in P)) { order[++ng] = g; P[g] = 0; N[g] = 0 }
	if (y) { rp[g]++; P[g]++ } else { rn[g]++; N[g]++ }
	if (!(g in rp)) rp[g] = 0
	if (!(g in rn)) rn[g] = 0
}
NF < 3 || ($3 != 0 && $3 != 1) { printf "auroc.awk: error: line %d: want GROUP SCORE LABEL(0|1): %s\n", NR, $0 > "/dev/stderr"; bad = 2; exit 2 }
{
	s = $2 + 0
	if (NR > 1 && s < last) { printf "auroc.awk: error: line %d: input not sorted by score\n", NR > "/dev/stderr"; bad = 2; exit 2 }
	if (NR > 1 && s != last) flush()
	last = s
	add("all", $3 + 0)
	if ($1 != "all") add($1, $3 + 0)
}
END {
	if (bad) exit bad
	flush()
	for (i = 1; i <= ng; i++) {
		g = order[i]
		if (g == "all") continue
		printf "%s %s %d %d\n", g, P[g] && N[g] ? sprintf("%.9g", U[g] / (P[g] * N[g])) : "nan", P[g], N[g]
	}
	if ("all" in P) printf "all %s %d %d\n", P["all"] && N["all"] ? sprintf("%.9g", U["all"] / (P["all"] * N["all"])) : "nan", P["all"], N["all"]
}

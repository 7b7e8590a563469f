# seed-stats.awk — mean and 95% CI over seeds of the rows "seed<TAB>arm<TAB>
# round<TAB>metric<TAB>value" (online-report.sh's and ppo-report.sh's rows.tsv):
# one line "arm<TAB>round<TAB>metric<TAB>n<TAB>mean<TAB>ci95<TAB>values" per
# (arm, round, metric) in first-seen order; ci95 = t(n-1 df)·sd/√n, "nan" for
# one seed; "nan" values are left out. Usage: awk -F '\t' -f seed-stats.awk rows.tsv
BEGIN { split("12.706 4.303 3.182 2.776 2.571 2.447 2.365 2.306 2.262 2.228", T, " ") }
$5 != "nan" { k = $2 "\t" $3 "\t" $4; if (!(k in n)) order[++m] = k; n[k]++; s[k] += $5; ss[k] += $5 * $5; v[k] = v[k] (n[k] > 1 ? "," : "") $5 }
END { for (i = 1; i <= m; i++) { k = order[i]; mu = s[k] / n[k]; ci = "nan"
	if (n[k] > 1) { var = (ss[k] - n[k] * mu * mu) / (n[k] - 1); if (var < 0) var = 0
		ci = (n[k] - 1 <= 10 ? T[n[k] - 1] : 1.96) * sqrt(var / n[k]) }
	printf "%s\t%d\t%.6g\t%s\t%s\n", k, n[k], mu, ci, v[k] } }

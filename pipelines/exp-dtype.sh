#!/bin/sh
# exp-dtype.sh — pipelines/experiment.mk's arms in two dtypes side by side
# (`make experiment DTYPE=bf16` then `make -f pipelines/experiment.mk
# DTYPE=bf16 compare`): per arm, metric and group, each run's mean ± 95%
# interval over its seeds (exp-report.sh's stats.tsv), whether the other
# dtype's mean lies in this one's interval, and the paired difference
# (other − fp32, per seed on the same data, reference seed and order) with
# its interval. Writes Markdown on stdout; a last line counts the misses.
#
# "In" means |mean_b − mean_a| ≤ ci95_a + 0.0005 (the interval closed, at the
# table's three decimals: a zero-width interval, every seed equal, takes the
# same value as printed; a mean on a saturated metric, 1.000 on every seed of
# one dtype, misses unless the other's is 1.000 too: the paired column then
# says more).
# Usage: sh exp-dtype.sh EW_FP32 EW_OTHER DTYPE "ARM..."
set -eu
A=$1 B=$2 DT=$3 ARMS=$4
for f in "$A/stats.tsv" "$B/stats.tsv" "$A/rows.all.tsv" "$B/rows.all.tsv"; do
	[ -s "$f" ] || { echo "exp-dtype.sh: $f: missing (run make experiment with both dtypes first)" >&2; exit 1; }
done
awk -F '\t' -v dt="$DT" -v arms="$ARMS" -v ea="$A" -v eb="$B" '
BEGIN { split("12.706 4.303 3.182 2.776 2.571 2.447 2.365 2.306 2.262 2.228", T, " ")
	na = split("ref " arms, AR, " "); for (i = 1; i <= na; i++) want[AR[i]] = i }
function fmt(m, c) { return c == "nan" ? sprintf("%.3f", m) : sprintf("%.3f ± %.3f", m, c) }
function inside(m, mo, c) { if (c == "nan") return "-"; return (mo - m <= c + 5e-4 && m - mo <= c + 5e-4) ? "yes" : "**no**" }
# stats.tsv of each run: arm metric group n mean sd ci95 values (arms only, no "A - B" rows)
FILENAME ~ /stats.tsv$/ { if (!($1 in want) || $3 == "math-open") next
	r = FILENAME == ea "/stats.tsv" ? "a" : "b"; k = $1 SUBSEP $2 SUBSEP $3
	M[r, k] = $5; C[r, k] = $7; N[r, k] = $4; if (!(k in seen)) { seen[k] = 1; key[++nk] = k } }
# per-seed rows: seed arm metric group value; the paired difference
FILENAME ~ /rows.all.tsv$/ { r = FILENAME == ea "/rows.all.tsv" ? "a" : "b"; if ($5 == "nan") next
	V[r, $2 SUBSEP $3 SUBSEP $4, $1] = $5; S[$1] = 1 }
END {
	printf "fp32 (%s) and %s (%s): mean ± 95%% CI over seeds (t, n−1 df); paired = %s − fp32 per seed\n\n", ea, dt, eb, dt
	printf "| arm | metric | group | fp32 | %s | %s mean in fp32 CI | fp32 mean in %s CI | paired %s − fp32 |\n", dt, dt, dt, dt
	printf "|---|---|---|---|---|---|---|---|\n"
	for (i = 1; i <= na; i++) for (j = 1; j <= nk; j++) { k = key[j]; split(k, q, SUBSEP); if (q[1] != AR[i]) continue
		if (!(("a", k) in M) || !(("b", k) in M)) continue
		ma = M["a", k]; mb = M["b", k]; ca = C["a", k]; cb = C["b", k]
		ia = inside(ma, mb, ca); ib = inside(mb, ma, cb); nmiss += (ia == "**no**") + (ib == "**no**"); ntest += (ia != "-") + (ib != "-")
		n = 0; s = 0; ss = 0; for (sd in S) if ((("a", k, sd) in V) && (("b", k, sd) in V)) { d[++n] = V["b", k, sd] - V["a", k, sd]; s += d[n] }
		pd = "-"; if (n > 1) { m = s / n; for (x = 1; x <= n; x++) ss += (d[x] - m) ^ 2; pd = fmt(m, (n - 1 <= 10 ? T[n - 1] : 1.96) * sqrt(ss / (n - 1)) / sqrt(n)) }
		printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", q[1], q[2], q[3], fmt(ma, ca), fmt(mb, cb), ia, ib, pd }
	printf "\n%d of %d mean-in-interval checks miss\n", nmiss, ntest }' "$A/stats.tsv" "$B/stats.tsv" "$A/rows.all.tsv" "$B/rows.all.tsv"

#!/usr/bin/env bash
# `make study QUICK=1` (pipelines/study.mk: 2 seeds, tiny runs): it finishes;
# the report covers every arm, metric and setting; values are in range; the
# intervals and paired differences are those of the per-seed rows; β is
# picked on the validation split; cDPO and rDPO ran at the data's true flip
# rate; report.json, report.md and the figures are written.
. "$(dirname "$0")/lib.sh"
# greedy answers scored by the known rule, on answers as lbdpo-sample writes
# them from token records (prompt and text, no completions): math by a+b of
# the prompt, the others by the tone rule
C="$ROOT/pipelines/study-collect.sh"
printf '%s\n' '{"group":"math","prompt":"Q: 14+7=? A:","text":" 21"}' '{"group":"math","prompt":"Q: 14+7=? A:","text":" 7"}' \
	'{"group":"open","prompt":"Q: Criticize the apple. A:","text":" The apple is harsh."}' \
	'{"group":"open","prompt":"Q: Praise the apple. A:","text":" The apple is harsh."}' \
	'{"group":"noise10","prompt":"Q (source b): What do you like about the moon? A:","text":" The moon is calm."}' >"$T/ans"
sh "$C" greedy "$T/ans" | sort >"$T/g"
printf '%s\n' "all 0.6" "math 0.5" "noise10 1" "open 0.5" | diff - "$T/g" || fail "greedy answers scored wrong"
E="$T/s"
make --no-print-directory -f "$ROOT/pipelines/study.mk" LBDPO_BIN="$LBDPO_BIN" SW="$E" QUICK=1 -j2 \
	>"$T/log" 2>&1 || { tail -30 "$T/log"; fail "make study QUICK=1 failed"; }
sed -n '/^lbdpo study/,/^\[noise\] Paired/p' "$T/log"
for f in report.md report.json report.txt stats.tsv plots/plots.gp plots/acc_kl.noise.dat plots/auroc.mixed.dat \
	plots/f.noise.lbdpo.dat; do
	[ -s "$E/$f" ] || fail "$f missing"
done
S="$E/stats.tsv"
# every arm, both settings: held-out accuracy, greedy answers and KL over 2 seeds
for t in noise mixed; do
	for a in dpo dpo-b0.1 dpo-b1 cdpo rdpo drdpo betadpo ipo lbdpo lbdpo-pool; do
		for m in pref_acc greedy_ok kl val_acc auroc_margin; do
			awk -F '\t' -v t="$t" -v a="$a" -v m="$m" '$1 == t && $2 == a && $3 == m && $4 == "all" && $5 == 2 { f = 1 } END { exit !f }' \
				"$S" || fail "$t $a: $m over 2 seeds missing"
		done
	done
	for a in lbdpo lbdpo-pool; do
		for m in beta f auroc_beta auroc_f; do
			awk -F '\t' -v t="$t" -v a="$a" -v m="$m" '$1 == t && $2 == a && $3 == m && $4 == "all" && $5 == 2 { f = 1 } END { exit !f }' \
				"$S" || fail "$t $a: $m missing"
		done
	done
done
# groups: the noise levels and the demo's two
for g in noise0 noise10 noise20 noise40; do grep -q "^noise	lbdpo	f	$g	2	" "$S" || fail "noise: f of $g"; done
for g in math open; do grep -q "^mixed	dpo	pref_acc	$g	2	" "$S" || fail "mixed: pref_acc of $g"; done
grep -q "^noise	lbdpo	f	slope	2	" "$S" || fail "noise: slope of f over the noise rates"
# ranges: shares and AUROCs in [0, 1]; f within 1 ± ε (0.5 for lbdpo, 0.9 for wide); KL finite
awk -F '\t' '($3 ~ /^(pref_acc|val_acc|greedy_ok|flip_rate)$/ || $3 ~ /^auroc/) && $2 !~ / - / && ($6 < 0 || $6 > 1) { print; bad = 1 }
	$2 == "lbdpo" && $3 == "f" && $4 !~ /slope|gap/ && ($6 < 0.5 || $6 > 1.5) { print; bad = 1 }
	$2 == "lbdpo-pool" && $3 == "f" && $4 !~ /slope|gap/ && ($6 < 0.1 || $6 > 1.9) { print; bad = 1 }
	$3 == "kl" && $6 !~ /^-?[0-9.]+(e[-+]?[0-9]+)?$/ { print; bad = 1 }
	END { exit bad }' "$S" || fail "a value out of range"
# the groups differ in label noise only: true flip rates near the levels, noise0 exactly 0
grep -q "^noise	data	flip_rate	noise0	2	0	" "$S" || fail "noise0 has flipped labels"
for s in 1 2; do
	W="$E/noise/s$s"
	# the picked β is the sweep's best on the validation split, and dpo repeats its rows
	pick=$(cat "$W/beta.pick")
	best=$(for b in 0.1 1; do echo "$b $(sh "$ROOT/pipelines/study-collect.sh" valacc "$W/dpo-b$b.val.jsonl")"; done |
		awk '$2 > m || NR == 1 { m = $2; b = $1 } END { print b }')
	[ "$pick" = "$best" ] || fail "seed $s: picked beta $pick, best on validation $best"
	diff <(awk -F '\t' -v b="dpo-b$pick" '$2 == b { print $3, $4, $5 }' "$W/rows.tsv") \
		<(awk -F '\t' '$2 == "dpo" && $3 != "beta_pick" { print $3, $4, $5 }' "$W/rows.tsv") >/dev/null ||
		fail "seed $s: dpo rows are not those of dpo-b$pick"
	# cDPO and rDPO ran at the true flip rate and the picked β
	rate=$(awk '/"flipped":true/ { f++ } END { printf "%.6f\n", f / NR }' "$W/data/train.jsonl")
	for a in cdpo rdpo; do
		awk -v r="$rate" 'match($0, /"label_smoothing": *[0-9.e-]+/) { v = substr($0, RSTART, RLENGTH); sub(/.*: */, "", v); ok = (v - r)^2 < 1e-12 } END { exit !ok }' \
				"$W/$a/trainer_state.json" || fail "seed $s: $a label smoothing is not the flip rate $rate"
	done
done
# the interval, recomputed from the per-seed rows: t(0.975, 1) = 12.706
v1=$(awk -F '\t' '$2 == "lbdpo" && $3 == "pref_acc" && $4 == "all" { print $5 }' "$E/noise/s1/rows.tsv")
v2=$(awk -F '\t' '$2 == "lbdpo" && $3 == "pref_acc" && $4 == "all" { print $5 }' "$E/noise/s2/rows.tsv")
read -r m ci <<<"$(awk -F '\t' '$1 == "noise" && $2 == "lbdpo" && $3 == "pref_acc" && $4 == "all" { print $6, $8 }' "$S")"
awk -v a="$v1" -v b="$v2" -v m="$m" -v ci="$ci" 'BEGIN { mm = (a + b) / 2; sd = sqrt((a - mm)^2 + (b - mm)^2)
	want = 12.706 * sd / sqrt(2); exit !((mm - m)^2 < 1e-12 && (want - ci)^2 < 1e-10) }' ||
	fail "lbdpo pref_acc: stats $m ± $ci, rows $v1 $v2"
# the paired difference is the mean of the per-seed differences
d=$(awk -F '\t' '$1 == "mixed" && $2 == "lbdpo - dpo" && $3 == "kl" && $4 == "all" { print $6 }' "$S")
want=$(cat "$E/mixed/s1/rows.tsv" "$E/mixed/s2/rows.tsv" |
	awk -F '\t' '$3 == "kl" && $4 == "all" && $2 == "lbdpo" { s += $5 } $3 == "kl" && $4 == "all" && $2 == "dpo" { s -= $5 } END { print s / 2 }')
awk -v a="$d" -v b="$want" 'BEGIN { exit !((a - b)^2 < 1e-12) }' || fail "paired difference $d, want $want"
grep -q '"setting": "noise", "arm": "lbdpo - dpo", "metric": "pref_acc", "group": "all", "n": 2' "$E/report.json" || fail "report.json"
grep -q '^| LB-DPO - DPO (β picked on val) |' "$E/report.md" || fail "report.md differences"
grep -q '^| LB-DPO pool |' "$E/report.md" || fail "report.md: the extra arm"
if command -v gnuplot >/dev/null; then
	for f in acc_kl f_noise auroc; do
		[ "$(head -c 4 "$E/plots/$f.png" | od -An -c | tr -d ' ')" = 211PNG ] || fail "plots/$f.png is not a PNG"
		grep -q "(plots/$f.png)" "$E/report.md" || fail "report.md lacks $f.png"
	done
fi
echo ok

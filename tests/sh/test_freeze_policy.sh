#!/usr/bin/env bash
# The seed's claim (doc/design.md §2.4), made observable with --freeze-policy: on a
# policy trained away from the reference (Δ ≠ 0), β-only training raises β
# on pairs with Δ > 0 relative to pairs with Δ < 0; where the β model can tell
# the pairs apart (here the last prompt token does) its factor f rises on the
# first and falls on the second. When the misranked pairs dominate (large
# initial β), β shrinks everywhere and the loss only approaches log 2.
. "$(dirname "$0")/lib.sh"
cd "$T"
G="$ROOT/tests/sh/gen_pairs.awk"
awk -v seed=1 -v n=64 -f "$G" | lbdpo-show --from-json -o train.ref || fail "gen"
# β data: group "odd" has chosen and rejected swapped, so the trained policy
# misranks it (Δ < 0); the group is the last prompt token.
awk -v seed=4 -v n=64 -v flip=1 -v tagend=1 -f "$G" | lbdpo-show --from-json -o flip.ref || fail "gen flip"
lbdpo-init -q -o m0 --dim 32 --layers 2 --heads 4 --vocab 32 --max-seq 64 --seed 3 || fail "init"
S=(--threads 1 --batch-size 8 --ppl-from policy --ignore-provenance) # the default before ref; synthetic reference scores
lbdpo-step --model m0 --output pol -i train.ref --steps 30 --loss dpo --beta 0.5 --lr 3e-3 "${S[@]}" || fail "dpo"

# per-group means of beta, delta and f (from lbdpo-eval --per-record and lbdpo-beta)
stats() { # CKPT -> "beta_pos beta_neg f_pos f_neg w loss d_pos d_neg"
	lbdpo-eval --threads 1 -m "$1" -i flip.ref --per-record pr.jsonl -o ev.json || fail "eval $1"
	lbdpo-beta --threads 1 -m "$1" -i flip.ref | lbdpo-show --no-header > b.jsonl || fail "beta $1"
	local w l
	w=$(sed -n 's|^ "beta/w": \([^,]*\),*$|\1|p' ev.json) l=$(sed -n 's|^ "loss": \([^,]*\),*$|\1|p' ev.json)
	paste -d' ' <(sed 's/.*"beta":\([^,]*\),.*"delta":\([^,]*\),.*/\1 \2/' pr.jsonl) \
		<(sed 's/.*"beta_f":\([^,]*\),.*/\1/' b.jsonl) |
		awk -v w="$w" -v l="$l" '{ k = $2 > 0; b[k] += $1; f[k] += $3; d[k] += $2; n[k]++ }
			END { printf "%.6g %.6g %.6g %.6g %s %s %.4g %.4g\n", b[1]/n[1], b[0]/n[0], f[1]/n[1], f[0]/n[0], w, l, d[1]/n[1], d[0]/n[0] }'
}

for b0 in 0.01 0.5; do
	F=(-i flip.ref --loss lbdpo --beta $b0 --epsilon 0.5 --freeze-policy "${S[@]}")
	lbdpo-step --model pol --fresh --output before "${F[@]}" --steps 0 || fail "init beta"
	lbdpo-step --model pol --fresh --output after "${F[@]}" --steps 300 --beta-lr 1e-2 --schedule constant || fail "beta-only"
	cmp -s pol/model.safetensors after/model.safetensors || fail "--freeze-policy changed the policy"
	read -r bp0 bn0 fp0 fn0 w0 l0 dp dn <<<"$(stats before)"
	read -r bp1 bn1 fp1 fn1 w1 l1 _ _ <<<"$(stats after)"
	echo "beta0=$b0: mean delta +$dp / $dn; beta(Δ>0) $bp0 -> $bp1, beta(Δ<0) $bn0 -> $bn1;" \
		"f(Δ>0) $fp0 -> $fp1, f(Δ<0) $fn0 -> $fn1; w $w0 -> $w1; loss $l0 -> $l1 (log 2 = 0.6931)"
	awk -v a="$l0" -v b="$l1" 'BEGIN { exit !(b < a) }' || fail "beta-only training did not lower the loss"
	if [ $b0 = 0.01 ]; then
		# the β model separates the pairs: relative growth larger where Δ > 0, f up there, down where Δ < 0
		awk -v p0="$bp0" -v p1="$bp1" -v n0="$bn0" -v n1="$bn1" 'BEGIN { exit !(p1 / p0 > 1.3 * n1 / n0) }' ||
			fail "beta did not grow relatively more on Δ > 0"
		awk -v p="$fp1" -v n="$fn1" 'BEGIN { exit !(p > 1.1 && n < 0.9) }' || fail "f did not rise on Δ > 0 and fall on Δ < 0"
	else
		# misranked pairs dominate: β shrinks on both, the loss stays above log 2
		awk -v p0="$bp0" -v p1="$bp1" -v n0="$bn0" -v n1="$bn1" -v w0="$w0" -v w1="$w1" \
			'BEGIN { exit !(p1 < p0 && n1 < n0 && w1 < w0) }' || fail "expected beta and w to shrink"
		awk -v l="$l1" 'BEGIN { exit !(l > 0.6931) }' || fail "loss below log 2 with beta shrinking"
	fi
	rm -rf before after
done
echo ok

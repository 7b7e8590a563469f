#!/usr/bin/env bash
# Every --loss runs a few steps and lowers its own training loss; the
# regularizers, MLP head, mean pooling, PPL from the reference, --beta-grad
# modes and --sft-weight run; lbdpo-eval reports per group, generation
# statistics, and plots (gnuplot optional).
. "$(dirname "$0")/lib.sh"
cd "$T"
G="$ROOT/tests/sh/gen_pairs.awk"
awk -v seed=1 -v n=64 -f "$G" | lbdpo-show --from-json -o train.ref || fail "gen"
lbdpo-init -q -o m0 --dim 32 --layers 2 --heads 4 --vocab 32 --max-seq 64 --seed 3 || fail "init"
S=(-i train.ref --threads 1 --batch-size 16 --lr 3e-3 --steps 12 --beta 0.5 --ppl-from policy --ignore-provenance) # the default before ref; synthetic reference scores
first_last() { sed -n 's/.*"loss": \([^,]*\),.*/\1/p' "$1" | sed -n '1p;$p' | tr '\n' ' '; }
for loss in dpo lbdpo ipo hinge robust simpo ln-dpo beta-dpo sft exo_pair nca_pair bco_pair sppo_hard aot \
	aot_unpaired apo_zero apo_down discopop cdpo drdpo dpo,bco_pair,sft nca_pair,discopop bco_pair,apo_zero+; do
	extra=()
	case $loss in
	ipo) extra=(--beta 0.1) ;;
	robust | aot_unpaired | cdpo) extra=(--label-smoothing 0.1) ;;
	drdpo) extra=(--drdpo-beta-prime 0.5) ;;
	simpo) extra=(--gamma 0.5 --beta 2) ;;
	exo_pair) extra=(--label-smoothing 1e-3) ;;
	dpo,bco_pair,sft) extra=(--loss-weights "0.8,0.2,1") ;; # MPO
	nca_pair,discopop) extra=(--loss-weights "1,0.5" --discopop-tau 0.1) ;;
	bco_pair,apo_zero+) loss=${loss%+} extra=(--learned-beta --loss-weights "1,2") ;;
	esac
	lbdpo-step --model m0 --output c_$loss --loss $loss "${S[@]}" "${extra[@]}" --metrics m.$loss || fail "--loss $loss"
	read -r a b <<<"$(first_last m.$loss)"
	echo "$loss: loss $a -> $b"
	# beta-dpo filters a random subset each step: compare over a margin
	awk -v a="$a" -v b="$b" 'BEGIN { exit !(b < a) }' || fail "$loss: loss did not fall ($a -> $b)"
done
for v in "--head mlp --head-hidden 8" "--pool mean" "--ppl-from ref" "--beta-grad head" "--beta-grad none" \
	"--range-reg 1 --beta-min 0.2 --beta-max 0.6 --group-reg 1 --entropy-reg 0.1 --entropy-alpha 0.1" \
	"--sft-weight 0.5" "--grad-accum 2 --warmup 3 --schedule cosine --weight-decay 0.1 --beta-wd 0.01 --clip 0.5" \
	"--w-init 0.02 --epsilon 0.3"; do
	# shellcheck disable=SC2086
	lbdpo-step --model m0 --output cv "${S[@]}" $v --metrics mv || fail "lbdpo-step $v"
	read -r a b <<<"$(first_last mv)"
	echo "lbdpo $v: loss $a -> $b"
	rm -rf cv mv
done
# --beta-grad none: the β model is not trained
lbdpo-step --model m0 --output cn "${S[@]}" --beta-grad none || fail "none"
lbdpo-step --model m0 --output cn0 "${S[@]}" --steps 0 || fail "steps 0"
cmp -s cn/beta_head.safetensors cn0/beta_head.safetensors || fail "--beta-grad none changed the beta model"

# eval reports the checkpoint's loss list, or the --loss list it is given
lbdpo-eval --threads 1 -m c_dpo,bco_pair,sft -i train.ref -o evl.json || fail "lbdpo-eval of a list"
grep -q '"loss_kind": "dpo,bco_pair,sft"' evl.json || fail "eval: no list"
grep -q '"loss_weights"' evl.json || fail "eval: no list weights"
lbdpo-eval --threads 1 -m c_dpo -i train.ref --loss sppo_hard,apo_down --loss-weights 2,1 -o evl2.json ||
	fail "lbdpo-eval --loss list"
grep -q '"loss_kind": "sppo_hard,apo_down"' evl2.json || fail "eval: --loss list not reported"
lbdpo-eval --threads 1 -m c_bco_pair,apo_zero -i train.ref -o evl3.json || fail "lbdpo-eval of a learned-beta list"
grep -q '"beta/w"' evl3.json || fail "eval: the checkpoint's --learned-beta is not used"
msg=$(expect_fail lbdpo-eval --threads 1 -m c_dpo -i train.ref --loss dpo,sft --loss-weights 1,2,3 -o x.json)
echo "$msg" | grep -qF '3 weights for 2 losses' || fail "eval: $msg"

# eval: per group, generations, plots
printf '%s\n' '{"completion": "a b a b"}' '{"text": "c d e"}' > gens.jsonl
lbdpo-eval --threads 1 -m c_lbdpo -i train.ref --generations gens.jsonl --plot plots --metrics m.lbdpo -o ev.json ||
	fail "lbdpo-eval"
for k in '"groups"' '"even"' '"odd"' '"corr/beta_ppl"' '"kl/chosen"' '"distinct-1": 0.7142857' '"distinct-2": 0.8' \
	'"mean_words": 3.5'; do
	grep -q "$k" ev.json || fail "eval summary lacks $k"
done
[ -s plots/beta.dat ] && [ -s plots/plots.gp ] && [ -s plots/curves.dat ] || fail "plot data missing"
if command -v gnuplot >/dev/null; then [ -s plots/beta_hist.png ] || fail "gnuplot did not draw"; fi
printf '{"completion": 3}\n' > badgen.jsonl
expect_fail lbdpo-eval --threads 1 -m c_lbdpo -i train.ref --generations badgen.jsonl -o x.json
[ ! -e x.json ] || fail "output written on error"
echo ok

#!/bin/sh
# exp-frozen.sh — one block of the frozen-policy run of pipelines/experiment.mk:
# from lbdpo-eval's PREFIX.eval.json and PREFIX.pr.jsonl (--per-record) prints
#   step  mean β on pairs with Δ > 0  mean β on Δ < 0  w  n(Δ > 0)  n(Δ < 0)  loss
# Usage: sh exp-frozen.sh PREFIX STEP
set -eu
P=$1 S=$2
w=$(sed -n 's|^ "beta/w": \([^,]*\),*$|\1|p' "$P.eval.json")
l=$(sed -n 's|^ "loss": \([^,]*\),*$|\1|p' "$P.eval.json")
awk -v s="$S" -v w="$w" -v l="$l" '
function num(k,   v) { if (!match($0, "\"" k "\":-?[0-9.eE+-]+")) return "nan"; v = substr($0, RSTART + length(k) + 3, RLENGTH - length(k) - 3); return v + 0 }
{ d = num("delta"); b = num("beta"); if (d > 0) { bp += b; np++ } else if (d < 0) { bn += b; nn++ } }
END { printf "%s %.9g %.9g %s %d %d %s\n", s, np ? bp / np : "nan", nn ? bn / nn : "nan", w, np, nn, l }' "$P.pr.jsonl"

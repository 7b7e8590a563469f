# demo-metrics.sh — the demo's held-out measures, shared by demo-table.sh and
# exp-collect.sh (source it; sh + awk). Each reads one file:
#   prefacc SCORES.jsonl   "<overall> <math> <open>" share with log p(chosen) > log p(rejected)
#   ansacc ANSWERS.jsonl   "<acc> <n>": greedy arithmetic answers whose leading number is right
#   toneacc ANSWERS.jsonl  share of open-ended answers following the tone rule
#   meanf BETA.jsonl       "<overall> <math> <open>" mean learned factor f of LB-DPO's β
# pref acc: "<overall> <math> <open>"
prefacc() {
	awk '
	function num(k,   s) { if (!match($0, "\"" k "\":-?[0-9.eE+-]+")) return "nan"; s = substr($0, RSTART + length(k) + 3, RLENGTH - length(k) - 3); return s + 0 }
	/"chosen_logp"/ {
		g = "other"; if (match($0, /"group":"[^"]*"/)) g = substr($0, RSTART + 9, RLENGTH - 10)
		ok = (num("chosen_logp") > num("rejected_logp"))
		n[g]++; a[g] += ok; N++; A += ok
	}
	END { printf "%s %s %s\n", N ? A / N : "nan", n["math"] ? a["math"] / n["math"] : "nan", n["open"] ? a["open"] / n["open"] : "nan" }' "$1"
}
# The rule of both is pipelines/demo-judge.awk's (the oracle the online
# pipeline trains with): its "reward" per answer, averaged per group.
DEMO_JUDGE="$D/demo-judge.awk" # D: this directory, as the scripts that source this one set it
# answer accuracy on arithmetic: "<acc> <n>"
ansacc() {
	awk -f "$DEMO_JUDGE" "$1" | awk '/"group":"math"/ { n++; ok += /"reward":1}$/ }
	END { printf "%s %d\n", n ? ok / n : "nan", n }'
}
# open-ended answers that follow the tone rule
toneacc() {
	awk -f "$DEMO_JUDGE" "$1" | awk '/"group":"open"/ { n++; a += /"reward":1}$/ }
	END { printf "%s\n", n ? a / n : "nan" }'
}
# mean beta_f per group: "<overall> <math> <open>"
meanf() {
	awk '
	function num(k,   s) { if (!match($0, "\"" k "\":-?[0-9.eE+-]+")) return "nan"; s = substr($0, RSTART + length(k) + 3, RLENGTH - length(k) - 3); return s + 0 }
	/"beta_f"/ { g = "other"; if (match($0, /"group":"[^"]*"/)) g = substr($0, RSTART + 9, RLENGTH - 10)
		f = num("beta_f"); n[g]++; s[g] += f; N++; S += f }
	END { printf "%s %s %s\n", N ? S / N : "nan", n["math"] ? s["math"] / n["math"] : "nan", n["open"] ? s["open"] / n["open"] : "nan" }' "$1"
}

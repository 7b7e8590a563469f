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
# answer accuracy on arithmetic
ansacc() {
	awk '
	function str(k,   s) { if (!match($0, "\"" k "\":\"[^\"]*\"")) return ""; return substr($0, RSTART + length(k) + 4, RLENGTH - length(k) - 5) }
	/"group":"math"/ { want = str("chosen"); got = str("text"); sub(/^ +/, "", want); sub(/^ +/, "", got)
	  if (match(got, /^[0-9]+/)) got = substr(got, 1, RLENGTH); else got = "x"
	  n++; ok += (got == want) }
	END { printf "%s %d\n", n ? ok / n : "nan", n }' "$1"
}
# open-ended answers that follow the tone rule (adjective lists as in lbdpo-gendata)
toneacc() {
	awk '
	BEGIN { split("calm bright warm clean soft sweet lovely gentle", k); split("cold dark loud dirty harsh ugly broken dull", h)
		for (i in k) kind[k[i]] = 1; for (i in h) harsh[h[i]] = 1 }
	function str(k,   s) { if (!match($0, "\"" k "\":\"[^\"]*\"")) return ""; return substr($0, RSTART + length(k) + 4, RLENGTH - length(k) - 5) }
	/"group":"open"/ { p = str("prompt"); t = str("text"); noun = p; sub(/.* the /, "", noun); sub(/[.?].*/, "", noun)
	  bad = (p ~ /Criticize|something bad|dislike/); ok = 0
	  if (match(t, /^ The [a-z]+ is [a-z]+\.$/)) { split(substr(t, 6, length(t) - 6), w, " ")
		ok = (w[1] == noun && (bad ? harsh[w[3]] : kind[w[3]])) }
	  n++; a += ok }
	END { printf "%s\n", n ? a / n : "nan" }' "$1"
}
# mean beta_f per group: "<overall> <math> <open>"
meanf() {
	awk '
	function num(k,   s) { if (!match($0, "\"" k "\":-?[0-9.eE+-]+")) return "nan"; s = substr($0, RSTART + length(k) + 3, RLENGTH - length(k) - 3); return s + 0 }
	/"beta_f"/ { g = "other"; if (match($0, /"group":"[^"]*"/)) g = substr($0, RSTART + 9, RLENGTH - 10)
		f = num("beta_f"); n[g]++; s[g] += f; N++; S += f }
	END { printf "%s %s %s\n", N ? S / N : "nan", n["math"] ? s["math"] / n["math"] : "nan", n["open"] ? s["open"] / n["open"] : "nan" }' "$1"
}

#!/usr/bin/awk -f
# demo-judge.awk — the demo's known oracle as a reward: a rule-based judge
# that plugs in where a reward model does (lbdpo-reward adds the same
# "reward" field), so lbdpo-pairs and the online pipeline can run with it.
#
# Input: lbdpo-sample's JSON Lines on the demo's prompts (fields prompt, text).
# Output: each line with "reward" appended: 1 if the answer follows the
# demo's rule (pipelines/demo-metrics.sh measures the same), else 0:
#   math  "Q: a+b=? A:"  the answer's leading number (after spaces) is a+b
#   open  the answer is exactly " The <the prompt's noun> is <adjective>."
#         with an adjective of the asked tone (kind when asked to praise or
#         say something nice, harsh when asked to criticize, say something
#         bad or dislike; the lists of lbdpo-gendata)
# A prompt of neither form is an error naming the file and line.
# Usage: awk -f demo-judge.awk samples.jsonl > scored.jsonl
# Plain POSIX awk (mawk, gawk, busybox).
BEGIN {
	split("calm bright warm clean soft sweet lovely gentle", k); split("cold dark loud dirty harsh ugly broken dull", h)
	for (i in k) kind[k[i]] = 1; for (i in h) harsh[h[i]] = 1
}
function str(key) { if (!match($0, "\"" key "\":\"[^\"]*\"")) return "\001"; return substr($0, RSTART + length(key) + 4, RLENGTH - length(key) - 5) }
{
	p = str("prompt"); t = str("text")
	if (p == "\001" || t == "\001") { printf "demo-judge.awk: error: %s: line %d: need string fields prompt and text\n", FILENAME, FNR > "/dev/stderr"; bad = 1; exit 1 }
	if (match(p, /^Q: [0-9]+\+[0-9]+=\? A:$/)) {
		split(substr(p, 4, length(p) - 8), ab, "+")
		got = t; sub(/^ +/, "", got)
		if (match(got, /^[0-9]+/)) got = substr(got, 1, RLENGTH); else got = "x"
		r = (got == ab[1] + ab[2]) ? 1 : 0
	} else if (match(p, / the [a-z]+[.?] A:$/)) {
		noun = p; sub(/.* the /, "", noun); sub(/[.?].*/, "", noun)
		neg = (p ~ /Criticize|something bad|dislike/); r = 0
		if (match(t, /^ The [a-z]+ is [a-z]+\.$/)) { split(substr(t, 6, length(t) - 6), w, " ")
			r = (w[1] == noun && (neg ? harsh[w[3]] : kind[w[3]])) ? 1 : 0 }
	} else { printf "demo-judge.awk: error: %s: line %d: not a demo prompt (arithmetic or open-ended)\n", FILENAME, FNR > "/dev/stderr"; bad = 1; exit 1 }
	line = $0; sub(/}[ \t\r]*$/, "", line)
	print line ",\"reward\":" r "}"
}
END { if (bad) exit bad }

#!/usr/bin/awk -f
# judge.awk — the stories pipeline's judge: a fixed, documented rule that
# prefers one continuation of a prompt over another. No model involved.
#
# score(c) = distinct(c) + 0.5 * topic(c) - (words(c) < 3 ? 1 : 0)
#   distinct(c): distinct words / words in c (1 - repetition; loops score low)
#   topic(c):    share of the prompt's content words (4+ letters, not in a
#                short stop list) that occur in c (stays on topic)
#   words:       lowercase runs of letters
# The higher score wins; equal scores (within 1e-9): the shorter (fewer
# words) wins; equal length too: a tie.
#
# Usage (input: lbdpo-sample JSON Lines, fields id, prompt, text):
#   awk -v mode=pairs -f judge.awk samples.jsonl > pairs.jsonl
#       two samples per id (--n 2) -> {"id","prompt","chosen","rejected"};
#       ties are left out.
#   awk -v mode=compare -f judge.awk trained.jsonl reference.jsonl
#       one sample per id in each file -> one JSON line
#       {"n","wins","losses","ties","win_rate"} of the first file over the
#       second; win_rate = (wins + ties/2) / n.
#   awk -v mode=reward -f judge.awk samples.jsonl > scored.jsonl
#       every line with "reward": score(text) appended, the field
#       lbdpo-reward adds: lbdpo-pairs makes pairs of any number of samples
#       per prompt from it, as from a reward model's scores.
# Plain POSIX awk (mawk, gawk, busybox).

# The raw (still JSON-escaped) value of string field key in line s; "\001" if absent.
function jraw(s, key,   i, j, c, out) {
	i = index(s, "\"" key "\":\"")
	if (!i) return "\001"
	i += length(key) + 4
	out = ""
	for (j = i; j <= length(s); j++) {
		c = substr(s, j, 1)
		if (c == "\\") { out = out c substr(s, j + 1, 1); j++; continue }
		if (c == "\"") return out
		out = out c
	}
	return "\001"
}
function unesc(s) { gsub(/\\n/, " ", s); gsub(/\\t/, " ", s); gsub(/\\"/, "\"", s); gsub(/\\\\/, "\\", s); return s }
function words(s, w,   n, t, i) {
	s = tolower(unesc(s)); gsub(/[^a-z]+/, " ", s)
	n = split(s, t, " ")
	for (i = 1; i <= n; i++) w[i] = t[i]
	return n
}
function score(prompt, text,   pw, tw, np, nt, seen, nd, k, nc, hit, inc) {
	nt = words(text, tw)
	if (nt == 0) return -1
	nd = 0
	for (k = 1; k <= nt; k++) { if (!(tw[k] in seen)) { seen[tw[k]] = 1; nd++ } }
	np = words(prompt, pw)
	nc = 0; hit = 0
	for (k = 1; k <= np; k++) {
		if (length(pw[k]) < 4 || (pw[k] in STOP) || (pw[k] in inc)) continue
		inc[pw[k]] = 1; nc++
		if (pw[k] in seen) hit++
	}
	return nd / nt + 0.5 * (nc ? hit / nc : 0) - (nt < 3 ? 1 : 0)
}
function nwords(s,   w) { return words(s, w) }
# 1: a better, -1: b better, 0: tie
function cmp(prompt, a, b,   sa, sb, la, lb) {
	sa = score(prompt, a); sb = score(prompt, b)
	if (sa > sb + 1e-9) return 1
	if (sb > sa + 1e-9) return -1
	la = nwords(a); lb = nwords(b)
	return la < lb ? 1 : (lb < la ? -1 : 0)
}
BEGIN {
	split("once upon time there were with that this they them their have from into what when then very", sw, " ")
	for (k in sw) STOP[sw[k]] = 1
	if (mode != "pairs" && mode != "compare" && mode != "reward") { print "judge.awk: error: set -v mode=pairs, compare or reward" > "/dev/stderr"; bad = 1; exit 2 }
}
{
	id = jraw($0, "id"); p = jraw($0, "prompt"); t = jraw($0, "text")
	if (id == "\001" || p == "\001" || t == "\001") { printf "judge.awk: error: %s: line %d: need string fields id, prompt, text\n", FILENAME, FNR > "/dev/stderr"; bad = 1; exit 1 }
	if (mode == "reward") {
		line = $0; sub(/}[ \t\r]*$/, "", line)
		printf "%s,\"reward\":%.9g}\n", line, score(p, t)
	} else if (mode == "pairs") {
		if (id in first) {
			c = cmp(p, first[id], t)
			if (c > 0) printf "{\"id\":\"%s\",\"prompt\":\"%s\",\"chosen\":\"%s\",\"rejected\":\"%s\"}\n", id, p, first[id], t
			else if (c < 0) printf "{\"id\":\"%s\",\"prompt\":\"%s\",\"chosen\":\"%s\",\"rejected\":\"%s\"}\n", id, p, t, first[id]
			else ties++
			delete first[id]
		} else first[id] = t
	} else {
		if (FILENAME != f1 && f1 == "") f1 = FILENAME
		if (FILENAME == f1) { A[id] = t; P[id] = p; order[++na] = id }
		else B[id] = t
	}
}
END {
	if (bad) exit bad
	if (mode == "reward") exit 0
	if (mode == "pairs") { if (ties) printf "judge.awk: %d tied pairs left out\n", ties > "/dev/stderr"; exit 0 }
	w = l = e = n = 0
	for (k = 1; k <= na; k++) {
		id = order[k]
		if (!(id in B)) continue
		n++; c = cmp(P[id], A[id], B[id])
		if (c > 0) w++; else if (c < 0) l++; else e++
	}
	if (n == 0) { print "judge.awk: error: no common ids" > "/dev/stderr"; exit 1 }
	printf "{\"n\":%d,\"wins\":%d,\"losses\":%d,\"ties\":%d,\"win_rate\":%.4f}\n", n, w, l, e, (w + e / 2) / n
}

#!/usr/bin/awk -f
# jsonflat.awk — flatten JSON into "path<TAB>value" lines, one per scalar:
#   {"a": {"b": [1, "x"]}}  ->  a.b.0<TAB>1  and  a.b.1<TAB>x
# Strings are printed with their JSON escapes as they are. Several JSON
# values (e.g. JSON Lines) are flattened one after another, each path
# prefixed with the value's index when -v lines=1. Plain POSIX awk.
function emit(v) { print path() "\t" v }
function path(   k, s) { s = ""; for (k = 1; k <= d; k++) s = s (k > 1 ? "." : "") key[k]; if (lines) s = nv (s != "" ? "." s : ""); return s }
{ buf = buf $0 "\n" }
END {
	n = length(buf); i = 1; d = 0; nv = 0; expectkey = 0
	while (i <= n) {
		c = substr(buf, i, 1)
		if (c ~ /[ \t\r\n,:]/) { if (c == "," && d > 0 && typ[d] == "o") expectkey = 1; if (c == "," && d > 0 && typ[d] == "a") key[d]++; i++; continue }
		if (c == "{") { d++; typ[d] = "o"; key[d] = ""; expectkey = 1; i++; continue }
		if (c == "[") { d++; typ[d] = "a"; key[d] = 0; i++; continue }
		if (c == "}" || c == "]") { d--; i++; if (d == 0) nv++; continue }
		if (c == "\"") {
			j = i + 1; s = ""
			while (j <= n) { ch = substr(buf, j, 1); if (ch == "\\") { s = s ch substr(buf, j + 1, 1); j += 2; continue } if (ch == "\"") break; s = s ch; j++ }
			i = j + 1
			if (d > 0 && typ[d] == "o" && expectkey) { key[d] = s; expectkey = 0 } else { emit(s); if (d == 0) nv++ }
			continue
		}
		j = i; while (j <= n && substr(buf, j, 1) !~ /[ \t\r\n,:\]\}]/) j++
		emit(substr(buf, i, j - i)); if (d == 0) nv++
		i = j
	}
}

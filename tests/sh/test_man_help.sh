#!/usr/bin/env bash
# Every bin/lbdpo-* program has man/NAME.1, and its --help (generated from
# the option table, base/cli.c) and the man page's OPTIONS section agree:
#   options:  the same (long, short) pairs. --help: option lines ("  -x" or
#             "      --name"; wrapped text is indented further), first
#             column (up to two blanks), e.g.
#             "  -o, --output FILE   ..." gives "--output -o". man: the tag
#             line after each .TP, e.g. ".BR \-o \", \" \-\-output" (roff "\-"
#             read as "-", font escapes dropped).
#   mentions: every --name anywhere in OPTIONS (outside Old spellings) is an
#             option --help lists.
#   old spellings: the options named on --help's "Old spellings ..." and
#             "Changed: ..." lines are those named in the man page's
#             .SS "Old spellings" subsection of OPTIONS.
# Every program has -h/--help and -V/--version.
. "$(dirname "$0")/lib.sh"
# words of a line that are options: "--name" or "-x"
toks='function toks(s,   n, w, i) {
	gsub(/\\f[BIRP]/, "", s); gsub(/\\-/, "-", s); gsub(/[^-A-Za-z0-9]/, " ", s)
	n = split(s, w, / +/)
	for (i = 1; i <= n; i++) if (w[i] ~ /^--[A-Za-z0-9][-A-Za-z0-9]*$/ || w[i] ~ /^-[A-Za-z0-9]$/) print w[i]
}
function pair(s,   n, w, i, l, sh) {
	gsub(/\\f[BIRP]/, "", s); gsub(/\\-/, "-", s); gsub(/[^-A-Za-z0-9]/, " ", s)
	n = split(s, w, / +/); l = ""; sh = "-"
	for (i = 1; i <= n; i++) {
		if (l == "" && w[i] ~ /^--[A-Za-z0-9][-A-Za-z0-9]*$/) l = w[i]
		if (sh == "-" && w[i] ~ /^-[A-Za-z0-9]$/) sh = w[i]
	}
	if (l != "") print l, sh
}'
n=0 bad=0
for p in "$LBDPO_BIN"/lbdpo-*; do
	[ -x "$p" ] || continue
	name=${p##*/}
	man="$ROOT/man/$name.1"
	if [ ! -f "$man" ]; then echo "$name: no man page man/$name.1"; bad=1; continue; fi
	help=$("$p" --help 2>&1) || { echo "$name: --help failed"; bad=1; continue; }
	[ "$("$p" -h 2>&1)" = "$help" ] || { echo "$name: -h differs from --help"; bad=1; }
	"$p" -V 2>&1 | grep -q "^$name lbdpo " || { echo "$name: -V does not print the version"; bad=1; }
	printf '%s\n' "$help" | awk "$toks"'
		/^  -[^-]|^      --/ { sub(/^ +/, ""); split($0, a, /  +/); pair(a[1]) }' | sort -u >"$T/help"
	printf '%s\n' "$help" | awk "$toks"' /^(Old spellings|Changed:)/ { toks($0) }' | sort -u >"$T/help_old"
	awk "$toks"'
		/^\.SH/ { on = ($0 ~ /OPTIONS/); old = 0; next }
		on && /^\.SS/ { old = ($0 ~ /Old spellings/); next }
		on && !old && prev ~ /^\.TP/ { pair($0) }
		{ prev = $0 }' "$man" | sort -u >"$T/man"
	awk "$toks"'
		/^\.SH/ { on = ($0 ~ /OPTIONS/); old = 0; next }
		on && /^\.SS/ { old = ($0 ~ /Old spellings/); next }
		on && old { toks($0) }' "$man" | sort -u >"$T/man_old"
	awk "$toks"'
		/^\.SH/ { on = ($0 ~ /OPTIONS/); old = 0; next }
		on && /^\.SS/ { old = ($0 ~ /Old spellings/); next }
		on && !old { toks($0) }' "$man" | grep -- '^--' | sort -u >"$T/man_long"
	[ -s "$T/help" ] || { echo "$name: no options found in --help"; bad=1; }
	while read -r o; do echo "$name: '$o' is in --help but not in man/$name.1 OPTIONS"; bad=1; done < <(comm -23 "$T/help" "$T/man")
	while read -r o; do echo "$name: '$o' is in man/$name.1 OPTIONS but not in --help"; bad=1; done < <(comm -13 "$T/help" "$T/man")
	cut -d' ' -f1 "$T/help" | sort -u >"$T/help_long"
	for o in $(comm -13 "$T/help_long" "$T/man_long"); do echo "$name: man/$name.1 OPTIONS mentions $o, which --help lacks"; bad=1; done
	for o in $(comm -23 "$T/help_old" "$T/man_old"); do echo "$name: $o is on --help's old-spellings lines but not in man/$name.1's Old spellings"; bad=1; done
	for o in $(comm -13 "$T/help_old" "$T/man_old"); do echo "$name: $o is in man/$name.1's Old spellings but not on --help's old-spellings lines"; bad=1; done
	grep -qx -- '--help -h' "$T/help" || { echo "$name: --help lacks -h, --help"; bad=1; }
	grep -qx -- '--version -V' "$T/help" || { echo "$name: --help lacks -V, --version"; bad=1; }
	for s in NAME SYNOPSIS DESCRIPTION OPTIONS 'EXIT STATUS' EXAMPLES 'SEE ALSO'; do
		grep -q "^\.SH \"\{0,1\}$s" "$man" || { echo "$name: man page lacks section $s"; bad=1; }
	done
	n=$((n + 1))
done
[ "$n" -gt 0 ] || fail "no programs in $LBDPO_BIN"
[ -f "$ROOT/man/lbdpo.7" ] || { echo "man/lbdpo.7 missing"; bad=1; }
[ "$bad" = 0 ] || fail "help and man pages disagree"
echo "ok: $n programs"

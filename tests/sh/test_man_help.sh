#!/usr/bin/env bash
# Every bin/lbdpo-* program has man/NAME.1, and the long options its --help
# lists are exactly those its man page's OPTIONS section lists.
#   --help: option lines start with blanks and "-"; the options are taken
#           from the line's first column (up to two blanks), e.g.
#           "  -o, --output FILE   ..." gives --output.
#   man:    "\-\-name" anywhere in the OPTIONS section (roff "\-" read as "-").
. "$(dirname "$0")/lib.sh"
n=0 bad=0
for p in "$LBDPO_BIN"/lbdpo-*; do
	[ -x "$p" ] || continue
	name=${p##*/}
	man="$ROOT/man/$name.1"
	if [ ! -f "$man" ]; then echo "$name: no man page man/$name.1"; bad=1; continue; fi
	help=$("$p" --help 2>&1) || { echo "$name: --help failed"; bad=1; continue; }
	printf '%s\n' "$help" | awk '/^[ \t]+-/ { sub(/^[ \t]+/, ""); split($0, a, /  +|\t/); s = a[1];
		while (match(s, /--[a-zA-Z0-9][a-zA-Z0-9-]*/)) { print substr(s, RSTART, RLENGTH); s = substr(s, RSTART + RLENGTH) } }' |
		sort -u >"$T/help"
	awk '/^\.SH/ { on = ($0 ~ /OPTIONS/); next } on { gsub(/\\-/, "-"); s = $0;
		while (match(s, /--[a-zA-Z0-9][a-zA-Z0-9-]*/)) { print substr(s, RSTART, RLENGTH); s = substr(s, RSTART + RLENGTH) } }' "$man" |
		sort -u >"$T/man"
	[ -s "$T/help" ] || { echo "$name: no long options found in --help"; bad=1; }
	for o in $(comm -23 "$T/help" "$T/man"); do echo "$name: $o is in --help but not in man/$name.1 OPTIONS"; bad=1; done
	for o in $(comm -13 "$T/help" "$T/man"); do echo "$name: $o is in man/$name.1 OPTIONS but not in --help"; bad=1; done
	grep -q -- '--version' "$T/help" || { echo "$name: --help lacks --version"; bad=1; }
	for s in NAME SYNOPSIS DESCRIPTION OPTIONS 'EXIT STATUS' EXAMPLES 'SEE ALSO'; do
		grep -q "^\.SH \"\{0,1\}$s" "$man" || { echo "$name: man page lacks section $s"; bad=1; }
	done
	n=$((n + 1))
done
[ "$n" -gt 0 ] || fail "no programs in $LBDPO_BIN"
[ -f "$ROOT/man/lbdpo.7" ] || { echo "man/lbdpo.7 missing"; bad=1; }
[ "$bad" = 0 ] || fail "help and man pages disagree"
echo "ok: $n programs"

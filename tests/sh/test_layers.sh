#!/usr/bin/env bash
# The layering rule (doc/design.md §7: base <- formats <- libcore <- cmd, one
# include style) holds for the tree, and the checker catches a violation: a
# copy of the tree with formats/ including libcore/ and a relative include
# must fail, naming both lines.
. "$(dirname "$0")/lib.sh"
sh "$ROOT/scripts/check-layers.sh" || fail "scripts/check-layers.sh found violations"
mkdir "$T/r"
cp -r "$ROOT/base" "$ROOT/formats" "$ROOT/libcore" "$ROOT/cmd" "$ROOT/scripts" "$T/r/"
sh "$T/r/scripts/check-layers.sh" >"$T/out" 2>&1 || fail "the copied tree fails: $(cat "$T/out")"
printf '#include "libcore/model.h"\n#include "../base/util.h"\n' >>"$T/r/formats/jsonl.c"
if sh "$T/r/scripts/check-layers.sh" >"$T/out" 2>&1; then fail "a formats/ -> libcore/ include passed"; fi
grep -q 'formats/jsonl.c:[0-9]*: formats/ may not include libcore/model.h' "$T/out" || fail "no layer message: $(cat "$T/out")"
grep -q 'formats/jsonl.c:[0-9]*: "../base/util.h" is not a path from the repository root' "$T/out" ||
	fail "no include-style message: $(cat "$T/out")"
echo "ok: layers hold; a planted violation is caught"

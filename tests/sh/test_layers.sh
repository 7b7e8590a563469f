#!/usr/bin/env bash
# The layering rule (doc/design.md §7: base <- formats <- libcore <- cmd, one
# include style) holds for the tree, and the checker catches a violation: a
# copy of the tree with formats/ including libcore/ and a relative include
# must fail, naming both lines; so must each arrow between libcore's wings
# that the order nn <- dist <- train, objective <- train forbids.
. "$(dirname "$0")/lib.sh"
sh "$ROOT/scripts/check-layers.sh" || fail "scripts/check-layers.sh found violations"
mkdir "$T/r"
cp -r "$ROOT/base" "$ROOT/formats" "$ROOT/libcore" "$ROOT/cmd" "$ROOT/scripts" "$T/r/"
sh "$T/r/scripts/check-layers.sh" >"$T/out" 2>&1 || fail "the copied tree fails: $(cat "$T/out")"
printf '#include "libcore/nn/model.h"\n#include "../base/util.h"\n' >>"$T/r/formats/jsonl.c"
if sh "$T/r/scripts/check-layers.sh" >"$T/out" 2>&1; then fail "a formats/ -> libcore/ include passed"; fi
grep -q 'formats/jsonl.c:[0-9]*: formats/ may not include libcore/nn/model.h' "$T/out" || fail "no layer message: $(cat "$T/out")"
grep -q 'formats/jsonl.c:[0-9]*: "../base/util.h" is not a path from the repository root' "$T/out" ||
	fail "no include-style message: $(cat "$T/out")"
# the wings: nn/ -> train/, objective/ -> nn/, dist/ -> train/ are refused
mkdir "$T/w"
cp -r "$ROOT/base" "$ROOT/formats" "$ROOT/libcore" "$ROOT/cmd" "$ROOT/scripts" "$T/w/"
printf '#include "libcore/train/engine.h"\n' >>"$T/w/libcore/nn/model.c"
printf '#include "libcore/nn/model.h"\n' >>"$T/w/libcore/objective/loss.c"
printf '#include "libcore/train/checkpoint.h"\n' >>"$T/w/libcore/dist/dist.c"
if sh "$T/w/scripts/check-layers.sh" >"$T/out" 2>&1; then fail "arrows between wings passed"; fi
for want in 'libcore/nn/model.c:[0-9]*: libcore/nn/ may not include libcore/train/engine.h' \
	'libcore/objective/loss.c:[0-9]*: libcore/objective/ may not include libcore/nn/model.h' \
	'libcore/dist/dist.c:[0-9]*: libcore/dist/ may not include libcore/train/checkpoint.h'; do
	grep -q "$want" "$T/out" || fail "no wing message '$want': $(cat "$T/out")"
done
[ "$(grep -c 'may not include' "$T/out")" = 3 ] || fail "expected exactly 3 wing violations: $(cat "$T/out")"
echo "ok: layers and wings hold; planted violations are caught"

#!/usr/bin/env bash
# The tree is formatted as .clang-format says (make format applies it): a
# change that is not is caught here, with the files and line counts of what
# clang-format would change. Skips where clang-format is absent (CI installs
# it; a user's machine may not have it).
. "$(dirname "$0")/lib.sh"
command -v clang-format >/dev/null || { echo "skipped: clang-format not found (apt-get install clang-format)"; exit 77; }
make -s -C "$ROOT" format-check >"$T/out" 2>&1 || fail "not formatted (make format fixes it): $(tail -5 "$T/out")"
echo "ok: $(tail -1 "$T/out")"

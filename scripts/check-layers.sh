#!/bin/sh
# check-layers.sh — the layering rule of doc/design.md §7, checked:
#
#     base/  <-  formats/  <-  libcore/  <-  cmd/
#
# a directory includes project headers only from itself and the directories
# to its left (bench/ and tests/ may include any). Inside libcore/, its four
# wings have their own order:
#
#     nn/ (model, kernels, backends)  <-  dist/ (ranks)  <-  train/
#     objective/ (losses, β head)                         <-  train/
#
# nn/ and objective/ know nothing of each other or of training; train/ may
# use every wing; dist/ only nn/ (its gradients live in a backend's memory). And one include style:
# every project header is named from the repository root ("libcore/nn/model.h"),
# never relative ("../formats/x.h" or "model.h"). Prints each violation as
# file:line and exits 1 if there is any.
cd "$(dirname "$0")/.." || exit 2
bad=0
for f in $(git ls-files 'base/*' 'formats/*' 'libcore/*' 'cmd/*' 'bench/*' 'tests/*' 2>/dev/null ||
	find base formats libcore cmd bench tests -type f); do
	case $f in *.c | *.h | *.cu | *.cuh) ;; *) continue ;; esac
	case $f in
	base/*) allowed="base" ;;
	formats/*) allowed="base formats" ;;
	libcore/nn/*) allowed="base formats libcore/nn" ;;
	libcore/objective/*) allowed="base formats libcore/objective" ;;
	libcore/dist/*) allowed="base formats libcore/dist libcore/nn" ;;
	libcore/train/*) allowed="base formats libcore" ;;
	libcore/*) allowed="base formats" ;; # a file outside the wings

	cmd/*) allowed="base formats libcore cmd" ;;
	*) allowed="" ;; # bench/, tests/: anything
	esac
	# the emulator's headers stand in for the CUDA runtime's own (found by -I)
	case $f in tests/gpu/emu/*) continue ;; esac
	out=$(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" | while IFS= read -r line; do
		n=${line%%:*}
		inc=$(printf '%s\n' "$line" | sed 's/^[^"]*"\([^"]*\)".*/\1/')
		if [ ! -f "$inc" ]; then
			echo "$f:$n: \"$inc\" is not a path from the repository root"
			continue
		fi
		[ -z "$allowed" ] && continue
		ok=0
		for a in $allowed; do case $inc in "$a"/*) ok=1 ;; esac; done
		[ $ok = 1 ] && continue
		case $f in
		libcore/*/*) w=${f#libcore/}; w=libcore/${w%%/*}
			echo "$f:$n: $w/ may not include $inc (wings: nn <- dist <- train, objective <- train)" ;;
		*) echo "$f:$n: ${f%%/*}/ may not include $inc (layers: base <- formats <- libcore <- cmd)" ;;
		esac
	done)
	if [ -n "$out" ]; then
		printf '%s\n' "$out"
		bad=1
	fi
done
exit $bad

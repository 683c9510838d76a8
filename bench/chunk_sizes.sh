#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Which chunk sizes should be the default?  For each MIN:AVG:MAX, on the real
# Debian security update (images/build-realistic.sh), as zstd and as
# uncompressed squashfs: the bytes a device running v1 downloads to get v2
# (compressed chunks v1 lacks, plus v2's index), and the index size.
#   bash bench/chunk_sizes.sh [SIZES...]
source "$(dirname "$0")/common.sh"
realistic_images
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(2K:8K:32K 4K:16K:64K 8K:16K:64K 2K:16K:64K 8K:32K:128K 16K:64K:256K)
W=$(mktemp -d /dev/shm/slotsync-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
machine_facts
printf '%-14s %-8s %12s %10s %12s\n' sizes image download index_v2 chunks_v2
for s in "${SIZES[@]}"; do
	for kind in raw zstd; do
		if [ $kind = raw ]; then v1=$IMAGES/debian-v1.raw.sqfs v2=$IMAGES/debian-v2.raw.sqfs
		else v1=$IMAGES/debian-v1.sqfs v2=$IMAGES/debian-v2.sqfs; fi
		rm -rf "$W/store"
		"$GEN" make --no-progress --chunk-size "$s" --store "$W/store" "$v1" "$W/v1.caibx" >/dev/null
		out=$("$GEN" make --no-progress --chunk-size "$s" --store "$W/store" "$v2" "$W/v2.caibx")
		stored=$(sed -n 's/.* \([0-9]*\) bytes stored.*/\1/p' <<<"$out")
		chunks=$(sed -n 's/make: \([0-9]*\) chunks.*/\1/p' <<<"$out")
		idx=$(stat -c %s "$W/v2.caibx")
		printf '%-14s %-8s %12d %10d %12d\n' "$s" $kind $((stored + idx)) "$idx" "$chunks"
	done
done

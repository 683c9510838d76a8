#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Which zstd level for chunk files?  For each level, on the uncompressed
# realistic image v2 (the case where compression matters): store size, the
# download from v1, and make throughput with the store on tmpfs.
#   bash bench/zstd_levels.sh [LEVELS...]
source "$(dirname "$0")/common.sh"
realistic_images
LEVELS=("$@")
[ ${#LEVELS[@]} -gt 0 ] || LEVELS=(1 2 3 5 9 19)
W=$(mktemp -d /dev/shm/slotsync-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
v1=$IMAGES/debian-v1.raw.sqfs v2=$IMAGES/debian-v2.raw.sqfs
size=$(stat -c %s "$v2")
machine_facts
printf '%-6s %12s %12s %10s\n' level store_v2 download make_MB/s
for l in "${LEVELS[@]}"; do
	rm -rf "$W/s"
	t=$(seconds_of "$GEN" make --no-progress --level "$l" --store "$W/s" "$v2" "$W/v2.caibx")
	store=$(du -sb "$W/s" | cut -f1)
	rm -rf "$W/s2"
	"$GEN" make --no-progress --level "$l" --store "$W/s2" "$v1" "$W/v1.caibx" >/dev/null
	dl=$("$GEN" make --no-progress --level "$l" --store "$W/s2" "$v2" "$W/v2.caibx" | sed -n 's/.* \([0-9]*\) bytes stored.*/\1/p')
	printf '%-6s %12d %12d %10.0f\n' "$l" "$store" "$dl" "$(echo "$size / $t / 1000000" | bc -l)"
done

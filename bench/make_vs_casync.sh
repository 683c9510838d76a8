#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# slotsync-gen make against casync make on the same image, in one run, as a
# throughput ratio; and the chunker alone on one core.
#   bash bench/make_vs_casync.sh [IMAGE...]   (default: the realistic v2 images)
# Each make starts from an empty store; best of REPEAT runs (default 3).  The
# store is on tmpfs (CPU-bound: what the tools themselves cost) and on disk
# (/var/tmp; slotsync makes every chunk durable before naming it, casync does
# not fsync, so its runs end with `sync -f` on the store).  casync runs
# with the same chunk sizes as slotsync (16 KiB
# average: the same number of chunk files, the same work) and, for reference,
# with its default 64 KiB average (a quarter of the files).
# On disk, start it when nothing was deleted on that file system in the last
# five minutes (its own stores are removed when it ends): ext4 steps over
# recently freed inodes when it makes a file, and the first runs would pay.
source "$(dirname "$0")/common.sh"
REPEAT=${REPEAT:-3}
IMGS=("$@")
if [ ${#IMGS[@]} -eq 0 ]; then
	realistic_images
	IMGS=("$IMAGES/debian-v2.raw.sqfs" "$IMAGES/debian-v2.sqfs")
fi
command -v casync >/dev/null || { echo "casync missing" >&2; exit 1; }
machine_facts
DONE=()
trap 'rm -rf "${DONE[@]}"' EXIT
min() { echo "if ($1 < $2) $1 else $2" | bc -l; }
printf '%-20s %-6s %10s %9s %9s %11s %10s %7s %7s\n' image store casync64_s casync_s ours_s casync_MB/s ours_MB/s ratio ratio64
# Every run writes a store of its own, in a new folder, and no store is removed
# until all runs of the image are done: on ext4, a file created soon after many
# were deleted costs several times more (the inode allocator steps over
# recently freed inodes), which would charge one tool for the other's cleanup.
# The tools take turns within each repetition, so a busy moment of the shared
# machine slows all three alike, and each repetition starts with another tool;
# the best of REPEAT runs is reported.
for img in "${IMGS[@]}"; do
	size=$(stat -c %s "$img")
	for where in tmpfs disk; do
		if [ $where = tmpfs ]; then W=$(mktemp -d /dev/shm/slotsync-bench.XXXXXX); else W=$(mktemp -d /var/tmp/slotsync-bench.XXXXXX); fi
		DONE+=("$W")
		t64=999999 tc=999999 to=999999
		for i in $(seq "$REPEAT"); do
			# each repetition starts with another tool (c64, c, ours; then c,
			# ours, c64; ...): no tool always runs right after another's
			# 10,000 new files and their writeback
			for k in 0 1 2; do
				case $(((i + k) % 3)) in
				1)
					# on disk, casync's store is made durable too (sync -f: one
					# syncfs), as a build server must before it publishes the index
					sync
					t=$(seconds_of bash -c 'casync make --store="$1" "$2" "$3" && sync -f "$1"' _ "$W/c64-$i" "$W/c64-$i.caibx" "$img")
					t64=$(min "$t" "$t64")
					;;
				2)
					sync
					t=$(seconds_of bash -c 'casync make --chunk-size=16384 --store="$1" "$2" "$3" && sync -f "$1"' _ "$W/c-$i" "$W/c-$i.caibx" "$img")
					tc=$(min "$t" "$tc")
					;;
				0)
					sync
					t=$(seconds_of "$GEN" make --no-progress --store "$W/o-$i" "$img" "$W/o-$i.caibx")
					to=$(min "$t" "$to")
					;;
				esac
			done
		done
		printf '%-20s %-6s %10.3f %9.3f %9.3f %11.1f %10.1f %6.2fx %6.2fx\n' "$(basename "$img")" $where "$t64" "$tc" "$to" \
			"$(echo "$size / $tc / 1000000" | bc -l)" "$(echo "$size / $to / 1000000" | bc -l)" \
			"$(echo "$tc / $to" | bc -l)" "$(echo "$t64 / $to" | bc -l)"
	done
done
echo
for img in "${IMGS[@]}"; do
	printf '%-22s ' "$(basename "$img")"
	"$BENCH_CHUNKER" "$img"
done
printf '%-22s ' "random 256 MiB"
"$BENCH_CHUNKER" --random 256

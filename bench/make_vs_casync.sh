#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# slotsync-gen make against casync make on the same image, in one run, as a
# throughput ratio; and the chunker alone on one core.
#   bash bench/make_vs_casync.sh [IMAGE...]   (default: the realistic v2 images)
# Each make starts from an empty store; best of REPEAT runs (default 3).  The
# store is on tmpfs (CPU-bound: what the tools themselves cost) and on disk
# (/var/tmp; slotsync makes every chunk durable before naming it, casync does
# not fsync, so its runs end with `sync -f` on the store).  casync runs three
# ways: with the same nominal chunk sizes as slotsync (--chunk-size=16384, the
# 4K:16K:64K of slotsync's default), with the average that makes it write as
# many chunk files as slotsync does (found before the timed runs: its chunker
# cuts more small chunks at the same nominal average, 15 % more files), and,
# for reference, with its default 64 KiB average (a quarter of the files).
# The goal's ratio is against the second: the same number of chunk files, the
# same file-system work.
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
chunk_files() { find "$1" -name '*.cacnk' | wc -l; }
# casync's --chunk-size whose store holds as many chunk files as slotsync's
# (bisection on a scratch store in memory; casync's count falls with the size
# in steps, so the nearest count found is taken)
matched_size() {
	local img=$1 want=$2 lo=16384 hi=32768 best=16384 bestd=999999999 mid n d s
	s=$(mktemp -d /dev/shm/slotsync-bench.XXXXXX)
	for _ in 1 2 3 4 5 6 7 8; do
		mid=$(((lo + hi) / 2))
		casync make --chunk-size="$mid" --store="$s/c" "$s/c.caibx" "$img" >/dev/null
		n=$(chunk_files "$s/c")
		rm -rf "$s/c" "$s/c.caibx"
		d=$((n > want ? n - want : want - n))
		if [ "$d" -lt "$bestd" ]; then best=$mid bestd=$d; fi
		if [ "$n" -gt "$want" ]; then lo=$mid; elif [ "$n" -lt "$want" ]; then hi=$mid; else break; fi
	done
	rm -rf "$s"
	echo "$best"
}
printf '%-20s %-6s %9s %10s %9s %9s %9s %10s %7s %7s %7s\n' image store casync64_s casync16_s casyncN_s ours_s casN_MB/s ours_MB/s ratio ratio16 ratio64
COUNTS=()
# Every run writes a store of its own, in a new folder, and no store is removed
# until all runs of the image are done: on ext4, a file created soon after many
# were deleted costs several times more (the inode allocator steps over
# recently freed inodes), which would charge one tool for the other's cleanup.
# The tools take turns within each repetition, so a busy moment of the shared
# machine slows all alike, and each repetition starts with another tool; the
# best of REPEAT runs is reported.
for img in "${IMGS[@]}"; do
	size=$(stat -c %s "$img")
	S=$(mktemp -d /dev/shm/slotsync-bench.XXXXXX)
	"$GEN" make --no-progress --store "$S/o" "$img" "$S/o.caibx" >/dev/null
	casync make --chunk-size=16384 --store="$S/c" "$S/c.caibx" "$img" >/dev/null
	n_ours=$(chunk_files "$S/o") n_c16=$(chunk_files "$S/c")
	rm -rf "$S"
	cs=$(matched_size "$img" "$n_ours")
	n_cm=
	for where in tmpfs disk; do
		if [ $where = tmpfs ]; then W=$(mktemp -d /dev/shm/slotsync-bench.XXXXXX); else W=$(mktemp -d /var/tmp/slotsync-bench.XXXXXX); fi
		DONE+=("$W")
		t64=999999 t16=999999 tm=999999 to=999999
		for i in $(seq "$REPEAT"); do
			# each repetition starts with another tool: no tool always runs
			# right after another's 10,000 new files and their writeback
			for k in 0 1 2 3; do
				sync
				case $(((i + k) % 4)) in
				1)
					# on disk, casync's store is made durable too (sync -f: one
					# syncfs), as a build server must before it publishes the index
					t=$(seconds_of bash -c 'casync make --store="$1" "$2" "$3" && sync -f "$1"' _ "$W/c64-$i" "$W/c64-$i.caibx" "$img")
					t64=$(min "$t" "$t64")
					;;
				2)
					t=$(seconds_of bash -c 'casync make --chunk-size=16384 --store="$1" "$2" "$3" && sync -f "$1"' _ "$W/c16-$i" "$W/c16-$i.caibx" "$img")
					t16=$(min "$t" "$t16")
					;;
				3)
					t=$(seconds_of bash -c 'casync make --chunk-size="$4" --store="$1" "$2" "$3" && sync -f "$1"' _ "$W/cm-$i" "$W/cm-$i.caibx" "$img" "$cs")
					tm=$(min "$t" "$tm")
					;;
				0)
					t=$(seconds_of "$GEN" make --no-progress --store "$W/o-$i" "$img" "$W/o-$i.caibx")
					to=$(min "$t" "$to")
					;;
				esac
			done
		done
		[ -n "$n_cm" ] || n_cm=$(chunk_files "$W/cm-1")
		printf '%-20s %-6s %9.3f %10.3f %9.3f %9.3f %9.1f %10.1f %6.2fx %6.2fx %6.2fx\n' "$(basename "$img")" $where "$t64" "$t16" "$tm" "$to" \
			"$(echo "$size / $tm / 1000000" | bc -l)" "$(echo "$size / $to / 1000000" | bc -l)" \
			"$(echo "$tm / $to" | bc -l)" "$(echo "$t16 / $to" | bc -l)" "$(echo "$t64 / $to" | bc -l)"
	done
	COUNTS+=("$(basename "$img"): chunk files slotsync $n_ours, casync --chunk-size=16384 $n_c16, casync --chunk-size=$cs (casyncN) $n_cm")
done
echo
printf '%s\n' "${COUNTS[@]}"
echo
for img in "${IMGS[@]}"; do
	printf '%-22s ' "$(basename "$img")"
	"$BENCH_CHUNKER" "$img"
done
printf '%-22s ' "random 256 MiB"
"$BENCH_CHUNKER" --random 256

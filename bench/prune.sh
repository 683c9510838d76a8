#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# slotsync-gen prune on a store of RELEASES releases (default 20) of a changing
# image of MIB MiB (default 48): each release rewrites CHANGE_MIB MiB (default
# 3) at places of its own and patches 1 MiB a little every 64 bytes (what delta
# objects are for), and carries delta files from the two releases before it.
# Then prune keeps the last KEEP (default 2): the dry run and the prune are
# timed (the prune REPEAT times, default 3, each on a fresh copy of the store,
# the page cache warm: best and every run, and the prune's CPU time), with the
# store's files and bytes before and after.
#   bash bench/prune.sh [DIR]   (default /var/tmp/slotsync-bench-prune; on disk)
# The goal (issue "A store for years of releases"): at most 10 s for 20 releases.
source "$(dirname "$0")/common.sh"
RELEASES=${RELEASES:-20}
MIB=${MIB:-48}
CHANGE_MIB=${CHANGE_MIB:-3}
KEEP=${KEEP:-2}
REPEAT=${REPEAT:-3}
DIR=${1:-/var/tmp/slotsync-bench-prune}
rm -rf "$DIR"
mkdir -p "$DIR"
S=$DIR/store
machine_facts
echo "releases: $RELEASES of $MIB MiB, $CHANGE_MIB MiB rewritten and 1 MiB patched each; delta files from the 2 before"
t0=$(date +%s.%N)
head -c $((MIB << 20)) /dev/urandom >"$DIR/img1"
for n in $(seq 1 "$RELEASES"); do
	if [ "$n" -gt 1 ]; then
		python3 - "$DIR/img$((n - 1))" "$DIR/img$n" "$n" "$CHANGE_MIB" <<'PY'
import os, random, sys
b = bytearray(open(sys.argv[1], "rb").read())
r = random.Random(int(sys.argv[3]))
for _ in range(int(sys.argv[4]) * 4):
    at = r.randrange(0, len(b) - (256 << 10))
    b[at:at + (256 << 10)] = os.urandom(256 << 10)
at = r.randrange(0, len(b) - (1 << 20))
for i in range(at, at + (1 << 20), 64):
    b[i] = (b[i] + 1) & 255
open(sys.argv[2], "wb").write(b)
PY
	fi
	"$GEN" make --no-progress --store "$S" "$DIR/img$n" "$DIR/v$n.caibx" >/dev/null
	for b in $((n - 1)) $((n - 2)); do
		[ "$b" -ge 1 ] || continue
		"$GEN" delta --store "$S" --base "$DIR/v$b.caibx" --base-image "$DIR/img$b" "$DIR/v$n.caibx" "$DIR/img$n" >/dev/null
	done
	# the images of old releases are not needed any more
	[ "$n" -gt 2 ] && rm -f "$DIR/img$((n - 2))"
done
echo "built in $(echo "$(date +%s.%N) - $t0" | bc -l | xargs printf '%.0f') s"
count() { echo "$(find "$S" -type f -name "*$1" | wc -l) $1"; }
summary() { echo "$(find "$S" -type f | wc -l) files, $(du -sm "$S" | cut -f1) MiB: $(count .cacnk), $(count .sdob), $(count .sdix), $(count .sdid)"; }
echo "before: $(summary)"
KEEPS=()
for n in $(seq $((RELEASES - KEEP + 1)) "$RELEASES"); do
	KEEPS+=(--keep "$DIR/v$n.caibx")
done
# every file was written minutes ago: no grace, or prune would keep them all
sync
t=$(seconds_of "$GEN" prune --store "$S" "${KEEPS[@]}" --grace 0 --dry-run)
echo "prune --dry-run: $t s"
"$GEN" prune --store "$S" "${KEEPS[@]}" --grace 0 --dry-run | sed 's/^/  /'
mv "$S" "$DIR/orig"
runs=()
for i in $(seq "$REPEAT"); do
	rm -rf "$S"
	cp -a "$DIR/orig" "$S"
	sync
	t1=$(date +%s.%N)
	/usr/bin/time -f '%U %S' -o "$DIR/cpu.txt" "$GEN" prune --store "$S" "${KEEPS[@]}" --grace 0 >"$DIR/prune.txt"
	runs+=("$(echo "$(date +%s.%N) - $t1" | bc -l | xargs printf '%.2f') s (CPU $(awk '{printf "%.2f", $1 + $2}' "$DIR/cpu.txt") s)")
done
echo "prune, keeping the last $KEEP: ${runs[*]}"
tail -n1 "$DIR/prune.txt"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "after: $(summary)"
for n in $(seq $((RELEASES - KEEP + 1)) "$RELEASES"); do
	"$GEN" check --store "$S" --index "$DIR/v$n.caibx" >/dev/null || { echo "release $n is not whole after the prune" >&2; exit 1; }
done
echo "check: every kept release whole"
rm -rf "$DIR"

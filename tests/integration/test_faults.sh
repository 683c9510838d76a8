#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Bad input and faults: each gets a clear error and a non-zero exit, and the
# store holds only whole, correct chunks afterwards.
#  - unreadable image, store not writable, disk full (ENOSPC on a small tmpfs)
#  - make killed with SIGKILL at random instants, then resumed
#  - a chunk whose content does not match its name; truncated and empty chunks
#  - malformed index, bad arguments, a seed that changed since it was indexed
source "$(dirname "$0")/lib.sh"
sample_images
G=$SLOTSYNC_GEN
KILL_TRIALS=${SLOTSYNC_KILL_TRIALS:-8}

# --- unreadable image
expect_fail "missing image" "cannot open image $T/nope.img" $G make --store "$T/s" "$T/nope.img" "$T/x.caibx"
mkdir -p "$T/adir"
expect_fail "image that is a folder" "Is a directory" $G make --store "$T/s" "$T/adir" "$T/x.caibx"
check "no index written for a failed make" test ! -e "$T/x.caibx"

# --- store not writable
expect_fail "store under a regular file" "cannot create store $V1/store" $G make --store "$V1/store" "$V1" "$T/x.caibx"
mkdir -p "$T/ro"
if mount -t tmpfs -o size=1M,ro tmpfs "$T/ro" 2>/dev/null; then
	CLEANUP+=("umount '$T/ro'")
	expect_fail "store on a read-only filesystem" "not writable" $G make --store "$T/ro" "$V1" "$T/x.caibx"
else
	not_ok "cannot mount a read-only tmpfs for the test"
fi

# --- disk full: a 4 MiB tmpfs for a 16 MiB incompressible image
mkdir -p "$T/full"
mount -t tmpfs -o size=4M tmpfs "$T/full"
CLEANUP+=("umount '$T/full'")
random_file "$T/big.img" 16 full
expect_fail "make into a full disk" "No space left on device" $G make --store "$T/full/store" "$T/big.img" "$T/full/big.caibx"
check "no index after ENOSPC" test ! -e "$T/full/big.caibx"
check "the full store holds only whole, correct chunks" $G check --store "$T/full/store"
n_full=$(find "$T/full/store" -name '*.cacnk' | wc -l)
check "... and some chunks reached it before the disk filled ($n_full)" test "$n_full" -gt 0

# --- killed make, at random instants, then resumed in the same store
random_file "$T/kill.img" 48 kill
start=$(date +%s%N)
$G make --store "$T/calib" "$T/kill.img" "$T/calib.caibx" >/dev/null
dur_ms=$(( ($(date +%s%N) - start) / 1000000 ))
rm -rf "$T/calib"
for i in $(seq 1 "$KILL_TRIALS"); do
	delay=$(( RANDOM % (dur_ms + 1) ))
	rm -rf "$T/ks" "$T/kill.caibx"
	$G make --no-progress --store "$T/ks" "$T/kill.img" "$T/kill.caibx" >/dev/null 2>&1 &
	pid=$!
	sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
	kill -9 $pid 2>/dev/null || true
	wait $pid 2>/dev/null || true
	if [ ! -d "$T/ks" ]; then
		ok "after SIGKILL at ${delay} ms: killed before the store was created"
	elif ! $G check --store "$T/ks" >"$T/kc.txt" 2>&1; then
		not_ok "after SIGKILL at ${delay} ms the store is whole: $(cat "$T/kc.txt")"
	else
		ok "after SIGKILL at ${delay} ms of ${dur_ms} the store holds only correct chunks ($(cat "$T/kc.txt"))"
	fi
	if [ -e "$T/kill.caibx" ]; then
		check "an index left by a killed make is whole and its chunks are all there" \
			$G check --store "$T/ks" --index "$T/kill.caibx"
	fi
	$G make --no-progress --store "$T/ks" "$T/kill.img" "$T/kill.caibx" >/dev/null
	check "make resumed after the kill leaves a complete store and index" \
		$G check --store "$T/ks" --index "$T/kill.caibx"
done
$G check --repair --store "$T/ks" >/dev/null
check "check --repair leaves no temp files" test -z "$(find "$T/ks" -name '.tmp-*')"
$G extract --store "$T/ks" "$T/kill.caibx" "$T/kill.out" >/dev/null
check "after the kills the image extracts byte-exact" cmp -s "$T/kill.img" "$T/kill.out"

# --- a chunk whose content does not match its name
$G make --store "$T/cs" "$V2" "$T/v2.caibx" >/dev/null
victim=$(find "$T/cs" -name '*.cacnk' | sort | sed -n 1p)
other=$(find "$T/cs" -name '*.cacnk' | sort | sed -n '$p')
cp "$victim" "$T/victim.bak"
vhex=$(basename "$victim" .cacnk)
cp "$other" "$victim"
expect_fail "extract refuses a chunk that does not match its name, and names it" "$vhex" \
	$G extract --store "$T/cs" "$T/v2.caibx" "$T/bad.out"
check "no output file, not even a partial one" test -z "$(find "$T" -maxdepth 1 -name 'bad.out*')"
expect_fail "check reports the bad chunk" "1 bad chunks" $G check --store "$T/cs"
: >"$victim"
expect_fail "extract refuses an empty chunk file" "chunk $vhex decompresses to 0 bytes" \
	$G extract --store "$T/cs" "$T/v2.caibx" "$T/bad.out"
head -c 100 "$T/victim.bak" >"$victim"
expect_fail "extract refuses a truncated chunk file" "chunk $vhex is not a valid zstd frame" \
	$G extract --store "$T/cs" "$T/v2.caibx" "$T/bad.out"
expect_fail "check --repair deletes the bad chunk" "(deleted)" $G check --repair --store "$T/cs"
check "the bad chunk is gone" test ! -e "$victim"
$G make --store "$T/cs" "$V2" "$T/v2.caibx" >/dev/null
$G extract --store "$T/cs" "$T/v2.caibx" "$T/good.out" >/dev/null
check "make rewrites the deleted chunk; extract is byte-exact again" cmp -s "$V2" "$T/good.out"
rm "$(find "$T/cs" -name '*.cacnk' | sort | sed -n 1p)"
expect_fail "extract names a chunk missing from the store" "is missing from store" \
	$G extract --store "$T/cs" "$T/v2.caibx" "$T/bad.out"
expect_fail "check --index names a missing chunk" "1 missing chunks" $G check --store "$T/cs" --index "$T/v2.caibx"

# --- malformed index and bad arguments
head -c 200 "$T/v2.caibx" >"$T/trunc.caibx"
expect_fail "extract refuses a truncated index" "index $T/trunc.caibx: truncated" \
	$G extract --store "$T/cs" "$T/trunc.caibx" "$T/bad.out"
printf 'not an index at all, just some text that is long enough.........' >"$T/text.caibx"
expect_fail "extract refuses a file that is not an index" "wrong magic" \
	$G extract --store "$T/cs" "$T/text.caibx" "$T/bad.out"
expect_fail "bad --chunk-size" "MIN:AVG:MAX" $G make --chunk-size 4K:16K "$V1" "$T/x.caibx"
expect_fail "inverted --chunk-size" "min <= avg <= max" $G make --chunk-size 64K:16K:4K "$V1" "$T/x.caibx"
expect_fail "bad --threads" "--threads" $G make --threads zero "$V1" "$T/x.caibx"
expect_fail "bad --level" "--level" $G make --level 99 "$V1" "$T/x.caibx"
expect_fail "unknown command" "unknown command" $G frobnicate

# --- a seed that changed since it was indexed: the bad chunks come from the store
$G make --store "$T/cs" "$V1" "$T/v1.caibx" >/dev/null
cp "$V1" "$T/v1-changed.img"
printf 'XXXXXXXXXXXXXXXX' | dd of="$T/v1-changed.img" bs=1 seek=100000 conv=notrunc 2>/dev/null
$G make --store "$T/cs" "$V2" "$T/v2.caibx" >/dev/null
$G extract --store "$T/cs" --seed "$T/v1-changed.img:$T/v1.caibx" "$T/v2.caibx" "$T/seeded.out" >"$T/seeded.txt" 2>"$T/seeded.err"
check "a changed seed still gives a byte-exact image" cmp -s "$V2" "$T/seeded.out"
rejected=$(sed -n 's/.* \([0-9]*\) seed chunks rejected.*/\1/p' "$T/seeded.txt")
if grep -q "failed its SHA-256 check" "$T/seeded.err"; then
	check "the changed seed chunk was rejected, counted ($rejected) and reported" test "$rejected" -ge 1
else
	check "the changed bytes lie in no chunk v2 needs (none rejected)" test "$rejected" -eq 0
fi
finish

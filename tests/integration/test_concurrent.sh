#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Two makes into one store at the same time (overlapping releases, and the
# same image twice): both succeed and the store stays correct.
source "$(dirname "$0")/lib.sh"
sample_images
G=$SLOTSYNC_GEN
random_file "$T/r1.img" 48 conc1
{ head -c 20000000 "$T/r1.img"; head -c 8000000 < <(openssl enc -aes-128-ctr -nosalt -pass pass:conc2 -pbkdf2 -in /dev/zero 2>/dev/null); tail -c +20000001 "$T/r1.img"; } >"$T/r2.img"

for round in 1 2 3; do
	rm -rf "$T/store"
	$G make --no-progress --store "$T/store" "$T/r1.img" "$T/r1.caibx" >"$T/a.txt" 2>&1 &
	a=$!
	$G make --no-progress --store "$T/store" "$T/r2.img" "$T/r2.caibx" >"$T/b.txt" 2>&1 &
	b=$!
	$G make --no-progress --store "$T/store" "$T/r1.img" "$T/r1b.caibx" >"$T/c.txt" 2>&1 &
	c=$!
	ra=0; rb=0; rc=0
	wait $a || ra=$?
	wait $b || rb=$?
	wait $c || rc=$?
	check "round $round: three concurrent makes succeed" test $ra -eq 0 -a $rb -eq 0 -a $rc -eq 0
	check "round $round: the store holds only correct chunks" $G check --store "$T/store" --index "$T/r2.caibx"
	check "round $round: same image, same index" cmp -s "$T/r1.caibx" "$T/r1b.caibx"
	$G extract --store "$T/store" "$T/r1.caibx" "$T/r1.out" >/dev/null
	$G extract --store "$T/store" "$T/r2.caibx" "$T/r2.out" >/dev/null
	check "round $round: both images extract byte-exact" cmp -s "$T/r1.img" "$T/r1.out"
	cmp -s "$T/r2.img" "$T/r2.out" || not_ok "round $round: r2 differs"
done
finish

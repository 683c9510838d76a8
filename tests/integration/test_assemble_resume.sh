#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Interruptions at any instant, then resume:
#  - SIGKILL at random points of an assembly (SLOTSYNC_RESUME_KILL_TRIALS, else
#    SLOTSYNC_KILL_TRIALS, default 50; the long mode runs 1000; the sanitizer
#    run fewer): the resumed target is byte-exact every time, and
#    the bytes fetched again are at most concurrency x max chunk size;
#  - a simulated power cut that also loses every write not yet fdatasync'd
#    (SLOTSYNC_TEST_CRASH_AFTER_WRITES; SLOTSYNC_CRASH_TRIALS, default 20):
#    the resumed target is byte-exact.
source "$(dirname "$0")/lib.sh"
sample_images
G=$SLOTSYNC_GEN
S=$SLOTSYNC_BIN
TRIALS=${SLOTSYNC_RESUME_KILL_TRIALS:-${SLOTSYNC_KILL_TRIALS:-50}}
CRASH_TRIALS=${SLOTSYNC_CRASH_TRIALS:-20}
CONC=8
random_file "$T/big.img" 16 resume
$G make --store "$T/www/store" "$T/big.img" "$T/big.caibx" >/dev/null
$G make --store "$T/www/store" "$V1" "$T/v1.caibx" >/dev/null
$G make --store "$T/www/store" "$V2" "$T/v2.caibx" >/dev/null
start_nginx main "$T/www"
A=(--store "$NGINX_URL/store" --ca-file "$T/test-ca.pem" --concurrency $CONC)
needed=$(python3 - "$T/big.caibx" "$T/www/store" <<'PY'
import os, sys
b = open(sys.argv[1], 'rb').read()
ids = {b[i+8:i+40].hex() for i in range(64, len(b) - 40, 40)}
print(sum(os.path.getsize(f"{sys.argv[2]}/{h[:4]}/{h}.cacnk") for h in ids))
PY
)
bound=$((CONC * 65536))
RATE=$((24 * 1024 * 1024))
start=$(date +%s%N)
$S assemble "${A[@]}" --max-rate $RATE "$T/big.caibx" "$T/cal.img" >/dev/null
dur_ms=$(( ($(date +%s%N) - start) / 1000000 ))
rm -f "$T/cal.img"*
echo "# a full run takes $dur_ms ms; $needed bytes needed; re-fetch bound $bound bytes"

worst=0
fails=0
rechecked=0
for i in $(seq 1 "$TRIALS"); do
	rm -f "$T/t.img" "$T/t.img.journal"
	: >"$NGINX_LOG"
	delay=$(( RANDOM % (dur_ms + 1) ))
	$S assemble "${A[@]}" --max-rate $RATE "$T/big.caibx" "$T/t.img" >/dev/null 2>&1 &
	pid=$!
	sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
	kill -9 $pid 2>/dev/null || true
	wait $pid 2>/dev/null || true
	if ! $S assemble "${A[@]}" --json "$T/big.caibx" "$T/t.img" >"$T/resume.txt" 2>&1; then
		not_ok "trial $i (kill at $delay ms): resume failed: $(cat "$T/resume.txt")"
		fails=$((fails + 1))
		continue
	fi
	if ! cmp -s "$T/big.img" "$T/t.img"; then
		not_ok "trial $i (kill at $delay ms): target differs after resume"
		fails=$((fails + 1))
		continue
	fi
	rechecked=$((rechecked + $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["chunks_rechecked"])' "$T/resume.txt")))
	sent=$(awk '{s += $4} END {print s + 0}' "$NGINX_LOG")
	extra=$((sent - needed))
	[ $extra -gt $worst ] && worst=$extra
	if [ $extra -gt $bound ]; then
		not_ok "trial $i (kill at $delay ms): $extra bytes fetched again, more than $bound"
		fails=$((fails + 1))
	fi
done
check "$TRIALS kills at random instants: every resume byte-exact, at most $worst bytes fetched again (bound $bound)" test $fails -eq 0
# chunks journaled as written (not yet flushed) survive a kill in the page cache:
# the resumes read them back, found them good and kept them
check "after the kills, $rechecked chunks journaled as written were read back, found good and not fetched again" \
	test "$rechecked" -gt 0

# --- power cuts that lose unsynced writes, with and without a seed
fails=0
lost=0
for i in $(seq 1 "$CRASH_TRIALS"); do
	rm -f "$T/p.img" "$T/p.img.journal"
	n=$(( (RANDOM % 500) + 1 ))
	seed=()
	[ $((i % 2)) = 0 ] && seed=(--seed "$V1:$T/v1.caibx")
	rc=0
	SLOTSYNC_TEST_CRASH_AFTER_WRITES=$n $S assemble "${A[@]}" "${seed[@]}" "$T/v2.caibx" "$T/p.img" >/dev/null 2>&1 || rc=$?
	if [ $rc -ne 137 ]; then
		not_ok "power cut after $n writes: the crash hook did not fire (exit $rc)"
		fails=$((fails + 1))
	elif ! $S assemble "${A[@]}" "${seed[@]}" --json "$T/v2.caibx" "$T/p.img" >"$T/p.txt" 2>&1 || ! cmp -s "$V2" "$T/p.img"; then
		not_ok "power cut after $n writes (exit $rc): not byte-exact after resume: $(cat "$T/p.txt")"
		fails=$((fails + 1))
	else
		lost=$((lost + $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["chunks_recheck_failed"])' "$T/p.txt")))
	fi
done
check "$CRASH_TRIALS power cuts losing unsynced writes: every resume byte-exact" test $fails -eq 0
# the journal said "written" of chunks whose bytes the cut took: the resumes
# read them back, found them wrong and wrote them again
check "after the power cuts, $lost chunks journaled as written but lost were caught and redone" test "$lost" -gt 0
finish

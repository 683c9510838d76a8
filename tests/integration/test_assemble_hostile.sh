#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# slotsync assemble against stores and servers that misbehave.  Each fault must
# give a non-zero exit and an error that names the chunk at fault; the seed is
# never written to; and the journal stays consistent: once the fault is gone,
# a second assemble of the same index onto the same target (same journal)
# completes from where the first one stopped, byte-exact.
#  - store damage served by nginx: wrong content under a chunk's name, a
#    truncated chunk, a decompression bomb, 404, 500
#  - a hostile HTTPS server: connection reset mid-transfer (always / once, the
#    latter must resume with a Range request), a server that stalls, a 503
#    whose body never ends (cut after a few KiB, counted), a server that drips
#    2 bytes/s (cut below --min-rate after the stall time; a drip once is
#    resumed)
#  - an honest server under a --max-rate whose share per stream is below
#    --min-rate: nothing is cut, and it completes
#  - TLS: a server certificate from another CA; a server that wants a client
#    certificate (mTLS)
source "$(dirname "$0")/lib.sh"
sample_images
G=$SLOTSYNC_GEN
S=${SLOTSYNC_BIN:?set by ctest}
HERE=$(cd "$(dirname "$0")" && pwd)
ATTEMPTS=2
STALL=2

# index_ids INDEX: the chunk ids of a caibx index, in image order, one per line
# (64-byte header, 40-byte items: 8-byte LE end offset + 32-byte id, 40-byte tail)
index_ids() {
	python3 - "$1" <<'PY'
import sys
d = open(sys.argv[1], "rb").read()
for off in range(64, len(d) - 40, 40):
    print(d[off + 8:off + 40].hex())
PY
}
chunk_path() { echo "$1/${2:0:4}/$2.cacnk"; } # chunk_path STORE HEX
# json_get FILE KEY: one field of the --json object (empty if absent)
json_get() {
	python3 -c 'import json,sys
try:
    v = json.load(open(sys.argv[1])).get(sys.argv[2], "")
except ValueError:
    v = ""
print(str(v).lower() if isinstance(v, bool) else v)' "$1" "$2"
}
seed_sum() { sha256sum "$V1" | cut -d' ' -f1; }

# --- the store (v2), the seed's index (v1), and the chunks the seed lacks
mkdir -p "$T/www"
$G make --no-progress --store "$T/www/good" "$V2" "$T/v2.caibx" >/dev/null
$G make --no-progress "$V1" "$T/v1.caibx" >/dev/null
index_ids "$T/v2.caibx" | sort -u >"$T/v2.ids"
index_ids "$T/v1.caibx" | sort -u >"$T/v1.ids"
comm -23 "$T/v2.ids" "$T/v1.ids" >"$T/needed.ids"
n_needed=$(wc -l <"$T/needed.ids")
needed_bytes=0
while read -r id; do
	needed_bytes=$((needed_bytes + $(stat -c %s "$(chunk_path "$T/www/good" "$id")")))
done <"$T/needed.ids"
echo "# v2: $(wc -l <"$T/v2.ids") distinct chunks; $n_needed not in the v1 seed, $needed_bytes bytes compressed"
# the chunk at fault: one the seed lacks, from the middle of the fetch order
VICTIM=$(sed -n "$(((n_needed + 1) / 2))p" "$T/needed.ids")
OTHER=$(sed -n '$p' "$T/needed.ids")
[ "$VICTIM" != "$OTHER" ] || OTHER=$(sed -n 1p "$T/needed.ids")
VREL=${VICTIM:0:4}/$VICTIM.cacnk
echo "# chunk at fault: $VICTIM"
SEED_SUM=$(seed_sum)

# damaged copies of the store (hard links; a damaged file is a new file)
damaged_copy() { # damaged_copy NAME: $T/www/NAME, the victim removed
	cp -al "$T/www/good" "$T/www/$1"
	rm -f "$(chunk_path "$T/www/$1" "$VICTIM")"
}
damaged_copy wrong
cp "$(chunk_path "$T/www/good" "$OTHER")" "$(chunk_path "$T/www/wrong" "$VICTIM")"
damaged_copy trunc
head -c 100 "$(chunk_path "$T/www/good" "$VICTIM")" >"$(chunk_path "$T/www/trunc" "$VICTIM")"
damaged_copy bomb
head -c 64M /dev/zero | zstd -q -19 -c >"$(chunk_path "$T/www/bomb" "$VICTIM")"
echo "# bomb: $(stat -c %s "$(chunk_path "$T/www/bomb" "$VICTIM")") bytes that decompress to 64 MiB"
damaged_copy gone
cp -al "$T/www/good" "$T/www/e500"
start_nginx main "$T/www" "location = /e500/$VREL { return 500; }"
MAIN_URL=$NGINX_URL
GOOD_URL=$MAIN_URL/good

# assemble NAME URL [ARGS...]: v2 onto $T/NAME.img with the v1 seed; stdout
# (JSON) in $T/NAME.json, stderr in $T/NAME.err, exit code in RC, wall time in
# SECS (milliseconds in MS)
assemble() {
	local name=$1 url=$2 t0
	shift 2
	t0=$(date +%s%N)
	RC=0
	"$S" assemble --store "$url" --seed "$V1:$T/v1.caibx" --ca-file "$T/test-ca.pem" \
		--max-attempts "$ATTEMPTS" --stall-timeout "$STALL" --json "$@" \
		"$T/v2.caibx" "$T/$name.img" >"$T/$name.json" 2>"$T/$name.err" || RC=$?
	MS=$((($(date +%s%N) - t0) / 1000000))
	SECS=$(printf '%d.%03d' $((MS / 1000)) $((MS % 1000)))
}

# must_fail NAME ERE: the last assemble failed, named the victim and matched ERE
must_fail() {
	local name=$1 ere=$2 err
	err=$(head -c 400 "$T/$name.err" | tr '\n' ' ')
	if [ "$RC" -ne 0 ] && grep -q "slotsync assemble: .*$VICTIM" "$T/$name.err" && grep -qE -- "$ere" "$T/$name.err"; then
		ok "$name: exit $RC in $SECS s, names the chunk: $err"
	else
		not_ok "$name: exit $RC, wanted the chunk id and /$ere/ in stderr: $err"
	fi
}

# then_recover NAME: seed unchanged; with the fault gone, the same target and
# journal complete byte-exact, and the work journaled by the failed run is kept
then_recover() {
	local name=$1 seeded done
	check "$name: the seed is unchanged" test "$(seed_sum)" = "$SEED_SUM"
	seeded=$(json_get "$T/$name.json" chunks_from_seed)
	check "$name: the failed run left a journal" test -s "$T/$name.img.journal"
	assemble "$name" "$GOOD_URL"
	done=$(json_get "$T/$name.json" chunks_already_done)
	if [ "$RC" -eq 0 ] && cmp -s "$V2" "$T/$name.img"; then
		ok "$name: rerun against the good store completes byte-exact ($done chunks already done, $(json_get "$T/$name.json" chunks_fetched) fetched, $SECS s)"
	else
		not_ok "$name: rerun exit $RC: $(head -c 400 "$T/$name.err")"
	fi
	check "$name: the rerun kept what the failed run journaled ($done >= $seeded seed chunks)" \
		test "${done:-0}" -ge "${seeded:-1}" -a "${done:-0}" -gt 0
	check "$name: the seed is still unchanged" test "$(seed_sum)" = "$SEED_SUM"
}

# --- reference: the good store works
assemble ref "$GOOD_URL"
check "good store: byte-exact ($(json_get "$T/ref.json" chunks_fetched) chunks, $(json_get "$T/ref.json" bytes_fetched) bytes fetched, HTTP/$(json_get "$T/ref.json" http_version), $SECS s)" \
	test "$RC" -eq 0 -a "$(json_get "$T/ref.json" verified)" = true
check "good store: the target equals v2" cmp -s "$V2" "$T/ref.img"
check "good store: fetched exactly the chunks the seed lacks ($(json_get "$T/ref.json" chunks_fetched) of $n_needed)" \
	test "$(json_get "$T/ref.json" chunks_fetched)" -eq "$n_needed"

# --- store damage, served by nginx
assemble wrong "$MAIN_URL/wrong"
must_fail wrong "failed its SHA-256 check|decompresses to [0-9]+ bytes, expected|larger than the chunk can be"
then_recover wrong

assemble trunc "$MAIN_URL/trunc"
must_fail trunc "not a valid zstd frame"
then_recover trunc

assemble bomb "$MAIN_URL/bomb"
must_fail bomb "decompresses to more than its [0-9]+ bytes \(cut off\)"
check "bomb: quick, so never inflated ($SECS s)" test "$MS" -lt 15000
then_recover bomb

assemble gone "$MAIN_URL/gone"
must_fail gone "not found \(HTTP 404\)"
then_recover gone

assemble e500 "$MAIN_URL/e500"
must_fail e500 "HTTP 500 \(gave up after $ATTEMPTS attempts\)"
n500=$(grep -c " 500 .*/e500/$VREL" "$NGINX_LOG" || true)
check "e500: the chunk was asked for $ATTEMPTS times ($n500)" test "$n500" -eq "$ATTEMPTS"
then_recover e500

# --- a hostile HTTPS server (HTTP/1.1)
make_cert test hostile 127.0.0.1
# start_hostile MODE: hostile_server.py on the good store; sets HOSTILE_URL, HOSTILE_LOG
start_hostile() {
	local mode=$1 port
	HOSTILE_LOG=$T/hostile-$mode.log
	python3 "$HERE/hostile_server.py" --root "$T/www/good" --cert "$T/hostile.pem" --key "$T/hostile.key" \
		--mode "$mode" --target "$VICTIM" --lifetime 60 --log "$HOSTILE_LOG" >"$T/hostile-$mode.port" &
	HOSTILE_PID=$!
	CLEANUP+=("kill $HOSTILE_PID 2>/dev/null; wait $HOSTILE_PID 2>/dev/null")
	for _ in $(seq 100); do
		port=$(head -n1 "$T/hostile-$mode.port" 2>/dev/null || true)
		[ -n "$port" ] && break
		sleep 0.05
	done
	HOSTILE_URL=https://127.0.0.1:$port
}
stop_hostile() { kill "$HOSTILE_PID" 2>/dev/null || true; wait "$HOSTILE_PID" 2>/dev/null || true; }

start_hostile reset-always
assemble reset "$HOSTILE_URL"
must_fail reset "gave up after $ATTEMPTS attempts"
nreset=$(grep -c "$VICTIM.* reset " "$HOSTILE_LOG" || true)
check "reset: every attempt was cut mid-body ($nreset resets)" test "$nreset" -eq "$ATTEMPTS"
check "reset: the second attempt resumed ($(json_get "$T/reset.json" fetch_resumed) resumed)" \
	test "$(json_get "$T/reset.json" fetch_resumed)" -ge 1
stop_hostile
then_recover reset

start_hostile reset-once
assemble once "$HOSTILE_URL"
fetched=$(json_get "$T/once.json" bytes_fetched)
resumed=$(json_get "$T/once.json" fetch_resumed)
if [ "$RC" -eq 0 ] && cmp -s "$V2" "$T/once.img"; then
	ok "reset-once: assemble completes byte-exact ($SECS s)"
else
	not_ok "reset-once: exit $RC: $(head -c 400 "$T/once.err")"
fi
check "reset-once: the cut chunk was resumed ($resumed)" test "${resumed:-0}" -ge 1
check "reset-once: with a Range request answered by 206" grep -q "$VICTIM.cacnk [1-9][0-9]* 206 serve" "$HOSTILE_LOG"
check "reset-once: bytes fetched $fetched <= $needed_bytes compressed bytes needed + 4096" \
	test "${fetched:-999999999}" -le $((needed_bytes + 4096))
stop_hostile

# a server that ignores Range: the cut chunk is fetched whole again
start_hostile reset-once-norange
assemble norange "$HOSTILE_URL" --max-attempts 4
if [ "$RC" -eq 0 ] && cmp -s "$V2" "$T/norange.img"; then
	ok "reset-once on a server without ranges: assemble completes byte-exact"
else
	not_ok "reset-once on a server without ranges: exit $RC: $(head -c 400 "$T/norange.err")"
fi
check "reset-once: the seed is unchanged" test "$(seed_sum)" = "$SEED_SUM"
stop_hostile

start_hostile stall
assemble stall "$HOSTILE_URL"
must_fail stall "gave up after $ATTEMPTS attempts"
limit_ms=$(((STALL * ATTEMPTS + 6) * 1000))
check "stall: gave up within $STALL s x $ATTEMPTS attempts + 6 s ($SECS s)" test "$MS" -le "$limit_ms"
check "stall: both attempts reached the server" test "$(grep -c "$VICTIM.* stall " "$HOSTILE_LOG" || true)" -eq "$ATTEMPTS"
stop_hostile
then_recover stall

# a 503 whose body never ends: each error page is cut after a few KiB (the
# server sees its connection cut), every byte is counted, and the run gives up
# within seconds instead of reading gigabytes
start_hostile endless-error
assemble endless "$HOSTILE_URL"
must_fail endless "HTTP 503 \(its body cut off after [0-9]+ bytes\) \(gave up after $ATTEMPTS attempts\)"
check "endless: gave up within 15 s ($SECS s)" test "$MS" -lt 15000
fetched=$(json_get "$T/endless.json" bytes_fetched)
cap=$((needed_bytes + ATTEMPTS * (4096 + 16384)))
check "endless: $fetched bytes counted: the error pages (> $ATTEMPTS x 4096), and at most the chunks + $ATTEMPTS x 20 KiB ($cap)" \
	test "${fetched:-0}" -gt $((ATTEMPTS * 4096)) -a "${fetched:-999999999999}" -le "$cap"
for _ in $(seq 40); do
	[ "$(grep -c "$VICTIM.* 503 cut " "$HOSTILE_LOG" || true)" -ge "$ATTEMPTS" ] && break
	sleep 0.05
done
sent=$({ grep "$VICTIM.* 503 cut " "$HOSTILE_LOG" || true; } | awk '{print $NF}' | tr '\n' ' ')
check "endless: the server saw each of the $ATTEMPTS connections cut (it sent $sent bytes)" \
	test "$(grep -c "$VICTIM.* 503 cut " "$HOSTILE_LOG" || true)" -eq "$ATTEMPTS"
check "endless: ... after less than 64 MiB each" \
	bash -c "for b in $sent; do [ \$b -lt 67108864 ] || exit 1; done"
stop_hostile
then_recover endless

# a server that drips 2 bytes/s: cut after the stall time (below the default
# minimum rate of 256 bytes/s), not after the hours the chunk would take; the
# next attempt asks for the rest, as after any cut
start_hostile drip
assemble drip "$HOSTILE_URL"
must_fail drip "Less than 256 bytes/sec transferred the last $STALL seconds \(gave up after $ATTEMPTS attempts\)"
limit_ms=$(((STALL * ATTEMPTS + 6) * 1000))
check "drip: gave up within $STALL s x $ATTEMPTS attempts + 6 s ($SECS s)" test "$MS" -le "$limit_ms"
for _ in $(seq 40); do
	[ "$(grep -c "$VICTIM.* drip-cut " "$HOSTILE_LOG" || true)" -ge "$ATTEMPTS" ] && break
	sleep 0.05
done
check "drip: the server saw each of the $ATTEMPTS attempts cut" \
	test "$(grep -c "$VICTIM.* drip-cut " "$HOSTILE_LOG" || true)" -eq "$ATTEMPTS"
check "drip: the second attempt resumed what the first received ($(json_get "$T/drip.json" fetch_resumed))" \
	test "$(json_get "$T/drip.json" fetch_resumed)" -ge 1
stop_hostile
then_recover drip

start_hostile drip-once
assemble driponce "$HOSTILE_URL"
if [ "$RC" -eq 0 ] && cmp -s "$V2" "$T/driponce.img"; then
	ok "drip once: cut, resumed, assemble completes byte-exact ($SECS s)"
else
	not_ok "drip once: exit $RC: $(head -c 400 "$T/driponce.err")"
fi
check "drip once: with a Range request answered by 206" grep -q "$VICTIM.cacnk [1-9][0-9]* 206 serve" "$HOSTILE_LOG"
check "drip once: within the stall time + 10 s ($SECS s)" test "$MS" -le $(((STALL + 10) * 1000))
stop_hostile

# an honest server under a rate cap below the minimum rate (32 streams sharing
# 256 kB/s: 8000 bytes/s each, against --min-rate 16000): nothing is cut and the
# result is byte-exact.  (On a loopback a chunk arrives in one read, so the cap
# paces the starts of requests; unit_fetch's "rate cap lowers min rate" checks
# a transfer that the cap itself holds below the minimum.)
assemble paced "$GOOD_URL" --concurrency 32 --max-rate 256000 --min-rate 16000
if [ "$RC" -eq 0 ] && cmp -s "$V2" "$T/paced.img"; then
	ok "paced: --max-rate below --min-rate per stream: byte-exact ($SECS s, $(json_get "$T/paced.json" fetch_retries) retries)"
else
	not_ok "paced: exit $RC: $(head -c 400 "$T/paced.err")"
fi
check "paced: no transfer was cut ($(json_get "$T/paced.json" fetch_retries) retries)" \
	test "$(json_get "$T/paced.json" fetch_retries)" = 0

# --- a server certificate from another CA: refused before anything is fetched
make_ca other
make_cert other badcert 127.0.0.1
start_nginx badcert "$T/www" "" badcert
assemble badcert "$NGINX_URL/good"
err=$(head -c 300 "$T/badcert.err" | tr '\n' ' ')
if [ "$RC" -ne 0 ] && grep -q "certificate" "$T/badcert.err"; then
	ok "badcert: refused, exit $RC: $err"
else
	not_ok "badcert: exit $RC, stderr: $err"
fi
check "badcert: nothing fetched (bytes_fetched $(json_get "$T/badcert.json" bytes_fetched), chunks_fetched $(json_get "$T/badcert.json" chunks_fetched))" \
	test "$(json_get "$T/badcert.json" bytes_fetched)" = 0 -a "$(json_get "$T/badcert.json" chunks_fetched)" = 0
check "badcert: no request reached the server" test ! -s "$NGINX_LOG"
check "badcert: the seed is unchanged" test "$(seed_sum)" = "$SEED_SUM"
assemble badcert "$GOOD_URL"
check "badcert: rerun against the good server completes byte-exact" test "$RC" -eq 0
check "badcert: ... and the target equals v2" cmp -s "$V2" "$T/badcert.img"

# --- mTLS: the server wants a client certificate signed by its CA
make_cert test client client
start_nginx mtls "$T/www" "ssl_client_certificate $T/test-ca.pem; ssl_verify_client on;"
assemble mtls "$NGINX_URL/good"
err=$(head -c 300 "$T/mtls.err" | tr '\n' ' ')
if [ "$RC" -ne 0 ] && grep -q "HTTP 400" "$T/mtls.err"; then
	ok "mtls: without a client certificate: refused (HTTP 400), exit $RC: $err"
else
	not_ok "mtls: without a client certificate: exit $RC, stderr: $err"
fi
check "mtls: nothing fetched without a client certificate" test "$(json_get "$T/mtls.json" chunks_fetched)" = 0
assemble mtls "$NGINX_URL/good" --client-cert "$T/client.pem" --client-key "$T/client.key"
if [ "$RC" -eq 0 ] && cmp -s "$V2" "$T/mtls.img"; then
	ok "mtls: with --client-cert/--client-key: byte-exact ($(json_get "$T/mtls.json" chunks_fetched) chunks, $SECS s)"
else
	not_ok "mtls: with a client certificate: exit $RC: $(head -c 400 "$T/mtls.err")"
fi
check "mtls: the seed is unchanged" test "$(seed_sum)" = "$SEED_SUM"
finish

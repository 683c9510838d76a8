#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# slotsync assemble over a slow link that keeps dropping: nginx sends each
# response at 8 KB/s, and a proxy in front of it aborts every connection (TCP
# RST, both ways) every few seconds.  The update must still complete byte-exact,
# resuming cut transfers with Range requests instead of starting them over: the
# bytes received stay within 2% of the compressed size of the chunks the seed
# lacks.
source "$(dirname "$0")/lib.sh"
sample_images
G=$SLOTSYNC_GEN
S=${SLOTSYNC_BIN:?set by ctest}
HERE=$(cd "$(dirname "$0")" && pwd)
CUT_EVERY=${SLOTSYNC_CUT_EVERY:-3}
RATE=8k     # per response (nginx limit_rate)
STREAMS=4   # so the link carries about 4 x 8 KB/s

index_ids() { # index_ids INDEX: chunk ids in image order, one per line
	python3 - "$1" <<'PY'
import sys
d = open(sys.argv[1], "rb").read()
for off in range(64, len(d) - 40, 40):
    print(d[off + 8:off + 40].hex())
PY
}
json_get() { # json_get FILE KEY
	python3 -c 'import json,sys
try:
    v = json.load(open(sys.argv[1])).get(sys.argv[2], "")
except ValueError:
    v = ""
print(str(v).lower() if isinstance(v, bool) else v)' "$1" "$2"
}

# --- the new image: v1 with 400 KB of new, incompressible bytes in the middle
size=$(stat -c %s "$V1")
half=$((size / 2))
random_file "$T/rnd" 1 slow-link
{
	head -c "$half" "$V1"
	head -c 409600 "$T/rnd"
	tail -c "+$((half + 1))" "$V1"
} >"$T/new.img"
mkdir -p "$T/www"
$G make --no-progress --store "$T/www/store" "$V1" "$T/v1.caibx" >/dev/null
$G make --no-progress --store "$T/www/store" "$T/new.img" "$T/new.caibx" >/dev/null

# the chunks the seed lacks, and their compressed size in the store
index_ids "$T/new.caibx" | sort -u >"$T/new.ids"
index_ids "$T/v1.caibx" | sort -u >"$T/v1.ids"
comm -23 "$T/new.ids" "$T/v1.ids" >"$T/needed.ids"
needed_bytes=0
while read -r id; do
	needed_bytes=$((needed_bytes + $(stat -c %s "$T/www/store/${id:0:4}/$id.cacnk")))
done <"$T/needed.ids"
n_needed=$(wc -l <"$T/needed.ids")
echo "# $n_needed chunks to fetch, $needed_bytes bytes compressed"
"$S" assemble --dry-run --json --seed "$V1:$T/v1.caibx" "$T/new.caibx" "$T/dry.img" >"$T/dry.json"
check "the plan fetches the same $n_needed chunks ($(json_get "$T/dry.json" chunks_to_fetch))" \
	test "$(json_get "$T/dry.json" chunks_to_fetch)" -eq "$n_needed"

SEED_SUM=$(sha256sum <"$V1")

# --- nginx at 8 KB/s per response, behind the cutting proxy
start_nginx slow "$T/www" "limit_rate $RATE;"
nginx_port=${NGINX_URL##*:}
python3 "$HERE/cut_proxy.py" --upstream-port "$nginx_port" --cut-every "$CUT_EVERY" --lifetime 100 \
	--log "$T/cuts.log" >"$T/proxy.port" &
PROXY_PID=$!
CLEANUP+=("kill $PROXY_PID 2>/dev/null; wait $PROXY_PID 2>/dev/null")
for _ in $(seq 100); do
	port=$(head -n1 "$T/proxy.port" 2>/dev/null || true)
	[ -n "$port" ] && break
	sleep 0.05
done
URL=https://127.0.0.1:$port/store

rc=0
"$S" assemble --store "$URL" --seed "$V1:$T/v1.caibx" --ca-file "$T/test-ca.pem" \
	--concurrency "$STREAMS" --max-attempts 1000 --stall-timeout 5 --json "$T/new.caibx" "$T/out.img" >"$T/out.json" 2>"$T/out.err" || rc=$?
kill "$PROXY_PID" 2>/dev/null || true
wait "$PROXY_PID" 2>/dev/null || true
fetched=$(json_get "$T/out.json" bytes_fetched)
secs=$(json_get "$T/out.json" seconds)
secs=$(printf '%.1f' "${secs:-0}")
resumed=$(json_get "$T/out.json" fetch_resumed)
retries=$(json_get "$T/out.json" fetch_retries)
conns=$(json_get "$T/out.json" connections)
cuts=$(grep -c '^cut ' "$T/cuts.log" || true)
echo "# $(cat "$T/out.json")"
if [ "$rc" -eq 0 ] && [ "$(json_get "$T/out.json" verified)" = true ]; then
	ok "assemble completes over the cut link (${secs} s, $retries retries, $resumed resumed, $conns connections)"
else
	not_ok "assemble over the cut link: exit $rc: $(head -c 400 "$T/out.err")"
fi
check "the target equals the new image" cmp -s "$T/new.img" "$T/out.img"
check "bytes fetched $fetched <= 1.02 x $needed_bytes compressed bytes needed" \
	test "${fetched:-999999999}" -le $((needed_bytes * 102 / 100))
check "... and at least the compressed bytes needed ($fetched >= $needed_bytes)" \
	test "${fetched:-0}" -ge "$needed_bytes"
check "the proxy cut connections at least twice ($cuts cuts)" test "$cuts" -ge 2
check "cut transfers were resumed ($resumed)" test "${resumed:-0}" -ge 1
check "with Range requests (HTTP 206 in the server's log)" grep -q ' 206 ' "$NGINX_LOG"
check "the link really was slow (${secs} s >= 3 s)" python3 -c "import sys; sys.exit(not float('${secs:-0}') >= 3)"
check "the seed is unchanged" test "$(sha256sum <"$V1")" = "$SEED_SUM"
finish

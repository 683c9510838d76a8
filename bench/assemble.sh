#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Device engine benchmarks, each against a peer in the same run:
#  1. every chunk local (seed = the image): slotsync assemble vs dd conv=fdatasync
#  2. every chunk over loopback HTTP/2 + TLS from nginx: target on disk (vs the
#     same dd figure) and on tmpfs (MB/s); beside it the peer's ceiling: h2load
#     (nghttp2's load client) fetching the same chunks with the same number of
#     streams and doing nothing with them, which is as fast as this nginx on
#     these cores serves them
#  3. a real update (Debian security pair, raw and zstd): slotsync assemble --seed
#     vs casync extract --seed, time and bytes downloaded (from nginx's log).
#     casync gets its own index and store (casync make --chunk-size=16384): it
#     chunks seeds with its own chunker, so it finds nothing in a seed when given
#     an index cut by another one.
#  4. concurrency: streams vs time on a link with 50 ms round trips (a delaying
#     proxy in front of nginx)
#  5. with BIG=1: peak RSS on a 4 GiB image, every chunk local and every chunk
#     over the network
#   bash bench/assemble.sh      (SIZE_MB=1024 sets the image of 1 and 2)
source "$(dirname "$0")/common.sh"
SLOTSYNC=${SLOTSYNC:-$ROOT/build/slotsync}
SIZE_MB=${SIZE_MB:-1024}
realistic_images
export SLOTSYNC_GEN=$GEN SLOTSYNC_BIN=$SLOTSYNC SLOTSYNC_SOURCE_DIR=$ROOT
source "$ROOT/tests/integration/lib.sh"
DISK=$(mktemp -d /var/tmp/slotsync-bench.XXXXXX)
CLEANUP+=("rm -rf '$DISK' /dev/shm/slotsync-bench-t.img /dev/shm/slotsync-bench-t.img.journal")
machine_facts
mbps() { echo "$1 / $2 / 1000000" | bc -l | xargs printf '%.0f'; }
timed() { # timed CMD...: wall seconds, output discarded, fails loudly
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >/dev/null 2>"$T/timed.err" || { cat "$T/timed.err" >&2; return 1; }
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc -l | xargs printf '%.3f'
}

random_file "$DISK/img" "$SIZE_MB" bench
$GEN make --no-progress --store "$DISK/www/store" "$DISK/img" "$DISK/img.caibx" >/dev/null
size=$(stat -c %s "$DISK/img")
start_nginx bench "$DISK/www"
A=(--store "$NGINX_URL/store" --ca-file "$T/test-ca.pem")

echo
echo "== 1, 2: $SIZE_MB MiB incompressible image (best of 3 each)"
h2load_all() { # every chunk once; fails unless every request succeeded
	h2load -i "$T/urls.txt" -n "$nurls" -c 1 -m 16 >"$T/h2load.txt"
	grep -q " $nurls succeeded" "$T/h2load.txt" || { cat "$T/h2load.txt" >&2; return 1; }
}
find "$DISK/www/store" -name '*.cacnk' | sed "s|^$DISK/www|$NGINX_URL|" >"$T/urls.txt"
nurls=$(wc -l <"$T/urls.txt")
best_dd=999 best_local=999 best_disk=999 best_tmpfs=999 best_h2load=999
for _ in 1 2 3; do
	sync
	t=$(timed dd if="$DISK/img" of="$DISK/dd.img" bs=1M conv=fdatasync); rm -f "$DISK/dd.img"
	best_dd=$(echo "if ($t < $best_dd) $t else $best_dd" | bc -l)
	sync
	t=$(timed "$SLOTSYNC" assemble --seed "$DISK/img:$DISK/img.caibx" "$DISK/img.caibx" "$DISK/t.img"); rm -f "$DISK/t.img"*
	best_local=$(echo "if ($t < $best_local) $t else $best_local" | bc -l)
	sync
	t=$(timed "$SLOTSYNC" assemble "${A[@]}" "$DISK/img.caibx" "$DISK/t.img"); rm -f "$DISK/t.img"*
	best_disk=$(echo "if ($t < $best_disk) $t else $best_disk" | bc -l)
	t=$(timed "$SLOTSYNC" assemble "${A[@]}" "$DISK/img.caibx" /dev/shm/slotsync-bench-t.img); rm -f /dev/shm/slotsync-bench-t.img*
	best_tmpfs=$(echo "if ($t < $best_tmpfs) $t else $best_tmpfs" | bc -l)
	t=$(timed h2load_all)
	best_h2load=$(echo "if ($t < $best_h2load) $t else $best_h2load" | bc -l)
done
printf '%-44s %8s s %6s MB/s\n' "dd conv=fdatasync (disk)" "$best_dd" "$(mbps "$size" "$best_dd")"
printf '%-44s %8s s %6s MB/s  %5.0f%% of dd\n' "slotsync, every chunk local (disk)" "$best_local" "$(mbps "$size" "$best_local")" "$(echo "100 * $best_dd / $best_local" | bc -l)"
printf '%-44s %8s s %6s MB/s  %5.0f%% of dd\n' "slotsync, every chunk over HTTP/2 (disk)" "$best_disk" "$(mbps "$size" "$best_disk")" "$(echo "100 * $best_dd / $best_disk" | bc -l)"
printf '%-44s %8s s %6s MB/s\n' "slotsync, every chunk over HTTP/2 (tmpfs)" "$best_tmpfs" "$(mbps "$size" "$best_tmpfs")"
printf '%-44s %8s s %6s MB/s\n' "h2load, same chunks, 16 streams (peer ceiling)" "$best_h2load" "$(mbps "$size" "$best_h2load")"

echo
echo "== 3: a real update, v1 -> v2, against casync extract --seed"
mkdir -p "$DISK/pub/store"
start_nginx pair "$DISK/pub" "location /plain/ { alias $DISK/pub/; }"
# casync's HTTP helper takes no CA file: it gets the same store over plain HTTP
PLAIN_PORT=$(free_port)
sed -i "s|listen 127.0.0.1:\([0-9]*\) ssl http2;|listen 127.0.0.1:\1 ssl http2; listen 127.0.0.1:$PLAIN_PORT;|" "$NGINX_DIR/nginx.conf"
nginx -c "$NGINX_DIR/nginx.conf" -p "$NGINX_DIR" -s reload
sleep 0.5
printf '%-6s %-10s %10s %12s %8s\n' image tool seconds downloaded requests
for kind in raw zstd; do
	if [ $kind = raw ]; then v1=$IMAGES/debian-v1.raw.sqfs v2=$IMAGES/debian-v2.raw.sqfs
	else v1=$IMAGES/debian-v1.sqfs v2=$IMAGES/debian-v2.sqfs; fi
	$GEN make --no-progress --store "$DISK/pub/store" "$v1" "$DISK/v1-$kind.caibx" >/dev/null
	$GEN make --no-progress --store "$DISK/pub/store" "$v2" "$DISK/v2-$kind.caibx" >/dev/null
	: >"$NGINX_LOG"
	t=$(timed "$SLOTSYNC" assemble --store "$NGINX_URL/store" --ca-file "$T/test-ca.pem" \
		--seed "$v1:$DISK/v1-$kind.caibx" "$DISK/v2-$kind.caibx" "$DISK/s.img")
	cmp -s "$v2" "$DISK/s.img" || echo "slotsync result differs!" >&2
	printf '%-6s %-10s %10s %12d %8d\n' $kind slotsync "$t" "$(awk '{s += $4} END {print s + 0}' "$NGINX_LOG")" "$(wc -l <"$NGINX_LOG")"
	rm -f "$DISK/s.img"*
	casync make --chunk-size=16384 --store="$DISK/pub/cstore" "$DISK/cv2-$kind.caibx" "$v2" >/dev/null
	: >"$NGINX_LOG"
	t=$(timed casync extract --store="http://127.0.0.1:$PLAIN_PORT/cstore" --seed="$v1" "$DISK/cv2-$kind.caibx" "$DISK/c.img")
	cmp -s "$v2" "$DISK/c.img" || echo "casync result differs!" >&2
	printf '%-6s %-10s %10s %12d %8d\n' $kind casync "$t" "$(awk '{s += $4} END {print s + 0}' "$NGINX_LOG")" "$(wc -l <"$NGINX_LOG")"
	rm -f "$DISK/c.img"
done

echo
bash "$ROOT/images/build-sample.sh" "$DISK/sample" >/dev/null
$GEN make --no-progress --store "$DISK/pub/store" "$DISK/sample/sample-v2.sqfs" "$DISK/sample.caibx" >/dev/null
ssize=$(stat -c %s "$DISK/sample/sample-v2.sqfs")
echo "== 4: concurrency on a link with 50 ms round trips (sample v2, no seed: $ssize bytes)"
port=${NGINX_URL##*:}
python3 "$ROOT/bench/delay_proxy.py" --upstream-port "$port" --delay-ms 25 --lifetime 900 >"$T/proxy.port" &
CLEANUP+=("kill $! 2>/dev/null")
sleep 0.5
PURL=https://127.0.0.1:$(head -n1 "$T/proxy.port")/store
printf '%-12s %10s %10s\n' concurrency seconds MB/s
for c in 1 4 8 16 32 64; do
	t=$(timed "$SLOTSYNC" assemble --store "$PURL" --ca-file "$T/test-ca.pem" --concurrency $c "$DISK/sample.caibx" /dev/shm/slotsync-bench-t.img)
	rm -f /dev/shm/slotsync-bench-t.img*
	printf '%-12s %10s %10.1f\n' $c "$t" "$(echo "$ssize / $t / 1000000" | bc -l)"
done

if [ "${BIG:-0}" = 1 ]; then
	echo
	echo "== 5: peak RSS on a 4 GiB image"
	random_file "$DISK/big" 4096 big
	$GEN make --no-progress --store "$DISK/www/store" "$DISK/big" "$DISK/big.caibx" >/dev/null
	/usr/bin/time -f "every chunk local:      %M KB peak RSS, %e s" "$SLOTSYNC" assemble --seed "$DISK/big:$DISK/big.caibx" "$DISK/big.caibx" "$DISK/t.img" >/dev/null
	rm -f "$DISK/t.img"*
	/usr/bin/time -f "every chunk over HTTP/2: %M KB peak RSS, %e s" "$SLOTSYNC" assemble "${A[@]}" "$DISK/big.caibx" "$DISK/t.img" >/dev/null
	rm -f "$DISK/t.img"* "$DISK/big"
fi

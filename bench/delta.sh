#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Every byte of an update, against the peers, on the realistic pairs of
# images/build-realistic.sh: security = v1 -> v2 (apt-get upgrade), feature =
# v2 -> v3 (9 packages added), each in five variants: raw (uncompressed), gzip
# (mksquashfs's default), xz (Yocto's squashfs-xz), lz4 (-Xhc) and zstd squashfs.
#
# The release is made as a build server makes it: slotsync-gen make of the new
# image, slotsync-gen delta from the base, slotsync-gen bundle --delta-from
# (the delta index named in the signed manifest; --detach-index when this
# slotsync-gen offers it: the index then lies in the store, with its diff from
# the base index).  nginx serves the bundle and the store over HTTP/2 + TLS on
# 127.0.0.1, and a device made of files (slot A holding the base release,
# installed with its index kept, slot B empty) runs `slotsync install URL`.
# What nginx sends ($bytes_sent of every request, from its access log) is the
# slotsync figure, in parts:
#   bundle        the signed bundle (manifest, signature, and the index unless detached)
#   index         the release index fetched from the store (its diff from the base
#                 index, or whole) when the bundle is detached
#   delta index   the delta index the manifest names
#   objects       the delta objects
#   chunks        the chunks no object covers
# chunks only: the bundle, the release index when detached and the chunks a
#   device without delta objects fetches (slotsync assemble --no-delta, same nginx)
# casync: casync make --chunk-size=16384 on both, chunk files of new not in old
# xdelta3 -9, zstd -19 --long=W --patch-from (W: the window covers the image),
#   bsdiff (on the variants in BENCH_BSDIFF: ~1 GB and a minute per pair): patch files
# goal: raw: slotsync / bsdiff (at most 0.9); compressed: slotsync / the best
#   of xdelta3, zstd and bsdiff (at most 0.5)
# Costs: wall seconds and peak RSS of slotsync-gen delta, and of the release
# (make + delta + bundle: seconds summed, the largest RSS); the device's CPU
# seconds (user + sys) and peak RSS of the install; bsdiff and bspatch.
#
#   bash bench/delta.sh          prints two markdown tables (docs/benchmarks.md)
# Environment: BENCH_VARIANTS ("raw gzip xz lz4 zstd"), BENCH_PAIRS
# ("security feature"), BENCH_BSDIFF ("raw gzip"), BENCH_TIMEOUT (seconds one
# peer tool may take, 900), BENCH_DELTA_OPTS (more options of slotsync-gen delta,
# e.g. "--records-level 19"), IMAGES, GEN, SLOTSYNC, BOOTCTL.
set -euo pipefail
source "$(dirname "$0")/common.sh"
VARIANTS=${BENCH_VARIANTS:-raw gzip xz lz4 zstd}
PAIRS=${BENCH_PAIRS:-security feature}
BSDIFF_ON=" ${BENCH_BSDIFF:-raw gzip} "
LIMIT=${BENCH_TIMEOUT:-900}
DELTA_OPTS=${BENCH_DELTA_OPTS:-}
SLOTSYNC=${SLOTSYNC:-$ROOT/build/slotsync}
BOOTCTL=${BOOTCTL:-$ROOT/build/slotsync-bootctl}
for tool in nginx casync xdelta3 zstd bsdiff bspatch openssl curl python3 /usr/bin/time; do
	command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done
ext_of() { case $1 in zstd) echo .sqfs ;; *) echo ".$1.sqfs" ;; esac; }
for v in $VARIANTS; do
	case $v in raw | gzip | xz | lz4 | zstd) ;; *) echo "unknown variant: $v" >&2; exit 2 ;; esac
	[ -s "$IMAGES/debian-v3$(ext_of "$v")" ] || bash "$ROOT/images/build-realistic.sh" "$IMAGES" >&2
done
W=$(mktemp -d "${TMPDIR:-/var/tmp}/slotsync-bench-delta.XXXXXX")
NGINX_PID=
trap '[ -z "$NGINX_PID" ] || kill "$NGINX_PID" 2>/dev/null; rm -rf "$W"' EXIT
START=$SECONDS

# "SECONDS MIB" (wall, peak RSS) of a command, which must succeed
measure() {
	/usr/bin/time -f '%e %M' -o "$W/time" timeout "$LIMIT" "$@" >"$W/out" 2>&1 || { tail -n 20 "$W/out" >&2; return 1; }
	awk '{printf "%.1f %.0f\n", $1, $2 / 1024}' "$W/time"
}
# "CPU_SECONDS MIB" (user + sys, peak RSS) of a command, which must succeed
measure_cpu() {
	/usr/bin/time -f '%U %S %M' -o "$W/time" timeout "$LIMIT" "$@" >"$W/out" 2>&1 || { tail -n 20 "$W/out" >&2; return 1; }
	awk '{printf "%.1f %.0f\n", $1 + $2, $3 / 1024}' "$W/time"
}

# bytes of the chunk files (casync's store layout, ours too) of the chunks of
# NEW.caibx that OLD.caibx lacks
casync_bytes() {
	python3 - "$1" "$2" "$3" <<'PY'
import os, sys
def ids(p):
    b = open(p, "rb").read()
    items = b[64:len(b) - 40]
    return [items[i + 8:i + 40].hex() for i in range(0, len(items), 40)]
old, new, store = sys.argv[1:4]
have = set(ids(old))
seen, total = set(), 0
for h in ids(new):
    if h in have or h in seen:
        continue
    seen.add(h)
    total += os.path.getsize(f"{store}/{h[:4]}/{h}.cacnk")
print(total)
PY
}

# nginx's access log, summed by what was sent: "bundle index dindex objects chunks other"
log_parts() {
	awk '{ b = $2; u = $3; sub(/\?.*/, "", u)
		if (u ~ /\.bundle$/) p["bundle"] += b
		else if (u ~ /\.caibx$/ || u ~ /\.sdid$/) p["index"] += b
		else if (u ~ /\.sdix$/) p["dindex"] += b
		else if (u ~ /\.sdob$/) p["objects"] += b
		else if (u ~ /\.cacnk$/) p["chunks"] += b
		else p["other"] += b }
		END { printf "%d %d %d %d %d %d\n", p["bundle"], p["index"], p["dindex"], p["objects"], p["chunks"], p["other"] }' "$1"
}

# ---- nginx: HTTP/2 + TLS on 127.0.0.1, $bytes_sent of every request ------------------
mkdir -p "$W/www" "$W/nginx/logs" "$W/nginx/tmp"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bench CA" -keyout "$W/ca.key" -out "$W/ca.pem" >/dev/null 2>&1
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$W/server.key" -out "$W/server.csr" >/dev/null 2>&1
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$W/server.ext"
openssl x509 -req -in "$W/server.csr" -CA "$W/ca.pem" -CAkey "$W/ca.key" -CAcreateserial -days 2 \
	-extfile "$W/server.ext" -out "$W/server.pem" >/dev/null 2>&1
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
cat >"$W/nginx/nginx.conf" <<NGINX
daemon on;
user root;
worker_processes 1;
pid $W/nginx/nginx.pid;
error_log $W/nginx/logs/error.log warn;
events { worker_connections 256; }
http {
	client_body_temp_path $W/nginx/tmp; proxy_temp_path $W/nginx/tmp; fastcgi_temp_path $W/nginx/tmp;
	uwsgi_temp_path $W/nginx/tmp; scgi_temp_path $W/nginx/tmp;
	log_format sent '\$status \$bytes_sent \$request_uri';
	default_type application/octet-stream;
	keepalive_requests 1000000;
	server {
		listen 127.0.0.1:$PORT ssl http2;
		ssl_certificate $W/server.pem;
		ssl_certificate_key $W/server.key;
		access_log $W/nginx/logs/access.log sent;
		root $W/www;
	}
}
NGINX
nginx -c "$W/nginx/nginx.conf" -p "$W/nginx" 2>"$W/nginx/start.err" || { cat "$W/nginx/start.err" >&2; exit 1; }
NGINX_PID=$(cat "$W/nginx/nginx.pid")
URL=https://127.0.0.1:$PORT
LOG=$W/nginx/logs/access.log

# ---- the build server's signing key ------------------------------------------------
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n' >"$W/sign.ext"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=fleet \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
	-keyout "$W/fleet.key" -out "$W/fleet.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=ci -keyout "$W/signer.key" -out "$W/signer.csr" 2>/dev/null
openssl x509 -req -in "$W/signer.csr" -CA "$W/fleet.pem" -CAkey "$W/fleet.key" -CAcreateserial -days 2 \
	-extfile "$W/sign.ext" -out "$W/signer.pem" 2>/dev/null

DETACH=()
if "$GEN" bundle --help 2>&1 | grep -q -- --detach-index; then
	DETACH=(--detach-index)
fi

# device DIR OLD OLD.caibx NEW: slot A holds OLD, installed by slotsync (its
# index kept in the state folder, its record good), slot B empty, booted from A
device() {
	local d=$1
	rm -rf "$d"
	mkdir -p "$d/state"
	cp "$2" "$d/slot-a.img"
	truncate -s "$(($(stat -L -c %s "$4") + (64 << 20)))" "$d/slot-b.img"
	cp "$3" "$d/state/slot-A.caibx"
	printf '{"A": {"status": "good", "version": "1.0", "bundle_sha256": "", "security_version": 0, "installed": 1}, "B": {"status": "", "version": "", "bundle_sha256": "", "security_version": 0, "installed": 0}}\n' \
		>"$d/state/slots.json"
	echo "slotsync.slot=A" >"$d/cmdline"
	cat >"$d/system.conf" <<CONF
[system]
compatible = bench
state-dir = $d/state
keyring = $W/fleet.pem
[boot]
backend = file
env = $d/state/boot.state
cmdline = $d/cmdline
[update]
store = $URL/store
ca-file = $W/ca.pem
[slot.A]
device = $d/slot-a.img
[slot.B]
device = $d/slot-b.img
CONF
	"$BOOTCTL" --backend file --env "$d/state/boot.state" init >/dev/null
}

echo "# every byte of an update, against the peers"
machine_facts
echo "release: slotsync-gen make, delta${DELTA_OPTS:+ $DELTA_OPTS}, bundle --delta-from${DETACH:+ --detach-index}$([ ${#DETACH[@]} = 0 ] && echo ' (this slotsync-gen has no --detach-index: the index travels in the bundle)')"
echo "device: slotsync install $URL/<bundle> over HTTP/2 + TLS (nginx $(nginx -v 2>&1 | sed 's|.*/||'))"
echo
BYTES=$W/bytes.md
COSTS=$W/costs.md
{
	printf '| pair | image | slotsync whole download | bundle | index | delta index | objects | chunks | chunks only | casync | xdelta3 -9 | zstd --patch-from | bsdiff | goal |\n'
	printf '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n'
} >"$BYTES"
{
	printf '| pair | image | slotsync-gen delta: s, MiB | release (make+delta+bundle): s, MiB | device install: CPU s, MiB | bsdiff: s, MiB | bspatch: CPU s, MiB |\n'
	printf '| --- | --- | ---: | ---: | ---: | ---: | ---: |\n'
} >"$COSTS"

for kind in $VARIANTS; do
	ext=$(ext_of "$kind")
	for name in $PAIRS; do
		case $name in
		security) a=1 b=2 ;;
		feature) a=2 b=3 ;;
		*) echo "unknown pair: $name" >&2; exit 2 ;;
		esac
		old=$IMAGES/debian-v$a$ext new=$IMAGES/debian-v$b$ext
		echo "$name $kind: $(stat -L -c %s "$old") -> $(stat -L -c %s "$new") bytes" >&2
		rm -rf "$W/www/store" "$W/www/new.bundle" "$W/cstore" "$W"/*.caibx
		# the base release, made earlier: its index and chunks are in the store
		"$GEN" make --no-progress --store "$W/www/store" "$old" "$W/old.caibx" >/dev/null
		# the release
		mk=$(measure "$GEN" make --no-progress --store "$W/www/store" "$new" "$W/new.caibx")
		# shellcheck disable=SC2086 # BENCH_DELTA_OPTS: words
		gen=$(measure "$GEN" delta $DELTA_OPTS --store "$W/www/store" --base "$W/old.caibx" --base-image "$old" "$W/new.caibx" "$new")
		bun=$(measure "$GEN" bundle --no-progress --store "$W/www/store" --image "$new" --version 2.0 --compatible bench \
			--delta-from "$W/old.caibx:$old" "${DETACH[@]}" --signer-cert "$W/signer.pem" --signer-key "$W/signer.key" \
			"$W/www/new.bundle")
		release=$(printf '%s\n%s\n%s\n' "$mk" "$gen" "$bun" | awk '{s += $1; if ($2 > m) m = $2} END {printf "%.1f %d\n", s, m}')

		# the device installs it; nginx counts what it sends
		device "$W/dev" "$old" "$W/old.caibx" "$new"
		: >"$LOG"
		app=$(measure_cpu "$SLOTSYNC" install --config "$W/dev/system.conf" --no-progress "$URL/new.bundle")
		cmp -s -n "$(stat -L -c %s "$new")" "$new" "$W/dev/slot-b.img" ||
			{ echo "slotsync install: slot B differs from $new" >&2; exit 1; }
		read -r p_bundle p_index p_dindex p_obj p_chunks p_other < <(log_parts "$LOG")
		total=$((p_bundle + p_index + p_dindex + p_obj + p_chunks + p_other))
		[ "$p_other" = 0 ] || echo "  $p_other bytes of other requests: $(awk '$3 !~ /\.(bundle|caibx|sdid|sdix|sdob|cacnk)$/' "$LOG" | head -3)" >&2

		# chunks only: what a device without delta objects fetches
		: >"$LOG"
		rm -f "$W/c.img" "$W/c.journal"
		"$SLOTSYNC" assemble --store "$URL/store" --ca-file "$W/ca.pem" --seed "$old" --seed-index "$W/old.caibx" \
			--journal "$W/c.journal" --no-delta "$W/new.caibx" "$W/c.img" >/dev/null
		cmp -s "$new" "$W/c.img" || { echo "slotsync assemble --no-delta: the result differs" >&2; exit 1; }
		full_index=0
		[ ${#DETACH[@]} = 0 ] || full_index=$(stat -L -c %s "$W/new.caibx")
		read -r _ _ _ _ c_chunks _ < <(log_parts "$LOG")
		chunks_only=$((p_bundle + full_index + c_chunks))
		rm -f "$W/c.img" "$W/c.journal"

		casync make --chunk-size=16384 --store="$W/cstore" "$W/cold.caibx" "$old" >/dev/null
		casync make --chunk-size=16384 --store="$W/cstore" "$W/cnew.caibx" "$new" >/dev/null
		cas=$(casync_bytes "$W/cold.caibx" "$W/cnew.caibx" "$W/cstore")
		rm -rf "$W/cstore"

		timeout "$LIMIT" xdelta3 -9 -f -e -s "$old" "$new" "$W/p.xd3"
		xd=$(stat -L -c %s "$W/p.xd3")
		# the window covers the larger image
		wlog=$(python3 -c "import math,sys; print(max(10, math.ceil(math.log2(max(map(int, sys.argv[1:]))))))" \
			"$(stat -L -c %s "$old")" "$(stat -L -c %s "$new")")
		timeout "$LIMIT" zstd -19 --long="$wlog" -q -f --patch-from="$old" "$new" -o "$W/p.zst" 2>/dev/null
		zs=$(stat -L -c %s "$W/p.zst")
		bs=— bsc=— bpc=—
		if [[ $BSDIFF_ON == *" $kind "* ]]; then
			bsc=$(measure bsdiff "$old" "$new" "$W/p.bsdiff")
			bs=$(stat -L -c %s "$W/p.bsdiff")
			bpc=$(measure_cpu bspatch "$old" "$W/t2.img" "$W/p.bsdiff")
			cmp -s "$new" "$W/t2.img" || { echo "bspatch: the result differs" >&2; exit 1; }
			rm -f "$W/t2.img"
		fi
		rm -f "$W/p.xd3" "$W/p.zst" "$W/p.bsdiff"
		goal=$(python3 - "$kind" "$total" "$xd" "$zs" "$bs" <<'PY'
import sys
kind, total = sys.argv[1], int(sys.argv[2])
peers = {"xdelta3": sys.argv[3], "zstd": sys.argv[4], "bsdiff": sys.argv[5]}
peers = {k: int(v) for k, v in peers.items() if v.isdigit()}
if kind == "raw":
    if "bsdiff" not in peers:
        print("(no bsdiff)")
    else:
        r = total / peers["bsdiff"]
        print(f"{r:.2f} of bsdiff {'≤' if r <= 0.9 else '>'} 0.9 {'met' if r <= 0.9 else 'missed'}")
else:
    best = min(peers, key=peers.get)
    r = total / peers[best]
    print(f"{r:.2f} of {best} {'≤' if r <= 0.5 else '>'} 0.5 {'met' if r <= 0.5 else 'missed'}")
PY
)
		printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$kind" "$total" \
			"$p_bundle" "$p_index" "$p_dindex" "$p_obj" "$p_chunks" "$chunks_only" "$cas" "$xd" "$zs" "$bs" "$goal" >>"$BYTES"
		printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$kind" "${gen/ /, }" "${release/ /, }" "${app/ /, }" \
			"${bsc/ /, }" "${bpc/ /, }" >>"$COSTS"
		echo "  done at ${SECONDS}s: $(tail -n1 "$BYTES")" >&2
	done
done
echo "Bytes (everything nginx sends for the update: \$bytes_sent of each request)"
echo
cat "$BYTES"
echo
echo "Costs"
echo
cat "$COSTS"
echo
echo "bench time: $((SECONDS - START)) s"

# SPDX-License-Identifier: LGPL-2.1-or-later
# A fleet behind a CDN (sourced after lib.sh), shared by
# tests/integration/test_fleet.sh (N=50, in CI) and bench/fleet.sh (N=1000):
#  - the build server: the sample pair, v2's bundle with delta objects from
#    v1, published into a folder (slotsync-gen publish --to);
#  - an origin nginx serving that folder over plain HTTP with the
#    Cache-Control publish gives an S3 bucket (content-addressed files
#    immutable, the rest an hour) at FLEET_ORIGIN_RATE (2 MB/s) a
#    connection, as an origin far from the edge, so the first devices' misses
#    overlap; its access log counts what reaches the origin;
#  - an edge nginx in front of it, as a CDN edge: HTTP/2 + TLS to the devices,
#    proxy_cache with proxy_cache_lock (concurrent misses for one object go to
#    the origin once, the others wait for the cached copy), expired entries
#    revalidated (a 304 from the origin, no body), keep-alive to the
#    origin, its own access log with $upstream_cache_status and the bytes it
#    sent;
#  - N devices, each a real `slotsync install` of the bundle's URL on the
#    edge with its own file-backed slots and state (v1 in slot A, its index
#    kept), in waves of at most FLEET_CONC at once, each under `timeout`;
#    a device's folder is removed once checked, so disk use is one wave's.
# Both servers listen on 127.0.0.1 only.  fleet_report sets FLEET_* figures.

FLEET_CONC=${FLEET_CONC:-10}
FLEET_TIMEOUT=${FLEET_TIMEOUT:-120}

# fleet_store: V1/V2 (sample_images), the signing CA in $T, the published
# folder $T/origin (store/ and v2.bundle); FLEET_SDOB: how many delta objects
# a device of v1 needs (all of them: the store holds only v1 -> v2)
fleet_store() {
	local B=$T/build
	sample_images
	signing_ca "$T"
	mkdir -p "$B"
	"$SLOTSYNC_GEN" make --no-progress --store "$B/store" "$V1" "$T/v1.caibx" >/dev/null
	"$SLOTSYNC_GEN" bundle --no-progress --store "$B/store" --image "$V2" --version 2.0 --compatible fleet \
		--delta-from "$T/v1.caibx:$V1" --signer-cert "$T/signer.pem" --signer-key "$T/signer.key" \
		"$B/v2.bundle" >/dev/null
	"$SLOTSYNC_GEN" publish --store "$B/store" --bundle "$B/v2.bundle" --to "$T/origin" >"$T/publish.txt"
	FLEET_SDOB=$(find "$T/origin/store" -name '*.sdob' | wc -l)
	FLEET_IMG_BYTES=$(stat -c %s "$V2")
}

# fleet_nginx NAME LISTEN SERVER_BODY [HTTP_EXTRA]: an nginx of its own in
# $T/nginx-NAME (workers as root: the scratch folder is private); waits until
# it answers, then empties its access log
fleet_nginx() {
	local name=$1 listen=$2 body=$3 extra=${4:-} dir=$T/nginx-$1 url
	mkdir -p "$dir/logs" "$dir/tmp"
	cat >"$dir/nginx.conf" <<NGINX
daemon on;
user root;
worker_processes ${FLEET_EDGE_WORKERS:-2};
worker_rlimit_nofile 8192;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $dir/tmp; proxy_temp_path $dir/tmp; fastcgi_temp_path $dir/tmp;
	uwsgi_temp_path $dir/tmp; scgi_temp_path $dir/tmp;
	default_type application/octet-stream;
	keepalive_requests 1000000;
	$extra
	server {
		listen $listen;
		access_log $dir/logs/access.log fleet_$name;
		$body
	}
}
NGINX
	nginx -c "$dir/nginx.conf" -p "$dir" 2>"$dir/start.err" || { cat "$dir/start.err"; return 1; }
	CLEANUP+=("kill \$(cat '$dir/nginx.pid') 2>/dev/null; sleep 0.2")
	case $listen in *ssl*) url=https://${listen%% *} ;; *) url=http://${listen%% *} ;; esac
	for _ in $(seq 100); do
		curl -sk -o /dev/null "$url/.ready" && break
		sleep 0.1
	done
	for _ in $(seq 100); do
		grep -qF /.ready "$dir/logs/access.log" 2>/dev/null && break
		sleep 0.05
	done
	grep -qF /.ready "$dir/logs/access.log" || { echo "nginx $name: no answer on $url" >&2; return 1; }
	: >"$dir/logs/access.log"
}

# fleet_servers: the origin on $T/origin, the edge in front of it; sets
# EDGE_URL, EDGE_LOG (cache status, status, bytes sent, connection, URI),
# ORIGIN_LOG (status, body bytes, URI) and EDGE_PID (the edge's master)
fleet_servers() {
	local op ep
	op=$(free_port)
	fleet_nginx origin "127.0.0.1:$op" "root $T/origin; add_header Cache-Control \$fleet_cc; limit_rate ${FLEET_ORIGIN_RATE:-2m};" \
		"log_format fleet_origin '\$status \$body_bytes_sent \$request_uri';
	map \$uri \$fleet_cc { ~\\.(cacnk|sdob|caibx)\$ 'public, max-age=31536000, immutable'; default 'public, max-age=3600'; }"
	ORIGIN_LOG=$T/nginx-origin/logs/access.log
	make_ca test
	make_cert test server 127.0.0.1
	ep=$(free_port)
	fleet_nginx edge "127.0.0.1:$ep ssl http2" "ssl_certificate $T/server.pem; ssl_certificate_key $T/server.key;
		location / {
			proxy_pass http://origin;
			proxy_http_version 1.1;
			proxy_set_header Connection '';
			proxy_cache edge;
			proxy_cache_lock ${FLEET_CACHE_LOCK:-on};
			proxy_cache_lock_timeout 60s;
			proxy_cache_lock_age 60s;
			proxy_cache_revalidate on;
		}" \
		"log_format fleet_edge '\$upstream_cache_status \$status \$bytes_sent \$connection \$request_uri';
	ssl_session_cache shared:SSL:10m;
	proxy_cache_path $T/nginx-edge/cache levels=1:2 keys_zone=edge:16m max_size=2g inactive=1d use_temp_path=off;
	upstream origin { server 127.0.0.1:$op; keepalive 32; }"
	EDGE_URL=https://127.0.0.1:$ep
	EDGE_LOG=$T/nginx-edge/logs/access.log
	EDGE_PID=$(cat "$T/nginx-edge/nginx.pid")
	# the edge's readiness probe went through to the origin
	: >"$ORIGIN_LOG"
}

# fleet_edge_ticks: CPU clock ticks (user + system) of the edge's worker
# processes, from /proc/PID/stat
fleet_edge_ticks() {
	local pid t=0 s
	for pid in $(ps -o pid= --ppid "$EDGE_PID"); do
		grep -q 'worker process' "/proc/$pid/cmdline" 2>/dev/null || continue
		s=$(cut -d' ' -f14,15 "/proc/$pid/stat") || continue
		t=$((t + ${s% *} + ${s#* }))
	done
	echo $t
}

# fleet_device_make I: device I in $T/fleet/dev-I running v1 from slot A with
# v1's index kept (the base of the delta objects), its store the edge
fleet_device_make() {
	local d=$T/fleet/dev-$1
	device_fixture "$d" fleet "$d/state/boot.state" "store = $EDGE_URL/store
ca-file = $T/test-ca.pem" >/dev/null
	cp "$T/v1.caibx" "$d/state/slot-A.caibx"
	echo '{"A": {"status": "good", "version": "1.0"}}' >"$d/state/slots.json"
}

# fleet_device_run I: install v2 from the edge on device I, under timeout;
# appends "I EXIT MS EXACT OBJECTS BYTES" to $T/fleet/results (EXACT 1 when
# slot B holds v2 byte for byte; OBJECTS and BYTES: what the install says the
# store served) and removes the device (its output kept when it failed)
fleet_device_run() {
	local i=$1 d=$T/fleet/dev-$1 rc=0 t0 ms exact=0 objects bytes
	t0=$(date +%s%N)
	timeout "$FLEET_TIMEOUT" "$SLOTSYNC_BIN" install --no-progress --config "$d/system.conf" "$EDGE_URL/v2.bundle" \
		>"$d/out.txt" 2>&1 || rc=$?
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	cmp -s -n "$FLEET_IMG_BYTES" "$d/slot-b.img" "$V2" && exact=1
	objects=$(sed -n 's/^install: store .*: \([0-9]*\) bytes, \([0-9]*\) objects.*/\2/p' "$d/out.txt" | head -n1)
	bytes=$(sed -n 's/^install: store .*: \([0-9]*\) bytes, \([0-9]*\) objects.*/\1/p' "$d/out.txt" | head -n1)
	echo "$i $rc $ms $exact ${objects:-0} ${bytes:-0}" >>"$T/fleet/results"
	if [ $rc -ne 0 ] || [ $exact -ne 1 ]; then
		cp "$d/out.txt" "$T/fleet/failed-$i.txt"
	fi
	rm -rf "$d"
}

# fleet_run N: N devices in waves of FLEET_CONC, no new wave once
# FLEET_MAX_SECONDS (if set) have passed; sets FLEET_N (devices run),
# FLEET_WALL (seconds) and FLEET_EDGE_CPU (the edge workers' CPU seconds over
# the run)
fleet_run() {
	local n=$1 first last i t0 ticks0
	mkdir -p "$T/fleet"
	: >"$T/fleet/results"
	ticks0=$(fleet_edge_ticks)
	t0=$(date +%s%N)
	FLEET_N=0
	for ((first = 1; first <= n; first += FLEET_CONC)); do
		if [ -n "${FLEET_MAX_SECONDS:-}" ] && [ $(( ($(date +%s%N) - t0) / 1000000000 )) -ge "$FLEET_MAX_SECONDS" ]; then
			echo "# $FLEET_MAX_SECONDS s passed: no more waves after $FLEET_N devices"
			break
		fi
		last=$((first + FLEET_CONC - 1))
		[ $last -le "$n" ] || last=$n
		for ((i = first; i <= last; i++)); do fleet_device_make $i; done
		for ((i = first; i <= last; i++)); do fleet_device_run $i & done
		wait
		FLEET_N=$last
	done
	FLEET_WALL=$(echo "scale=1; ($(date +%s%N) - $t0) / 1000000000" | bc)
	FLEET_EDGE_CPU=$(echo "scale=2; ($(fleet_edge_ticks) - $ticks0) / $(getconf CLK_TCK)" | bc)
}

# fleet_report N: the figures, printed as "# " lines, and set as FLEET_EXACT
# (devices byte-exact), FLEET_OK (exited 0), FLEET_ORIGIN_REQ, FLEET_OBJECTS
# (distinct objects the origin served), FLEET_ORIGIN_RATIO, FLEET_IMM_REQ and
# FLEET_IMM_OBJECTS (the same for the content-addressed, immutable objects),
# FLEET_REVALIDATED (304 answers of the origin), FLEET_EDGE_REQ,
# FLEET_REQ_PER_DEV, FLEET_BYTES_PER_DEV (edge bytes sent), FLEET_CPU_MS_PER_DEV,
# FLEET_P50_MS, FLEET_P95_MS, FLEET_DELTA_DEVS (devices whose store served
# exactly the delta index and the delta objects), FLEET_SDOB_REQ and
# FLEET_CHUNK_REQ (.sdob and .cacnk requests at the edge), FLEET_CACHE
# (requests by cache status)
fleet_report() {
	local n=$1 R=$T/fleet/results
	FLEET_EXACT=$(awk '$4 == 1' "$R" | wc -l)
	FLEET_OK=$(awk '$2 == 0' "$R" | wc -l)
	FLEET_DELTA_DEVS=$(awk -v o=$((FLEET_SDOB + 1)) '$5 == o' "$R" | wc -l)
	FLEET_ORIGIN_REQ=$(wc -l <"$ORIGIN_LOG")
	FLEET_OBJECTS=$(awk '{print $3}' "$ORIGIN_LOG" | sort -u | wc -l)
	FLEET_ORIGIN_RATIO=$(echo "scale=3; $FLEET_ORIGIN_REQ / $FLEET_OBJECTS" | bc)
	FLEET_IMM_REQ=$(grep -cE '\.(cacnk|sdob|caibx)$' "$ORIGIN_LOG" || true)
	FLEET_IMM_OBJECTS=$(awk '{print $3}' "$ORIGIN_LOG" | grep -E '\.(cacnk|sdob|caibx)$' | sort -u | wc -l)
	FLEET_REVALIDATED=$(awk '$1 == 304' "$ORIGIN_LOG" | wc -l)
	FLEET_EDGE_REQ=$(wc -l <"$EDGE_LOG")
	FLEET_REQ_PER_DEV=$(echo "scale=1; $FLEET_EDGE_REQ / $n" | bc)
	FLEET_BYTES_PER_DEV=$(awk -v n="$n" '{s += $3} END {printf "%d", s / n}' "$EDGE_LOG")
	FLEET_CPU_MS_PER_DEV=$(echo "scale=2; $FLEET_EDGE_CPU * 1000 / $n" | bc)
	FLEET_P50_MS=$(awk '{print $3}' "$R" | sort -n | awk '{a[NR] = $1} END {print a[int((NR * 50 + 99) / 100)]}')
	FLEET_P95_MS=$(awk '{print $3}' "$R" | sort -n | awk '{a[NR] = $1} END {print a[int((NR * 95 + 99) / 100)]}')
	FLEET_SDOB_REQ=$(grep -c '\.sdob$' "$EDGE_LOG" || true)
	FLEET_CHUNK_REQ=$(grep -c '\.cacnk$' "$EDGE_LOG" || true)
	FLEET_CACHE=$(awk '{print $1}' "$EDGE_LOG" | sort | uniq -c | awk '{printf "%s%s %s", (NR > 1 ? ", " : ""), $2, $1}')
	echo "# $n devices in waves of $FLEET_CONC: $FLEET_WALL s; byte-exact $FLEET_EXACT, exit 0 $FLEET_OK"
	echo "# image $FLEET_IMG_BYTES bytes, $FLEET_SDOB delta objects; edge requests $FLEET_EDGE_REQ ($FLEET_REQ_PER_DEV per device; cache: $FLEET_CACHE)"
	echo "# origin: $FLEET_ORIGIN_REQ requests for $FLEET_OBJECTS distinct objects ($FLEET_ORIGIN_RATIO per object;" \
		"$FLEET_IMM_REQ for the $FLEET_IMM_OBJECTS immutable ones; $FLEET_REVALIDATED answered 304 to a revalidation)"
	echo "# edge: $FLEET_BYTES_PER_DEV bytes sent per device, $FLEET_EDGE_CPU CPU s in all ($FLEET_CPU_MS_PER_DEV ms per device)"
	echo "# install wall time: p50 $FLEET_P50_MS ms, p95 $FLEET_P95_MS ms"
	local f
	for f in "$T"/fleet/failed-*.txt; do
		[ -e "$f" ] || break
		echo "# ${f##*/}: $(head -c 400 "$f" | tr '\n' ' ')"
	done
}

# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared helpers for the integration tests (sourced).  Each test gets a scratch
# folder that is removed on exit, and the paths of the programs under test.
set -euo pipefail

: "${SLOTSYNC_GEN:?set by ctest}"
: "${SLOTSYNC_SOURCE_DIR:?set by ctest}"
T=$(mktemp -d "${TMPDIR:-/tmp}/slotsync-it.XXXXXX")
CLEANUP=()
cleanup() {
	local rc=$?
	for c in "${CLEANUP[@]}"; do eval "$c" || true; done
	rm -rf "$T"
	exit $rc
}
trap cleanup EXIT

PASS=0
FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
not_ok() { FAIL=$((FAIL + 1)); echo "not ok - $*"; }
check() { # check "description" command...
	local what=$1; shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}
# expect_fail "description" "needle in stderr" command...: must exit non-zero
# and say what was wrong.
expect_fail() {
	local what=$1 needle=$2; shift 2
	local rc=0
	"$@" >"$T/out.txt" 2>"$T/err.txt" || rc=$?
	if [ $rc -ne 0 ] && grep -qF -- "$needle" "$T/err.txt"; then
		ok "$what (exit $rc: $(head -c 200 "$T/err.txt" | tr '\n' ' '))"
	else
		not_ok "$what: exit $rc, stderr: $(cat "$T/err.txt")"
	fi
}
finish() {
	echo "$PASS passed, $FAIL failed"
	[ "$FAIL" -eq 0 ]
}

# Sample images, built once per test run into a shared cache folder (the
# builder renames each image into place whole, v2 last; the lock spares a
# second build while one runs).
sample_images() {
	local dir=${SLOTSYNC_SAMPLE_DIR:-${TMPDIR:-/tmp}/slotsync-samples}
	if [ ! -s "$dir/sample-v2.sqfs" ]; then
		mkdir -p "$dir"
		(
			flock 9
			[ -s "$dir/sample-v2.sqfs" ] || bash "$SLOTSYNC_SOURCE_DIR/images/build-sample.sh" "$dir" >/dev/null
		) 9>"$dir.lock"
	fi
	V1=$dir/sample-v1.sqfs
	V2=$dir/sample-v2.sqfs
}

# sample_images_comp COMP [MKSQUASHFS_OPTS]: the sample pair compressed with
# COMP (gzip, xz, lz4, zstd) and those extra options, built once per folder;
# sets CV1 and CV2.  Named sample-vN.COMP[-OPTS].sqfs beside the default pair.
sample_images_comp() {
	local dir=${SLOTSYNC_SAMPLE_DIR:-${TMPDIR:-/tmp}/slotsync-samples} comp=$1 opts=${2:-} suffix
	suffix=$comp$(printf '%s' "$opts" | tr -c 'A-Za-z0-9' '-')
	if [ ! -s "$dir/sample-v2.$suffix.sqfs" ]; then
		mkdir -p "$dir"
		(
			flock 9
			[ -s "$dir/sample-v2.$suffix.sqfs" ] ||
				SAMPLE_SUFFIX=$suffix SAMPLE_MKSQ_OPTS=$opts \
					bash "$SLOTSYNC_SOURCE_DIR/images/build-sample.sh" "$dir" --comp "$comp" >/dev/null
		) 9>"$dir.lock"
	fi
	CV1=$dir/sample-v1.$suffix.sqfs
	CV2=$dir/sample-v2.$suffix.sqfs
}

# Deterministic incompressible data: N MiB from seed S.
random_file() { # random_file PATH MIB SEED
	head -c "$(($2 * 1048576))" < <(openssl enc -aes-128-ctr -nosalt -pass "pass:$3" -pbkdf2 -in /dev/zero 2>/dev/null) >"$1"
}

# kill_trials LABEL N RATE BOUND SEED_IMG SEED_IDX NEW_IDX NEW_IMG STORE_URL [DELTA_INDEX]: N runs
# of `slotsync assemble` (SLOTSYNC_BIN, CONC streams, the nginx of start_nginx,
# the options in the array KILL_TRIAL_OPTS added) killed at random instants and
# resumed; every resume byte-exact, and what each fetches again at most BOUND bytes
kill_trials() {
	local label=$1 n=$2 rate=$3 bound=$4 simg=$5 sidx=$6 nidx=$7 nimg=$8 url=$9
	local B=(--store "$url" --ca-file "$T/test-ca.pem" --concurrency "${CONC:-4}" "${KILL_TRIAL_OPTS[@]}") start dur_ms needed worst=0 fails=0 delay pid extra
	[ -z "${10:-}" ] || B+=(--delta-index "${10}")
	rm -f "$T/cal.img" "$T/cal.img.journal"
	: >"$NGINX_LOG"
	start=$(date +%s%N)
	"$SLOTSYNC_BIN" assemble "${B[@]}" --seed "$simg:$sidx" --max-rate "$rate" "$nidx" "$T/cal.img" >/dev/null
	dur_ms=$(( ($(date +%s%N) - start) / 1000000 ))
	needed=$(awk '{s += $4} END {print s}' "$NGINX_LOG")
	echo "# $label: a run takes $dur_ms ms at $rate bytes/s, fetching $needed bytes; re-fetch bound per kill $bound bytes"
	for i in $(seq 1 "$n"); do
		rm -f "$T/k.img" "$T/k.img.journal"
		: >"$NGINX_LOG"
		delay=$(( RANDOM % (dur_ms + 1) ))
		"$SLOTSYNC_BIN" assemble "${B[@]}" --seed "$simg:$sidx" --max-rate "$rate" "$nidx" "$T/k.img" >/dev/null 2>&1 &
		pid=$!
		sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
		kill -9 $pid 2>/dev/null || true
		wait $pid 2>/dev/null || true
		if ! "$SLOTSYNC_BIN" assemble "${B[@]}" --seed "$simg:$sidx" --json "$nidx" "$T/k.img" >"$T/k.json" 2>&1 ||
			! cmp -s "$nimg" "$T/k.img"; then
			not_ok "$label, kill trial $i (at $delay ms): the resumed target is not byte-exact"
			fails=$((fails + 1))
			continue
		fi
		extra=$(( $(awk '{s += $4} END {print s + 0}' "$NGINX_LOG") - needed ))
		[ $extra -gt $worst ] && worst=$extra
		if [ $extra -gt "$bound" ]; then
			not_ok "$label, kill trial $i (at $delay ms): $extra bytes fetched again, more than $bound"
			fails=$((fails + 1))
		fi
	done
	check "$label: $n kills at random instants: every resume byte-exact, at most $worst bytes fetched again (bound $bound)" \
		test $fails -eq 0
}
# --- TLS and nginx -------------------------------------------------------------

# make_ca NAME: a CA (NAME-ca.pem / NAME-ca.key) in $T
make_ca() {
	openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=$1 test CA" \
		-keyout "$T/$1-ca.key" -out "$T/$1-ca.pem" >/dev/null 2>&1
}
# make_cert CA NAME CN: a certificate NAME.pem / NAME.key signed by CA, for CN
# (and 127.0.0.1, localhost), with serverAuth and clientAuth
make_cert() {
	local ca=$1 name=$2 cn=$3
	openssl req -newkey rsa:2048 -nodes -subj "/CN=$cn" -keyout "$T/$name.key" -out "$T/$name.csr" >/dev/null 2>&1
	printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' >"$T/$name.ext"
	openssl x509 -req -in "$T/$name.csr" -CA "$T/$ca-ca.pem" -CAkey "$T/$ca-ca.key" -CAcreateserial \
		-days 30 -extfile "$T/$name.ext" -out "$T/$name.pem" >/dev/null 2>&1
}
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
# free_port_pair: a port P with P+1 also free (for servers that take two)
free_port_pair() {
	python3 -c '
import socket
for _ in range(100):
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 1))
    except OSError:
        a.close(); b.close(); continue
    a.close(); b.close(); print(p); break
else:
    raise SystemExit("no free pair of ports")
'
}
# start_nginx NAME ROOT [SERVER_EXTRA] [CERT]: serves ROOT over HTTP/2 + TLS on
# 127.0.0.1; sets NGINX_URL and NGINX_LOG (access log: protocol, connection
# serial, status, body bytes, URI).  The CA is $T/test-ca.pem.
start_nginx() {
	local name=$1 root=$2 extra=${3:-} cert=${4:-server}
	local dir=$T/nginx-$name port
	[ -f "$T/test-ca.pem" ] || make_ca test
	[ -f "$T/$cert.pem" ] || make_cert test "$cert" 127.0.0.1
	mkdir -p "$dir/logs" "$dir/tmp"
	# another test may take the probed port before nginx binds it: then nginx
	# says "Address already in use", and the next try takes another port
	local try
	for try in $(seq 10); do
		port=$(free_port)
		cat >"$dir/nginx.conf" <<NGINX
daemon on;
user root;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 256; }
http {
	access_log off;
	client_body_temp_path $dir/tmp; proxy_temp_path $dir/tmp; fastcgi_temp_path $dir/tmp;
	uwsgi_temp_path $dir/tmp; scgi_temp_path $dir/tmp;
	log_format chunks '\$server_protocol \$connection \$status \$body_bytes_sent \$request_uri';
	default_type application/octet-stream;
	keepalive_requests 1000000;
	server {
		listen 127.0.0.1:$port ssl http2;
		ssl_certificate $T/$cert.pem;
		ssl_certificate_key $T/$cert.key;
		access_log $dir/logs/access.log chunks;
		root $root;
		$extra
	}
}
NGINX
		nginx -c "$dir/nginx.conf" -p "$dir" 2>"$dir/start.err" && break
		if [ "$try" -lt 10 ] && grep -q "Address already in use" "$dir/start.err"; then
			continue
		fi
		cat "$dir/start.err"; return 1
	done
	CLEANUP+=("kill \$(cat '$dir/nginx.pid') 2>/dev/null; sleep 0.2")
	NGINX_URL=https://127.0.0.1:$port
	NGINX_LOG=$dir/logs/access.log
	NGINX_DIR=$dir
	# nginx is up once it answers; its access log line for that answer is
	# written after the answer went out, so wait for the line before emptying
	# the log (a line written after would count as a request of the test);
	# -k: a server may be given a certificate the test CA did not sign
	local probe=/.slotsync-ready-$RANDOM$RANDOM
	for _ in $(seq 100); do
		curl -sk -o /dev/null "$NGINX_URL$probe" && break
		sleep 0.1
	done
	for _ in $(seq 100); do
		grep -qF "$probe" "$NGINX_LOG" 2>/dev/null && break
		sleep 0.05
	done
	grep -qF "$probe" "$NGINX_LOG" || { echo "nginx $name: no answer on $NGINX_URL" >&2; return 1; }
	: >"$NGINX_LOG"
}

# --- a device made of files ------------------------------------------------------

# signing_ca [DIR] [SIGNER]: a throwaway fleet CA (DIR/ca.pem, DIR/ca.key) and a
# release signer it issued with the codeSigning usage (DIR/SIGNER.pem and
# DIR/SIGNER.key; SIGNER defaults to "signer"), in DIR (default: the current
# folder).
signing_ca() {
	local d=${1:-.} n=${2:-signer}
	printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n' >"$d/sign.ext"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=ca \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
		-keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=ci -keyout "$d/$n.key" -out "$d/$n.csr" 2>/dev/null
	openssl x509 -req -in "$d/$n.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 30 \
		-extfile "$d/sign.ext" -out "$d/$n.pem" 2>/dev/null
}

# boot_writes DIR: how many times an install wrote the file-backend boot state
# DIR/state/boot.state (its sequence number, less the first write: init, when
# device_fixture made the device)
boot_writes() {
	python3 - "$1/state/boot.state" <<'PY'
import struct, sys
try:
    b = open(sys.argv[1], "rb").read()
except FileNotFoundError:
    print(0); sys.exit()
seqs = [struct.unpack_from("<Q", b, o + 16)[0] for o in (0, 512) if len(b) >= o + 64 and b[o:o + 12] == b"SLOTSYNCBOOT"]
print(max(seqs) - 1 if seqs else 0)
PY
}
# points_at_b DIR: B comes first in DIR/state/boot.state
points_at_b() {
	$SLOTSYNC_BOOTCTL --backend file --env "$1/state/boot.state" status --json |
		python3 -c "import json,sys; s=json.load(sys.stdin)['slots']; sys.exit(0 if s['B']['priority'] > s['A']['priority'] else 1)"
}

# device_fixture DIR COMPATIBLE BOOT_ENV [UPDATE_LINES]: a fresh device in DIR
# running $V1 (sample_images) from slot A, slot B empty (16M), its state folder,
# a kernel command line saying slotsync.slot=A, the boot state in BOOT_ENV
# (file backend, provisioned with slotsync-bootctl init: A good and first), and DIR/system.conf trusting $T/ca.pem with UPDATE_LINES
# (newline-separated keys) as its [update] section.
device_fixture() {
	local d=$1
	rm -rf "$d"
	mkdir -p "$d/state"
	cp "$V1" "$d/slot-a.img"
	truncate -s 16M "$d/slot-b.img"
	echo "slotsync.slot=A" >"$d/cmdline"
	cat >"$d/system.conf" <<CONF
[system]
compatible = $2
state-dir = $d/state
keyring = $T/ca.pem
[boot]
backend = file
env = $3
cmdline = $d/cmdline
[update]
${4:-}
[slot.A]
device = $d/slot-a.img
[slot.B]
device = $d/slot-b.img
CONF
	"${SLOTSYNC_BOOTCTL:?set by ctest}" --backend file --env "$3" init
}

# start_swtpm NAME VAR: a TPM of its own, stopped when the test ends; sets VAR
# to its TCTI string (not printed: a command substitution would run it in a
# subshell, whose CLEANUP the test never sees, and leave the daemon running)
start_swtpm() {
	local d=$T/tpm-$1 p try
	mkdir -p "$d"
	# swtpm needs two ports (server P, control P+1). Another test may take
	# either between the probe and swtpm's bind: then swtpm says "Address
	# already in use" and exits, and the next try takes another pair.
	for try in $(seq 10); do
		p=$(free_port_pair)
		rm -f "$d/pid"
		if swtpm socket --tpm2 --tpmstate dir="$d" --server type=tcp,port=$p,bindaddr=127.0.0.1 \
			--ctrl type=tcp,port=$((p + 1)),bindaddr=127.0.0.1 --flags not-need-init,startup-clear \
			--pid file="$d/pid" -d; then
			break
		fi
		[ "$try" -lt 10 ] || { echo "start_swtpm: swtpm did not start in 10 tries" >&2; return 1; }
	done
	CLEANUP+=("kill \$(cat '$d/pid') 2>/dev/null")
	for _ in $(seq 50); do [ -s "$d/pid" ] && break; sleep 0.1; done
	printf -v "$2" 'swtpm:host=127.0.0.1,port=%s' "$p"
}

# console_status LOG: the JSON status a booted system printed on its serial
# console (lines "SYSTEST status64 BASE64" then "SYSTEST status64-end SHA256",
# written twice by the guest's report), from the first copy whose digest
# matches; "null" if none does (the journal's messages share the console and
# may cut into a line)
console_status() {
	python3 - "$1" <<'PY'
import base64, binascii, hashlib, re, sys
parts, out = [], "null"
for line in open(sys.argv[1], errors="replace"):
    m = re.search(r"SYSTEST status64 ([A-Za-z0-9+/=]+)\r?$", line)
    if m:
        parts.append(m.group(1))
        continue
    m = re.search(r"SYSTEST status64-end ([0-9a-f]{64})\r?$", line)
    if m:
        try:
            data = base64.b64decode("".join(parts), validate=True)
        except (binascii.Error, ValueError):
            data = b""
        parts = []
        if hashlib.sha256(data).hexdigest() == m.group(1):
            out = data.decode(errors="replace")
            break
print(out)
PY
}

# quiet_boot_units ROOT: mask in a release root what a device does not need on
# the way to the agent (an emulated boot pays seconds for each: utmp alone took
# 2.4 s), as the whole-system suites' releases do
quiet_boot_units() {
	local u
	for u in systemd-update-utmp.service systemd-update-utmp-runlevel.service systemd-logind.service \
		e2scrub_reap.service apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
		fstrim.timer systemd-tmpfiles-clean.timer; do
		ln -sf /dev/null "$1/etc/systemd/system/$u"
	done
}

#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A device's life on its embedded default, end to end, with the programs of
# this build:
#   1. three releases of a sample root (v1.0, v2.0 and v3.0, whose health check
#      fails), signed bundles in one chunk store, and a throwaway CA;
#   2. nginx serving the store, the bundles and the signed channel pointer over
#      HTTP/2 + TLS on 127.0.0.1;
#   3. a device made of files: A/B slot files, a boot state file, and the
#      kernel command line its simulated bootloader writes;
#   4. the agent installs v2.0 (progress on a terminal), asks for a reboot; the
#      device boots slot B, the health checks pass, B is marked good and stays
#      across two more boots;
#   5. the channel moves to v3.0: installed into A, booted, its health check
#      fails, A is marked bad, the device falls back to B and v2.0, and v3.0 is
#      never installed again;
#   6. a report: bytes downloaded against image sizes, time per step, the final
#      boot state.
# Snapshots of `slotsync status --json` after each stage stay in WORK (default
# out/story) with the logs; tests/integration/test_story.sh checks them.
#
#   scripts/story.sh        (after scripts/build.sh; scripts/demo.sh runs both)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${SLOTSYNC_BIN_DIR:-$ROOT/build}
S=$BIN/slotsync
G=$BIN/slotsync-gen
BC=$BIN/slotsync-bootctl
WORK=${WORK:-$ROOT/out/story}
export LC_ALL=C
for p in "$S" "$G" "$BC"; do [ -x "$p" ] || { echo "story: $p is not built (run scripts/build.sh)" >&2; exit 1; }; done
for t in nginx openssl mksquashfs unsquashfs python3; do
	command -v $t >/dev/null || { echo "story: needs $t (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
rm -rf "$WORK"
mkdir -p "$WORK"/{www,device/state,pki}
NGINX_PID=
cleanup() { [ -z "$NGINX_PID" ] || kill "$NGINX_PID" 2>/dev/null || true; }
trap cleanup EXIT
START=$(date +%s.%N)
stage() { echo; echo "== $*"; }
say() { echo "   $*"; }
fail() { echo "story: $*" >&2; exit 1; }
snap() { "$S" status --config "$CONF" --json >"$WORK/status-$1.json"; }
DEV=$WORK/device
CONF=$DEV/system.conf

stage "1. Three releases, signed"
SAMPLES=${SLOTSYNC_SAMPLE_DIR:-$WORK/samples}
if [ ! -s "$SAMPLES/sample-v2.sqfs" ]; then
	mkdir -p "$SAMPLES"
	bash "$ROOT/images/build-sample.sh" "$SAMPLES" >/dev/null
fi
# release VERSION SOURCE_IMAGE [failing]: the sample root plus its health checks
release() {
	local v=$1 src=$2 tree=$WORK/tree-$1 h
	unsquashfs -q -n -d "$tree" "$src" >/dev/null
	h=$tree/usr/lib/slotsync/health.d
	mkdir -p "$h"
	cat >"$h/10-system" <<'CHECK'
#!/bin/sh
# the booted root has its shell
root=$(cd "$(dirname "$0")/../../../.." && pwd)
[ -x "$root/bin/busybox" ] || { echo "no /bin/busybox in $root" >&2; exit 1; }
CHECK
	if [ "${3:-}" = failing ]; then
		printf '#!/bin/sh\necho "radio link: no carrier on the new driver" >&2\nexit 1\n' >"$h/20-radio-link"
	fi
	chmod 755 "$h"/*
	echo "VERSION_ID=$v" >"$tree/etc/slotsync-release"
	mksquashfs "$tree" "$WORK/release-$v.sqfs" -noappend -quiet -all-root -mkfs-time 0 -all-time 0 >/dev/null
	rm -rf "$tree"
}
release 1.0 "$SAMPLES/sample-v1.sqfs"
release 2.0 "$SAMPLES/sample-v2.sqfs"
release 3.0 "$SAMPLES/sample-v2.sqfs" failing
P=$WORK/pki
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=story release CA" \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
	-keyout "$P/ca.key" -out "$P/ca.pem" 2>/dev/null
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n' >"$P/sign.ext"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=story CI signer" \
	-keyout "$P/signer.key" -out "$P/signer.csr" 2>/dev/null
openssl x509 -req -in "$P/signer.csr" -CA "$P/ca.pem" -CAkey "$P/ca.key" -CAcreateserial -days 30 \
	-extfile "$P/sign.ext" -out "$P/signer.pem" 2>/dev/null
SIGN=(--signer-cert "$P/signer.pem" --signer-key "$P/signer.key")
prev=
for v in 1.0 2.0 3.0; do
	sv=${v%%.*}
	# each release also carries delta objects from the one before it (the
	# devices that run it download those instead of most chunks)
	delta=()
	[ -n "$prev" ] && delta=(--delta-from "$WORK/release-$prev.caibx:$WORK/release-$prev.sqfs")
	"$G" bundle --no-progress --store "$WORK/www/store" --image "$WORK/release-$v.sqfs" --version $v \
		--compatible radio-bs-demo --security-version "$sv" "${delta[@]}" "${SIGN[@]}" "$WORK/www/v$v.bundle" |
		sed 's/^/   /'
	"$G" make --no-progress "$WORK/release-$v.sqfs" "$WORK/release-$v.caibx" >/dev/null
	prev=$v
done
EXPIRES=$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)
publish() { # publish POINTER_VERSION RELEASE
	"$G" channel --bundle-url "v$2.bundle" --bundle "$WORK/www/v$2.bundle" --version "$1" --expires "$EXPIRES" \
		--compatible radio-bs-demo "${SIGN[@]}" "$WORK/www/stable.pointer" | sed 's/^/   /'
}

stage "2. The update server: nginx, HTTP/2 over TLS, 127.0.0.1"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=story server CA" \
	-addext basicConstraints=critical,CA:TRUE -keyout "$P/server-ca.key" -out "$P/server-ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
	-keyout "$P/server.key" -out "$P/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$P/server.ext"
openssl x509 -req -in "$P/server.csr" -CA "$P/server-ca.pem" -CAkey "$P/server-ca.key" -CAcreateserial -days 30 \
	-extfile "$P/server.ext" -out "$P/server.pem" 2>/dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<NGINX
daemon off;
user root;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 64; }
http {
	client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx; fastcgi_temp_path $WORK/nginx;
	uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
	log_format story '\$server_protocol \$status \$body_bytes_sent \$request_uri';
	access_log $WORK/nginx/access.log story;
	default_type application/octet-stream;
	server {
		listen 127.0.0.1:$PORT ssl http2;
		ssl_certificate $P/server.pem;
		ssl_certificate_key $P/server.key;
		root $WORK/www;
	}
}
NGINX
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" 2>"$WORK/nginx/start.err" &
NGINX_PID=$!
URL=https://127.0.0.1:$PORT
for _ in $(seq 100); do
	curl -s -o /dev/null --cacert "$P/server-ca.pem" "$URL/" && break
	sleep 0.05
done
say "serving $WORK/www at $URL (store, bundles, channel pointer)"
publish 1 2.0

stage "3. A device made of files, running v1.0 from slot A"
cp "$WORK/release-1.0.sqfs" "$DEV/slot-a.img"
truncate -s 24M "$DEV/slot-a.img"
truncate -s 24M "$DEV/slot-b.img"
cat >"$DEV/reboot" <<REBOOT
#!/bin/sh
# the device's reboot-command: in this story the bootloader below plays the reboot
touch "$DEV/reboot-requested"
REBOOT
chmod 755 "$DEV/reboot"
cat >"$CONF" <<CONF
# a radio base station, as /etc/slotsync/system.conf (docs/system.conf.example)
[system]
compatible = radio-bs-demo
state-dir = $DEV/state
keyring = $P/ca.pem
boot-tries = 3
[boot]
backend = file
env = $DEV/boot.state
cmdline = $DEV/cmdline
[update]
channel = $URL/stable.pointer
store = $URL/store
ca-file = $P/server-ca.pem
poll-interval = 6h
max-rate = 2M
reboot-command = $DEV/reboot
health-dir = $DEV/running/usr/lib/slotsync/health.d
health-timeout = 30s
[slot.A]
device = $DEV/slot-a.img
[slot.B]
device = $DEV/slot-b.img
CONF
# what the factory knows of what it flashed: slot A holds v1.0, good, and the
# index of its image (so that updates can use delta objects from it)
mkdir -p "$DEV/state"
cp "$WORK/release-1.0.caibx" "$DEV/state/slot-A.caibx"
printf '{"A": {"status": "good", "version": "1.0", "bundle_sha256": "%s", "security_version": 1, "installed": 0}, "B": {"status": "", "version": "", "bundle_sha256": "", "security_version": 0, "installed": 0}}\n' \
	"$(sha256sum "$WORK/www/v1.0.bundle" | cut -c1-64)" >"$DEV/state/slots.json"
# the factory's first boot state: A good and first
"$BC" --backend file --env "$DEV/boot.state" init
BOOTS=0
: >"$WORK/boots.txt"
# boot: the simulated bootloader picks a slot (taking a try from one not yet
# good), "runs" its root (its health checks are what the device runs), and the
# agent starts as systemd would start it
boot() {
	local slot tries good ver
	BOOTS=$((BOOTS + 1))
	rm -f "$DEV/reboot-requested"
	slot=$("$BC" --backend file --env "$DEV/boot.state" simulate-boot)
	echo "slotsync.slot=$slot" >"$DEV/cmdline"
	rm -rf "$DEV/running"
	unsquashfs -q -n -d "$DEV/running" "$DEV/slot-$(echo "$slot" | tr AB ab).img" bin/busybox usr/lib/slotsync etc/slotsync-release >/dev/null
	ver=$(sed -n 's/VERSION_ID=//p' "$DEV/running/etc/slotsync-release")
	read -r tries good < <("$BC" --backend file --env "$DEV/boot.state" status --json |
		python3 -c "import json,sys; s=json.load(sys.stdin)['slots']['$slot']; print(s['tries'], int(s['good']))")
	say "boot $BOOTS: GRUB-like choice: slot $slot, release $ver ($tries tries left, $([ "$good" = 1 ] && echo good || echo on trial))"
	echo "$BOOTS $slot $ver $tries $good" >>"$WORK/boots.txt"
}
agent() { # the agent's start after a boot: validate it, then poll once
	local rc=0
	if [ -t 2 ] && [ -t 1 ]; then
		# on a terminal: the agent's own progress bar
		"$S" agent --config "$CONF" --once || rc=$?
	else
		"$S" agent --config "$CONF" --once 2>&1 | tee -a "$WORK/agent.log" | sed -u 's/^slotsync: info: /   agent: /' || rc=$?
	fi
	return $rc
}
bytes_served() { awk '{s+=$3} END {print s+0}' "$WORK/nginx/access.log"; }
boot
snap 1-v1-running
"$S" status --config "$CONF" | sed 's/^/   /'

stage "4. Channel pointer 1 names v2.0: the agent installs it (capped at 2 MB/s), the device reboots into it"
agent
[ -e "$DEV/reboot-requested" ] || fail "the agent did not ask for a reboot after installing v2.0"
cp "$DEV/state/install.json" "$WORK/install-2.0.json"
SERVED_V2=$(bytes_served)
snap 2-v2-installed
boot
agent
snap 3-v2-good
"$S" status --config "$CONF" | sed 's/^/   /'
boot
agent
boot
agent
snap 4-v2-stays

stage "5. Channel pointer 2 names v3.0, whose radio check fails"
publish 2 3.0
agent
[ -e "$DEV/reboot-requested" ] || fail "the agent did not ask for a reboot after installing v3.0"
cp "$DEV/state/install.json" "$WORK/install-3.0.json"
SERVED_V3=$(( $(bytes_served) - SERVED_V2 ))
snap 5-v3-installed
boot
agent || true
snap 6-v3-failed
[ -e "$DEV/reboot-requested" ] || fail "the agent did not reboot away from the failed slot"
boot
agent
snap 7-fell-back
"$S" status --config "$CONF" | sed 's/^/   /'

stage "6. Report"
python3 - "$WORK" "$SERVED_V2" "$SERVED_V3" "$(python3 -c "import time; print(time.time() - $START)")" <<'PY'
import json, os, sys
work, v2, v3, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
for ver, served in (("2.0", v2), ("3.0", v3)):
    rec = json.load(open(f"{work}/install-{ver}.json"))
    size = rec["bytes_total"]
    print(f"   v{ver} into slot {rec['target']}: image {size:,} bytes; downloaded {served:,} bytes "
          f"({100.0 * served / size:.1f}% of the image; chunks and delta objects {rec['bytes_fetched']:,}, the rest signed metadata), "
          f"{rec['bytes_from_seed']:,} bytes from the running slot")
    steps = ", ".join(f"{k} {v:.2f} s" for k, v in rec["seconds"].items())
    print(f"      time per step: {steps}")
st = json.load(open(f"{work}/status-7-fell-back.json"))
print("   boots:")
for line in open(f"{work}/boots.txt"):
    n, slot, ver, tries, good = line.split()
    print(f"      {n:>2}: slot {slot}  v{ver:<4} tries left {tries}  {'good' if good == '1' else 'on trial'}")
for s in ("A", "B"):
    x = st["slots"][s]
    print(f"   final: slot {s}: {x['status']:<9} v{x['version'] or '-':<4} priority {x['priority']}, "
          f"tries {x['tries']}, {'good' if x['good'] else 'not good'}{'  <- booted' if x['booted'] else ''}")
for f in st["failed_releases"]:
    print(f"   remembered as failed: v{f['version']}: {f['reason']}")
print(f"   the whole story took {secs:.1f} s; everything is in {work}")
PY

#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The build server's release cycle exactly as docs/publishing.md gives it: its
# release.sh and prune.sh, taken from the document, run for two boards (a
# "pc" with a root filesystem, an "arm" whose slot group is rootfs + boot)
# sharing one store, publishing to a folder served by nginx:
#  - two releases per board; devices (file-backed slots, running release 1
#    and its index) poll their board's channel pointer with `slotsync agent
#    --once` through the store list the document shows, a CDN first and the
#    origin second, and install release 2 byte-exact: two pc devices through
#    the document's nginx edge (proxy_cache) with delta objects, the origin
#    asked once per object for both, a missing object's 404 kept briefly; an
#    arm device, its CDN unreachable, with its boot image too;
#  - a third pc release; the pc fleet now on 2 and 3: prune.sh removes the pc's
#    release 1 (its bundle, its folder) but keeps its chunks, which the arm's
#    kept release 1 (the same root filesystem) needs: one run for every board;
#    the arm fleet then on 2 only: pc 1 is refused by name for its missing
#    chunks, every release a fleet runs is whole in both stores, a device
#    still running the pruned arm 1 installs arm 2 from chunks, and a device
#    running pc 2 installs pc 3 from the pruned folder with delta objects;
#  - the nginx cache configuration of the document (Cache-Control per kind)
#    answers with the headers it names.
source "$(dirname "$0")/lib.sh"
S=$SLOTSYNC_BIN
G=$SLOTSYNC_GEN
DOC=$SLOTSYNC_SOURCE_DIR/docs/publishing.md
sample_images
cd "$T"

# doc_block NAME: the ```sh block that follows the line "<!-- NAME -->" in the document
doc_block() {
	awk -v m="<!-- $1 -->" '$0 == m { on = 1; next } on && /^```/ { if (b) exit; b = 1; next } b { print }' "$DOC"
}
for f in release.sh prune.sh; do
	doc_block "$f" >"$f"
	check "docs/publishing.md gives $f" test -s "$f"
done
doc_block nginx-origin >origin.conf
check "docs/publishing.md gives the origin's nginx cache settings" grep -q Cache-Control origin.conf
# the document's commands call slotsync-gen by name
mkdir bin
ln -s "$G" bin/slotsync-gen
export PATH=$T/bin:$PATH

export SRV=$T/srv WWW=$T/www/fleet
mkdir -p "$SRV/keys" "$WWW"
signing_ca "$SRV/keys"
cp "$SRV/keys/ca.pem" "$T/ca.pem"   # the devices' keyring (device_fixture)
start_nginx origin "$T/www" "$(cat origin.conf)"
export DEST=$WWW URL=$NGINX_URL/fleet
LOG=$NGINX_LOG

random_file boot1.vfat 2 boot1
cp boot1.vfat boot2.vfat
random_file new.bin 1 boot2
dd if=new.bin of=boot2.vfat bs=1M seek=1 conv=notrunc status=none
cp "$V2" v3.img
random_file head.bin 1 v3
dd if=head.bin of=v3.img conv=notrunc status=none

run() { # run SCRIPT ARGS...: the document's script, its output kept for the log
	sh "$@" >"$T/run.out" 2>&1 || { sed 's/^/# /' "$T/run.out"; return 1; }
}
check "release.sh pc 1" run release.sh pc 1 "$V1"
cp "$SRV/releases/pc/1/rootfs.caibx" pc1.caibx
check "release.sh arm 1 (rootfs + boot)" run release.sh arm 1 "$V1" boot=boot1.vfat
check "release.sh pc 2 (delta from 1, which the pc fleet runs)" run release.sh pc 2 "$V2"
check "... bundle -v logged the delta objects from 1" grep -q "delta objects from $SRV/releases/pc/1/rootfs.caibx: [1-9]" "$T/run.out"
check "release.sh arm 2 (rootfs + boot)" run release.sh arm 2 "$V2" boot=boot2.vfat
check "one store for both boards; bundles and pointers at the top of the published folder" \
	test -d "$WWW/store" -a -s "$WWW/pc-2.bundle" -a -s "$WWW/arm-2.bundle" -a -s "$WWW/pc.channel" -a -s "$WWW/arm.channel"
check "the pc's bundle carries delta objects from 1 (a delta index in the published store)" \
	bash -c "ls '$WWW'/store/deltas/*/*.sdix >/dev/null"

# the document's edge nginx in front of the origin: its http block, with this
# test's port, certificate, cache folder and origin
doc_block nginx-edge >edge.conf
EPORT=$(free_port)
mkdir -p edge/logs edge/tmp
{
	echo "daemon on; user root; worker_processes 1; pid $T/edge/nginx.pid; error_log $T/edge/logs/error.log warn;"
	echo "events { worker_connections 256; }"
	echo "http {"
	echo "client_body_temp_path $T/edge/tmp; proxy_temp_path $T/edge/tmp; fastcgi_temp_path $T/edge/tmp;"
	echo "uwsgi_temp_path $T/edge/tmp; scgi_temp_path $T/edge/tmp;"
	echo "log_format chunks '\$server_protocol \$connection \$status \$body_bytes_sent \$request_uri \$upstream_cache_status';"
	echo "access_log $T/edge/logs/access.log chunks;"
	sed -e "s|/var/cache/nginx/fleet|$T/edge/cache|" -e "s|listen 443 ssl http2;|listen 127.0.0.1:$EPORT ssl http2;|" \
		-e "s|/etc/ssl/cdn.pem|$T/server.pem|; s|/etc/ssl/cdn.key|$T/server.key|" \
		-e "s|proxy_pass https://origin.example.com;|proxy_pass ${URL%/fleet};|" edge.conf
	echo "}"
} >edge/nginx.conf
nginx -c "$T/edge/nginx.conf" -p "$T/edge" 2>edge/start.err || cat edge/start.err
CLEANUP+=("kill \$(cat '$T/edge/nginx.pid') 2>/dev/null; sleep 0.2")
EDGE=https://127.0.0.1:$EPORT/fleet
ELOG=$T/edge/logs/access.log
check "the document's edge configuration runs" curl -sf -o /dev/null --cacert "$T/test-ca.pem" "$EDGE/pc.channel"

# devices: the store list of the document, a CDN first (the edge, or one that
# does not answer), the origin second
CDN=$EDGE/store
device() { # device DIR BOARD VERSION IMAGE INDEX [boot]: running VERSION of BOARD from slot A, its index kept
	local d=$T/$1 b=$2
	device_fixture "$d" "$b" "$d/state/boot.state" "channel = $URL/$b.channel
store = $CDN
store = $URL/store
ca-file = $T/test-ca.pem
reboot-command = touch $d/rebooted"
	cp "$4" "$d/slot-a.img"
	cp "$5" "$d/state/slot-A.caibx"
	echo "{\"A\": {\"status\": \"good\", \"version\": \"$3\"}}" >"$d/state/slots.json"
	if [ -n "${6:-}" ]; then
		cp boot1.vfat "$d/boot-a.img"
		truncate -s 4M "$d/boot-b.img"
		sed -i "s|^\[slot.A\]$|&\nboot = $d/boot-a.img|; s|^\[slot.B\]$|&\nboot = $d/boot-b.img|" "$d/system.conf"
	fi
}
holds() { cmp -s "$1" <(head -c "$(stat -c %s "$1")" "$2"); }
device pc pc 1 "$V1" pc1.caibx
device pcb pc 1 "$V1" pc1.caibx
: >"$LOG"
: >"$ELOG"
check "pc device: agent --once follows pc.channel and installs pc 2" $S agent --config pc/system.conf --once
check "... slot B holds release 2 byte for byte" holds "$V2" pc/slot-b.img
check "... with delta objects, through the edge" bash -c "awk '\$3 == 200' '$ELOG' | grep -q '[.]sdob'"
check "a second pc device installs pc 2 byte for byte" bash -c "$S agent --config pcb/system.conf --once && $(declare -f holds) && holds '$V2' pcb/slot-b.img"
per_object=$(awk '$5 ~ /store\// {n[$5]++} END {m = 0; for (k in n) if (n[k] > m) m = n[k]; print m}' "$LOG")
check "... the edge asked the origin for each object once for both devices (at most $per_object)" test "$per_object" = 1
check "... its second device's objects were edge cache hits" \
	test "$(awk '$5 ~ /[.](sdob|sdix|sdid|caibx)$/ && $6 == "HIT"' "$ELOG" | wc -l)" -ge 3
: >"$LOG"
for i in 1 2; do curl -s -o /dev/null --cacert "$T/test-ca.pem" "$EDGE/store/0000/missing.cacnk"; done
check "... a missing object: the edge keeps the 404 briefly, the origin asked once for two requests" \
	test "$(grep -c missing.cacnk "$LOG")" = 1
CDN=https://127.0.0.1:$(free_port)/fleet/store
device arm arm 1 "$V1" "$SRV/releases/arm/1/rootfs.caibx" boot
check "arm device (slot group rootfs + boot; its CDN unreachable): agent --once installs arm 2" $S agent --config arm/system.conf --once
check "... rootfs and boot both byte for byte" bash -c "$(declare -f holds); holds '$V2' arm/slot-b.img && holds boot2.vfat arm/boot-b.img"

# the cache headers of the document's nginx configuration
hdr() { curl -s -I --cacert "$T/test-ca.pem" "$URL/$1" | tr -d '\r' | sed -n 's/^[Cc]ache-[Cc]ontrol: //p'; }
chunk=$(cd "$WWW" && find store -name '*.cacnk' -print -quit)
sdix=$(cd "$WWW" && find store -name '*.sdix' -print -quit)
check "origin: a chunk is immutable ($(hdr "$chunk"))" test "$(hdr "$chunk")" = "public, max-age=31536000, immutable"
check "origin: a delta index an hour ($(hdr "$sdix"))" test "$(hdr "$sdix")" = "public, max-age=3600"
check "origin: a channel pointer a minute ($(hdr pc.channel))" test "$(hdr pc.channel)" = "public, max-age=60"

# ---- a third pc release; the pc fleet runs 2 and 3: prune -------------------------------
check "release.sh pc 3 (deltas from 1 and 2)" run release.sh pc 3 v3.img
printf '2\n3\n' >"$SRV/releases/pc/fleet.txt"
export GRACE=0 # every file here is a moment old
check "prune.sh, the pc fleet on 2 and 3, the arm fleet on 1 and 2 (GRACE=0)" \
	run prune.sh
check "the pc's release 1 is gone from the build server and the published folder" \
	test ! -e "$SRV/releases/pc/1" -a ! -e "$WWW/pc-1.bundle" -a -e "$WWW/pc-2.bundle"
check "... but not its chunks: the arm's release 1 is the same root filesystem, and one run keeps every board's" \
	$G check -q --store "$WWW/store" --index pc1.caibx
cp "$SRV/releases/arm/1/rootfs.caibx" arm1.caibx
printf '2\n' >"$SRV/releases/arm/fleet.txt"
check "prune.sh, the arm fleet now on 2 only" run prune.sh
expect_fail "the pc's release 1 is refused by name for its missing chunks" "is missing" \
	$G check --store "$WWW/store" --index pc1.caibx
check "every release a fleet runs is whole in both stores (pc 2 and 3, arm 2)" bash -c "
	for s in '$SRV/store' '$WWW/store'; do
		for r in pc/2 pc/3 arm/2; do $G check -q --store \$s --index '$SRV/releases/'\$r/rootfs.caibx || exit 1; done
	done"
device arm1 arm 1 "$V1" arm1.caibx boot
: >"$LOG"
check "a device still running the pruned arm 1 installs arm 2" $S agent --config arm1/system.conf --once
check "... rootfs and boot byte for byte, from its running slot, the release's pack objects and chunks: nothing served for its pruned base" \
	bash -c "$(declare -f holds); holds '$V2' arm1/slot-b.img && holds boot2.vfat arm1/boot-b.img &&
		! awk '\$3 == 200' '$LOG' | grep -q 'deltas/$(sha256sum arm1.caibx | cut -c1-64)/' &&
		awk '\$3 == 200' '$LOG' | grep -q 'deltas/0\{64\}/.*[.]sdix' && awk '\$3 == 200 && \$5 ~ /[.]cacnk\$/' '$LOG' | grep -q ."
device pc2 pc 2 "$V2" "$SRV/releases/pc/2/rootfs.caibx"
: >"$LOG"
check "a device running pc 2 installs pc 3 from the pruned folder" $S agent --config pc2/system.conf --once
check "... byte for byte, with delta objects" bash -c "$(declare -f holds); holds v3.img pc2/slot-b.img && grep -q '\.sdob' '$LOG'"
finish

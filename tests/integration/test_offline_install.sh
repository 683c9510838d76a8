#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Installs with no network: a bundle that embeds its chunks (slotsync-gen
# bundle --embed, --embed-for BASE) installed from a USB-style folder, and a
# chunk store that is a local folder (store = /path, assemble --store /path or
# file:///path).  Proves that no request is made at all (the configured store
# is a listener that records every connection; one run has no network
# namespace at all), that SIGKILLs at random instants (SLOTSYNC_OFFLINE_KILL_TRIALS,
# default 6) always end, on the same command, byte-exact and switched exactly
# once, that a tampered embedded chunk or a corrupt chunk file in a local
# store is refused, and that an install that then has nowhere to fetch the
# chunk from fails and says so.
source "$(dirname "$0")/lib.sh"
S=$SLOTSYNC_BIN
G=$SLOTSYNC_GEN
TRIALS=${SLOTSYNC_OFFLINE_KILL_TRIALS:-6}
sample_images
cd "$T"
signing_ca
SIZE=$(stat -c %s "$V2")
mkdir -p www/store usb

# the release: every chunk inside the bundle, or only those a v1 device lacks
$G make --no-progress --store www/store "$V1" v1.caibx >/dev/null
check "slotsync-gen bundle --embed writes a bundle with the release's chunks inside" \
	$G bundle --no-progress --store www/store --image "$V2" --version 2.0 --compatible usb-test \
	--embed --signer-cert signer.pem --signer-key signer.key usb/v2.bundle
check "slotsync-gen bundle --embed-for v1.caibx writes one with only what v1 lacks" \
	$G bundle --no-progress --store www/store --image "$V2" --version 2.0 --compatible usb-test \
	--embed-for v1.caibx --signer-cert signer.pem --signer-key signer.key usb/v2-for-v1.bundle
$G bundle --no-progress --store www/store --image "$V2" --version 2.0 --compatible usb-test \
	--signer-cert signer.pem --signer-key signer.key plain.bundle >/dev/null
ALL=$(stat -c %s usb/v2.bundle) FOR=$(stat -c %s usb/v2-for-v1.bundle) PLAIN=$(stat -c %s plain.bundle)
echo "# bundle sizes: plain $PLAIN, --embed $ALL, --embed-for v1 $FOR; image $SIZE"
check "(the embedding bundles carry chunks; --embed-for carries fewer)" \
	test "$PLAIN" -lt "$FOR" -a "$FOR" -lt "$ALL"
check "an embedding bundle verifies like any other" $S verify --keyring ca.pem --compatible usb-test usb/v2.bundle

# the store the devices are configured with: a listener that records every
# connection and answers none
PORT=$(free_port)
python3 - "$PORT" "$T/connections" <<'PY' &
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
while True:
    c, _ = s.accept()
    open(sys.argv[2], "a").write("connection\n"); c.close()
PY
CLEANUP+=("kill $! 2>/dev/null")
for _ in $(seq 50); do python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT)).close()" 2>/dev/null && break; sleep 0.1; done
rm -f "$T/connections" # the probe above
sleep 0.2; rm -f "$T/connections"
UNREACHABLE="store = https://127.0.0.1:$PORT/store
stall-timeout = 2"

installed() { # installed DIR: slot B is v2 byte for byte, the boot state written once, pointing at B
	cmp -s -n "$SIZE" "$1/slot-b.img" "$V2" && points_at_b "$1" && [ "$(boot_writes "$1")" = 1 ] &&
		[ "$(python3 -c "import json; print(json.load(open('$1/state/install.json'))['step'])")" = reboot ]
}

D=$T/dev
device_fixture "$D" usb-test "$D/state/boot.state" "$UNREACHABLE"
t0=$(date +%s.%N)
check "install from a USB folder, the configured store unreachable" $S install --config "$D/system.conf" "$T/usb/v2.bundle"
FULL=$(echo "$(date +%s.%N) - $t0" | bc)
check "(slot B is v2 byte for byte, switched once)" installed "$D"
device_fixture "$D" usb-test "$D/state/boot.state"
check "install of --embed-for v1 with no store at all, in a namespace with no network" \
	unshare -n $S install --config "$D/system.conf" "$T/usb/v2-for-v1.bundle"
check "(slot B is v2 byte for byte, switched once)" installed "$D"

# SIGKILL at random instants, then the same command
fails=0
for i in $(seq 1 "$TRIALS"); do
	device_fixture "$D" usb-test "$D/state/boot.state" "$UNREACHABLE"
	$S install --config "$D/system.conf" "$T/usb/v2.bundle" >/dev/null 2>&1 &
	pid=$!
	sleep "$(echo "scale=3; $FULL * $((RANDOM % 1000)) / 1000" | bc)"
	kill -9 $pid 2>/dev/null || true
	wait $pid 2>/dev/null || true
	step=$(python3 -c "import json; print(json.load(open('$D/state/install.json'))['step'])" 2>/dev/null || echo verify)
	if points_at_b "$D" 2>/dev/null && ! cmp -s -n "$SIZE" "$D/slot-b.img" "$V2"; then
		not_ok "trial $i (killed at step $step): the boot state points at slot B, which is not byte-exact"
		fails=$((fails + 1))
	fi
	if ! $S install --config "$D/system.conf" "$T/usb/v2.bundle" >"$T/rerun.out" 2>&1 || ! installed "$D"; then
		not_ok "trial $i (killed at step $step): after the rerun: $(head -c 300 "$T/rerun.out"), boot state written $(boot_writes "$D") times"
		fails=$((fails + 1))
	fi
	echo "# trial $i: killed at step $step"
done
check "$TRIALS SIGKILLs during offline installs, then the same command: byte-exact and switched exactly once" test $fails -eq 0
check "no install made a single connection to the configured store" test ! -e "$T/connections"

# a tampered embedded chunk: refused; with no store the install fails and says so
python3 - usb/v2-for-v1.bundle tampered.bundle <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack_from("<I", b, 16)[0]
lens = [struct.unpack_from("<Q", b, 24 + 8 * i)[0] for i in range(n)]
off = 24 + 8 * n + sum(lens)
assert b[off] == 0x30 and b[off + 1] == 0x82
data = off + 4 + (b[off + 2] << 8 | b[off + 3])
table = 24 + 8 * n + sum(lens[:3])
foff, flen = struct.unpack_from("<QI", b, table + 24 + 32)
b[data + foff + flen // 2] ^= 0x40
open(sys.argv[2], "wb").write(b)
PY
device_fixture "$D" usb-test "$D/state/boot.state"
expect_fail "a tampered embedded chunk is refused; with no store the install fails clearly" \
	"no store URL was given" unshare -n $S install --config "$D/system.conf" "$T/tampered.bundle"
check "(the refusal names the chunk)" grep -q "embedded chunk .* refused: .*SHA-256" "$T/err.txt"
check "(nothing switched)" test "$(boot_writes "$D")" = 0
start_nginx store "$T/www"
device_fixture "$D" usb-test "$D/state/boot.state" "store = $NGINX_URL/store
ca-file = $T/test-ca.pem"
check "with a store, the tampered chunk comes from the network and the rest from the bundle" \
	$S install --config "$D/system.conf" "$T/tampered.bundle"
check "(slot B is v2 byte for byte, switched once; one chunk fetched)" \
	bash -c "$(declare -f installed points_at_b boot_writes); SIZE=$SIZE V2='$V2' SLOTSYNC_BOOTCTL='$SLOTSYNC_BOOTCTL' installed '$D' && [ \$(grep -c cacnk '$NGINX_LOG') = 1 ]"

# memory stays bounded: a bundle of 48 MiB of incompressible chunks installs
# in far less (it is copied, verified and read a frame at a time)
random_file big.img 48 11
$G bundle --no-progress --store big-store --image big.img --version 9.0 --compatible usb-test --embed \
	--signer-cert signer.pem --signer-key signer.key usb/big.bundle >/dev/null
device_fixture "$D" usb-test "$D/state/boot.state"
truncate -s 64M "$D/slot-b.img"
/usr/bin/time -o rss.txt -f %M unshare -n $S install --config "$D/system.conf" "$T/usb/big.bundle" >/dev/null
RSS_KB=$(cat rss.txt)
# memory is measured in the plain build; a sanitizer's shadow memory is not the program's
RSS_MAX_KB=40960
[ "${SLOTSYNC_SANITIZE:-OFF}" = ON ] && RSS_MAX_KB=$((4 * 40960))
check "a $(($(stat -c %s usb/big.bundle) >> 20)) MiB bundle installs byte-exact, the largest RSS ${RSS_KB} KiB (under $((RSS_MAX_KB / 1024)) MiB)" \
	bash -c "cmp -s -n $(stat -c %s big.img) big.img '$D/slot-b.img' && [ $RSS_KB -lt $RSS_MAX_KB ]"

# bytes appended after an embedding bundle, or cut from its end: refused at verify
cp usb/v2.bundle grown.bundle && echo junk >>grown.bundle
expect_fail "a bundle with bytes appended after its chunks is refused" "follow its signature" \
	$S verify --keyring ca.pem --compatible usb-test grown.bundle
head -c $((ALL - 100)) usb/v2.bundle >short.bundle
expect_fail "a bundle with its chunks cut short is refused" "follow its signature" \
	$S verify --keyring ca.pem --compatible usb-test short.bundle
cp plain.bundle grown-plain.bundle && echo junk >>grown-plain.bundle
expect_fail "a bundle without embedded chunks with bytes appended is refused" "does not describe" \
	$S verify --keyring ca.pem --compatible usb-test grown-plain.bundle

# a local folder as the store
$S verify --keyring ca.pem --compatible usb-test --index-out v2.caibx plain.bundle >/dev/null
check "assemble --store /path: byte-exact" unshare -n $S assemble --store "$T/www/store" --seed "$V1" v2.caibx out1.img
check "(out1.img is v2)" cmp out1.img "$V2"
check "assemble --store file:///path: byte-exact" unshare -n $S assemble --store "file://$T/www/store/" v2.caibx out2.img
check "(out2.img is v2)" cmp out2.img "$V2"
device_fixture "$D" usb-test "$D/state/boot.state" "store = $T/www/store"
check "install with store = /path in system.conf, no network" unshare -n $S install --config "$D/system.conf" "$T/plain.bundle"
check "(slot B is v2 byte for byte, switched once)" installed "$D"
cp -r www/store bad-store
first=$(python3 -c "import sys; b=open('v2.caibx','rb').read(); print(b[72:104].hex())")
python3 - "bad-store/${first:0:4}/$first.cacnk" <<'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[len(b) // 2] ^= 0x01; open(p, "wb").write(b)
PY
expect_fail "a corrupt chunk file in a local store is refused" "failed its SHA-256 check" \
	unshare -n $S assemble --store "$T/bad-store" --max-attempts 2 v2.caibx out3.img
rm "bad-store/${first:0:4}/$first.cacnk"
expect_fail "a chunk missing from a local store ends the run as a 404 would" "not found" \
	unshare -n $S assemble --store "$T/bad-store" v2.caibx out4.img
finish

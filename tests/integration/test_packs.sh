#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Pack objects end to end, over nginx (HTTP/2 + TLS): a device with no usable
# base installs a release in about one request per MiB, not one per chunk.
#  - bundle --packs: the signed manifest names a pack index (no base), the store
#    has it and its objects, `check` checks them;
#  - a factory device (an empty active slot) installs the signed bundle: slot
#    byte-exact, at most one request per 256 KiB of image (plus the index), and
#    no more bytes than the same install from chunk files;
#  - a seed that holds half the image: packs only where most of a pack is
#    missing, the rest from the seed and chunk files;
#  - a damaged pack: refused, its chunks fetched, byte-exact;
#  - SIGKILL at random instants (SLOTSYNC_PACK_KILL_TRIALS, 6): every resume
#    byte-exact, at most concurrency x the largest pack fetched again per kill;
#  - prune keeps the packs of a kept release and removes those of one it drops.
source "$(dirname "$0")/lib.sh"
G=$SLOTSYNC_GEN
S=$SLOTSYNC_BIN
TRIALS=${SLOTSYNC_PACK_KILL_TRIALS:-6}
CONC=4
cd "$T"
# a release image: text-like content (compresses well, better across chunks
# than chunk by chunk), a stretch of random data and zeros
python3 - v2.img <<'PY'
import random, sys
r = random.Random(11)
words = [bytes(r.getrandbits(8) % 26 + 97 for _ in range(r.randrange(2, 12))) for _ in range(4000)]
out = bytearray()
while len(out) < 9 << 20:
    out += b" ".join(r.choice(words) for _ in range(40)) + b"\n"
out = out[:9 << 20] + bytes(r.getrandbits(8) for _ in range(2 << 20)) + bytes(1 << 20)
open(sys.argv[1], "wb").write(out)
PY
SIZE=$(stat -c %s v2.img)
random_file other.img 1 other
signing_ca
W=$T/www/store
$G bundle --no-progress --store "$W" --image v2.img --version 2.0 --compatible packs-test --packs \
	--signer-cert signer.pem --signer-key signer.key v2.bundle 2>gen.txt >/dev/null
$G bundle --no-progress --store "$W" --image v2.img --version 2.0 --compatible packs-test \
	--signer-cert signer.pem --signer-key signer.key v2-plain.bundle >/dev/null
$G make --no-progress --store "$W" v2.img v2.caibx >/dev/null
$G make --no-progress other.img other.caibx >/dev/null
echo "# $(grep '^packs: [0-9]' gen.txt)"
ZERO=$(printf '0%.0s' $(seq 64))
PIX=deltas/$ZERO/$(sha256sum v2.caibx | cut -c1-64).sdix
$S verify --keyring ca.pem v2.bundle >manifest.txt 2>/dev/null
check "bundle --packs: the signed manifest names the pack index (no base) by digest and size, and the store has it" \
	python3 - manifest.txt "$W/$PIX" <<'PY'
import hashlib, json, sys
t = open(sys.argv[1]).read()
m = json.loads(t[t.index("{"):])
data = open(sys.argv[2], "rb").read()
d = [x for x in m["deltas"] if x["base"] == "0" * 64]
assert len(d) == 1 and d[0]["sha256"] == hashlib.sha256(data).hexdigest() and d[0]["size"] == len(data), m["deltas"]
PY
# the pack index: objects (codec, first, count), ranges
zstd -d -q -c "$W/$PIX" >pix.raw
read -r NOBJ NREF MAXOBJ BAD < <(python3 - pix.raw <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
n_obj, n_ref = struct.unpack_from("<II", b, 88)
bad = mx = 0
for i in range(n_obj):
    o = 96 + 60 * i
    size, codec = struct.unpack_from("<IB", b, o + 32)
    ref_count = struct.unpack_from("<I", b, o + 56)[0]
    mx = max(mx, size)
    bad += codec != 1 or ref_count != 0
print(n_obj, n_ref, mx, bad)
PY
)
check "the pack index: $NOBJ objects, each one zstd frame with no reference, at most one per 256 KiB of image" \
	bash -c "[ $NOBJ -gt 0 ] && [ $NREF = 0 ] && [ $BAD = 0 ] && [ $NOBJ -le $(( (SIZE + 262143) / 262144 )) ]"
check "slotsync-gen check counts and checks the pack index and its objects" \
	bash -c "$G check --store '$W' | grep -q '; $((NOBJ)) delta objects, 0 bad; 1 delta indexes, 0 bad'"
start_nginx main "$T/www"

# ---- a factory device: packs against chunk files --------------------------------------
factory() { # factory DIR BUNDLE: installs BUNDLE on a device whose active slot is empty
	V1=other.img device_fixture "$1" packs-test "$1/state/boot.state" "store = $NGINX_URL/store
ca-file = $T/test-ca.pem"
	truncate -s 0 "$1/slot-a.img" && truncate -s 16M "$1/slot-a.img"
	: >"$NGINX_LOG"
	$S install --config "$1/system.conf" "$2" >"$1.out" 2>&1
}
requests() { grep -c ' /store/' "$NGINX_LOG"; }
bytes() { awk '{s += $4} END {print s + 0}' "$NGINX_LOG"; }
if factory "$T/plain" v2-plain.bundle; then
	PLAIN_REQ=$(requests) PLAIN_BYTES=$(bytes)
else
	not_ok "the install from chunk files failed: $(tail -n 3 "$T/plain.out")"
fi
if factory "$T/dev" v2.bundle; then
	PACK_REQ=$(requests) PACK_BYTES=$(bytes)
	check "a factory device installs through packs: slot B byte-exact, $PACK_REQ requests (chunk files: $PLAIN_REQ), $PACK_BYTES bytes (chunk files: $PLAIN_BYTES)" \
		bash -c "cmp -s -n $SIZE '$T/dev/slot-b.img' v2.img && [ $PACK_REQ -le $(( (SIZE + 262143) / 262144 + 1 )) ] &&
			[ $PACK_BYTES -le $PLAIN_BYTES ] && grep -q '\.sdix' '$NGINX_LOG'"
else
	not_ok "the install through packs failed: $(tail -n 3 "$T/dev.out")"
fi

A=(--store "$NGINX_URL/store" --ca-file "$T/test-ca.pem" --concurrency $CONC --json)
DI=(--delta-index "$NGINX_URL/store/$PIX")
py() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

# ---- a seed with half the image: packs where most is missing ------------------------------
head -c $((SIZE / 2)) v2.img >half.img
truncate -s "$SIZE" half.img
$S assemble "${A[@]}" "${DI[@]}" --seed half.img v2.caibx h.img >h.json
check "a seed with half the image: byte-exact, $(py h.json 'd["delta_objects"]') of $NOBJ packs, the rest from the seed and $(py h.json 'd["chunks_fetched"]') chunk files" \
	bash -c "cmp -s v2.img h.img && test \"\$(python3 -c 'import json; d=json.load(open(\"h.json\")); print(0 < d[\"delta_objects\"] < $NOBJ and d[\"bytes_from_seed\"] > 0)')\" = True"

# ---- a damaged pack ------------------------------------------------------------------
read -r id0 < <(python3 -c "import sys; b=open('pix.raw','rb').read(); print(b[96:128].hex())")
cp "$W/${id0:0:4}/$id0.sdob" pack0.orig
printf 'X' | dd of="$W/${id0:0:4}/$id0.sdob" bs=1 seek=100 conv=notrunc 2>/dev/null
$S assemble "${A[@]}" "${DI[@]}" v2.caibx d.img >d.json 2>d.err
check "a damaged pack: refused (does not match its id), its chunks fetched as chunks, byte-exact" \
	bash -c "cmp -s v2.img d.img && grep -q 'does not match its id' d.err && test \"\$(python3 -c 'import json; d=json.load(open(\"d.json\")); print(d[\"delta_objects_failed\"] == 1 and d[\"delta_chunks_refetched\"] > 0)')\" = True"
cp pack0.orig "$W/${id0:0:4}/$id0.sdob"

# ---- kills -------------------------------------------------------------------------------
KILL_TRIAL_OPTS=()
kill_trials "packs" "$TRIALS" 4000000 $((CONC * MAXOBJ + $(stat -c %s "$W/$PIX"))) other.img other.caibx v2.caibx v2.img \
	"$NGINX_URL/store" "$NGINX_URL/store/$PIX"

# ---- prune ------------------------------------------------------------------------------
cp -a "$W" kept
$G prune --store kept --keep v2.bundle --grace 0 >/dev/null
check "prune --keep the release: its pack index and all $NOBJ packs stay" \
	bash -c "[ -f 'kept/$PIX' ] && [ \$(find kept -name '*.sdob' | wc -l) = $NOBJ ]"
$G make --no-progress --store kept other.img other.caibx >/dev/null
$G prune --store kept --keep other.caibx --grace 0 >/dev/null
check "prune --keep another release: the pack index and the packs go" \
	bash -c "[ ! -e 'kept/$PIX' ] && [ \$(find kept -name '*.sdob' | wc -l) = 0 ]"
finish

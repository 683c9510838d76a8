#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Delta objects end to end, over nginx (HTTP/2 + TLS):
#  - round trip: slotsync-gen delta, then assemble with the base as a seed: the
#    store's delta index is found by the two index digests, objects rebuild the
#    chunks the base lacks, the target is byte-exact, and fewer bytes come over
#    the wire than with chunks only;
#  - a device whose seed is not a base of the release: chunks only;
#  - hostile objects and delta indexes, each refused with a report, its chunks
#    fetched plain, the target byte-exact: an object that does not match its
#    id, one the store lacks, a decompression bomb, an object that decodes to
#    wrong chunks, a reference outside the base image, a base chunk damaged on
#    the device;
#  - SIGKILL at random instants (SLOTSYNC_DELTA_KILL_TRIALS, 30): every resume
#    byte-exact, and what is fetched again is at most concurrency x the largest
#    object (or chunk) per kill, and the delta index;
#  - the zstd squashfs sample pair: zstd-frames objects (--index-format 2), rebuilt byte-exact on
#    the device, and kills while they are applied (SLOTSYNC_DELTA_FRAMES_KILL_TRIALS,
#    10); a delta index whose profile this device's libzstd does not reproduce:
#    those objects left out before the download, their chunks fetched.
source "$(dirname "$0")/lib.sh"
G=$SLOTSYNC_GEN
S=$SLOTSYNC_BIN
TRIALS=${SLOTSYNC_DELTA_KILL_TRIALS:-30}
CONC=4
# a pair shaped like a release of binaries: the base random; the new image the
# base with regions of moved code (small differences every 64 bytes), an
# insertion, overwritten runs, new content that repeats itself, and, further
# on, more new content like it (a new package like another new package)
V1=$T/v1.img
V2=$T/v2.img
python3 - "$V1" "$V2" <<'PY'
import random, sys
r = random.Random(7)
base = bytearray(r.getrandbits(8) for _ in range(3 << 20))
new = bytearray()
at = 0
for region in range(6):
    keep = r.randrange(100000, 300000)
    new += base[at:at + keep]
    at += keep
    moved = bytearray(base[at:at + 120000])
    for i in range(0, len(moved), 64):
        moved[i] = (moved[i] + 4) & 255
    new += moved
    at += len(moved)
    new += bytes(r.getrandbits(8) for _ in range(r.randrange(10, 2000)))
unit = bytes(r.getrandbits(8) for _ in range(3000))
new += unit * 60
new += base[at:at + 200000]
at += 200000
for k in range(40):
    u = bytearray(unit)
    u[(k * 131) % 3000] ^= 0x5A
    new += u
new += base[at:]
open(sys.argv[1], "wb").write(base)
open(sys.argv[2], "wb").write(new)
PY
W=$T/www/store
$G make --no-progress --store "$W" "$V1" "$T/v1.caibx" >/dev/null
$G make --no-progress --store "$W" "$V2" "$T/v2.caibx" >/dev/null
$G delta --store "$W" --base "$T/v1.caibx" --base-image "$V1" "$T/v2.caibx" "$V2" >"$T/gen.txt"
echo "# $(head -n1 "$T/gen.txt")"
SDIX=$W/$(sed -n 's|^delta: index [^ ]*/store/||p' "$T/gen.txt")
check "new content like new content before it: objects read ranges of the new image ($(grep -o '[0-9]* also read new content' "$T/gen.txt"))" \
	test "$(sed -n 's/.*; \([0-9]*\) also read new content.*/\1/p' "$T/gen.txt")" -gt 0
check "the delta index lies at deltas/<base index SHA-256>/<new index SHA-256>.sdix" \
	test "$SDIX" = "$W/deltas/$(sha256sum "$T/v1.caibx" | cut -c1-64)/$(sha256sum "$T/v2.caibx" | cut -c1-64).sdix"
start_nginx main "$T/www"
A=(--store "$NGINX_URL/store" --ca-file "$T/test-ca.pem" --concurrency $CONC)
# the delta index is used only when named: its URL in the store
DI=(--delta-index "$NGINX_URL/store/${SDIX#"$W"/}")
py() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

# ---- round trip ---------------------------------------------------------------
$S assemble "${A[@]}" "${DI[@]}" --seed "$V1:$T/v1.caibx" --dry-run --json "$T/v2.caibx" "$T/dry.img" >"$T/dry.json"
check "dry run: the plan gives bytes by source (seed, delta, chunk)" \
	test "$(py "$T/dry.json" 'd["delta_objects_to_fetch"] > 0 and d["bytes_to_rebuild"] > 0 and d["bytes_from_seed"] == 0')" = True
: >"$NGINX_LOG"
$S assemble "${A[@]}" "${DI[@]}" --seed "$V1:$T/v1.caibx" --json "$T/v2.caibx" "$T/d.img" >"$T/d.json"
check "with delta objects: byte-exact" cmp -s "$V2" "$T/d.img"
check "... the chunks the base lacks were rebuilt by the objects the plan named" \
	test "$(py "$T/d.json" '(d["chunks_from_delta"] == d["chunks_to_rebuild"] > 0, d["delta_objects"], d["delta_objects_failed"])')" = \
	"$(py "$T/dry.json" '(True, d["delta_objects_to_fetch"], 0)')"
check "... the bytes it reports are what nginx sent" \
	test "$(py "$T/d.json" 'd["bytes_fetched"]')" = "$(awk '{s += $4} END {print s}' "$NGINX_LOG")"
$S assemble "${A[@]}" --seed "$V1:$T/v1.caibx" --no-delta --json "$T/v2.caibx" "$T/c.img" >"$T/c.json"
: >"$NGINX_LOG"
$S assemble "${A[@]}" --seed "$V1:$T/v1.caibx" --json "$T/v2.caibx" "$T/u.img" >"$T/u.json"
check "no --delta-index: the store is asked for no delta index and no object, chunks only, byte-exact" \
	bash -c "cmp -s '$V2' '$T/u.img' && ! grep -qE '\.sd(ix|ob)' '$NGINX_LOG' && grep -q '/store/' '$NGINX_LOG' &&
		test \"\$(python3 -c 'import json; d=json.load(open(\"$T/u.json\")); print(d[\"chunks_from_delta\"], d[\"delta_objects\"], d[\"delta_index\"])')\" = '0 0 '"
delta_bytes=$(py "$T/d.json" 'd["bytes_fetched"]')
chunk_bytes=$(py "$T/c.json" 'd["bytes_fetched"]')
check "chunks only (--no-delta): byte-exact, $chunk_bytes bytes; with delta objects: $delta_bytes bytes" \
	bash -c "cmp -s '$V2' '$T/c.img' && test $delta_bytes -lt $chunk_bytes"

# ---- the bundle signs its delta indexes --------------------------------------------
P=$T/pki
mkdir -p "$P"
signing_ca "$P" s
$G bundle --no-progress --store "$T/bstore" --image "$V2" --version 2.0 --compatible c --delta-from "$T/v1.caibx:$V1" \
	--signer-cert "$P/s.pem" --signer-key "$P/s.key" "$T/v2.bundle" >/dev/null
$S verify --keyring "$P/ca.pem" "$T/v2.bundle" >"$T/manifest.json"
check "bundle --delta-from: the signed manifest names the delta index by base and digest, and the store has it" \
	python3 - "$T/manifest.json" "$(sha256sum "$T/v1.caibx" | cut -c1-64)" "$T/bstore" "$(sha256sum "$T/v2.caibx" | cut -c1-64)" <<'PY'
import hashlib, json, sys
m = json.loads(open(sys.argv[1]).read()[open(sys.argv[1]).read().index("{"):])
d = m["deltas"]
path = f"{sys.argv[3]}/deltas/{sys.argv[2]}/{sys.argv[4]}.sdix"
data = open(path, "rb").read()
assert len(d) == 1 and d[0]["base"] == sys.argv[2], d
assert d[0]["sha256"] == hashlib.sha256(data).hexdigest() and d[0]["size"] == len(data), d
PY

$G bundle -v --no-progress --store "$W" --image "$V2" --version 2.0 --compatible c --delta-from "$T/v1.caibx:$V1" \
	--signer-cert "$P/s.pem" --signer-key "$P/s.key" "$T/v2w.bundle" >/dev/null 2>"$T/v2w.err"
$S verify --keyring "$P/ca.pem" "$T/v2w.bundle" >"$T/mw.json"
check "bundle --delta-from where slotsync-gen delta made them: the store's delta index is signed as it is, not made again" \
	bash -c "grep -q \"the store's, made before\" '$T/v2w.err' && grep -q \"\$(sha256sum '$SDIX' | cut -c1-64)\" '$T/mw.json'"

# ---- a device whose seed is another release: chunks only -----------------------
head -c 1000000 /dev/urandom >"$T/other.img"
cat "$V1" >>"$T/other.img"
$G make --no-progress "$T/other.img" "$T/other.caibx" >/dev/null
$S assemble -v "${A[@]}" "${DI[@]}" --seed "$T/other.img:$T/other.caibx" --json "$T/v2.caibx" "$T/o.img" >"$T/o.json" 2>"$T/o.err"
check "a seed that is not a base of the release: chunks only, byte-exact" \
	bash -c "cmp -s '$V2' '$T/o.img' && test \"\$(python3 -c 'import json; d=json.load(open(\"$T/o.json\")); print(d[\"chunks_from_delta\"], d[\"delta_index\"])')\" = '0 '"
check "... and it says so" grep -q "not used: .*base" "$T/o.err"

# ---- hostile objects and indexes ---------------------------------------------------
# parse the delta index: objects (id hex, size, codec, first, count) and refs
objects() {
	zstd -d -q -c "$SDIX" >"$T/sdix.raw"
	python3 - "$T/sdix.raw" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
n_obj, n_ref = struct.unpack_from("<II", b, 88)
for i in range(n_obj):
    o = 96 + 60 * i
    oid = b[o:o + 32].hex()
    size, codec = struct.unpack_from("<IB", b, o + 32)
    first, count = struct.unpack_from("<II", b, o + 40)
    print(oid, size, codec, first, count)
PY
}
objects >"$T/objects.txt"
obj_path() { echo "$W/${1:0:4}/$1.sdob"; }
cp -a "$W" "$T/store.orig"
restore() { rm -rf "$W"; cp -a "$T/store.orig" "$W"; }
# rewrite the delta index with python code working on b (bytearray), then reseal it
edit_index() {
	zstd -d -q -c "$SDIX" >"$T/sdix.raw"
	python3 - "$T/sdix.raw" "$1" <<'PY'
import hashlib, struct, sys
path, code = sys.argv[1], sys.argv[2]
b = bytearray(open(path, "rb").read())
exec(code)
b[-32:] = hashlib.sha256(b[:-32]).digest()
open(path, "wb").write(b)
PY
	zstd -q -f -19 "$T/sdix.raw" -o "$SDIX"
}
# hostile NAME WHAT_THE_REPORT_SAYS: assemble, expect byte-exact, objects failed, the report
hostile() {
	rm -f "$T/h.img" "$T/h.img.journal"
	if ! $S assemble "${A[@]}" "${DI[@]}" --seed "$V1:$T/v1.caibx" --json "$T/v2.caibx" "$T/h.img" >"$T/h.json" 2>"$T/h.err"; then
		not_ok "$1: the assembly failed: $(tail -n 3 "$T/h.err")"
		return
	fi
	check "$1: refused ($(grep -o "$2" "$T/h.err" | head -n1)), its chunks fetched plain, byte-exact" \
		bash -c "cmp -s '$V2' '$T/h.img' && grep -q '$2' '$T/h.err' && test \$(python3 -c 'import json; d=json.load(open(\"$T/h.json\")); print(int(d[\"delta_objects_failed\"] > 0 and d[\"delta_chunks_refetched\"] > 0))') = 1"
	restore
}
read -r id0 size0 codec0 first0 count0 <"$T/objects.txt"
read -r id1 size1 codec1 first1 count1 < <(sed -n 2p "$T/objects.txt")
# 1. damaged in the store (or on the way)
printf 'X' | dd of="$(obj_path "$id0")" bs=1 seek=$((size0 / 2)) conv=notrunc 2>/dev/null
hostile "an object that does not match its id" "does not match its id"
# 2. missing from the store: the run of objects fails, the rest comes as chunks
rm -f "$(obj_path "$id1")"
hostile "an object the store lacks (404)" "not found"
# 3. a bomb: 64 MiB of zeros in a 2 KiB frame, named by a re-sealed index
head -c $((64 << 20)) /dev/zero | zstd -19 -q -c >"$T/bomb.zst"
bomb_id=$(sha256sum "$T/bomb.zst" | cut -c1-64)
mkdir -p "$W/${bomb_id:0:4}" && cp "$T/bomb.zst" "$(obj_path "$bomb_id")"
edit_index "b[96:128] = bytes.fromhex('$bomb_id'); struct.pack_into('<IB', b, 128, $(stat -c %s "$T/bomb.zst"), 1)"
hostile "a decompression bomb" "frame declares\|buffer is too small"
# 4. an object that decodes, but to other chunks: object 1's payload named as object 0's
edit_index "b[96:128] = bytes.fromhex('$id1'); struct.pack_into('<IB', b, 128, $size1, $codec1)"
hostile "an object that decodes to wrong chunks" "delta object [0-9]* (chunks"
# 5. a reference outside the base image: the whole delta index is refused
edit_index "n_obj = struct.unpack_from('<I', b, 88)[0]; struct.pack_into('<I', b, 96 + 60 * n_obj, 10**9)"
rm -f "$T/h.img" "$T/h.img.journal"
$S assemble "${A[@]}" "${DI[@]}" --seed "$V1:$T/v1.caibx" --json "$T/v2.caibx" "$T/h.img" >"$T/h.json" 2>"$T/h.err"
check "a reference outside the base image: the delta index is refused, chunks only, byte-exact" \
	bash -c "cmp -s '$V2' '$T/h.img' && grep -q 'outside the base image' '$T/h.err' && grep -q 'chunks only' '$T/h.err'"
restore
# 6. the device's base damaged where an object's reference lies
cp "$V1" "$T/v1-damaged.img"
zstd -d -q -c "$SDIX" >"$T/sdix.raw"
ref_at=$(python3 - "$T/sdix.raw" "$T/v1.caibx" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
n_obj = struct.unpack_from("<I", b, 88)[0]
chunk, off, ln = struct.unpack_from("<III", b, 96 + 60 * n_obj)
ix = open(sys.argv[2], "rb").read()
start = 0 if chunk == 0 else struct.unpack_from("<Q", ix, 64 + 40 * (chunk - 1))[0]
print(start + off + ln // 2)
PY
)
printf 'Z' | dd of="$T/v1-damaged.img" bs=1 seek="$ref_at" conv=notrunc 2>/dev/null
rm -f "$T/h.img" "$T/h.img.journal"
$S assemble "${A[@]}" "${DI[@]}" --seed "$T/v1-damaged.img:$T/v1.caibx" --json "$T/v2.caibx" "$T/h.img" >"$T/h.json" 2>"$T/h.err"
check "a base chunk damaged on the device: the object is refused (its reference fails its check), byte-exact" \
	bash -c "cmp -s '$V2' '$T/h.img' && grep -q 'base chunk' '$T/h.err' && test \$(python3 -c 'import json; print(json.load(open(\"$T/h.json\"))[\"delta_objects_failed\"])') -ge 1"

# 7. an object that reads new content made by an object before it that also
# reads new content (both are applied in the last, ordered pass): the first is
# damaged, so its chunks are fetched only after that pass and the second's
# reference fails its check: both fall back.  (Content that an object of the
# first pass should have made is fetched as chunks before the ordered pass.)
dep=$(python3 - "$T/sdix.raw" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
n_obj, n_ref = struct.unpack_from("<II", b, 88)
objs = [struct.unpack_from("<32sIB3xIIII", b, 96 + 60 * i) for i in range(n_obj)]
refs = [struct.unpack_from("<III", b, 96 + 60 * n_obj + 12 * i) for i in range(n_ref)]
reads_new = lambda rf, rc: any(ch >> 31 for ch, _, _ in refs[rf:rf + rc])
for oid, size, codec, first, count, rf, rc in objs:
    for chunk, off, ln in refs[rf:rf + rc]:
        if chunk >> 31:
            c = chunk & 0x7fffffff
            for pid, psize, _, pfirst, pcount, prf, prc in objs:
                if pfirst <= c < pfirst + pcount and reads_new(prf, prc):
                    print(pid.hex(), psize)
                    sys.exit()
PY
)
if [ -z "$dep" ]; then
	not_ok "no object reads content that another object of the ordered pass makes"
else
	read -r dep_id dep_size <<<"$dep"
	printf 'X' | dd of="$(obj_path "$dep_id")" bs=1 seek=$((dep_size / 2)) conv=notrunc 2>/dev/null
	rm -f "$T/h.img" "$T/h.img.journal"
	$S assemble "${A[@]}" "${DI[@]}" --seed "$V1:$T/v1.caibx" --json "$T/v2.caibx" "$T/h.img" >"$T/h.json" 2>"$T/h.err"
	check "an object of the ordered pass whose new-image range an object before it should have made, which failed: both refused, their chunks fetched plain, byte-exact" \
		bash -c "cmp -s '$V2' '$T/h.img' && grep -q 'new chunk' '$T/h.err' && test \$(python3 -c 'import json; print(json.load(open(\"$T/h.json\"))[\"delta_objects_failed\"])') -ge 2"
	restore
fi

# ---- kill -9 at random instants, then resume -------------------------------------------
# kill_trials (lib.sh): kills at random instants, every resume byte-exact
# per kill: what the streams had in flight (objects, or chunks no object
# covers), and the delta index, which every run fetches
max_obj=$(awk '{if ($2 > m) m = $2} END {print m}' "$T/objects.txt")
[ "$max_obj" -lt 65600 ] && max_obj=65600
kill_trials "delta objects" "$TRIALS" 16384 $((CONC * max_obj + $(stat -c %s "$SDIX"))) \
	"$V1" "$T/v1.caibx" "$T/v2.caibx" "$V2" "$NGINX_URL/store" "${DI[1]}"

# ---- zstd-compressed squashfs: the sample pair ------------------------------------
# Its changed blocks share no compressed bytes with the old ones: zstd-frames
# objects rebuild them from their content, the device compressing the frames
# again.  They are what an SSDELTA2 index holds (--index-format 2; the default
# SSDELTA3 one codes zstd blocks as blocks objects, which
# tests/integration/test_delta_codecs.sh applies).
sample_images
Z=$T/www/zstore
$G make --no-progress --store "$Z" "$V1" "$T/s1.caibx" >/dev/null
$G make --no-progress --store "$Z" "$V2" "$T/s2.caibx" >/dev/null
$G delta --index-format 2 --store "$Z" --base "$T/s1.caibx" --base-image "$V1" "$T/s2.caibx" "$V2" >"$T/zgen.txt"
echo "# $(head -n1 "$T/zgen.txt")"
check "zstd squashfs: zstd-frames objects are made ($(grep -o '[0-9]* zstd-frames' "$T/zgen.txt"))" \
	test "$(sed -n 's/.* \([0-9]*\) zstd-frames.*/\1/p' "$T/zgen.txt")" -gt 0
ZSDIX=$(cd "$Z" && echo deltas/*/*.sdix)
ZA=(--store "$NGINX_URL/zstore" --ca-file "$T/test-ca.pem" --concurrency $CONC)
$S assemble "${ZA[@]}" --delta-index "$NGINX_URL/zstore/$ZSDIX" --seed "$V1:$T/s1.caibx" --json "$T/s2.caibx" "$T/z.img" >"$T/z.json"
$S assemble "${ZA[@]}" --seed "$V1:$T/s1.caibx" --no-delta --json "$T/s2.caibx" "$T/zc.img" >"$T/zc.json"
check "... the device rebuilds them: byte-exact, every chunk the base lacks from an object, $(py "$T/z.json" 'd["bytes_fetched"]') bytes fetched ($(py "$T/zc.json" 'd["bytes_fetched"]') with chunks only)" \
	bash -c "cmp -s '$V2' '$T/z.img' && cmp -s '$V2' '$T/zc.img' && test \"\$(python3 -c 'import json; d=json.load(open(\"$T/z.json\")); c=json.load(open(\"$T/zc.json\")); print(d[\"chunks_from_delta\"] == d[\"chunks_to_rebuild\"] > 0 and d[\"delta_objects_failed\"] == 0 and d[\"bytes_fetched\"] < c[\"bytes_fetched\"])')\" = True"
zmax=$(zstd -d -q -c "$Z"/deltas/*/*.sdix | python3 -c '
import struct, sys
b = sys.stdin.buffer.read()
n = struct.unpack_from("<I", b, 88)[0]
print(max([65600] + [struct.unpack_from("<I", b, 96 + 60 * i + 32)[0] for i in range(n)]))')
kill_trials "zstd-frames objects" "${SLOTSYNC_DELTA_FRAMES_KILL_TRIALS:-10}" 393216 \
	$((CONC * zmax + $(stat -c %s "$Z"/deltas/*/*.sdix))) "$V1" "$T/s1.caibx" "$T/s2.caibx" "$V2" "$NGINX_URL/zstore" "$NGINX_URL/zstore/$ZSDIX"

# ---- a device that compresses otherwise -------------------------------------------
# The index's profile names a zstd setting this device's libzstd does not
# reproduce (its sample digest is another): the probe finds it before any
# object is fetched, the zstd-frames objects are left out, their chunks come
# plain, and the report says why.
ZDIX=$(ls "$Z"/deltas/*/*.sdix)
zstd -d -q -c "$ZDIX" >"$T/zdix.raw"
python3 - "$T/zdix.raw" <<'PY'
import hashlib, struct, sys
path = sys.argv[1]
b = bytearray(open(path, "rb").read())
p = len(b) - 32 - 84
b[p:p + 84] = struct.pack("<B3xIIII", 6, 0, 0, 1 << 19, 131072) + b"libzstd 0.0.1".ljust(32, b"\0") + bytes(32)
b[-32:] = hashlib.sha256(b[:-32]).digest()
open(path, "wb").write(b)
PY
zstd -q -f -19 "$T/zdix.raw" -o "$ZDIX"
rm -f "$T/zm.img"
$S assemble "${ZA[@]}" --delta-index "$NGINX_URL/zstore/$ZSDIX" --seed "$V1:$T/s1.caibx" --json "$T/s2.caibx" "$T/zm.img" >"$T/zm.json" 2>"$T/zm.err"
check "another compressor setting: the zstd-frames objects are left out before the download ($(py "$T/zm.json" 'd["delta_objects_skipped"]')), their chunks fetched, byte-exact" \
	bash -c "cmp -s '$V2' '$T/zm.img' && test \"\$(python3 -c 'import json; d=json.load(open(\"$T/zm.json\")); print(d[\"delta_objects_skipped\"] > 0 and d[\"delta_objects_failed\"] == 0 and d[\"delta_objects_to_fetch\"] == d[\"delta_objects\"])')\" = True"
check "... and says why: $(py "$T/zm.json" 'd["delta_note"]')" \
	bash -c "grep -q 'compresses otherwise than the generator.s libzstd 0.0.1' '$T/zm.err' && grep -q 'libzstd 0.0.1' '$T/zm.json'"
finish

#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The BLOCKS codec end to end, over nginx (HTTP/2 + TLS), for a pair of
# squashfs images of text (48 files, every fourth edited in a few places, one
# added: the changed blocks are compressible, unlike most of the sample pair's,
# whose changes are random bytes stored uncompressed) compressed with gzip,
# xz (-Xbcj x86), lz4 (-Xhc) and zstd, and uncompressed with twelve of the files
# gzipped by GNU gzip -9n (as Debian packages ship man pages and changelogs;
# the deflate codec: their old streams expanded, the new ones made again):
#  - slotsync-gen delta makes blocks objects (the changed blocks' content; the
#    device compresses them again) and `slotsync assemble --delta-index` rebuilds
#    the image byte-exact with fewer bytes than chunks only;
#  - SIGKILL at random instants while they are applied
#    (SLOTSYNC_DELTA_CODEC_KILL_TRIALS, 10 per codec): every resume byte-exact;
#  - the added program's content (a copy of /bin/bash: machine code that
#    resembles nothing in the base) is coded as xz, without the reference;
#  - --records-level 19: smaller objects, rebuilt byte-exact;
#  - a damaged object (other bytes under a valid id): refused, its chunks
#    fetched, byte-exact;
#  - a device whose compressor compresses otherwise (tests/fault/compshim.c
#    preloaded: another zlib level, xz preset, lz4 HC level, zstd level): its probe of the
#    index's profile fails before the download, the blocks objects are left
#    out and their chunks fetched, byte-exact, and the status says why;
#  - the gzip files inside the blocks of the compressed images (three of them
#    changed): objects deflate them again with the index's inner profile; a
#    device whose zlib alone compresses otherwise (xz, lz4 and zstd images)
#    leaves out those objects only, byte-exact;
#  - zstd blocks are blocks objects in an SSDELTA3 index, zstd-frames objects
#    with --index-format 2 (tests/integration/test_delta.sh applies those).
source "$(dirname "$0")/lib.sh"
G=$SLOTSYNC_GEN
S=$SLOTSYNC_BIN
SHIM=${SLOTSYNC_COMPSHIM:?set by ctest}
# A sanitizer build's runtime must come first in the preload list
ASAN_RT=$(ldd "$SLOTSYNC_BIN" | awk '/libasan/ {print $3}')
[ -z "$ASAN_RT" ] || SHIM=$ASAN_RT:$SHIM
TRIALS=${SLOTSYNC_DELTA_CODEC_KILL_TRIALS:-10}
CONC=4
py() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }
mkdir -p "$T/www" "$T/tree"
start_nginx main "$T/www"
python3 - "$T/tree" <<'PY'
import os, random, struct, sys
out = sys.argv[1]
r = random.Random(20)
words = ["".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randrange(2, 10))) for _ in range(3000)]
def text(rr, n, vocabulary=words):
    lines = []
    size = 0
    while size < n:
        l = " ".join(rr.choice(vocabulary) for _ in range(rr.randrange(3, 14)))
        lines.append(l)
        size += len(l) + 1
    return "\n".join(lines) + "\n"
files = {}
for i in range(48):
    files[f"usr/share/doc/pkg{i:02d}/README"] = text(random.Random(i), r.randrange(40000, 160000))
for v in ("v1", "v2"):
    for name, body in files.items():
        if v == "v2" and int(name[17:19]) % 4 == 1:
            rr = random.Random(name)
            ls = body.split("\n")
            for k in range(12):
                at = rr.randrange(len(ls))
                ls[at:at + rr.randrange(0, 4)] = [" ".join(rr.choice(words) for _ in range(8)) for _ in range(rr.randrange(1, 5))]
            body = "\n".join(ls)
        p = os.path.join(out, v, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        open(p, "w").write(body)
    # a program: instructions with 4-byte addresses; in v2, 200 bytes come
    # first and every address moves by 200 (what a rebuilt library looks
    # like: its blocks are coded as a residual)
    rp = random.Random(7)
    ops = [bytes(rp.randrange(256) for _ in range(rp.choice((8, 12)))) for _ in range(64)]
    seq = [(rp.randrange(64), rp.randrange(1 << 20)) for _ in range(24000)]
    shift = 200 if v == "v2" else 0
    body = bytes(rp.randrange(256) for _ in range(shift)) + b"".join(ops[o] + struct.pack("<I", a + shift) for o, a in seq)
    p = os.path.join(out, v, "usr/lib/libprog.so")
    os.makedirs(os.path.dirname(p), exist_ok=True)
    open(p, "wb").write(body)
    if v == "v2":
        p = os.path.join(out, v, "usr/share/doc/new/README")
        os.makedirs(os.path.dirname(p), exist_ok=True)
        open(p, "w").write(text(random.Random(99), 100000))
        # and a program: machine code that resembles nothing in the base
        p = os.path.join(out, v, "usr/share/zz/newprog")
        os.makedirs(os.path.dirname(p), exist_ok=True)
        open(p, "wb").write(open("/bin/bash", "rb").read())
PY
# the uncompressed variant: files of twelve packages gzipped as Debian's
# packages are (gzip -9n: gzip's own block ends, which zlib alone does not make)
for v in v1 v2; do
	mkdir -p "$T/treegz"
	cp -a "$T/tree/$v" "$T/treegz/$v"
	for i in 00 01 02 03 04 05 06 07 08 09 10 11; do
		gzip -9n "$T/treegz/$v/usr/share/doc/pkg$i/README"
	done
done

# blocks objects of delta index $1 (all objects with a second argument):
# "id size" lines
blocks_objects() {
	zstd -d -q -c "$1" | python3 -c '
import struct, sys
b = sys.stdin.buffer.read()
assert b[:8] in (b"SSDELTA2", b"SSDELTA3"), b[:8]
n = struct.unpack_from("<I", b, 88)[0]
for i in range(n):
    o = 96 + 60 * i
    size, codec, flags = struct.unpack_from("<IBB", b, o + 32)
    if codec == 4 or len(sys.argv) > 1:
        print(b[o:o + 32].hex(), size, flags)' ${2:+all}
}

for spec in "gzip:" "xz:-Xbcj x86" "lz4:-Xhc" "zstd:" "raw:-noI -noD -noF -noX"; do
	comp=${spec%%:*}
	opts=${spec#*:}
	CV1=$T/v1.$comp.sqfs
	CV2=$T/v2.$comp.sqfs
	tree=$T/treegz
	label=$comp
	[ "$comp" = raw ] && label=deflate
	for v in v1 v2; do
		# shellcheck disable=SC2086 # the options are words
		mksquashfs "$tree/$v" "$T/$v.$comp.sqfs" -noappend -reproducible -mkfs-time 0 -all-time 0 -all-root \
			-no-xattrs -quiet -no-progress -comp "${comp/raw/gzip}" $opts >/dev/null
	done
	W=$T/www/$comp
	$G make --no-progress --store "$W" "$CV1" "$T/$comp-1.caibx" >/dev/null
	$G make --no-progress --store "$W" "$CV2" "$T/$comp-2.caibx" >/dev/null
	$G delta --store "$W" --base "$T/$comp-1.caibx" --base-image "$CV1" "$T/$comp-2.caibx" "$CV2" >"$T/gen.txt"
	echo "# $comp $opts: $(head -n1 "$T/gen.txt")"
	SDIX=$W/$(sed -n "s|^delta: index [^ ]*/www/$comp/||p" "$T/gen.txt")
	blocks_objects "$SDIX" >"$T/blocks.txt"
	check "$comp $opts: blocks objects are made ($(grep -o "[0-9]* blocks ($label)" "$T/gen.txt"))" \
		test -s "$T/blocks.txt"
	if [ "$comp" = raw ]; then
		# each changed gzip file costs what changed in its content, not its
		# new stream (incompressible: as many bytes again)
		gzbytes=$(python3 - "$T/treegz" <<'PY'
import os, sys
t = sys.argv[1]
print(sum(os.path.getsize(f"{t}/v2/usr/share/doc/pkg{i:02d}/README.gz") for i in (1, 5, 9)))
PY
)
		objbytes=$(awk '{s += $2} END {print s + 0}' "$T/blocks.txt")
		check "raw: the changed gzip files' objects ($objbytes bytes) cost under a fifth of their streams ($gzbytes bytes)" \
			test "$objbytes" -lt $((gzbytes / 5))
	else
		check "$comp $opts: the changed gzip files inside its blocks are deflated again ($(grep -o "[0-9]* with gzip files inside" "$T/gen.txt"), index $(zstd -d -q -c "$SDIX" | head -c 8))" \
			bash -c "grep -q '[1-9][0-9]* with gzip files inside' '$T/gen.txt' && zstd -d -q -c '$SDIX' | head -c 8 | grep -q SSDELTA3"
		check "$comp $opts: --index-format 2 leaves them as bytes, for devices that read only SSDELTA2" \
			bash -c "'$G' delta -q --dry-run --index-format 2 --store '$W' --base '$T/$comp-1.caibx' --base-image '$CV1' \
				'$T/$comp-2.caibx' '$CV2' >'$T/gen2.txt' && grep -q ' 0 with gzip files inside' '$T/gen2.txt'"
		if [ "$comp" = zstd ]; then
			check "zstd: --index-format 2 makes zstd-frames objects instead of blocks ones ($(grep -o '[0-9]* zstd-frames, [0-9]* blocks' "$T/gen2.txt"))" \
				grep -q ' [1-9][0-9]* zstd-frames, 0 blocks' "$T/gen2.txt"
		fi
		check "$comp $opts: --index-format 4 is refused by name" \
			bash -c "out=\$('$G' delta --dry-run --index-format 4 --store '$W' --base '$T/$comp-1.caibx' \
				--base-image '$CV1' '$T/$comp-2.caibx' '$CV2' 2>&1); [ \$? -eq 2 ] && echo \"\$out\" | grep -q 'index-format takes 2 or 3'"
		check "$comp $opts: the moved program's blocks are coded as a residual ($(grep -o "[0-9]* blocks with residual records" "$T/gen.txt"))" \
			grep -q "[1-9][0-9]* blocks with residual records" "$T/gen.txt"
	fi
	# the new program's content as xz, without the reference (not in an xz
	# image: its blocks are xz already, and the chunks cost no more)
	if [ "$comp" != xz ]; then
		check "$comp $opts: the new program's content is coded as xz ($(grep -o "[0-9]* with xz records" "$T/gen.txt"))" \
			grep -q "[1-9][0-9]* with xz records" "$T/gen.txt"
	fi
	A=(--store "$NGINX_URL/$comp" --ca-file "$T/test-ca.pem" --concurrency $CONC --seed "$CV1:$T/$comp-1.caibx")
	rm -f "$T/d.img" "$T/d.img.journal" "$T/c.img" "$T/c.img.journal"
	$S assemble "${A[@]}" --delta-index "$SDIX" --json "$T/$comp-2.caibx" "$T/d.img" >"$T/d.json"
	$S assemble "${A[@]}" --no-delta --json "$T/$comp-2.caibx" "$T/c.img" >"$T/c.json"
	check "... rebuilt byte-exact from them, $(py "$T/d.json" 'd["bytes_fetched"]') bytes fetched ($(py "$T/c.json" 'd["bytes_fetched"]') with chunks only)" \
		bash -c "cmp -s '$CV2' '$T/d.img' && cmp -s '$CV2' '$T/c.img' && test \"\$(python3 -c 'import json; d=json.load(open(\"$T/d.json\")); c=json.load(open(\"$T/c.json\")); print(d[\"chunks_from_delta\"] > 0 and d[\"delta_objects_failed\"] == 0 and d[\"bytes_fetched\"] < c[\"bytes_fetched\"])')\" = True"

	# --records-level 19: the same objects at another zstd level, smaller; the
	# device decodes them alike
	W19=$T/www/$comp-19
	$G make --no-progress --store "$W19" "$CV1" "$T/$comp-1.caibx" >/dev/null
	$G make --no-progress --store "$W19" "$CV2" "$T/$comp-2.caibx" >/dev/null
	$G delta --records-level 19 --store "$W19" --base "$T/$comp-1.caibx" --base-image "$CV1" "$T/$comp-2.caibx" "$CV2" \
		>"$T/gen19.txt"
	SDIX19=$W19/$(sed -n "s|^delta: index [^ ]*/www/$comp-19/||p" "$T/gen19.txt")
	b12=$(grep -o 'of [0-9]* bytes replace' "$T/gen.txt" | tr -dc 0-9)
	b19=$(grep -o 'of [0-9]* bytes replace' "$T/gen19.txt" | tr -dc 0-9)
	rm -f "$T/r.img" "$T/r.img.journal"
	$S assemble --store "$NGINX_URL/$comp-19" --ca-file "$T/test-ca.pem" --concurrency $CONC \
		--seed "$CV1:$T/$comp-1.caibx" --delta-index "$SDIX19" --json "$T/$comp-2.caibx" "$T/r.img" >"$T/r.json"
	check "$comp: --records-level 19 makes smaller objects ($b19 bytes against $b12), rebuilt byte-exact from them" \
		bash -c "[ '$b19' -lt '$b12' ] && cmp -s '$CV2' '$T/r.img' && test \"\$(python3 -c 'import json; d=json.load(open(\"$T/r.json\")); print(d[\"chunks_from_delta\"] > 0 and d[\"delta_objects_failed\"] == 0)')\" = True"
	rm -rf "$W19"

	# kills while the objects are applied: each loses at most the objects in
	# flight (of any codec)
	bmax=$(blocks_objects "$SDIX" all | awk '{if ($2 > m) m = $2} END {print m + 0}')
	[ "$bmax" -lt 65600 ] && bmax=65600
	KILL_TRIAL_OPTS=(--delta-index "$SDIX")
	kill_trials "$comp blocks objects" "$TRIALS" 393216 $((CONC * bmax + $(stat -c %s "$SDIX"))) \
		"$CV1" "$T/$comp-1.caibx" "$T/$comp-2.caibx" "$CV2" "$NGINX_URL/$comp"
	KILL_TRIAL_OPTS=()

	# a damaged object under a valid id (a byte of its records flipped, the
	# object renamed by its new SHA-256, the index naming it and resealed)
	read -r id size < <(sort -k2 -n -r "$T/blocks.txt" | head -n1)
	cp -a "$W" "$T/store.orig"
	obj=$W/${id:0:4}/$id.sdob
	python3 - "$obj" "$SDIX" "$W" "$id" <<'PY'
import hashlib, os, struct, subprocess, sys
obj, sdix, store, old = sys.argv[1:]
p = bytearray(open(obj, "rb").read())
p[len(p) * 3 // 4] ^= 0x20
new = hashlib.sha256(p).hexdigest()
os.makedirs(f"{store}/{new[:4]}", exist_ok=True)
open(f"{store}/{new[:4]}/{new}.sdob", "wb").write(p)
os.unlink(obj)
b = bytearray(subprocess.run(["zstd", "-d", "-q", "-c", sdix], check=True, capture_output=True).stdout)
at = b.index(bytes.fromhex(old))
b[at:at + 32] = bytes.fromhex(new)
b[-32:] = hashlib.sha256(b[:-32]).digest()
open(sdix + ".raw", "wb").write(b)
subprocess.run(["zstd", "-q", "-f", "-19", sdix + ".raw", "-o", sdix], check=True)  # declares its size
os.unlink(sdix + ".raw")
PY
	rm -f "$T/h.img" "$T/h.img.journal"
	$S assemble "${A[@]}" --delta-index "$SDIX" --json "$T/$comp-2.caibx" "$T/h.img" >"$T/h.json" 2>"$T/h.err" || true
	check "$comp: a damaged blocks object is refused, its chunks fetched, byte-exact" \
		bash -c "cmp -s '$CV2' '$T/h.img' && test \$(python3 -c 'import json; d=json.load(open(\"$T/h.json\")); print(int(d[\"delta_objects_failed\"] > 0 and d[\"delta_chunks_refetched\"] > 0))') = 1"
	rm -rf "$W"
	mv "$T/store.orig" "$W"

	# a device that compresses otherwise
	rm -f "$T/m.img" "$T/m.img.journal"
	LD_PRELOAD=$SHIM $S assemble "${A[@]}" --delta-index "$SDIX" --json "$T/$comp-2.caibx" "$T/m.img" >"$T/m.json" 2>"$T/m.err" || true
	check "$comp: a device whose $label compresses otherwise skips the blocks objects before the download ($(py "$T/m.json" 'd.get("delta_note", "")' 2>/dev/null)), fetches their chunks, byte-exact" \
		bash -c "cmp -s '$CV2' '$T/m.img' && test \"\$(python3 -c 'import json; d=json.load(open(\"$T/m.json\")); print(d[\"delta_objects_skipped\"] > 0 and len(d[\"delta_note\"]) > 0 and d[\"delta_objects_failed\"] == 0)')\" = True"
	if [ "$comp" = xz ] || [ "$comp" = lz4 ] || [ "$comp" = zstd ]; then
		# zlib alone compresses otherwise: the objects with gzip files inside
		# are left out, the other blocks objects used
		ninner=$(awk '$3 >= 2 && $3 % 4 >= 2' "$T/blocks.txt" | wc -l)
		rm -f "$T/m.img" "$T/m.img.journal"
		SLOTSYNC_COMPSHIM_ONLY=zlib LD_PRELOAD=$SHIM $S assemble "${A[@]}" --delta-index "$SDIX" --json "$T/$comp-2.caibx" \
			"$T/m.img" >"$T/m.json" 2>"$T/m.err" || true
		check "$comp: a device whose zlib alone compresses otherwise leaves out the $ninner objects with gzip files inside ($(py "$T/m.json" 'd.get("delta_note", "")' 2>/dev/null)), uses the others, byte-exact" \
			bash -c "cmp -s '$CV2' '$T/m.img' && test \"\$(python3 -c 'import json; d=json.load(open(\"$T/m.json\")); print(d[\"delta_objects_skipped\"] == $ninner and $ninner > 0 and \"zlib\" in d[\"delta_note\"] and d[\"chunks_from_delta\"] > 0 and d[\"delta_objects_failed\"] == 0)')\" = True"
	fi
done
finish

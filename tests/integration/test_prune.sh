#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# slotsync-gen prune and the check of delta files, on one store of four
# releases with delta objects between them (r2 from r1, r3 from r1 and r2, r4
# from r1, r2 and r3; r2 with a further image, r4 with a detached index):
#  - --dry-run removes nothing (the store's listing is the same) and says what
#    it would remove;
#  - a kept release that cannot be read (missing, or damaged) stops prune by
#    its name, nothing removed;
#  - prune keeping r2 and r4: every kept release installs byte-exact from the
#    pruned store over nginx, r4 on a device running r2 with its delta objects;
#    a device running nothing of them, from chunks only; only the delta files
#    between r2 and r4 are left; the removed releases are refused by name for
#    their missing chunks (check --index); a fresh unmarked file is kept for the
#    grace period, then removed once old; temp files of a killed writer go;
#  - check finds a damaged delta object and delta index, fails, and --repair
#    removes them.
source "$(dirname "$0")/lib.sh"
G=$SLOTSYNC_GEN
S=$SLOTSYNC_BIN
sample_images
cd "$T"
signing_ca
W=$T/www/store
start_nginx main "$T/www"
h() { sha256sum "$1" | cut -c1-64; }
SIGN=(--signer-cert signer.pem --signer-key signer.key)
# four releases of one image: r3 and r4 each change another 512 KiB of r2 a
# little every 64 bytes (code moved by a patch: what delta objects are for)
cp "$V1" img1
cp "$V2" img2
random_file boot.img 2 boot
python3 - img2 img3 img4 <<'PY'
import sys
base = open(sys.argv[1], "rb").read()
for out, at, add in ((sys.argv[2], 1 << 20, 3), (sys.argv[3], 5 << 20, 5)):
    b = bytearray(base)
    for i in range(at, at + (512 << 10), 64):
        b[i] = (b[i] + add) & 255
    open(out, "wb").write(b)
PY
bundle() { # bundle N EXTRA...
	local n=$1
	shift
	$G make --no-progress --store "$W" "img$n" "v$n.caibx" >/dev/null
	$G bundle --no-progress --store "$W" --store-url "$NGINX_URL/store" --image "img$n" --version "$n.0" \
		--compatible prune-test "$@" "${SIGN[@]}" "r$n.bundle" >/dev/null
}
bundle 1
bundle 2 --image boot=boot.img --delta-from v1.caibx:img1
bundle 3 --delta-from v1.caibx:img1 --delta-from v2.caibx:img2
bundle 4 --delta-from v1.caibx:img1 --delta-from v2.caibx:img2 --delta-from v3.caibx:img3 --detach-index
check "the store holds delta indexes of all six pairs, and delta objects" \
	test "$(find "$W/deltas" -name '*.sdix' | wc -l) $(find "$W" -name '*.sdob' | head -1 | wc -l)" = "6 1"
listing() { (cd "$W" && find . -printf '%p %s %T@\n' | sort); }
# an old store: every file made two hours ago, but for a temp file of a killed
# writer, and one chunk of a make still running (unmarked, fresh)
find "$W" -type f -exec touch -d '-2 hours' {} +
SUB=$(ls "$W" | grep -E '^[0-9a-f]{4}$' | head -1)
: >"$W/$SUB/.tmp-0000deadbeef.1.0"
touch -d '-2 hours' "$W/$SUB/.tmp-0000deadbeef.1.0"
echo "a chunk of a make still running" >fresh.bin
FRESH_ID=$(h fresh.bin)
FRESH=$W/${FRESH_ID:0:4}/$FRESH_ID.cacnk
mkdir -p "${FRESH%/*}"
zstd -q -c fresh.bin >"$FRESH"
listing >before.txt

# ---- refusals ----------------------------------------------------------------------
expect_fail "a kept release that does not exist: prune refuses, naming it" "kept release $T/nothere.bundle cannot be read" \
	$G prune --store "$W" --keep r2.bundle --keep "$T/nothere.bundle"
cp r4.bundle bad.bundle
printf 'XXXX' | dd of=bad.bundle bs=1 seek=200 conv=notrunc status=none
expect_fail "a damaged kept bundle: prune refuses, naming it" "kept release bad.bundle cannot be read" \
	$G prune --store "$W" --keep bad.bundle --keep r2.bundle
expect_fail "a kept bundle whose signature the keyring does not trust: refused" "kept release r2.bundle" \
	$G prune --store "$W" --keep r2.bundle --keyring "$T/test-ca.pem"
listing >after.txt
check "(nothing was removed by the refused runs)" cmp -s before.txt after.txt

# ---- dry run -----------------------------------------------------------------------
$G prune --store "$W" --keep r2.bundle --keep r4.bundle --keyring ca.pem --dry-run >dry.txt
listing >after.txt
check "--dry-run removes nothing (the store's listing is unchanged)" cmp -s before.txt after.txt
check "... and says what it would remove, per kind: 5 of 6 delta indexes and index diffs, some chunks and objects, the temp file" \
	python3 - dry.txt <<'PY'
import re, sys
t = open(sys.argv[1]).read()
k = {m[0]: (int(m[1]), int(m[2]), int(m[3])) for m in re.findall(r"^(.+?) +kept (\d+) \(\d+ bytes, (\d+) only for the grace period\), to remove (\d+)", t, re.M)}
assert k["delta indexes"] == (1, 0, 5) and k["index diffs"] == (1, 0, 5), k
assert k["chunks"][2] > 0 and k["chunks"][1] == 1 and k["delta objects"][2] > 0 and k["temp files"] == (0, 0, 1), k
assert "nothing removed" in t, t
PY

# ---- prune, keeping r2 and r4 ------------------------------------------------------------
start=$(date +%s%N)
$G prune --store "$W" --keep r2.bundle --keep r4.bundle >prune.txt
echo "# prune: $(( ($(date +%s%N) - start) / 1000000 )) ms; $(tail -n1 prune.txt)"
B2=$(h v2.caibx)
B4=$(h v4.caibx)
check "only the delta index and index diff of r2 -> r4 are left" \
	test "$(cd "$W/deltas" && find . -type f | sort | tr '\n' ' ')" = "./$B2/$B4.sdid ./$B2/$B4.sdix "
check "the fresh unmarked chunk is kept for the grace period" test -f "$FRESH"
check "the temp file of a killed writer is removed" test ! -e "$W/$SUB/.tmp-0000deadbeef.1.0"
check "no empty folder is left" test -z "$(find "$W" -mindepth 1 -type d -empty)"
check "the store passes check, with every chunk of r2, of its further image and of r4" \
	bash -c "$G check --store '$W' --index v2.caibx && $G check --store '$W' --index v4.caibx && $G check --store '$W' --index '$W/indexes/$(ls "$W/indexes" | grep -v "^$B4" | head -1)'" \
	>/dev/null
check "(the detached index of r4 and the further image's index of r2 are kept)" test "$(ls "$W/indexes" | wc -l)" = 2
expect_fail "removed release r1 is refused by name for its missing chunks" "named by v1.caibx is missing" \
	$G check --store "$W" --index v1.caibx
expect_fail "removed release r3 too" "named by v3.caibx is missing" $G check --store "$W" --index v3.caibx

device() { # device DIR IMAGE [boot]: a device running IMAGE from slot A [with a boot volume]
	local v1=$V1
	V1=$2
	device_fixture "$1" prune-test "$1/state/boot.state" "ca-file = $T/test-ca.pem"
	V1=$v1
	[ -n "${3:-}" ] || return 0
	truncate -s 4M "$1/boot-a.img" "$1/boot-b.img"
	sed -i -e "s|^device = $1/slot-a.img|rootfs = $1/slot-a.img\nboot = $1/boot-a.img|" \
		-e "s|^device = $1/slot-b.img|rootfs = $1/slot-b.img\nboot = $1/boot-b.img|" "$1/system.conf"
}
installs() { # installs DIR BUNDLE IMAGE: installed byte-exact into slot B
	$S install --config "$1/system.conf" "$2" >"$1.out" 2>&1 && cmp -s "$3" <(head -c "$(stat -c %s "$3")" "$1/slot-b.img")
}
random_file other.img 4 other
device "$T/d4" img2
# what a device that installed r2 and booted it good keeps: its index and record
cp v2.caibx "$T/d4/state/slot-A.caibx"
printf '{"A":{"status":"good","version":"2.0","bundle_sha256":"%s","security_version":0,"installed":1}}\n' \
	"$(h r2.bundle)" >"$T/d4/state/slots.json"
: >"$NGINX_LOG"
check "r4 installs byte-exact from the pruned store on a device running r2" installs "$T/d4" r4.bundle img4
check "... with its delta objects (nginx sent .sdob files and the r2 -> r4 delta index)" \
	bash -c "grep -q '\.sdob' '$NGINX_LOG' && grep -q '$B2/$B4.sdix' '$NGINX_LOG' && ! grep -qv ' 200 ' '$NGINX_LOG'"
device "$T/d2" other.img boot
installs_group() { installs "$1" "$2" "$3" && cmp -s -n "$(stat -c %s "$4")" "$4" "$1/boot-b.img"; }
check "r2 installs byte-exact from the pruned store on a device running neither, its further image too" \
	installs_group "$T/d2" r2.bundle img2 boot.img
device "$T/d4b" other.img
check "r4 too" installs "$T/d4b" r4.bundle img4

# ---- grace: a file older than the grace goes -------------------------------------------
touch -d '-2 hours' "$FRESH"
$G prune --store "$W" --keep r2.bundle --keep r4.bundle --grace 30 >prune2.txt
check "once older than the grace, the unmarked chunk goes; a second prune removes nothing else" \
	bash -c "test ! -e '$FRESH' && grep -q '^chunks .* removed 1 ' prune2.txt && grep -q '^delta objects .* removed 0 ' prune2.txt"

# ---- a make that reuses old chunks while a prune runs ------------------------------------
find "$W" -type f -exec touch -d '-2 hours' {} +
$G make --no-progress --store "$W" img4 again.caibx >/dev/null
$G prune --store "$W" --keep r2.bundle >prune3.txt
check "a make that reused old chunks refreshed them: a prune keeping only r2 keeps r4's chunks for the grace period" \
	bash -c "$G check --store '$W' --index v4.caibx >/dev/null && grep -q '^chunks .* only for the grace period), removed 0 ' prune3.txt"
check "... but r2 -> r4's delta files, old and unmarked, are gone" test ! -e "$W/deltas/$B2"
$G delta --store "$W" --base v2.caibx --base-image img2 v4.caibx img4 >/dev/null

# ---- check of delta files ---------------------------------------------------------------------
OBJ=$(find "$W" -name '*.sdob' | head -1)
SDIX=$W/deltas/$B2/$B4.sdix
printf 'X' | dd of="$OBJ" bs=1 seek=30 conv=notrunc status=none
printf 'XX' | dd of="$SDIX" bs=1 seek=12 conv=notrunc status=none
expect_fail "check finds the damaged delta object and delta index" "1 bad delta objects, 1 bad delta indexes" \
	$G check --store "$W"
$G check --store "$W" >check.txt 2>&1 || true
check "... naming each" bash -c "grep -q 'delta object .*${OBJ##*/}.*does not match its name' check.txt && grep -q '$B2/$B4.sdix' check.txt"
$G check --store "$W" --repair >/dev/null 2>&1 || true
check "check --repair removes them; the store then passes check" \
	bash -c "test ! -e '$OBJ' && test ! -e '$SDIX' && $G check --store '$W' >/dev/null"
# a delta index under another pair's name: it parses, but is not the one its path names
mkdir -p "$W/deltas/$B4"
$G delta --store "$W" --base v2.caibx --base-image img2 v4.caibx img4 >/dev/null
cp "$SDIX" "$W/deltas/$B4/$B2.sdix"
expect_fail "a delta index under another pair's path is bad too" "names other indexes than its path" \
	$G check --store "$W"
expect_fail "... and prune refuses to keep one between kept releases (r2's bundle, r4's index)" \
	"between kept releases, nothing removed" $G prune --store "$W" --keep r2.bundle --keep v4.caibx
finish

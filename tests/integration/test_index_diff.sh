#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A release whose index is detached from the bundle (slotsync-gen bundle
# --detach-index), installed over nginx: a device that has its base index
# downloads the index diff (.sdid) and not the full index; one without gets
# the full index; a damaged diff falls back to the full index; a damaged full
# index fails the install clearly, the slot untouched.
source "$(dirname "$0")/lib.sh"
G=$SLOTSYNC_GEN
S=$SLOTSYNC_BIN
sample_images
export V2
signing_ca "$T" s
W=$T/www/store
start_nginx main "$T/www"
$G make --no-progress --store "$W" "$V1" "$T/v1.caibx" >/dev/null
$G bundle --no-progress --store "$W" --store-url "$NGINX_URL/store" --image "$V2" --version 2.0 --compatible c \
	--delta-from "$T/v1.caibx:$V1" --detach-index --signer-cert "$T/s.pem" --signer-key "$T/s.key" "$T/v2.bundle" >/dev/null
$S verify --keyring "$T/ca.pem" "$T/v2.bundle" >"$T/manifest.json"
IDX_HEX=$(python3 -c "import json,sys; t=open(sys.argv[1]).read(); print(json.loads(t[t.index('{'):])['index']['sha256'])" "$T/manifest.json")
FULL=$W/indexes/$IDX_HEX.caibx
SDID=$W/deltas/$(sha256sum "$T/v1.caibx" | cut -c1-64)/$IDX_HEX.sdid
check "the bundle verifies; its manifest names the detached index by digest and size, and the store has it" \
	python3 - "$T/manifest.json" "$FULL" "$SDID" <<'PY'
import hashlib, json, sys
t = open(sys.argv[1]).read()
m = json.loads(t[t.index("{"):])
full, diff = open(sys.argv[2], "rb").read(), open(sys.argv[3], "rb").read()
assert m["index"]["size"] == len(full) and m["index"]["sha256"] == hashlib.sha256(full).hexdigest(), m["index"]
d = m["deltas"][0]
assert d["index_sha256"] == hashlib.sha256(diff).hexdigest() and d["index_size"] == len(diff), d
assert len(diff) < len(full), (len(diff), len(full))
PY
expect_fail "verify --index-out of a detached bundle says where its index is" "indexes/$IDX_HEX.caibx" \
	$S verify --keyring "$T/ca.pem" --index-out "$T/x.caibx" "$T/v2.bundle"
cp -a "$W" "$T/store.orig"

device() { # device DIR WITH_BASE_INDEX
	device_fixture "$1" c "$1/boot.state" "ca-file = $T/test-ca.pem"
	[ "$2" = yes ] && cp "$T/v1.caibx" "$1/state/slot-A.caibx"
	return 0
}
rec() { python3 -c "import json; r=json.load(open('$1/state/install.json')); print($2)"; }
installed_v2() { cmp -s "$V2" <(head -c "$(stat -c %s "$V2")" "$1/slot-b.img"); }
requested() { grep -c "$1" "$NGINX_LOG" || true; }

# ---- a device with the base index: the diff ---------------------------------------
device "$T/d1" yes
: >"$NGINX_LOG"
$S install --config "$T/d1/system.conf" "$T/v2.bundle" >"$T/d1.out" 2>&1
check "with the base index: installed byte-exact, the index rebuilt from the diff ($(stat -c %s "$SDID") bytes, the full index $(stat -c %s "$FULL"))" \
	bash -c "$(declare -f installed_v2); installed_v2 '$T/d1' && test \"\$(python3 -c \"import json; r=json.load(open('$T/d1/state/install.json')); print(r['index_from'], r['index_bytes_fetched'])\")\" = 'diff $(stat -c %s "$SDID")'"
check "... nginx sent the .sdid and not the full index" \
	test "$(requested '\.sdid$') $(requested "/indexes/")" = "1 0"
check "... the fetched bytes count the diff: install.json's bytes_fetched is what nginx sent" \
	test "$(rec "$T/d1" 'r["bytes_fetched"]')" = "$(awk '{s += $4} END {print s}' "$NGINX_LOG")"

# ---- a device without it: the full index ----------------------------------------------
device "$T/d2" no
: >"$NGINX_LOG"
$S install --config "$T/d2/system.conf" "$T/v2.bundle" >"$T/d2.out" 2>&1
check "without the base index: installed byte-exact from the full index, no .sdid asked for" \
	bash -c "$(declare -f installed_v2); installed_v2 '$T/d2' && test \"\$(python3 -c \"import json; print(json.load(open('$T/d2/state/install.json'))['index_from'])\")\" = full && ! grep -q '\.sdid' '$NGINX_LOG' && grep -q '/indexes/$IDX_HEX.caibx' '$NGINX_LOG'"

# ---- the full index not (yet) in the store: resumable, then installed ------------------------
mv "$W/indexes" "$W/indexes.away"
device "$T/d5" no
rc=0
$S install --config "$T/d5/system.conf" "$T/v2.bundle" >"$T/d5.out" 2>&1 || rc=$?
check "the store lacks the full index: the install stops resumable (exit $rc, not failed for good), the slot untouched" \
	bash -c "[ $rc -eq 3 ] && cmp -s '$T/d5/slot-b.img' <(head -c 16M /dev/zero)"
mv "$W/indexes.away" "$W/indexes"
check "... run again once it is there: installed byte-exact" \
	bash -c "$(declare -f installed_v2); $S install --config '$T/d5/system.conf' '$T/v2.bundle' >/dev/null 2>&1 && installed_v2 '$T/d5'"

# ---- a damaged diff: the full index -------------------------------------------------------
printf 'X' | dd of="$SDID" bs=1 seek=20 conv=notrunc 2>/dev/null
device "$T/d3" yes
$S install --config "$T/d3/system.conf" "$T/v2.bundle" >"$T/d3.out" 2>&1 || true
check "a damaged .sdid: a warning, then the full index, installed byte-exact" \
	bash -c "$(declare -f installed_v2); installed_v2 '$T/d3' && grep -q 'index diff .* not used' '$T/d3.out' && test \"\$(python3 -c \"import json; print(json.load(open('$T/d3/state/install.json'))['index_from'])\")\" = full"

# ---- a damaged full index: a clear failure, the slot untouched ---------------------------------
rm -rf "$W"
cp -a "$T/store.orig" "$W"
printf 'X' | dd of="$FULL" bs=1 seek=100 conv=notrunc 2>/dev/null
device "$T/d4" no
rc=0
$S install --config "$T/d4/system.conf" "$T/v2.bundle" >"$T/d4.out" 2>&1 || rc=$?
check "a damaged full index: the install fails (exit $rc), naming the index and the signed manifest" \
	bash -c "[ $rc -ne 0 ] && grep -q 'index: indexes/.*caibx.*wrong bytes.*is not the one the signed manifest names' '$T/d4.out'"
check "... and slot B was not written" cmp -s "$T/d4/slot-b.img" <(head -c 16M /dev/zero)
finish

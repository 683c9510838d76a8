#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The stores as mirrors of each other, object by object, over three nginx on
# 127.0.0.1: the device's two store = lines, then the bundle's store.  The
# first lacks some chunks (404), refuses others (403, as S3 answers for a key
# it does not have) and has no delta objects; the second answers 503 for some
# chunks; the last has everything.  An install with the index diff, the delta
# index, delta objects and chunks is byte-exact, its report says what each
# mirror served (the bytes nginx sent), and each mirror saw one connection for
# the whole install.  A mirror that serves wrong bytes is dropped and the rest
# comes from the next; a chunk no mirror has fails the install naming it and
# what each mirror answered, the slot not switched. A mirror whose index diff,
# delta index or full index is wrong is dropped as well; a full index wrong on
# every mirror fails the install for good at once.
source "$(dirname "$0")/lib.sh"
G=$SLOTSYNC_GEN
S=$SLOTSYNC_BIN
sample_images
export V2
signing_ca "$T" s
W=$T/www3/store
mkdir -p "$T/www3"
start_nginx m3 "$T/www3"
M3=$NGINX_URL/store
LOG3=$NGINX_LOG
$G make --no-progress --store "$W" "$V1" "$T/v1.caibx" >/dev/null
$G bundle --no-progress --store "$W" --store-url "$M3" --image "$V2" --version 2.0 --compatible c \
	--delta-from "$T/v1.caibx:$V1" --detach-index --signer-cert "$T/s.pem" --signer-key "$T/s.key" "$T/v2.bundle" >/dev/null
# a bundle of the same release without delta objects: a device fetches its chunks
$G bundle --no-progress --store "$W" --store-url "$M3" --image "$V2" --version 2.0 --compatible c \
	--signer-cert "$T/s.pem" --signer-key "$T/s.key" "$T/v2-chunks.bundle" >/dev/null

# mirror 1: no delta objects, the chunks in [89ab]*/ missing, those in [0-7]*/ refused with 403
mkdir -p "$T/www1" "$T/www2"
cp -a "$W" "$T/www1/store"
find "$T/www1/store" -name '*.sdob' -delete
rm -rf "$T/www1/store/"[89ab][0-9a-f][0-9a-f][0-9a-f]
start_nginx m1 "$T/www1" 'location ~ "^/store/[0-7][0-9a-f]{3}/" { return 403; }'
M1=$NGINX_URL/store
LOG1=$NGINX_LOG
# mirror 2: everything, but the chunks in [89]*/ answer 503
cp -a "$W" "$T/www2/store"
start_nginx m2 "$T/www2" 'location ~ "^/store/[89][0-9a-f]{3}/" { return 503; }'
M2=$NGINX_URL/store
LOG2=$NGINX_LOG

device() { # device DIR STORE|"KEY = VALUE"...
	local d=$1 lines="ca-file = $T/test-ca.pem" u
	shift
	for u in "$@"; do
		case $u in
		*' = '*) lines+=$'\n'"$u" ;;
		*) lines+=$'\n'"store = $u" ;;
		esac
	done
	device_fixture "$d" c "$d/boot.state" "$lines"
	# slot A runs a good 1.0 whose index the device kept: the base of the deltas
	cp "$T/v1.caibx" "$d/state/slot-A.caibx"
	echo '{"A": {"status": "good", "version": "1.0"}}' >"$d/state/slots.json"
}
installed_v2() { cmp -s "$V2" <(head -c "$(stat -c %s "$V2")" "$1/slot-b.img"); }
sent() { awk '{s += $4} END {print s + 0}' "$1"; }
conns() { awk '{print $2}' "$1" | sort -u | wc -l; }
mirrors() { # mirrors DIR: "url bytes objects moved connections dropped" per mirror, from install.json
	python3 -c "
import json
for m in json.load(open('$1/state/install.json')).get('mirrors', []):
    print(m['url'], m['bytes'], m['objects'], m['objects_moved'], m['connections'], m.get('dropped', '-').replace(' ', '_'))"
}
clear_logs() { : >"$LOG1"; : >"$LOG2"; : >"$LOG3"; }

# ---- three mirrors, each lacking some: one install, byte-exact --------------------------
device "$T/d1" "$M1" "$M2"
clear_logs
start=$(date +%s%N)
$S install --config "$T/d1/system.conf" "$T/v2.bundle" >"$T/d1.out" 2>&1 || cat "$T/d1.out"
echo "# the install over three mirrors took $(( ($(date +%s%N) - start) / 1000000 )) ms"
mirrors "$T/d1" >"$T/d1.mirrors"
sed 's/^/# /' "$T/d1.mirrors"
check "three mirrors, each lacking some objects: installed byte-exact" installed_v2 "$T/d1"
check "... mirror 1 answered 404 and 403, mirror 2 answered 503" \
	bash -c "awk '\$3 == 404' '$LOG1' | grep -q . && awk '\$3 == 403' '$LOG1' | grep -q . && awk '\$3 == 503' '$LOG2' | grep -q ."
check "... the delta index, the delta objects and the index diff came through the mirrors" \
	bash -c "grep -q '\.sdix' '$LOG1' && awk '\$3 == 200' '$LOG2' | grep -q '\.sdob' && grep -q '\.sdid' '$LOG1'"
check "... the report names the three mirrors in order: the device's two, then the bundle's" \
	test "$(awk '{print $1}' "$T/d1.mirrors" | tr '\n' ' ')" = "$M1 $M2 $M3 "
check "... each mirror served objects, and the bytes the report gives each are the bytes its nginx sent" \
	test "$(awk '{print $2, ($3 > 0)}' "$T/d1.mirrors" | tr '\n' ' ')" = "$(sent "$LOG1") 1 $(sent "$LOG2") 1 $(sent "$LOG3") 1 "
check "... the install's output says what each mirror served" \
	bash -c "grep -q 'store $M1: $(sent "$LOG1") bytes' '$T/d1.out' && grep -q 'store $M3: $(sent "$LOG3") bytes' '$T/d1.out'"
check "... one connection per mirror for the whole install: the index diff, the delta index, the objects and the chunks" \
	test "$(conns "$LOG1") $(conns "$LOG2") $(conns "$LOG3")" = "1 1 1"
check "... and the report counts one connection each" \
	test "$(awk '{print $5}' "$T/d1.mirrors" | tr '\n' ' ')" = "1 1 1 "
check "... the status JSON carries the mirrors" \
	bash -c "$S status --config '$T/d1/system.conf' --json | python3 -c 'import json,sys; s=json.load(sys.stdin); assert len(s[\"install\"][\"mirrors\"]) == 3, s'"

# ---- chunks only: the same, with many more objects ---------------------------------------------------
device "$T/d2" "$M1" "$M2"
rm -f "$T/d2/state/slot-A.caibx"
clear_logs
$S install --config "$T/d2/system.conf" "$T/v2-chunks.bundle" >"$T/d2.out" 2>&1 || cat "$T/d2.out"
mirrors "$T/d2" >"$T/d2.mirrors"
cp "$LOG2" "$T/d2.log2"
sed 's/^/# /' "$T/d2.mirrors"
check "chunks only, over the same mirrors: installed byte-exact, every mirror served chunks, one connection each" \
	bash -c "$(declare -f installed_v2); installed_v2 '$T/d2' && test \"\$(awk '{print (\$3 > 0)}' '$T/d2.mirrors' | tr '\n' ' ')\" = '1 1 1 ' && test \"$(conns "$LOG1") $(conns "$LOG2") $(conns "$LOG3")\" = '1 1 1'"

# ---- a mirror that serves wrong bytes: dropped, the rest from the next ----------------------------------
mkdir -p "$T/www4"
cp -a "$W" "$T/www4/store"
# every chunk in [0-3]*/ holds the bytes of the smallest other chunk:
# well-formed, within its bound, and wrong
other=$(find "$T/www4/store" -path '*/store/[4-9a-f]???/*.cacnk' -printf '%s %p\n' | sort -n | awk 'NR == 1 {print $2}')
find "$T/www4/store" -path '*/store/[0-3]???/*.cacnk' -exec cp "$other" {} \;
start_nginx m4 "$T/www4"
M4=$NGINX_URL/store
LOG4=$NGINX_LOG
device "$T/d3" "$M4" "concurrency = 4"
rm -f "$T/d3/state/slot-A.caibx"
clear_logs
$S install --config "$T/d3/system.conf" "$T/v2-chunks.bundle" >"$T/d3.out" 2>&1 || cat "$T/d3.out"
mirrors "$T/d3" >"$T/d3.mirrors"
sed 's/^/# /' "$T/d3.mirrors"
check "a mirror that serves wrong bytes: installed byte-exact all the same" installed_v2 "$T/d3"
check "... the report says it was dropped, and why" \
	bash -c "head -1 '$T/d3.mirrors' | grep -q 'served_wrong_bytes' && grep -q 'dropped: it served wrong bytes' '$T/d3.out'"
check "... and the next mirror served the rest" \
	bash -c "test \"\$(awk 'NR == 2 {print (\$3 > 0)}' '$T/d3.mirrors')\" = 1 && awk '\$3 == 200' '$LOG3' | grep -q cacnk"
# the wrong chunks come first (chunks are fetched in the order of their ids):
# once it is dropped, only the transfers under way then still go to it
asked=$(wc -l <"$LOG4")
check "... once dropped it is asked for nothing more than what 4 streams had under way ($asked requests of the $(grep -c cacnk "$LOG3") chunks the next mirror then served)" \
	test "$asked" -le 16
# ---- ... and wrong delta objects: dropped as well ----------------------------------------
for f in $(find "$T/www4/store" -name '*.sdob'); do printf 'X' | dd of="$f" bs=1 seek=40 conv=notrunc 2>/dev/null; done
device "$T/d5" "$M4"
clear_logs
$S install --config "$T/d5/system.conf" "$T/v2.bundle" >"$T/d5.out" 2>&1 || cat "$T/d5.out"
mirrors "$T/d5" >"$T/d5.mirrors"
sed 's/^/# /' "$T/d5.mirrors"
check "a mirror whose delta objects are wrong: dropped, the objects from the next, installed byte-exact with them" \
	bash -c "$(declare -f installed_v2); installed_v2 '$T/d5' && head -1 '$T/d5.mirrors' | grep -q 'wrong_bytes:_delta_object' && awk '\$3 == 200' '$LOG3' | grep -q '\.sdob' && ! grep -q 'fetching its .* chunks instead' '$T/d5.out'"

# ---- ... and a wrong index diff, delta index and full index: dropped as well -------------
# (files the signed manifest names by digest: the next mirror serves them)
mkdir -p "$T/www5"
cp -a "$W" "$T/www5/store"
for f in $(find "$T/www5/store" -name '*.sdid' -o -name '*.sdix' -o -path '*/indexes/*.caibx'); do
	printf 'X' | dd of="$f" bs=1 seek=40 conv=notrunc 2>/dev/null
done
start_nginx m5 "$T/www5"
M5=$NGINX_URL/store
LOG5=$NGINX_LOG
index_from() { python3 -c "import json; print(json.load(open('$1/state/install.json'))['index_from'])"; }
device "$T/d6" "$M5"
clear_logs
$S install --config "$T/d6/system.conf" "$T/v2.bundle" >"$T/d6.out" 2>&1 || cat "$T/d6.out"
mirrors "$T/d6" >"$T/d6.mirrors"
sed 's/^/# /' "$T/d6.mirrors"
check "a mirror whose index diff is wrong: dropped, the diff from the next mirror, installed byte-exact from it" \
	bash -c "$(declare -f installed_v2 index_from); installed_v2 '$T/d6' && test \"\$(index_from '$T/d6')\" = diff && head -1 '$T/d6.mirrors' | grep -q 'dropped\|wrong_bytes' && grep -q 'signed_manifest' '$T/d6.mirrors' && awk '\$3 == 200' '$LOG3' | grep -q '\.sdid'"
check "... the delta index and the delta objects then came from the next mirror, and were used" \
	bash -c "awk '\$3 == 200' '$LOG3' | grep -q '\.sdix' && awk '\$3 == 200' '$LOG3' | grep -q '\.sdob' && ! grep -q 'delta index .* not used' '$T/d6.out'"
check "... the dropped mirror was asked for the index diff once, and for nothing after" \
	test "$(wc -l <"$LOG5")" = 1
device "$T/d7" "$M5"
rm -f "$T/d7/state/slot-A.caibx"
: >"$LOG5"
clear_logs
$S install --config "$T/d7/system.conf" "$T/v2.bundle" >"$T/d7.out" 2>&1 || cat "$T/d7.out"
check "a mirror whose full index is wrong: dropped, the index from the next mirror, installed byte-exact" \
	bash -c "$(declare -f installed_v2 index_from); installed_v2 '$T/d7' && test \"\$(index_from '$T/d7')\" = full && grep -q 'indexes/.*caibx' '$LOG5' && awk '\$3 == 200' '$LOG3' | grep -q 'indexes/.*caibx' && grep -q 'dropped: it served wrong bytes' '$T/d7.out'"
# every mirror serves a wrong full index: the install fails at once, for good
full=$(find "$W/indexes" -name '*.caibx' | head -1)
cp "$full" "$T/full.good"
printf 'X' | dd of="$full" bs=1 seek=40 conv=notrunc 2>/dev/null
device "$T/d8" "$M5"
rm -f "$T/d8/state/slot-A.caibx"
clear_logs
: >"$LOG5"
rc=0
$S install --config "$T/d8/system.conf" "$T/v2.bundle" >"$T/d8.out" 2>&1 || rc=$?
cp "$T/full.good" "$full"
sed 's/^/# /' "$T/d8.out" | tail -2
check "a wrong full index on every mirror: the install fails for good (exit $rc), naming the index, what each mirror served and the signed manifest, after one request to each" \
	bash -c "[ $rc -ne 0 ] && [ $rc -ne 3 ] && grep -q 'index.*no mirror served it ($M5: wrong bytes; $M3: wrong bytes).*signed manifest' '$T/d8.out' && [ \$(grep -c 'indexes/' '$LOG5') -eq 1 ] && [ \$(grep -c 'indexes/' '$LOG3') -eq 1 ]"
check "... and slot B was not written" cmp -s "$T/d8/slot-b.img" <(head -c 16M /dev/zero)

# ---- a chunk no mirror has: the install fails naming it; the slot not switched ---------------------
victim=$(awk '$3 == 200 && $5 ~ /store\/[0-7][0-9a-f][0-9a-f][0-9a-f]\// && !v {v = $5} END {print v}' "$T/d2.log2")
victim=${victim#/store/}
rm -f "$T/www1/store/$victim" "$T/www2/store/$victim" "$W/$victim"
device "$T/d4" "$M1" "$M2"
rm -f "$T/d4/state/slot-A.caibx"
rc=0
$S install --config "$T/d4/system.conf" "$T/v2-chunks.bundle" >"$T/d4.out" 2>&1 || rc=$?
sed 's/^/# /' "$T/d4.out" | tail -3
check "a chunk no mirror has: the install fails (exit $rc), naming the chunk and what each mirror answered" \
	bash -c "[ $rc -ne 0 ] && grep -q '$victim' '$T/d4.out' && grep -q '$M1: HTTP 403' '$T/d4.out' && grep -q '$M2: HTTP 404' '$T/d4.out' && grep -q '$M3/$victim: not found (HTTP 404)' '$T/d4.out'"
a_first() { ! points_at_b "$1"; }
check "... the slot is not switched: A still boots first" a_first "$T/d4"
finish

#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# slotsync-gen publish against a real S3 server (radosgw on a one-node Ceph,
# tests/integration/rgw.sh) and into a folder:
#  - two releases with delta files, their bundles and a channel pointer: every
#    file lands under its key with its Content-Type and Cache-Control;
#  - published again: nothing sent;
#  - killed midway through a large store: the pointer is not there, the rerun
#    sends only the rest, then the pointer;
#  - a device assembles the release from the bucket (public-read by a bucket
#    policy, as a deployment behind a CDN serves it) byte-exact, with delta
#    objects;
#  - wrong credentials, a missing bucket, no credentials: a clear error, exit
#    non-zero, nothing sent;
#  - a folder DEST: the same files, byte for byte, nothing sent again.
# Skipped (77) only when radosgw is not installed.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/rgw.sh"
G=$SLOTSYNC_GEN
S=$SLOTSYNC_BIN
rc=0
start_rgw || rc=$?
[ $rc -eq 0 ] || exit $rc
echo "# radosgw up at $RGW_URL after $SECONDS s"
export AWS_ACCESS_KEY_ID=$RGW_KEY AWS_SECRET_ACCESS_KEY=$RGW_SECRET AWS_ENDPOINT_URL=$RGW_URL
unset AWS_ENDPOINT_URL_S3 AWS_SESSION_TOKEN AWS_PROFILE AWS_REGION AWS_DEFAULT_REGION
s3_curl -X PUT "$RGW_URL/releases" -o /dev/null
s3_curl -X PUT "$RGW_URL/big-store" -o /dev/null
# devices read anonymously, as through a CDN: a public-read bucket policy
# (a valueless query such as ?policy must be signed as ?policy=)
printf '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::releases/*"]}]}' >"$T/policy.json"
s3_curl -X PUT -T "$T/policy.json" "$RGW_URL/releases?policy=" -o /dev/null

# ---- two releases, delta files, bundles, a pointer --------------------------------
python3 - "$T/v1.img" "$T/v2.img" <<'PY'
import random, sys
r = random.Random(5)
base = bytes(r.getrandbits(8) for _ in range(2 << 20))
new = bytearray(base)
for k in range(0, len(new), 8192):
    new[k] ^= 0x55
new[1 << 20:(1 << 20) + 300000] = bytes(r.getrandbits(8) for _ in range(300000))
open(sys.argv[1], "wb").write(base)
open(sys.argv[2], "wb").write(new)
PY
signing_ca "$T" s
SIGN=(--signer-cert "$T/s.pem" --signer-key "$T/s.key")
W=$T/store
$G bundle --no-progress --store "$W" --image "$T/v1.img" --version 1 --compatible c "${SIGN[@]}" "$T/v1.bundle" >/dev/null
$G make --no-progress "$T/v1.img" "$T/v1.caibx" >/dev/null
$G make --no-progress "$T/v2.img" "$T/v2.caibx" >/dev/null
$G bundle --no-progress --store "$W" --image "$T/v2.img" --version 2 --compatible c --delta-from "$T/v1.caibx:$T/v1.img" \
	"${SIGN[@]}" "$T/v2.bundle" >/dev/null
$G channel --bundle-url v2.bundle --bundle "$T/v2.bundle" --version 2 --expires @4000000000 "${SIGN[@]}" "$T/channel" >/dev/null
files=$(cd "$W" && find . -type f -name '[0-9a-f]*' | wc -l)
$G publish --store "$W" --bundle "$T/v1.bundle" --bundle "$T/v2.bundle" --pointer "$T/channel" \
	--to s3://releases/fleet/ >"$T/pub.txt"
echo "# $(tail -n1 "$T/pub.txt")"
check "publish to S3: the store's $files files, two bundles and the pointer sent" \
	grep -q "^publish: s3://releases/fleet/: $((files + 3)) files sent" "$T/pub.txt"
check "... in order: chunks, delta objects, delta indexes, bundles, pointers" \
	test "$(sed -n 's/^publish: \([a-z ]*\): .*/\1/p' "$T/pub.txt" | tr '\n' ,)" = \
	"chunks and indexes,delta objects,delta indexes,bundles,pointers,"
headers() { # headers KEY: the status, Cache-Control and Content-Type of the object (a signed HEAD)
	s3_curl -I "$RGW_URL/releases/fleet/$1" | tr -d '\r' |
		awk 'NR == 1 { s = $2 } tolower($1) ~ /^cache-control:/ { sub(/^[^:]*: /, ""); c = $0 }
		     tolower($1) ~ /^content-type:/ { sub(/^[^:]*: /, ""); t = $0 } END { print s "|" c "|" t }'
}
IMM="public, max-age=31536000, immutable"
bad=0
for f in $(cd "$W" && find . -type f -name '[0-9a-f]*' | sed 's|^\./||'); do
	case $f in
	*.cacnk | *.sdob) want="200|$IMM|application/zstd" ;;
	*.sdix | *.sdid) want="200|public, max-age=3600|application/zstd" ;;
	*.caibx) want="200|$IMM|application/octet-stream" ;;
	esac
	got=$(headers "store/$f")
	[ "$got" = "$want" ] || { bad=$((bad + 1)); echo "# store/$f: $got, not $want"; }
done
check "every store file is in the bucket with its Content-Type and Cache-Control (content-addressed: immutable)" test $bad -eq 0
check "the bundles: application/octet-stream, an hour ($(headers v2.bundle))" \
	test "$(headers v1.bundle)" = "200|public, max-age=3600|application/octet-stream" -a \
	"$(headers v2.bundle)" = "200|public, max-age=3600|application/octet-stream"
check "the pointer: a minute ($(headers channel))" test "$(headers channel)" = "200|public, max-age=60|application/octet-stream"
check "the pointer's bytes are the file's" cmp -s "$T/channel" <(curl -s "$RGW_URL/releases/fleet/channel")

$G publish --store "$W" --bundle "$T/v1.bundle" --bundle "$T/v2.bundle" --pointer "$T/channel" \
	--to s3://releases/fleet >"$T/pub2.txt"
check "published again: nothing sent ($(tail -n1 "$T/pub2.txt"))" \
	grep -q "^publish: s3://releases/fleet: 0 files sent (0 bytes), $((files + 3)) already there" "$T/pub2.txt"
$G channel --bundle-url v2.bundle --bundle "$T/v2.bundle" --version 3 --expires @4000000000 "${SIGN[@]}" "$T/channel" >/dev/null
$G publish --store "$W" --bundle "$T/v2.bundle" --pointer "$T/channel" --to s3://releases/fleet >"$T/pub3.txt"
check "a new pointer under the same name: only it is sent, and served" \
	bash -c "grep -q '^publish: s3://releases/fleet: 1 files sent' '$T/pub3.txt' && cmp -s '$T/channel' <(curl -s '$RGW_URL/releases/fleet/channel')"

# ---- a device installs from the bucket -------------------------------------------
U=$RGW_URL/releases/fleet/store
SDIX=$(cd "$W" && ls deltas/*/*.sdix)
$S assemble --allow-plain-http --store "$U" --delta-index "$U/$SDIX" --seed "$T/v1.img:$T/v1.caibx" --json \
	"$T/v2.caibx" "$T/d.img" >"$T/d.json"
check "a device assembles v2 from the bucket, anonymously, byte-exact, with delta objects" \
	bash -c "cmp -s '$T/v2.img' '$T/d.img' && python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))[\"chunks_from_delta\"] > 0' '$T/d.json'"

# ---- killed midway, then resumed ---------------------------------------------------
head -c $((6 << 20)) /dev/urandom >"$T/big.img"
$G bundle --no-progress --store "$T/big" --chunk-size 2K:4K:8K --image "$T/big.img" --version 9 --compatible c \
	"${SIGN[@]}" "$T/big.bundle" >/dev/null
$G channel --bundle-url big.bundle --bundle "$T/big.bundle" --version 9 --expires @4000000000 "${SIGN[@]}" "$T/big.ptr" >/dev/null
big=$(($(find "$T/big" -type f -name '*.cacnk' | wc -l) + 2))
: >"$T/kill.log"
$G publish -v --store "$T/big" --bundle "$T/big.bundle" --pointer "$T/big.ptr" --to s3://big-store/s --jobs 4 \
	>/dev/null 2>"$T/kill.log" &
pid=$!
for i in $(seq 600); do
	[ "$(grep -c 'publish: sent store/' "$T/kill.log")" -ge 200 ] && break
	sleep 0.02
done
kill -9 $pid
wait $pid 2>/dev/null || true
before=$(grep -c 'publish: sent store/' "$T/kill.log")
check "killed after $before of $big uploads: the pointer and the bundle are not in the bucket" \
	test "$before" -lt "$big" -a "$(s3_curl -o /dev/null -w '%{http_code}' -I "$RGW_URL/big-store/s/big.ptr")" = 404 -a \
	"$(s3_curl -o /dev/null -w '%{http_code}' -I "$RGW_URL/big-store/s/big.bundle")" = 404
$G publish --store "$T/big" --bundle "$T/big.bundle" --pointer "$T/big.ptr" --to s3://big-store/s >"$T/resume.txt"
sent=$(sed -n 's|^publish: s3://big-store/s: \([0-9]*\) files sent.*|\1|p' "$T/resume.txt")
there=$(sed -n 's|.*), \([0-9]*\) already there.*|\1|p' "$T/resume.txt" | tail -n1)
check "the rerun sends only the rest ($sent sent, $there already there, $before seen done before the kill; a listing of more than 1000 keys)" \
	test "$((sent + there))" -eq "$big" -a "$there" -ge "$before" -a "$sent" -gt 0
check "... the pointer last" test "$(s3_curl -s "$RGW_URL/big-store/s/big.ptr" | cmp - "$T/big.ptr" && echo same)" = same

# ---- errors: nothing sent ------------------------------------------------------------
expect_fail "wrong secret key: the server's answer, exit non-zero" "SignatureDoesNotMatch" \
	env AWS_SECRET_ACCESS_KEY=wrong $G publish --store "$W" --pointer "$T/channel" --to s3://releases/other
expect_fail "an unknown access key" "InvalidAccessKeyId" \
	env AWS_ACCESS_KEY_ID=NOSUCHKEY $G publish --store "$W" --pointer "$T/channel" --to s3://releases/other
check "... nothing was sent under that prefix" \
	test "$(s3_curl "$RGW_URL/releases?list-type=2&prefix=other%2F" | grep -c '<Key>')" = 0
expect_fail "a missing bucket" "NoSuchBucket" $G publish --store "$W" --to s3://no-such-bucket/x
expect_fail "no credentials at all: says where they are looked for" "AWS_ACCESS_KEY_ID" \
	env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY HOME="$T/nohome" $G publish --store "$W" --to s3://releases/x
printf '[ci]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$RGW_KEY" "$RGW_SECRET" >"$T/credentials"
check "credentials from a shared credentials file's profile (AWS_SHARED_CREDENTIALS_FILE, AWS_PROFILE)" \
	env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY AWS_SHARED_CREDENTIALS_FILE="$T/credentials" AWS_PROFILE=ci \
	$G publish -q --pointer "$T/channel" --to s3://releases/fleet
expect_fail "a bad bucket name" "bucket name" $G publish --store "$W" --to s3://A_B/x
expect_fail "another URL scheme" "a folder or s3://" $G publish --store "$W" --to https://example.com/x
expect_fail "nothing to publish" "something to publish" $G publish --to "$T/x"

# ---- a folder DEST -----------------------------------------------------------------
$G publish --store "$W" --bundle "$T/v2.bundle" --pointer "$T/channel" --to "$T/www" >"$T/f.txt"
check "to a folder: the store and the files, byte for byte, nothing else" \
	bash -c "diff -r '$W' '$T/www/store' && cmp -s '$T/v2.bundle' '$T/www/v2.bundle' && cmp -s '$T/channel' '$T/www/channel' &&
		test \"\$(ls -A '$T/www')\" = \"\$(printf 'channel\nstore\nv2.bundle')\""
$G publish --store "$W" --bundle "$T/v2.bundle" --pointer "$T/channel" --to "$T/www" >"$T/f2.txt"
check "to a folder again: nothing sent" grep -q "0 files sent (0 bytes), $((files + 2)) already there" "$T/f2.txt"
echo "# $SECONDS s in all"
finish

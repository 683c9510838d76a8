#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Signed bundles and channel pointers: each attack of docs/security.md is
# refused with a clear error and nothing written (no index, device state
# unchanged); what is legitimate is accepted.  Keys in files and in a PKCS#11
# token (softhsm2); a device clock far off; reproducible bundles.
source "$(dirname "$0")/lib.sh"
G=$SLOTSYNC_GEN
S=$SLOTSYNC_BIN
cd "$T"

# ---- a fleet's PKI: root -> release CA -> CI signer (codeSigning); another fleet
cat >ext.cnf <<'EOF'
[ca]
basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
[leaf]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=codeSigning
[noeku]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=emailProtection
EOF
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }
root() { # root NAME
	key "$1"
	openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 3650 -subj "/CN=$1" \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}
issue() { # issue NAME CA EXTENSIONS DAYS
	key "$1"
	openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$1" 2>/dev/null
	openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -out "$1.pem" -days "$4" \
		-extfile ext.cnf -extensions "$3" 2>/dev/null
}
root fleet-root
issue release-ca fleet-root ca 1000
issue ci-signer release-ca leaf 1
issue mail-signer release-ca noeku 365
root other-fleet-root
issue other-signer other-fleet-root leaf 365
key rogue
openssl req -x509 -new -key rogue.key -out rogue.pem -days 365 -subj /CN=rogue -addext extendedKeyUsage=codeSigning 2>/dev/null
SIGN=(--signer-cert ci-signer.pem --signer-key ci-signer.key --chain release-ca.pem)

random_file img1 3 bundle-v1
random_file img2 3 bundle-v2
bundle() { # bundle OUT IMAGE VERSION [more options]
	local out=$1 img=$2 ver=$3; shift 3
	$G bundle --no-progress --store store --image "$img" --version "$ver" --compatible radio-x86 \
		--store-url https://updates.example/store "${SIGN[@]}" "$@" "$out" >/dev/null
}
export SOURCE_DATE_EPOCH=1800000000
check "bundle v1.0 (security version 1) is made" bundle v1.bundle img1 1.0 --security-version 1
check "bundle v2.0 (security version 3) is made" bundle v2.bundle img2 2.0 --security-version 3
check "bundle v1.5 allowing a downgrade to itself is made" bundle v15-down.bundle img1 1.5 --security-version 3 --allow-downgrade-to 1.5
check "bundle v1.6 without that permission is made" bundle v16.bundle img1 1.6 --security-version 3

# ---- accepted
$S verify --keyring fleet-root.pem --compatible radio-x86 --index-out v2.caibx v2.bundle >v2.json 2>verify.err
check "a good bundle is accepted and its manifest printed" grep -q '"version": "2.0"' v2.json
$G make --no-progress img2 img2.caibx >/dev/null
check "the index it hands out is the image's index, byte for byte" cmp v2.caibx img2.caibx
python3 - v2.json img2 <<'PY' || not_ok "manifest names the image's size and SHA-256"
import hashlib, json, sys
m = json.load(open(sys.argv[1])); data = open(sys.argv[2], 'rb').read()
assert m["image"]["size"] == len(data) and m["image"]["sha256"] == hashlib.sha256(data).hexdigest(), m
assert m["security_version"] == 3 and m["stores"] == ["https://updates.example/store"], m
assert m["created"] == "2027-01-15T08:00:00Z", m["created"]   # SOURCE_DATE_EPOCH
PY
ok "manifest names the image's size and SHA-256, the store and SOURCE_DATE_EPOCH as its creation time"

# ---- reproducible: the same release twice gives the same manifest and index
parts() { python3 -c '
import struct, sys
b = open(sys.argv[1], "rb").read(); n = struct.unpack_from("<I", b, 16)[0]
lens = struct.unpack_from("<%dQ" % n, b, 24); off = 24 + 8 * n
sys.stdout.buffer.write(b[off:off + sum(lens)])' "$1"; }
bundle v2-again.bundle img2 2.0 --security-version 3
check "rebuilding a release gives the same manifest and index (only the signature differs)" \
	cmp <(parts v2.bundle) <(parts v2-again.bundle)

# ---- refusals: clear reason, non-zero exit, nothing written
echo '{"pointer_version": 0, "security_floor": 0, "installed_version": "1.0"}' >state.json
refused() { # refused WHAT NEEDLE verify-args...
	local what=$1 needle=$2; shift 2
	local before rc=0
	before=$(md5sum <state.json)
	rm -f out.caibx
	$S verify --keyring fleet-root.pem --state state.json --index-out out.caibx "$@" >out.txt 2>err.txt || rc=$?
	if [ $rc -ne 0 ] && grep -qF -- "$needle" err.txt && [ ! -e out.caibx ] && [ "$(md5sum <state.json)" = "$before" ]; then
		ok "$what: refused (exit $rc: $(tail -n1 err.txt))"
	else
		not_ok "$what: exit $rc, index written: $([ -e out.caibx ] && echo yes || echo no), stderr: $(cat err.txt)"
	fi
}
flip() { # flip IN OUT OFFSET: one byte changed
	python3 -c '
import sys
b = bytearray(open(sys.argv[1], "rb").read()); o = int(sys.argv[3]); o = o if o >= 0 else len(b) + o
b[o] ^= 0x01; open(sys.argv[2], "wb").write(b)' "$@"
}
mlen=$(python3 -c 'import struct,sys; print(struct.unpack_from("<Q", open(sys.argv[1],"rb").read(), 24)[0])' v2.bundle)
flip v2.bundle tampered-manifest.bundle 60
refused "tampered manifest" "signature does not match" tampered-manifest.bundle
flip v2.bundle tampered-index.bundle $((40 + mlen + 200))
refused "tampered index" "signature does not match" tampered-index.bundle
flip v2.bundle tampered-header.bundle 30
refused "tampered part length" "bundle" tampered-header.bundle
head -c 5000 v2.bundle >truncated.bundle
refused "truncated bundle" "truncated" truncated.bundle
flip v2.bundle tampered-sig.bundle -20
refused "tampered signature" "signature" tampered-sig.bundle
$G bundle --no-progress --store store --image img2 --version 2.0 --compatible radio-x86 \
	--signer-cert rogue.pem --signer-key rogue.key rogue.bundle >/dev/null
refused "signer not chained to the keyring (self-signed)" "not trusted by keyring" rogue.bundle
$G bundle --no-progress --store store --image img2 --version 2.0 --compatible radio-x86 \
	--signer-cert other-signer.pem --signer-key other-signer.key other.bundle >/dev/null
refused "bundle of another fleet" "not trusted by keyring" other.bundle
rc=0
$S verify --keyring other-fleet-root.pem v2.bundle >/dev/null 2>err.txt || rc=$?
check "keyring of another fleet refuses our bundle (exit $rc: $(tail -n1 err.txt))" \
	grep -q "not trusted by keyring" err.txt
expect_fail "slotsync-gen refuses a signer without codeSigning" "codeSigning" \
	$G bundle --no-progress --store store --image img2 --version 2.0 --compatible radio-x86 \
	--signer-cert mail-signer.pem --signer-key mail-signer.key --chain release-ca.pem x.bundle
# ... and the device refuses one made without slotsync-gen, with openssl's own CMS
python3 - <<'PY'
import struct
b = open("v2.bundle", "rb").read(); n = struct.unpack_from("<I", b, 16)[0]
lens = struct.unpack_from("<%dQ" % n, b, 24)
open("unsigned.bin", "wb").write(b[:24 + 8 * n + sum(lens)])
PY
openssl cms -sign -binary -md sha256 -nosmimecap -outform DER -in unsigned.bin -signer mail-signer.pem \
	-inkey mail-signer.key -certfile release-ca.pem -out mail.sig 2>/dev/null
cat unsigned.bin mail.sig >mail.bundle
refused "signer without the codeSigning usage (signed with openssl cms)" "codeSigning" mail.bundle
openssl cms -sign -binary -md sha256 -nosmimecap -outform DER -in unsigned.bin -signer ci-signer.pem \
	-inkey ci-signer.key -certfile release-ca.pem -out ci.sig 2>/dev/null
cat unsigned.bin ci.sig >openssl-signed.bundle
check "a bundle signed with openssl cms by the CI signer is accepted (the format is plain CMS)" \
	$S verify --keyring fleet-root.pem openssl-signed.bundle

# ---- the signer's validity counts at the signing time, not the device's clock
# (faketime is a preloaded library: an ASan build must be told to accept that)
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0
check "a device whose clock is 3 years ahead (signer certificate long expired) still accepts" \
	faketime -f '+1100d' $S verify --keyring fleet-root.pem v2.bundle
faketime -f '-3d' $G bundle --no-progress --store store --image img2 --version 2.0 --compatible radio-x86 \
	"${SIGN[@]}" early.bundle >/dev/null
refused "signed before the signer's certificate was valid" "not yet valid" early.bundle

# ---- device policy
refused "incompatible device" "this device is \"radio-arm\"" --compatible radio-arm v2.bundle
echo '{"pointer_version": 0, "security_floor": 0, "installed_version": "2.0"}' >state.json
refused "the installed version again" "already installed" v2.bundle
refused "downgrade without a signed permission" "does not allow a downgrade" v16.bundle
refused "signed downgrade on a device that does not allow downgrades" "does not allow downgrades" v15-down.bundle
check "signed downgrade on a device that allows it: accepted" \
	$S verify --keyring fleet-root.pem --state state.json --allow-downgrade v15-down.bundle
$S state --state state.json --raise-floor 4 >/dev/null
refused "downgrade below the security floor, permission or not" "below this device's floor" --allow-downgrade v15-down.bundle
expect_fail "the security floor never goes down" "only goes up" $S state --state state.json --raise-floor 2
expect_fail "a manifest that allows a downgrade to another version is not made" "must name this release" \
	$G bundle --no-progress --store store --image img1 --version 1.7 --compatible radio-x86 --allow-downgrade-to 1.0 \
	"${SIGN[@]}" y.bundle

# ---- channel pointers
echo '{"pointer_version": 0, "security_floor": 0, "installed_version": "1.0"}' >state.json
future=$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)
past=$(date -u -d '-1 day' +%Y-%m-%dT%H:%M:%SZ)
# a URL without its scheme is never signed: the device's curl would guess plain http
expect_fail "a store URL without its scheme is not signed into a bundle" "no scheme" \
	$G bundle --no-progress --store store --image img1 --version 9.0 --compatible radio-x86 \
	--store-url cdn.example.com/store "${SIGN[@]}" noscheme.bundle
check "(and no bundle is written)" test ! -e noscheme.bundle
expect_fail "a --store that is a URL is refused before any work (stores are local folders)" "is a URL, not a folder" \
	$G bundle --no-progress --store s3://bucket/store --image img1 --version 9.0 --compatible radio-x86 \
	"${SIGN[@]}" s3store.bundle
check "(no bundle, no folder s3: in the working directory)" bash -c '[ ! -e s3store.bundle ] && [ ! -e s3: ]'
expect_fail "a bundle URL that is a host without its scheme is not put in a pointer" "no scheme" \
	$G channel --bundle-url cdn.example.com/v2.bundle --bundle v2.bundle --version 9 --expires 2099-01-01T00:00:00Z \
	"${SIGN[@]}" noscheme.pointer
check "a relative bundle URL (resolved against the channel's) is fine" \
	$G channel --bundle-url releases/v2.bundle --bundle v2.bundle --version 9 --expires 2099-01-01T00:00:00Z \
	"${SIGN[@]}" relative.pointer
chan() { $G channel --bundle-url "https://updates.example/$2" --bundle "$2" --version "$3" --expires "$4" "${SIGN[@]}" "$1" >/dev/null; }
chan p5.ptr v2.bundle 5 "$future"
chan p4.ptr v2.bundle 4 "$future"
chan p6-old.ptr v2.bundle 6 "$past"
chan p7-v1.ptr v1.bundle 7 "$future"
check "a fresh pointer to v2 (version 5) is followed" \
	$S verify --keyring fleet-root.pem --state state.json --pointer p5.ptr v2.bundle
check "the device remembers pointer version 5" grep -q '"pointer_version": 5' state.json
refused "replayed older pointer (rollback)" "older than the last one accepted" --pointer p4.ptr v2.bundle
refused "expired pointer (freeze)" "expired" --pointer p6-old.ptr v2.bundle
refused "pointer to another bundle (mix-and-match)" "mix-and-match" --pointer p7-v1.ptr v2.bundle
refused "pointer whose bundle digest does not match, same size (mix-and-match)" "does not have the SHA-256" \
	--pointer p5.ptr tampered-manifest.bundle
cp p5.ptr p5-big.ptr
head -c 70000 /dev/zero >>p5-big.ptr
refused "oversized pointer (endless data)" "more than the limit" --pointer p5-big.ptr v2.bundle
truncate -s 300M huge.bundle
refused "oversized bundle (endless data)" "more than the limit" huge.bundle
cp p5.ptr not-a-bundle.bundle
refused "a pointer given as a bundle (type confusion)" "its kind is" not-a-bundle.bundle

# ---- the release key in a PKCS#11 token (softhsm2 through OpenSSL's pkcs11 engine)
mkdir tokens
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\n' "$T" >softhsm2.conf
export SOFTHSM2_CONF=$T/softhsm2.conf
softhsm2-util --init-token --free --label release --pin 1234 --so-pin 4321 >/dev/null
openssl pkcs8 -topk8 -nocrypt -in ci-signer.key -out ci-signer.p8
softhsm2-util --import ci-signer.p8 --token release --label relkey --id 01 --pin 1234 >/dev/null
rm ci-signer.p8
MOD=/usr/lib/softhsm/libsofthsm2.so
check "a bundle signed with the key in the token is made" \
	$G bundle --no-progress --store store --image img2 --version 2.1 --compatible radio-x86 --signer-cert ci-signer.pem \
	--signer-key "pkcs11:token=release;object=relkey;type=private;pin-value=1234" --pkcs11-module $MOD \
	--chain release-ca.pem hsm.bundle
check "... and accepted by the device" $S verify --keyring fleet-root.pem hsm.bundle
expect_fail "a wrong PIN is a clear error, and no bundle" "no private key" \
	$G bundle --no-progress --store store --image img2 --version 2.2 --compatible radio-x86 --signer-cert ci-signer.pem \
	--signer-key "pkcs11:token=release;object=relkey;type=private;pin-value=9999" --pkcs11-module $MOD \
	--chain release-ca.pem wrongpin.bundle
check "(no bundle was written)" test ! -e wrongpin.bundle
finish

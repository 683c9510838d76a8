#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Only a signed root, on the host (the happy path needs device-mapper: the VM
# suites, system_update and system_evil_maid, boot through it):
#   - an install keeps the signed envelope of what it wrote into the slot;
#   - `slotsync open-root` refuses a slot whose record is missing, signed by
#     another fleet, for another device, of a release without dm-verity, and
#     a slot whose bytes no longer match the signed root hash;
#   - a device that measures its root ([tpm] root-pcr) refuses a release
#     without dm-verity before it writes anything;
#   - a data key sealed with slot-format --root-pcr --root-hash unseals only
#     once exactly that root's measurement, SHA-256("slotsync-root:" + root
#     hash), was extended into the PCR (extended here by tpm2-tools, not by
#     slotsync: the measurement is the documented one).
source "$(dirname "$0")/lib.sh"
S=$SLOTSYNC_BIN
G=$SLOTSYNC_GEN
sample_images
cd "$T"
signing_ca
SIGN=(--signer-cert signer.pem --signer-key signer.key)
mkdir -p store
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }

$G verity --json "$V1" v1.slot >v1.json
ROOT=$(field v1.json root_hash)
$G bundle --no-progress --store store --image "$V1" --version 1.0 --compatible root-test --verity "${SIGN[@]}" v1.bundle >/dev/null
$G bundle --no-progress --store store --image "$V1" --version 1.1 --compatible root-test "${SIGN[@]}" plain.bundle >/dev/null
$G bundle --no-progress --store store --image "$V1" --version 1.0 --compatible other-device --verity "${SIGN[@]}" other.bundle >/dev/null

D=$T/dev
device_fixture "$D" root-test "$D/state/boot.state" "store = $T/store"
truncate -s 32M "$D/slot-b.img"
check "slotsync install of a --verity release into slot B" \
	sh -c "$S install --config '$D/system.conf' v1.bundle >install.out 2>&1"
check "(the install kept the release's signed envelope for slot B: the bundle itself)" cmp v1.bundle "$D/state/slot-B.bundle"

# open-root's refusals, each before anything is opened
expect_fail "open-root of a slot with no signed record" "slot-A.bundle" $S open-root --config "$D/system.conf" A
# another fleet's CA signs a record of the same release
mkdir -p other && (cd other && signing_ca >/dev/null 2>&1)
$G bundle --no-progress --store store --image "$V1" --version 1.0 --compatible root-test --verity \
	--signer-cert other/signer.pem --signer-key other/signer.key foreign.bundle >/dev/null
expect_fail "open-root of a record signed by another fleet" "signed release record" \
	$S open-root --config "$D/system.conf" --record foreign.bundle B
head -c -10 v1.bundle >cut.bundle
expect_fail "open-root of a truncated record" "signed release record" $S open-root --config "$D/system.conf" --record cut.bundle B
expect_fail "open-root of a record for another device" "is for \"other-device\"" \
	$S open-root --config "$D/system.conf" --record other.bundle B
expect_fail "open-root of a release without dm-verity" "has no dm-verity root hash" \
	$S open-root --config "$D/system.conf" --record plain.bundle B
python3 - "$D/slot-b.img" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(200000); b = f.read(1); f.seek(200000); f.write(bytes([b[0] ^ 1]))
PY
expect_fail "open-root of slot B with one bit flipped since the install: dm-verity" "fails dm-verity" \
	$S open-root --config "$D/system.conf" B

D2=$T/dev2
device_fixture "$D2" root-test "$D2/state/boot.state" "store = $T/store"
truncate -s 32M "$D2/slot-b.img" "$D2/data-a.img" "$D2/data-b.img"
sed -i "s|^device = $D2/slot-a.img|device = $D2/slot-a.img\ndata = $D2/data-a.img|; s|^device = $D2/slot-b.img|device = $D2/slot-b.img\ndata = $D2/data-b.img|" "$D2/system.conf"
printf '[tpm]\nroot-pcr = 15\n' >>"$D2/system.conf"
cp "$D2/slot-b.img" before.img
expect_fail "a device that measures its root refuses a release without dm-verity, naming why" \
	"has no dm-verity root hash, and this device boots only verified roots" \
	$S install --config "$D2/system.conf" plain.bundle
check "(slot B untouched)" cmp before.img "$D2/slot-b.img"

# a data key bound to a root: the documented measurement, extended by tpm2-tools
start_swtpm main TPM
truncate -s 40M data.img
check "slot-format --root-pcr 15 --root-hash ROOT: a data key sealed for that root's measurement" \
	sh -c "$S slot-format --tcti '$TPM' --root-pcr 15 --root-hash $ROOT data.img >/dev/null"
expect_fail "(it does not unseal before the root was measured)" "no longer hold the values" \
	$S unlock --tcti "$TPM" --pcrs 15 --check data.img
expect_fail "(nor under a policy without PCR 15: refused by name)" "bound to PCRs 15" \
	$S unlock --tcti "$TPM" --check data.img
OTHER_EV=$(printf 'slotsync-root:%s' "$(printf '%064d' 7)" | sha256sum | cut -d' ' -f1)
EV=$(printf 'slotsync-root:%s' "$ROOT" | sha256sum | cut -d' ' -f1)
truncate -s 40M data2.img
$S slot-format --tcti "$TPM" --root-pcr 15 --root-hash "$(printf '%064d' 7)" data2.img >/dev/null
TPM2TOOLS_TCTI="$TPM" tpm2_pcrextend 15:sha256="$EV" >/dev/null
check "(after PCR 15 was extended with SHA-256(\"slotsync-root:\" + root hash), it unseals)" \
	$S unlock --tcti "$TPM" --pcrs 15 --check data.img
expect_fail "(the key of another root does not)" "no longer hold the values" \
	$S unlock --tcti "$TPM" --pcrs 15 --check data2.img
TPM2TOOLS_TCTI="$TPM" tpm2_pcrextend 15:sha256="$OTHER_EV" >/dev/null
expect_fail "(and a second root measured after it closes it again)" "no longer hold the values" \
	$S unlock --tcti "$TPM" --pcrs 15 --check data.img
expect_fail "slot-format --root-pcr without --root-hash is a usage error" "go together" \
	$S slot-format --tcti "$TPM" --root-pcr 15 data.img
expect_fail "slot-format --root-hash that is not hex" "lower-case hex" \
	$S slot-format --tcti "$TPM" --root-pcr 15 --root-hash XYZ data.img
finish

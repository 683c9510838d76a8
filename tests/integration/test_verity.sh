#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dm-verity for slot images: `slotsync-gen verity` writes the image padded to
# 4096-byte blocks and its hash tree exactly as veritysetup's own verify
# accepts it (--no-superblock, the tree at the data size), the same image gives
# the same bytes twice; `bundle --verity` signs that slot image, and
# `slotsync install` writes it byte for byte and checks it through dm-verity
# before the switch; a second release with --verity (delta objects from the
# first's slot image) installs on a device running the first, fetching only
# what changed.  A slot whose tree or data was changed fails veritysetup (and
# slotsync_verity_verify: unit_verity).
source "$(dirname "$0")/lib.sh"
S=$SLOTSYNC_BIN
G=$SLOTSYNC_GEN
sample_images
cd "$T"
signing_ca
SIGN=(--signer-cert signer.pem --signer-key signer.key)
mkdir -p store

field() { # field JSON-FILE KEY
	python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"
}
vsetup_verify() { # vsetup_verify SLOT-IMAGE JSON: veritysetup's own check of it
	veritysetup verify --no-superblock --data-blocks=$(($(field "$2" data_size) / 4096)) \
		--hash-offset="$(field "$2" hash_offset)" --salt="$(field "$2" salt)" "$1" "$1" "$(field "$2" root_hash)"
}

# the slot image: veritysetup's format, made the same way twice
check "slotsync-gen verity writes the slot image of v1" sh -c "$G verity --json '$V1' v1.slot >v1.json"
$G verity --json "$V1" again.slot >again.json
check "(the same image gives the same slot image, byte for byte)" cmp v1.slot again.slot
check "(and prints the same root hash and salt)" cmp v1.json again.json
SIZE1=$(stat -c %s "$V1")
DATA1=$(field v1.json data_size)
check "(the data size is the image padded to 4096-byte blocks: $DATA1)" \
	test "$DATA1" -eq $(((SIZE1 + 4095) / 4096 * 4096))
check "(the slot image starts with the image, then zeros to the data size)" \
	sh -c "cmp -n $SIZE1 '$V1' v1.slot && test \"\$(tail -c +$((SIZE1 + 1)) v1.slot | head -c $((DATA1 - SIZE1)) | tr -d '\\\\0' | wc -c)\" -eq 0"
check "(its size is the data size and the hash tree)" test "$(stat -c %s v1.slot)" -eq "$(field v1.json size)"
check "veritysetup verify --no-superblock accepts the slot image with the printed root hash" vsetup_verify v1.slot v1.json
cp v1.slot bad.slot
printf '\x5a' | dd of=bad.slot bs=1 seek=$((DATA1 + 10)) conv=notrunc 2>/dev/null
expect_fail "veritysetup refuses the slot image with a byte of its tree changed" "" vsetup_verify bad.slot v1.json
cp v1.slot bad.slot
printf '\x5a' | dd of=bad.slot bs=1 seek=1000 conv=notrunc 2>/dev/null
expect_fail "veritysetup refuses the slot image with a byte of its data changed" "" vsetup_verify bad.slot v1.json
$G verity "$V1" plain.slot >plain.txt
check "slotsync-gen verity without --json prints the root hash" grep -q "root hash: *$(field v1.json root_hash)" plain.txt
# an image of one block or less: its data padded to two blocks, whose tree is
# one block (one block alone has an empty tree, which a slot cannot carry)
head -c 100 /dev/urandom >tiny.img
check "slotsync-gen verity of a 100-byte image: two blocks of data, one of tree, and veritysetup accepts it" \
	bash -c "$G verity --json tiny.img tiny.slot >tiny.json && [ \$(stat -c %s tiny.slot) -eq 12288 ] && $(declare -f field vsetup_verify); vsetup_verify tiny.slot tiny.json && cmp -s -n 100 tiny.img tiny.slot"
expect_fail "slotsync-gen verity of a missing image says which" "no-such.img" $G verity no-such.img x.slot
expect_fail "slotsync-gen verity needs both paths" "needs IMAGE SLOT-IMAGE" $G verity "$V1"

# release 1 with dm-verity, installed on a device running the bare v1
check "slotsync-gen bundle --verity signs the slot image of v1" \
	$G bundle --no-progress --store store --image "$V1" --version 1.0 --compatible verity-test --verity \
	"${SIGN[@]}" v1.bundle
expect_fail "bundle --verity with --verity-root-hash is refused (the root is computed)" "leave out --verity-root-hash" \
	$G bundle --no-progress --store store --image "$V1" --version 1.0 --compatible verity-test --verity \
	--verity-root-hash "$(field v1.json root_hash)" "${SIGN[@]}" x.bundle
record() { # record DIR KEY: a field of the install record
	field "$1/state/install.json" "$2"
}
D=$T/dev1
device_fixture "$D" verity-test "$D/state/boot.state" "store = $T/store"
check "slotsync install of release 1 (--verity) onto a device running the bare v1" \
	sh -c "$S install -v --config '$D/system.conf' '$T/v1.bundle' >'$T/install1.out' 2>&1"
check "(the install checked slot B through dm-verity)" grep -q "slot B passes dm-verity (root hash $(field v1.json root_hash))" install1.out
check "(slot B holds the slot image byte for byte)" cmp -n "$(stat -c %s v1.slot)" v1.slot "$D/slot-b.img"
check "(and veritysetup accepts slot B with the signed root hash)" vsetup_verify "$D/slot-b.img" v1.json
check "(the boot state points at B)" points_at_b "$D"

# release 2, with delta objects from release 1's slot image, on a device
# running release 1: the store is shared, only what changed is fetched
$G verity --json "$V2" v2.slot >v2.json
$G make --no-progress --store store v1.slot v1.caibx >/dev/null
check "slotsync-gen bundle --verity --delta-from v1.caibx:v1.slot (the base's slot image)" \
	$G bundle --no-progress --store store --image "$V2" --version 2.0 --compatible verity-test --verity \
	--delta-from v1.caibx:v1.slot "${SIGN[@]}" v2.bundle
D=$T/dev2
device_fixture "$D" verity-test "$D/state/boot.state" "store = $T/store"
cp v1.slot "$D/slot-a.img"
check "slotsync install of release 2 (--verity) onto a device running release 1" \
	sh -c "$S install -v --config '$D/system.conf' '$T/v2.bundle' >'$T/install2.out' 2>&1"
check "(the install checked slot B through dm-verity)" grep -q "slot B passes dm-verity (root hash $(field v2.json root_hash))" install2.out
check "(slot B holds release 2's slot image byte for byte)" cmp -n "$(stat -c %s v2.slot)" v2.slot "$D/slot-b.img"
TOTAL=$(record "$D" bytes_total)
FETCHED=$(record "$D" bytes_fetched)
SEED=$(record "$D" bytes_from_seed)
echo "# release 2: $TOTAL bytes, $FETCHED fetched, $SEED from the running slot"
check "(only what changed was fetched: $FETCHED of $TOTAL bytes, $SEED from release 1's slot)" \
	test "$SEED" -gt 0 -a "$FETCHED" -lt "$TOTAL"

finish

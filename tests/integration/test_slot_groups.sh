#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A slot group of two images: rootfs (the sample squashfs) and boot (a kernel
# volume), each slot naming its own volumes (rootfs = ..., boot = ...).
# v1 -> v2 writes both byte for byte and switches once; a bundle that lacks
# boot, or brings an image the group does not have, is refused before a byte
# is written; installs killed at random instants (SIGKILL, or a stop at a state
# write; SLOTSYNC_SLOT_GROUP_KILLS, default 10) always resume to both images
# byte-exact with the boot state written exactly once; an unchanged boot image
# comes from the active slot's boot volume, not the network; and an offline
# bundle (--embed) carries both images' chunks and indexes.
source "$(dirname "$0")/lib.sh"
S=$SLOTSYNC_BIN
G=$SLOTSYNC_GEN
PC=${SLOTSYNC_POWERCUT:?}
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0
KILLS=${SLOTSYNC_SLOT_GROUP_KILLS:-10}
sample_images
cd "$T"
t_start=$(date +%s)

signing_ca
# boot v1: 6 MiB; boot v2: the same with its second MiB new (a new kernel)
random_file boot-v1.img 6 boot1
random_file new.bin 1 boot2
cp boot-v1.img boot-v2.img
dd if=new.bin of=boot-v2.img bs=1M seek=1 conv=notrunc status=none
random_file dtb.img 1 dtb
BSIZE=$(stat -c %s boot-v2.img)
SIZE=$(stat -c %s "$V2")
sign=(--signer-cert signer.pem --signer-key signer.key)
$G bundle --no-progress --store www/store --image "$V2" --image boot=boot-v2.img --version 2.0 \
	--compatible group-test "${sign[@]}" v2.bundle >/dev/null
$G bundle --no-progress --store www/store --image "$V2" --version 2.0-noboot --compatible group-test \
	"${sign[@]}" noboot.bundle >/dev/null
$G bundle --no-progress --store www/store --image boot=boot-v2.img --image "$V2" --image dtb=dtb.img \
	--version 2.0-dtb --compatible group-test "${sign[@]}" extra.bundle >/dev/null
$G bundle --no-progress --store www/store --image "$V2" --image boot=boot-v1.img --version 2.0-sameboot \
	--compatible group-test "${sign[@]}" sameboot.bundle >/dev/null
$G bundle --no-progress --store www/store --image rootfs="$V2" --image boot=boot-v2.img --version 2.0-usb \
	--compatible group-test --embed "${sign[@]}" usb.bundle >/dev/null
start_nginx store "$T/www"
expect_fail "slotsync-gen refuses an image name given twice" "--image boot= is given twice" \
	$G bundle --no-progress --store www/store --image "$V2" --image boot=boot-v1.img --image boot=boot-v2.img \
	--version 9 --compatible group-test "${sign[@]}" bad.bundle
expect_fail "slotsync-gen refuses an image name that is not one" "--image _boot=: not a valid image name" \
	$G bundle --no-progress --store www/store --image "$V2" --image _boot=boot-v1.img \
	--version 9 --compatible group-test "${sign[@]}" bad.bundle
expect_fail "slotsync-gen refuses the main image twice" "the main image is given twice" \
	$G bundle --no-progress --store www/store --image "$V2" --image rootfs=boot-v1.img \
	--version 9 --compatible group-test "${sign[@]}" bad.bundle
expect_fail "slotsync-gen names a further image it cannot read" "image boot (missing.img)" \
	$G bundle --no-progress --store www/store --image "$V2" --image boot=missing.img \
	--version 9 --compatible group-test "${sign[@]}" bad.bundle
check "(and wrote no bundle)" test ! -e bad.bundle

# group DIR [UPDATE_LINES]: a device running v1 (rootfs and boot) from slot A
group() {
	device_fixture "$1" group-test "$1/state/boot.state" "${2-store = $NGINX_URL/store
ca-file = $T/test-ca.pem
max-rate = 4M}"
	cp boot-v1.img "$1/boot-a.img"
	truncate -s 8M "$1/boot-b.img"
	sed -i -e "s|^device = $1/slot-a.img|rootfs = $1/slot-a.img\nboot = $1/boot-a.img|" \
		-e "s|^device = $1/slot-b.img|&\nboot = $1/boot-b.img|" "$1/system.conf"
}
# exact DIR: slot B's rootfs and boot hold v2 byte for byte
exact() {
	cmp -s -n "$SIZE" "$1/slot-b.img" "$V2" && cmp -s -n "$BSIZE" "$1/boot-b.img" boot-v2.img
}
jq_rec() { # jq_rec DIR EXPR: EXPR of install.json (python, r = the record)
	python3 -c "import json; r=json.load(open('$1/state/install.json')); print($2)"
}
# where DIR stands, in one look (python starts slowly on a busy machine):
# "STEP WRITES B_FIRST EXACT" (the journal's step or "none", the boot state's
# writes, 1 if B comes first, 1 if both of B's images are v2 byte for byte)
where() {
	python3 - "$1" "$SLOTSYNC_BOOTCTL" "$V2" "$SIZE" boot-v2.img "$BSIZE" <<'PY'
import json, struct, subprocess, sys
d, bootctl, v2, size, boot, bsize = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
try:
    step = json.load(open(d + "/state/install.json"))["step"]
except (OSError, ValueError, KeyError):
    step = "none"
b = open(d + "/state/boot.state", "rb").read()
seqs = [struct.unpack_from("<Q", b, o + 16)[0] for o in (0, 512) if len(b) >= o + 64 and b[o:o + 12] == b"SLOTSYNCBOOT"]
st = json.loads(subprocess.run([bootctl, "--backend", "file", "--env", d + "/state/boot.state", "status", "--json"],
                               capture_output=True, text=True).stdout)["slots"]
same = lambda a, b, n: open(a, "rb").read(n) == open(b, "rb").read(n)
print(step, max(seqs) - 1 if seqs else 0, int(st["B"]["priority"] > st["A"]["priority"]),
      int(same(d + "/slot-b.img", v2, size) and same(d + "/boot-b.img", boot, bsize)))
PY
}

D=$T/dev
group "$D"
check "slotsync info lists the further image" bash -c "$S info --config '$D/system.conf' v2.bundle | grep -q '^image  *boot: $BSIZE bytes'"

# refused before anything is written: a bundle without boot, one with an image too many
before=$(sha256sum "$D/slot-b.img" "$D/boot-b.img" "$D/slot-a.img" "$D/boot-a.img")
expect_fail "a bundle without the group's boot image is refused" \
	"bundle 2.0-noboot has no image 'boot', which slot B's group needs" \
	$S install --config "$D/system.conf" noboot.bundle
expect_fail "a bundle with an image the group does not have is refused" \
	"bundle 2.0-dtb has an image 'dtb', which slot B's group does not have" \
	$S install --config "$D/system.conf" extra.bundle
check "(neither wrote a byte to any volume, nor switched)" \
	bash -c "[ '$before' = \"\$(sha256sum '$D/slot-b.img' '$D/boot-b.img' '$D/slot-a.img' '$D/boot-a.img')\" ] && [ $(boot_writes "$D") = 0 ]"
# a boot index in the store that is not the signed one: refused, nothing written
idx=www/store/indexes/$($S info --config "$D/system.conf" --json v2.bundle |
	python3 -c "import json,sys; print(json.load(sys.stdin)['images'][0]['index_sha256'])").caibx
cp "$idx" good.caibx
printf '\xff' | dd of="$idx" bs=1 seek=100 conv=notrunc status=none
expect_fail "a boot index that is not the signed one is refused" \
	"the index of image boot: indexes/" \
	$S install --config "$D/system.conf" v2.bundle
cp good.caibx "$idx"
check "(nothing written, nothing switched)" \
	bash -c "[ '$before' = \"\$(sha256sum '$D/slot-b.img' '$D/boot-b.img' '$D/slot-a.img' '$D/boot-a.img')\" ] && [ $(boot_writes "$D") = 0 ]"
# a device with no further images refuses a bundle that brings one
device_fixture "$T/plain" group-test "$T/plain/state/boot.state" "store = $NGINX_URL/store
ca-file = $T/test-ca.pem"
expect_fail "a single-image device refuses a two-image release" \
	"bundle 2.0 has an image 'boot', which slot B's group does not have" \
	$S install --config "$T/plain/system.conf" v2.bundle

# v1 -> v2: both images, one switch
group "$D"
t0=$(date +%s.%N)
check "v1 -> v2 installs the slot group" $S install --config "$D/system.conf" v2.bundle
FULL=$(echo "$(date +%s.%N) - $t0" | bc)
check "(slot B's rootfs and boot are v2 byte for byte)" exact "$D"
check "(slot A's untouched)" bash -c "cmp -s '$D/boot-a.img' boot-v1.img && cmp -s '$D/slot-a.img' '$V1'"
check "(the boot state points at B)" points_at_b "$D"
check "(written once)" test "$(boot_writes "$D")" = 1
check "(install.json reports the boot image done, its bytes written and fetched)" \
	test "$(jq_rec "$D" "[(i['name'], i['done'], i['bytes_total'], i['bytes_done'] == i['bytes_total'], i['bytes_fetched'] > 0) for i in r['images']]")" = "[('boot', True, $BSIZE, True, True)]"
check "(slotsync status --json shows it)" bash -c "$S status --config '$D/system.conf' --json | grep -Eq '\"name\": ?\"boot\"'"
check "(slotsync status names the boot image's bytes)" \
	bash -c "$S status --config '$D/system.conf' | grep -q 'image boot: $BSIZE of $BSIZE bytes, [1-9][0-9]* fetched, checked'"

# kills at random instants, and stops at state writes swept over the run
group "$D"
POWERCUT_DIR="$D/state" POWERCUT_COUNT="$T/count" LD_PRELOAD="$PC" $S install --config "$D/system.conf" v2.bundle >/dev/null 2>&1
CALLS=$(cat "$T/count")
fails=0 early=0 cut_in=""
for i in $(seq 1 "$KILLS"); do
	tc=$(date +%s.%N)
	group "$D"
	if [ "$i" = 1 ]; then
		# one SIGKILL while the boot image is being written, for certain
		$S install --config "$D/system.conf" v2.bundle >/dev/null 2>&1 &
		pid=$!
		for _ in $(seq 500); do
			grep -Eq '"step": ?"images"' "$D/state/install.json" 2>/dev/null && break
			sleep 0.01
		done
		kill -9 $pid 2>/dev/null || true
		wait $pid 2>/dev/null || true
		how="SIGKILL once step images began"
	elif [ $((i % 2)) = 0 ]; then
		k=$((1 + (i / 2 - 1) * CALLS * 2 / KILLS + RANDOM % (CALLS * 2 / KILLS + 1)))
		[ $k -le $CALLS ] || k=$CALLS
		POWERCUT_DIR="$D/state" POWERCUT_AT=$k POWERCUT_MODE=keep LD_PRELOAD="$PC" \
			$S install --config "$D/system.conf" v2.bundle >/dev/null 2>&1 || true
		how="stopped at state call $k of $CALLS"
	else
		$S install --config "$D/system.conf" v2.bundle >/dev/null 2>&1 &
		pid=$!
		sleep "$(echo "scale=3; $FULL * $((RANDOM % 1000)) / 1000" | bc)"
		kill -9 $pid 2>/dev/null || true
		wait $pid 2>/dev/null || true
		how="SIGKILL"
	fi
	read -r step _ bfirst same < <(where "$D")
	[ "$step" != none ] || step=verify # no journal yet: cut before the bundle was verified
	cut_in+=" $step"
	if [ "$bfirst" = 1 ] && [ "$same" != 1 ]; then
		not_ok "cut $i ($how, at step $step): the boot state points at B before both images are byte-exact"
		early=$((early + 1))
	fi
	if ! $S install --config "$D/system.conf" v2.bundle >"$T/rerun.out" 2>&1; then
		not_ok "cut $i ($how, at step $step): the rerun failed: $(cat "$T/rerun.out")"
		fails=$((fails + 1))
	elif [ "$(where "$D")" != "reboot 1 1 1" ]; then
		not_ok "cut $i ($how, at step $step): after the rerun: step, boot state writes, B first, byte-exact: $(where "$D")"
		fails=$((fails + 1))
	fi
	echo "# cut $i: $how, at step $step, $(echo "$(date +%s.%N) - $tc" | bc) s with the rerun"
done
echo "# $KILLS cuts of an install of $FULL s ($CALLS state calls) left the journal at:$(echo "$cut_in" | tr ' ' '\n' | grep . | sort | uniq -c | awk '{printf " %s %s", $2, $1}')"
check "$KILLS cuts, each resumed: both images byte-exact, switched exactly once" test $fails -eq 0
check "no cut left the boot state pointing at a slot group not byte-exact" test $early -eq 0
check "cuts landed while the boot image was written" bash -c "echo '$cut_in' | tr ' ' '\n' | grep -qx images"

# an unchanged boot image is seeded from the active slot's boot volume
group "$D"
check "v1 -> v2 with boot unchanged installs" $S install --config "$D/system.conf" sameboot.bundle
check "(slot B's boot is byte-exact)" cmp -s -n "$BSIZE" "$D/boot-b.img" boot-v1.img
fetched=$(jq_rec "$D" "r['images'][0]['bytes_fetched']")
seeded=$(jq_rec "$D" "r['images'][0]['bytes_from_seed']")
echo "# unchanged boot image: $fetched bytes fetched, $seeded from the active slot's boot volume"
check "(the unchanged boot image came from slot A's boot volume: 0 bytes fetched)" \
	bash -c "[ '$fetched' -eq 0 ] && [ '$seeded' -eq $BSIZE ]"

# offline: the bundle carries both images' chunks and the boot image's index
group "$D" ""
check "an offline bundle (--embed) installs the slot group with no store" $S install --config "$D/system.conf" usb.bundle
check "(both images byte-exact)" exact "$D"

echo "# wall time: $(($(date +%s) - t_start)) s"
finish

#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The evil maid, on a real boot in qemu (GRUB, the initramfs of
# tests/system/lib.sh, swtpm as the TPM): an attacker with the device in hand
# boots it from other media (a kernel and initramfs of theirs: qemu's direct
# kernel boot) and replaces the root of the slot GRUB boots.  The device must
# never mount it, fall back to the other slot, and never give the attacker's
# root the data partition's key.
#   1. no PCR policy: the attacker formats slot B (LUKS2) with a key of theirs
#      sealed by the device's own TPM without a policy, and writes their root;
#   2. a genuine-looking header: the same with the key sealed under the very
#      PCR policy the device is configured with (PCR 0), so it unseals; then
#      the same slot booted with dm-verity turned off on the command line (a
#      debug boot): the attacker's root runs, and asks the TPM for the data keys;
#   3. a header copied from the real one: slot A's genuine LUKS2 header put on
#      slot B, whose bytes then decrypt to nothing the release signed;
#   4. bytes flipped in a slot after a genuine install.
# Each time the device is powered on as usual afterwards; the console says what
# the initramfs refused, and the next boot must come up on the other slot.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/../vm/lib.sh"
source "$(dirname "$0")/lib.sh"
G=$SLOTSYNC_GEN
cd "$T"
start=$(date +%s)
ARTIFACTS=${SLOTSYNC_SYSTEM_ARTIFACTS:-$SLOTSYNC_BUILD_DIR/system-logs/evil-maid}
rm -rf "$ARTIFACTS"
mkdir -p "$ARTIFACTS"
CLEANUP+=("cp $T/sys-*.log '$ARTIFACTS/' 2>/dev/null")

# ---- two releases, signed, with dm-verity --------------------------------------
signing_ca
SIGN=(--signer-cert signer.pem --signer-key signer.key)
for v in 1.0 2.0; do
	sys_release $v || { not_ok "release $v could not be built"; finish; }
	$G verity release-$v.sqfs release-$v.slot >/dev/null
done
mkdir -p updates
for v in 1.0 2.0; do
	$G bundle --no-progress --store updates/store --image release-$v.sqfs --image boot=boot-$v.img --verity --version $v --compatible slotsync-vm \
		--security-version 1 "${SIGN[@]}" updates/v$v.bundle >/dev/null
done
# 3.0: the 2.0 root again, to install after the attacks
$G bundle --no-progress --store updates/store --image release-2.0.sqfs --image boot=boot-2.0.img --verity --version 3.0 --compatible slotsync-vm \
	--security-version 1 "${SIGN[@]}" updates/v3.0.bundle >/dev/null
$G make --no-progress --store updates/store release-1.0.slot updates/v1.caibx >/dev/null
$G verity --json release-1.0.sqfs release-1.0.slot | python3 -c 'import json,sys; print(json.load(sys.stdin)["root_hash"])' >updates/v1.roothash
printf '{"A": {"status": "good", "version": "1.0", "bundle_sha256": "%s", "security_version": 1, "installed": 0}, "B": {"status": "", "version": "", "bundle_sha256": "", "security_version": 0, "installed": 0}}\n' \
	"$(sha256sum updates/v1.0.bundle | cut -d' ' -f1)" >updates/slots.json
EXPIRES=$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)
publish() { # publish POINTER_VERSION BUNDLE ACTION
	$G channel --bundle-url "$2.bundle" --bundle "updates/$2.bundle" --version "$1" --expires "$EXPIRES" \
		"${SIGN[@]}" updates/stable.pointer >/dev/null
	echo "$3" >updates/action
	: >updates/slotsum
	sys_updates_disk
}

# evil_boot NAME POLICY: a boot from the attacker's medium
evil_boot() {
	SYS_DISK2=$T/evil-disk.img
	SYS_QEMU_EXTRA=(-kernel "$VM_VMLINUZ" -initrd "$T/evil-initrd.img" -append "console=ttyS0 panic=-1 quiet evil.policy=$2")
	sys_boot "$1"
	SYS_DISK2=
	SYS_QEMU_EXTRA=()
	tr -d '\r' <"sys-$1.log" >"sys-$1.txt"
}
# debug_boot NAME SLOT: the device's own kernel and initramfs, the command line
# edited: slot SLOT, dm-verity off
debug_boot() {
	SYS_QEMU_EXTRA=(-kernel "$VM_VMLINUZ" -initrd "$T/sys-initrd.img" -append "console=ttyS0 panic=-1 quiet slotsync.slot=$2 slotsync.verity=off")
	sys_boot "$1"
	SYS_QEMU_EXTRA=()
	tr -d '\r' <"sys-$1.log" >"sys-$1.txt"
}
N=0
# boot: a power-on as usual; sets LOG, SLOT (the slot the initramfs was given),
# GOT ("SLOT VERSION" of a boot that came up), REFUSED (what it refused)
boot() {
	N=$((N + 1))
	sys_boot "$N"
	LOG=sys-$N.txt
	tr -d '\r' <"sys-$N.log" >"$LOG"
	SLOT=$(sed -n 's/^SYSTEST initramfs slot \([AB]\).*/\1/p' "$LOG" | head -n1)
	GOT=$(sed -n 's/^SYSTEST booted //p' "$LOG" | head -n1)
	REFUSED=$(sed -n 's/^SYSTEST initramfs refused //p' "$LOG" | head -n1)
	echo "# boot $N: slot ${SLOT:-?}, ${GOT:+came up: $GOT}${REFUSED:+refused: $REFUSED}"
}
# host_grub_switch SLOT: GRUB tries SLOT at the next boots (the boot partition
# edited with the disk in hand)
host_grub_switch() {
	local loop mnt=$T/host-mnt
	loop=$(losetup -f --show disk.img) || return 1
	partx -a "$loop" 2>/dev/null || true
	for _ in $(seq 50); do [ -b "${loop}p2" ] && break; sleep 0.1; done
	mkdir -p "$mnt"
	mount "${loop}p2" "$mnt" && "$(dirname "$SLOTSYNC_BIN")/slotsync-bootctl" --backend grub --env "$mnt/grub/grubenv" switch "$1" >/dev/null
	umount "$mnt"
	partx -d "$loop" 2>/dev/null || true
	losetup -d "$loop"
}
# slot_offset SLOT: the byte offset of the slot's partition in the disk
slot_offset() { sys_part_offset "$([ "$1" = A ] && echo 3 || echo 4)"; }

# ---- the device: factory, v1 in A, v2 into B, B good ---------------------------
sys_disk || { not_ok "the disk could not be built"; finish; }
publish 1 v1.0 stay
sys_boot factory
grep -q "SYSTEST factory-done" sys-factory.log || { grep -a SYSTEST sys-factory.log >&2; not_ok "the factory"; finish; }
publish 2 v2.0 update
boot
check "v1 came up from A, verified and measured, and installed v2 into B" \
	bash -c "test '$GOT' = 'A 1.0' && grep -aq 'installed 2.0 into slot B; reboot due' $LOG"
publish 2 v2.0 stay
boot
check "v2 came up from B (dm-verity, its data key unsealed after its root was measured)" test "$GOT" = "B 2.0"
check "... with A's data copied" grep -aq "SYSTEST data factory data" "$LOG"

# ---- the attacker's tools: a root of theirs, and a boot from other media --------
# their root: whatever it is, it asks the TPM for both data partitions' keys
# under the policy they are sealed with (PCR 0 and PCR 15) and says what it got
ev=$T/evil-root
mkdir -p "$ev"/{bin,dev,proc,sys,lib/systemd,etc/slotsync,tmp,boot,data}
cp /bin/busybox "$ev/bin/"
sys_copy_bins "$ev" "$SLOTSYNC_BIN" "$(ls /usr/lib/x86_64-linux-gnu/libtss2-tcti-device.so.0)"
cat >"$ev/lib/systemd/systemd" <<'EVIL'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/usr/bin:/bin
mount -t proc p /proc; mount -t sysfs s /sys; mount -t devtmpfs d /dev 2>/dev/null
echo "SYSTEST evil root running"
for dev in /dev/vda5 /dev/vda6; do
	if out=$(slotsync unlock --tcti device:/dev/tpmrm0 --pcrs 0,15 --check $dev 2>&1); then
		echo "SYSTEST evil got the data key of $dev: $out"
	else
		echo "SYSTEST evil no data key for $dev: $out"
	fi
done
poweroff -f
EVIL
chmod 755 "$ev/lib/systemd/systemd"
mksquashfs "$ev" evil-root.sqfs -noappend -quiet -all-root >/dev/null 2>&1
truncate -s 64M evil-disk.img
dd if=evil-root.sqfs of=evil-disk.img conv=notrunc status=none

# their boot medium: a kernel and an initramfs that format slot B with a key of
# theirs, write their root into it, and make GRUB boot it
ei=$T/evil-initrd
rm -rf "$ei"
mkdir -p "$ei"/{bin,dev,proc,sys,mnt,tmp,run/cryptsetup}
cp /bin/busybox "$ei/bin/"
cp -a "$T/sys-initrd/lib" "$ei/" 2>/dev/null || true
cp "$T/sys-initrd/mods" "$ei/"
sys_copy_bins "$ei" "$SLOTSYNC_BIN" "$(dirname "$SLOTSYNC_BIN")/slotsync-bootctl" \
	"$(ls /usr/lib/x86_64-linux-gnu/libtss2-tcti-device.so.0)"
cat >"$ei/init" <<'EVIL'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/usr/bin:/bin
mount -t proc p /proc; mount -t sysfs s /sys; mount -t devtmpfs d /dev
for m in $(cat /mods); do insmod $m 2>/dev/null; done
for i in $(seq 100); do [ -b /dev/vda6 ] && [ -b /dev/vdb ] && break; sleep 0.05; done
echo "SYSTEST initramfs modules loaded"
pcrs=
grep -q evil.policy=pcr0 /proc/cmdline && pcrs="--pcrs 0"
T="--tcti device:/dev/tpmrm0"
slotsync slot-format $T $pcrs /dev/vda4 >/dev/null 2>/tmp/err || { echo "SYSTEST evil-failed format: $(cat /tmp/err)"; poweroff -f; }
dev=$(slotsync unlock $T $pcrs /dev/vda4 evil 2>/tmp/err) || { echo "SYSTEST evil-failed open: $(cat /tmp/err)"; poweroff -f; }
dd if=/dev/vdb of=/dev/mapper/evil bs=1M 2>/dev/null
mount -t ext4 /dev/vda2 /mnt
slotsync-bootctl --backend grub --env /mnt/grub/grubenv switch B >/dev/null
umount /mnt
sync
echo "SYSTEST evil-maid done ($pcrs)"
poweroff -f
EVIL
chmod 755 "$ei/init"
(cd "$ei" && find . | cpio -o -H newc --quiet | gzip -1) >evil-initrd.img

# ---- 1. no PCR policy ------------------------------------------------------------
evil_boot evil-1 none
check "attack 1: the attacker formatted slot B with a key of theirs (no PCR policy) and wrote their root" \
	grep -aq "SYSTEST evil-maid done ()" sys-evil-1.txt
boot
check "attack 1: the device refused slot B: its key carries no PCR policy, the device requires PCR 0 (${REFUSED:-not refused})" \
	bash -c "test '$SLOT' = B && grep -aq 'SYSTEST initramfs refused slot B: .*PCR' $LOG && ! grep -aq 'SYSTEST evil root running' $LOG"
boot
check "attack 1: the next boot fell back to slot A, which came up" test "$GOT" = "A 1.0"

# ---- 2. the device's own PCR policy; then dm-verity off --------------------------
evil_boot evil-2 pcr0
check "attack 2: the attacker formatted slot B with a key sealed under PCR 0 (the device's policy) and wrote their root" \
	grep -aq "SYSTEST evil-maid done (--pcrs 0)" sys-evil-2.txt
boot
check "attack 2: the device never mounted slot B (${REFUSED:-not refused})" \
	bash -c "test '$SLOT' = B && grep -aq 'SYSTEST initramfs refused slot B' $LOG && ! grep -aq 'SYSTEST evil root running' $LOG"
boot
check "attack 2: the next boot fell back to slot A, which came up" test "$GOT" = "A 1.0"
debug_boot debug B
check "debug boot (dm-verity off on the command line): the initramfs got no data key for the unverified root" \
	grep -aq "SYSTEST initramfs no data key for an unverified root" sys-debug.txt
check "... the attacker's root ran" grep -aq "SYSTEST evil root running" sys-debug.txt
check "... and the TPM gave it neither data key" \
	bash -c "grep -aq 'SYSTEST evil no data key for /dev/vda5' sys-debug.txt && grep -aq 'SYSTEST evil no data key for /dev/vda6' sys-debug.txt && ! grep -aq 'SYSTEST evil got' sys-debug.txt"

# ---- 3. slot A's genuine header copied onto slot B --------------------------------
# (the attacker, with the disk in hand, also makes GRUB try slot B again)
a=$(slot_offset A)
b=$(slot_offset B)
dd if=disk.img of=disk.img bs=1M skip=$((a / 1048576)) seek=$((b / 1048576)) count=16 conv=notrunc status=none
host_grub_switch B
boot
check "attack 3: a genuine header copied from slot A: its key unseals, the bytes fail dm-verity: refused (${REFUSED:-not refused})" \
	bash -c "test '$SLOT' = B && grep -aq 'SYSTEST initramfs refused slot B: .*verity' $LOG && ! grep -aq 'SYSTEST booted B' $LOG"
boot
check "attack 3: the next boot fell back to slot A, which came up" test "$GOT" = "A 1.0"

# ---- 4. a genuine install, then bytes flipped in it -------------------------------
publish 3 v3.0 update
boot
check "a genuine 3.0 installed into slot B" grep -aq 'installed 3.0 into slot B; reboot due' "$LOG"
publish 3 v3.0 stay
boot
check "3.0 (the 2.0 root again) came up from B" test "$GOT" = "B 2.0"
# one byte in the middle of the image (past the 16 MiB LUKS2 header), inverted
off=$(( $(slot_offset B) + 16 * 1048576 + $(stat -c %s release-2.0.sqfs) / 2 + 1234 ))
python3 - "$off" <<'PY'
import sys
off = int(sys.argv[1])
with open("disk.img", "r+b") as f:
    f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0xff]))
PY
boot
check "bytes flipped in slot B after its install: dm-verity refuses it" \
	bash -c "test '$SLOT' = B && grep -aq 'SYSTEST initramfs refused slot B: .*verity' $LOG"
boot
check "the next boot fell back to slot A, which came up" test "$GOT" = "A 1.0"

echo "# evil-maid suite: $N boots and 3 from other media, $(( $(date +%s) - start )) s wall time"
finish

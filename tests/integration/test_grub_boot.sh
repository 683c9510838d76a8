#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# GRUB itself runs docs/boot/grub.cfg: a GRUB image made with grub-mkrescue
# (Debian's grub-pc-bin) boots under qemu (TCG) against a grubenv on an ext2
# disk that slotsync-bootctl wrote.  Each boot prints the slot GRUB chose on
# the serial console; between boots the grubenv is read back.  Stories:
# first boot -> A; switch B (2 tries) -> B, B, then A, A (fallback), B_TRY
# counted down to 0 by GRUB's save_env; switch B, mark-good -> B stays.
source "$(dirname "$0")/lib.sh"
B=${SLOTSYNC_BOOTCTL:?}
cd "$T"

mkdir -p iso/boot/grub envdir
cp "$SLOTSYNC_SOURCE_DIR/docs/boot/grub.cfg" iso/boot/grub/slotsync.cfg
cat >iso/boot/grub/grub.cfg <<'CFG'
serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
insmod ext2
set slotsync_env=(hd0)/grubenv
source $prefix/slotsync.cfg
echo "slotsync-test: chose $slotsync_slot"
reboot
CFG
grub-mkrescue -o grub.iso iso >grub-mkrescue.log 2>&1 || { cat grub-mkrescue.log; exit 1; }
grub-editenv envdir/grubenv create
mke2fs -q -t ext2 -b 1024 -d envdir disk.img 4M

env_get() { debugfs -R "dump /grubenv $T/grubenv.out" disk.img >/dev/null 2>&1; cp grubenv.out grubenv.now; }
env_put() { debugfs -w -R "rm /grubenv" disk.img >/dev/null 2>&1; debugfs -w -R "write grubenv.now grubenv" disk.img >/dev/null 2>&1; }
ctl() { env_get; $B --backend grub --env grubenv.now "$@"; env_put; }
boot() { # one boot; prints the slot GRUB chose
	timeout 120 qemu-system-x86_64 -accel tcg -m 128 -display none -no-reboot -serial stdio -monitor none \
		-cdrom grub.iso -drive file=disk.img,format=raw,if=ide,index=0 -boot d >boot.log 2>&1 || true
	sed -n 's/.*slotsync-test: chose \([AB]\).*/\1/p' boot.log | head -n1
}

first=$(boot)
check "GRUB, first boot with an empty grubenv: slot A ($first)" test "$first" = A
[ "$first" = A ] || { sed -n '1,60p' boot.log; }
ctl init
first=$(boot)
check "GRUB, after slotsync-bootctl init: slot A ($first)" test "$first" = A
ctl switch B --tries 2
seq=""
for i in 1 2 3 4; do seq+=$(boot); done
check "GRUB, switch B with 2 tries, never marked good: B B then A A ($seq)" test "$seq" = BBAA
env_get
check "GRUB counted B's tries down to 0 with save_env (B_TRY=0), A still good" \
	bash -c "grub-editenv grubenv.now list | grep -qx B_TRY=0 && grub-editenv grubenv.now list | grep -qx A_OK=1"
check "slotsync-bootctl reads GRUB's writes: next is A" bash -c "$B --backend grub --env grubenv.now status --json | grep -q '\"next\":\"A\"'"
ctl switch B --tries 2
seq=$(boot)
ctl --booted B mark-good
for i in 1 2; do seq+=$(boot); done
check "GRUB, switch B then mark-good: B B B ($seq)" test "$seq" = BBB
env_get
check "a good slot loses no tries (B_TRY=3 after mark-good, untouched by three boots)" \
	bash -c "grub-editenv grubenv.now list | grep -qx B_TRY=3"
finish

#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# In a VM with real dm-crypt and a TPM (swtpm as the guest's TPM): slots and
# data partitions formatted as LUKS2 with TPM-sealed keys; v1 installed into
# slot A from a store on a second virtio disk (served inside the guest); the
# update to v2 into slot B, seeded from slot A read through its mapping, is cut
# by a hard power-off of the VM and resumed in a new boot, which reopens the
# same header (its UUID kept) and finishes; slot B is checked byte for byte
# through dm-crypt, its squashfs shows the release's xattrs, and a raw read of
# the disk shows no plaintext of the image.  Then the data partition: the
# active one is copied onto the new slot's and the new release's migration
# hooks run on the copy; a failing hook stops it with the old data untouched.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/lib.sh"
sample_images
G=$SLOTSYNC_GEN
P=$T/payload
mkdir -p "$P/www"
cp "$V1" "$P/v1.img"
cp "$V2" "$P/v2.img"
$G make --no-progress --store "$P/www/store" "$P/v1.img" "$P/v1.caibx" >/dev/null
$G make --no-progress --store "$P/www/store" "$P/v2.img" "$P/v2.caibx" >/dev/null
# the release's xattrs, as the host sees them in the image
mkdir -p "$T/mnt"
if mount -t squashfs -o loop,ro "$P/v2.img" "$T/mnt" 2>/dev/null; then
	(cd "$T/mnt" && getfattr -R -d -m - . 2>/dev/null) >"$P/v2.xattrs"
	umount "$T/mnt"
fi
stat -c %s "$P/v2.img" >"$P/v2.size"
# release images with migration hooks: one that works, one that fails
for kind in ok fail; do
	h=$T/hooks-$kind/usr/lib/slotsync/migrate.d
	mkdir -p "$h"
	printf '#!/bin/sh\n[ -f "$SLOTSYNC_IMAGE/usr/lib/slotsync/migrate.d/$SLOTSYNC_HOOK" ] || exit 9\necho "migrated by $SLOTSYNC_HOOK" >"$SLOTSYNC_DATA/migrated"\n' >"$h/10-migrate"
	[ $kind = fail ] && printf '#!/bin/sh\necho half-done >"$SLOTSYNC_DATA/half"\nexit 3\n' >"$h/20-broken"
	chmod 755 "$h"/*
	mksquashfs "$T/hooks-$kind" "$P/hooks-$kind.sqfs" -noappend -quiet -all-root
done
stat -c %s "$P/v1.img" >"$P/v1.size"
cat >"$P/system.conf" <<'CONF'
# the guest: slots A and B, their data partitions, all LUKS2 with TPM-sealed keys
[tpm]
tcti = device:/dev/tpmrm0
pcrs = 7
[slot.A]
device = /dev/vda
backend = luks2
data = /dev/vdc
[slot.B]
device = /dev/vdb
backend = luks2
data = /dev/vdd
CONF
cat >"$P/run.sh" <<'RUN'
# runs in the guest: sh /payload/run.sh STAGE
ok() { echo "VMTEST ok $*"; }
bad() { echo "VMTEST fail $*"; }
T="device:/dev/tpmrm0"
S=slotsync
C=/payload/system.conf
httpd -p 127.0.0.1:8080 -h /payload/www
URL=http://127.0.0.1:8080/store
same() { # same DEV IMAGE SIZE: the first SIZE bytes of DEV are IMAGE
	head -c "$3" "$1" | cmp -s - "$2"
}
case $1 in
install)
	[ -c /dev/tpmrm0 ] && ok "the guest has a TPM (/dev/tpmrm0)" || bad "no TPM in the guest"
	for d in vdc vdd; do
		p=7; [ $d = vdd ] && p=7,16
		u=$($S slot-format --tcti "$T" --pcrs $p /dev/$d) && echo "$u" >/scratch/uuid-$d || bad "slot-format /dev/$d"
	done
	ok "data partitions A and B formatted as LUKS2, keys sealed by the TPM to PCR 7 (B: 7 and 16)"
	dev=$($S unlock --config $C --data A) && [ "$dev" = /dev/mapper/slotsync-data-A ] && mke2fs -b 4096 "$dev" >/dev/null 2>&1 &&
		mkdir -p /mnt/d && mount -t ext4 "$dev" /mnt/d && mkdir /mnt/d/config && echo "site=mast-17" >/mnt/d/config/site &&
		umount /mnt/d && ok "data partition A (unlock --data A: $dev) holds the device's configuration" || bad "data partition A"
	if $S assemble --config $C --slot A --store "$URL" --allow-plain-http --journal /scratch/a.journal /payload/v1.caibx >/scratch/a.out 2>&1; then
		ok "v1 installed into slot A by the luks2 backend (formatted with a fresh sealed key, written through dm-crypt, closed)"
	else
		bad "install v1: $(cat /scratch/a.out)"
	fi
	[ -b /dev/mapper/slotsync-A ] && bad "slot A's mapping was left open after the install" || ok "slot A's mapping was closed after the install"
	dev=$($S unlock --config $C A) && [ "$dev" = /dev/mapper/slotsync-A ] && ok "slotsync unlock A opens $dev" || bad "unlock A: $dev"
	same /dev/mapper/slotsync-A /payload/v1.img "$(cat /payload/v1.size)" && ok "slot A holds v1 byte for byte" || bad "slot A differs from v1"
	sync
	echo "VMTEST kill-point"
	$S assemble --config $C --slot B --seed-slot A:/payload/v1.caibx --store "$URL" --allow-plain-http --journal /scratch/b.journal \
		--max-rate 200000 /payload/v2.caibx >/scratch/b.out 2>&1
	bad "the update finished before the power was cut"
	;;
resume)
	[ -s /scratch/b.journal ] && ok "after the power cut, the update's journal is there" || bad "no journal after the cut"
	before=$(cat /scratch/b.journal.header)
	[ -n "$before" ] && ok "the journal keeps slot B's header UUID ($before)" || bad "no header UUID beside the journal"
	$S unlock --config $C A >/dev/null && ok "slot A unlocked after the reboot (its key sealed to PCR 7 in the boot before)" ||
		bad "unlock slot A again"
	if $S assemble --json --config $C --slot B --seed-slot A:/payload/v1.caibx --store "$URL" --allow-plain-http --journal /scratch/b.journal \
		/payload/v2.caibx >/scratch/r.json 2>/scratch/r.err; then
		done=$(sed -n 's/.*"chunks_already_done":\([0-9]*\).*/\1/p' /scratch/r.json)
		ok "the update resumed and finished ($done chunks already done before the cut were not redone)"
		[ "${done:-0}" -gt 0 ] && ok "work done before the cut was kept" || bad "nothing survived the cut"
	else
		bad "resume: $(cat /scratch/r.err)"
	fi
	$S unlock --config $C --check /dev/vdb | grep -q "LUKS2 $before" &&
		ok "slot B reopened with the same LUKS2 header (UUID from before the cut), not formatted again" ||
		bad "slot B's header changed: $($S unlock --config $C --check /dev/vdb 2>&1)"
	$S unlock --config $C B >/dev/null || bad "unlock slot B"
	same /dev/mapper/slotsync-B /payload/v2.img "$(cat /payload/v2.size)" && ok "slot B holds v2 byte for byte, read through dm-crypt" || bad "slot B differs from v2"
	mkdir -p /mnt/b
	if mount -t squashfs -o ro /dev/mapper/slotsync-B /mnt/b; then
		if [ -s /payload/v2.xattrs ]; then
			(cd /mnt/b && getfattr -R -d -m - . 2>/dev/null) >/scratch/v2.xattrs
			cmp -s /scratch/v2.xattrs /payload/v2.xattrs &&
				ok "the new slot, mounted, shows exactly the release's xattrs ($(grep -c '^security\.' /payload/v2.xattrs) security.* labels)" ||
				bad "xattrs differ from the release's"
		fi
		umount /mnt/b
	else
		bad "slot B does not mount as squashfs"
	fi
	# the raw disk: the data area starts after the 16 MiB LUKS2 header
	size=$(cat /payload/v2.size)
	leaks=0
	for i in $(seq 0 $((size / 1048576 - 1))); do
		a=$(dd if=/dev/vdb bs=1048576 skip=$((16 + i)) count=1 2>/dev/null | md5sum | cut -d' ' -f1)
		b=$(dd if=/payload/v2.img bs=1048576 skip=$i count=1 2>/dev/null | md5sum | cut -d' ' -f1)
		[ "$a" = "$b" ] && leaks=$((leaks + 1))
	done
	# the data partition of the new slot (B's key is bound to PCRs 7 and 16, not the configuration's 7)
	$S unlock --config $C --data B 2>/scratch/d.err && bad "data partition B opened under another policy than its key's"
	grep -q "bound to PCRs 7,16, but this device requires PCRs 7" /scratch/d.err &&
		ok "a key sealed under other PCRs than the configuration's is refused: $(cat /scratch/d.err)" ||
		bad "policy mismatch unclear: $(cat /scratch/d.err)"
	$S unlock --config $C --data A >/dev/null && $S unlock --tcti "$T" --pcrs 7,16 /dev/vdd slotsync-data-B ||
		bad "unlock the data partitions"
	before=$(md5sum </dev/mapper/slotsync-data-A)
	# the release images with hooks are disks of their own (vdg, vdh)
	la=/dev/vdg
	if $S migrate-data --from /dev/mapper/slotsync-data-A --to /dev/mapper/slotsync-data-B --image "$la" 2>/scratch/m.err; then
		mkdir -p /mnt/d && mount -t ext4 /dev/mapper/slotsync-data-B /mnt/d
		[ "$(cat /mnt/d/config/site)" = "site=mast-17" ] && [ "$(cat /mnt/d/migrated)" = "migrated by 10-migrate" ] &&
			ok "data migrated: the configuration copied to data partition B, the release's hook ran on the copy" ||
			bad "data partition B after migration: $(ls -R /mnt/d)"
		umount /mnt/d
	else
		bad "migrate-data: $(cat /scratch/m.err)"
	fi
	lb=/dev/vdh
	if $S migrate-data --from /dev/mapper/slotsync-data-A --to /dev/mapper/slotsync-data-B --image "$lb" 2>/scratch/f.err; then
		bad "a failing hook did not stop the migration"
	else
		grep -q "20-broken failed (exit 3)" /scratch/f.err && ok "a failing hook stops it with a clear error: $(cat /scratch/f.err)" ||
			bad "failing hook: $(cat /scratch/f.err)"
	fi
	[ "$(md5sum </dev/mapper/slotsync-data-A)" = "$before" ] && ok "the old data partition is untouched by both migrations" ||
		bad "the old data partition changed"
	# a key sealed to PCR 16 no longer unseals once PCR 16 moves
	$S unlock --tcti "$T" --pcrs 7,16 --check /dev/vdd >/dev/null || bad "data partition B's key does not unseal"
	tpm2 pcrextend -T "$T" 16:sha256=0000000000000000000000000000000000000000000000000000000000000001 >/dev/null 2>&1 ||
		bad "tpm2 pcrextend"
	if $S unlock --tcti "$T" --pcrs 7,16 --check /dev/vdd 2>/scratch/p.err; then
		bad "a key sealed to PCR 16 unsealed after PCR 16 changed"
	else
		grep -qi "pcr" /scratch/p.err && ok "after PCR 16 was extended, the key bound to it is refused: $(cat /scratch/p.err)" ||
			bad "PCR refusal unclear: $(cat /scratch/p.err)"
	fi
	$S unlock --config $C --check /dev/vdc >/dev/null && ok "a key bound to PCR 7 alone still unseals" || bad "PCR 7 key refused"
	magic=$(dd if=/dev/vdb bs=1 skip=16777216 count=4 2>/dev/null)
	[ $leaks -eq 0 ] && [ "$magic" != "hsqs" ] && ok "a raw read of slot B's disk shows no plaintext of the image ($((size / 1048576)) MiB compared)" ||
		bad "plaintext on the raw disk ($leaks MiB)"
	;;
esac
RUN
VM_DISKS=""
for d in slotA slotB dataA dataB; do truncate -s 48M "$T/$d.img"; VM_DISKS+=" $T/$d.img"; done
mke2fs -q -t ext4 -d "$P" "$T/payload.img" 96M
mke2fs -q -t ext4 "$T/scratch.img" 16M
VM_DISKS+=" $T/payload.img $T/scratch.img $P/hooks-ok.sqfs $P/hooks-fail.sqfs"
start=$(date +%s)
vm_build_initrd "$P" || { not_ok "the VM could not be built"; finish; }
vm_boot install install 8
vm_results install
check "the power was cut during the update (the guest did not report it finished)" bash -c "! grep -q 'VMTEST done install' '$T/vm-install.log'"
vm_boot resume resume
vm_results resume
check "the resume boot ran to its end" grep -q "VMTEST done resume" "$T/vm-resume.log"
echo "# VM suite: $(( $(date +%s) - start )) s wall time"
if [ "$FAIL" -gt 0 ]; then
	for l in "$T"/vm-*.log; do echo "--- $l" >&2; grep -av '^\[' "$l" | tail -n 40 >&2; done
fi
finish

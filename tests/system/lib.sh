# SPDX-License-Identifier: LGPL-2.1-or-later
# The whole-system harness (sourced by tests/system/test_*.sh, after
# tests/integration/lib.sh and tests/vm/lib.sh): a bootable qemu disk built
# from Debian packages and this build.
#
#   disk (GPT): 1 bios_grub | 2 /boot (ext4): GRUB (grub-pc-bin), docs/boot/grub.cfg,
#   grubenv, slotsync's state | 3 slot A | 4 slot B | 5 data A | 6 data B
#   (3-6: LUKS2, keys sealed by the guest's TPM) | 7 boot A | 8 boot B (each
#   slot's boot volume: ext2 with its release's kernel and initramfs, which
#   GRUB loads; unencrypted)
#   updates disk (ext4, vdb): the chunk store, bundles, the channel pointer,
#   served inside the guest by busybox httpd on 127.0.0.1:8080
#
# Each release is a slot group: its root (rootfs) and its boot volume (boot),
# so each slot boots its own kernel.  The initramfs unlocks the slot GRUB chose
# (slotsync unlock, through the TPM) and its data partition, mounts its squashfs root under a tmpfs overlay and
# hands over to systemd; the release images are a minimal Debian root
# (debootstrap, cached in $SYS_CACHE) with systemd, slotsync, its units and
# health checks, so the agent runs at boot as on a device.
#
#   sys_rootfs                  the cached debootstrap root
#   sys_release V [failing|crashing]
#                               $T/release-V.sqfs, its root; "failing": a health
#                               check fails; "crashing": the kernel crashes
#                               early in every boot, before any check can run;
#                               and $T/boot-V.img, its boot volume
#   sys_boot_volume V           $T/boot-V.img: the kernel and the initramfs
#                               (sys_initrd), and a second one that names V
#   sys_disk                    $T/disk.img, GRUB installed, 1.0's boot volume
#                               in slot A's, factory not yet run
#   sys_boot NAME [KILL_AFTER]  boots the disk; serial log $T/sys-NAME.log;
#                               with KILL_AFTER, the VM is killed (power
#                               lost) that many seconds after the agent
#                               starts or resumes an install
SYS_CACHE=${SLOTSYNC_SYSTEM_CACHE:-/var/cache/slotsync/system}
SYS_SUITE=bookworm
# the Debian mirror debootstrap uses: SLOTSYNC_MIRROR, or the one apt uses here
SYS_MIRROR=${SLOTSYNC_MIRROR:-$(bash "$SLOTSYNC_SOURCE_DIR/scripts/debian-mirror.sh" "$SYS_SUITE")}

sys_rootfs() {
	local r=$SYS_CACHE/root-$SYS_SUITE-2
	mkdir -p "$SYS_CACHE"
	if [ ! -e "$r/.ready" ]; then
		rm -rf "$r" "$r.tmp"
		debootstrap --variant=minbase --include=systemd-sysv,dbus,busybox-static "$SYS_SUITE" "$r.tmp" "$SYS_MIRROR" \
			>"$SYS_CACHE/debootstrap.log" 2>&1 || { tail -n 20 "$SYS_CACHE/debootstrap.log" >&2; return 1; }
		# what a device does not need
		rm -rf "$r.tmp"/usr/share/{doc,man,info,locale} "$r.tmp"/var/cache/apt/archives/*.deb "$r.tmp"/var/lib/apt/lists/*
		mv "$r.tmp" "$r"
		touch "$r/.ready"
	fi
	SYS_ROOT=$r
}

# copies binaries with the libraries ldd names into root DIR
sys_copy_bins() {
	local root=$1 f l
	shift
	for f in "$@"; do
		case $f in
		*.so*) cp -L --parents "$f" "$root" ;;
		*) mkdir -p "$root/usr/bin"; cp "$f" "$root/usr/bin/" ;;
		esac
		for l in $(ldd "$f" | grep -o '/[^ ]*'); do [ -e "$root$l" ] || cp -L --parents "$l" "$root"; done
	done
}

# the device's configuration, the same in the image and the initramfs
sys_config() {
	cat <<'CONF'
[system]
compatible = slotsync-vm
state-dir = /boot/slotsync
keyring = /etc/slotsync/keyring.pem
allow-downgrade = yes
boot-tries = 2
[boot]
backend = grub
env = /boot/grub/grubenv
[tpm]
tcti = device:/dev/tpmrm0
# slot keys: bound to the firmware's PCR 0, whatever a header says
pcrs = 0
# the initramfs measures the verity root hash it mounts into PCR 15: data
# keys unseal after a genuine root only
root-pcr = 15
[update]
channel = http://127.0.0.1:8080/stable.pointer
store = http://127.0.0.1:8080/store
# the guest serves its own updates over loopback, in plain http on purpose
allow-plain-http = yes
poll-interval = 1h
poll-jitter = 0s
reboot-command = systemctl reboot
health-dir = /usr/lib/slotsync/health.d
health-timeout = 20s
[slot.A]
rootfs = /dev/vda3
backend = luks2
data = /dev/vda5
boot = /dev/vda7
[slot.B]
rootfs = /dev/vda4
backend = luks2
data = /dev/vda6
boot = /dev/vda8
CONF
}

sys_release() {
	local v=$1 r=$T/rel-$v bindir
	sys_rootfs || return 1
	rm -rf "$r"
	cp -a "$SYS_ROOT" "$r"
	rm -f "$r/.ready"
	# what the device never runs: the package tools and their perl, iconv's
	# modules (a fifth of the root: every install and hash in the guest is
	# that much shorter)
	rm -rf "$r"/usr/bin/perl* "$r"/usr/lib/x86_64-linux-gnu/perl-base "$r"/usr/share/perl5 \
		"$r"/usr/lib/x86_64-linux-gnu/gconv "$r"/usr/lib/apt "$r"/usr/bin/apt* "$r"/usr/lib/x86_64-linux-gnu/libapt-*
	bindir=$(dirname "$SLOTSYNC_BIN")
	sys_copy_bins "$r" "$SLOTSYNC_BIN" "$bindir/slotsync-bootctl" \
		"$(ls /usr/lib/x86_64-linux-gnu/libtss2-tcti-device.so.0)"
	mkdir -p "$r/etc/slotsync" "$r/usr/lib/slotsync/health.d" "$r/boot" "$r/data" "$r/srv/updates"
	sys_config >"$r/etc/slotsync/system.conf"
	cp "$T/ca.pem" "$r/etc/slotsync/keyring.pem"
	echo "VERSION_ID=$v" >"$r/etc/slotsync-release"
	echo "slotsync-vm" >"$r/etc/hostname"
	# the project's units, as cmake --install puts them
	for u in "$SLOTSYNC_SOURCE_DIR"/data/systemd/*; do
		sed "s|@CMAKE_INSTALL_FULL_BINDIR@|/usr/bin|" "$u" >"$r/usr/lib/systemd/system/$(basename "$u" .in)"
	done
	mkdir -p "$r/usr/share/dbus-1/system.d"
	cp "$SLOTSYNC_SOURCE_DIR/data/dbus/org.slotsync.Installer1.conf" "$r/usr/share/dbus-1/system.d/"
	mkdir -p "$r/etc/systemd/system/multi-user.target.wants"
	ln -sf /usr/lib/systemd/system/slotsync-agent.service "$r/etc/systemd/system/multi-user.target.wants/"
	# the test's own units: the update server on the second disk, and a report
	cat >"$r/usr/lib/systemd/system/systest-updates.service" <<'UNIT'
[Unit]
Description=the update server of the test (the second disk, on 127.0.0.1)
Before=slotsync-agent.service
[Service]
ExecStartPre=/bin/mount -o ro /dev/vdb /srv/updates
ExecStart=/bin/busybox httpd -f -p 127.0.0.1:8080 -h /srv/updates
[Install]
WantedBy=multi-user.target
UNIT
	cat >"$r/usr/lib/systemd/system/systest-slotsum.service" <<'UNIT'
[Unit]
Description=the test's own check of the booted slot: SHA-256 of its first bytes
After=systest-updates.service
Before=slotsync-agent.service
ConditionPathExists=/srv/updates/slotsum
[Service]
Type=oneshot
ExecStart=/usr/lib/slotsync/systest-slotsum
StandardOutput=tty
TTYPath=/dev/ttyS0
[Install]
WantedBy=multi-user.target
UNIT
	cat >"$r/usr/lib/slotsync/systest-slotsum" <<'SUM'
#!/bin/sh
# the plaintext of the booted slot (its dm-crypt mapping), hashed over the
# size of the image the host put there ("SLOT SIZE" lines): the host compares
# (the boot volumes are not encrypted: the host reads them from the disk)
slot=$(sed -n 's/.*slotsync.slot=\([AB]\).*/\1/p' /proc/cmdline)
size=$(sed -n "s/^$slot //p" /srv/updates/slotsum)
[ -n "$size" ] && echo "SYSTEST slotsum $slot $size $(head -c "$size" /dev/mapper/slotsync-$slot | sha256sum | cut -d' ' -f1)"
SUM
	chmod 755 "$r/usr/lib/slotsync/systest-slotsum"
	cat >"$r/usr/lib/systemd/system/systest-report.service" <<'UNIT'
[Unit]
Description=the test's report of each boot
After=slotsync-agent.service
[Service]
Type=oneshot
ExecStart=/usr/lib/slotsync/systest-report
StandardOutput=tty
TTYPath=/dev/ttyS0
[Install]
WantedBy=multi-user.target
UNIT
	cat >"$r/usr/lib/slotsync/systest-report" <<'REPORT'
#!/bin/sh
# after the agent validated the boot: what booted; after its first poll of
# this boot, the status; then what the host asked for
echo "SYSTEST booted $(sed -n 's/.*slotsync.slot=\([AB]\).*/\1/p' /proc/cmdline) $(sed -n 's/VERSION_ID=//p' /etc/slotsync-release)"
booted_at=$(( $(date +%s) - $(cut -d. -f1 /proc/uptime) ))
for i in $(seq 120); do
	[ -e /boot/slotsync/agent.json ] && [ "$(stat -c %Y /boot/slotsync/agent.json)" -ge "$booted_at" ] && break
	sleep 0.5
done
# the status, in short base64 lines and twice: the journal shares the console
# and a long line would be cut by its messages; the host keeps the first copy
# whose digest matches
st=$(slotsync status --json)
for copy in 1 2; do
	printf '%s' "$st" | base64 -w 96 | sed 's/^/SYSTEST status64 /'
	echo "SYSTEST status64-end $(printf '%s' "$st" | sha256sum | cut -d' ' -f1)"
done
echo "SYSTEST data $(cat /data/marker 2>/dev/null)"
action=$(cat /srv/updates/action 2>/dev/null)
case $action in
stay) systemctl poweroff ;;
powerloss)
	# an install still to finish: the agent finishes it and reboots;
	# nothing left to do (the install was done before the power went): off
	slotsync status --json | grep -Eq '"step": ?"(assemble|verify|pre-install|verify-slot|migrate-data|post-install|switch|reboot)"' ||
		systemctl poweroff ;;
*) ;;  # the agent installs and reboots; the host waits
esac
REPORT
	chmod 755 "$r/usr/lib/slotsync/systest-report"
	for u in systest-updates systest-slotsum systest-report; do
		ln -sf /usr/lib/systemd/system/$u.service "$r/etc/systemd/system/multi-user.target.wants/"
	done
	cat >"$r/usr/lib/slotsync/health.d/10-system" <<'CHECK'
#!/bin/sh
# the system came up with its data partition and its boot partition
mountpoint -q /data && mountpoint -q /boot
CHECK
	case ${2:-} in
	failing) printf '#!/bin/sh\necho "radio link: no carrier" >&2\nexit 1\n' >"$r/usr/lib/slotsync/health.d/20-radio-link" ;;
	crashing)
		# a release whose kernel crashes early in every boot (panic=-1:
		# the machine resets), before the agent could judge it
		cat >"$r/usr/lib/systemd/system/systest-crash.service" <<'UNIT'
[Unit]
Description=a release that crashes the kernel early in its boot
DefaultDependencies=no
After=systemd-journald.service
Before=sysinit.target
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo "SYSTEST crashing" >/dev/ttyS0; echo c >/proc/sysrq-trigger'
[Install]
WantedBy=sysinit.target
UNIT
		mkdir -p "$r/etc/systemd/system/sysinit.target.wants"
		ln -sf /usr/lib/systemd/system/systest-crash.service "$r/etc/systemd/system/sysinit.target.wants/"
		;;
	esac
	chmod 755 "$r"/usr/lib/slotsync/health.d/*
	# the mounts (root, /data, /boot: GRUB's and slotsync's state) are the
	# initramfs's: the image has no udev to wait for devices
	: >"$r/etc/fstab"
	# the journal on the serial console: the test reads what the agent says
	mkdir -p "$r/etc/systemd/journald.conf.d"
	printf '[Journal]\nForwardToConsole=yes\nTTYPath=/dev/ttyS0\nMaxLevelConsole=info\n' >"$r/etc/systemd/journald.conf.d/console.conf"
	# quiet, fast boots: no getty on the console, no waiting for a network
	rm -f "$r"/etc/systemd/system/getty.target.wants/* 2>/dev/null
	ln -sf /dev/null "$r/etc/systemd/system/serial-getty@ttyS0.service"
	ln -sf /dev/null "$r/etc/systemd/system/systemd-networkd-wait-online.service"
	# and nothing the device does not need on the way to the agent
	quiet_boot_units "$r"
	mksquashfs "$r" "$T/release-$v.sqfs" -noappend -quiet -comp zstd -all-root >/dev/null 2>&1 || return 1
	rm -rf "$r"
	sys_boot_volume "$v"
}

# the initramfs ($T/sys-initrd.img, its tree in $T/sys-initrd; made once per
# test, the same for every release): unlock the slot GRUB chose and its data
# partition, mount the root, hand over to systemd; with slotsync.factory=1 on
# the command line, the factory instead: format the volumes, install v1 into
# slot A
sys_initrd() {
	local r=$T/sys-initrd k
	vm_kernel || return 1
	k=$VM_CACHE/k-$VM_KVER
	VM_VMLINUZ=$k/boot/vmlinuz-$VM_KVER
	[ -e "$T/sys-initrd.img" ] && return 0
	rm -rf "$r"
	mkdir -p "$r"/{bin,dev,proc,sys,mnt,tmp,run/cryptsetup,newroot,ro,rw,etc/slotsync,srv/updates,boot}
	cp /bin/busybox "$r/bin/"
	modprobe -a -d "$k" -S "$VM_KVER" --show-depends virtio_pci virtio_blk dm-crypt dm-verity xts ecb algif_skcipher \
		squashfs overlay ext4 tpm_tis tpm_crb 2>/dev/null | awk '$1=="insmod"{print $2}' | sed "s|^$k||" |
		awk '!s[$0]++' >"$r/mods"
	while read -r m; do mkdir -p "$r${m%/*}"; cp "$k$m" "$r$m"; done <"$r/mods"
	# e2fsprogs' mke2fs: the data partitions get a journal (busybox's makes ext2)
	sys_copy_bins "$r" "$SLOTSYNC_BIN" "$(dirname "$SLOTSYNC_BIN")/slotsync-bootctl" \
		"$(ls /usr/lib/x86_64-linux-gnu/libtss2-tcti-device.so.0)" /sbin/mke2fs
	cp /etc/mke2fs.conf "$r/etc/"
	sys_config >"$r/etc/slotsync/system.conf"
	cp "$T/ca.pem" "$r/etc/slotsync/keyring.pem"
	cat >"$r/init" <<'INIT'
#!/bin/busybox sh
echo "SYSTEST initramfs start"
/bin/busybox --install -s /bin
export PATH=/usr/bin:/bin
mount -t proc p /proc; mount -t sysfs s /sys; mount -t devtmpfs d /dev
for m in $(cat /mods); do insmod $m 2>/dev/null; done
for i in $(seq 100); do [ -b /dev/vda8 ] && [ -b /dev/vdb ] && break; sleep 0.05; done
echo "SYSTEST initramfs modules loaded"
C=/etc/slotsync/system.conf
fail() { echo "SYSTEST initramfs-failed $*"; poweroff -f; }
if grep -q slotsync.factory=1 /proc/cmdline; then
	ifconfig lo 127.0.0.1 up
	mount -o ro /dev/vdb /srv/updates && httpd -p 127.0.0.1:8080 -h /srv/updates
	mount -t ext4 /dev/vda2 /boot
	# the data keys unseal once v1's root is measured into PCR 15
	for d in A B; do
		slotsync slot-format --tcti device:/dev/tpmrm0 --pcrs 0 --root-pcr 15 --root-hash "$(cat /srv/updates/v1.roothash)" \
			$(sed -n "/^\[slot.$d\]/,/^\[/s/^data = //p" $C) >/dev/null || fail "data $d"
	done
	slotsync assemble --config $C --slot A --journal /tmp/a.journal --store http://127.0.0.1:8080/store --allow-plain-http \
		/srv/updates/v1.caibx >/tmp/a.out 2>&1 || fail "install v1: $(cat /tmp/a.out)"
	# what the device knows of its first release: slot A holds it (its signed
	# release: what the initramfs checks before it mounts the slot), good
	mkdir -p /boot/slotsync
	cp /srv/updates/v1.caibx /boot/slotsync/slot-A.caibx
	cp /srv/updates/v1.0.bundle /boot/slotsync/slot-A.bundle
	cp /srv/updates/slots.json /boot/slotsync/slots.json
	# v1's root, checked and measured as every boot does: then its data key unseals
	slotsync open-root --config $C --no-full-check A >/dev/null || fail "open the root of v1"
	dev=$(slotsync unlock --config $C --data A) && /usr/bin/mke2fs -q -t ext4 "$dev" && mount -t ext4 "$dev" /mnt &&
		echo "factory data" >/mnt/marker && umount /mnt || fail "data A"
	# the bootloader's first boot: slot A, as installed (an empty environment),
	# and slotsync's first boot state in it
	{ printf '# GRUB Environment Block\n'; head -c 999 /dev/zero | tr '\0' '#'; } >/boot/grub/grubenv
	slotsync-bootctl --backend grub --env /boot/grub/grubenv init || fail "boot state"
	umount /boot
	sync
	echo "SYSTEST factory-done"
	poweroff -f
fi
slot=$(sed -n 's/.*slotsync.slot=\([AB]\).*/\1/p' /proc/cmdline)
[ -n "$slot" ] || fail "no slotsync.slot= on the command line"
echo "SYSTEST initramfs slot $slot boot-image $(cat /boot-release 2>/dev/null)"
mount -t ext4 /dev/vda2 /boot || fail "mount /boot"
# only a signed root: its release's signature checked, every block checked
# against its dm-verity root hash, opened through dm-verity, measured into
# PCR 15.  A slot that fails is never mounted: it is marked bad, and the next
# boot is the bootloader's fallback.  slotsync.verity=off (a debug command
# line) mounts it unchecked, measured as unverified: no data key unseals.
unverified=
grep -q slotsync.verity=off /proc/cmdline && unverified=--unverified
if ! root=$(slotsync open-root --config $C $unverified "$slot" 2>/tmp/open.err); then
	echo "SYSTEST initramfs refused slot $slot: $(cat /tmp/open.err)"
	slotsync-bootctl --backend grub --env /boot/grub/grubenv mark-bad "$slot" >/dev/null 2>&1
	umount /boot
	sync
	reboot -f
fi
if ! data=$(slotsync unlock --config $C --data "$slot" 2>/tmp/data.err); then
	[ -n "$unverified" ] || fail "unlock data $slot: $(cat /tmp/data.err)"
	echo "SYSTEST initramfs no data key for an unverified root: $(cat /tmp/data.err)"
	data=
fi
mount -t squashfs -o ro "$root" /ro || fail "mount the root of slot $slot"
mount -t tmpfs -o mode=0755 rw /rw && mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/ro,upperdir=/rw/upper,workdir=/rw/work /newroot || fail overlay
[ -z "$data" ] || mount -t ext4 "$data" /newroot/data || fail "mount data $slot"
mount --move /boot /newroot/boot || fail "mount /boot"
umount /proc /sys
exec switch_root /newroot /lib/systemd/systemd
INIT
	chmod +x "$r/init"
	(cd "$r" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1 -n) >"$T/sys-initrd.tmp" &&
		mv "$T/sys-initrd.tmp" "$T/sys-initrd.img"
}

# sys_boot_volume V: release V's boot volume, $T/boot-V.img (ext2): the kernel
# (vmlinuz), the initramfs (initrd.img) and release.img, a second initramfs
# GRUB loads after it (the kernel unpacks both) with /boot-release naming V.
# The volume is made reproducibly (fixed UUID, hash seed, times), so two
# releases' volumes differ only where V is written: what an install fetches
# for it is what a release's new kernel would cost, not a reshuffled file
# system
sys_boot_volume() {
	local v=$1 d=$T/bootvol-$1 rel=$T/bootvol-$1.rel uuid=5b6f3c2e-8f0a-4d1b-9c7e-2a4d6e8f0b1c
	sys_initrd || return 1
	rm -rf "$d" "$rel"
	mkdir -p "$d" "$rel"
	cp "$VM_VMLINUZ" "$d/vmlinuz"
	cp "$T/sys-initrd.img" "$d/initrd.img"
	echo "$v" >"$rel/boot-release"
	touch -d @0 "$rel/boot-release"
	(cd "$rel" && echo boot-release | cpio -o -H newc --quiet --reproducible) >"$d/release.img"
	touch -d @0 "$d"/*
	rm -f "$T/boot-$v.img"
	E2FSPROGS_FAKE_TIME=1 mke2fs -q -F -t ext2 -m 0 -N 16 -U "$uuid" \
		-E root_owner=0:0,hash_seed="$uuid" -d "$d" "$T/boot-$v.img" $(( $(du -sk "$d" | cut -f1) + 1024 ))k >/dev/null 2>&1 || return 1
	rm -rf "$d" "$rel"
}

# the disk: GPT, GRUB for BIOS, /boot with grub.cfg; 1.0's boot volume in
# slot A's (the factory boots its kernel, with slotsync.factory=1)
sys_disk() {
	local loop mnt=$T/sys-mnt
	[ -e "$T/boot-1.0.img" ] || { echo "no boot volume of release 1.0 (sys_release 1.0)" >&2; return 1; }
	rm -f "$T/disk.img"
	truncate -s 1300M "$T/disk.img"
	sfdisk -q "$T/disk.img" <<'PARTS'
label: gpt
size=1MiB, type=21686148-6449-6E6F-744E-656564454649, name=bios
size=96MiB, type=linux, name=boot
size=400MiB, type=linux, name=slot-a
size=400MiB, type=linux, name=slot-b
size=64MiB, type=linux, name=data-a
size=64MiB, type=linux, name=data-b
size=48MiB, type=linux, name=boot-a
size=48MiB, type=linux, name=boot-b
PARTS
	loop=$(losetup -f --show "$T/disk.img") || return 1
	partx -a "$loop" 2>/dev/null || true
	for _ in $(seq 50); do [ -b "${loop}p7" ] && break; sleep 0.1; done
	[ -b "${loop}p7" ] || { losetup -d "$loop"; echo "no partition devices for $loop" >&2; return 1; }
	dd if="$T/boot-1.0.img" of="${loop}p7" bs=1M conv=fsync status=none || { partx -d "$loop"; losetup -d "$loop"; return 1; }
	mke2fs -q -t ext4 -b 1024 -O ^metadata_csum_seed,^orphan_file "${loop}p2"
	mkdir -p "$mnt"
	mount "${loop}p2" "$mnt"
	CLEANUP+=("umount '$mnt' 2>/dev/null; partx -d $loop 2>/dev/null; losetup -d $loop 2>/dev/null")
	grub-install --target=i386-pc --boot-directory="$mnt" --modules="part_gpt ext2 biosdisk" "$loop" \
		>"$T/grub-install.log" 2>&1 || { cat "$T/grub-install.log" >&2; umount "$mnt"; partx -d "$loop"; losetup -d "$loop"; return 1; }
	cp "$SLOTSYNC_SOURCE_DIR/docs/boot/grub.cfg" "$mnt/grub/slotsync.cfg"
	cat >"$mnt/grub/grub.cfg" <<'CFG'
serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
set timeout=0
set slotsync_env=$prefix/grubenv
set factory=
load_env -f "$slotsync_env" factory
if [ "$factory" = 1 ]; then
	set default=factory
else
	source $prefix/slotsync.cfg
	echo "SYSTEST grub slot=$slotsync_slot A_OK=$A_OK A_TRY=$A_TRY B_OK=$B_OK B_TRY=$B_TRY"
	set default=$slotsync_slot
fi
# each slot's kernel and initramfs from its own boot volume (partitions 7
# and 8 of the disk GRUB runs from); the factory boots slot A's
regexp --set=1:disk '^([^,]+),' "$root"
menuentry A --id A { linux ($disk,gpt7)/vmlinuz console=ttyS0 panic=-1 quiet slotsync.slot=A; initrd ($disk,gpt7)/initrd.img ($disk,gpt7)/release.img }
menuentry B --id B { linux ($disk,gpt8)/vmlinuz console=ttyS0 panic=-1 quiet slotsync.slot=B; initrd ($disk,gpt8)/initrd.img ($disk,gpt8)/release.img }
menuentry factory --id factory { linux ($disk,gpt7)/vmlinuz console=ttyS0 panic=-1 quiet slotsync.factory=1; initrd ($disk,gpt7)/initrd.img ($disk,gpt7)/release.img }
CFG
	grub-editenv "$mnt/grub/grubenv" create
	grub-editenv "$mnt/grub/grubenv" set factory=1
	umount "$mnt"
	partx -d "$loop" 2>/dev/null || true
	losetup -d "$loop"
}

# sys_power_on LOG: start the VM (swtpm as its TPM, serial console into LOG)
# and a watchdog that kills it after 300 s; sets SYS_PID, SYS_WATCHDOG.
# SYS_ON_MS: milliseconds the VM was on, summed over every power-on (from
# here to the end of sys_wait_off)
# SYS_DISK2: the second disk (default the updates disk); SYS_QEMU_EXTRA: more
# qemu arguments (-kernel/-initrd/-append: a boot from other media)
SYS_QEMU_EXTRA=()
SYS_ON_MS=0
sys_power_on() {
	local d=$T/sys-tpm
	SYS_ON_T0=${EPOCHREALTIME/./}
	mkdir -p "$d"
	rm -f "$d/sock"
	swtpm socket --tpm2 --tpmstate dir="$d" --ctrl type=unixio,path="$d/sock" --terminate -d
	for _ in $(seq 50); do [ -S "$d/sock" ] && break; sleep 0.1; done
	qemu-system-x86_64 -accel tcg -cpu "$VM_QEMU_CPU" -smp 2 -m 1024 -nodefaults -no-reboot -display none \
		-serial "file:$1" -drive "file=$T/disk.img,if=virtio,format=raw" -drive "file=${SYS_DISK2:-$T/updates.img},if=virtio,format=raw" \
		-chardev socket,id=c,path="$d/sock" -tpmdev emulator,id=t,chardev=c -device tpm-tis,tpmdev=t "${SYS_QEMU_EXTRA[@]}" &
	SYS_PID=$!
	(sleep 300; kill -9 $SYS_PID 2>/dev/null) >/dev/null 2>&1 &
	SYS_WATCHDOG=$!
}

# sys_wait_off: wait until the VM is off, then stop its watchdog
sys_wait_off() {
	wait $SYS_PID 2>/dev/null || true
	pkill -P $SYS_WATCHDOG 2>/dev/null || true
	kill $SYS_WATCHDOG 2>/dev/null || true
	SYS_ON_MS=$((SYS_ON_MS + (${EPOCHREALTIME/./} - SYS_ON_T0) / 1000))
}

# sys_boot NAME [KILL_AFTER]: one power-on of the disk (GRUB, the initramfs,
# systemd) until it powers off or reboots; serial log in $T/sys-NAME.log.
# With KILL_AFTER, SYS_KILLED tells what happened: yes (killed during the
# install), ended (the VM stopped before the kill), no-install (it never
# started one).
# A VM that never gets through its kernel and the initramfs's loading of the
# kernel modules (the initramfs says so about 4 s after power-on; the emulated
# machine has been seen to hang before that once in some hundred boots, before
# any of the project's code ran) is powered off after SYS_INIT_LIMIT seconds
# and on again, once; the first console is kept as sys-NAME-hung.log and
# SYS_HUNG counts such power-ons
SYS_INIT_LIMIT=${SYS_INIT_LIMIT:-60}
SYS_HUNG=0
sys_boot() {
	local name=$1 kill_after=${2:-} log=$T/sys-$1.log try started kept
	for try in 1 2; do
		rm -f "$log"
		sys_power_on "$log"
		started=
		for _ in $(seq $((SYS_INIT_LIMIT * 10))); do
			grep -aq '^SYSTEST initramfs modules loaded' "$log" 2>/dev/null && { started=1; break; }
			kill -0 $SYS_PID 2>/dev/null || { started=1; break; }
			sleep 0.1
		done
		if [ -n "$started" ]; then break; fi
		kill -9 $SYS_PID 2>/dev/null || true
		sys_wait_off
		SYS_HUNG=$((SYS_HUNG + 1))
		kept=$log
		if [ $try = 1 ]; then kept=$T/sys-$name-hung.log; mv "$log" "$kept"; fi
		echo "# boot $name: the kernel and its modules not up $SYS_INIT_LIMIT s after power-on (the console's last line:" \
			"$(tr -d '\r' <"$kept" | sed 's/\x1b\[[0-9;]*[A-Za-z]//g' | grep -a . | tail -n1 | cut -c1-100));" \
			"log kept as ${kept##*/}, $([ $try = 1 ] && echo "powered on again" || echo "given up")"
		[ $try = 1 ] || return 0
	done
	SYS_KILLED=
	if [ -n "$kill_after" ]; then
		SYS_KILLED=no-install
		for _ in $(seq 3000); do
			if grep -aEq 'slotsync: info: (channel pointer [0-9]+: installing|resuming the install)' "$log" 2>/dev/null; then
				SYS_KILLED=ended
				break
			fi
			kill -0 $SYS_PID 2>/dev/null || break
			sleep 0.1
		done
		if [ $SYS_KILLED = ended ]; then
			sleep "$kill_after"
			kill -9 $SYS_PID 2>/dev/null && SYS_KILLED=yes
		fi
	fi
	sys_wait_off
}

# sys_part_offset N: the byte offset of partition N of $T/disk.img
sys_part_offset() {
	sfdisk -J "$T/disk.img" | python3 -c "import json,sys; p=json.load(sys.stdin)['partitiontable']; print(p['partitions'][$1 - 1]['start'] * p.get('sectorsize', 512))"
}

# the updates disk from folder $T/updates (made whole the first time, then
# only what changed written into it: tests/integration/ext4_of_dir.py)
sys_updates_disk() {
	python3 "$SLOTSYNC_SOURCE_DIR/tests/integration/ext4_of_dir.py" "$T/updates" "$T/updates.img"
}

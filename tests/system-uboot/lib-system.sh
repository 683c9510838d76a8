# SPDX-License-Identifier: LGPL-2.1-or-later
# The whole-system part of the U-Boot harness (sourced by
# tests/system-uboot/test_update.sh after lib.sh): an arm64 device that runs
# the cross-built slotsync under systemd, a slot group per slot.
#
#   disk (GPT, vda): 1 boot-common (ext4: boot.scr, slotsync's state in
#   /boot/slotsync) | 2 uboot-env (the environment, two copies) | 3 boot-a |
#   4 boot-b (each slot's boot image: ext2 with Image and initrd.img) |
#   5 rootfs-a | 6 rootfs-b (each slot's root: squashfs in LUKS2, its key
#   sealed by the machine's TPM: swtpm as qemu's tpm-tis-device)
#   updates disk (vdb, ext4): the chunk store, bundles, the channel pointer,
#   served inside the guest by busybox httpd on 127.0.0.1:8080
#
# A release is a slot group: its root (Debian arm64 with systemd, slotsync
# installed with `DESTDIR=ROOT cmake --install`, its units and health checks)
# and its boot image (Debian's arm64 kernel and an initramfs that unlocks the
# slot's root through the TPM with the cross-built slotsync, mounts it and
# hands over to systemd; not encrypted: U-Boot reads it).
#
#   ub_arm64                    builds (or brings up to date) the arm64 build:
#                               $UB_ARM64 (exit 77 without a cross compiler)
#   ub_sys_release V [failing]  $T/release-V.sqfs; "failing": a health check fails
#   ub_sys_boot_image V [broken]
#                               $T/boot-V.img; "broken": its init exits at once
#                               (the kernel panics; panic=1 resets)
#   ub_sys_disk V               $T/disk.img with V in slot A as a factory
#                               leaves it (root, boot image, state, environment)
#   ub_sys_factory V            the factory's own boot: V's root into slot A
#   ub_part_sum PART SIZE       SHA-256 of the first SIZE bytes of partition PART
UB_ARM64=${SLOTSYNC_ARM64_BUILD_DIR:-$SLOTSYNC_SOURCE_DIR/build-arm64}
UB_SS=$T/slotsync-arm64 # its `cmake --install`

ub_arm64() {
	if ! command -v aarch64-linux-gnu-gcc >/dev/null || [ ! -e /usr/lib/aarch64-linux-gnu/pkgconfig/libzstd.pc ]; then
		echo "SKIP: no arm64 cross compiler or libraries (scripts/install-deps.sh --arm64)"
		exit 77
	fi
	BUILD_DIR=$UB_ARM64 bash "$SLOTSYNC_SOURCE_DIR/scripts/cross-build.sh" >"$T/cross-build.log" 2>&1 ||
		{ tail -n 30 "$T/cross-build.log" >&2; return 1; }
}

# the device's configuration: in the root and, for the host's own checks, $T
ub_sys_config() {
	cat <<'CONF'
[system]
compatible = slotsync-arm64-virt
state-dir = /boot/slotsync
keyring = /etc/slotsync/keyring.pem
boot-tries = 2
[boot]
backend = uboot
env = /etc/fw_env.config
[tpm]
tcti = device:/dev/tpmrm0
# this U-Boot measures nothing into the PCRs: the keys are bound to the TPM
# alone (a board whose firmware measures its boot binds them to those PCRs)
pcrs = none
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
rootfs = /dev/vda5
backend = luks2
boot = /dev/vda3
[slot.B]
rootfs = /dev/vda6
backend = luks2
boot = /dev/vda4
CONF
}

ub_sys_release() {
	local v=$1 r=$T/rel-$1
	rm -rf "$r"
	cp -a "$UB_ROOT" "$r"
	rm -f "$r/.ready"
	DESTDIR=$r cmake --install "$UB_ARM64" >/dev/null || return 1
	# what the device never runs: perl, the package tools and their state,
	# iconv's modules, udev's hardware database (half the root: every
	# install and hash in the emulated machine is that much shorter)
	rm -rf "$r/usr/include" "$r/usr/lib/aarch64-linux-gnu/pkgconfig" "$r"/usr/share/{man,doc,bash-completion,perl,zoneinfo} \
		"$r"/usr/bin/perl* "$r"/usr/lib/aarch64-linux-gnu/{perl,perl-base,gconv} "$r"/usr/lib/aarch64-linux-gnu/libperl* \
		"$r"/usr/lib/apt "$r"/usr/bin/apt* "$r"/usr/lib/aarch64-linux-gnu/libapt-* "$r"/var/lib/apt "$r"/var/cache/* \
		"$r"/usr/lib/udev/hwdb.d "$r"/usr/lib/udev/hwdb.bin "$r"/etc/udev/hwdb.bin
	mkdir -p "$r/etc/slotsync" "$r/usr/lib/slotsync/health.d" "$r/boot" "$r/srv/updates"
	ub_sys_config >"$r/etc/slotsync/system.conf"
	cp "$T/ca.pem" "$r/etc/slotsync/keyring.pem"
	printf '/dev/vda2 0x0 0x4000\n/dev/vda2 0x10000 0x4000\n' >"$r/etc/fw_env.config"
	echo "VERSION_ID=$v" >"$r/etc/slotsync-release"
	echo "slotsync-arm64" >"$r/etc/hostname"
	mkdir -p "$r/etc/systemd/system/multi-user.target.wants"
	ln -sf /usr/lib/systemd/system/slotsync-agent.service "$r/etc/systemd/system/multi-user.target.wants/"
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
	cat >"$r/usr/lib/systemd/system/systest-report.service" <<'UNIT'
[Unit]
Description=the test's report of each boot
After=slotsync-agent.service
[Service]
Type=oneshot
ExecStart=/usr/lib/slotsync/systest-report
StandardOutput=tty
TTYPath=/dev/ttyAMA0
[Install]
WantedBy=multi-user.target
UNIT
	cat >"$r/usr/lib/slotsync/systest-report" <<'REPORT'
#!/bin/sh
# after the agent validated the boot: what booted; after its first poll of
# this boot, the status; then what the host asked for
echo "SYSTEST booted $(sed -n 's/.*slotsync.slot=\([AB]\).*/\1/p' /proc/cmdline) $(sed -n 's/VERSION_ID=//p' /etc/slotsync-release)"
echo "SYSTEST env $(fw_printenv BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT BOOT_A_OK BOOT_B_OK 2>&1 | tr '\n' ' ')"
booted_at=$(( $(date +%s) - $(cut -d. -f1 /proc/uptime) ))
for i in $(seq 240); do
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
case $(cat /srv/updates/action 2>/dev/null) in
stay) systemctl poweroff ;;
powerloss)
	# an install still to finish: the agent finishes it and reboots;
	# nothing left to do (the install was done before the power went): off
	slotsync status --json | grep -Eq '"step": ?"(assemble|verify|pre-install|verify-slot|images|migrate-data|post-install|switch|reboot)"' ||
		systemctl poweroff ;;
*) ;;  # the agent installs and reboots; the host waits
esac
REPORT
	chmod 755 "$r/usr/lib/slotsync/systest-report"
	cat >"$r/usr/lib/systemd/system/systest-slotsum.service" <<'UNIT'
[Unit]
Description=the test's own check of the booted slot: SHA-256 of its plaintext
After=systest-updates.service
Before=slotsync-agent.service
ConditionPathExists=/srv/updates/slotsum
[Service]
Type=oneshot
ExecStart=/usr/lib/slotsync/systest-slotsum
StandardOutput=tty
TTYPath=/dev/ttyAMA0
[Install]
WantedBy=multi-user.target
UNIT
	cat >"$r/usr/lib/slotsync/systest-slotsum" <<'SUM'
#!/bin/sh
# the plaintext of the booted slot's root (its dm-crypt mapping), hashed over
# the size of the image the host put there ("SLOT SIZE" lines): the host compares
slot=$(sed -n 's/.*slotsync.slot=\([AB]\).*/\1/p' /proc/cmdline)
size=$(sed -n "s/^$slot //p" /srv/updates/slotsum)
[ -n "$size" ] && echo "SYSTEST slotsum $slot $size $(head -c "$size" /dev/mapper/slotsync-$slot | sha256sum | cut -d' ' -f1)"
SUM
	chmod 755 "$r/usr/lib/slotsync/systest-slotsum"
	for u in systest-updates systest-slotsum systest-report; do
		ln -sf /usr/lib/systemd/system/$u.service "$r/etc/systemd/system/multi-user.target.wants/"
	done
	cat >"$r/usr/lib/slotsync/health.d/10-system" <<'CHECK'
#!/bin/sh
# the system came up with the partition that holds slotsync's state
mountpoint -q /boot
CHECK
	if [ "${2:-}" = failing ]; then
		printf '#!/bin/sh\necho "radio link: no carrier" >&2\nexit 1\n' >"$r/usr/lib/slotsync/health.d/20-radio-link"
	fi
	chmod 755 "$r"/usr/lib/slotsync/health.d/*
	: >"$r/etc/fstab"
	mkdir -p "$r/etc/systemd/journald.conf.d"
	printf '[Journal]\nForwardToConsole=yes\nTTYPath=/dev/ttyAMA0\nMaxLevelConsole=info\n' >"$r/etc/systemd/journald.conf.d/console.conf"
	rm -f "$r"/etc/systemd/system/getty.target.wants/* 2>/dev/null
	ln -sf /dev/null "$r/etc/systemd/system/serial-getty@ttyAMA0.service"
	ln -sf /dev/null "$r/etc/systemd/system/systemd-networkd-wait-online.service"
	# and nothing the device does not need on the way to the agent
	quiet_boot_units "$r"
	rm -f "$T/release-$v.sqfs"
	mksquashfs "$r" "$T/release-$v.sqfs" -noappend -quiet -comp zstd -all-root >/dev/null 2>&1 || return 1
	rm -rf "$r"
}

# ub_arm64_copy DEST FILE...: FILEs into DEST/usr/bin (libraries into
# DEST/usr/lib/aarch64-linux-gnu), with every library they need (DT_NEEDED,
# followed through), from the slotsync install and the arm64 root
ub_arm64_copy() {
	local dest=$1 f so d seen=" " todo=()
	shift
	local dirs=("$UB_SS/usr/lib/aarch64-linux-gnu" "$UB_ROOT/usr/lib/aarch64-linux-gnu")
	mkdir -p "$dest/usr/bin" "$dest/usr/lib/aarch64-linux-gnu" "$dest/lib"
	for f in "$@"; do
		case $f in
		*.so*) cp -L "$f" "$dest/usr/lib/aarch64-linux-gnu/" ;;
		*) cp -L "$f" "$dest/usr/bin/" ;;
		esac
		todo+=("$f")
	done
	while [ ${#todo[@]} -gt 0 ]; do
		f=${todo[0]}
		todo=("${todo[@]:1}")
		for so in $(aarch64-linux-gnu-readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
			[[ "$seen" == *" $so "* ]] && continue
			seen+="$so "
			for d in "${dirs[@]}"; do
				if [ -e "$d/$so" ]; then
					cp -L "$d/$so" "$dest/usr/lib/aarch64-linux-gnu/"
					todo+=("$d/$so")
					break
				fi
			done
			[ -e "$dest/usr/lib/aarch64-linux-gnu/$so" ] || { echo "no arm64 library $so for $f" >&2; return 1; }
		done
	done
	# the program interpreter, where the programs name it
	cp -L "$UB_ROOT/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1" "$dest/lib/"
}

# the boot image: ext2 with Debian's arm64 kernel and an initramfs that
# unlocks the slot U-Boot chose (slotsync.slot=) through the TPM, mounts its
# root and hands over to systemd; with slotsync.factory=1 on the command line
# (the factory's own boot), it formats slot A (LUKS2, a TPM-sealed key) and
# installs the first release into it instead
ub_sys_boot_image() {
	local v=$1 how=${2:-} d=$T/bootimg-$1 i=$T/bootimg-$1.initrd
	if [ ! -e "$UB_SS/usr/bin/slotsync" ]; then
		rm -rf "$UB_SS"
		DESTDIR=$UB_SS cmake --install "$UB_ARM64" >/dev/null || return 1
	fi
	rm -rf "$d" "$i"
	mkdir -p "$d" "$i"/{bin,dev,proc,sys,ro,rw,newroot,tmp,boot,srv/updates,run/cryptsetup,etc/slotsync}
	cp "$UB_K/bb/bin/busybox" "$i/bin/"
	modprobe -a -d "$UB_K" -S "$UB_KVER" --show-depends virtio_pci virtio_blk squashfs overlay ext4 \
		dm-crypt xts ecb algif_skcipher aes-ce-blk tpm_tis 2>/dev/null |
		awk '$1=="insmod"{print $2}' | sed "s|^$UB_K||" | awk '!s[$0]++' >"$i/mods"
	while read -r m; do mkdir -p "$i$(dirname "$m")"; cp "$UB_K$m" "$i$m"; done <"$i/mods"
	echo "$v" >"$i/boot-release"
	ub_arm64_copy "$i" "$UB_SS/usr/bin/slotsync" "$UB_ROOT/usr/lib/aarch64-linux-gnu/libtss2-tcti-device.so.0" || return 1
	ub_sys_config >"$i/etc/slotsync/system.conf"
	cp "$T/ca.pem" "$i/etc/slotsync/keyring.pem"
	if [ "$how" = broken ]; then
		printf '#!/bin/busybox sh\necho "SYSTEST initramfs boot-image %s broken: init exits"\nexit 1\n' "$v" >"$i/init"
	else
		cat >"$i/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/usr/bin:/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
C=/etc/slotsync/system.conf
slot=$(sed -n 's/.*slotsync\.slot=\([AB]\).*/\1/p' /proc/cmdline)
factory=
grep -q slotsync.factory=1 /proc/cmdline && factory=1
# a boot that cannot open its slot resets: U-Boot has taken one of its boots
fail() { echo "SYSTEST initramfs-failed $*"; [ -n "$factory" ] && poweroff -f; reboot -f; }
echo "SYSTEST initramfs slot ${slot:-factory} boot-image $(cat /boot-release) uptime=$(cut -d' ' -f1 /proc/uptime)"
while read -r m; do insmod "$m" 2>/dev/null; done </mods
for i in $(seq 100); do [ -b /dev/vda6 ] && [ -b /dev/vdb ] && [ -c /dev/tpmrm0 ] && break; sleep 0.05; done
[ -c /dev/tpmrm0 ] || fail "no TPM (/dev/tpmrm0)"
if [ -n "$factory" ]; then
	ifconfig lo 127.0.0.1 up
	mount -t ext4 -o ro /dev/vdb /srv/updates && httpd -p 127.0.0.1:8080 -h /srv/updates
	mount -t ext4 /dev/vda1 /boot || fail "mount /boot"
	slotsync assemble --config $C --slot A --journal /tmp/a.journal --store http://127.0.0.1:8080/store --allow-plain-http \
		/srv/updates/v$(cat /boot-release).caibx >/tmp/a.out 2>&1 || fail "install into A: $(cat /tmp/a.out)"
	umount /boot
	sync
	echo "SYSTEST factory-done"
	poweroff -f
fi
case $slot in A|B) ;; *) fail "no slotsync.slot= on the command line" ;; esac
root=$(slotsync unlock --config $C "$slot" 2>/tmp/unlock.err) || fail "unlock slot $slot: $(cat /tmp/unlock.err)"
echo "SYSTEST initramfs unlocked slot $slot: $root"
mount -t squashfs -o ro "$root" /ro || fail "mount the root of slot $slot"
mount -t tmpfs -o mode=0755 rw /rw && mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/ro,upperdir=/rw/upper,workdir=/rw/work /newroot || fail overlay
mount -t ext4 /dev/vda1 /newroot/boot || fail "mount /boot"
umount /proc /sys
exec switch_root /newroot /lib/systemd/systemd
INIT
	fi
	chmod 755 "$i/init"
	(cd "$i" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1 -n) >"$d/initrd.img"
	cp "$d/initrd.img" "$T/initrd-$v.img"
	cp "$UB_K/boot/vmlinuz-$UB_KVER" "$d/Image"
	rm -f "$T/boot-$v.img"
	mke2fs -q -F -t ext2 -m 0 -N 16 -L "boot" -E root_owner=0:0 -d "$d" "$T/boot-$v.img" \
		$(( $(du -sk "$d" | cut -f1) + 1024 ))k >/dev/null 2>&1 || return 1
	rm -rf "$d" "$i"
}

# the factory's own boot (qemu starts V's kernel and initramfs itself, with
# the TPM): slot A formatted, V's root installed into it
ub_sys_factory() {
	UB_TPM=1 UB_NO_REBOOT=1 UB_DIRECT="$UB_K/boot/vmlinuz-$UB_KVER $T/initrd-$1.img console=ttyAMA0 panic=1 slotsync.factory=1" \
		ub_power_on factory 400
	grep -aq "SYSTEST factory-done" "$T/ub-factory.log"
}

ub_part_sum() {
	local off
	off=$(ub_part_start "$1")
	tail -c +$((off + 1)) "$T/disk.img" | head -c "$2" | sha256sum | cut -d' ' -f1
}

# the factory's work that the host does: V's boot image in slot A's boot
# volume, slotsync's state (A holds V, good), the environment (A first, good);
# V's root goes into slot A at the factory's own boot (ub_sys_factory)
ub_sys_disk() {
	local v=$1
	rm -f "$T/disk.img"
	truncate -s 640M "$T/disk.img"
	sfdisk -q "$T/disk.img" <<'GPT'
label: gpt
size=32MiB, name=boot-common
size=1MiB, name=uboot-env
size=48MiB, name=boot-a
size=48MiB, name=boot-b
size=240MiB, name=rootfs-a
size=240MiB, name=rootfs-b
GPT
	rm -rf "$T/common"
	mkdir -p "$T/common/slotsync"
	cp "$T/boot.scr" "$T/common/"
	cp "$T/updates/v$v.caibx" "$T/common/slotsync/slot-A.caibx"
	cp "$T/updates/v$v.bundle" "$T/common/slotsync/slot-A.bundle"
	printf '{"A": {"status": "good", "version": "%s", "bundle_sha256": "%s", "security_version": 1, "installed": 0}, "B": {"status": "", "version": "", "bundle_sha256": "", "security_version": 0, "installed": 0}}\n' \
		"$v" "$(sha256sum "$T/updates/v$v.bundle" | cut -d' ' -f1)" >"$T/common/slotsync/slots.json"
	rm -f "$T/common.img"
	mkfs.ext4 -q -L boot-common -d "$T/common" "$T/common.img" 32M >/dev/null || return 1
	ub_write_part 1 "$T/common.img"
	ub_write_part 3 "$T/boot-$v.img"
	ub_env_config
	"$(dirname "$SLOTSYNC_BIN")/slotsync-bootctl" --backend uboot --env "$T/fw_env.config" -q init --force ||
		{ echo "cannot write the first boot state into the environment" >&2; return 1; }
}

# the updates disk (vdb) from folder $T/updates (made whole the first time,
# then only what changed written into it: tests/integration/ext4_of_dir.py)
ub_updates_disk() {
	python3 "$SLOTSYNC_SOURCE_DIR/tests/integration/ext4_of_dir.py" "$T/updates" "$T/control.img"
}

# per power-on (one boot each, UB_NO_REBOOT=1): the slot, seconds from
# power-on to the kernel's first line, to the initramfs, to the agent's first
# log line
ub_sys_boots() {
	awk 'NR==1 { t = $2; next }
	     /slotsync: booting slot/ && slot == "" { slot = $5 }
	     /Booting Linux on physical CPU/ && k == "" { k = $1 - t }
	     /SYSTEST initramfs slot/ && i == "" { i = $1 - t }
	     /slotsync\[[0-9]+\]:/ && a == "" { a = $1 - t }
	     END { printf "%s %s %s %s\n", (slot == "" ? "?" : slot), (k == "" ? "-" : sprintf("%.1f", k)),
	           (i == "" ? "-" : sprintf("%.1f", i)), (a == "" ? "-" : sprintf("%.1f", a)) }' "$T/ub-$1.log"
}

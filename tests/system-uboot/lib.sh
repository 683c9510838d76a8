# SPDX-License-Identifier: LGPL-2.1-or-later
# The U-Boot system harness (sourced by tests/system-uboot/test_*.sh, after
# tests/integration/lib.sh): qemu-system-aarch64 -M virt under TCG, Debian's
# U-Boot for qemu_arm64 from pflash bank 0, Debian's arm64 kernel, a busybox
# initramfs per slot and an arm64 Debian root (mmdebstrap, cached in
# $UB_CACHE) as each slot's squashfs root.
#
#   disk (GPT, vda): 1 boot-common (ext4: boot.scr from docs/boot/uboot-boot.cmd,
#   found by U-Boot's distro boot) | 2 uboot-env (raw: the environment, two
#   copies, libubootenv's redundant layout, at 0 and 0x10000) | 3 boot-a |
#   4 boot-b (ext4: Image, initrd.img) | 5 rootfs-a | 6 rootfs-b (squashfs)
#   control disk (vdb): a shell script the guest's initramfs runs with SLOT set
#
#   ub_setup                    kernel, modules, root: cached; $T/flash0.img
#   ub_initrd SLOT [broken]     $T/initrd-SLOT.img; "broken": /init exits at
#                               once (the kernel panics, panic=1 resets)
#   ub_disk                     $T/disk.img with both slots (root marker per slot)
#   ub_boot_vol SLOT [broken]   (re)writes SLOT's boot volume on the disk
#   ub_control SCRIPT           what the guest runs after mounting its root
#   ub_power_on NAME [SECONDS]  one power-on until the guest powers off (the
#                               guest's resets stay in it); $T/ub-NAME.log,
#                               each line with the host's time
#   ub_boots NAME               the boots of a power-on: "SLOT KERNEL_S USER_S"
#   ub_env_host ARGS...         fw_printenv/fw_setenv on the disk image
UB_CACHE=${SLOTSYNC_UBOOT_CACHE:-/var/cache/slotsync/system-uboot}
UB_UBOOT=${SLOTSYNC_UBOOT_BIN:-/usr/lib/u-boot/qemu_arm64/u-boot.bin}
UB_SUITE=bookworm
UB_MIRROR=${SLOTSYNC_MIRROR:-$(bash "$SLOTSYNC_SOURCE_DIR/scripts/debian-mirror.sh" "$UB_SUITE")}
UB_TIMES=()

# exit 77 (ctest: skipped), saying why, where this machine cannot run the suite
ub_require() {
	local why=
	command -v qemu-system-aarch64 >/dev/null || why="qemu-system-aarch64 is missing (Debian: qemu-system-arm)"
	[ -n "$why" ] || [ -r "$UB_UBOOT" ] || why="$UB_UBOOT is missing (Debian: u-boot-qemu)"
	[ -n "$why" ] || command -v mkimage >/dev/null || why="mkimage is missing (Debian: u-boot-tools)"
	[ -n "$why" ] || command -v fw_printenv >/dev/null || why="fw_printenv is missing (Debian: libubootenv-tool)"
	[ -n "$why" ] || command -v mmdebstrap >/dev/null || [ -e "$UB_CACHE/root-$UB_ROOT_KEY/.ready" ] ||
		why="mmdebstrap is missing and no arm64 root is cached in $UB_CACHE"
	[ -n "$why" ] || dpkg --print-foreign-architectures | grep -qx arm64 || ls "$UB_CACHE"/k-*/.ready >/dev/null 2>&1 ||
		why="apt knows no arm64 packages for the kernel (dpkg --add-architecture arm64; apt-get update)"
	if [ -z "$why" ] && [ ! -e "$UB_CACHE/root-$UB_ROOT_KEY/.ready" ]; then
		# mmdebstrap runs the arm64 maintainer scripts through qemu-user
		[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] ||
			{ mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null; update-binfmts --enable qemu-aarch64 2>/dev/null; } || true
		[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || why="arm64 binaries cannot run here (Debian: qemu-user-static, binfmt-support) to build the root"
	fi
	if [ -n "$why" ]; then
		echo "SKIP: $why"
		exit 77
	fi
}

# the root's packages: systemd, D-Bus, busybox (the test's update server),
# libubootenv's tools, and the libraries of the cross-built slotsync
# (scripts/cross-build.sh --runtime-packages; test_update.sh checks the list);
# on Debian's Essential:yes set, without apt and the rest of minbase: each
# package costs the emulated maintainer scripts time, and the device needs
# no package manager
UB_VARIANT=essential
UB_PKGS=systemd-sysv,dbus,busybox-static,libubootenv-tool,libcryptsetup12,libcurl4,libinih1,libjson-c5,liblz4-1,liblzma5,libssl3,libsystemd0,libtss2-esys-3.0.2-0,libtss2-mu0,libtss2-rc0,libtss2-tcti-device0,libtss2-tctildr0,libubootenv0.1,libxxhash0,libzstd1,zlib1g
UB_ROOT_KEY=$UB_SUITE-$(printf '%s' "$UB_VARIANT,$UB_PKGS" | sha256sum | cut -c1-8)

# Debian's arm64 kernel with its modules, busybox, and the root: built once
ub_setup() {
	local pkg k r=$UB_CACHE/root-$UB_ROOT_KEY
	mkdir -p "$UB_CACHE"
	# Debian's arm64 kernel for virtual machines: the generic one has no
	# driver for qemu's TPM on the virt machine (CONFIG_TCG_TIS, the
	# memory-mapped TIS that tpm-tis-device is); boards use their own kernel
	pkg=$(apt-cache depends linux-image-cloud-arm64:arm64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
	pkg=${pkg%:arm64}
	[ -n "$pkg" ] || { echo "cannot find Debian's arm64 kernel package (dpkg --add-architecture arm64; apt-get update)" >&2; return 1; }
	UB_KVER=${pkg#linux-image-}
	k=$UB_CACHE/k-$UB_KVER
	if [ ! -e "$k/.ready" ]; then
		rm -rf "$k"
		(cd "$UB_CACHE" && apt-get download -qq "$pkg:arm64" busybox-static:arm64 >/dev/null 2>&1) ||
			{ echo "cannot download $pkg:arm64" >&2; return 1; }
		dpkg-deb -x "$UB_CACHE/${pkg}"_*_arm64.deb "$k"
		dpkg-deb -x "$UB_CACHE"/busybox-static_*_arm64.deb "$k/bb"
		depmod -b "$k" "$UB_KVER"
		rm -f "$UB_CACHE/${pkg}"_*_arm64.deb "$UB_CACHE"/busybox-static_*_arm64.deb
		touch "$k/.ready"
	fi
	UB_K=$k
	if [ ! -e "$r/.ready" ]; then
		rm -rf "$r" "$r.tmp" "$r.tar"
		mmdebstrap --architectures=arm64 --variant=$UB_VARIANT --include="$UB_PKGS" \
			--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
			--dpkgopt='path-exclude=/usr/share/locale/*' \
			"$UB_SUITE" "$r.tar" "$UB_MIRROR" >"$UB_CACHE/mmdebstrap.log" 2>&1 ||
			{ tail -n 20 "$UB_CACHE/mmdebstrap.log" >&2; return 1; }
		mkdir -p "$r.tmp"
		tar -C "$r.tmp" -xf "$r.tar"
		rm -f "$r.tar"
		rm -rf "$r.tmp"/var/cache/apt/archives/*.deb "$r.tmp"/var/lib/apt/lists/*
		mv "$r.tmp" "$r"
		touch "$r/.ready"
	fi
	UB_ROOT=$r
	dd if=/dev/zero of="$T/flash0.img" bs=1M count=64 status=none
	dd if="$UB_UBOOT" of="$T/flash0.img" conv=notrunc status=none
	dd if=/dev/zero of="$T/flash1.img" bs=1M count=64 status=none
	mkimage -A arm64 -T script -C none -n "slotsync A/B" -d "$SLOTSYNC_SOURCE_DIR/docs/boot/uboot-boot.cmd" \
		"$T/boot.scr" >/dev/null
}

ub_initrd() {
	local slot=$1 how=${2:-} d=$T/initrd-$1
	rm -rf "$d"
	mkdir -p "$d"/{bin,dev,proc,sys,root,mnt}
	cp "$UB_K/bb/bin/busybox" "$d/bin/"
	modprobe -a -d "$UB_K" -S "$UB_KVER" --show-depends virtio_pci virtio_blk squashfs 2>/dev/null |
		awk '$1=="insmod"{print $2}' | sed "s|^$UB_K||" | awk '!s[$0]++' >"$d/mods"
	while read -r m; do mkdir -p "$d$(dirname "$m")"; cp "$UB_K$m" "$d$m"; done <"$d/mods"
	if [ "$how" = broken ]; then
		printf '#!/bin/busybox sh\necho "SYSTEST initramfs %s broken: init exits"\nexit 1\n' "$slot" >"$d/init"
	else
		cat >"$d/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
slot=$(sed -n 's/.*rauc\.slot=\([AB]\).*/\1/p' /proc/cmdline)
echo "SYSTEST initramfs slot=$slot marker=$(cat /marker) kernel=$(uname -r) uptime=$(cut -d' ' -f1 /proc/uptime)"
while read -r m; do insmod "$m"; done </mods
if [ "$slot" = A ]; then root=/dev/vda5; else root=/dev/vda6; fi
for i in $(seq 50); do [ -b "$root" ] && [ -b /dev/vdb ] && break; sleep 0.1; done
mount -t squashfs -o ro "$root" /root || { echo "SYSTEST fail cannot mount $root"; poweroff -f; }
echo "SYSTEST root $(cat /root/etc/slotsync-release)"
mount -t tmpfs tmpfs /root/run; mkdir -p /root/run/lock
mount --bind /dev /root/dev; mount --bind /proc /root/proc; mount --bind /sys /root/sys
envp() { chroot /root fw_printenv -c /etc/fw_env.config "$@"; }
envs() { chroot /root fw_setenv -c /etc/fw_env.config "$@"; }
head -c 65536 /dev/vdb | tr -d '\000' >/control
SLOT=$slot
. /control
echo "SYSTEST control ended without power-off"
poweroff -f
INIT
	fi
	chmod 755 "$d/init"
	echo "$slot-$(date +%s%N)" >"$d/marker"
	(cd "$d" && find . | cpio -o -H newc --quiet | gzip -1) >"$T/initrd-$slot.img"
}

# one boot volume: ext4 with Image and initrd.img
ub_boot_vol() {
	local slot=$1 how=${2:-} v=$T/bootvol-$1 part
	ub_initrd "$slot" "$how"
	rm -rf "$v"
	mkdir -p "$v"
	cp "$UB_K/boot/vmlinuz-$UB_KVER" "$v/Image"
	cp "$T/initrd-$slot.img" "$v/initrd.img"
	rm -f "$T/bootvol-$slot.img"
	mkfs.ext4 -q -L "boot-$slot" -d "$v" "$T/bootvol-$slot.img" 64M
	if [ "$slot" = A ]; then part=3; else part=4; fi
	ub_write_part "$part" "$T/bootvol-$slot.img"
}

ub_part_start() { # partition number -> byte offset in the disk image
	sfdisk -d "$T/disk.img" | awk -v n="$1" '/start=/ { if (++i == n) { match($0, /start= *[0-9]+/)
		s = substr($0, RSTART, RLENGTH); gsub(/[^0-9]/, "", s); print s * 512; exit } }'
}

ub_write_part() {
	dd if="$2" of="$T/disk.img" bs=1M seek=$(($(ub_part_start "$1") / 1048576)) conv=notrunc status=none
}

ub_rootfs() {
	local slot=$1 r=$T/root-$1
	rm -rf "$r"
	cp -a "$UB_ROOT" "$r"
	rm -f "$r/.ready"
	echo "VERSION_ID=$slot-1" >"$r/etc/slotsync-release"
	printf '/dev/vda2 0x0 0x4000\n/dev/vda2 0x10000 0x4000\n' >"$r/etc/fw_env.config"
	rm -f "$T/root-$slot.sqfs"
	mksquashfs "$r" "$T/root-$slot.sqfs" -comp zstd -noappend -quiet >/dev/null
	rm -rf "$r"
}

ub_disk() {
	rm -f "$T/disk.img"
	truncate -s 600M "$T/disk.img"
	sfdisk -q "$T/disk.img" <<'GPT'
label: gpt
size=8MiB, name=boot-common
size=1MiB, name=uboot-env
size=64MiB, name=boot-a
size=64MiB, name=boot-b
size=200MiB, name=rootfs-a
size=200MiB, name=rootfs-b
GPT
	rm -rf "$T/common"
	mkdir -p "$T/common"
	cp "$T/boot.scr" "$T/common/"
	rm -f "$T/common.img"
	mkfs.ext4 -q -L boot-common -d "$T/common" "$T/common.img" 8M
	ub_write_part 1 "$T/common.img"
	ub_boot_vol A
	ub_boot_vol B
	ub_rootfs A
	ub_rootfs B
	ub_write_part 5 "$T/root-A.sqfs"
	ub_write_part 6 "$T/root-B.sqfs"
	truncate -s 1M "$T/control.img"
}

# fw_printenv / fw_setenv on the disk image's environment (the host's view)
ub_env_host() {
	local tool=$1
	shift
	ub_env_config
	"$tool" -c "$T/fw_env.config" "$@"
}

# $T/fw_env.config: libubootenv's view of the disk image's environment
ub_env_config() {
	local off
	off=$(ub_part_start 2)
	printf '%s 0x%x 0x4000\n%s 0x%x 0x4000\n' "$T/disk.img" "$off" "$T/disk.img" $((off + 0x10000)) >"$T/fw_env.config"
}

ub_control() {
	dd if=/dev/zero of="$T/control.img" bs=64K count=1 conv=notrunc status=none
	printf '%s\n' "$1" | dd of="$T/control.img" conv=notrunc status=none
}

# UB_NO_REBOOT=1: a reset ends the power-on (qemu -no-reboot), as a power-on
# per boot; UB_KILL_AFTER=S: the power is cut S seconds after the agent starts
# or resumes an install (UB_KILLED: yes, ended: the guest stopped first,
# no-install: it never started one); UB_TPM=1: swtpm as the machine's TPM
# (tpm-tis-device, its state kept in $T/tpm across power-ons); UB_DIRECT=
# "KERNEL INITRD CMDLINE": qemu starts that kernel itself, no U-Boot (a
# factory's own boot)
ub_power_on() {
	local name=$1 secs=${2:-300} log=$T/ub-$1.log t0 pid extra=() flash=() k i c
	[ "${UB_NO_REBOOT:-}" = 1 ] && extra+=(-no-reboot)
	if [ "${UB_TPM:-}" = 1 ]; then
		mkdir -p "$T/tpm"
		rm -f "$T/tpm/sock"
		swtpm socket --tpm2 --tpmstate dir="$T/tpm" --ctrl type=unixio,path="$T/tpm/sock" --terminate -d
		for _ in $(seq 50); do [ -S "$T/tpm/sock" ] && break; sleep 0.1; done
		extra+=(-chardev socket,id=tpmc,path="$T/tpm/sock" -tpmdev emulator,id=tpm0,chardev=tpmc -device tpm-tis-device,tpmdev=tpm0)
	fi
	if [ -n "${UB_DIRECT:-}" ]; then
		read -r k i c <<<"$UB_DIRECT"
		extra+=(-kernel "$k" -initrd "$i" -append "$c")
	else
		flash=(-drive if=pflash,format=raw,index=0,readonly=on,file="$T/flash0.img"
			-drive if=pflash,format=raw,index=1,file="$T/flash1.img")
	fi
	t0=$(date +%s.%N)
	echo "power-on $t0" >"$log"
	rm -f "$T/qemu.pid"
	# (in a subshell whose stderr goes nowhere: a power cut, qemu killed, is no
	# news for the test's output)
	(timeout "$secs" qemu-system-aarch64 -M virt -cpu cortex-a57 -smp 2 -m 1024 -nographic -accel tcg -nic none \
		"${flash[@]}" -drive if=none,id=d0,format=raw,file="$T/disk.img" -device virtio-blk-pci,drive=d0 \
		-drive if=none,id=d1,format=raw,file="$T/control.img" -device virtio-blk-pci,drive=d1 \
		-pidfile "$T/qemu.pid" "${extra[@]}" \
		</dev/null 2>&1 | perl -MTime::HiRes=time -ne 'BEGIN { $| = 1 } s/\r//g; printf "%.2f %s", time, $_' >>"$log") 2>/dev/null &
	pid=$!
	UB_KILLED=
	if [ -n "${UB_KILL_AFTER:-}" ]; then
		UB_KILLED=no-install
		while kill -0 $pid 2>/dev/null; do
			if grep -aEq 'slotsync: info: (channel pointer [0-9]+: installing|resuming the install)' "$log"; then
				UB_KILLED=ended
				sleep "$UB_KILL_AFTER"
				kill -9 "$(cat "$T/qemu.pid" 2>/dev/null)" 2>/dev/null && UB_KILLED=yes
				break
			fi
			sleep 0.1
		done
	fi
	wait $pid || true
	[ -n "${ARTIFACTS:-}" ] && mkdir -p "$ARTIFACTS" && cp "$log" "$ARTIFACTS/"
	ub_times "$name"
	return 0
}

# per boot of a power-on: the slot, seconds from power-on (or the reset) to
# the kernel's first line and to the initramfs
ub_boots() {
	awk 'NR==1 { t = $2; next }
	     /U-Boot 20[0-9][0-9]/ { if (n) t = $1; n++; k = ""; slot = "?" }
	     /slotsync: booting slot/ { slot = $5 }
	     /Booting Linux on physical CPU/ && k == "" { k = $1 - t }
	     /SYSTEST initramfs slot=/ { printf "%s %.1f %.1f\n", slot, k, $1 - t }
	     /Kernel panic/ { printf "%s %.1f panic\n", slot, k }' "$T/ub-$1.log"
}

ub_times() {
	local b
	while read -r b; do UB_TIMES+=("$1 $b"); done < <(ub_boots "$1")
}

ub_summary() {
	echo "# boots: power-on, slot, seconds to the kernel's first line, seconds to the initramfs (from power-on or reset)"
	printf '#   %-12s %-4s %8s %8s\n' power-on slot kernel initramfs
	for b in "${UB_TIMES[@]}"; do
		# shellcheck disable=SC2086
		printf '#   %-12s %-4s %8s %8s\n' $b
	done
}

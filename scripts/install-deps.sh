#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Installs every Debian package that slotsync needs to build, test and run its
# demo. Idempotent, and fast when everything is there: apt-get runs only if a
# package is missing.
set -euo pipefail

PACKAGES=(
	# build
	build-essential cmake pkg-config
	# man pages from their one source each (docs/man/*.scd)
	scdoc
	# libraries
	libzstd-dev libssl-dev libxxhash-dev libcurl4-openssl-dev libjson-c-dev check libubootenv-dev zlib1g-dev
	liblzma-dev liblz4-dev
	libtss2-dev libcryptsetup-dev libdevmapper-dev libinih-dev libsystemd-dev
	# tools the tests and the demo use (an HSM for release keys, a clock to move)
	softhsm2 libengine-pkcs11-openssl faketime
	casync debootstrap squashfs-tools busybox-static attr openssl zstd e2fsprogs util-linux nginx curl python3
	# encrypted slots: a software TPM and its tools
	swtpm swtpm-tools tpm2-tools cryptsetup-bin kmod cpio
	# boot state: the bootloaders' own tools, and GRUB booted for real in qemu
	grub-common grub-pc-bin libubootenv-tool u-boot-tools xorriso mtools qemu-system-x86
	# benchmarks: a peer HTTP/2 client, arithmetic, peak memory, binary delta peers
	nghttp2-client bc time xdelta3 bsdiff
	# the agent: systemd-analyze verify of its units, a private D-Bus for its interface
	systemd dbus-daemon dbus-system-bus-common
	# the whole-system proof: a partitioned disk with GRUB installed
	fdisk grub2-common
	# the U-Boot boot on arm64 (tests/system-uboot): Debian's U-Boot in qemu, an
	# arm64 root made through qemu-user
	qemu-system-arm u-boot-qemu mmdebstrap qemu-user-static binfmt-support
	# fuzzing and sanitizers
	clang-14 libclang-rt-14-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all ${#PACKAGES[@]} packages present"
	exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"

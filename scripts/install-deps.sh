#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Installs every Debian package that slotsync needs to build, test and run its
# demo. Idempotent, and fast when everything is there: apt-get runs only if a
# package is missing.
#   --arm64   also the arm64 cross build (docs/building.md, "Cross-building for
#             arm64"): Debian's cross compiler, qemu-user to run its tests, and
#             the arm64 -dev packages of every device feature through multiarch
set -euo pipefail
arm64=0
case ${1:-} in
--arm64) arm64=1 ;;
"") ;;
*) echo "usage: install-deps.sh [--arm64]" >&2; exit 2 ;;
esac

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
	# arm64 root made through qemu-user (mmdebstrap makes a foreign root only
	# when arch-test, which it merely recommends, tells it the host can run it)
	qemu-system-arm u-boot-qemu mmdebstrap arch-test qemu-user-static binfmt-support
	# fuzzing and sanitizers
	clang-14 libclang-rt-14-dev
	# a real S3 server for slotsync-gen publish: radosgw on a one-node Ceph
	ceph-mon ceph-osd radosgw ceph-common
)
# the arm64 build: its compiler and emulator (host packages), and the arm64
# twins of the libraries above (Multi-Arch: same, so they sit beside the
# host's in /usr/lib/aarch64-linux-gnu; apt keeps both at one version)
ARM64_HOST=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static)
ARM64_LIBS=(libzstd-dev libssl-dev libxxhash-dev libcurl4-openssl-dev libjson-c-dev check libubootenv-dev zlib1g-dev
	liblzma-dev liblz4-dev libtss2-dev libcryptsetup-dev libdevmapper-dev libinih-dev libsystemd-dev)
if [ $arm64 = 1 ]; then
	PACKAGES+=("${ARM64_HOST[@]}" "${ARM64_LIBS[@]/%/:arm64}")
fi
apt_get() {
	# other apt runs may hold the lock for a while: wait for them
	apt-get -o DPkg::Lock::Timeout=600 "$@"
}

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
if [ $arm64 = 1 ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
	dpkg --add-architecture arm64
fi
# apt-get update does not wait for the lock of the package lists: retry it
# while another apt run holds them
for try in $(seq 60); do
	if out=$(apt_get update -qq 2>&1); then break; fi
	if [ "$try" = 60 ] || ! grep -q 'Could not get lock' <<<"$out"; then echo "$out" >&2; exit 1; fi
	sleep 10
done
# (the policy is read whole first: grep -q would stop reading early, and
# apt-cache, cut off by SIGPIPE, would fail the test under pipefail)
if [ $arm64 = 1 ] && ! grep -q 'Candidate: [0-9]' <<<"$(apt-cache policy libc6:arm64 2>/dev/null)"; then
	echo "install-deps: the apt sources serve no arm64 packages: an 'Architectures:' line in" \
		"/etc/apt/sources.list.d/*.sources (or [arch=...] in sources.list) must allow arm64" >&2
	exit 1
fi
apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"

#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Cross-builds slotsync for arm64 on an amd64 Debian machine into BUILD_DIR
# (default: build-arm64/), with Debian's cross compiler and the arm64 libraries
# of every device feature (cmake/aarch64-linux-gnu.cmake; install them first
# with `scripts/install-deps.sh --arm64`).  Warnings are errors, and every
# device feature is required (ON): a missing arm64 -dev package stops the
# configure step instead of leaving a feature out.
#   --test                runs the unit tests of the arm64 build under qemu-user,
#                         and checks that `cmake --install` gives arm64
#                         programs that start
#   --runtime-packages    prints the Debian packages (arm64) that the installed
#                         programs need at run time, one a line, nothing else
# Other arguments go to cmake's configure step.  The build is configured for
# the prefix /usr, so that `DESTDIR=ROOT cmake --install build-arm64` puts a
# Debian-like tree into an arm64 root: ROOT/usr/bin/slotsync, the units in
# ROOT/usr/lib/systemd/system naming /usr/bin/slotsync, the libraries in
# ROOT/usr/lib/aarch64-linux-gnu.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-arm64}
TRIPLET=aarch64-linux-gnu
mode=build
case ${1:-} in
--test) mode=test; shift ;;
--runtime-packages) mode=packages; shift ;;
esac

for t in $TRIPLET-gcc qemu-aarch64-static; do
	command -v $t >/dev/null || { echo "cross-build: needs $t (scripts/install-deps.sh --arm64 installs it)" >&2; exit 1; }
done
[ -e /usr/lib/$TRIPLET/pkgconfig/libzstd.pc ] ||
	{ echo "cross-build: no arm64 libraries (scripts/install-deps.sh --arm64 installs them)" >&2; exit 1; }

# The Debian arm64 packages that hold the libraries PROGRAMS need (their
# DT_NEEDED entries), and the TPM's device TCTI, which libtss2-tctildr loads
# at run time.
runtime_packages() {
	local p so pkg
	{
		for p in "$@"; do
			$TRIPLET-readelf -d "$p" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'
		done
		if grep -q '^#define SLOTSYNC_HAVE_TPM 1' "$BUILD_DIR/include/slotsync/features.h"; then
			echo libtss2-tcti-device.so.0
		fi
	} | sort -u | while read -r so; do
		pkg=$({ dpkg -S "/lib/$TRIPLET/$so" "/usr/lib/$TRIPLET/$so" 2>/dev/null || true; } | sed -n '1s/:[a-z0-9]*: .*//p')
		[ -n "$pkg" ] || { echo "cross-build: no arm64 package holds $so" >&2; return 1; }
		echo "$pkg"
	done | sort -u
}

if [ $mode != packages ] || [ ! -e "$BUILD_DIR/slotsync" ]; then
	mkdir -p "$BUILD_DIR"
	cmake -S . -B "$BUILD_DIR" -DCMAKE_TOOLCHAIN_FILE=cmake/$TRIPLET.cmake -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo} \
		-DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_INSTALL_LIBDIR=lib/$TRIPLET -DSLOTSYNC_WERROR=ON -DSLOTSYNC_TESTS=ON \
		-DSLOTSYNC_TPM=ON -DSLOTSYNC_LUKS2=ON -DSLOTSYNC_SYSTEMD=ON -DSLOTSYNC_UBOOT=ON -DSLOTSYNC_VERITY=ON \
		-DSLOTSYNC_ZLIB=ON -DSLOTSYNC_XZ=ON -DSLOTSYNC_LZ4=ON "$@" >"$BUILD_DIR/configure.log" 2>&1 ||
		{ cat "$BUILD_DIR/configure.log" >&2; exit 1; }
	[ $mode = packages ] || sed -n '/-- slotsync /,/man pages/p' "$BUILD_DIR/configure.log"
	cmake --build "$BUILD_DIR" -j2 >"$BUILD_DIR/build.log" 2>&1 || { tail -n 60 "$BUILD_DIR/build.log" >&2; exit 1; }
fi
if [ $mode = packages ]; then
	runtime_packages "$BUILD_DIR/slotsync" "$BUILD_DIR/slotsync-bootctl" "$BUILD_DIR/slotsync-gen"
	exit 0
fi
echo "cross-build: arm64 programs in $BUILD_DIR/ (slotsync, slotsync-bootctl, slotsync-gen)"
[ $mode = test ] || exit 0

(cd "$BUILD_DIR" && ctest --output-on-failure -j2 -L unit)

# What an arm64 root gets from `cmake --install`: programs of the right
# machine that start on it (under qemu-user here), and their libraries there.
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
DESTDIR=$root cmake --install "$BUILD_DIR" >/dev/null
for p in slotsync slotsync-bootctl slotsync-gen; do
	f=$root/usr/bin/$p
	$TRIPLET-readelf -h "$f" | grep -q 'Machine:.*AArch64' || { echo "cross-build: $f is not an arm64 program" >&2; exit 1; }
	v=$(qemu-aarch64-static "$f" --version) || { echo "cross-build: $f does not start under qemu-aarch64" >&2; exit 1; }
	[ "$v" = "$p $(sed -n 's/^project(slotsync VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)" ] ||
		{ echo "cross-build: $f --version said '$v'" >&2; exit 1; }
done
ls "$root/usr/lib/$TRIPLET/libslotsync.so.0" >/dev/null
grep -q '^ExecStart=/usr/bin/slotsync' "$root/usr/lib/systemd/system/slotsync-agent.service" ||
	{ echo "cross-build: the installed agent unit does not start /usr/bin/slotsync" >&2; exit 1; }
pkgs=$(runtime_packages "$root/usr/bin/slotsync" "$root/usr/bin/slotsync-bootctl" "$root/usr/bin/slotsync-gen")
echo "cross-build: arm64 unit tests passed under qemu-user; the installed programs start; they need" $pkgs

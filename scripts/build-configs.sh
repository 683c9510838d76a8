#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Builds the configurations other than the full one and runs their unit tests,
# with warnings as errors:
#   build-server   -DSLOTSYNC_DEVICE=OFF: slotsync-gen alone (zstd, OpenSSL,
#                  json-c), as a build server or CI pipeline builds it
#   minimal-device the device without TPM, LUKS2, systemd, U-Boot, dm-verity or the gzip, xz and lz4 block compressors
# and that the minimal device leaves out objects with xz records (made by the
# full build's slotsync-gen, tests/integration/delta_without_xz.sh), and
# checks that the build files need nothing newer than CMake 3.22
# (scripts/cmake-compat.sh).  --build-only: build the two configurations and
# check what they link, no tests.  SLOTSYNC_CMAKE_322=/path/to/cmake (a CMake 3.22
# release) also configures and builds the full project with it.
set -euo pipefail
cd "$(dirname "$0")/.."

MINIMAL=(-DSLOTSYNC_TPM=OFF -DSLOTSYNC_LUKS2=OFF -DSLOTSYNC_SYSTEMD=OFF -DSLOTSYNC_UBOOT=OFF -DSLOTSYNC_VERITY=OFF
	-DSLOTSYNC_ZLIB=OFF -DSLOTSYNC_XZ=OFF -DSLOTSYNC_LZ4=OFF)

run_config() {
	local name=$1; shift
	local dir=build-$name
	echo "== configuration $name: $*"
	mkdir -p "$dir"
	cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLOTSYNC_WERROR=ON -DSLOTSYNC_TESTS=ON "$@" >"$dir/configure.log" 2>&1 ||
		{ cat "$dir/configure.log"; return 1; }
	sed -n '/-- slotsync /,/dm-verity/p' "$dir/configure.log"
	cmake --build "$dir" -j"$(nproc)" >/dev/null
	[ "$build_only" = 1 ] || (cd "$dir" && ctest --output-on-failure -j2 -L unit)
}

# --build-only: configure, build and check what they link, no tests
# (scripts/test.sh builds them early)
build_only=0
[ "${1:-}" = --build-only ] && build_only=1

run_config build-server -DSLOTSYNC_DEVICE=OFF
# what the build server's program links: nothing of the device; libcryptsetup
# (dm-verity hash trees) and libcurl (publish to S3) are loaded when used
device_libs='libtss2|libsystemd|libubootenv|libinih|libxxhash|libcryptsetup|libcurl'
if ldd build-build-server/slotsync-gen | grep -E "$device_libs"; then
	echo "slotsync-gen of the build-server configuration links a device library" >&2
	exit 1
fi
test ! -e build-build-server/slotsync || { echo "DEVICE=OFF built the device program" >&2; exit 1; }
run_config minimal-device "${MINIMAL[@]}"
if ldd build-minimal-device/slotsync | grep -E 'libtss2|libcryptsetup|libsystemd|libubootenv|liblzma|liblz4'; then
	echo "the minimal device program links a library of a feature that is off" >&2
	exit 1
fi
[ "$build_only" = 0 ] || exit 0
# objects with xz records (made by the full build's slotsync-gen) on a device
# without liblzma
if [ -x build/slotsync-gen ]; then
	bash tests/integration/delta_without_xz.sh build/slotsync-gen build-minimal-device/slotsync
fi

bash scripts/cmake-compat.sh
if [ -n "${SLOTSYNC_CMAKE_322:-}" ]; then
	"$SLOTSYNC_CMAKE_322" --version | head -n1
	"$SLOTSYNC_CMAKE_322" -S . -B build-cmake-3.22 -DSLOTSYNC_WERROR=ON >/dev/null
	"$SLOTSYNC_CMAKE_322" --build build-cmake-3.22 -j"$(nproc)" >/dev/null
	echo "== configured and built with $("$SLOTSYNC_CMAKE_322" --version | head -n1)"
fi
echo "== other configurations: all built and passed their unit tests"

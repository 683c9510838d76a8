#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The whole test suite on a fresh Debian 12 machine: installs the dependencies,
# builds with warnings as errors, runs every test (unit and integration, with
# real casync and fault injection), cross-builds for arm64 and runs its unit
# tests under qemu-user, runs them again in an ASan+UBSan build, and fuzzes
# every parser for a bounded time.
#   SLOTSYNC_LONG=1   long modes: 1000 kills of make and of assemble, 200 power cuts,
#                     500 cuts of slotsync install, 100 power cuts of the whole
#                     system in qemu, 30 minutes of fuzzing
set -euo pipefail
cd "$(dirname "$0")/.."

# --arm64 too: the arm64 cross build below, and the system-uboot suite's
# arm64 kernel (in the tests) come from the arm64 architecture of the mirror
bash scripts/install-deps.sh --arm64
if [ "${SLOTSYNC_LONG:-0}" = 1 ]; then
	export SLOTSYNC_KILL_TRIALS=${SLOTSYNC_KILL_TRIALS:-1000}
	export SLOTSYNC_CRASH_TRIALS=${SLOTSYNC_CRASH_TRIALS:-200}
	export SLOTSYNC_INSTALL_KILL_TRIALS=${SLOTSYNC_INSTALL_KILL_TRIALS:-500}
	export SLOTSYNC_SYSTEM_POWERLOSS_TRIALS=${SLOTSYNC_SYSTEM_POWERLOSS_TRIALS:-100}
	export FUZZ_SECONDS=${FUZZ_SECONDS:-1800}
fi
export SLOTSYNC_SAMPLE_DIR=${SLOTSYNC_SAMPLE_DIR:-$PWD/build/samples}

ASAN_CONFIG=(-DSLOTSYNC_WERROR=ON -DSLOTSYNC_TESTS=ON -DSLOTSYNC_SANITIZE=ON)

echo "== build (warnings are errors)"
BUILD_DIR=build bash scripts/build.sh -DSLOTSYNC_WERROR=ON -DSLOTSYNC_TESTS=ON -DSLOTSYNC_SANITIZE=OFF

# The builds of the later stages (the other configurations, ASan+UBSan, the
# fuzz targets) compile in the background at the lowest priority while the
# tests run: the whole-system suites' guests leave part of the two cores idle,
# and a build at nice 19 takes it without slowing them (a U-Boot boot: 69.5 s
# beside one, 68.2 s alone).  Their own session, so that an early exit stops
# them; their output in build/background-builds.log.
BG_LOG=$PWD/build/background-builds.log
setsid -w nice -n 19 bash -c 'set -e
	bash scripts/build-configs.sh --build-only
	BUILD_DIR=build-asan bash scripts/build.sh "$@"
	bash scripts/fuzz.sh --build-only' background-builds "${ASAN_CONFIG[@]}" >"$BG_LOG" 2>&1 &
BG_PID=$!
trap 'kill -- -$BG_PID 2>/dev/null || true' EXIT
background_builds_done() {
	if ! wait "$BG_PID"; then
		cat "$BG_LOG"
		echo "the background builds failed (above)" >&2
		exit 1
	fi
	trap - EXIT
}
# first: the system-uboot suite runs this arm64 build on its device
echo "== arm64: cross-build and unit tests under qemu-user"
bash scripts/cross-build.sh --test

echo "== tests"
(cd build && ctest --output-on-failure -j2)

background_builds_done
echo "== the other configurations: build server only, minimal device, CMake 3.22"
bash scripts/build-configs.sh

echo "== tests under AddressSanitizer + UndefinedBehaviorSanitizer"
BUILD_DIR=build-asan bash scripts/build.sh "${ASAN_CONFIG[@]}"
# (the VM and system suites run once, above: the guests get this build's plain binary;
# so do the fleet and the docs' walk-through, which reach no code the others do not;
# the kill tests of the delta objects, of each delta codec and of the assembly
# cut fewer times here, their full counts ran above: enough to go through each
# resume path under the sanitizers; the install kill test keeps its 50: fewer
# leave some step of an install uncut)
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 \
	SLOTSYNC_DELTA_KILL_TRIALS=${SLOTSYNC_DELTA_KILL_TRIALS:-12} \
	SLOTSYNC_DELTA_CODEC_KILL_TRIALS=${SLOTSYNC_DELTA_CODEC_KILL_TRIALS:-4} \
	SLOTSYNC_RESUME_KILL_TRIALS=${SLOTSYNC_RESUME_KILL_TRIALS:-15} \
	SLOTSYNC_CRASH_TRIALS=${SLOTSYNC_CRASH_TRIALS:-8} \
	ctest --output-on-failure -j2 -LE 'vm|system|fleet|docs')

echo "== fuzzing"
bash scripts/fuzz.sh
echo "== all tests passed"

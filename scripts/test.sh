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

# The later stages run in the background at the lowest priority, in their own
# session (so that an early exit stops them): first their builds (the other
# configurations, ASan+UBSan, the fuzz targets), while the tests below run;
# then, once the tests but the whole-system suites have passed, the other
# configurations' unit tests and the ASan+UBSan tests.  Those run beside the
# whole-system suites, whose guests (TCG) keep the two cores only about 58%
# busy, and end within the first suite (about 6 minutes).  At nice 19 they
# take most of the idle part, though not without a cost: builds beside a
# U-Boot boot slowed it little (69.5 s, 68.2 s alone), but these tests made
# an install in the GRUB guest take 23 s against 13-14 s alone.  So the suite
# they run beside is the evil maid, which has no power cuts timed against an
# install's length (tests/CMakeLists.txt), and the power cuts of the others
# follow the latest install's length.  Output:
# build/background-builds.log (shown if a build fails),
# build/background-tests.log (shown once they end).
BG_LOG=$PWD/build/background-builds.log
BG_TESTS_LOG=$PWD/build/background-tests.log
BG_GO=$PWD/build/background-tests.go
rm -f "$BG_GO" "$BG_TESTS_LOG"
# (the VM and system suites run once, in the foreground: the guests get the
# plain build's binary; so do the fleet and the docs' walk-through, which reach
# no code the others do not; the kill tests of the delta objects, of each delta
# codec and of the assembly cut fewer times under the sanitizers, their full
# counts run in the plain build: enough to go through each resume path under
# the sanitizers; the install kill test keeps its 50: fewer leave some step of
# an install uncut)
setsid -w nice -n 19 bash -c 'set -e
	go=$1 tests_log=$2; shift 2
	bash scripts/build-configs.sh --build-only
	BUILD_DIR=build-asan bash scripts/build.sh "$@"
	bash scripts/fuzz.sh --build-only
	echo "background builds: done"
	while [ ! -e "$go" ]; do sleep 2; done
	exec >"$tests_log" 2>&1
	echo "== the other configurations: build server only, minimal device, CMake 3.22"
	bash scripts/build-configs.sh
	echo "== tests under AddressSanitizer + UndefinedBehaviorSanitizer"
	cd build-asan
	ASAN_OPTIONS=detect_leaks=1 \
	SLOTSYNC_DELTA_KILL_TRIALS=${SLOTSYNC_DELTA_KILL_TRIALS:-12} \
	SLOTSYNC_DELTA_CODEC_KILL_TRIALS=${SLOTSYNC_DELTA_CODEC_KILL_TRIALS:-4} \
	SLOTSYNC_RESUME_KILL_TRIALS=${SLOTSYNC_RESUME_KILL_TRIALS:-15} \
	SLOTSYNC_CRASH_TRIALS=${SLOTSYNC_CRASH_TRIALS:-8} \
		ctest --output-on-failure -j2 -LE "vm|system|fleet|docs" -E "^it_publish$"' \
	background "$BG_GO" "$BG_TESTS_LOG" "${ASAN_CONFIG[@]}" >"$BG_LOG" 2>&1 &
BG_PID=$!
trap 'kill -- -$BG_PID 2>/dev/null || true' EXIT

# first: the system-uboot suite runs this arm64 build on its device
echo "== arm64: cross-build and unit tests under qemu-user"
bash scripts/cross-build.sh --test

echo "== tests but the whole-system suites"
(cd build && ctest --output-on-failure -j2 -LE '^system')

touch "$BG_GO"
echo "== the whole-system suites (beside them, at nice 19: the other configurations' and the ASan+UBSan tests)"
(cd build && ctest --output-on-failure -L '^system')

echo "== the other configurations' and the ASan+UBSan tests (run beside the whole-system suites)"
waited=$SECONDS
if ! wait "$BG_PID"; then
	if [ -e "$BG_TESTS_LOG" ]; then
		cat "$BG_TESTS_LOG"
		echo "the other configurations' or the ASan+UBSan tests failed (above)" >&2
	else
		cat "$BG_LOG"
		echo "the background builds failed (above)" >&2
	fi
	exit 1
fi
trap - EXIT
cat "$BG_TESTS_LOG"
if [ $((SECONDS - waited)) -gt 0 ]; then
	echo "(they ended $((SECONDS - waited)) s after the whole-system suites)"
else
	echo "(they had ended before the whole-system suites did)"
fi
# it_publish starts a one-node Ceph (radosgw) whose daemons keep time
# among themselves: at nice 19 beside a guest it once did not come up
# within its limit (0 of 1 OSD up after 30 s), so it runs here, alone
echo "== the S3 publish test under AddressSanitizer + UndefinedBehaviorSanitizer, alone"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -R '^it_publish$')

echo "== fuzzing"
bash scripts/fuzz.sh
echo "== all tests passed"

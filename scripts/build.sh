#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Configures and builds slotsync into BUILD_DIR (default: build/).
# Extra arguments go to cmake's configure step (e.g. -DSLOTSYNC_SANITIZE=ON).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo} "$@" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"

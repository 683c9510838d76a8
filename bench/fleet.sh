#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A fleet behind a CDN: N devices (default 1000; real `slotsync install`
# processes with file-backed slots, in waves of FLEET_CONC, default 10) update
# the sample image v1 -> v2 with delta objects through an edge nginx
# (HTTP/2 + TLS, proxy_cache with proxy_cache_lock) in front of an origin
# nginx serving the published store, all on 127.0.0.1; the driver is
# tests/integration/fleet.sh, which it_fleet runs with N=50.
#   bash bench/fleet.sh [N] [OUT]
# FLEET_MAX_SECONDS (default 780): no new wave after that many seconds; the
# figures are then of the devices run, and say so.
# Prints the figures and a markdown table row, and appends the row to OUT
# (default /var/tmp/slotsync-bench-fleet.md, with the header when new).
# Exits 1 when a device did not end byte-exact.
source "$(dirname "$0")/common.sh"
N=${1:-1000}
OUT=${2:-/var/tmp/slotsync-bench-fleet.md}
export SLOTSYNC_GEN=$GEN SLOTSYNC_BIN=$ROOT/build/slotsync SLOTSYNC_BOOTCTL=$ROOT/build/slotsync-bootctl SLOTSYNC_SOURCE_DIR=$ROOT
source "$ROOT/tests/integration/lib.sh"
source "$ROOT/tests/integration/fleet.sh"
machine_facts
fleet_store
fleet_servers
FLEET_MAX_SECONDS=${FLEET_MAX_SECONDS:-780}
fleet_run "$N"
[ "$FLEET_N" -eq "$N" ] || echo "# stopped early: $FLEET_N of $N devices run"
N=$FLEET_N
fleet_report "$N"
[ -s "$OUT" ] || {
	echo "| devices | wave | byte-exact | origin requests / distinct object (immutable only) | edge CPU ms / device | edge bytes / device | requests / device | install p50 | install p95 | wall |"
	echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
} >"$OUT"
row="| $N | $FLEET_CONC | $FLEET_EXACT | $FLEET_ORIGIN_RATIO ($FLEET_ORIGIN_REQ / $FLEET_OBJECTS; $FLEET_IMM_REQ / $FLEET_IMM_OBJECTS) | $FLEET_CPU_MS_PER_DEV | $FLEET_BYTES_PER_DEV | $FLEET_REQ_PER_DEV | $FLEET_P50_MS ms | $FLEET_P95_MS ms | $FLEET_WALL s |"
echo "$row" >>"$OUT"
echo
cat "$OUT"
[ "$FLEET_EXACT" -eq "$N" ]

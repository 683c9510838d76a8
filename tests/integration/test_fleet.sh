#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A fleet behind a CDN (tests/integration/fleet.sh): SLOTSYNC_FLEET_DEVICES
# (default 50) real `slotsync install` processes, in waves of 10, update
# v1 -> v2 with delta objects through an edge nginx (HTTP/2 + TLS,
# proxy_cache with proxy_cache_lock) in front of an origin nginx serving the
# published store.  Every device ends byte-exact; the edge asks the origin
# for each object about once however many devices ask it (at most 1.05
# requests per distinct object); every device used the delta objects (its
# store served the delta index and every delta object, no chunk, and far
# fewer bytes than the image).  The figures are printed; bench/fleet.sh runs
# the same with N=1000.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fleet.sh"
N=${SLOTSYNC_FLEET_DEVICES:-50}
fleet_store
fleet_servers
fleet_run "$N"
fleet_report "$N"
check "$N devices updated through the edge: every one byte-exact and exited 0" \
	test "$FLEET_EXACT $FLEET_OK" = "$N $N"
check "the origin saw at most 1.05 requests per distinct object ($FLEET_ORIGIN_REQ for $FLEET_OBJECTS)" \
	test "$(echo "$FLEET_ORIGIN_REQ * 100 <= $FLEET_OBJECTS * 105" | bc)" = 1
check "... and served each object the devices asked for (the bundle, the delta index, $FLEET_SDOB delta objects)" \
	test "$FLEET_OBJECTS" -eq $((FLEET_SDOB + 2))
check "every device used the delta objects: its store served the delta index and the $FLEET_SDOB objects, nothing else" \
	test "$FLEET_DELTA_DEVS" -eq "$N"
check "... the edge served $FLEET_SDOB_REQ delta object requests ($N x $FLEET_SDOB) and no chunk" \
	test "$FLEET_SDOB_REQ $FLEET_CHUNK_REQ" = "$((N * FLEET_SDOB)) 0"
check "... $FLEET_BYTES_PER_DEV bytes sent per device, at most a third of the $FLEET_IMG_BYTES-byte image" \
	test $((FLEET_BYTES_PER_DEV * 3)) -le "$FLEET_IMG_BYTES"
finish

#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Each shared library exports exactly what its installed headers declare
# (functions marked SLOTSYNC_EXPORT), nothing private (io_*, gen_*, ...), and
# libslotsync-boot stands on libslotsync-common alone: no curl, tss2 or
# cryptsetup behind it.
source "$(dirname "$0")/lib.sh"
: "${SLOTSYNC_BUILD_DIR:?set by ctest}"
: "${SLOTSYNC_SOURCE_DIR:?set by ctest}"
H=$SLOTSYNC_SOURCE_DIR/include/slotsync

# The functions a set of headers declares, one per line, sorted.
declared() {
	grep -h '^SLOTSYNC_EXPORT' "$@" | grep -oE '\bslotsync_[a-z0-9_]+\(' | tr -d '(' | sort -u
}
# The functions a library exports, sorted.
exported() {
	nm -D --defined-only "$SLOTSYNC_BUILD_DIR/lib$1.so" | awk '$2 == "T" || $2 == "W" { print $3 }' | sort -u
}

common_h=("$H/error.h" "$H/log.h" "$H/digest.h")
boot_h=("$H/boot.h")
mapfile -t engine_h < <(ls "$H"/*.h | grep -vE '/(error|log|digest|boot|export)\.h$')

check "no public declaration lacks SLOTSYNC_EXPORT" \
	bash -c "! grep -nE '^(const |struct |enum |unsigned )?[a-z_0-9]+[ *]+slotsync_[a-z0-9_]+\(' '$H'/*.h"
check "libslotsync-common exports what error.h, log.h and digest.h declare" \
	diff <(declared "${common_h[@]}") <(exported slotsync-common)
check "libslotsync-boot exports what boot.h declares" diff <(declared "${boot_h[@]}") <(exported slotsync-boot)
if [ -f "$SLOTSYNC_BUILD_DIR/libslotsync.so" ]; then
	check "libslotsync exports what its headers declare" diff <(declared "${engine_h[@]}") <(exported slotsync)
fi
check "libslotsync-boot needs libslotsync-common, not libslotsync" \
	bash -c "ldd '$SLOTSYNC_BUILD_DIR/libslotsync-boot.so' | grep -q libslotsync-common && ! ldd '$SLOTSYNC_BUILD_DIR/libslotsync-boot.so' | grep -qE 'libslotsync\.so'"
check "libslotsync-boot pulls in neither curl nor tss2 nor cryptsetup" \
	bash -c "! ldd '$SLOTSYNC_BUILD_DIR/libslotsync-boot.so' | grep -qE 'libcurl|libtss2|libcryptsetup'"
finish

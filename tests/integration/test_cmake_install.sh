#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# `cmake --install` puts the programs, the shared library, its headers and a
# pkg-config file into the prefix, and a program built against the installed
# library with pkg-config runs.
source "$(dirname "$0")/lib.sh"
: "${SLOTSYNC_BUILD_DIR:?set by ctest}"
P=$T/prefix
cmake --install "$SLOTSYNC_BUILD_DIR" --prefix "$P" >/dev/null
check "slotsync-gen installed" test -x "$P/bin/slotsync-gen"
check "slotsync installed" test -x "$P/bin/slotsync"
check "slotsync-bootctl installed" test -x "$P/bin/slotsync-bootctl"
check "headers installed" test -f "$P/include/slotsync/index.h" -a -f "$P/include/slotsync/version.h"
pc=$(find "$P" -name libslotsync.pc | head -n1)
check "pkg-config file installed" test -n "$pc"
check "installed slotsync-gen runs" "$P/bin/slotsync-gen" --version
cat >"$T/user.c" <<'C'
#include <slotsync/index.h>
#include <stdio.h>
int main(int argc, char **argv)
{
	struct slotsync_error err = { 0 };
	struct slotsync_index *idx;
	if (slotsync_index_read_file(argv[1], &idx, &err) < 0) {
		fprintf(stderr, "%s\n", slotsync_error_message(&err));
		return 1;
	}
	printf("%zu chunks\n", idx->n_chunks);
	slotsync_index_free(idx);
	return 0;
}
C
export PKG_CONFIG_PATH=$(dirname "$pc")
# a library built with sanitizers needs them in the program too
san=()
[ "${SLOTSYNC_SANITIZE:-OFF}" = ON ] && san=(-fsanitize=address,undefined)
cc "${san[@]}" -o "$T/user" "$T/user.c" $(pkg-config --cflags --libs libslotsync)
random_file "$T/img" 2 install
"$P/bin/slotsync-gen" make "$T/img" "$T/img.caibx" >/dev/null
LD_LIBRARY_PATH=$(dirname "$(find "$P" -name 'libslotsync.so' | head -n1)") "$T/user" "$T/img.caibx" >"$T/user.out"
check "a program linked with pkg-config against the installed library reads an index" grep -qE '^[0-9]+ chunks$' "$T/user.out"
cat >"$T/boot.c" <<'C'
#include <slotsync/boot.h>
#include <stdio.h>
int main(int argc, char **argv)
{
	struct slotsync_boot_config cfg;
	struct slotsync_boot_state st;
	struct slotsync_error err = { 0 };
	slotsync_boot_config_load(NULL, &cfg, &err);
	snprintf(cfg.env, sizeof(cfg.env), "%s", argv[1]);
	if (slotsync_boot_init(&cfg, 0, &err) < 0 || slotsync_boot_switch(&cfg, 1, 2, &err) < 0 ||
	    slotsync_boot_load(&cfg, &st, &err) < 0) {
		fprintf(stderr, "%s\n", slotsync_error_message(&err));
		return 1;
	}
	printf("B tries %d\n", st.slot[1].tries);
	return 0;
}
C
cc "${san[@]}" -o "$T/boot" "$T/boot.c" $(pkg-config --cflags --libs libslotsync-boot)
LD_LIBRARY_PATH=$(dirname "$(find "$P" -name 'libslotsync.so' | head -n1)") "$T/boot" "$T/bootstate" >"$T/boot.out"
check "a program linked with pkg-config against libslotsync-boot switches slots" grep -qx 'B tries 2' "$T/boot.out"
check "libslotsync-boot's pkg-config needs libslotsync-common, not libslotsync" \
	bash -c "pkg-config --print-requires libslotsync-boot | grep -qx libslotsync-common"
cat >"$T/common.c" <<'C'
#include <slotsync/digest.h>
#include <slotsync/error.h>
#include <slotsync/log.h>
#include <stdio.h>
int main(int argc, char **argv)
{
	struct slotsync_error err = { 0 };
	uint8_t d[SLOTSYNC_DIGEST_BYTES];
	char hex[SLOTSYNC_DIGEST_HEX_BYTES];
	uint64_t size;
	slotsync_log_set_level(SLOTSYNC_LOG_ERROR);
	if (slotsync_digest_file(SLOTSYNC_DIGEST_SHA256, argv[1], 0, d, &size, &err) < 0) {
		fprintf(stderr, "%s\n", slotsync_error_message(&err));
		return 1;
	}
	printf("%s\n", slotsync_digest_to_hex(d, hex));
	return slotsync_digest_file(SLOTSYNC_DIGEST_SHA256, "/nonexistent", 0, d, NULL, &err) < 0 ? 0 : 1;
}
C
cc "${san[@]}" -o "$T/common" "$T/common.c" $(pkg-config --cflags --libs libslotsync-common)
LD_LIBRARY_PATH=$(dirname "$(find "$P" -name 'libslotsync-common.so' | head -n1)") "$T/common" "$T/img" >"$T/common.out"
check "a program linked with pkg-config against libslotsync-common digests a file as sha256sum does" \
	test "$(cat "$T/common.out")" = "$(sha256sum <"$T/img" | cut -d' ' -f1)"
finish

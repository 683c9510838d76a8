/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fixtures shared by the unit tests (as RAUC's test/common.c): a small image
 * with its index and chunk store, a throwaway signing CA, a tiny HTTP/1.1
 * server on 127.0.0.1, and a device made of files (slot files, a boot state
 * file, a kernel command line, system.conf).  Each test makes what it needs in
 * a temp folder of its own (test_mkdtemp) and frees it at the end. */
#ifndef SLOTSYNC_TEST_FIXTURES_H
#define SLOTSYNC_TEST_FIXTURES_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "slotsync/index.h"
#include "test_util.h"

/* dir/name into out (PATH_MAX). */
void fx_path(char out[PATH_MAX], const char *dir, const char *name);

/* Reads a whole file (malloc'd, *len set); NULL if it cannot. */
uint8_t *fx_read_file(const char *path, size_t *len);

/* Whether the first len bytes of path are exactly data. */
int fx_file_equals(const char *path, const uint8_t *data, size_t len);

/* An image of len deterministic bytes from seed: dir/NAME.img, its index
 * dir/NAME.caibx, and (store != NULL) its chunks added to that store. */
struct fx_image {
	char img[PATH_MAX], idx[PATH_MAX];
	uint8_t *data;
	size_t len;
	struct slotsync_index *index;
};
void fx_image_make(struct fx_image *im, const char *dir, const char *name, size_t len, uint64_t seed,
		   const char *store);
/* The same for bytes the caller gives (copied). */
void fx_image_make_from(struct fx_image *im, const char *dir, const char *name, const uint8_t *data, size_t len,
			const char *store);
void fx_image_free(struct fx_image *im);

/* The path of chunk i of the image in store (PATH_MAX). */
void fx_chunk_path(char out[PATH_MAX], const char *store, const struct slotsync_index *idx, size_t i);

/* A throwaway fleet CA (ca.pem) and a code-signing certificate it issued
 * (signer.pem, signer.key), in dir; other: a second CA that signed nothing. */
struct fx_ca {
	char ca[PATH_MAX], ca_key[PATH_MAX], signer[PATH_MAX], signer_key[PATH_MAX];
	char other_ca[PATH_MAX];
};
void fx_ca_make(struct fx_ca *ca, const char *dir);

/* A tiny HTTP/1.1 server: a forked child on 127.0.0.1 serving files under root
 * (GET, "Range: bytes=N-" honoured, one request per connection).  Rules are
 * applied in order to the first `times` requests whose path is `path` (NULL:
 * any): answer `status` with no body, or (status 0) 200 with body_file's bytes
 * instead of the file's.  A hostile rule adds a flag to status: FX_HTTP_ENDLESS,
 * a body that never ends (sent until the client cuts the connection);
 * FX_HTTP_DRIP, the answer (the file's, with status 0) at 2 bytes per second.
 * Every request is logged to log as "PATH STATUS\n". */
#define FX_HTTP_ENDLESS 0x10000
#define FX_HTTP_DRIP 0x20000
#define FX_HTTP_RULES_MAX 4
struct fx_http_rule {
	const char *path;
	int times;
	int status;
	const char *body_file;
};
struct fx_http {
	pid_t pid;
	int port;
	char url[64];          /* http://127.0.0.1:PORT */
	char log[PATH_MAX];
};
void fx_http_start(struct fx_http *h, const char *root, const struct fx_http_rule *rules, size_t n_rules,
		   const char *log);
void fx_http_stop(struct fx_http *h);
/* Requests for path in the log (NULL: all), and of those answered with status
 * (0: any status). */
int fx_http_count(const struct fx_http *h, const char *path, int status);

/* A device made of files in dir: slot-a.img (a copy of slot_a_image, or
 * empty), slot-b.img of slot_bytes, state/, a kernel command line saying
 * slotsync.slot=A, and system.conf with the file boot backend, the keyring
 * and the stores given (extra: lines appended to [update]). */
struct fx_device {
	char dir[PATH_MAX], conf[PATH_MAX], slot_a[PATH_MAX], slot_b[PATH_MAX], state[PATH_MAX];
	char boot_env[PATH_MAX], cmdline[PATH_MAX];
};
void fx_device_make(struct fx_device *d, const char *dir, const char *compatible, const char *slot_a_image,
		    size_t slot_bytes, const char *keyring, const char *store_url, const char *extra);
/* The slot (0: A, 1: B) the kernel command line names from now on. */
void fx_device_boot_into(const struct fx_device *d, int slot);



/* A signed bundle of image (chunked into store) at out: version, compatible,
 * signed by ca's signer. */
void fx_bundle_make(const struct fx_ca *ca, const char *image, const char *store, const char *version,
		    const char *compatible, const char *out);
#endif

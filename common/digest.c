/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Chunk digests with OpenSSL 3.  The EVP_MD objects are fetched once: an implicit
 * fetch on every call costs more than hashing a small chunk. */
#include "slotsync/digest.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "io.h"

static EVP_MD *digest_md[2];
static pthread_once_t digest_once = PTHREAD_ONCE_INIT;

static void digest_init(void)
{
	digest_md[SLOTSYNC_DIGEST_SHA256] = EVP_MD_fetch(NULL, "SHA2-256", NULL);
	digest_md[SLOTSYNC_DIGEST_SHA512_256] = EVP_MD_fetch(NULL, "SHA2-512/256", NULL);
}

const char *slotsync_digest_name(enum slotsync_digest_type type)
{
	return type == SLOTSYNC_DIGEST_SHA512_256 ? "SHA-512/256" : "SHA-256";
}

int slotsync_digest(enum slotsync_digest_type type, const void *buf, size_t len, uint8_t out[SLOTSYNC_DIGEST_BYTES])
{
	unsigned int out_len = 0;

	pthread_once(&digest_once, digest_init);
	if ((unsigned)type > SLOTSYNC_DIGEST_SHA512_256)
		return -EINVAL;
	if (!digest_md[type])
		return -ENOSYS;
	if (!EVP_Digest(buf, len, out, &out_len, digest_md[type], NULL) || out_len != SLOTSYNC_DIGEST_BYTES)
		return -EIO;
	return 0;
}

int slotsync_digest_file(enum slotsync_digest_type type, const char *path, uint64_t len,
			 uint8_t out[SLOTSYNC_DIGEST_BYTES], uint64_t *size, struct slotsync_error *err)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t *buf = malloc(1u << 20);
	uint64_t done = 0;
	int fd = -1, r = 0;

	pthread_once(&digest_once, digest_init);
	if ((unsigned)type > SLOTSYNC_DIGEST_SHA512_256 || !digest_md[type]) {
		r = slotsync_error_set(err, -EINVAL, "no such digest");
		goto out;
	}
	if (!ctx || !buf || EVP_DigestInit_ex(ctx, digest_md[type], NULL) != 1) {
		r = slotsync_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = slotsync_error_set_errno(err, -errno, "cannot open %s", path);
		goto out;
	}
	while (!len || done < len) {
		size_t want = 1u << 20;
		ssize_t n;

		if (len && len - done < want)
			want = (size_t)(len - done);
		n = io_read_full(fd, buf, want);
		if (n < 0) {
			r = slotsync_error_set_errno(err, (int)n, "cannot read %s", path);
			goto out;
		}
		if (n == 0) {
			if (len)
				r = slotsync_error_set(err, -EIO, "%s ends after %" PRIu64 " bytes, not %" PRIu64, path,
						       done, len);
			break;
		}
		EVP_DigestUpdate(ctx, buf, (size_t)n);
		done += (uint64_t)n;
	}
	if (r == 0)
		EVP_DigestFinal_ex(ctx, out, NULL);
	if (size)
		*size = done;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	EVP_MD_CTX_free(ctx);
	return r;
}

char *slotsync_digest_to_hex(const uint8_t id[SLOTSYNC_DIGEST_BYTES], char hex[SLOTSYNC_DIGEST_HEX_BYTES])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < SLOTSYNC_DIGEST_BYTES; i++) {
		hex[2 * i] = digits[id[i] >> 4];
		hex[2 * i + 1] = digits[id[i] & 15];
	}
	hex[2 * SLOTSYNC_DIGEST_BYTES] = '\0';
	return hex;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int slotsync_digest_from_hex(const char *hex, uint8_t id[SLOTSYNC_DIGEST_BYTES])
{
	for (int i = 0; i < SLOTSYNC_DIGEST_BYTES; i++) {
		int hi = hex_value(hex[2 * i]);
		int lo = hi < 0 ? -1 : hex_value(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		id[i] = (uint8_t)(hi << 4 | lo);
	}
	return hex[2 * SLOTSYNC_DIGEST_BYTES] == '\0' ? 0 : -EINVAL;
}

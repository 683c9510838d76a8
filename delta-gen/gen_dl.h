/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libcurl and libcryptsetup for slotsync-gen, loaded when a command first needs
 * them: S3 publishing (libcurl) and dm-verity hash trees (libcryptsetup).
 * Linked, they and the 30-odd libraries they pull in cost every run of
 * slotsync-gen about 11 ms of start-up (mapping and relocating them), which is
 * a tenth of a `make` of a 40 MB image.  The device links them as usual. */
#ifndef SLOTSYNC_GEN_DL_H
#define SLOTSYNC_GEN_DL_H

#include <curl/curl.h>

#include "slotsync/error.h"
#include "slotsync/features.h"

struct gen_curl {
	CURLcode (*global_init)(long flags);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *c, CURLoption option, ...);
	CURLcode (*easy_perform)(CURL *c);
	CURLcode (*easy_getinfo)(CURL *c, CURLINFO info, ...);
	void (*easy_cleanup)(CURL *c);
	const char *(*easy_strerror)(CURLcode code);
	CURLM *(*multi_init)(void);
	CURLMcode (*multi_setopt)(CURLM *m, CURLMoption option, ...);
	CURLMcode (*multi_add_handle)(CURLM *m, CURL *c);
	CURLMcode (*multi_remove_handle)(CURLM *m, CURL *c);
	CURLMcode (*multi_perform)(CURLM *m, int *running);
	CURLMcode (*multi_poll)(CURLM *m, struct curl_waitfd extra[], unsigned int n, int timeout_ms, int *ret);
	CURLMsg *(*multi_info_read)(CURLM *m, int *left);
	CURLMcode (*multi_cleanup)(CURLM *m);
	struct curl_slist *(*slist_append)(struct curl_slist *list, const char *s);
	void (*slist_free_all)(struct curl_slist *list);
};

/* libcurl, loaded and curl_global_init'ed once; NULL (err says why) when it
 * cannot be loaded. */
const struct gen_curl *gen_curl(struct slotsync_error *err);

#if SLOTSYNC_HAVE_VERITY
#include <libcryptsetup.h>

struct gen_cryptsetup {
	int (*init)(struct crypt_device **cd, const char *device);
	void (*set_log_callback)(struct crypt_device *cd, void (*log)(int level, const char *msg, void *usrptr),
				 void *usrptr);
	int (*format)(struct crypt_device *cd, const char *type, const char *cipher, const char *cipher_mode,
		      const char *uuid, const char *volume_key, size_t volume_key_size, void *params);
	int (*volume_key_get)(struct crypt_device *cd, int keyslot, char *volume_key, size_t *volume_key_size,
			      const char *passphrase, size_t passphrase_size);
	void (*free)(struct crypt_device *cd);
};

/* libcryptsetup, loaded once; NULL (err says why) when it cannot be loaded. */
const struct gen_cryptsetup *gen_cryptsetup(struct slotsync_error *err);
#endif

#endif

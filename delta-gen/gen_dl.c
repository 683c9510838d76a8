/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Loading libcurl and libcryptsetup when first needed: see gen_dl.h. */
#include "gen_dl.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>

/* The sonames slotsync-gen is built against: libcurl's has been 4 since 2006,
 * libcryptsetup's 12 since 2.0. */
#define CURL_SONAME "libcurl.so.4"
#define CRYPTSETUP_SONAME "libcryptsetup.so.12"

struct sym {
	const char *name;
	size_t offset;
};

static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;

/* Loads soname once and fills the function pointers of table at syms'
 * offsets, then runs init (if any).  Returns table, or NULL (err says why);
 * a failed load is tried again at the next call. */
static const void *load_once(int *loaded, const char *soname, const char *what, void *table, const struct sym *syms,
			     size_t n, int (*init)(void *table, struct slotsync_error *err), struct slotsync_error *err)
{
	const void *r = table;
	void *h = NULL;

	pthread_mutex_lock(&load_lock);
	if (*loaded)
		goto out;
	h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		slotsync_error_set(err, -ENOENT, "%s needs %s, which cannot be loaded: %s", what, soname, dlerror());
		r = NULL;
		goto out;
	}
	for (size_t i = 0; i < n && r; i++) {
		void *f = dlsym(h, syms[i].name);
		if (!f) {
			slotsync_error_set(err, -ENOENT, "%s has no %s (%s needs it)", soname, syms[i].name, what);
			r = NULL;
		}
		*(void **)((char *)table + syms[i].offset) = f;
	}
	if (r && init && init(table, err) < 0)
		r = NULL;
	if (r)
		*loaded = 1; /* kept loaded for the rest of the run */
	else
		dlclose(h);
out:
	pthread_mutex_unlock(&load_lock);
	return r;
}

#define SYM(type, prefix, field) { prefix #field, offsetof(type, field) }
#define N(a) (sizeof(a) / sizeof((a)[0]))

static int curl_start(void *table, struct slotsync_error *err)
{
	const struct gen_curl *c = table;

	if (c->global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return slotsync_error_set(err, -EIO, "libcurl cannot be initialized");
	return 0;
}

const struct gen_curl *gen_curl(struct slotsync_error *err)
{
	static const struct sym syms[] = {
		SYM(struct gen_curl, "curl_", global_init),
		SYM(struct gen_curl, "curl_", easy_init),
		SYM(struct gen_curl, "curl_", easy_setopt),
		SYM(struct gen_curl, "curl_", easy_perform),
		SYM(struct gen_curl, "curl_", easy_getinfo),
		SYM(struct gen_curl, "curl_", easy_cleanup),
		SYM(struct gen_curl, "curl_", easy_strerror),
		SYM(struct gen_curl, "curl_", multi_init),
		SYM(struct gen_curl, "curl_", multi_setopt),
		SYM(struct gen_curl, "curl_", multi_add_handle),
		SYM(struct gen_curl, "curl_", multi_remove_handle),
		SYM(struct gen_curl, "curl_", multi_perform),
		SYM(struct gen_curl, "curl_", multi_poll),
		SYM(struct gen_curl, "curl_", multi_info_read),
		SYM(struct gen_curl, "curl_", multi_cleanup),
		SYM(struct gen_curl, "curl_", slist_append),
		SYM(struct gen_curl, "curl_", slist_free_all),
	};
	static struct gen_curl api;
	static int loaded;

	return load_once(&loaded, CURL_SONAME, "S3 publishing", &api, syms, N(syms), curl_start, err);
}

#if SLOTSYNC_HAVE_VERITY
const struct gen_cryptsetup *gen_cryptsetup(struct slotsync_error *err)
{
	static const struct sym syms[] = {
		SYM(struct gen_cryptsetup, "crypt_", init),
		SYM(struct gen_cryptsetup, "crypt_", set_log_callback),
		SYM(struct gen_cryptsetup, "crypt_", format),
		SYM(struct gen_cryptsetup, "crypt_", volume_key_get),
		SYM(struct gen_cryptsetup, "crypt_", free),
	};
	static struct gen_cryptsetup api;
	static int loaded;

	return load_once(&loaded, CRYPTSETUP_SONAME, "a dm-verity hash tree", &api, syms, N(syms), NULL, err);
}
#endif

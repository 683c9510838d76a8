/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The install state machine on a device made of files (fixtures.c: slot
 * files, the file boot backend, a store on a tiny HTTP server): an install
 * writes slot B byte-exact and switches to it; after the reboot, mark good
 * settles it (done, B good, the device state updated) and mark bad fails it
 * (A boots again, the release never again); a tampered bundle or one for
 * other hardware leaves slot B and the boot state as they were; status says
 * all of it. */
#include <check.h>
#include <errno.h>
#include <json-c/json.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixtures.h"
#include "signer.h"
#include "slotsync/features.h"
#include "slotsync/install.h"

#define IMG_LEN (1u << 20)
#define SLOT_LEN (4u << 20)

struct ctx {
	char *dir, www[PATH_MAX], store[PATH_MAX], bundle[PATH_MAX], devdir[PATH_MAX], log[PATH_MAX], url[128];
	struct fx_ca ca;
	struct fx_image v1, v2;
	struct fx_http http;
	struct fx_device dev;
	struct slotsync_config cfg;
	struct slotsync_install_options o;
	struct slotsync_install_record rec;
	struct slotsync_error err;
};

static void ctx_make_in(struct ctx *c, const char *compatible, const char *device_dir)
{
	uint8_t *data = malloc(IMG_LEN);

	memset(c, 0, sizeof(*c));
	c->dir = test_mkdtemp();
	fx_path(c->www, c->dir, "www");
	fx_path(c->store, c->www, "store");
	fx_path(c->bundle, c->dir, "v2.bundle");
	fx_path(c->devdir, c->dir, device_dir);
	fx_path(c->log, c->dir, "requests.log");
	ck_assert_int_eq(mkdir(c->www, 0755), 0);
	fx_ca_make(&c->ca, c->dir);
	fx_image_make(&c->v1, c->dir, "v1", IMG_LEN, 41, NULL);
	memcpy(data, c->v1.data, IMG_LEN);
	test_fill_random(data + 4096, 100 << 10, 42);
	fx_image_make_from(&c->v2, c->dir, "v2", data, IMG_LEN, NULL);
	free(data);
	fx_bundle_make(&c->ca, c->v2.img, c->store, "2.0", "radio-x86", c->bundle);
	fx_http_start(&c->http, c->www, NULL, 0, c->log);
	snprintf(c->url, sizeof(c->url), "%s/store", c->http.url);
	fx_device_make(&c->dev, c->devdir, compatible, c->v1.img, SLOT_LEN, c->ca.ca, c->url, NULL);
	ck_assert_msg(slotsync_config_load(c->dev.conf, &c->cfg, &c->err) == 0, "%s", c->err.msg);
	/* provisioned as a factory does: A good and first */
	ck_assert_msg(slotsync_boot_init(&c->cfg.boot, 0, &c->err) == 0, "%s", c->err.msg);
	c->o.cfg = &c->cfg;
	c->o.bundle = c->bundle;
}

static void ctx_make(struct ctx *c, const char *compatible)
{
	ctx_make_in(c, compatible, "device");
}

static void ctx_free(struct ctx *c)
{
	fx_http_stop(&c->http);
	fx_image_free(&c->v1);
	fx_image_free(&c->v2);
	test_rmdir(c->dir);
}

static int install(struct ctx *c)
{
	memset(&c->err, 0, sizeof(c->err));
	return slotsync_install(&c->o, &c->rec, &c->err);
}

static void boot_state(struct ctx *c, struct slotsync_boot_state *bs)
{
	struct slotsync_error err = { 0 };

	ck_assert_msg(slotsync_boot_load(&c->cfg.boot, bs, &err) == 0, "%s", err.msg);
}

/* What the bootloader does at the next boot: the chosen slot comes up. */
static int reboot(struct ctx *c)
{
	struct slotsync_error err = { 0 };
	int booted = -1;

	ck_assert_int_eq(slotsync_install_reboot_requested(&c->cfg, &err), 0);
	ck_assert_msg(slotsync_boot_simulate_boot(&c->cfg.boot, &booted, &err) == 0, "%s", err.msg);
	fx_device_boot_into(&c->dev, booted);
	return booted;
}

static void installed_and_switched(struct ctx *c)
{
	struct slotsync_boot_state bs;
	struct slotsync_install_record rec;
	struct slotsync_error err = { 0 };

	ck_assert_msg(install(c) == 0, "%s", c->err.msg);
	ck_assert_int_eq(c->rec.step, SLOTSYNC_STEP_REBOOT);
	ck_assert_int_eq(c->rec.target, 1);
	ck_assert(fx_file_equals(c->dev.slot_b, c->v2.data, IMG_LEN));
	ck_assert(fx_file_equals(c->dev.slot_a, c->v1.data, IMG_LEN)); /* the running slot untouched */
	/* only what v1 lacks came over the network */
	ck_assert_uint_gt(c->rec.bytes_from_seed, IMG_LEN / 2);
	boot_state(c, &bs);
	ck_assert_int_gt(bs.slot[1].priority, bs.slot[0].priority);
	ck_assert_int_eq(bs.slot[1].good, 0);
	ck_assert_int_gt(bs.slot[1].tries, 0);
	/* the journal says so too */
	ck_assert_int_eq(slotsync_install_record_load(&c->cfg, &rec, &err), 0);
	ck_assert_int_eq(rec.step, SLOTSYNC_STEP_REBOOT);
	ck_assert_str_eq(rec.version, "2.0");
}

START_TEST(test_install_then_mark_good)
{
	struct ctx c;
	struct slotsync_boot_state bs;
	struct slotsync_install_record rec;
	struct slotsync_slot_record slots[2];
	struct slotsync_error err = { 0 };
	struct json_object *st, *v;
	char *json;

	ctx_make(&c, "radio-x86");
	installed_and_switched(&c);
	ck_assert_int_eq(reboot(&c), 1);
	ck_assert_msg(slotsync_install_mark(&c.cfg, 1, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(slotsync_install_record_load(&c.cfg, &rec, &err), 0);
	ck_assert_int_eq(rec.step, SLOTSYNC_STEP_DONE);
	boot_state(&c, &bs);
	ck_assert_int_eq(bs.slot[1].good, 1);
	ck_assert_int_gt(bs.slot[1].priority, bs.slot[0].priority);
	ck_assert_int_eq(slotsync_install_slot_records_load(&c.cfg, slots, &err), 0);
	ck_assert_str_eq(slots[1].status, "good");
	ck_assert_str_eq(slots[1].version, "2.0");
	/* status: B booted, good, 2.0; the install done */
	ck_assert_int_eq(slotsync_install_status_json(&c.cfg, &json, &err), 0);
	st = json_tokener_parse(json);
	ck_assert_ptr_nonnull(st);
	ck_assert(json_object_object_get_ex(st, "booted", &v));
	ck_assert_str_eq(json_object_get_string(v), "B");
	ck_assert(json_object_object_get_ex(st, "slots", &v) && json_object_object_get_ex(v, "B", &v));
	ck_assert_str_eq(json_object_get_string(json_object_object_get(v, "version")), "2.0");
	ck_assert_str_eq(json_object_get_string(json_object_object_get(v, "status")), "good");
	ck_assert(json_object_get_boolean(json_object_object_get(v, "good")));
	json_object_put(st);
	free(json);
	ctx_free(&c);
}
END_TEST

/* An install whose delta objects were left out (this device compresses
 * otherwise) keeps the count and the reason in its journal, and the status
 * shows them; an install without says nothing of it. */
START_TEST(test_status_delta_note)
{
	struct ctx c;
	struct slotsync_install_record rec;
	struct slotsync_error err = { 0 };
	struct json_object *o, *st, *inst, *v;
	char path[PATH_MAX + 32], *json;

	ctx_make(&c, "radio-x86");
	installed_and_switched(&c);
	ck_assert_int_eq(slotsync_install_status_json(&c.cfg, &json, &err), 0);
	st = json_tokener_parse(json);
	ck_assert(json_object_object_get_ex(st, "install", &inst));
	ck_assert(!json_object_object_get_ex(inst, "delta_note", &v));
	json_object_put(st);
	free(json);
	snprintf(path, sizeof(path), "%s/install.json", c.cfg.state_dir);
	o = json_object_from_file(path);
	ck_assert_ptr_nonnull(o);
	json_object_object_add(o, "delta_objects_skipped", json_object_new_int64(12));
	json_object_object_add(o, "delta_note",
			       json_object_new_string("this device's liblzma 5.2.5 compresses otherwise than the "
						      "generator's liblzma 5.4.1: 12 objects replaced by their chunks"));
	ck_assert_int_eq(json_object_to_file(path, o), 0);
	json_object_put(o);
	ck_assert_int_eq(slotsync_install_record_load(&c.cfg, &rec, &err), 0);
	ck_assert_uint_eq(rec.delta_objects_skipped, 12);
	ck_assert_ptr_nonnull(strstr(rec.delta_note, "liblzma 5.2.5"));
	ck_assert_int_eq(slotsync_install_status_json(&c.cfg, &json, &err), 0);
	st = json_tokener_parse(json);
	ck_assert(json_object_object_get_ex(st, "install", &inst));
	ck_assert(json_object_object_get_ex(inst, "delta_objects_skipped", &v));
	ck_assert_int_eq(json_object_get_int64(v), 12);
	ck_assert(json_object_object_get_ex(inst, "delta_note", &v));
	ck_assert_ptr_nonnull(strstr(json_object_get_string(v), "12 objects replaced by their chunks"));
	json_object_put(st);
	free(json);
	ctx_free(&c);
}
END_TEST

/* The install journal keeps each further image of the slot group (its name,
 * whether it is done, its bytes): a resumed install reads them back, and the
 * status reports them; an install without further images writes none. */
START_TEST(test_record_images)
{
	struct ctx c;
	struct slotsync_install_record rec;
	struct slotsync_error err = { 0 };
	struct json_object *o, *st, *inst, *v, *im;
	char path[PATH_MAX + 32], *json;

	ctx_make(&c, "radio-x86");
	installed_and_switched(&c);
	snprintf(path, sizeof(path), "%s/install.json", c.cfg.state_dir);
	o = json_object_from_file(path);
	ck_assert_ptr_nonnull(o);
	ck_assert(!json_object_object_get_ex(o, "images", &v));
	ck_assert_int_eq(slotsync_install_record_load(&c.cfg, &rec, &err), 0);
	ck_assert_uint_eq(rec.n_images, 0);
	/* as an install of a two-image group leaves it midway (docs/install.md) */
	v = json_tokener_parse("[{\"name\": \"boot\", \"done\": true, \"bytes_total\": 6291456, \"bytes_done\": 6291456, "
			       "\"bytes_fetched\": 1089181, \"bytes_from_seed\": 5202275},"
			       " {\"name\": \"dtb\", \"done\": false, \"bytes_total\": 65536, \"bytes_done\": 4096, "
			       "\"bytes_fetched\": 4096, \"bytes_from_seed\": 0}]");
	ck_assert_ptr_nonnull(v);
	json_object_object_add(o, "images", v);
	ck_assert_int_eq(json_object_to_file(path, o), 0);
	json_object_put(o);
	memset(&rec, 0, sizeof(rec));
	ck_assert_int_eq(slotsync_install_record_load(&c.cfg, &rec, &err), 0);
	ck_assert_uint_eq(rec.n_images, 2);
	ck_assert_str_eq(rec.images[0].name, "boot");
	ck_assert_int_eq(rec.images[0].done, 1);
	ck_assert_uint_eq(rec.images[0].bytes_fetched, 1089181);
	ck_assert_uint_eq(rec.images[0].bytes_from_seed, 5202275);
	ck_assert_str_eq(rec.images[1].name, "dtb");
	ck_assert_int_eq(rec.images[1].done, 0);
	ck_assert_uint_eq(rec.images[1].bytes_done, 4096);
	ck_assert_int_eq(slotsync_install_status_json(&c.cfg, &json, &err), 0);
	st = json_tokener_parse(json);
	ck_assert(json_object_object_get_ex(st, "install", &inst));
	ck_assert(json_object_object_get_ex(inst, "images", &v));
	ck_assert_uint_eq(json_object_array_length(v), 2);
	im = json_object_array_get_idx(v, 1);
	ck_assert(json_object_object_get_ex(im, "name", &o));
	ck_assert_str_eq(json_object_get_string(o), "dtb");
	ck_assert(json_object_object_get_ex(im, "bytes_total", &o));
	ck_assert_int_eq(json_object_get_int64(o), 65536);
	json_object_put(st);
	free(json);
	ctx_free(&c);
}
END_TEST

/* Stable device names hold colons (/dev/disk/by-path/pci-0000:00:1f.2-ata-1):
 * the running slot is a seed all the same, first without a kept index, then,
 * after mark good, with the index kept for it. */
START_TEST(test_slot_paths_with_colons)
{
	struct ctx c;
	struct slotsync_error err = { 0 };
	char bundle3[PATH_MAX];

	ctx_make_in(&c, "radio-x86", "pci-0000:00:1f.2-ata-1");
	ck_assert_ptr_nonnull(strchr(c.dev.slot_a, ':'));
	installed_and_switched(&c);
	ck_assert_int_eq(reboot(&c), 1);
	ck_assert_msg(slotsync_install_mark(&c.cfg, 1, &err) == 0, "%s", err.msg);
	fx_path(bundle3, c.dir, "v3.bundle");
	fx_bundle_make(&c.ca, c.v1.img, c.store, "3.0", "radio-x86", bundle3);
	c.o.bundle = bundle3;
	ck_assert_msg(install(&c) == 0, "%s", c.err.msg);
	ck_assert_int_eq(c.rec.target, 0);
	ck_assert(fx_file_equals(c.dev.slot_a, c.v1.data, IMG_LEN));
	ck_assert_uint_gt(c.rec.bytes_from_seed, IMG_LEN / 2);
	ctx_free(&c);
}
END_TEST

/* The unit runs with UMask=0077: every file an install leaves in the state
 * folder (install.json names the source URL) is the agent's alone. */
START_TEST(test_state_files_private_under_umask_077)
{
	struct ctx c;
	struct dirent *e;
	struct stat st;
	char path[PATH_MAX * 2];
	int n = 0;
	DIR *d;

	ctx_make(&c, "radio-x86");
	umask(077);
	installed_and_switched(&c);
	d = opendir(c.dev.state);
	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", c.dev.state, e->d_name);
		ck_assert_int_eq(lstat(path, &st), 0);
		ck_assert_msg((st.st_mode & 077) == 0, "%s has mode %04o", path, (unsigned)(st.st_mode & 07777));
		n++;
	}
	closedir(d);
	ck_assert_int_ge(n, 3);
	umask(022);
	ctx_free(&c);
}
END_TEST

/* A state folder others may write to (or that is someone else's) is refused
 * before anything is written. */
START_TEST(test_state_folder_open_to_others_refused)
{
	struct ctx c;

	ctx_make(&c, "radio-x86");
	ck_assert_int_eq(chmod(c.dev.state, 0777), 0);
	ck_assert_int_eq(install(&c), -EPERM);
	ck_assert_msg(strstr(c.err.msg, c.dev.state) && strstr(c.err.msg, "0777"), "%s", c.err.msg);
	ck_assert(!fx_file_equals(c.dev.slot_b, c.v2.data, IMG_LEN)); /* nothing written */
	ck_assert_int_eq(chmod(c.dev.state, 0755), 0);
	ck_assert_msg(install(&c) == 0, "%s", c.err.msg);
	ck_assert(fx_file_equals(c.dev.slot_b, c.v2.data, IMG_LEN));
	ctx_free(&c);
}
END_TEST

/* A symlink planted as the lock or the journal is refused, and the file it
 * points at is left as it was. */
START_TEST(test_planted_symlinks_refused)
{
	static const char *names[] = { "install.lock", "install.journal" };
	struct ctx c;
	char victim[PATH_MAX], link[PATH_MAX];
	size_t len;
	uint8_t *got;

	ctx_make(&c, "radio-x86");
	fx_path(victim, c.dir, "victim");
	for (size_t i = 0; i < 2; i++) {
		ck_assert_int_eq(test_write_file(victim, "precious\n", 9), 0);
		fx_path(link, c.dev.state, names[i]);
		ck_assert_int_eq(symlink(victim, link), 0);
		ck_assert_int_lt(install(&c), 0);
		ck_assert_msg(strstr(c.err.msg, "symbolic link"), "%s: %s", names[i], c.err.msg);
		got = fx_read_file(victim, &len);
		ck_assert_msg(len == 9 && !memcmp(got, "precious\n", 9), "%s: the target was written", names[i]);
		free(got);
		ck_assert_int_eq(unlink(link), 0);
	}
	ctx_free(&c);
}
END_TEST

/* A bundle over plain http is refused unless the device allows it on purpose
 * (allow-plain-http = yes: the fixture's device does, its server is plain). */
START_TEST(test_plain_http_bundle_needs_allowance)
{
	struct ctx c;
	char url[256];

	ctx_make(&c, "radio-x86");
	snprintf(url, sizeof(url), "%s/v2.bundle", c.http.url);
	c.o.bundle = url;
	c.cfg.allow_plain_http = 0;
	ck_assert_int_lt(install(&c), 0);
	ck_assert_msg(strstr(c.err.msg, "plain http:// is refused"), "%s", c.err.msg);
	ck_assert(!fx_file_equals(c.dev.slot_b, c.v2.data, IMG_LEN));
	ck_assert_int_eq(fx_http_count(&c.http, NULL, 0), 0); /* nothing was asked */
	ctx_free(&c);
}
END_TEST

START_TEST(test_install_then_mark_bad)
{
	struct ctx c;
	struct slotsync_boot_state bs;
	struct slotsync_install_record rec;
	struct slotsync_error err = { 0 };
	char reason[256] = "";
	int takes_try;

	ctx_make(&c, "radio-x86");
	installed_and_switched(&c);
	ck_assert_int_eq(reboot(&c), 1);
	ck_assert_msg(slotsync_install_mark(&c.cfg, 0, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(slotsync_install_record_load(&c.cfg, &rec, &err), 0);
	ck_assert_int_eq(rec.step, SLOTSYNC_STEP_FAILED);
	/* the bootloader goes back to A, and the release is never installed again */
	boot_state(&c, &bs);
	ck_assert_int_eq(slotsync_boot_choose(&bs, &takes_try), 0);
	ck_assert(slotsync_install_release_failed(&c.cfg, rec.bundle_sha256, rec.version, reason, sizeof(reason)));
	ck_assert_str_ne(reason, "");
	ctx_free(&c);
}
END_TEST

static void nothing_changed(struct ctx *c)
{
	struct slotsync_boot_state bs;
	uint8_t *zero = calloc(1, IMG_LEN);
	int takes_try;

	ck_assert(fx_file_equals(c->dev.slot_b, zero, IMG_LEN));
	ck_assert(fx_file_equals(c->dev.slot_a, c->v1.data, IMG_LEN));
	boot_state(c, &bs);
	ck_assert_int_eq(slotsync_boot_choose(&bs, &takes_try), 0);
	ck_assert_int_eq(bs.slot[1].priority, 0);
	ck_assert_int_eq(fx_http_count(&c->http, NULL, 0), 0); /* nothing downloaded */
	free(zero);
}

START_TEST(test_tampered_bundle_refused)
{
	struct ctx c;
	uint8_t *b;
	size_t len;

	ctx_make(&c, "radio-x86");
	b = fx_read_file(c.bundle, &len);
	b[len / 3] ^= 0x10;
	ck_assert_int_eq(test_write_file(c.bundle, b, len), 0);
	free(b);
	ck_assert_int_lt(install(&c), 0);
	ck_assert_int_eq(c.rec.step, SLOTSYNC_STEP_FAILED);
	ck_assert_str_ne(c.err.msg, "");
	nothing_changed(&c);
	ctx_free(&c);
}
END_TEST

START_TEST(test_other_hardware_refused)
{
	struct ctx c;

	ctx_make(&c, "radio-arm");
	ck_assert_int_lt(install(&c), 0);
	ck_assert_msg(strstr(c.err.msg, "radio-x86") || strstr(c.err.msg, "radio-arm"), "names the mismatch: %s",
		      c.err.msg);
	nothing_changed(&c);
	ctx_free(&c);
}
END_TEST

/* Replaces c's bundle with a --verity bundle of v2; with wrong_root, its
 * manifest is signed again (by the same fleet signer) with a root hash that
 * is not the tree's: a release whose signer made a mistake. */
static void verity_bundle_make(struct ctx *c, int wrong_root, uint64_t *slot_size)
{
	struct gen_bundle_options o = { 0 };
	struct slotsync_error err = { 0 };
	struct slotsync_bundle *b = NULL;
	char *json = NULL;
	size_t json_len;

	o.store = c->store;
	o.image = c->v2.img;
	o.version = "2.0";
	o.compatible = "radio-x86";
	o.created = time(NULL);
	o.signer.cert = c->ca.signer;
	o.signer.key = c->ca.signer_key;
	o.verity = 1;
	o.make.store = c->store;
	o.make.params = slotsync_chunker_params_default();
	o.make.digest = SLOTSYNC_DIGEST_SHA256;
	o.make.level = 3;
	o.make.threads = 2;
	ck_assert_msg(gen_bundle(&o, c->bundle, &err) == 0, "%s", err.msg);
	ck_assert_msg(slotsync_bundle_open(c->bundle, c->ca.ca, &b, &err) == 0, "%s", err.msg);
	ck_assert_ptr_nonnull(b->manifest->verity);
	ck_assert_str_eq(b->manifest->verity_root_hash, b->manifest->verity->root_hash);
	*slot_size = b->manifest->image_size;
	if (wrong_root) {
		const uint8_t *parts[2];
		size_t lens[2];
		char *h = b->manifest->verity->root_hash;
		h[10] = h[10] == 'a' ? 'b' : 'a';
		strcpy(b->manifest->verity_root_hash, h);
		ck_assert_int_eq(slotsync_manifest_serialize(b->manifest, &json, &json_len, &err), 0);
		parts[0] = (const uint8_t *)json, lens[0] = json_len;
		parts[1] = b->index, lens[1] = b->index_len;
		ck_assert_msg(signer_write_envelope(&o.signer, SLOTSYNC_ENVELOPE_BUNDLE, parts, lens, 2, c->bundle, &err) == 0,
			      "%s", err.msg);
	}
	free(json);
	slotsync_bundle_free(b);
}

START_TEST(test_verity_bundle_installs)
{
	struct ctx c;
	struct slotsync_boot_state bs;
	uint64_t slot_size;
	uint8_t *slot;
	size_t len;

	ctx_make(&c, "radio-x86");
	verity_bundle_make(&c, 0, &slot_size);
	ck_assert_msg(install(&c) == 0, "%s", c.err.msg);
	ck_assert_int_eq(c.rec.step, SLOTSYNC_STEP_REBOOT);
	/* slot B: v2, its padding (none: 1 MiB is whole blocks), then the tree */
	slot = fx_read_file(c.dev.slot_b, &len);
	ck_assert_uint_ge(len, slot_size);
	ck_assert_uint_gt(slot_size, IMG_LEN);
	ck_assert_int_eq(memcmp(slot, c.v2.data, IMG_LEN), 0);
	free(slot);
	boot_state(&c, &bs);
	ck_assert_int_gt(bs.slot[1].priority, bs.slot[0].priority);
	ctx_free(&c);
}
END_TEST

START_TEST(test_verity_root_mismatch_never_switched)
{
	struct ctx c;
	struct slotsync_boot_state bs;
	struct slotsync_install_record rec;
	struct slotsync_error err = { 0 };
	char reason[256] = "";
	uint64_t slot_size;
	int takes_try;

	ctx_make(&c, "radio-x86");
	verity_bundle_make(&c, 1, &slot_size);
	ck_assert_int_lt(install(&c), 0);
	ck_assert_msg(strstr(c.err.msg, "slot B fails dm-verity") && strstr(c.err.msg, "does not match the root hash"),
		      "%s", c.err.msg);
	/* the slot holds the signed bytes, yet the install failed for good, and
	 * the boot state never named B */
	ck_assert(fx_file_equals(c.dev.slot_b, c.v2.data, IMG_LEN));
	boot_state(&c, &bs);
	ck_assert_int_eq(slotsync_boot_choose(&bs, &takes_try), 0);
	ck_assert_int_eq(bs.slot[1].priority, 0);
	ck_assert_int_eq(slotsync_install_record_load(&c.cfg, &rec, &err), 0);
	ck_assert_int_eq(rec.step, SLOTSYNC_STEP_FAILED);
	ck_assert_int_eq(rec.error_final, 1);
	ck_assert(slotsync_install_release_failed(&c.cfg, rec.bundle_sha256, rec.version, reason, sizeof(reason)));
	/* and running it again does not switch either */
	ck_assert_int_lt(install(&c), 0);
	boot_state(&c, &bs);
	ck_assert_int_eq(bs.slot[1].priority, 0);
	ctx_free(&c);
}
END_TEST

/* A build without libcryptsetup: a release with a verity object (signed by
 * the fleet's signer) is refused at the verify step, nothing written. */
START_TEST(test_verity_release_refused_without_libcryptsetup)
{
	struct ctx c;
	struct gen_signer signer = { 0 };
	struct slotsync_manifest_verity v = { .algorithm = "sha256", .data_size = 4096, .hash_offset = 4096,
					      .data_block_size = 4096, .hash_block_size = 4096 };
	struct slotsync_error err = { 0 };
	struct slotsync_bundle *b = NULL;
	const uint8_t *parts[2];
	size_t lens[2], json_len;
	char *json = NULL, root[65], salt[] = "00ff";

	ctx_make(&c, "radio-x86");
	ck_assert_msg(slotsync_bundle_open(c.bundle, c.ca.ca, &b, &err) == 0, "%s", err.msg);
	memset(root, '1', 64);
	root[64] = '\0';
	v.root_hash = root;
	v.salt = salt;
	b->manifest->verity = &v;
	ck_assert_int_eq(slotsync_manifest_serialize(b->manifest, &json, &json_len, &err), 0);
	b->manifest->verity = NULL;
	parts[0] = (const uint8_t *)json, lens[0] = json_len;
	parts[1] = b->index, lens[1] = b->index_len;
	signer.cert = c.ca.signer;
	signer.key = c.ca.signer_key;
	ck_assert_msg(signer_write_envelope(&signer, SLOTSYNC_ENVELOPE_BUNDLE, parts, lens, 2, c.bundle, &err) == 0, "%s",
		      err.msg);
	free(json);
	slotsync_bundle_free(b);
	ck_assert_int_lt(install(&c), 0);
	ck_assert_msg(strstr(c.err.msg, "dm-verity") && strstr(c.err.msg, "-DSLOTSYNC_VERITY=ON"), "%s", c.err.msg);
	ck_assert_int_eq(c.rec.step, SLOTSYNC_STEP_FAILED);
	nothing_changed(&c);
	ctx_free(&c);
}
END_TEST

static Suite *install_suite(void)
{
	Suite *s = suite_create("install");
	TCase *tc = tcase_create("install");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_install_then_mark_good);
	tcase_add_test(tc, test_status_delta_note);
	tcase_add_test(tc, test_record_images);
	tcase_add_test(tc, test_slot_paths_with_colons);
	tcase_add_test(tc, test_state_files_private_under_umask_077);
	tcase_add_test(tc, test_state_folder_open_to_others_refused);
	tcase_add_test(tc, test_planted_symlinks_refused);
	tcase_add_test(tc, test_plain_http_bundle_needs_allowance);
	tcase_add_test(tc, test_install_then_mark_bad);
	tcase_add_test(tc, test_tampered_bundle_refused);
	tcase_add_test(tc, test_other_hardware_refused);
	if (SLOTSYNC_HAVE_VERITY) {
		tcase_add_test(tc, test_verity_bundle_installs);
		tcase_add_test(tc, test_verity_root_mismatch_never_switched);
	} else {
		tcase_add_test(tc, test_verity_release_refused_without_libcryptsetup);
	}
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run_suite(install_suite());
}

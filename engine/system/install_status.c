/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* After the reboot: an install that waits for validation is settled (the new
 * slot marked good or bad, the release remembered), the operator's mark-good
 * and mark-bad, and the device's status as one JSON object (slotsync status,
 * D-Bus Status).  See include/slotsync/install.h and docs/install.md. */
#include "slotsync/install.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "slotsync/boot.h"
#include "slotsync/envelope.h"
#include "slotsync/digest.h"
#include "slotsync/slot.h"

int system_awaiting_validation(const struct slotsync_config *cfg, struct slotsync_install_record *rec, int *booted,
			       struct slotsync_error *err)
{
	int r = slotsync_install_record_load(cfg, rec, err);

	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	if (rec->step != SLOTSYNC_STEP_REBOOT && rec->step != SLOTSYNC_STEP_VALIDATE)
		return 0;
	*booted = slotsync_boot_booted(&cfg->boot, err);
	return *booted < 0 ? *booted : 1;
}

int slotsync_install_validate(const struct slotsync_config *cfg, int good, const char *reason, int *settled,
			      struct slotsync_error *err)
{
	struct slotsync_install_record rec;
	struct slotsync_boot_state bs;
	int booted, r;

	*settled = 0;
	r = system_awaiting_validation(cfg, &rec, &booted, err);
	if (r <= 0)
		return r;
	if (booted == rec.target) {
		if (good) {
			r = slotsync_boot_mark_good(&cfg->boot, rec.target, err);
			if (r == 0)
				r = system_slot_record_set(cfg, rec.target, "good", &rec, err);
			if (r == 0)
				r = system_release_good(cfg, &rec, err);
			if (r < 0)
				return r;
			rec.step = SLOTSYNC_STEP_DONE;
		} else {
			r = slotsync_boot_mark_bad(&cfg->boot, rec.target, err);
			if (r == 0)
				r = system_slot_record_set(cfg, rec.target, "bad", NULL, err);
			if (r == 0)
				r = system_release_failed_add(cfg, &rec, reason ? reason : "marked bad", err);
			if (r < 0)
				return r;
			rec.step = SLOTSYNC_STEP_FAILED;
			snprintf(rec.error, sizeof(rec.error), "slot %c failed its health checks: %s", 'A' + rec.target,
				 reason ? reason : "marked bad");
		}
		*settled = 1;
		return system_record_save(cfg, &rec, err);
	}
	/* the old slot runs: did the new one run out of tries, or is the reboot still to come? */
	r = slotsync_boot_load(&cfg->boot, &bs, err);
	if (r < 0)
		return r;
	if (rec.step == SLOTSYNC_STEP_VALIDATE && !bs.slot[rec.target].good &&
	    (bs.slot[rec.target].tries == 0 || bs.slot[rec.target].priority == 0)) {
		/* out of the boot order too: a bootloader whose every count ran out
		 * (U-Boot's script then boots the first slot of BOOT_ORDER) never
		 * picks the slot that failed */
		r = slotsync_boot_mark_bad(&cfg->boot, rec.target, err);
		if (r == 0)
			r = system_slot_record_set(cfg, rec.target, "bad", NULL, err);
		if (r == 0)
			r = system_release_failed_add(cfg, &rec, "never proved good: the bootloader fell back", err);
		if (r < 0)
			return r;
		rec.step = SLOTSYNC_STEP_FAILED;
		snprintf(rec.error, sizeof(rec.error), "slot %c never proved good; the bootloader fell back to slot %c",
			 'A' + rec.target, 'A' + booted);
		*settled = 1;
		return system_record_save(cfg, &rec, err);
	}
	return 0;
}

int slotsync_install_mark(const struct slotsync_config *cfg, int good, struct slotsync_error *err)
{
	int settled = 0, booted, r;

	r = slotsync_install_validate(cfg, good, good ? NULL : "marked bad by the operator", &settled, err);
	if (r < 0 || settled)
		return r;
	booted = slotsync_boot_booted(&cfg->boot, err);
	if (booted < 0)
		return booted;
	r = good ? slotsync_boot_mark_good(&cfg->boot, booted, err) : slotsync_boot_mark_bad(&cfg->boot, booted, err);
	if (r == 0) {
		struct slotsync_slot_record s[2];
		if (slotsync_install_slot_records_load(cfg, s, err) == 0 && s[booted].status[0])
			r = system_slot_record_set(cfg, booted, good ? "good" : "bad", NULL, err);
	}
	return r;
}

/* "booted" (or NULL), "other", "A", "B" -> 0 or 1; < 0 with err if slot names none. */
static int mark_target(const struct slotsync_config *cfg, const char *slot, int *booted, struct slotsync_error *err)
{
	int r;

	*booted = slotsync_boot_booted(&cfg->boot, err);
	if (!slot || !slot[0] || !strcmp(slot, "booted") || !strcmp(slot, "other")) {
		if (*booted < 0)
			return *booted;
		return slot && !strcmp(slot, "other") ? 1 - *booted : *booted;
	}
	memset(err, 0, sizeof(*err));
	r = slotsync_boot_slot_parse(slot);
	if (r < 0)
		return slotsync_error_set(err, -EINVAL, "no slot \"%s\" (booted, other, A or B)", slot);
	return r;
}

/* mark-active: the slot boots next; a slot not yet good gets its tries anew,
 * and the other slot, if bootable, stays as the fallback. */
static int mark_active(const struct slotsync_config *cfg, int slot, struct slotsync_error *err)
{
	struct slotsync_boot_state bs;
	int r = slotsync_boot_load(&cfg->boot, &bs, err);

	if (r < 0)
		return r;
	bs.slot[slot].priority = 2;
	if (!bs.slot[slot].good || bs.slot[slot].tries == 0)
		bs.slot[slot].tries = cfg->boot_tries > 0 ? cfg->boot_tries : SLOTSYNC_BOOT_TRIES_DEFAULT;
	if (bs.slot[1 - slot].priority > 0)
		bs.slot[1 - slot].priority = 1;
	return slotsync_boot_store(&cfg->boot, &bs, err);
}

int slotsync_install_mark_slot(const struct slotsync_config *cfg, const char *state, const char *slot,
			       struct slotsync_error *err)
{
	int good = state && !strcmp(state, "good"), booted, target, r;

	if (!state || (strcmp(state, "good") && strcmp(state, "bad") && strcmp(state, "active")))
		return slotsync_error_set(err, -EINVAL, "no state \"%s\" to mark (good, bad or active)", state ? state : "");
	target = mark_target(cfg, slot, &booted, err);
	if (target < 0)
		return target;
	memset(err, 0, sizeof(*err));
	if (!strcmp(state, "active"))
		return mark_active(cfg, target, err);
	if (target == booted)
		return slotsync_install_mark(cfg, good, err);
	r = good ? slotsync_boot_mark_good(&cfg->boot, target, err) : slotsync_boot_mark_bad(&cfg->boot, target, err);
	if (r == 0) {
		struct slotsync_slot_record s[2];
		if (slotsync_install_slot_records_load(cfg, s, err) == 0 && s[target].status[0])
			r = system_slot_record_set(cfg, target, good ? "good" : "bad", NULL, err);
	}
	return r;
}

/* ---- bundle info ---------------------------------------------------------- */

static struct json_object *json_digest(const uint8_t *d)
{
	char hex[SLOTSYNC_DIGEST_HEX_BYTES];

	return json_object_new_string(slotsync_digest_to_hex(d, hex));
}

static struct json_object *json_time(time_t t)
{
	char when[32];

	if (!t)
		return NULL;
	slotsync_time_format(t, when);
	return json_object_new_string(when);
}

int slotsync_install_bundle_info_json(const struct slotsync_config *cfg, const char *bundle, char **out,
				      struct slotsync_error *err)
{
	struct slotsync_bundle *b = NULL;
	struct json_object *o, *stores, *deltas, *hooks;
	const struct slotsync_manifest *m;
	int r = slotsync_bundle_open(bundle, cfg->keyring, &b, err);

	*out = NULL;
	if (r < 0) {
		if (!strstr(slotsync_error_message(err), bundle))
			slotsync_error_prefix(err, "%s", bundle);
		return r;
	}
	m = b->manifest;
	o = json_object_new_object();
	json_object_object_add(o, "bundle", json_object_new_string(bundle));
	json_object_object_add(o, "version", json_object_new_string(m->version));
	json_object_object_add(o, "compatible", json_object_new_string(m->compatible));
	json_object_object_add(o, "compatible_here",
			       json_object_new_boolean(!cfg->compatible[0] || !strcmp(cfg->compatible, m->compatible)));
	json_object_object_add(o, "security_version", json_object_new_int64((int64_t)m->security_version));
	json_object_object_add(o, "image_size", json_object_new_int64((int64_t)m->image_size));
	json_object_object_add(o, "image_sha256", json_digest(m->image_sha256));
	json_object_object_add(o, "index_sha256", json_digest(m->index_sha256));
	json_object_object_add(o, "created", json_time(m->created));
	json_object_object_add(o, "expires", json_time(m->expires));
	json_object_object_add(o, "downgrade_allowed_to", m->downgrade_allowed_to ? json_object_new_string(m->downgrade_allowed_to) : NULL);
	json_object_object_add(o, "verity_root_hash", m->verity_root_hash ? json_object_new_string(m->verity_root_hash) : NULL);
	stores = json_object_new_array();
	for (size_t i = 0; i < m->n_stores; i++)
		json_object_array_add(stores, json_object_new_string(m->stores[i]));
	json_object_object_add(o, "stores", stores);
	deltas = json_object_new_array();
	for (size_t i = 0; i < m->n_deltas; i++) {
		struct json_object *d = json_object_new_object();
		json_object_object_add(d, "base_index_sha256", json_digest(m->deltas[i].base));
		json_object_object_add(d, "sha256", json_digest(m->deltas[i].sha256));
		json_object_object_add(d, "size", json_object_new_int64((int64_t)m->deltas[i].size));
		json_object_array_add(deltas, d);
	}
	json_object_object_add(o, "deltas", deltas);
	/* the slot group: the main image (above) is "rootfs", these the others */
	if (m->n_images) {
		struct json_object *images = json_object_new_array();
		for (size_t i = 0; i < m->n_images; i++) {
			struct json_object *d = json_object_new_object();
			json_object_object_add(d, "name", json_object_new_string(m->images[i].name));
			json_object_object_add(d, "size", json_object_new_int64((int64_t)m->images[i].size));
			json_object_object_add(d, "sha256", json_digest(m->images[i].sha256));
			json_object_object_add(d, "index_sha256", json_digest(m->images[i].index_sha256));
			json_object_array_add(images, d);
		}
		json_object_object_add(o, "images", images);
	}
	hooks = json_object_new_object();
	json_object_object_add(hooks, "pre-install", m->hook_pre_install ? json_object_new_string(m->hook_pre_install) : NULL);
	json_object_object_add(hooks, "post-install", m->hook_post_install ? json_object_new_string(m->hook_post_install) : NULL);
	json_object_object_add(o, "hooks", hooks);
	json_object_object_add(o, "signer", json_object_new_string(b->signer.subject));
	json_object_object_add(o, "signed", json_time(b->signer.signing_time));
	*out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	slotsync_bundle_free(b);
	return *out ? 0 : slotsync_error_set(err, -ENOMEM, "out of memory");
}

/* ---- status --------------------------------------------------------------- */

int slotsync_install_status_json(const struct slotsync_config *cfg, char **out, struct slotsync_error *err)
{
	struct json_object *o = json_object_new_object(), *slots = json_object_new_object(), *inst, *f = NULL, *list;
	struct slotsync_slot_record sr[2];
	struct slotsync_boot_state bs;
	struct slotsync_install_record rec;
	struct slotsync_error e = { 0 };
	char path[PATH_MAX];
	int booted = slotsync_boot_booted(&cfg->boot, &e), have_boot, r;

	*out = NULL;
	json_object_object_add(o, "compatible", json_object_new_string(cfg->compatible));
	json_object_object_add(o, "booted", booted >= 0 ? json_object_new_string(booted ? "B" : "A") : NULL);
	memset(&e, 0, sizeof(e));
	have_boot = slotsync_boot_load(&cfg->boot, &bs, &e) == 0;
	json_object_object_add(o, "boot_backend", json_object_new_string(slotsync_boot_backend_name(cfg->boot.backend)));
	if (!have_boot)
		json_object_object_add(o, "boot_error", json_object_new_string(slotsync_error_message(&e)));
	r = slotsync_install_slot_records_load(cfg, sr, err);
	if (r < 0) {
		json_object_put(o);
		json_object_put(slots);
		return r;
	}
	for (int i = 0; i < 2; i++) {
		const char name[2] = { (char)('A' + i), '\0' };
		struct json_object *s = json_object_new_object();
		json_object_object_add(s, "device", json_object_new_string(cfg->slot[i].device));
		json_object_object_add(s, "backend", json_object_new_string(slotsync_slot_backend_name(cfg->slot[i].backend)));
		if (cfg->slot[i].n_images) {
			/* the slot group's further images: name -> volume */
			struct json_object *im = json_object_new_object();
			for (size_t k = 0; k < cfg->slot[i].n_images; k++)
				json_object_object_add(im, cfg->slot[i].images[k].name,
						       json_object_new_string(cfg->slot[i].images[k].device));
			json_object_object_add(s, "images", im);
		}
		json_object_object_add(s, "status", json_object_new_string(sr[i].status[0] ? sr[i].status : "unknown"));
		json_object_object_add(s, "version", sr[i].version[0] ? json_object_new_string(sr[i].version) : NULL);
		json_object_object_add(s, "booted", json_object_new_boolean(booted == i));
		if (have_boot) {
			json_object_object_add(s, "priority", json_object_new_int(bs.slot[i].priority));
			json_object_object_add(s, "tries", json_object_new_int(bs.slot[i].tries));
			json_object_object_add(s, "good", json_object_new_boolean(bs.slot[i].good));
		}
		json_object_object_add(slots, name, s);
	}
	json_object_object_add(o, "slots", slots);
	memset(&e, 0, sizeof(e));
	r = slotsync_install_record_load(cfg, &rec, &e);
	if (r == 0) {
		inst = system_record_json(&rec);
		json_object_object_add(o, "install", inst);
	} else {
		json_object_object_add(o, "install", NULL);
		if (r != -ENOENT)
			json_object_object_add(o, "install_error", json_object_new_string(slotsync_error_message(&e)));
	}
	system_state_path(cfg, "agent.json", path);
	memset(&e, 0, sizeof(e));
	if (access(path, F_OK) == 0 && system_json_load(path, &f, &e) == 0)
		json_object_object_add(o, "agent", f);
	f = NULL;
	system_state_path(cfg, "failed.json", path);
	memset(&e, 0, sizeof(e));
	if (access(path, F_OK) == 0 && system_json_load(path, &f, &e) == 0 && json_object_object_get_ex(f, "releases", &list))
		json_object_object_add(o, "failed_releases", json_object_get(list));
	else
		json_object_object_add(o, "failed_releases", json_object_new_array());
	json_object_put(f);
	*out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return *out ? 0 : slotsync_error_set(err, -ENOMEM, "out of memory");
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The root a device boots: see include/slotsync/root.h. */
#include "slotsync/root.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "slotsync/digest.h"
#include "slotsync/envelope.h"
#include "slotsync/log.h"
#include "slotsync/slot.h"
#include "slotsync/tpm.h"
#include "slotsync/verity.h"

/* an envelope holds a manifest, an index and hooks: a few MiB at most */
#define RECORD_MAX (64u << 20)

void slotsync_root_measurement(const char *root_hash, uint8_t out[32])
{
	char event[16 + 2 * 64 + 16];
	int n = snprintf(event, sizeof(event), "slotsync-root:%s", root_hash ? root_hash : "unverified");

	slotsync_digest(SLOTSYNC_DIGEST_SHA256, event, (size_t)n < sizeof(event) ? (size_t)n : sizeof(event) - 1, out);
}

void slotsync_root_tpm_for(struct slotsync_luks_tpm *t, int root_pcr, const char *root_hash)
{
	static const uint8_t zero[32];
	uint8_t ev[32];

	if (root_pcr < 0)
		return;
	slotsync_root_measurement(root_hash, ev);
	t->pcr_mask |= 1u << root_pcr;
	t->expect_mask |= 1u << root_pcr;
	slotsync_tpm_pcr_extended(zero, ev, t->expect[root_pcr]);
}

int slotsync_root_data_tpm(const struct slotsync_config *cfg, const struct slotsync_manifest *m,
			   struct slotsync_luks_tpm *out, struct slotsync_error *err)
{
	*out = slotsync_config_tpm(cfg);
	if (cfg->root_pcr < 0)
		return 0;
	if (!m->verity)
		return slotsync_error_set(err, -EPERM,
					  "release %s has no dm-verity root hash, and this device boots only verified roots "
					  "([tpm] root-pcr = %d in %s): build it with slotsync-gen bundle --verity",
					  m->version, cfg->root_pcr, cfg->path);
	slotsync_root_tpm_for(out, cfg->root_pcr, m->verity->root_hash);
	return 0;
}

void slotsync_root_record_path(const struct slotsync_config *cfg, int slot, char out[PATH_MAX])
{
	system_pathf(out, "%s/slot-%c.bundle", cfg->state_dir, 'A' + slot);
}

/* The signed manifest of the release in the slot, checked. */
static int record_manifest(const struct slotsync_config *cfg, const char *path, struct slotsync_manifest **m,
			   struct slotsync_error *err)
{
	struct slotsync_envelope *e = NULL;
	struct slotsync_signer_info signer;
	int r;

	*m = NULL;
	r = slotsync_envelope_read(path, SLOTSYNC_ENVELOPE_BUNDLE, RECORD_MAX, &e, err);
	if (r == 0)
		r = slotsync_envelope_verify(e, cfg->keyring, &signer, err);
	if (r == 0 && e->n_parts < 2)
		r = slotsync_error_set(err, -EBADMSG, "not a release bundle");
	if (r == 0)
		r = slotsync_manifest_parse(e->part[0], e->part_len[0], m, err);
	slotsync_envelope_free(e);
	if (r < 0) {
		slotsync_error_prefix(err, "the signed release record %s", path);
		return r;
	}
	if (cfg->compatible[0] && strcmp((*m)->compatible, cfg->compatible) != 0) {
		r = slotsync_error_set(err, -EPERM, "the signed release record %s is for \"%s\", this device is \"%s\"", path,
				       (*m)->compatible, cfg->compatible);
		slotsync_manifest_free(*m);
		*m = NULL;
	}
	return r;
}

static int measure(const struct slotsync_config *cfg, const char *root_hash, struct slotsync_error *err)
{
	uint8_t ev[32];
	int r;

	if (cfg->root_pcr < 0)
		return 0;
	slotsync_root_measurement(root_hash, ev);
	r = slotsync_tpm_pcr_extend(cfg->tcti[0] ? cfg->tcti : NULL, (unsigned)cfg->root_pcr, ev, err);
	if (r < 0)
		slotsync_error_prefix(err, "cannot measure the root into PCR %d", cfg->root_pcr);
	return r;
}

int slotsync_root_open(const struct slotsync_config *cfg, int slot, const struct slotsync_root_options *o,
		       char path[PATH_MAX], char version[128], struct slotsync_error *err)
{
	const struct slotsync_slot_config *s = &cfg->slot[slot];
	struct slotsync_volume v = slotsync_slot_volume(s, 0);
	struct slotsync_luks_tpm tpm = slotsync_config_tpm(cfg);
	struct slotsync_manifest *m = NULL;
	struct slotsync_volume_handle h;
	char rec[PATH_MAX], name[SLOTSYNC_SLOT_MAPPING_MAX];
	int r;

	version[0] = '\0';
	if (o->unverified) {
		slotsync_log_error("slot %s: opened WITHOUT dm-verity (debug boot): nothing checks this root, and it is "
				   "measured as unverified",
				   s->name);
		r = slotsync_volume_unlock(&v, &tpm, &h, err);
		if (r == 0)
			r = measure(cfg, NULL, err);
		if (r == 0)
			snprintf(path, PATH_MAX, "%s", h.path);
		goto out;
	}
	if (o->record)
		snprintf(rec, sizeof(rec), "%s", o->record);
	else
		slotsync_root_record_path(cfg, slot, rec);
	r = record_manifest(cfg, rec, &m, err);
	if (r < 0)
		goto out;
	snprintf(version, 128, "%s", m->version);
	if (!m->verity) {
		r = slotsync_error_set(err, -EPERM, "release %s in slot %s has no dm-verity root hash: not mounted",
				       m->version, s->name);
		goto out;
	}
	r = slotsync_volume_unlock(&v, &tpm, &h, err);
	if (r < 0)
		goto out;
	if (!o->no_full_check) {
		r = slotsync_verity_verify(h.path, m->verity, err);
		if (r < 0) {
			slotsync_error_prefix(err, "fails dm-verity (release %s)", m->version);
			goto out;
		}
	}
	if (o->name)
		snprintf(name, sizeof(name), "%s", o->name);
	else
		snprintf(name, sizeof(name), "slotsync-root-%s", s->name);
	r = slotsync_verity_open(h.path, m->verity, name, err);
	if (r < 0) {
		slotsync_error_prefix(err, "cannot open dm-verity (release %s)", m->version);
		goto out;
	}
	r = measure(cfg, m->verity->root_hash, err);
	if (r == 0)
		snprintf(path, PATH_MAX, "/dev/mapper/%s", name);
out:
	if (r < 0)
		slotsync_error_prefix(err, "slot %s", s->name);
	slotsync_manifest_free(m);
	return r;
}

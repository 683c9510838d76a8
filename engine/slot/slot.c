/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Slot backends, raw and luks2: see include/slotsync/slot.h. */
#include "slotsync/slot.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "slotsync/log.h"

const char *slotsync_slot_backend_name(enum slotsync_slot_backend b)
{
	return b == SLOTSYNC_SLOT_LUKS2 ? "luks2" : "raw";
}

int slotsync_slot_backend_parse(const char *s, enum slotsync_slot_backend *out)
{
	if (!strcmp(s, "raw"))
		*out = SLOTSYNC_SLOT_RAW;
	else if (!strcmp(s, "luks2"))
		*out = SLOTSYNC_SLOT_LUKS2;
	else
		return -EINVAL;
	return 0;
}

static void set_path(struct slotsync_volume_handle *h, const char *path)
{
	snprintf(h->path, sizeof(h->path), "%s", path);
}

static void mapped(struct slotsync_volume_handle *h, const char *mapping, int opened_here)
{
	snprintf(h->path, sizeof(h->path), "/dev/mapper/%s", mapping);
	snprintf(h->mapping, sizeof(h->mapping), "%s", opened_here ? mapping : "");
}

/* What every opening starts with: 0 when the volume is raw (h is its device),
 * 1 when it is luks2 and there is more to do, < 0 when it is not configured. */
static int begin(const struct slotsync_volume *v, struct slotsync_volume_handle *h, struct slotsync_error *err)
{
	memset(h, 0, sizeof(*h));
	if (!v->device || !*v->device)
		return slotsync_error_set(err, -EINVAL, "no device configured");
	if (v->backend == SLOTSYNC_SLOT_RAW) {
		set_path(h, v->device);
		return 0;
	}
	return 1;
}

/* Formats the volume with header uuid (recorded first when fresh) and opens it. */
static int format_open(const struct slotsync_volume *v, const struct slotsync_luks_tpm *tpm,
		       char uuid[SLOTSYNC_LUKS_UUID_BYTES], int fresh,
		       int (*record)(void *, const char *, struct slotsync_error *), void *ud,
		       struct slotsync_volume_handle *h, struct slotsync_error *err)
{
	char got[SLOTSYNC_LUKS_UUID_BYTES];
	int r;

	if (fresh) {
		/* a buffer of our own: the caller's record() may write into uuid */
		char fresh_uuid[SLOTSYNC_LUKS_UUID_BYTES];
		r = slotsync_luks_new_uuid(fresh_uuid, err);
		if (r < 0)
			return r;
		if (record) {
			r = record(ud, fresh_uuid, err);
			if (r < 0)
				return r;
		}
		memcpy(uuid, fresh_uuid, SLOTSYNC_LUKS_UUID_BYTES);
	}
	r = slotsync_luks_format_open(v->device, tpm, uuid, v->mapping, got, err);
	if (r < 0)
		return r;
	snprintf(h->uuid, sizeof(h->uuid), "%s", got);
	mapped(h, v->mapping, 1);
	/* a key sealed for the PCRs as they are now must unseal now: proven
	 * before anything is written behind it (one sealed for a later state,
	 * the next root's, cannot be) */
	if (!tpm->expect_mask) {
		r = slotsync_luks_open(v->device, tpm, NULL, uuid, NULL, err);
		if (r < 0)
			return r;
	}
	return 0;
}

int slotsync_volume_open_write(const struct slotsync_volume *v, const struct slotsync_luks_tpm *tpm,
			       char uuid[SLOTSYNC_LUKS_UUID_BYTES],
			       int (*record)(void *ud, const char *uuid, struct slotsync_error *err), void *ud,
			       int *formatted, struct slotsync_volume_handle *h, struct slotsync_error *err)
{
	char cur[SLOTSYNC_LUKS_UUID_BYTES];
	struct slotsync_error ignored = { 0 };
	int r;

	*formatted = 0;
	r = begin(v, h, err);
	if (r <= 0)
		return r;
	/* a mapping of this name is ours to replace: the volume is inactive */
	if (slotsync_luks_mapping_uuid(v->mapping, cur, &ignored) == 0) {
		if (*uuid && !strcmp(cur, uuid)) {
			mapped(h, v->mapping, 1);
			snprintf(h->uuid, sizeof(h->uuid), "%s", cur);
			return 0;
		}
		r = slotsync_luks_close(v->mapping, err);
		if (r < 0) {
			slotsync_error_prefix(err, "%s is open on another header", v->mapping);
			return r;
		}
	}
	if (!*uuid) {
		*formatted = 1;
		return format_open(v, tpm, uuid, 1, record, ud, h, err);
	}
	if (slotsync_luks_header_uuid(v->device, cur, &ignored) < 0 || strcmp(cur, uuid) != 0) {
		/* the format that was to give it this UUID never finished */
		slotsync_log_info("%s: the format of header %s was cut short; formatting it again", v->device, uuid);
		*formatted = 1;
		return format_open(v, tpm, uuid, 0, record, ud, h, err);
	}
	r = slotsync_luks_open(v->device, tpm, v->mapping, uuid, h->uuid, err);
	if (r == 0) {
		mapped(h, v->mapping, 1);
		return 0;
	}
	if (r != -ENOKEY && r != -EBADMSG && r != -EACCES)
		return r; /* the TPM is not reachable, say: nothing to decide on */
	slotsync_log_info("%s: header %s cannot be opened any more (%s); formatting it anew", v->device, uuid,
			  slotsync_error_message(err));
	*formatted = 1;
	return format_open(v, tpm, uuid, 1, record, ud, h, err);
}

int slotsync_volume_open_read(const struct slotsync_volume *v, const struct slotsync_luks_tpm *tpm,
			      struct slotsync_volume_handle *h, struct slotsync_error *err)
{
	char cur[SLOTSYNC_LUKS_UUID_BYTES], hdr[SLOTSYNC_LUKS_UUID_BYTES];
	struct slotsync_error ignored = { 0 };
	int r;

	r = begin(v, h, err);
	if (r <= 0)
		return r;
	if (slotsync_luks_mapping_uuid(v->mapping, cur, &ignored) == 0) {
		r = slotsync_luks_header_uuid(v->device, hdr, err);
		if (r < 0)
			return r;
		if (strcmp(cur, hdr) != 0)
			return slotsync_error_set(err, -ESTALE, "/dev/mapper/%s is open, but on header %s, not on %s's %s",
						  v->mapping, cur, v->device, hdr);
		mapped(h, v->mapping, 0);
		snprintf(h->uuid, sizeof(h->uuid), "%s", cur);
		return 0;
	}
	r = slotsync_luks_open(v->device, tpm, v->mapping, NULL, h->uuid, err);
	if (r < 0)
		return r;
	mapped(h, v->mapping, 1);
	return 0;
}

int slotsync_volume_unlock(const struct slotsync_volume *v, const struct slotsync_luks_tpm *tpm,
			   struct slotsync_volume_handle *h, struct slotsync_error *err)
{
	int r = slotsync_volume_open_read(v, tpm, h, err);

	h->mapping[0] = '\0'; /* stays open for the system */
	return r;
}

int slotsync_volume_close(struct slotsync_volume_handle *h, struct slotsync_error *err)
{
	int r = 0;

	if (h->mapping[0])
		r = slotsync_luks_close(h->mapping, err);
	h->mapping[0] = '\0';
	return r;
}

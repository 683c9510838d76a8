/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync-gen: who signs what the build server publishes (signer.c), for the
 * bundles and channel pointers of release.c. */
#ifndef SLOTSYNC_GEN_SIGNER_H
#define SLOTSYNC_GEN_SIGNER_H

#include <stddef.h>
#include <stdint.h>

#include "gen.h"
#include "slotsync/envelope.h"
#include "slotsync/error.h"

/* Loads the signer and lets it go: a bad certificate, key or chain is found
 * before any work that would need it. */
int signer_check(const struct gen_signer *g, struct slotsync_error *err);

/* Signs an envelope of kind with parts: *out (malloc'd) holds it whole. */
int signer_sign_envelope(const struct gen_signer *g, enum slotsync_envelope_kind kind, const uint8_t *const *parts,
			 const size_t *lens, size_t n_parts, uint8_t **out, size_t *out_len, struct slotsync_error *err);

/* Signs an envelope of kind with parts and writes it to out atomically. */
int signer_write_envelope(const struct gen_signer *g, enum slotsync_envelope_kind kind, const uint8_t *const *parts,
			  const size_t *lens, size_t n_parts, const char *out, struct slotsync_error *err);

#endif

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Publishing a store and its releases to where devices fetch them (build
 * server only): a folder (publish.c) or an S3-compatible bucket (s3.c).
 *
 * What goes where, under DEST: the store's files under store/ (its layout
 * kept: store/<4 hex>/<64 hex>.cacnk, store/deltas/..., store/indexes/...),
 * bundles and channel pointers at the top, under their file names.  Files go
 * in phases, each finished (and, in a folder, made durable) before the next
 * begins, so that whatever a device can see names only what is already there:
 * chunks and indexes, then delta objects, then delta indexes and index diffs,
 * then bundles, then channel pointers.  Only what DEST lacks is sent: a
 * content-addressed file (named by the digest of what it holds) is skipped
 * when DEST has its name; a file whose name may get new content (a bundle, a
 * delta index, a pointer) is skipped when DEST has the same bytes. */
#ifndef SLOTSYNC_GEN_PUBLISH_H
#define SLOTSYNC_GEN_PUBLISH_H

#include <stddef.h>
#include <stdint.h>

#include "slotsync/error.h"

enum publish_phase {
	PUBLISH_CHUNKS,         /* .cacnk, indexes/<sha256>.caibx */
	PUBLISH_OBJECTS,        /* .sdob */
	PUBLISH_DELTA_INDEXES,  /* .sdix, .sdid */
	PUBLISH_BUNDLES,
	PUBLISH_POINTERS,
	PUBLISH_PHASES
};

struct publish_file {
	char *path;                /* the local file */
	char *key;                 /* where it goes, relative to DEST: store/ab12/....cacnk */
	uint64_t size;
	enum publish_phase phase;
	int content_addressed;     /* named by the digest of its content: never changes */
};

/* The HTTP headers a file is served with (S3 stores them with the object). */
const char *publish_content_type(const struct publish_file *f);
const char *publish_cache_control(const struct publish_file *f);

struct gen_publish_options {
	const char *store;             /* NULL: no store */
	const char *const *bundles;
	int n_bundles;
	const char *const *pointers;
	int n_pointers;
	const char *to;                /* a folder or s3://BUCKET[/PREFIX] */
	int jobs;                      /* uploads in flight at once (S3) */
};

struct gen_publish_stats {
	uint64_t uploaded[PUBLISH_PHASES], uploaded_bytes[PUBLISH_PHASES];
	uint64_t present[PUBLISH_PHASES];  /* already in DEST */
	double seconds;
};

/* Sends what DEST lacks, phase by phase; stops at the first failure (no later
 * phase starts, so no pointer is published when anything it names failed). */
int gen_publish(const struct gen_publish_options *o, struct gen_publish_stats *st, struct slotsync_error *err);

/* The S3 destination (s3.c). */
struct s3_dest;
/* Parses s3://BUCKET[/PREFIX], takes the endpoint, region and credentials from
 * the environment (or the AWS shared credentials file) and lists what the
 * bucket holds under PREFIX. */
int s3_dest_open(const char *url, int jobs, struct s3_dest **out, struct slotsync_error *err);
/* 1: the bucket holds f as it is; 0: it does not. */
int s3_dest_has(struct s3_dest *d, const struct publish_file *f, struct slotsync_error *err);
/* PUTs files (n of them), up to jobs at once; counts into st. */
int s3_dest_put(struct s3_dest *d, struct publish_file *const *files, size_t n, struct gen_publish_stats *st,
		struct slotsync_error *err);
void s3_dest_free(struct s3_dest *d);

/* slotsync-gen publish (gen_publish_cli.c). */
int gen_cli_publish(int argc, char **argv);

#endif

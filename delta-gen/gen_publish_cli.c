/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync-gen publish: sends a store, bundles and channel pointers to a
 * folder or an S3 bucket (gen_publish) and prints what it sent.  The rest of
 * the command line is gen_main.c's; this verb stands alone. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "parse.h"
#include "publish.h"
#include "slotsync/log.h"
#include "slotsync/version.h"

#define PUBLISH_JOBS_DEFAULT 8

static void publish_usage(FILE *f)
{
	fprintf(f,
		"Usage: slotsync-gen publish [--store DIR] [--bundle FILE]... [--pointer FILE]...\n"
		"       --to DEST [--jobs N]\n"
		"\n"
		"Send what DEST lacks of a store, bundles and channel pointers: the store's\n"
		"files under DEST/store/, bundles and pointers at DEST's top.  In order,\n"
		"each step finished before the next: chunks and indexes, delta objects,\n"
		"delta indexes, bundles, pointers; a failure stops before the next step.\n"
		"\n"
		"Options:\n"
		"  --store DIR                  the store to publish\n"
		"  --bundle FILE                a bundle (again for more)\n"
		"  --pointer FILE               a channel pointer, sent last (again for more)\n"
		"  --to DEST                    a folder, or s3://BUCKET/PREFIX: endpoint, region\n"
		"                               and credentials as the AWS tools take them\n"
		"                               (AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID,\n"
		"                               AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ...)\n"
		"  --jobs N                     uploads at once to S3, 1 to 64 (default %d)\n"
		"  -v, --verbose                say more (again for more still)\n"
		"  -q, --quiet                  errors only\n"
		"  -h, --help                   print this help\n"
		"  --version                    print the program's version\n",
		PUBLISH_JOBS_DEFAULT);
}

int gen_cli_publish(int argc, char **argv)
{
	enum { OPT_STORE = 256, OPT_BUNDLE, OPT_POINTER, OPT_TO, OPT_JOBS, OPT_VERSION };
	static const struct option options[] = {
		{ "store", required_argument, NULL, OPT_STORE },     { "bundle", required_argument, NULL, OPT_BUNDLE },
		{ "pointer", required_argument, NULL, OPT_POINTER }, { "to", required_argument, NULL, OPT_TO },
		{ "jobs", required_argument, NULL, OPT_JOBS },       { "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },                 { "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },       { NULL, 0, NULL, 0 },
	};
	static const char *const phase_names[PUBLISH_PHASES] = { "chunks and indexes", "delta objects",
								  "delta indexes", "bundles", "pointers" };
	struct slotsync_error err = { 0 };
	struct gen_publish_options o = { .jobs = PUBLISH_JOBS_DEFAULT };
	struct gen_publish_stats st;
	const char **bundles = calloc((size_t)argc + 1, sizeof(*bundles));
	const char **pointers = calloc((size_t)argc + 1, sizeof(*pointers));
	uint64_t sent = 0, sent_bytes = 0, present = 0;
	int c, rc = -1;

	if (!bundles || !pointers) {
		rc = 1;
		goto out;
	}
	o.bundles = bundles;
	o.pointers = pointers;
	while (rc < 0 && (c = getopt_long(argc, argv, "vqh", options, NULL)) != -1) {
		switch (c) {
		case OPT_STORE:
			o.store = optarg;
			break;
		case OPT_BUNDLE:
			bundles[o.n_bundles++] = optarg;
			break;
		case OPT_POINTER:
			pointers[o.n_pointers++] = optarg;
			break;
		case OPT_TO:
			o.to = optarg;
			break;
		case OPT_JOBS:
			if (parse_int(optarg, 1, 64, &o.jobs) < 0) {
				fprintf(stderr, "slotsync-gen publish: --jobs takes a number from 1 to 64, not \"%s\"\n", optarg);
				rc = 2;
			}
			break;
		case 'v':
			slotsync_log_set_level(slotsync_log_get_level() + 1);
			break;
		case 'q':
			slotsync_log_set_level(SLOTSYNC_LOG_ERROR);
			break;
		case OPT_VERSION:
			printf("slotsync-gen %s\n", SLOTSYNC_VERSION);
			rc = 0;
			break;
		case 'h':
			publish_usage(stdout);
			rc = 0;
			break;
		default:
			publish_usage(stderr);
			rc = 2;
		}
	}
	if (rc >= 0)
		goto out;
	if (argc != optind || !o.to || !o.to[0] || (!o.store && !o.n_bundles && !o.n_pointers)) {
		fputs("slotsync-gen publish: needs --to DEST and something to publish (--store, --bundle, --pointer)\n",
		      stderr);
		rc = 2;
		goto out;
	}
	rc = gen_publish(&o, &st, &err) < 0;
	for (int p = 0; p < PUBLISH_PHASES; p++) {
		if (st.uploaded[p] || st.present[p])
			printf("publish: %s: %" PRIu64 " sent (%" PRIu64 " bytes), %" PRIu64 " already there\n",
			       phase_names[p], st.uploaded[p], st.uploaded_bytes[p], st.present[p]);
		sent += st.uploaded[p];
		sent_bytes += st.uploaded_bytes[p];
		present += st.present[p];
	}
	if (rc) {
		fprintf(stderr, "slotsync-gen publish: %s\n", slotsync_error_message(&err));
		goto out;
	}
	printf("publish: %s: %" PRIu64 " files sent (%" PRIu64 " bytes), %" PRIu64 " already there, %.2f s\n", o.to,
	       sent, sent_bytes, present, st.seconds);
out:
	free(bundles);
	free(pointers);
	return rc;
}

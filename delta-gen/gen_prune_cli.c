/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync-gen prune: parses its options, calls gen_prune (prune.c) and prints
 * what was kept and removed, per kind.  The rest of the command line is
 * gen_main.c's; this verb stands alone. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "gen.h"
#include "parse.h"
#include "slotsync/log.h"
#include "slotsync/version.h"

static void prune_usage(FILE *f)
{
	fprintf(f,
		"Usage: slotsync-gen prune --store DIR --keep RELEASE... [--dry-run] [--grace MINUTES]\n"
		"       [--keyring PEM]\n"
		"\n"
		"Remove from the store what no kept release needs: chunks, delta objects,\n"
		"delta indexes and index diffs, detached indexes, and temp files of killed\n"
		"writers.  A RELEASE is a bundle, or an index (*.caibx).  Kept: every chunk of\n"
		"every image of a kept release, and the delta files between two kept releases.\n"
		"Nothing is removed if a kept release cannot be read.\n"
		"\n"
		"Files younger than the grace period are kept even if no kept release needs\n"
		"them, so that a make, delta or bundle writing into the store at the same time\n"
		"never loses a file it has just written.\n"
		"\n"
		"Options:\n"
		"  --store DIR                  the store\n"
		"  --keep RELEASE               a release to keep (again for more; at least one)\n"
		"  --dry-run                    remove nothing: print what would be kept and removed\n"
		"  --grace MINUTES              keep files younger than this (default %d)\n"
		"  --keyring PEM                also check the kept bundles' signatures\n"
		"  -v, --verbose                say more (again for more still)\n"
		"  -q, --quiet                  errors only\n"
		"  -h, --help                   print this help\n"
		"  --version                    print the program's version\n",
		GEN_PRUNE_GRACE_DEFAULT);
}

static void print_stats(const struct gen_prune_stats *st, int dry_run)
{
	for (int k = 0; k < GEN_PRUNE_KINDS; k++) {
		const struct gen_prune_kind *c = &st->kind[k];
		printf("%-14s kept %" PRIu64 " (%" PRIu64 " bytes, %" PRIu64 " only for the grace period), %s %" PRIu64
		       " (%" PRIu64 " bytes)\n",
		       gen_prune_kind_names[k], c->kept, c->kept_bytes, c->young, dry_run ? "to remove" : "removed",
		       c->removed, c->removed_bytes);
	}
	printf("prune: %s in %.2f s, %" PRIu64 " folders left empty %s\n", dry_run ? "dry run, nothing removed" : "done",
	       st->seconds, st->dirs_removed, dry_run ? "to remove" : "removed");
}

int gen_cli_prune(int argc, char **argv)
{
	enum { OPT_STORE = 256, OPT_KEEP, OPT_DRY_RUN, OPT_GRACE, OPT_KEYRING, OPT_VERSION };
	static const struct option options[] = {
		{ "store", required_argument, NULL, OPT_STORE },
		{ "keep", required_argument, NULL, OPT_KEEP },
		{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
		{ "grace", required_argument, NULL, OPT_GRACE },
		{ "keyring", required_argument, NULL, OPT_KEYRING },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	struct gen_prune_options o = { .grace_minutes = GEN_PRUNE_GRACE_DEFAULT };
	struct slotsync_error err = { 0 };
	struct gen_prune_stats st;
	const char **keep = calloc((size_t)argc, sizeof(*keep));
	int c, grace, rc = 0;

	if (!keep) {
		fputs("slotsync-gen prune: out of memory\n", stderr);
		return 1;
	}
	o.keep = keep;
	while (rc == 0 && (c = getopt_long(argc, argv, "vqh", options, NULL)) != -1) {
		switch (c) {
		case OPT_STORE:
			o.store = optarg;
			break;
		case OPT_KEEP:
			keep[o.n_keep++] = optarg;
			break;
		case OPT_DRY_RUN:
			o.dry_run = 1;
			break;
		case OPT_GRACE:
			if (parse_int(optarg, 0, 10 * 365 * 24 * 60, &grace) < 0) {
				fprintf(stderr, "slotsync-gen prune: --grace takes minutes (0 or more), not \"%s\"\n", optarg);
				rc = 2;
			}
			o.grace_minutes = (unsigned)grace;
			break;
		case OPT_KEYRING:
			o.keyring = optarg;
			break;
		case 'v':
			slotsync_log_set_level(slotsync_log_get_level() + 1);
			break;
		case 'q':
			slotsync_log_set_level(SLOTSYNC_LOG_ERROR);
			break;
		case OPT_VERSION:
			printf("slotsync-gen %s\n", SLOTSYNC_VERSION);
			rc = -1;
			break;
		case 'h':
			prune_usage(stdout);
			rc = -1;
			break;
		default:
			prune_usage(stderr);
			rc = 2;
		}
	}
	if (rc == 0 && (argc - optind != 0 || !o.store || o.n_keep == 0)) {
		fputs("slotsync-gen prune: needs --store DIR and at least one --keep RELEASE\n", stderr);
		rc = 2;
	}
	if (rc == 0 && gen_prune(&o, &st, &err) < 0) {
		fprintf(stderr, "slotsync-gen prune: %s\n", slotsync_error_message(&err));
		rc = 1;
	} else if (rc == 0) {
		print_stats(&st, o.dry_run);
	}
	free(keep);
	return rc < 0 ? 0 : rc;
}

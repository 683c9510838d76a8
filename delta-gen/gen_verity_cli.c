/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync-gen verity: writes a release's slot image (gen_verity) and prints
 * its dm-verity root hash, salt and layout.  The rest of the command line is
 * gen_main.c's; this verb stands alone. */
#include <getopt.h>
#include <stdio.h>

#include "gen.h"
#include "slotsync/log.h"
#include "slotsync/version.h"

static void verity_usage(FILE *f)
{
	fputs("Usage: slotsync-gen verity [--json] IMAGE SLOT-IMAGE\n"
	      "\n"
	      "Write IMAGE's slot image to SLOT-IMAGE: IMAGE zero-padded to 4096-byte\n"
	      "blocks (the data size, which is the hash offset), then its dm-verity hash\n"
	      "tree (sha256, as veritysetup format writes it without a superblock), with a\n"
	      "salt derived from IMAGE's content: the same IMAGE always gives the same\n"
	      "bytes.  Print the root hash, salt, data size, hash offset and size.\n"
	      "\n"
	      "Options:\n"
	      "  --json                       print them as a JSON object\n"
	      "  -v, --verbose                say more (again for more still)\n"
	      "  -q, --quiet                  errors only\n"
	      "  -h, --help                   print this help\n"
	      "  --version                    print the program's version\n",
	      f);
}

int gen_cli_verity(int argc, char **argv)
{
	enum { OPT_JSON = 256, OPT_VERSION };
	static const struct option options[] = {
		{ "json", no_argument, NULL, OPT_JSON },       { "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },           { "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION }, { NULL, 0, NULL, 0 },
	};
	struct slotsync_error err = { 0 };
	struct gen_verity v;
	int c, json = 0;

	while ((c = getopt_long(argc, argv, "vqh", options, NULL)) != -1) {
		switch (c) {
		case OPT_JSON:
			json = 1;
			break;
		case 'v':
			slotsync_log_set_level(slotsync_log_get_level() + 1);
			break;
		case 'q':
			slotsync_log_set_level(SLOTSYNC_LOG_ERROR);
			break;
		case OPT_VERSION:
			printf("slotsync-gen %s\n", SLOTSYNC_VERSION);
			return 0;
		case 'h':
			verity_usage(stdout);
			return 0;
		default:
			verity_usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 2) {
		fputs("slotsync-gen verity: needs IMAGE SLOT-IMAGE\n", stderr);
		return 2;
	}
	if (gen_verity(argv[optind], argv[optind + 1], &v, &err) < 0) {
		fprintf(stderr, "slotsync-gen verity: %s\n", slotsync_error_message(&err));
		return 1;
	}
	gen_verity_print(&v, json, stdout);
	return 0;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync open-root: what an initramfs calls before it mounts a slot (only a
 * signed root, measured).  Thin: parses arguments, calls libslotsync (root.h). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "slotsync/config.h"
#include "slotsync/root.h"

#define OPEN_ROOT_USAGE                                                                                  \
	"Usage: slotsync open-root [--config FILE] [--record FILE] [--name NAME] [--no-full-check]\n"     \
	"                          [--unverified] SLOT\n"

enum { OPT_CONFIG = 256, OPT_RECORD, OPT_NAME, OPT_NO_FULL, OPT_UNVERIFIED };

static const struct option root_options[] = {
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "record", required_argument, NULL, OPT_RECORD },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "no-full-check", no_argument, NULL, OPT_NO_FULL },
	{ "unverified", no_argument, NULL, OPT_UNVERIFIED },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

int cli_open_root(int argc, char **argv)
{
	struct slotsync_root_options o = { 0 };
	struct slotsync_error err = { 0 };
	struct slotsync_config cfg;
	const struct slotsync_slot_config *s;
	const char *config = NULL;
	char path[PATH_MAX], version[128];
	int c;

	optind = 2;
	while ((c = getopt_long(argc, argv, "h", root_options, NULL)) != -1) {
		switch (c) {
		case OPT_CONFIG:
			config = optarg;
			break;
		case OPT_RECORD:
			o.record = optarg;
			break;
		case OPT_NAME:
			o.name = optarg;
			break;
		case OPT_NO_FULL:
			o.no_full_check = 1;
			break;
		case OPT_UNVERIFIED:
			o.unverified = 1;
			break;
		case 'h':
			printf(OPEN_ROOT_USAGE
			       "\nOpen slot SLOT (A or B) as the root to mount: check the signature of the release\n"
			       "the last install wrote into it (--record, default <state-dir>/slot-SLOT.bundle)\n"
			       "against the keyring, unlock the slot (luks2: the TPM unseals its key under the\n"
			       "configured policy), check every block against the release's dm-verity root hash\n"
			       "(--no-full-check: leave that to the kernel's reads), open it through dm-verity as\n"
			       "/dev/mapper/NAME (default slotsync-root-SLOT) and measure the root hash into the\n"
			       "configured root PCR ([tpm] root-pcr). Print the device to mount.\n"
			       "--unverified (debug boots only): no check, no verity; the root is measured as\n"
			       "unverified, so no data key sealed for a release unseals after it.\n" CLI_EXIT_CODES);
			return 0;
		default:
			fputs(OPEN_ROOT_USAGE, stderr);
			return 2;
		}
	}
	if (argc - optind != 1) {
		fputs("slotsync open-root: needs SLOT (A or B)\n" OPEN_ROOT_USAGE, stderr);
		return 2;
	}
	if (slotsync_config_load(config, &cfg, &err) < 0) {
		fprintf(stderr, "slotsync open-root: %s\n", slotsync_error_message(&err));
		return 1;
	}
	s = slotsync_config_slot(&cfg, argv[optind]);
	if (!s) {
		fprintf(stderr, "slotsync open-root: no slot \"%s\" (A or B)\n", argv[optind]);
		return 2;
	}
	if (slotsync_root_open(&cfg, s == &cfg.slot[0] ? 0 : 1, &o, path, version, &err) < 0) {
		fprintf(stderr, "slotsync open-root: %s\n", slotsync_error_message(&err));
		return 1;
	}
	printf("%s\n", path);
	return 0;
}

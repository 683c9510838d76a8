/* slotsync slot-format and slotsync unlock: LUKS2 slots whose keys the TPM
 * seals.  Thin: parses arguments, calls libslotsync (luks.h). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "slotsync/luks.h"
#include "slotsync/migrate.h"

enum { OPT_TCTI = 256, OPT_PCRS, OPT_CHECK, OPT_UUID };

static const struct option slot_options[] = {
	{ "tcti", required_argument, NULL, OPT_TCTI },
	{ "pcrs", required_argument, NULL, OPT_PCRS },
	{ "check", no_argument, NULL, OPT_CHECK },
	{ "expect-uuid", required_argument, NULL, OPT_UUID },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* "7,16" -> bit mask; -1 if malformed */
static long parse_pcrs(const char *s)
{
	long mask = 0;
	char *copy = strdup(s), *save = NULL;

	if (!copy)
		return -1;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char *end;
		long n = strtol(t, &end, 10);
		if (*end || end == t || n < 0 || n > 23) {
			free(copy);
			return -1;
		}
		mask |= 1L << n;
	}
	free(copy);
	return mask;
}

static int parse(int argc, char **argv, const char *verb, struct slotsync_luks_tpm *tpm, int *check,
		 const char **uuid)
{
	int c;

	optind = 2;
	while ((c = getopt_long(argc, argv, "h", slot_options, NULL)) != -1) {
		switch (c) {
		case OPT_TCTI:
			tpm->tcti = optarg;
			break;
		case OPT_PCRS: {
			long m = parse_pcrs(optarg);
			if (m < 0) {
				fprintf(stderr, "slotsync %s: --pcrs takes PCR numbers 0 to 23, like 7,16, not \"%s\"\n", verb,
					optarg);
				return -1;
			}
			tpm->pcr_mask = (uint32_t)m;
			break;
		}
		case OPT_CHECK:
			*check = 1;
			break;
		case OPT_UUID:
			*uuid = optarg;
			break;
		case 'h':
			printf("Usage: slotsync slot-format [--tcti TCTI] [--pcrs N,...] DEVICE\n"
			       "       slotsync unlock [--tcti TCTI] [--expect-uuid UUID] DEVICE NAME | --check DEVICE\n");
			return 1;
		default:
			return -1;
		}
	}
	return 0;
}

int cli_slot_format(int argc, char **argv)
{
	struct slotsync_luks_tpm tpm = { 0 };
	struct slotsync_error err = { 0 };
	char uuid[SLOTSYNC_LUKS_UUID_BYTES];
	const char *expect = NULL;
	int check = 0, r = parse(argc, argv, "slot-format", &tpm, &check, &expect);

	if (r)
		return r < 0 ? 2 : 0;
	if (argc - optind != 1) {
		fputs("slotsync slot-format: needs DEVICE\n", stderr);
		return 2;
	}
	if (slotsync_luks_format(argv[optind], &tpm, uuid, &err) < 0) {
		fprintf(stderr, "slotsync slot-format: %s\n", slotsync_error_message(&err));
		return 1;
	}
	printf("%s\n", uuid);
	return 0;
}

int cli_unlock(int argc, char **argv)
{
	struct slotsync_luks_tpm tpm = { 0 };
	struct slotsync_error err = { 0 };
	char uuid[SLOTSYNC_LUKS_UUID_BYTES];
	const char *expect = NULL;
	int check = 0, r = parse(argc, argv, "unlock", &tpm, &check, &expect);

	if (r)
		return r < 0 ? 2 : 0;
	if (argc - optind != (check ? 1 : 2)) {
		fputs("slotsync unlock: needs DEVICE NAME, or --check DEVICE\n", stderr);
		return 2;
	}
	if (slotsync_luks_open(argv[optind], &tpm, check ? NULL : argv[optind + 1], expect, uuid, &err) < 0) {
		fprintf(stderr, "slotsync unlock: %s\n", slotsync_error_message(&err));
		return 1;
	}
	if (check)
		printf("%s: key unsealed and checked (LUKS2 %s)\n", argv[optind], uuid);
	return 0;
}

static const struct option migrate_options[] = {
	{ "from", required_argument, NULL, 'f' },
	{ "to", required_argument, NULL, 't' },
	{ "image", required_argument, NULL, 'i' },
	{ "hooks-dir", required_argument, NULL, 'd' },
	{ "fs-type", required_argument, NULL, 's' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

int cli_migrate_data(int argc, char **argv)
{
	struct slotsync_migrate_options o = { 0 };
	struct slotsync_error err = { 0 };
	int c;

	optind = 2;
	while ((c = getopt_long(argc, argv, "h", migrate_options, NULL)) != -1) {
		switch (c) {
		case 'f':
			o.from = optarg;
			break;
		case 't':
			o.to = optarg;
			break;
		case 'i':
			o.image = optarg;
			break;
		case 'd':
			o.hooks_dir = optarg;
			break;
		case 's':
			o.fs_type = optarg;
			break;
		case 'h':
			printf("Usage: slotsync migrate-data --from DEV --to DEV --image DEV [--hooks-dir PATH] [--fs-type T]\n");
			return 0;
		default:
			return 2;
		}
	}
	if (!o.from || !o.to || !o.image || optind != argc) {
		fputs("slotsync migrate-data: needs --from DEV --to DEV --image DEV\n", stderr);
		return 2;
	}
	if (slotsync_migrate_data(&o, &err) < 0) {
		fprintf(stderr, "slotsync migrate-data: %s\n", slotsync_error_message(&err));
		return 1;
	}
	return 0;
}

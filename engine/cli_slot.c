/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync slot-format and slotsync unlock: LUKS2 slots whose keys the TPM
 * seals.  Thin: parses arguments, calls libslotsync (luks.h). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "parse.h"
#include "slotsync/config.h"
#include "slotsync/luks.h"
#include "slotsync/migrate.h"
#include "slotsync/root.h"

enum { OPT_TCTI = 256, OPT_PCRS, OPT_CHECK, OPT_UUID, OPT_CONFIG, OPT_DATA, OPT_ROOT_PCR, OPT_ROOT_HASH };

static const struct option slot_options[] = {
	{ "tcti", required_argument, NULL, OPT_TCTI },
	{ "pcrs", required_argument, NULL, OPT_PCRS },
	{ "check", no_argument, NULL, OPT_CHECK },
	{ "expect-uuid", required_argument, NULL, OPT_UUID },
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "data", no_argument, NULL, OPT_DATA },
	{ "root-pcr", required_argument, NULL, OPT_ROOT_PCR },
	{ "root-hash", required_argument, NULL, OPT_ROOT_HASH },
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

struct slot_opts {
	int check, data, pcrs_set, root_pcr;
	const char *uuid, *config, *root_hash;
};

static int parse(int argc, char **argv, const char *verb, struct slotsync_luks_tpm *tpm, struct slot_opts *so)
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
			so->pcrs_set = 1;
			break;
		}
		case OPT_CHECK:
			so->check = 1;
			break;
		case OPT_UUID:
			so->uuid = optarg;
			break;
		case OPT_CONFIG:
			so->config = optarg;
			break;
		case OPT_DATA:
			so->data = 1;
			break;
		case OPT_ROOT_PCR:
			if (parse_int(optarg, 0, 23, &so->root_pcr) < 0) {
				fprintf(stderr, "slotsync %s: --root-pcr takes a PCR number, 0 to 23, not \"%s\"\n", verb, optarg);
				return -1;
			}
			break;
		case OPT_ROOT_HASH:
			if (!*optarg || strspn(optarg, "0123456789abcdef") != strlen(optarg) || strlen(optarg) % 2) {
				fprintf(stderr, "slotsync %s: --root-hash takes a dm-verity root hash in lower-case hex, not \"%s\"\n",
					verb, optarg);
				return -1;
			}
			so->root_hash = optarg;
			break;
		case 'h':
			if (!strcmp(verb, "slot-format"))
				printf("Usage: slotsync slot-format [--tcti TCTI] [--pcrs N,...] [--root-pcr N --root-hash HEX] DEVICE\n"
				       "With --root-pcr and --root-hash (a data partition): the key unseals only once the\n"
				       "dm-verity root hash HEX was measured into PCR N (slotsync open-root) on a fresh boot.\n"
				       CLI_EXIT_CODES);
			else
				printf("Usage: slotsync unlock [--config FILE] [--data] SLOT\n"
				       "       slotsync unlock [--config FILE] [--tcti TCTI] [--pcrs N,...] [--expect-uuid UUID]\n"
				       "                       DEVICE NAME | --check DEVICE\n"
				       "The key is unsealed under the device's PCR policy: --pcrs, else [tpm] pcrs of --config\n"
				       "(none when neither is given); a key sealed under another policy is refused.\n"
				       CLI_EXIT_CODES);
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
	struct slot_opts so = { .root_pcr = -1 };
	int r = parse(argc, argv, "slot-format", &tpm, &so);

	if (r)
		return r < 0 ? 2 : 0;
	if (argc - optind != 1) {
		fputs("slotsync slot-format: needs DEVICE\n", stderr);
		return 2;
	}
	if ((so.root_pcr >= 0) != (so.root_hash != NULL)) {
		fputs("slotsync slot-format: --root-pcr and --root-hash go together\n", stderr);
		return 2;
	}
	if (so.root_pcr >= 0 && (tpm.pcr_mask & (1u << so.root_pcr))) {
		fprintf(stderr, "slotsync slot-format: PCR %d is in --pcrs and is --root-pcr\n", so.root_pcr);
		return 2;
	}
	slotsync_root_tpm_for(&tpm, so.root_pcr, so.root_hash);
	if (slotsync_luks_format(argv[optind], &tpm, NULL, uuid, &err) < 0) {
		fprintf(stderr, "slotsync slot-format: %s\n", slotsync_error_message(&err));
		return 1;
	}
	printf("%s\n", uuid);
	return 0;
}

/* slotsync unlock SLOT: the slot's (or with --data its data partition's)
 * volume opened as the configuration says, for the system that boots from it. */
static int unlock_slot(const char *name, const struct slot_opts *so)
{
	struct slotsync_error err = { 0 };
	struct slotsync_config cfg;
	const struct slotsync_slot_config *s;
	struct slotsync_volume_handle h;
	struct slotsync_volume v;
	struct slotsync_luks_tpm tpm;

	if (slotsync_config_load(so->config, &cfg, &err) < 0) {
		fprintf(stderr, "slotsync unlock: %s\n", slotsync_error_message(&err));
		return 1;
	}
	s = slotsync_config_slot(&cfg, name);
	if (!s) {
		fprintf(stderr, "slotsync unlock: no slot \"%s\" (A or B)\n", name);
		return 2;
	}
	if (so->data && !s->data[0]) {
		fprintf(stderr, "slotsync unlock: slot %s has no data partition in %s\n", s->name, cfg.path);
		return 1;
	}
	v = slotsync_slot_volume(s, so->data);
	tpm = so->data ? slotsync_config_tpm_data(&cfg) : slotsync_config_tpm(&cfg);
	if (slotsync_volume_unlock(&v, &tpm, &h, &err) < 0) {
		fprintf(stderr, "slotsync unlock: slot %s%s: %s\n", s->name, so->data ? " data" : "",
			slotsync_error_message(&err));
		return 1;
	}
	printf("%s\n", h.path);
	return 0;
}

int cli_unlock(int argc, char **argv)
{
	struct slotsync_luks_tpm tpm = { 0 };
	struct slotsync_config cfg;
	struct slotsync_error err = { 0 };
	char uuid[SLOTSYNC_LUKS_UUID_BYTES];
	struct slot_opts so = { 0 };
	int r = parse(argc, argv, "unlock", &tpm, &so);

	if (r)
		return r < 0 ? 2 : 0;
	if (!so.check && argc - optind == 1)
		return unlock_slot(argv[optind], &so);
	if (argc - optind != (so.check ? 1 : 2)) {
		fputs("slotsync unlock: needs SLOT, or DEVICE NAME, or --check DEVICE\n", stderr);
		return 2;
	}
	if (so.config) {
		/* the device's policy: its configuration's, unless the command line says otherwise */
		if (slotsync_config_load(so.config, &cfg, &err) < 0) {
			fprintf(stderr, "slotsync unlock: %s\n", slotsync_error_message(&err));
			return 1;
		}
		if (!so.pcrs_set)
			tpm.pcr_mask = cfg.pcr_mask;
		if (!tpm.tcti)
			tpm.tcti = slotsync_config_tpm(&cfg).tcti;
	}
	if (slotsync_luks_open(argv[optind], &tpm, so.check ? NULL : argv[optind + 1], so.uuid, uuid, &err) < 0) {
		fprintf(stderr, "slotsync unlock: %s\n", slotsync_error_message(&err));
		return 1;
	}
	if (so.check)
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
			printf("Usage: slotsync migrate-data --from DEV --to DEV --image DEV [--hooks-dir PATH] [--fs-type T]\n"
			       CLI_EXIT_CODES);
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

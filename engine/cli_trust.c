/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync verify and slotsync state: the device's side of signed releases.
 * Thin: parses arguments, calls libslotsync (envelope.h, policy.h), prints. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "io.h"
#include "parse.h"
#include "slotsync/envelope.h"
#include "slotsync/policy.h"

enum { OPT_KEYRING = 256, OPT_COMPATIBLE, OPT_STATE, OPT_POINTER, OPT_INSTALLED, OPT_FLOOR, OPT_ALLOW_DOWNGRADE,
       OPT_INDEX_OUT, OPT_SET_INSTALLED, OPT_RAISE_FLOOR };

static const struct option verify_options[] = {
	{ "keyring", required_argument, NULL, OPT_KEYRING },
	{ "compatible", required_argument, NULL, OPT_COMPATIBLE },
	{ "state", required_argument, NULL, OPT_STATE },
	{ "pointer", required_argument, NULL, OPT_POINTER },
	{ "installed-version", required_argument, NULL, OPT_INSTALLED },
	{ "security-floor", required_argument, NULL, OPT_FLOOR },
	{ "allow-downgrade", no_argument, NULL, OPT_ALLOW_DOWNGRADE },
	{ "index-out", required_argument, NULL, OPT_INDEX_OUT },
	{ "set-installed", required_argument, NULL, OPT_SET_INSTALLED },
	{ "raise-floor", required_argument, NULL, OPT_RAISE_FLOOR },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

int cli_verify(int argc, char **argv)
{
	const char *keyring = NULL, *state_path = NULL, *pointer_path = NULL, *index_out = NULL;
	struct slotsync_policy pol = { 0 };
	struct slotsync_state st;
	struct slotsync_pointer *ptr = NULL;
	struct slotsync_bundle *b = NULL;
	struct slotsync_signer_info signer;
	struct slotsync_error err = { 0 };
	uint64_t floor = 0;
	char when[32];
	int c, rc = 1;

	optind = 2;
	while ((c = getopt_long(argc, argv, "h", verify_options, NULL)) != -1) {
		switch (c) {
		case OPT_KEYRING:
			keyring = optarg;
			break;
		case OPT_COMPATIBLE:
			pol.compatible = optarg;
			break;
		case OPT_STATE:
			state_path = optarg;
			break;
		case OPT_POINTER:
			pointer_path = optarg;
			break;
		case OPT_INSTALLED:
			pol.installed_version = optarg;
			break;
		case OPT_FLOOR:
			if (parse_u64(optarg, 0, INT64_MAX, &floor) < 0) {
				fprintf(stderr, "slotsync verify: --security-floor takes a whole number, not \"%s\"\n", optarg);
				return 2;
			}
			break;
		case OPT_ALLOW_DOWNGRADE:
			pol.allow_downgrade = 1;
			break;
		case OPT_INDEX_OUT:
			index_out = optarg;
			break;
		case 'h':
			fputs("Usage: slotsync verify --keyring CA.pem [--compatible C] [--state FILE] [--pointer POINTER]\n"
			      "       [--installed-version V] [--security-floor N] [--allow-downgrade] [--index-out FILE]\n"
			      "       BUNDLE\n" CLI_EXIT_CODES,
			      stdout);
			return 0;
		default:
			return 2;
		}
	}
	if (argc - optind != 1 || !keyring) {
		fputs("slotsync verify: needs --keyring CA.pem and BUNDLE\n", stderr);
		return 2;
	}
	if (state_path && slotsync_policy_state_load(state_path, &st, &err) < 0)
		goto out;
	if (!state_path)
		memset(&st, 0, sizeof(st));
	if (!pol.installed_version)
		pol.installed_version = st.installed_version;
	pol.security_floor = floor > st.security_floor ? floor : st.security_floor;
	pol.now = time(NULL);

	if (pointer_path) {
		if (slotsync_pointer_open(pointer_path, keyring, &ptr, &signer, &err) < 0 ||
		    slotsync_policy_check_pointer(ptr, st.pointer_version, pol.now, pol.compatible, &err) < 0 ||
		    slotsync_policy_check_pointer_bundle(ptr, argv[optind], &err) < 0)
			goto out;
	}
	if (slotsync_bundle_open(argv[optind], keyring, &b, &err) < 0 || slotsync_policy_check(b->manifest, &pol, &err) < 0)
		goto out;
	/* accepted: now, and only now, anything is written */
	if (index_out && b->index_detached) {
		char hex[SLOTSYNC_DIGEST_HEX_BYTES];
		slotsync_error_set(&err, -ENOENT,
				   "%s carries no index (it was made with --detach-index): its index is in the store at indexes/%s.caibx",
				   argv[optind], slotsync_digest_to_hex(b->manifest->index_sha256, hex));
		goto out;
	}
	if (index_out && io_write_file_atomic(index_out, b->index, b->index_len, &err) < 0)
		goto out;
	if (ptr && state_path) {
		st.pointer_version = ptr->version;
		if (slotsync_policy_state_save(state_path, &st, &err) < 0)
			goto out;
	}
	fwrite(b->env->part[0], 1, b->env->part_len[0], stdout);
	slotsync_time_format(b->signer.signing_time, when);
	fprintf(stderr, "slotsync verify: %s: version %s for %s, signed by %s at %s: accepted\n", argv[optind],
		b->manifest->version, b->manifest->compatible, b->signer.subject, when);
	rc = 0;
out:
	if (rc)
		fprintf(stderr, "slotsync verify: refused: %s\n", slotsync_error_message(&err));
	slotsync_bundle_free(b);
	slotsync_pointer_free(ptr);
	return rc;
}

int cli_state(int argc, char **argv)
{
	const char *state_path = NULL, *set_installed = NULL;
	struct slotsync_state st;
	struct slotsync_error err = { 0 };
	uint64_t raise = 0;
	int c, have_raise = 0;

	optind = 2;
	while ((c = getopt_long(argc, argv, "h", verify_options, NULL)) != -1) {
		switch (c) {
		case OPT_STATE:
			state_path = optarg;
			break;
		case OPT_SET_INSTALLED:
			set_installed = optarg;
			break;
		case OPT_RAISE_FLOOR:
			if (parse_u64(optarg, 0, INT64_MAX, &raise) < 0) {
				fprintf(stderr, "slotsync state: --raise-floor takes a whole number, not \"%s\"\n", optarg);
				return 2;
			}
			have_raise = 1;
			break;
		case 'h':
			fputs("Usage: slotsync state --state FILE [--set-installed V] [--raise-floor N]\n" CLI_EXIT_CODES, stdout);
			return 0;
		default:
			return 2;
		}
	}
	if (!state_path || argc != optind) {
		fputs("slotsync state: needs --state FILE\n", stderr);
		return 2;
	}
	if (slotsync_policy_state_load(state_path, &st, &err) < 0)
		goto fail;
	if (set_installed || have_raise) {
		if (set_installed) {
			if (strlen(set_installed) >= sizeof(st.installed_version)) {
				fputs("slotsync state: --set-installed: version too long\n", stderr);
				return 2;
			}
			snprintf(st.installed_version, sizeof(st.installed_version), "%s", set_installed);
		}
		if (have_raise) {
			if (raise < st.security_floor) {
				fprintf(stderr, "slotsync state: the security floor is %" PRIu64 " and only goes up, not to %" PRIu64 "\n",
					st.security_floor, raise);
				return 1;
			}
			st.security_floor = raise;
		}
		if (slotsync_policy_state_save(state_path, &st, &err) < 0)
			goto fail;
	}
	printf("pointer_version: %" PRIu64 "\nsecurity_floor: %" PRIu64 "\ninstalled_version: %s\n", st.pointer_version,
	       st.security_floor, st.installed_version);
	return 0;
fail:
	fprintf(stderr, "slotsync state: %s\n", slotsync_error_message(&err));
	return 1;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync-bootctl: the A/B boot state from the command line, for boot scripts,
 * health checks and operators.  Thin: parses arguments, calls libslotsync-boot. */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slotsync/boot.h"
#include "slotsync/version.h"

#include "parse.h"

static void usage(FILE *f)
{
	fputs("Usage: slotsync-bootctl [--backend grub|uboot|barebox|file] [--env PATH] [--config FILE]\n"
	      "                        [--booted A|B] VERB\n"
	      "\n"
	      "Verbs:\n"
	      "  status [--json]          booted slot, next slot, and per slot priority, tries, good\n"
	      "  switch SLOT [--tries N]  try SLOT at the next boots, N times (default 3), atomically\n"
	      "  mark-good [SLOT]         the booted slot (or SLOT) proved healthy\n"
	      "  mark-bad SLOT            never boot SLOT until it is switched to again\n"
	      "  simulate-boot            apply one boot as the bootloader would; print the slot\n"
	      "\n"
	      "--env: file: the state file; grub: grubenv; uboot: fw_env.config; barebox: the\n"
	      "state storage (with barebox-magic in --config). The booted slot comes from the\n"
	      "kernel command line (slotsync.slot= or rauc.slot=) unless --booted says.\n",
	      f);
}

enum { OPT_BACKEND = 256, OPT_ENV, OPT_CONFIG, OPT_BOOTED, OPT_JSON, OPT_TRIES, OPT_VERSION };

static const struct option options[] = {
	{ "backend", required_argument, NULL, OPT_BACKEND }, { "env", required_argument, NULL, OPT_ENV },
	{ "config", required_argument, NULL, OPT_CONFIG },   { "booted", required_argument, NULL, OPT_BOOTED },
	{ "json", no_argument, NULL, OPT_JSON },             { "tries", required_argument, NULL, OPT_TRIES },
	{ "version", no_argument, NULL, OPT_VERSION },       { "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int fail(const char *verb, struct slotsync_error *err)
{
	fprintf(stderr, "slotsync-bootctl %s: %s\n", verb, slotsync_error_message(err));
	return 1;
}

static int status(const struct slotsync_boot_config *cfg, int json)
{
	struct slotsync_error err = { 0 }, berr = { 0 };
	struct slotsync_boot_state st;
	int takes_try, next, booted;

	if (slotsync_boot_load(cfg, &st, &err) < 0)
		return fail("status", &err);
	next = slotsync_boot_choose(&st, &takes_try);
	booted = slotsync_boot_booted(cfg, &berr);
	if (json) {
		struct json_object *o = json_object_new_object(), *slots = json_object_new_object();
		char name[2] = { 0 };
		json_object_object_add(o, "backend", json_object_new_string(slotsync_boot_backend_name(cfg->backend)));
		name[0] = booted >= 0 ? slotsync_boot_slot_name(booted) : 0;
		json_object_object_add(o, "booted", booted >= 0 ? json_object_new_string(name) : NULL);
		name[0] = next >= 0 ? slotsync_boot_slot_name(next) : 0;
		json_object_object_add(o, "next", next >= 0 ? json_object_new_string(name) : NULL);
		for (int s = 0; s < 2; s++) {
			struct json_object *so = json_object_new_object();
			name[0] = slotsync_boot_slot_name(s);
			json_object_object_add(so, "priority", json_object_new_int(st.slot[s].priority));
			json_object_object_add(so, "tries", json_object_new_int(st.slot[s].tries));
			json_object_object_add(so, "good", json_object_new_boolean(st.slot[s].good));
			json_object_object_add(slots, name, so);
		}
		json_object_object_add(o, "slots", slots);
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
		return 0;
	}
	printf("backend: %s\n", slotsync_boot_backend_name(cfg->backend));
	printf("booted: %c\n", booted >= 0 ? slotsync_boot_slot_name(booted) : '?');
	printf("next: %c%s\n", next >= 0 ? slotsync_boot_slot_name(next) : '-',
	       next < 0 ? " (no bootable slot)" : takes_try ? " (a try)" : "");
	for (int s = 0; s < 2; s++)
		printf("slot %c: priority %d, tries %d, %s\n", slotsync_boot_slot_name(s), st.slot[s].priority,
		       st.slot[s].tries, st.slot[s].good ? "good" : "not good");
	return 0;
}

int main(int argc, char **argv)
{
	struct slotsync_boot_config cfg, over = { 0 };
	struct slotsync_error err = { 0 };
	const char *config = NULL, *backend = NULL, *verb;
	int c, json = 0, tries = 0, have_backend = 0;

	while ((c = getopt_long(argc, argv, "+h", options, NULL)) != -1) {
		switch (c) {
		case OPT_BACKEND:
			backend = optarg;
			break;
		case OPT_ENV:
			snprintf(over.env, sizeof(over.env), "%s", optarg);
			break;
		case OPT_CONFIG:
			config = optarg;
			break;
		case OPT_BOOTED:
			if (slotsync_boot_slot_parse(optarg) < 0) {
				fprintf(stderr, "slotsync-bootctl: --booted is A or B, not \"%s\"\n", optarg);
				return 2;
			}
			snprintf(over.booted, sizeof(over.booted), "%c", slotsync_boot_slot_name(slotsync_boot_slot_parse(optarg)));
			break;
		case OPT_VERSION:
			printf("slotsync-bootctl %s\n", SLOTSYNC_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (slotsync_boot_config_load(config, &cfg, &err) < 0)
		return fail("config", &err);
	if (backend) {
		if (slotsync_boot_backend_parse(backend, &cfg.backend) < 0) {
			fprintf(stderr, "slotsync-bootctl: unknown backend \"%s\" (grub, uboot, barebox or file)\n", backend);
			return 2;
		}
		have_backend = 1;
	}
	(void)have_backend;
	if (over.env[0])
		memcpy(cfg.env, over.env, sizeof(cfg.env));
	if (over.booted[0])
		memcpy(cfg.booted, over.booted, sizeof(cfg.booted));
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	verb = argv[optind++];
	/* the verb's own options and its one positional argument, in any order */
	{
		const char *pos[2] = { NULL, NULL };
		int n_pos = 0;
		for (int i = optind; i < argc; i++) {
			const char *t = NULL;
			if (!strcmp(argv[i], "--json")) {
				json = 1;
				continue;
			}
			if (!strcmp(argv[i], "--tries") && i + 1 < argc)
				t = argv[++i];
			else if (!strncmp(argv[i], "--tries=", 8))
				t = argv[i] + 8;
			if (t) {
				if (parse_int(t, 1, SLOTSYNC_BOOT_TRIES_MAX, &tries) < 0) {
					fprintf(stderr, "slotsync-bootctl: --tries takes 1 to %d, not \"%s\"\n",
						SLOTSYNC_BOOT_TRIES_MAX, t);
					return 2;
				}
				continue;
			}
			if (argv[i][0] == '-' || n_pos == 2) {
				fprintf(stderr, "slotsync-bootctl %s: unexpected argument \"%s\"\n", verb, argv[i]);
				return 2;
			}
			pos[n_pos++] = argv[i];
		}
		for (int i = 0; i < n_pos; i++)
			argv[optind + i] = (char *)pos[i];
		argc = optind + n_pos;
	}
	if (!strcmp(verb, "status")) {
		if (optind != argc)
			goto extra;
		return status(&cfg, json);
	}
	if (!strcmp(verb, "switch") || !strcmp(verb, "mark-bad") || !strcmp(verb, "mark-good")) {
		int slot, r;
		if (optind == argc && !strcmp(verb, "mark-good")) {
			slot = slotsync_boot_booted(&cfg, &err);
			if (slot < 0)
				return fail(verb, &err);
		} else if (optind + 1 == argc) {
			slot = slotsync_boot_slot_parse(argv[optind]);
			if (slot < 0) {
				fprintf(stderr, "slotsync-bootctl %s: SLOT is A or B, not \"%s\"\n", verb, argv[optind]);
				return 2;
			}
		} else {
			fprintf(stderr, "slotsync-bootctl %s: needs SLOT\n", verb);
			return 2;
		}
		if (!strcmp(verb, "switch"))
			r = slotsync_boot_switch(&cfg, slot, tries ? tries : cfg.default_tries, &err);
		else if (!strcmp(verb, "mark-good"))
			r = slotsync_boot_mark_good(&cfg, slot, &err);
		else
			r = slotsync_boot_mark_bad(&cfg, slot, &err);
		if (r < 0)
			return fail(verb, &err);
		return 0;
	}
	if (!strcmp(verb, "simulate-boot")) {
		int booted;
		if (optind != argc)
			goto extra;
		if (slotsync_boot_simulate_boot(&cfg, &booted, &err) < 0)
			return fail(verb, &err);
		printf("%c\n", slotsync_boot_slot_name(booted));
		return 0;
	}
	fprintf(stderr, "slotsync-bootctl: unknown verb \"%s\"\n", verb);
	usage(stderr);
	return 2;
extra:
	fprintf(stderr, "slotsync-bootctl %s: unexpected argument \"%s\"\n", verb, argv[optind]);
	return 2;
}

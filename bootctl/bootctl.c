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
#include "slotsync/log.h"
#include "slotsync/version.h"

#include "parse.h"

/* Each verb's synopsis and what it does, for the global usage and VERB --help. */
struct verb {
	const char *name, *synopsis, *summary, *help;
};

static const struct verb verbs[] = {
	{ "status", "status [--json]", "booted slot, next slot, and per slot priority, tries, good",
	  "Prints the slot the system runs from, the slot the bootloader takes at the next\n"
	  "boot, and per slot its priority, tries left and good flag.\n"
	  "  --json  the same as one JSON object\n" },
	{ "switch", "switch SLOT [--tries N]", "try SLOT at the next boots, N times (default 3), atomically",
	  "Makes SLOT (A or B) the first slot, not good, with N tries (default 3, or\n"
	  "default-tries in --config); the other slot stays as the fallback.\n"
	  "  --tries N  boots SLOT may take without being marked good (1 to 100; GRUB: 9)\n" },
	{ "mark-good", "mark-good [SLOT]", "the booted slot (or SLOT) proved healthy",
	  "Marks SLOT (default: the booted slot, from --booted or the kernel command\n"
	  "line's slotsync.slot= or rauc.slot=) good: the bootloader keeps booting it.\n" },
	{ "mark-bad", "mark-bad SLOT", "never boot SLOT until it is switched to again",
	  "Marks SLOT (A or B) not bootable; the other slot becomes the first.\n" },
	{ "simulate-boot", "simulate-boot", "apply one boot as the bootloader would; print the slot",
	  "Applies one boot as the bootloader would (takes a try from a slot not yet\n"
	  "good) and prints the slot it boots: for tests and dry runs.\n" },
	{ "init", "init [--force]", "write the first-boot state: A good and first, B not bootable",
	  "Writes the first-boot state (A good and first, B not bootable) where the\n"
	  "storage holds none yet: when the device is provisioned. A missing grubenv or\n"
	  "state file is created; U-Boot's and Barebox's storage must exist. Every other\n"
	  "verb refuses a storage without a state.\n"
	  "  --force  write it over an existing state (valid or damaged)\n" },
};

#define N_VERBS (sizeof(verbs) / sizeof(verbs[0]))

static const char exit_codes[] = "Exit status: 0 done, 1 failed (the message says why), 2 usage error.\n";

static void usage(FILE *f)
{
	fputs("Usage: slotsync-bootctl [--backend grub|uboot|barebox|file] [--env PATH] [--config FILE]\n"
	      "                        [--booted A|B] [-v|-q] VERB [ARGS]\n"
	      "\n"
	      "Verbs:\n",
	      f);
	for (size_t i = 0; i < N_VERBS; i++)
		fprintf(f, "  %-24s %s\n", verbs[i].synopsis, verbs[i].summary);
	fputs("\n"
	      "Options:\n"
	      "  --backend NAME   the bootloader: grub, uboot, barebox or file (default file)\n"
	      "  --env PATH       file: the state file; grub: grubenv; uboot: fw_env.config;\n"
	      "                   barebox: the state storage (with barebox-magic in --config)\n"
	      "  --config FILE    key = value lines: backend, env, booted, cmdline,\n"
	      "                   default-tries, barebox-magic, barebox-offset, barebox-stride\n"
	      "  --booted A|B     the slot running now (default: the kernel command line's\n"
	      "                   slotsync.slot= or rauc.slot=)\n"
	      "  -v, --verbose    more messages (twice: debug)\n"
	      "  -q, --quiet      errors only\n"
	      "  --version        print the version\n"
	      "  -h, --help       this help; VERB --help: that verb's\n"
	      "\n",
	      f);
	fputs(exit_codes, f);
}

static void verb_usage(const struct verb *v)
{
	printf("Usage: slotsync-bootctl [OPTIONS] %s\n\n%s\n", v->synopsis, v->help);
	printf("OPTIONS (before the verb): --backend, --env, --config, --booted, -v, -q;\n"
	       "slotsync-bootctl --help describes them.\n\n%s", exit_codes);
}

static const struct verb *verb_find(const char *name)
{
	for (size_t i = 0; i < N_VERBS; i++)
		if (!strcmp(name, verbs[i].name))
			return &verbs[i];
	return NULL;
}

enum { OPT_BACKEND = 256, OPT_ENV, OPT_CONFIG, OPT_BOOTED, OPT_JSON, OPT_TRIES, OPT_VERSION };

static const struct option options[] = {
	{ "backend", required_argument, NULL, OPT_BACKEND }, { "env", required_argument, NULL, OPT_ENV },
	{ "config", required_argument, NULL, OPT_CONFIG },   { "booted", required_argument, NULL, OPT_BOOTED },
	{ "json", no_argument, NULL, OPT_JSON },             { "tries", required_argument, NULL, OPT_TRIES },
	{ "version", no_argument, NULL, OPT_VERSION },       { "help", no_argument, NULL, 'h' },
	{ "verbose", no_argument, NULL, 'v' },               { "quiet", no_argument, NULL, 'q' },
	{ NULL, 0, NULL, 0 },
};

/* --version wins wherever it stands (but not as the value of an option). */
static int wants_version(int argc, char **argv)
{
	static const char *const with_value[] = { "--backend", "--env", "--config", "--booted", "--tries" };

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--version"))
			return 1;
		if (!strcmp(argv[i], "--"))
			return 0;
		for (size_t k = 0; k < sizeof(with_value) / sizeof(with_value[0]); k++)
			if (!strcmp(argv[i], with_value[k]))
				i++;
	}
	return 0;
}

static void log_louder(void)
{
	if (slotsync_log_get_level() < SLOTSYNC_LOG_DEBUG)
		slotsync_log_set_level(slotsync_log_get_level() + 1);
}

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
	const struct verb *v;
	const char *config = NULL, *backend = NULL, *verb;
	int c, json = 0, tries = 0, force = 0;

	if (wants_version(argc, argv)) {
		printf("slotsync-bootctl %s\n", SLOTSYNC_VERSION);
		return 0;
	}
	while ((c = getopt_long(argc, argv, "+hvq", options, NULL)) != -1) {
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
		case 'v':
			log_louder();
			break;
		case 'q':
			slotsync_log_set_level(SLOTSYNC_LOG_ERROR);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	verb = argv[optind++];
	v = verb_find(verb);
	if (!v) {
		fprintf(stderr, "slotsync-bootctl: unknown verb \"%s\"\n", verb);
		usage(stderr);
		return 2;
	}
	/* the verb's own options and its one positional argument, in any order */
	{
		const char *pos[2] = { NULL, NULL };
		int n_pos = 0;
		for (int i = optind; i < argc; i++) {
			if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
				verb_usage(v);
				return 0;
			}
		}
		for (int i = optind; i < argc; i++) {
			const char *t = NULL;
			if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) {
				log_louder();
				continue;
			}
			if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet")) {
				slotsync_log_set_level(SLOTSYNC_LOG_ERROR);
				continue;
			}
			if (!strcmp(argv[i], "--json")) {
				json = 1;
				continue;
			}
			if (!strcmp(argv[i], "--force") && !strcmp(verb, "init")) {
				force = 1;
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
				fprintf(stderr, "slotsync-bootctl %s: unexpected argument \"%s\" (slotsync-bootctl %s --help)\n",
					verb, argv[i], verb);
				return 2;
			}
			pos[n_pos++] = argv[i];
		}
		for (int i = 0; i < n_pos; i++)
			argv[optind + i] = (char *)pos[i];
		argc = optind + n_pos;
	}
	if (slotsync_boot_config_load(config, &cfg, &err) < 0)
		return fail("config", &err);
	if (backend && slotsync_boot_backend_parse(backend, &cfg.backend) < 0) {
		fprintf(stderr, "slotsync-bootctl: unknown backend \"%s\" (grub, uboot, barebox or file)\n", backend);
		return 2;
	}
	if (over.env[0])
		memcpy(cfg.env, over.env, sizeof(cfg.env));
	if (over.booted[0])
		memcpy(cfg.booted, over.booted, sizeof(cfg.booted));
	if (!strcmp(verb, "status")) {
		if (optind != argc)
			goto extra;
		return status(&cfg, json);
	}
	if (!strcmp(verb, "init")) {
		if (optind != argc)
			goto extra;
		if (slotsync_boot_init(&cfg, force, &err) < 0)
			return fail(verb, &err);
		return 0;
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
	/* simulate-boot */
	{
		int booted;
		if (optind != argc)
			goto extra;
		if (slotsync_boot_simulate_boot(&cfg, &booted, &err) < 0)
			return fail(verb, &err);
		printf("%c\n", slotsync_boot_slot_name(booted));
		return 0;
	}
extra:
	fprintf(stderr, "slotsync-bootctl %s: unexpected argument \"%s\"\n", verb, argv[optind]);
	return 2;
}

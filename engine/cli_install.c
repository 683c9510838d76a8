/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync install, status, mark-good, mark-bad: the device's updater as one
 * command each.  Thin: parses arguments, calls the system layer (install.h). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "slotsync/agent.h"
#include "slotsync/install.h"
#include "slotsync/log.h"
#include "clock.h"

/* ---- progress: a bar on a TTY, JSON lines for scripts ------------------- */

struct progress_out {
	int json, bar;
	double last;
	enum slotsync_install_step last_step;
};

static void human(double b, char *out, size_t n)
{
	if (b >= 1e9)
		snprintf(out, n, "%.2f GB", b / 1e9);
	else if (b >= 1e6)
		snprintf(out, n, "%.1f MB", b / 1e6);
	else if (b >= 1e3)
		snprintf(out, n, "%.1f kB", b / 1e3);
	else
		snprintf(out, n, "%.0f B", b);
}

static void on_progress(void *ud, const struct slotsync_install_progress *p)
{
	struct progress_out *po = ud;
	double t = clock_now_s();
	int step_changed = p->step != po->last_step;

	if (!step_changed && t - po->last < (po->json ? 0.5 : 0.2))
		return;
	po->last = t;
	po->last_step = p->step;
	if (po->json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "step", json_object_new_string(slotsync_install_step_name(p->step)));
		json_object_object_add(o, "bytes_total", json_object_new_int64((int64_t)p->bytes_total));
		json_object_object_add(o, "bytes_done", json_object_new_int64((int64_t)p->bytes_done));
		json_object_object_add(o, "bytes_fetched", json_object_new_int64((int64_t)p->bytes_fetched));
		json_object_object_add(o, "bytes_from_seed", json_object_new_int64((int64_t)p->bytes_from_seed));
		json_object_object_add(o, "rate", json_object_new_double(p->rate));
		json_object_object_add(o, "seconds", json_object_new_double(p->seconds));
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		fflush(stdout);
		json_object_put(o);
	}
	if (po->bar) {
		char done[32], total[32], net[32], seed[32], rate[32], eta[32] = "";
		double frac = p->bytes_total ? (double)p->bytes_done / (double)p->bytes_total : 0;
		int w = 24, fill = (int)(frac * w + 0.5);
		char bar[32];
		for (int i = 0; i < w; i++)
			bar[i] = i < fill ? '#' : '-';
		bar[w] = '\0';
		human((double)p->bytes_done, done, sizeof(done));
		human((double)p->bytes_total, total, sizeof(total));
		human((double)p->bytes_fetched, net, sizeof(net));
		human((double)p->bytes_from_seed, seed, sizeof(seed));
		human(p->rate, rate, sizeof(rate));
		if (p->step == SLOTSYNC_STEP_ASSEMBLE && p->rate > 0 && p->bytes_done < p->bytes_total) {
			/* what is left comes over the network at the recent rate, at worst */
			double left = (double)(p->bytes_total - p->bytes_done) / p->rate;
			snprintf(eta, sizeof(eta), " ETA %dm%02ds", (int)left / 60, (int)left % 60);
		}
		fprintf(stderr, "\r\033[K%-12s [%s] %3.0f%% %s/%s  %s/s  network %s, local %s%s%s",
			slotsync_install_step_name(p->step), bar, frac * 100, done, total, rate, net, seed, eta,
			p->step >= SLOTSYNC_STEP_REBOOT ? "\n" : "");
		fflush(stderr);
	}
}

static int load_config(const char *path, struct slotsync_config *cfg, const char *verb)
{
	struct slotsync_error err = { 0 };

	if (slotsync_config_load(path, cfg, &err) < 0) {
		fprintf(stderr, "slotsync %s: %s\n", verb, slotsync_error_message(&err));
		return -1;
	}
	return 0;
}

enum { OPT_CONFIG = 256, OPT_ABORT, OPT_JSON_PROGRESS, OPT_JSON, OPT_NO_PROGRESS };

static const struct option install_options[] = {
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "abort", no_argument, NULL, OPT_ABORT },
	{ "json-progress", no_argument, NULL, OPT_JSON_PROGRESS },
	{ "no-progress", no_argument, NULL, OPT_NO_PROGRESS },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int common_opt(int c, const char **config, const char *usage)
{
	switch (c) {
	case OPT_CONFIG:
		*config = optarg;
		return 0;
	case 'v':
		slotsync_log_set_level(slotsync_log_get_level() + 1);
		return 0;
	case 'q':
		slotsync_log_set_level(SLOTSYNC_LOG_ERROR);
		return 0;
	case 'h':
		printf("%s", usage);
		return 1;
	default:
		return -1;
	}
}

int cli_install(int argc, char **argv)
{
	static const char usage[] = "Usage: slotsync install [--config FILE] [--json-progress] [--no-progress] BUNDLE|URL\n"
				    "       slotsync install [--config FILE] --abort [BUNDLE|URL]\n" CLI_EXIT_CODES;
	struct slotsync_install_options o = { 0 };
	struct slotsync_install_record rec;
	struct slotsync_error err = { 0 };
	struct slotsync_config cfg;
	struct progress_out po = { 0 };
	const char *config = NULL;
	int c, r, no_progress = 0;

	optind = 2;
	while ((c = getopt_long(argc, argv, "vqh", install_options, NULL)) != -1) {
		if (c == OPT_ABORT)
			o.abort = 1;
		else if (c == OPT_JSON_PROGRESS)
			po.json = 1;
		else if (c == OPT_NO_PROGRESS)
			no_progress = 1;
		else if ((r = common_opt(c, &config, usage)) != 0)
			return r < 0 ? (fputs(usage, stderr), 2) : 0;
	}
	if (argc - optind > 1 || (argc - optind == 0 && !o.abort)) {
		fputs(usage, stderr);
		return 2;
	}
	if (load_config(config, &cfg, "install") < 0)
		return 1;
	o.cfg = &cfg;
	o.bundle = argc > optind ? argv[optind] : NULL;
	po.bar = !no_progress && !po.json && isatty(STDERR_FILENO);
	po.last_step = SLOTSYNC_STEP_NONE;
	if (po.json || po.bar) {
		o.progress = on_progress;
		o.progress_ud = &po;
	}
	r = slotsync_install(&o, &rec, &err);
	if (r < 0 && po.bar && po.last_step != SLOTSYNC_STEP_NONE)
		fputs("\n", stderr);
	if (r < 0) {
		fprintf(stderr, "slotsync install: %s\n", slotsync_error_message(&err));
		if (r == -EBUSY)
			return SLOTSYNC_EXIT_BUSY;
		if (rec.error_final || !rec.source[0]) {
			if (rec.source[0])
				fprintf(stderr, "slotsync install: failed for good: running it again fails the same way\n");
			return SLOTSYNC_EXIT_FAILED;
		}
		if (rec.step == SLOTSYNC_STEP_FAILED)
			/* cut before anything was written (the bundle could not be had) */
			fprintf(stderr, "slotsync install: nothing was written; run the same command again to try again\n");
		else
			fprintf(stderr, "slotsync install: the install stopped at step %s; run the same command again to resume it\n",
				slotsync_install_step_name(rec.step));
		return SLOTSYNC_EXIT_RESUMABLE;
	}
	if (!o.bundle) {
		printf("install: the unfinished install was dropped\n");
		return 0;
	}
	if (po.json) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "step", json_object_new_string(slotsync_install_step_name(rec.step)));
		json_object_object_add(j, "version", json_object_new_string(rec.version));
		json_object_object_add(j, "slot", json_object_new_string(rec.target ? "B" : "A"));
		json_object_object_add(j, "bytes_total", json_object_new_int64((int64_t)rec.bytes_total));
		json_object_object_add(j, "bytes_fetched", json_object_new_int64((int64_t)rec.bytes_fetched));
		json_object_object_add(j, "bytes_from_seed", json_object_new_int64((int64_t)rec.bytes_from_seed));
		if (rec.n_mirrors) {
			/* what each store served, as the install record has it */
			json_object *ms = json_object_new_array();
			for (size_t i = 0; i < rec.n_mirrors; i++) {
				json_object *v = json_object_new_object();
				json_object_object_add(v, "url", json_object_new_string(rec.mirrors[i].url));
				json_object_object_add(v, "bytes", json_object_new_int64((int64_t)rec.mirrors[i].bytes));
				json_object_object_add(v, "objects", json_object_new_int64((int64_t)rec.mirrors[i].objects));
				json_object_object_add(v, "objects_moved", json_object_new_int64((int64_t)rec.mirrors[i].objects_moved));
				json_object_object_add(v, "connections", json_object_new_int64((int64_t)rec.mirrors[i].connections));
				if (rec.mirrors[i].dropped[0])
					json_object_object_add(v, "dropped", json_object_new_string(rec.mirrors[i].dropped));
				json_object_array_add(ms, v);
			}
			json_object_object_add(j, "mirrors", ms);
		}
		printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
		json_object_put(j);
	} else {
		printf("install: version %s is in slot %c (%" PRIu64 " bytes: %" PRIu64 " fetched, %" PRIu64
		       " from the running slot", rec.version, 'A' + rec.target, rec.bytes_total, rec.bytes_fetched,
		       rec.bytes_from_seed);
		/* the slot group's further images, each with its own bytes */
		for (size_t i = 0; i < rec.n_images; i++)
			printf("; image %s: %" PRIu64 " bytes, %" PRIu64 " fetched, %" PRIu64 " from the running slot",
			       rec.images[i].name, rec.images[i].bytes_total, rec.images[i].bytes_fetched,
			       rec.images[i].bytes_from_seed);
		printf("); %s\n", rec.step == SLOTSYNC_STEP_REBOOT ? "reboot to run it" : slotsync_install_step_name(rec.step));
		for (size_t i = 0; i < rec.n_mirrors; i++) {
			const struct slotsync_install_mirror *mi = &rec.mirrors[i];
			printf("install: store %s: %" PRIu64 " bytes, %" PRIu64 " objects", mi->url, mi->bytes, mi->objects);
			if (mi->objects_moved)
				printf(", %" PRIu64 " asked of the next store", mi->objects_moved);
			if (mi->dropped[0])
				printf("; dropped: %s", mi->dropped);
			printf("\n");
		}
	}
	return 0;
}

static const struct option status_options[] = {
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static void print_status_text(const char *json)
{
	json_object *o = json_tokener_parse(json), *slots, *s, *v, *inst, *failed;

	if (!o)
		return;
	printf("booted:  %s\n", json_object_object_get_ex(o, "booted", &v) && v ? json_object_get_string(v) : "unknown");
	if (json_object_object_get_ex(o, "boot_error", &v))
		printf("boot state: %s\n", json_object_get_string(v));
	if (json_object_object_get_ex(o, "slots", &slots))
		for (int i = 0; i < 2; i++) {
			const char name[2] = { (char)('A' + i), '\0' };
			json_object *pr, *tr, *gd, *ver, *st;
			if (!json_object_object_get_ex(slots, name, &s))
				continue;
			json_object_object_get_ex(s, "version", &ver);
			json_object_object_get_ex(s, "status", &st);
			printf("slot %s:  %-9s version %-10s", name, json_object_get_string(st), ver ? json_object_get_string(ver) : "-");
			if (json_object_object_get_ex(s, "priority", &pr) && json_object_object_get_ex(s, "tries", &tr) &&
			    json_object_object_get_ex(s, "good", &gd))
				printf(" priority %d, tries %d, %s", json_object_get_int(pr), json_object_get_int(tr),
				       json_object_get_boolean(gd) ? "good" : "not good");
			json_object_object_get_ex(s, "device", &v);
			printf("  (%s)\n", json_object_get_string(v));
		}
	if (json_object_object_get_ex(o, "install", &inst) && inst) {
		json_object *step, *ver, *tgt, *err, *bd, *bt, *bf;
		json_object_object_get_ex(inst, "step", &step);
		json_object_object_get_ex(inst, "version", &ver);
		json_object_object_get_ex(inst, "target", &tgt);
		json_object_object_get_ex(inst, "error", &err);
		json_object_object_get_ex(inst, "bytes_done", &bd);
		json_object_object_get_ex(inst, "bytes_total", &bt);
		json_object_object_get_ex(inst, "bytes_fetched", &bf);
		printf("install: version %s into slot %s, step %s, %" PRId64 " of %" PRId64 " bytes, %" PRId64 " fetched\n",
		       json_object_get_string(ver), json_object_get_string(tgt), json_object_get_string(step),
		       json_object_get_int64(bd), json_object_get_int64(bt), json_object_get_int64(bf));
		if (json_object_object_get_ex(inst, "images", &v))
			for (size_t i = 0; i < json_object_array_length(v); i++) {
				json_object *im = json_object_array_get_idx(v, i), *n, *d;
				json_object_object_get_ex(im, "name", &n);
				json_object_object_get_ex(im, "done", &d);
				json_object_object_get_ex(im, "bytes_done", &bd);
				json_object_object_get_ex(im, "bytes_total", &bt);
				json_object_object_get_ex(im, "bytes_fetched", &bf);
				printf("         image %s: %" PRId64 " of %" PRId64 " bytes, %" PRId64 " fetched%s\n",
				       json_object_get_string(n), json_object_get_int64(bd), json_object_get_int64(bt),
				       json_object_get_int64(bf), json_object_get_boolean(d) ? ", checked" : "");
			}
		if (err && *json_object_get_string(err))
			printf("         last error: %s\n", json_object_get_string(err));
	}
	if (json_object_object_get_ex(o, "failed_releases", &failed))
		for (size_t i = 0; i < json_object_array_length(failed); i++) {
			json_object *e = json_object_array_get_idx(failed, i), *ver, *why;
			json_object_object_get_ex(e, "version", &ver);
			json_object_object_get_ex(e, "reason", &why);
			printf("failed:  %s: %s\n", json_object_get_string(ver), json_object_get_string(why));
		}
	json_object_put(o);
}

/* The options of a verb that takes [--config FILE] [--json] and n_args
 * arguments: -1 to go on, else the exit code (help printed: 0; usage: 2). */
static int config_json_args(int argc, char **argv, const char *optstring, const struct option *options,
			    const char *usage, int n_args, const char **config, int *as_json)
{
	int c, r;

	optind = 2;
	while ((c = getopt_long(argc, argv, optstring, options, NULL)) != -1) {
		if (c == OPT_JSON)
			*as_json = 1;
		else if ((r = common_opt(c, config, usage)) != 0)
			return r < 0 ? (fputs(usage, stderr), 2) : 0;
	}
	if (argc - optind != n_args) {
		fputs(usage, stderr);
		return 2;
	}
	return -1;
}

int cli_status(int argc, char **argv)
{
	static const char usage[] = "Usage: slotsync status [--config FILE] [--json]\n" CLI_EXIT_CODES;
	struct slotsync_error err = { 0 };
	struct slotsync_config cfg;
	const char *config = NULL;
	char *json = NULL;
	int as_json = 0, rc = config_json_args(argc, argv, "h", status_options, usage, 0, &config, &as_json);

	if (rc >= 0)
		return rc;
	if (load_config(config, &cfg, "status") < 0)
		return 1;
	if (slotsync_install_status_json(&cfg, &json, &err) < 0) {
		fprintf(stderr, "slotsync status: %s\n", slotsync_error_message(&err));
		return 1;
	}
	if (as_json)
		printf("%s\n", json);
	else
		print_status_text(json);
	free(json);
	return 0;
}

int cli_mark(int argc, char **argv)
{
	const char *state = !strcmp(argv[1], "mark-good") ? "good" : !strcmp(argv[1], "mark-bad") ? "bad" : "active";
	struct slotsync_error err = { 0 };
	struct slotsync_config cfg;
	const char *config = NULL;
	char usage[768];
	int c, r;

	snprintf(usage, sizeof(usage),
		 "Usage: slotsync %s [--config FILE] [booted|other|A|B]\n"
		 "      The slot (default: the booted one) %s.\n" CLI_EXIT_CODES,
		 argv[1], !strcmp(state, "active") ? "boots next" : !strcmp(state, "good") ? "is marked good" : "is marked bad");
	optind = 2;
	while ((c = getopt_long(argc, argv, "h", status_options, NULL)) != -1) {
		if ((r = common_opt(c, &config, usage)) != 0)
			return r < 0 ? (fputs(usage, stderr), 2) : 0;
	}
	if (argc - optind > 1) {
		fputs(usage, stderr);
		return 2;
	}
	if (load_config(config, &cfg, argv[1]) < 0)
		return 1;
	if (slotsync_install_mark_slot(&cfg, state, argc > optind ? argv[optind] : NULL, &err) < 0) {
		fprintf(stderr, "slotsync %s: %s\n", argv[1], slotsync_error_message(&err));
		return err.code == -EINVAL ? 2 : 1;
	}
	return 0;
}

static const struct option info_options[] = {
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static void print_info_text(const char *json)
{
	json_object *o = json_tokener_parse(json), *a;

	if (!o)
		return;
	json_object_object_foreach(o, key, val)
	{
		if (!val || json_object_is_type(val, json_type_array) || json_object_is_type(val, json_type_object))
			continue;
		printf("%-20s %s\n", key, json_object_get_string(val));
	}
	if (json_object_object_get_ex(o, "stores", &a))
		for (size_t i = 0; i < json_object_array_length(a); i++)
			printf("%-20s %s\n", "store", json_object_get_string(json_object_array_get_idx(a, i)));
	if (json_object_object_get_ex(o, "hooks", &a)) {
		json_object_object_foreach(a, hook, h)
		{
			if (h)
				printf("%-20s %s\n", hook, json_object_get_string(h));
		}
	}
	if (json_object_object_get_ex(o, "deltas", &a))
		for (size_t i = 0; i < json_object_array_length(a); i++) {
			json_object *d = json_object_array_get_idx(a, i), *base, *size;
			json_object_object_get_ex(d, "base_index_sha256", &base);
			json_object_object_get_ex(d, "size", &size);
			printf("%-20s from base index %s (%s bytes of delta index)\n", "delta", json_object_get_string(base),
			       json_object_get_string(size));
		}
	if (json_object_object_get_ex(o, "images", &a))
		for (size_t i = 0; i < json_object_array_length(a); i++) {
			json_object *d = json_object_array_get_idx(a, i), *name, *size, *sha;
			json_object_object_get_ex(d, "name", &name);
			json_object_object_get_ex(d, "size", &size);
			json_object_object_get_ex(d, "sha256", &sha);
			printf("%-20s %s: %s bytes, SHA-256 %s\n", "image", json_object_get_string(name),
			       json_object_get_string(size), json_object_get_string(sha));
		}
	json_object_put(o);
}

int cli_info(int argc, char **argv)
{
	static const char usage[] = "Usage: slotsync info [--config FILE] [--json] BUNDLE\n"
				    "      Check BUNDLE with the configuration's keyring (signature, chain, manifest)\n"
				    "      and print its manifest: version, compatible, image size, stores, deltas, hooks,\n"
				    "      and the slot group's further images.\n"
				    CLI_EXIT_CODES;
	struct slotsync_error err = { 0 };
	struct slotsync_config cfg;
	const char *config = NULL;
	char *json = NULL;
	int as_json = 0, rc = config_json_args(argc, argv, "vqh", info_options, usage, 1, &config, &as_json);

	if (rc >= 0)
		return rc;
	if (load_config(config, &cfg, "info") < 0)
		return 1;
	if (slotsync_install_bundle_info_json(&cfg, argv[optind], &json, &err) < 0) {
		fprintf(stderr, "slotsync info: %s\n", slotsync_error_message(&err));
		return 1;
	}
	if (as_json)
		printf("%s\n", json);
	else
		print_info_text(json);
	free(json);
	return 0;
}

static const struct option agent_options[] = {
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "once", no_argument, NULL, 'o' },
	{ "dbus", required_argument, NULL, 'd' },
	{ "json-progress", no_argument, NULL, OPT_JSON_PROGRESS },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

int cli_agent(int argc, char **argv)
{
	static const char usage[] =
		"Usage: slotsync agent [--config FILE] [--once] [--dbus system|ADDRESS] [--json-progress]\n"
		"  --once: settle, poll the channel once (an unfinished install it still names resumes),\n"
		"  install what it names, and exit with the status below\n" CLI_EXIT_CODES;
	struct slotsync_agent_options o = { 0 };
	struct slotsync_error err = { 0 };
	struct slotsync_config cfg;
	struct progress_out po = { 0 };
	const char *config = NULL;
	int c, r;

	/* a daemon's journal tells what it did */
	if (slotsync_log_get_level() < SLOTSYNC_LOG_INFO)
		slotsync_log_set_level(SLOTSYNC_LOG_INFO);
	optind = 2;
	while ((c = getopt_long(argc, argv, "vqh", agent_options, NULL)) != -1) {
		if (c == 'o')
			o.once = 1;
		else if (c == 'd') {
			o.dbus = !strcmp(optarg, "system") ? 1 : 2;
			o.dbus_address = optarg;
		} else if (c == OPT_JSON_PROGRESS)
			po.json = 1;
		else if ((r = common_opt(c, &config, usage)) != 0)
			return r < 0 ? (fputs(usage, stderr), 2) : 0;
	}
	if (optind != argc) {
		fputs(usage, stderr);
		return 2;
	}
	/* a bad configuration: the agent does not start */
	if (load_config(config, &cfg, "agent") < 0)
		return 1;
	o.cfg = &cfg;
	po.bar = !po.json && isatty(STDERR_FILENO);
	if (po.json || po.bar) {
		o.progress = on_progress;
		o.progress_ud = &po;
	}
	r = slotsync_agent_run(&o, &err);
	if (r < 0) {
		fprintf(stderr, "slotsync agent: %s\n", slotsync_error_message(&err));
		if (r == -EAGAIN) {
			fprintf(stderr, "slotsync agent: not done; run it again to resume\n");
			return SLOTSYNC_EXIT_RESUMABLE;
		}
		return SLOTSYNC_EXIT_FAILED;
	}
	return 0;
}

int cli_validate(int argc, char **argv)
{
	struct slotsync_error err = { 0 };
	struct slotsync_config cfg;
	const char *config = NULL;
	int c, r, reboot = 0;

	optind = 2;
	while ((c = getopt_long(argc, argv, "h", status_options, NULL)) != -1) {
		if ((r = common_opt(c, &config, "Usage: slotsync validate [--config FILE]\n" CLI_EXIT_CODES)) != 0)
			return r < 0 ? 2 : 0;
	}
	if (load_config(config, &cfg, "validate") < 0)
		return 1;
	if (slotsync_agent_validate(&cfg, &reboot, &err) < 0) {
		fprintf(stderr, "slotsync validate: %s\n", slotsync_error_message(&err));
		return 1;
	}
	if (reboot) {
		const char *cmd = cfg.reboot_command;
		fprintf(stderr, "slotsync validate: the booted slot failed its health checks and was marked bad%s\n",
			strcmp(cmd, "never") ? "; rebooting" : "; reboot to fall back");
		if (strcmp(cmd, "never") && system(cmd) != 0)
			fprintf(stderr, "slotsync validate: the reboot-command \"%s\" failed\n", cmd);
		return 1;
	}
	return 0;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync-gen: the build server's command line.  One function per verb
 * (cmd_make, cmd_extract, ...) parses that verb's options, calls its operation
 * in gen.h and prints the summary; main() picks the verb.  No logic lives
 * here. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gen.h"
#include "slotsync/envelope.h"
#include "slotsync/delta.h"
#include "slotsync/log.h"
#include "slotsync/version.h"
#include "parse.h"
#include "publish.h"
#include "gen_usage.h"

static int parse_time_arg(const char *cmd, const char *opt, const char *s, time_t *out)
{
	if (slotsync_time_parse(s, out) == 0)
		return 0;
	fprintf(stderr, "slotsync-gen %s: %s takes a UTC time like 2026-01-31T12:00:00Z or @SECONDS, not \"%s\"\n", cmd,
		opt, s);
	return -EINVAL;
}

static int fail(const char *cmd, struct slotsync_error *err)
{
	fprintf(stderr, "slotsync-gen %s: %s\n", cmd, slotsync_error_message(err));
	return 1;
}

enum { OPT_STORE = 256, OPT_CHUNK_SIZE, OPT_THREADS, OPT_LEVEL, OPT_DIGEST, OPT_NO_PROGRESS, OPT_SEED, OPT_INDEX,
       OPT_REPAIR, OPT_VERSION, OPT_IMAGE, OPT_RELEASE_VERSION, OPT_COMPATIBLE, OPT_SECURITY_VERSION,
       OPT_ALLOW_DOWNGRADE_TO, OPT_STORE_URL, OPT_VERITY, OPT_HOOK_PRE, OPT_HOOK_POST, OPT_TIMESTAMP, OPT_EXPIRES,
       OPT_SIGNER_CERT, OPT_SIGNER_KEY, OPT_CHAIN, OPT_PKCS11_MODULE, OPT_BUNDLE_URL, OPT_BUNDLE, OPT_BASE,
       OPT_BASE_IMAGE, OPT_RUN_MAX, OPT_DRY_RUN, OPT_DELTA_FROM, OPT_EMBED, OPT_EMBED_FOR, OPT_DETACH_INDEX, OPT_SEED_INDEX,
       OPT_MAKE_VERITY, OPT_PACKS, OPT_RECORDS_LEVEL, OPT_INDEX_FORMAT };

/* Every verb's -v, -q, -h; --version is the program's version, except for
 * bundle and channel, where it is the release's or the pointer's
 * (--release-version, its older spelling, is still taken). */
#define OPTIONS_COMMON \
	{ "verbose", no_argument, NULL, 'v' }, \
	{ "quiet", no_argument, NULL, 'q' }, \
	{ "help", no_argument, NULL, 'h' }
#define OPTION_PROGRAM_VERSION { "version", no_argument, NULL, OPT_VERSION }
#define OPTIONS_RELEASE_VERSION \
	{ "version", required_argument, NULL, OPT_RELEASE_VERSION }, \
	{ "release-version", required_argument, NULL, OPT_RELEASE_VERSION }
/* How an image is chunked into the store (make, bundle). */
#define OPTIONS_MAKE \
	{ "chunk-size", required_argument, NULL, OPT_CHUNK_SIZE }, \
	{ "threads", required_argument, NULL, OPT_THREADS }, \
	{ "level", required_argument, NULL, OPT_LEVEL }, \
	{ "digest", required_argument, NULL, OPT_DIGEST }, \
	{ "no-progress", no_argument, NULL, OPT_NO_PROGRESS }
#define OPTIONS_SIGNER \
	{ "signer-cert", required_argument, NULL, OPT_SIGNER_CERT }, \
	{ "signer-key", required_argument, NULL, OPT_SIGNER_KEY }, \
	{ "chain", required_argument, NULL, OPT_CHAIN }, \
	{ "pkcs11-module", required_argument, NULL, OPT_PKCS11_MODULE }
#define OPTIONS_END { NULL, 0, NULL, 0 }

/* What an option helper below says: go on parsing, the option is none of
 * its own, or (>= 0) exit with that code. */
enum { PARSE_NEXT = -1, PARSE_OTHER = -2 };

/* -v, -q, --version, -h, and an option getopt refused (it said why). */
static int common_option(int c, void (*verb_usage)(FILE *), int *progress)
{
	switch (c) {
	case 'v':
		slotsync_log_set_level(slotsync_log_get_level() + 1);
		return PARSE_NEXT;
	case 'q':
		slotsync_log_set_level(SLOTSYNC_LOG_ERROR);
		if (progress)
			*progress = 0;
		return PARSE_NEXT;
	case OPT_VERSION:
		printf("slotsync-gen %s\n", SLOTSYNC_VERSION);
		return 0;
	case 'h':
		verb_usage(stdout);
		return 0;
	default:
		verb_usage(stderr);
		return 2;
	}
}

static int threads_arg(const char *cmd, const char *s, int *threads)
{
	if (parse_int(s, 1, 64, threads) == 0)
		return 0;
	fprintf(stderr, "slotsync-gen %s: --threads takes a number from 1 to 64, not \"%s\"\n", cmd, s);
	return -EINVAL;
}

static int level_arg(const char *cmd, const char *s, int *level)
{
	if (parse_int(s, -131072, 22, level) == 0)
		return 0;
	fprintf(stderr, "slotsync-gen %s: --level takes a zstd level (up to 22), not \"%s\"\n", cmd, s);
	return -EINVAL;
}

/* --index-format: 2 (what devices that read only SSDELTA2 take) or 3 */
static int index_format_arg(const char *cmd, const char *s, int *format)
{
	if (strcmp(s, "2") == 0 || strcmp(s, "3") == 0) {
		*format = s[0] - '0';
		return 0;
	}
	fprintf(stderr, "slotsync-gen %s: --index-format takes 2 or 3, not \"%s\"\n", cmd, s);
	return -1;
}

static int records_level_arg(const char *cmd, const char *s, int *level)
{
	if (parse_int(s, 1, 22, level) == 0)
		return 0;
	fprintf(stderr, "slotsync-gen %s: --records-level takes a zstd level from 1 to 22, not \"%s\"\n", cmd, s);
	return -EINVAL;
}

static int run_max_arg(const char *cmd, const char *s, int *run_max)
{
	if (parse_int(s, 1, SLOTSYNC_DELTA_OUT_MAX, run_max) == 0)
		return 0;
	fprintf(stderr, "slotsync-gen %s: --run-max takes bytes, 1 to %u, not \"%s\"\n", cmd, SLOTSYNC_DELTA_OUT_MAX, s);
	return -EINVAL;
}

static void make_defaults(struct gen_make_options *make)
{
	memset(make, 0, sizeof(*make));
	make->params = slotsync_chunker_params_default();
	make->digest = SLOTSYNC_DIGEST_SHA256;
	make->level = GEN_ZSTD_LEVEL_DEFAULT;
	make->progress = 1;
}

/* OPTIONS_MAKE into make; *level_given is set when --level is. */
static int make_option(const char *cmd, int c, const char *arg, struct gen_make_options *make, int *level_given)
{
	struct slotsync_error err = { 0 };

	switch (c) {
	case OPT_CHUNK_SIZE:
		if (slotsync_chunker_params_parse(arg, &make->params, &err) < 0)
			return fail(cmd, &err), 2;
		return PARSE_NEXT;
	case OPT_THREADS:
		return threads_arg(cmd, arg, &make->threads) < 0 ? 2 : PARSE_NEXT;
	case OPT_LEVEL:
		*level_given = 1;
		return level_arg(cmd, arg, &make->level) < 0 ? 2 : PARSE_NEXT;
	case OPT_DIGEST:
		if (!strcmp(arg, "sha256")) {
			make->digest = SLOTSYNC_DIGEST_SHA256;
		} else if (!strcmp(arg, "sha512-256")) {
			make->digest = SLOTSYNC_DIGEST_SHA512_256;
		} else {
			fprintf(stderr, "slotsync-gen %s: --digest is sha256 or sha512-256, not \"%s\"\n", cmd, arg);
			return 2;
		}
		return PARSE_NEXT;
	case OPT_NO_PROGRESS:
		make->progress = 0;
		return PARSE_NEXT;
	default:
		return PARSE_OTHER;
	}
}

/* OPTIONS_SIGNER into s. */
static int signer_option(int c, const char *arg, struct gen_signer *s)
{
	switch (c) {
	case OPT_SIGNER_CERT:
		s->cert = arg;
		return PARSE_NEXT;
	case OPT_SIGNER_KEY:
		s->key = arg;
		return PARSE_NEXT;
	case OPT_CHAIN:
		s->chain = arg;
		return PARSE_NEXT;
	case OPT_PKCS11_MODULE:
		s->pkcs11_module = arg;
		return PARSE_NEXT;
	default:
		return PARSE_OTHER;
	}
}

static int cmd_make(int argc, char **argv)
{
	static const struct option options[] = {
		{ "store", required_argument, NULL, OPT_STORE },
		OPTIONS_MAKE,
		OPTIONS_COMMON,
		OPTION_PROGRAM_VERSION,
		OPTIONS_END,
	};
	struct slotsync_error err = { 0 };
	struct gen_make_options make;
	struct gen_make_stats st;
	int c, r, level_given = 0;

	make_defaults(&make);
	while ((c = getopt_long(argc, argv, "vqh", options, NULL)) != -1) {
		if (c == OPT_STORE) {
			make.store = optarg;
			continue;
		}
		r = make_option("make", c, optarg, &make, &level_given);
		if (r == PARSE_OTHER)
			r = common_option(c, gen_make_usage, &make.progress);
		if (r != PARSE_NEXT)
			return r;
	}
	if (argc - optind != 2) {
		fputs("slotsync-gen make: needs IMAGE and INDEX\n", stderr);
		return 2;
	}
	if (gen_make(argv[optind], argv[optind + 1], &make, &st, &err) < 0)
		return fail("make", &err);
	printf("make: %" PRIu64 " chunks, %" PRIu64 " new, %" PRIu64 " bytes in, %" PRIu64 " bytes stored, %.1f MB/s\n",
	       st.chunks, st.new_chunks, st.bytes_in, st.bytes_stored,
	       st.seconds > 0 ? (double)st.bytes_in / st.seconds / 1e6 : 0.0);
	return 0;
}

static int cmd_extract(int argc, char **argv)
{
	static const struct option options[] = {
		{ "store", required_argument, NULL, OPT_STORE },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "seed-index", required_argument, NULL, OPT_SEED_INDEX },
		OPTIONS_COMMON,
		OPTION_PROGRAM_VERSION,
		OPTIONS_END,
	};
	struct slotsync_error err = { 0 };
	struct gen_extract_stats st;
	const char *store = NULL;
	const char **seeds = calloc(2 * ((size_t)argc + 1), sizeof(*seeds));
	const char **seed_indexes = seeds + argc + 1;
	uint64_t total;
	int c, n_seeds = 0, rc = PARSE_NEXT;

	if (!seeds)
		return 1;
	while (rc == PARSE_NEXT && (c = getopt_long(argc, argv, "vqh", options, NULL)) != -1) {
		if (c == OPT_STORE)
			store = optarg;
		else if (c == OPT_SEED)
			seeds[n_seeds++] = optarg;
		else if (c == OPT_SEED_INDEX && (!n_seeds || seed_indexes[n_seeds - 1])) {
			fprintf(stderr, "slotsync-gen extract: --seed-index %s must follow a --seed that has no index yet\n",
				optarg);
			rc = 2;
		} else if (c == OPT_SEED_INDEX)
			seed_indexes[n_seeds - 1] = optarg;
		else
			rc = common_option(c, gen_extract_usage, NULL);
	}
	if (rc != PARSE_NEXT)
		goto out;
	rc = 0;
	if (argc - optind != 2 || !store) {
		fputs("slotsync-gen extract: needs --store DIR, INDEX and OUT\n", stderr);
		rc = 2;
		goto out;
	}
	if (gen_extract(store, seeds, seed_indexes, n_seeds, argv[optind], argv[optind + 1], &st, &err) < 0) {
		rc = fail("extract", &err);
		goto out;
	}
	total = st.bytes_from_seed + st.bytes_from_store;
	printf("extract: %" PRIu64 " chunks, %" PRIu64 " bytes: %" PRIu64 " bytes (%.1f%%) from seed, %" PRIu64
	       " bytes (%.1f%%) from store, %" PRIu64 " seed chunks rejected, %.2f s\n",
	       st.chunks, total, st.bytes_from_seed, total ? 100.0 * (double)st.bytes_from_seed / (double)total : 0.0,
	       st.bytes_from_store, total ? 100.0 * (double)st.bytes_from_store / (double)total : 0.0,
	       st.seed_chunks_rejected, st.seconds);
out:
	free(seeds);
	return rc;
}

static int cmd_check(int argc, char **argv)
{
	static const struct option options[] = {
		{ "store", required_argument, NULL, OPT_STORE },
		{ "index", required_argument, NULL, OPT_INDEX },
		{ "repair", no_argument, NULL, OPT_REPAIR },
		OPTIONS_COMMON,
		OPTION_PROGRAM_VERSION,
		OPTIONS_END,
	};
	struct slotsync_error err = { 0 };
	struct gen_check_stats st;
	const char *store = NULL, *index = NULL;
	int c, r, repair = 0;

	while ((c = getopt_long(argc, argv, "vqh", options, NULL)) != -1) {
		if (c == OPT_STORE) {
			store = optarg;
		} else if (c == OPT_INDEX) {
			index = optarg;
		} else if (c == OPT_REPAIR) {
			repair = 1;
		} else {
			r = common_option(c, gen_check_usage, NULL);
			if (r != PARSE_NEXT)
				return r;
		}
	}
	if (argc - optind != 0 || !store) {
		fputs("slotsync-gen check: needs --store DIR\n", stderr);
		return 2;
	}
	r = gen_check(store, index, repair, &st, &err);
	gen_check_print(&st, repair, stdout);
	if (r < 0)
		return fail("check", &err);
	return 0;
}

/* bundle's own options (not those of OPTIONS_MAKE or OPTIONS_SIGNER) into b;
 * the times are parsed once all options are in. */
static int bundle_option(int c, char *arg, struct gen_bundle_options *b, const char **timestamp,
			 const char **expires)
{
	switch (c) {
	case OPT_STORE:
		b->store = arg;
		break;
	case OPT_IMAGE:
		if (gen_bundle_image_arg(b, arg) < 0)
			return 2;
		break;
	case OPT_RELEASE_VERSION:
		b->version = arg;
		break;
	case OPT_COMPATIBLE:
		b->compatible = arg;
		break;
	case OPT_SECURITY_VERSION:
		if (parse_u64(arg, 0, INT64_MAX, &b->security_version) < 0) {
			fprintf(stderr, "slotsync-gen bundle: --security-version takes a whole number, not \"%s\"\n", arg);
			return 2;
		}
		break;
	case OPT_ALLOW_DOWNGRADE_TO:
		b->allow_downgrade_to = arg;
		break;
	case OPT_STORE_URL:
		/* signed into the bundle: a URL without its scheme would be guessed as http on the device */
		if (parse_url(arg, 1) < 0) {
			fprintf(stderr, "slotsync-gen bundle: --store-url %s: %s\n", arg, parse_url_problem(parse_url(arg, 1)));
			return 2;
		}
		b->store_urls[b->n_store_urls++] = arg;
		break;
	case OPT_VERITY:
		b->verity_root_hash = arg;
		break;
	case OPT_MAKE_VERITY:
		b->verity = 1;
		break;
	case OPT_HOOK_PRE:
		b->hook_pre_install = arg;
		break;
	case OPT_HOOK_POST:
		b->hook_post_install = arg;
		break;
	case OPT_TIMESTAMP:
		*timestamp = arg;
		break;
	case OPT_EXPIRES:
		*expires = arg;
		break;
	case OPT_RUN_MAX:
		if (run_max_arg("bundle", arg, &b->delta.run_max) < 0)
			return 2;
		break;
	case OPT_RECORDS_LEVEL:
		if (records_level_arg("bundle", arg, &b->delta.records_level) < 0)
			return 2;
		break;
	case OPT_INDEX_FORMAT:
		if (index_format_arg("bundle", arg, &b->delta.index_format) < 0)
			return 2;
		break;
	case OPT_EMBED:
		b->embed = 1;
		break;
	case OPT_DETACH_INDEX:
		b->detach_index = 1;
		break;
	case OPT_PACKS:
		b->packs = 1;
		break;
	case OPT_EMBED_FOR:
		b->embed = 1;
		b->embed_for[b->n_embed_for++] = arg;
		break;
	case OPT_DELTA_FROM: {
		char *colon = strrchr(arg, ':');
		if (!colon || colon == arg || !colon[1]) {
			fprintf(stderr, "slotsync-gen bundle: --delta-from takes BASE.caibx:BASE.img, not \"%s\"\n", arg);
			return 2;
		}
		*colon = '\0';
		b->delta_bases[b->n_deltas] = arg;
		b->delta_base_images[b->n_deltas++] = colon + 1;
		break;
	}
	default:
		return PARSE_OTHER;
	}
	return PARSE_NEXT;
}

/* The bundle's creation time: --timestamp, else SOURCE_DATE_EPOCH, else now. */
static int bundle_created(const char *timestamp, time_t *created)
{
	const char *sde = getenv("SOURCE_DATE_EPOCH");

	if (timestamp)
		return parse_time_arg("bundle", "--timestamp", timestamp, created);
	if (sde && sde[0]) {
		char at[64];
		snprintf(at, sizeof(at), "@%s", sde);
		return parse_time_arg("bundle", "SOURCE_DATE_EPOCH", at, created);
	}
	*created = time(NULL);
	return 0;
}

static int cmd_bundle(int argc, char **argv)
{
	static const struct option options[] = {
		{ "store", required_argument, NULL, OPT_STORE },
		{ "image", required_argument, NULL, OPT_IMAGE },
		OPTIONS_RELEASE_VERSION,
		{ "compatible", required_argument, NULL, OPT_COMPATIBLE },
		{ "security-version", required_argument, NULL, OPT_SECURITY_VERSION },
		{ "allow-downgrade-to", required_argument, NULL, OPT_ALLOW_DOWNGRADE_TO },
		{ "store-url", required_argument, NULL, OPT_STORE_URL },
		{ "verity-root-hash", required_argument, NULL, OPT_VERITY },
		{ "verity", no_argument, NULL, OPT_MAKE_VERITY },
		{ "hook-pre-install", required_argument, NULL, OPT_HOOK_PRE },
		{ "hook-post-install", required_argument, NULL, OPT_HOOK_POST },
		{ "timestamp", required_argument, NULL, OPT_TIMESTAMP },
		{ "expires", required_argument, NULL, OPT_EXPIRES },
		{ "delta-from", required_argument, NULL, OPT_DELTA_FROM },
		{ "run-max", required_argument, NULL, OPT_RUN_MAX },
		{ "records-level", required_argument, NULL, OPT_RECORDS_LEVEL },
		{ "index-format", required_argument, NULL, OPT_INDEX_FORMAT },
		{ "embed", no_argument, NULL, OPT_EMBED },
		{ "embed-for", required_argument, NULL, OPT_EMBED_FOR },
		{ "detach-index", no_argument, NULL, OPT_DETACH_INDEX },
		{ "packs", no_argument, NULL, OPT_PACKS },
		OPTIONS_MAKE,
		OPTIONS_SIGNER,
		OPTIONS_COMMON,
		OPTIONS_END,
	};
	struct slotsync_error err = { 0 };
	struct gen_bundle_options b = { 0 };
	const char *timestamp = NULL, *expires = NULL;
	char when[32];
	int c, rc = PARSE_NEXT, level_given = 0;

	b.store_urls = calloc((size_t)argc + 1, sizeof(*b.store_urls));
	b.delta_bases = calloc((size_t)argc + 1, sizeof(*b.delta_bases));
	b.delta_base_images = calloc((size_t)argc + 1, sizeof(*b.delta_base_images));
	b.embed_for = calloc((size_t)argc + 1, sizeof(*b.embed_for));
	b.image_names = calloc((size_t)argc + 1, sizeof(*b.image_names));
	b.image_files = calloc((size_t)argc + 1, sizeof(*b.image_files));
	if (!b.store_urls || !b.delta_bases || !b.delta_base_images || !b.embed_for || !b.image_names ||
	    !b.image_files) {
		rc = 1;
		goto out;
	}
	make_defaults(&b.make);
	while (rc == PARSE_NEXT && (c = getopt_long(argc, argv, "vqh", options, NULL)) != -1) {
		rc = bundle_option(c, optarg, &b, &timestamp, &expires);
		if (rc == PARSE_OTHER)
			rc = make_option("bundle", c, optarg, &b.make, &level_given);
		if (rc == PARSE_OTHER)
			rc = signer_option(c, optarg, &b.signer);
		if (rc == PARSE_OTHER)
			rc = common_option(c, gen_bundle_usage, &b.make.progress);
	}
	if (rc != PARSE_NEXT)
		goto out;
	rc = 2;
	if (argc - optind != 1) {
		fputs("slotsync-gen bundle: needs OUT\n", stderr);
		goto out;
	}
	b.make.store = b.store;
	b.delta.threads = b.make.threads;
	b.delta.level = level_given ? b.make.level : GEN_DELTA_LEVEL_DEFAULT;
	if (!b.delta.run_max)
		b.delta.run_max = GEN_DELTA_RUN_MAX_DEFAULT;
	if (bundle_created(timestamp, &b.created) < 0)
		goto out;
	if (expires && parse_time_arg("bundle", "--expires", expires, &b.expires) < 0)
		goto out;
	if (gen_bundle(&b, argv[optind], &err) < 0) {
		rc = fail("bundle", &err);
		goto out;
	}
	slotsync_time_format(b.created, when);
	printf("bundle: %s, version %s for %s, created %s\n", argv[optind], b.version, b.compatible, when);
	rc = 0;
out:
	free(b.store_urls);
	free(b.delta_bases);
	free(b.delta_base_images);
	free(b.embed_for);
	free(b.image_names);
	free(b.image_files);
	return rc;
}

static int cmd_channel(int argc, char **argv)
{
	static const struct option options[] = {
		{ "bundle-url", required_argument, NULL, OPT_BUNDLE_URL },
		{ "bundle", required_argument, NULL, OPT_BUNDLE },
		OPTIONS_RELEASE_VERSION,
		{ "expires", required_argument, NULL, OPT_EXPIRES },
		{ "compatible", required_argument, NULL, OPT_COMPATIBLE },
		OPTIONS_SIGNER,
		OPTIONS_COMMON,
		OPTIONS_END,
	};
	struct slotsync_error err = { 0 };
	struct gen_channel_options ch = { 0 };
	const char *version = NULL, *expires = NULL;
	int c, r;

	while ((c = getopt_long(argc, argv, "vqh", options, NULL)) != -1) {
		switch (c) {
		case OPT_BUNDLE_URL:
			if (parse_url_ref(optarg) < 0) {
				fprintf(stderr,
					"slotsync-gen channel: --bundle-url %s: %s (a relative URL, resolved against the "
					"channel's, is fine: v2.bundle)\n",
					optarg, parse_url_problem(parse_url_ref(optarg)));
				return 2;
			}
			ch.bundle_url = optarg;
			break;
		case OPT_BUNDLE:
			ch.bundle = optarg;
			break;
		case OPT_RELEASE_VERSION:
			version = optarg;
			break;
		case OPT_EXPIRES:
			expires = optarg;
			break;
		case OPT_COMPATIBLE:
			ch.compatible = optarg;
			break;
		default:
			r = signer_option(c, optarg, &ch.signer);
			if (r == PARSE_OTHER)
				r = common_option(c, gen_channel_usage, NULL);
			if (r != PARSE_NEXT)
				return r;
		}
	}
	if (argc - optind != 1) {
		fputs("slotsync-gen channel: needs OUT\n", stderr);
		return 2;
	}
	if (!version || parse_u64(version, 0, INT64_MAX, &ch.version) < 0) {
		fputs("slotsync-gen channel: --version takes the pointer's version, a whole number\n", stderr);
		return 2;
	}
	if (!expires) {
		fputs("slotsync-gen channel: --expires TIME is required (a pointer that is not renewed must go stale)\n",
		      stderr);
		return 2;
	}
	if (parse_time_arg("channel", "--expires", expires, &ch.expires) < 0)
		return 2;
	if (gen_channel(&ch, argv[optind], &err) < 0)
		return fail("channel", &err);
	printf("channel: %s, version %" PRIu64 ", to %s\n", argv[optind], ch.version, ch.bundle_url);
	return 0;
}

static int cmd_delta(int argc, char **argv)
{
	static const struct option options[] = {
		{ "store", required_argument, NULL, OPT_STORE },
		{ "base", required_argument, NULL, OPT_BASE },
		{ "base-image", required_argument, NULL, OPT_BASE_IMAGE },
		{ "threads", required_argument, NULL, OPT_THREADS },
		{ "level", required_argument, NULL, OPT_LEVEL },
		{ "records-level", required_argument, NULL, OPT_RECORDS_LEVEL },
		{ "index-format", required_argument, NULL, OPT_INDEX_FORMAT },
		{ "run-max", required_argument, NULL, OPT_RUN_MAX },
		{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
		OPTIONS_COMMON,
		OPTION_PROGRAM_VERSION,
		OPTIONS_END,
	};
	struct slotsync_error err = { 0 };
	struct gen_delta_options d = { .level = GEN_DELTA_LEVEL_DEFAULT, .run_max = GEN_DELTA_RUN_MAX_DEFAULT };
	const char *store = NULL;
	const char **bases = calloc((size_t)argc + 1, sizeof(*bases));
	const char **base_images = calloc((size_t)argc + 1, sizeof(*base_images));
	int c, rc = PARSE_NEXT, n_bases = 0, n_base_images = 0, dry_run = 0;

	if (!bases || !base_images) {
		rc = 1;
		goto out;
	}
	while (rc == PARSE_NEXT && (c = getopt_long(argc, argv, "vqh", options, NULL)) != -1) {
		switch (c) {
		case OPT_STORE:
			store = optarg;
			break;
		case OPT_BASE:
			bases[n_bases++] = optarg;
			break;
		case OPT_BASE_IMAGE:
			base_images[n_base_images++] = optarg;
			break;
		case OPT_THREADS:
			if (threads_arg("delta", optarg, &d.threads) < 0)
				rc = 2;
			break;
		case OPT_LEVEL:
			if (level_arg("delta", optarg, &d.level) < 0)
				rc = 2;
			break;
		case OPT_RECORDS_LEVEL:
			if (records_level_arg("delta", optarg, &d.records_level) < 0)
				rc = 2;
			break;
		case OPT_INDEX_FORMAT:
			if (index_format_arg("delta", optarg, &d.index_format) < 0)
				rc = 2;
			break;
		case OPT_RUN_MAX:
			if (run_max_arg("delta", optarg, &d.run_max) < 0)
				rc = 2;
			break;
		case OPT_DRY_RUN:
			dry_run = 1;
			break;
		default:
			rc = common_option(c, gen_delta_usage, NULL);
		}
	}
	if (rc != PARSE_NEXT)
		goto out;
	rc = 0;
	if (argc - optind != 2 || (!store && !dry_run) || n_bases == 0 || n_bases != n_base_images) {
		fputs("slotsync-gen delta: needs --store DIR (or --dry-run), --base INDEX --base-image IMAGE for each "
		      "base, NEW.caibx and NEW.img\n",
		      stderr);
		rc = 2;
		goto out;
	}
	d.store = dry_run ? NULL : store;
	d.new_index = argv[optind];
	d.new_image = argv[optind + 1];
	for (int i = 0; i < n_bases; i++) {
		struct gen_delta_stats st;
		if (gen_delta_pair(&d, bases[i], base_images[i], &st, &err) < 0) {
			rc = fail("delta", &err);
			goto out;
		}
		gen_delta_print(bases[i], store, &st, stdout);
	}
out:
	free(bases);
	free(base_images);
	return rc;
}

static int cmd_help(int argc, char **argv)
{
	gen_usage(stdout);
	return 0;
}

static const struct verb {
	const char *name;
	int (*run)(int argc, char **argv);  /* argv[1] is the verb; options from argv[2] on */
} verbs[] = {
	{ "make", cmd_make },   { "extract", cmd_extract }, { "check", cmd_check }, { "bundle", cmd_bundle },
	{ "delta", cmd_delta }, { "channel", cmd_channel }, { "verity", gen_cli_verity }, { "help", cmd_help },
	{ "prune", gen_cli_prune }, { "publish", gen_cli_publish },
};

int main(int argc, char **argv)
{
	if (argc < 2) {
		gen_usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("slotsync-gen %s\n", SLOTSYNC_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))
		return cmd_help(argc, argv);
	/* zstd grows and shrinks its contexts as chunk sizes vary: keep what is
	 * freed for reuse rather than map fresh pages (and fault them in) each time */
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, 128 << 20);
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (!strcmp(argv[1], verbs[i].name)) {
			optind = 2;
			return verbs[i].run(argc, argv);
		}
	fprintf(stderr, "slotsync-gen: unknown command \"%s\"\n", argv[1]);
	gen_usage(stderr);
	return 2;
}

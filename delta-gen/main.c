/* slotsync-gen: the build server's command line.  Parses arguments, calls the
 * operations in gen.h, prints their summary.  No logic lives here. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen.h"
#include "slotsync/log.h"
#include "slotsync/version.h"

static void usage(FILE *f)
{
	fputs("Usage: slotsync-gen COMMAND [OPTIONS]\n"
	      "\n"
	      "Commands:\n"
	      "  make [--store DIR] [--chunk-size MIN:AVG:MAX] [--threads N] [--level L]\n"
	      "       [--digest sha256|sha512-256] [--no-progress] IMAGE INDEX.caibx\n"
	      "      Cut IMAGE into content-defined chunks, add the new ones to the store,\n"
	      "      write the index.\n"
	      "  extract --store DIR [--seed IMAGE[:INDEX]]... INDEX OUT\n"
	      "      Rebuild the image of INDEX into OUT, taking chunks from seeds first.\n"
	      "  check --store DIR [--index INDEX] [--repair]\n"
	      "      Verify that every chunk in the store matches its name.\n"
	      "\n"
	      "Options for every command: -v/--verbose, -q/--quiet, --version, -h/--help\n",
	      f);
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

enum { OPT_STORE = 256, OPT_CHUNK_SIZE, OPT_THREADS, OPT_LEVEL, OPT_DIGEST, OPT_NO_PROGRESS, OPT_SEED, OPT_INDEX,
       OPT_REPAIR, OPT_VERSION };

static const struct option long_options[] = {
	{ "store", required_argument, NULL, OPT_STORE },
	{ "chunk-size", required_argument, NULL, OPT_CHUNK_SIZE },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "level", required_argument, NULL, OPT_LEVEL },
	{ "digest", required_argument, NULL, OPT_DIGEST },
	{ "no-progress", no_argument, NULL, OPT_NO_PROGRESS },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "index", required_argument, NULL, OPT_INDEX },
	{ "repair", no_argument, NULL, OPT_REPAIR },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct args {
	const char *store, *index;
	struct gen_make_options make;
	const char **seeds;
	int n_seeds;
	int repair;
};

static int fail(const char *cmd, struct slotsync_error *err)
{
	fprintf(stderr, "slotsync-gen %s: %s\n", cmd, slotsync_error_message(err));
	return 1;
}

static int run(int argc, char **argv, struct args *ap)
{
	struct slotsync_error err = { 0 };
	struct args a = *ap;
	const char *cmd;
	int c, v;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	cmd = argv[1];
	if (!strcmp(cmd, "--version")) {
		printf("slotsync-gen %s\n", SLOTSYNC_VERSION);
		return 0;
	}
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		usage(stdout);
		return 0;
	}
	a.make.params = slotsync_chunker_params_default();
	a.make.digest = SLOTSYNC_DIGEST_SHA256;
	a.make.level = GEN_ZSTD_LEVEL_DEFAULT;
	a.make.progress = 1;
	optind = 2;
	while ((c = getopt_long(argc, argv, "vqh", long_options, NULL)) != -1) {
		switch (c) {
		case OPT_STORE:
			a.store = optarg;
			break;
		case OPT_CHUNK_SIZE:
			if (slotsync_chunker_params_parse(optarg, &a.make.params, &err) < 0)
				return fail(cmd, &err), 2;
			break;
		case OPT_THREADS:
			if (parse_int(optarg, 1, 64, &a.make.threads) < 0) {
				fprintf(stderr, "slotsync-gen %s: --threads takes a number from 1 to 64, not \"%s\"\n", cmd,
					optarg);
				return 2;
			}
			break;
		case OPT_LEVEL:
			if (parse_int(optarg, -131072, 22, &a.make.level) < 0) {
				fprintf(stderr, "slotsync-gen %s: --level takes a zstd level (up to 22), not \"%s\"\n", cmd,
					optarg);
				return 2;
			}
			break;
		case OPT_DIGEST:
			if (!strcmp(optarg, "sha256")) {
				a.make.digest = SLOTSYNC_DIGEST_SHA256;
			} else if (!strcmp(optarg, "sha512-256")) {
				a.make.digest = SLOTSYNC_DIGEST_SHA512_256;
			} else {
				fprintf(stderr, "slotsync-gen %s: --digest is sha256 or sha512-256, not \"%s\"\n", cmd,
					optarg);
				return 2;
			}
			break;
		case OPT_NO_PROGRESS:
			a.make.progress = 0;
			break;
		case OPT_SEED:
			a.seeds[a.n_seeds++] = optarg;
			break;
		case OPT_INDEX:
			a.index = optarg;
			break;
		case OPT_REPAIR:
			a.repair = 1;
			break;
		case 'v':
			slotsync_log_set_level(slotsync_log_get_level() + 1);
			break;
		case 'q':
			slotsync_log_set_level(SLOTSYNC_LOG_ERROR);
			a.make.progress = 0;
			break;
		case OPT_VERSION:
			printf("slotsync-gen %s\n", SLOTSYNC_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	v = argc - optind;

	if (!strcmp(cmd, "make")) {
		struct gen_make_stats st;
		if (v != 2) {
			fputs("slotsync-gen make: needs IMAGE and INDEX\n", stderr);
			return 2;
		}
		a.make.store = a.store;
		if (gen_make(argv[optind], argv[optind + 1], &a.make, &st, &err) < 0)
			return fail(cmd, &err);
		printf("make: %" PRIu64 " chunks, %" PRIu64 " new, %" PRIu64 " bytes in, %" PRIu64
		       " bytes stored, %.1f MB/s\n",
		       st.chunks, st.new_chunks, st.bytes_in, st.bytes_stored,
		       st.seconds > 0 ? (double)st.bytes_in / st.seconds / 1e6 : 0.0);
		return 0;
	}
	if (!strcmp(cmd, "extract")) {
		struct gen_extract_stats st;
		uint64_t total;
		if (v != 2 || !a.store) {
			fputs("slotsync-gen extract: needs --store DIR, INDEX and OUT\n", stderr);
			return 2;
		}
		if (gen_extract(a.store, a.seeds, a.n_seeds, argv[optind], argv[optind + 1], &st, &err) < 0)
			return fail(cmd, &err);
		total = st.bytes_from_seed + st.bytes_from_store;
		printf("extract: %" PRIu64 " chunks, %" PRIu64 " bytes: %" PRIu64 " bytes (%.1f%%) from seed, %" PRIu64
		       " bytes (%.1f%%) from store, %" PRIu64 " seed chunks rejected, %.2f s\n",
		       st.chunks, total, st.bytes_from_seed, total ? 100.0 * (double)st.bytes_from_seed / (double)total : 0.0,
		       st.bytes_from_store, total ? 100.0 * (double)st.bytes_from_store / (double)total : 0.0,
		       st.seed_chunks_rejected, st.seconds);
		return 0;
	}
	if (!strcmp(cmd, "check")) {
		struct gen_check_stats st;
		int r;
		if (v != 0 || !a.store) {
			fputs("slotsync-gen check: needs --store DIR\n", stderr);
			return 2;
		}
		r = gen_check(a.store, a.index, a.repair, &st, &err);
		printf("check: %" PRIu64 " chunks, %" PRIu64 " bad, %" PRIu64 " missing, %" PRIu64 " temp files%s\n",
		       st.chunks, st.bad, st.missing, st.temp_files, a.repair && st.temp_files ? " (removed)" : "");
		if (r < 0)
			return fail(cmd, &err);
		return 0;
	}
	fprintf(stderr, "slotsync-gen: unknown command \"%s\"\n", cmd);
	usage(stderr);
	return 2;
}

int main(int argc, char **argv)
{
	struct args a = { 0 };
	int rc;

	a.seeds = calloc((size_t)argc + 1, sizeof(*a.seeds));
	if (!a.seeds)
		return 1;
	rc = run(argc, argv, &a);
	free(a.seeds);
	return rc;
}

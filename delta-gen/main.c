/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync-gen: the build server's command line.  Parses arguments, calls the
 * operations in gen.h, prints their summary.  No logic lives here. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gen.h"
#include "slotsync/bundle.h"
#include "slotsync/delta.h"
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
	      "  bundle --store DIR --image IMG --version V --compatible C [--security-version N]\n"
	      "       [--allow-downgrade-to V] [--store-url URL]... [--verity-root-hash HEX]\n"
	      "       [--hook-pre-install FILE] [--hook-post-install FILE] [--timestamp TIME]\n"
	      "       [--expires TIME] [--delta-from BASE.caibx:BASE.img]... SIGNER OUT\n"
	      "      Chunk IMG into the store and write the signed release bundle OUT; with\n"
	      "      --delta-from, delta objects from each base too, their indexes signed.\n"
	      "      TIME is 2026-01-31T12:00:00Z or @SECONDS; the creation time defaults to\n"
	      "      SOURCE_DATE_EPOCH, then to now.\n"
	      "  channel --bundle-url URL --bundle BUNDLE --version N --expires TIME\n"
	      "       [--compatible C] SIGNER OUT\n"
	      "      Write a signed channel pointer to BUNDLE.\n"
	      "  delta --store DIR --base INDEX --base-image IMAGE [--base ... --base-image ...]\n"
	      "       [--threads N] [--level L] [--run-max BYTES] [--dry-run] NEW.caibx NEW.img\n"
	      "      For the chunks of NEW that each base lacks, write delta objects and the\n"
	      "      delta index of the pair into the store (docs/format.md); --dry-run only\n"
	      "      reports what a device would download.\n"
	      "  SIGNER: --signer-cert CERT --signer-key KEY|pkcs11:URI [--chain PEM]\n"
	      "       [--pkcs11-module SO]\n"
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
       OPT_REPAIR, OPT_VERSION, OPT_IMAGE, OPT_RELEASE_VERSION, OPT_COMPATIBLE, OPT_SECURITY_VERSION,
       OPT_ALLOW_DOWNGRADE_TO, OPT_STORE_URL, OPT_VERITY, OPT_HOOK_PRE, OPT_HOOK_POST, OPT_TIMESTAMP, OPT_EXPIRES,
       OPT_SIGNER_CERT, OPT_SIGNER_KEY, OPT_CHAIN, OPT_PKCS11_MODULE, OPT_BUNDLE_URL, OPT_BUNDLE, OPT_BASE,
       OPT_BASE_IMAGE, OPT_RUN_MAX, OPT_DRY_RUN, OPT_DELTA_FROM };

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
	{ "image", required_argument, NULL, OPT_IMAGE },
	{ "release-version", required_argument, NULL, OPT_RELEASE_VERSION },
	{ "compatible", required_argument, NULL, OPT_COMPATIBLE },
	{ "security-version", required_argument, NULL, OPT_SECURITY_VERSION },
	{ "allow-downgrade-to", required_argument, NULL, OPT_ALLOW_DOWNGRADE_TO },
	{ "store-url", required_argument, NULL, OPT_STORE_URL },
	{ "verity-root-hash", required_argument, NULL, OPT_VERITY },
	{ "hook-pre-install", required_argument, NULL, OPT_HOOK_PRE },
	{ "hook-post-install", required_argument, NULL, OPT_HOOK_POST },
	{ "timestamp", required_argument, NULL, OPT_TIMESTAMP },
	{ "expires", required_argument, NULL, OPT_EXPIRES },
	{ "signer-cert", required_argument, NULL, OPT_SIGNER_CERT },
	{ "signer-key", required_argument, NULL, OPT_SIGNER_KEY },
	{ "chain", required_argument, NULL, OPT_CHAIN },
	{ "pkcs11-module", required_argument, NULL, OPT_PKCS11_MODULE },
	{ "bundle-url", required_argument, NULL, OPT_BUNDLE_URL },
	{ "bundle", required_argument, NULL, OPT_BUNDLE },
	{ "base", required_argument, NULL, OPT_BASE },
	{ "base-image", required_argument, NULL, OPT_BASE_IMAGE },
	{ "run-max", required_argument, NULL, OPT_RUN_MAX },
	{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
	{ "delta-from", required_argument, NULL, OPT_DELTA_FROM },
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
	struct gen_bundle_options bundle;
	struct gen_channel_options channel;
	const char *release_version, *timestamp, *expires;
	const char **bases, **base_images;
	int n_bases, n_base_images, dry_run, level_given;
	struct gen_delta_options delta;
};

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	if (s[0] == '-')
		return -EINVAL;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || v > INT64_MAX)
		return -EINVAL;
	*out = v;
	return 0;
}

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
	/* "--version V" is the release version for bundle and channel, the
	 * program's version elsewhere */
	for (int i = 2; i < argc; i++)
		if ((!strcmp(cmd, "bundle") || !strcmp(cmd, "channel")) && !strcmp(argv[i], "--version"))
			argv[i] = (char *)"--release-version";
	while ((c = getopt_long(argc, argv, "vqh", long_options, NULL)) != -1) {
		switch (c) {
		case OPT_IMAGE:
			a.bundle.image = optarg;
			break;
		case OPT_RELEASE_VERSION:
			a.release_version = optarg;
			break;
		case OPT_COMPATIBLE:
			a.bundle.compatible = a.channel.compatible = optarg;
			break;
		case OPT_SECURITY_VERSION:
			if (parse_u64(optarg, &a.bundle.security_version) < 0) {
				fprintf(stderr, "slotsync-gen %s: --security-version takes a whole number, not \"%s\"\n", cmd,
					optarg);
				return 2;
			}
			break;
		case OPT_ALLOW_DOWNGRADE_TO:
			a.bundle.allow_downgrade_to = optarg;
			break;
		case OPT_STORE_URL:
			a.bundle.store_urls[a.bundle.n_store_urls++] = optarg;
			break;
		case OPT_VERITY:
			a.bundle.verity_root_hash = optarg;
			break;
		case OPT_HOOK_PRE:
			a.bundle.hook_pre_install = optarg;
			break;
		case OPT_HOOK_POST:
			a.bundle.hook_post_install = optarg;
			break;
		case OPT_TIMESTAMP:
			a.timestamp = optarg;
			break;
		case OPT_EXPIRES:
			a.expires = optarg;
			break;
		case OPT_SIGNER_CERT:
			a.bundle.signer.cert = optarg;
			break;
		case OPT_SIGNER_KEY:
			a.bundle.signer.key = optarg;
			break;
		case OPT_CHAIN:
			a.bundle.signer.chain = optarg;
			break;
		case OPT_PKCS11_MODULE:
			a.bundle.signer.pkcs11_module = optarg;
			break;
		case OPT_BUNDLE_URL:
			a.channel.bundle_url = optarg;
			break;
		case OPT_BUNDLE:
			a.channel.bundle = optarg;
			break;
		case OPT_STORE:
			a.store = optarg;
			break;
		case OPT_BASE:
			a.bases[a.n_bases++] = optarg;
			break;
		case OPT_BASE_IMAGE:
			a.base_images[a.n_base_images++] = optarg;
			break;
		case OPT_RUN_MAX:
			if (parse_int(optarg, 1, SLOTSYNC_DELTA_OUT_MAX, &a.delta.run_max) < 0) {
				fprintf(stderr, "slotsync-gen %s: --run-max takes bytes, 1 to %u, not \"%s\"\n", cmd,
					SLOTSYNC_DELTA_OUT_MAX, optarg);
				return 2;
			}
			break;
		case OPT_DRY_RUN:
			a.dry_run = 1;
			break;
		case OPT_DELTA_FROM: {
			char *colon = strrchr(optarg, ':');
			if (!colon || colon == optarg || !colon[1]) {
				fprintf(stderr, "slotsync-gen %s: --delta-from takes BASE.caibx:BASE.img, not \"%s\"\n", cmd,
					optarg);
				return 2;
			}
			*colon = '\0';
			a.bundle.delta_bases[a.bundle.n_deltas] = optarg;
			a.bundle.delta_base_images[a.bundle.n_deltas++] = colon + 1;
			break;
		}
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
			a.level_given = 1;
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
	if (!strcmp(cmd, "bundle")) {
		const char *sde = getenv("SOURCE_DATE_EPOCH");
		char when[32];
		if (v != 1) {
			fputs("slotsync-gen bundle: needs OUT\n", stderr);
			return 2;
		}
		a.bundle.store = a.store;
		a.bundle.version = a.release_version;
		a.bundle.make = a.make;
		a.bundle.make.store = a.store;
		a.bundle.delta.threads = a.make.threads;
		a.bundle.delta.level = a.level_given ? a.make.level : GEN_DELTA_LEVEL_DEFAULT;
		a.bundle.delta.run_max = a.delta.run_max ? a.delta.run_max : GEN_DELTA_RUN_MAX_DEFAULT;
		if (a.timestamp) {
			if (parse_time_arg(cmd, "--timestamp", a.timestamp, &a.bundle.created) < 0)
				return 2;
		} else if (sde && sde[0]) {
			char at[64];
			snprintf(at, sizeof(at), "@%s", sde);
			if (parse_time_arg(cmd, "SOURCE_DATE_EPOCH", at, &a.bundle.created) < 0)
				return 2;
		} else {
			a.bundle.created = time(NULL);
		}
		if (a.expires && parse_time_arg(cmd, "--expires", a.expires, &a.bundle.expires) < 0)
			return 2;
		if (gen_bundle(&a.bundle, argv[optind], &err) < 0)
			return fail(cmd, &err);
		slotsync_time_format(a.bundle.created, when);
		printf("bundle: %s, version %s for %s, created %s\n", argv[optind], a.bundle.version, a.bundle.compatible,
		       when);
		return 0;
	}
	if (!strcmp(cmd, "channel")) {
		if (v != 1) {
			fputs("slotsync-gen channel: needs OUT\n", stderr);
			return 2;
		}
		if (!a.release_version || parse_u64(a.release_version, &a.channel.version) < 0) {
			fputs("slotsync-gen channel: --version takes the pointer's version, a whole number\n", stderr);
			return 2;
		}
		if (!a.expires) {
			fputs("slotsync-gen channel: --expires TIME is required (a pointer that is not renewed must go stale)\n",
			      stderr);
			return 2;
		}
		if (parse_time_arg(cmd, "--expires", a.expires, &a.channel.expires) < 0)
			return 2;
		a.channel.signer = a.bundle.signer;
		if (gen_channel(&a.channel, argv[optind], &err) < 0)
			return fail(cmd, &err);
		printf("channel: %s, version %" PRIu64 ", to %s\n", argv[optind], a.channel.version, a.channel.bundle_url);
		return 0;
	}
	if (!strcmp(cmd, "delta")) {
		if (v != 2 || (!a.store && !a.dry_run) || a.n_bases == 0 || a.n_bases != a.n_base_images) {
			fputs("slotsync-gen delta: needs --store DIR (or --dry-run), --base INDEX --base-image IMAGE for each "
			      "base, NEW.caibx and NEW.img\n",
			      stderr);
			return 2;
		}
		a.delta.store = a.dry_run ? NULL : a.store;
		a.delta.new_index = argv[optind];
		a.delta.new_image = argv[optind + 1];
		a.delta.threads = a.make.threads;
		a.delta.level = a.level_given ? a.make.level : GEN_DELTA_LEVEL_DEFAULT;
		if (!a.delta.run_max)
			a.delta.run_max = GEN_DELTA_RUN_MAX_DEFAULT;
		for (int i = 0; i < a.n_bases; i++) {
			struct gen_delta_stats st;
			uint64_t total;
			if (gen_delta_pair(&a.delta, a.bases[i], a.base_images[i], &st, &err) < 0)
				return fail(cmd, &err);
			total = st.index_bytes + st.object_bytes + st.remaining_plain;
			printf("delta: base %s: %" PRIu64 " chunks (%" PRIu64 " bytes) missing, %" PRIu64
			       " bytes as plain chunks; %" PRIu64 " objects (%" PRIu64 " zstd-ref, %" PRIu64
			       " residual, %" PRIu64 " zstd-frames; %" PRIu64 " also read new content before them) of %" PRIu64 " bytes replace %" PRIu64 " bytes of chunks; download %" PRIu64
			       " bytes (index %" PRIu64 ", objects %" PRIu64 ", chunks %" PRIu64 "); %.1f s\n",
			       a.bases[i], st.missing_chunks, st.missing_bytes, st.replaced_plain + st.remaining_plain,
			       st.objects, st.codec_count[SLOTSYNC_DELTA_ZSTD_REF], st.codec_count[SLOTSYNC_DELTA_RESIDUAL],
			       st.codec_count[SLOTSYNC_DELTA_ZSTD_FRAMES],
			       st.objects_reading_new, st.object_bytes, st.replaced_plain, total, st.index_bytes, st.object_bytes, st.remaining_plain,
			       st.seconds);
			if (st.index_path[0])
				printf("delta: index %s/%s\n", a.store, st.index_path);
		}
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
	a.bundle.store_urls = calloc((size_t)argc + 1, sizeof(*a.bundle.store_urls));
	a.bases = calloc((size_t)argc + 1, sizeof(*a.bases));
	a.bundle.delta_bases = calloc((size_t)argc + 1, sizeof(*a.bundle.delta_bases));
	a.bundle.delta_base_images = calloc((size_t)argc + 1, sizeof(*a.bundle.delta_base_images));
	a.base_images = calloc((size_t)argc + 1, sizeof(*a.base_images));
	if (!a.seeds || !a.bundle.store_urls || !a.bases || !a.base_images || !a.bundle.delta_bases ||
	    !a.bundle.delta_base_images)
		return 1;
	rc = run(argc, argv, &a);
	free(a.bases);
	free(a.base_images);
	free(a.bundle.delta_bases);
	free(a.bundle.delta_base_images);
	free(a.seeds);
	free(a.bundle.store_urls);
	return rc;
}

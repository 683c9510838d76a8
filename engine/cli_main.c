/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync: the device's command line.  Thin: parses arguments, calls libslotsync,
 * prints (text, or one JSON object with --json).  main() hands each verb to its
 * function through the table verbs[]: assemble and index-info are here, the
 * others in cli_*.c; each answers VERB --help with its own usage. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "io.h"
#include "parse.h"
#include "slotsync/assemble.h"
#include "slotsync/config.h"
#include "slotsync/index.h"
#include "slotsync/install.h"
#include "slotsync/log.h"
#include "slotsync/seed.h"
#include "slotsync/version.h"

/* What assemble and index-info do: in the program's usage and in their own. */
#define ASSEMBLE_ABOUT \
	"      Write the image of INDEX onto TARGET (file or block device): chunks from seeds\n" \
	"      first, the rest from the store over HTTP/2; resumable; exits 0 only when TARGET\n" \
	"      is byte-exact.  With --slot, TARGET is a slot of the configuration, opened\n" \
	"      through its backend (luks2: formatted with a fresh TPM-sealed key, the header's\n" \
	"      UUID kept in JOURNAL.header, reopened on resume); --seed-slot reads a slot\n" \
	"      (through its open mapping) as a seed.  A seed given with its index is a base:\n" \
	"      if the store has delta objects from it to INDEX, they rebuild what it lacks.\n" \
	"      A transfer slower than --min-rate (default 256 bytes/s, lowered to half a\n" \
	"      stream's share of --max-rate) for --stall-timeout is cut and retried.\n" \
	"      --seed-index INDEX gives the index of the --seed before it; --seed IMAGE:INDEX\n" \
	"      works too when INDEX is an existing file ending in .caibx (else the whole\n" \
	"      argument is the image: device names hold colons).  The store is https://,\n" \
	"      file:// or a local folder (/path); plain http:// only with --allow-plain-http.\n"
#define INDEX_INFO_ABOUT "      Check an index and print what it describes.\n"

static const char assemble_usage[] =
	"Usage: slotsync assemble --store URL [--seed IMAGE [--seed-index INDEX]]... [--journal FILE] [--ca-file PEM]\n"
	"                         [--client-cert PEM --client-key PEM] [--concurrency N] [--max-rate BYTES_PER_S]\n"
	"                         [--max-attempts N] [--stall-timeout SECONDS] [--min-rate BYTES_PER_S|none]\n"
	"                         [--reset-journal] [--dry-run] [--json]\n"
	"                         [--no-delta | --delta-index FILE] [--allow-plain-http] INDEX TARGET\n"
	"       slotsync assemble --config FILE --slot SLOT --journal FILE [--seed-slot SLOT:INDEX] [...] INDEX\n"
	ASSEMBLE_ABOUT
	"\n"
	"  -v/--verbose, -q/--quiet, -h/--help\n"
	CLI_EXIT_CODES;

static void usage(FILE *f)
{
	fputs("Usage: slotsync COMMAND [OPTIONS]\n"
	      "\n"
	      "Commands:\n"
	      "  install [--config FILE] [--json-progress] [--no-progress] [--abort] BUNDLE|URL\n"
	      "      The whole install: verify the bundle, write the inactive slot (resumable at\n"
	      "      every step), verify it, migrate the data partition, run the bundle's hooks,\n"
	      "      switch the boot state to it.  --abort drops an unfinished install first.\n"
	      "  status [--config FILE] [--json]\n"
	      "      Booted slot, each slot's version and boot state, the current or last install.\n"
	      "  mark-good | mark-bad | mark-active [--config FILE] [booted|other|A|B]\n"
	      "      Mark a slot (default: the booted one) good (it stays), bad (the bootloader\n"
	      "      falls back) or active (it boots next).\n"
	      "  info [--config FILE] [--json] BUNDLE\n"
	      "      Check a bundle with the configuration's keyring; print its manifest.\n"
	      "  agent [--config FILE] [--once] [--dbus system|ADDRESS] [--json-progress]\n"
	      "      Update by itself: validate the boot, resume or poll the channel, install,\n"
	      "      reboot; under systemd, Type=notify with the watchdog; a D-Bus installer.\n"
	      "  validate [--config FILE]\n"
	      "      After a boot into a new slot: run the health checks, mark it good or bad.\n"
	      "  assemble --store URL [--seed IMAGE [--seed-index INDEX]]... [--journal FILE] [--ca-file PEM]\n"
	      "           [--client-cert PEM --client-key PEM] [--concurrency N] [--max-rate BYTES_PER_S]\n"
	      "           [--max-attempts N] [--stall-timeout SECONDS] [--min-rate BYTES_PER_S|none]\n"
	      "           [--reset-journal] [--dry-run] [--json]\n"
	      "           [--no-delta | --delta-index FILE] [--allow-plain-http] INDEX TARGET\n"
	      "  assemble --config FILE --slot SLOT --journal FILE [--seed-slot SLOT:INDEX] [...] INDEX\n"
	      ASSEMBLE_ABOUT
	      "  index-info INDEX\n"
	      INDEX_INFO_ABOUT
	      "  verify --keyring CA.pem [--compatible C] [--state FILE] [--pointer POINTER]\n"
	      "         [--installed-version V] [--security-floor N] [--allow-downgrade]\n"
	      "         [--index-out FILE] BUNDLE\n"
	      "      Check a release bundle (signature, chain, manifest, index) and the device's\n"
	      "      policy (compatible, version, downgrade, security floor; with --pointer, the\n"
	      "      channel pointer too); print the manifest, or exit non-zero with the reason.\n"
	      "  state --state FILE [--set-installed V] [--raise-floor N]\n"
	      "      Show or update the device state the policy uses.\n"
	      "  slot-format [--tcti TCTI] [--pcrs N,...] [--root-pcr N --root-hash HEX] DEVICE\n"
	      "      Make DEVICE a LUKS2 volume with a fresh key sealed by the TPM; print its UUID.\n"
	      "  unlock [--config FILE] [--data] SLOT\n"
	      "      Open slot SLOT (A or B; with --data, its data partition) as the configuration\n"
	      "      says (luks2: the key unsealed by the TPM); print the device to mount.\n"
	      "  unlock [--tcti TCTI] [--expect-uuid UUID] DEVICE NAME | --check DEVICE\n"
	      "      Unseal DEVICE's key with the TPM and open /dev/mapper/NAME (or only check it).\n"
	      "  open-root [--config FILE] [--record FILE] [--name NAME] [--no-full-check] [--unverified] SLOT\n"
	      "      In the initramfs: check the signed release of slot SLOT, unlock it, check and open\n"
	      "      it through dm-verity, measure its root hash into [tpm] root-pcr; print the device.\n"
	      "  migrate-data --from DEV --to DEV --image DEV [--hooks-dir PATH] [--fs-type T]\n"
	      "      Copy the active data partition onto the new slot's, then run the new image's\n"
	      "      migration hooks on the copy (image read-only, copy read-write).\n"
	      "\n"
	      "  -v/--verbose, -q/--quiet, --version, -h/--help\n"
	      CLI_EXIT_CODES,
	      f);
}

int cli_exit_code(int r)
{
	switch (r) {
	case -EIO:          /* the fetcher gave up on an object after its attempts */
	case -ETIMEDOUT:
	case -EAGAIN:
	case -EINTR:
	case -ECANCELED:
	case -ECONNRESET:
	case -ECONNREFUSED:
	case -ECONNABORTED:
	case -ENETDOWN:
	case -ENETUNREACH:
	case -EHOSTUNREACH:
		return SLOTSYNC_EXIT_RESUMABLE;
	default:
		return SLOTSYNC_EXIT_FAILED;
	}
}

static int cmd_index_info(int argc, char **argv)
{
	struct slotsync_error err = { 0 };
	struct slotsync_index *idx = NULL;
	uint8_t digest[SLOTSYNC_DIGEST_BYTES];
	char hex[SLOTSYNC_DIGEST_HEX_BYTES];
	const char *path = argv[2];

	if (argc == 3 && (!strcmp(path, "--help") || !strcmp(path, "-h"))) {
		fputs("Usage: slotsync index-info INDEX\n" INDEX_INFO_ABOUT CLI_EXIT_CODES, stdout);
		return 0;
	}
	if (argc != 3) {
		fputs("slotsync index-info: needs INDEX\n", stderr);
		return 2;
	}
	if (slotsync_index_read_file(path, &idx, &err) < 0 || slotsync_index_digest(idx, digest, &err) < 0) {
		fprintf(stderr, "slotsync index-info: %s\n", slotsync_error_message(&err));
		slotsync_index_free(idx);
		return 1;
	}
	printf("index:        %s\n", path);
	printf("index sha256: %s\n", slotsync_digest_to_hex(digest, hex));
	printf("chunk digest: %s\n", slotsync_digest_name(idx->digest));
	printf("chunk sizes:  %" PRIu64 ":%" PRIu64 ":%" PRIu64 "\n", idx->chunk_size_min, idx->chunk_size_avg,
	       idx->chunk_size_max);
	printf("chunks:       %zu\n", idx->n_chunks);
	printf("image size:   %" PRIu64 "\n", slotsync_index_image_size(idx));
	slotsync_index_free(idx);
	return 0;
}

static void print_json(const struct slotsync_assemble_stats *st, int dry_run, const char *error)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "dry_run", json_object_new_boolean(dry_run));
	json_object_object_add(o, "chunks_total", json_object_new_int64((int64_t)st->chunks_total));
	json_object_object_add(o, "bytes_total", json_object_new_int64((int64_t)st->bytes_total));
	json_object_object_add(o, "chunks_already_done", json_object_new_int64((int64_t)st->chunks_already_done));
	json_object_object_add(o, "chunks_from_seed", json_object_new_int64((int64_t)st->chunks_from_seed));
	json_object_object_add(o, "bytes_from_seed", json_object_new_int64((int64_t)st->bytes_from_seed));
	json_object_object_add(o, "chunks_to_fetch", json_object_new_int64((int64_t)st->chunks_to_fetch));
	json_object_object_add(o, "bytes_to_fetch", json_object_new_int64((int64_t)st->bytes_to_fetch));
	json_object_object_add(o, "chunks_fetched", json_object_new_int64((int64_t)st->chunks_fetched));
	json_object_object_add(o, "bytes_fetched", json_object_new_int64((int64_t)st->bytes_fetched));
	json_object_object_add(o, "bytes_written", json_object_new_int64((int64_t)st->bytes_written));
	json_object_object_add(o, "delta_index", json_object_new_string(st->delta_index));
	json_object_object_add(o, "delta_objects_to_fetch", json_object_new_int64((int64_t)st->delta_objects_planned));
	json_object_object_add(o, "delta_bytes_to_fetch", json_object_new_int64((int64_t)st->delta_bytes_to_fetch));
	json_object_object_add(o, "chunks_to_rebuild", json_object_new_int64((int64_t)st->delta_chunks_planned));
	json_object_object_add(o, "bytes_to_rebuild", json_object_new_int64((int64_t)st->delta_bytes_planned));
	json_object_object_add(o, "delta_objects", json_object_new_int64((int64_t)st->delta_objects));
	json_object_object_add(o, "delta_bytes_fetched", json_object_new_int64((int64_t)st->delta_bytes_fetched));
	json_object_object_add(o, "chunks_from_delta", json_object_new_int64((int64_t)st->chunks_from_delta));
	json_object_object_add(o, "bytes_from_delta", json_object_new_int64((int64_t)st->bytes_from_delta));
	json_object_object_add(o, "delta_objects_failed", json_object_new_int64((int64_t)st->delta_objects_failed));
	json_object_object_add(o, "delta_chunks_refetched", json_object_new_int64((int64_t)st->delta_chunks_refetched));
	json_object_object_add(o, "delta_objects_skipped", json_object_new_int64((int64_t)st->delta_objects_skipped));
	json_object_object_add(o, "delta_note", json_object_new_string(st->delta_note));
	json_object_object_add(o, "seed_chunks_rejected", json_object_new_int64((int64_t)st->seed_chunks_rejected));
	json_object_object_add(o, "chunks_rechecked", json_object_new_int64((int64_t)st->chunks_rechecked));
	json_object_object_add(o, "chunks_recheck_failed", json_object_new_int64((int64_t)st->chunks_recheck_failed));
	json_object_object_add(o, "fetch_retries", json_object_new_int64((int64_t)st->fetch_retries));
	json_object_object_add(o, "fetch_resumed", json_object_new_int64((int64_t)st->fetch_resumed));
	json_object_object_add(o, "connections", json_object_new_int64(st->connections));
	json_object_object_add(o, "http_version", json_object_new_int(st->http_version));
	json_object_object_add(o, "verified", json_object_new_boolean(st->verified));
	json_object_object_add(o, "seconds", json_object_new_double(st->seconds));
	if (error)
		json_object_object_add(o, "error", json_object_new_string(error));
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}

static void progress_line(void *userdata, const struct slotsync_assemble_stats *st)
{
	double done = (double)(st->bytes_from_seed + st->bytes_written);

	(void)userdata;
	(void)done;
	fprintf(stderr, "\rassemble: %6.1f MB written, %6.1f MB fetched (%" PRIu64 " of %" PRIu64 " chunks), %5.1f s",
		(double)st->bytes_written / 1e6, (double)st->bytes_fetched / 1e6, st->chunks_fetched, st->chunks_to_fetch,
		st->seconds);
	fflush(stderr);
}

enum { OPT_STORE = 256, OPT_SEED, OPT_JOURNAL, OPT_CA, OPT_CERT, OPT_KEY, OPT_CONC, OPT_RATE, OPT_JSON, OPT_DRY,
       OPT_RESET, OPT_ATTEMPTS, OPT_STALL, OPT_VERSION, OPT_CONFIG, OPT_SLOT, OPT_SEED_SLOT, OPT_NO_DELTA,
       OPT_DELTA_INDEX, OPT_MIN_RATE, OPT_SEED_INDEX, OPT_PLAIN_HTTP };

static const struct option assemble_options[] = {
	{ "store", required_argument, NULL, OPT_STORE },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "seed-index", required_argument, NULL, OPT_SEED_INDEX },
	{ "allow-plain-http", no_argument, NULL, OPT_PLAIN_HTTP },
	{ "journal", required_argument, NULL, OPT_JOURNAL },
	{ "ca-file", required_argument, NULL, OPT_CA },
	{ "client-cert", required_argument, NULL, OPT_CERT },
	{ "client-key", required_argument, NULL, OPT_KEY },
	{ "concurrency", required_argument, NULL, OPT_CONC },
	{ "max-rate", required_argument, NULL, OPT_RATE },
	{ "max-attempts", required_argument, NULL, OPT_ATTEMPTS },
	{ "stall-timeout", required_argument, NULL, OPT_STALL },
	{ "min-rate", required_argument, NULL, OPT_MIN_RATE },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "dry-run", no_argument, NULL, OPT_DRY },
	{ "reset-journal", no_argument, NULL, OPT_RESET },
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "slot", required_argument, NULL, OPT_SLOT },
	{ "seed-slot", required_argument, NULL, OPT_SEED_SLOT },
	{ "no-delta", no_argument, NULL, OPT_NO_DELTA },
	{ "delta-index", required_argument, NULL, OPT_DELTA_INDEX },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* The header UUID of a slot being written is kept beside its journal
 * (JOURNAL.header), made durable before the slot is formatted. */
static int record_header(void *ud, const char *uuid, struct slotsync_error *err)
{
	char line[SLOTSYNC_LUKS_UUID_BYTES + 1];
	int n = snprintf(line, sizeof(line), "%s\n", uuid);

	return io_write_file_atomic(ud, line, (size_t)n, err);
}

static void read_header(const char *path, char uuid[SLOTSYNC_LUKS_UUID_BYTES])
{
	FILE *f = fopen(path, "r");

	uuid[0] = '\0';
	if (!f)
		return;
	if (!fgets(uuid, SLOTSYNC_LUKS_UUID_BYTES, f))
		uuid[0] = '\0';
	uuid[strcspn(uuid, "\n")] = '\0';
	fclose(f);
}

/* Slots named through the configuration: the target to write (--slot) and
 * the active slots to seed from (--seed-slot NAME:INDEX). */
struct slot_args {
	const char *config, *slot;
	const char *seed_slot[2];
	int n_seed_slots;
	struct slotsync_config cfg;
	struct slotsync_volume_handle target, seed[2];
	const char **seed_indexes;   /* beside the seeds: each one's index or NULL */
	char header_path[PATH_MAX];
};

static int open_slots(struct slot_args *sa, struct slotsync_assemble_options *opt, const char **seeds,
		      struct slotsync_error *err)
{
	struct slotsync_luks_tpm tpm;
	int r;

	if (slotsync_config_load(sa->config, &sa->cfg, err) < 0)
		return -1;
	tpm = slotsync_config_tpm(&sa->cfg);
	for (int i = 0; i < sa->n_seed_slots; i++) {
		char name[8];
		const char *colon = strchr(sa->seed_slot[i], ':');
		const struct slotsync_slot_config *s;
		struct slotsync_volume v;
		snprintf(name, sizeof(name), "%.*s", colon ? (int)(colon - sa->seed_slot[i]) : 0, sa->seed_slot[i]);
		s = slotsync_config_slot(&sa->cfg, name);
		if (!colon || !colon[1] || !s)
			return slotsync_error_set(err, -EINVAL, "--seed-slot takes SLOT:INDEX (slot A or B), not \"%s\"",
						  sa->seed_slot[i]);
		v = slotsync_slot_volume(s, 0);
		r = slotsync_volume_open_read(&v, &tpm, &sa->seed[i], err);
		if (r < 0) {
			slotsync_error_prefix(err, "seed slot %s", s->name);
			return r;
		}
		sa->seed_indexes[opt->n_seeds] = colon + 1;
		seeds[opt->n_seeds++] = sa->seed[i].path;
	}
	if (sa->slot) {
		const struct slotsync_slot_config *s = slotsync_config_slot(&sa->cfg, sa->slot);
		char uuid[SLOTSYNC_LUKS_UUID_BYTES];
		struct slotsync_volume v;
		int formatted = 0;
		if (!s)
			return slotsync_error_set(err, -EINVAL, "--slot takes A or B, not \"%s\"", sa->slot);
		if (!opt->journal_path)
			return slotsync_error_set(err, -EINVAL, "--slot needs --journal");
		snprintf(sa->header_path, sizeof(sa->header_path), "%s.header", opt->journal_path);
		read_header(sa->header_path, uuid);
		v = slotsync_slot_volume(s, 0);
		r = slotsync_volume_open_write(&v, &tpm, uuid, record_header, sa->header_path, &formatted, &sa->target, err);
		if (r < 0) {
			slotsync_error_prefix(err, "slot %s", s->name);
			return r;
		}
		if (formatted)
			opt->reset_journal = 1; /* whatever the journal says was written under another key */
		opt->target = sa->target.path;
	}
	return 0;
}

static void close_slots(struct slot_args *sa)
{
	struct slotsync_error err = { 0 };

	for (int i = 0; i < 2; i++)
		if (slotsync_volume_close(&sa->seed[i], &err) < 0)
			fprintf(stderr, "slotsync assemble: %s\n", slotsync_error_message(&err));
	if (slotsync_volume_close(&sa->target, &err) < 0)
		fprintf(stderr, "slotsync assemble: %s\n", slotsync_error_message(&err));
}

/* Reads the options that bound the fetch (--concurrency, --max-rate,
 * --max-attempts, --stall-timeout, --min-rate) into fo; -1 (and a message) if arg is out
 * of range. */
static int parse_fetch_limit(int c, const char *arg, struct slotsync_fetch_options *fo)
{
	uint64_t v;

	switch (c) {
	case OPT_CONC:
		if (parse_u64(arg, 1, 256, &v) < 0) {
			fprintf(stderr, "slotsync assemble: --concurrency takes 1 to 256, not \"%s\"\n", arg);
			return -1;
		}
		fo->concurrency = (int)v;
		return 0;
	case OPT_RATE:
		if (parse_u64(arg, 1, UINT64_MAX / 2, &v) < 0) {
			fprintf(stderr, "slotsync assemble: --max-rate takes bytes per second, not \"%s\"\n", arg);
			return -1;
		}
		fo->max_rate_bps = v;
		return 0;
	case OPT_MIN_RATE:
		if (!strcmp(arg, "none")) {
			fo->min_rate_bps = SLOTSYNC_FETCH_MIN_RATE_NONE;
			return 0;
		}
		if (parse_u64(arg, 1, UINT64_MAX / 2, &v) < 0) {
			fprintf(stderr, "slotsync assemble: --min-rate takes bytes per second or \"none\", not \"%s\"\n", arg);
			return -1;
		}
		fo->min_rate_bps = v;
		return 0;
	case OPT_ATTEMPTS:
		if (parse_u64(arg, 1, 1000000, &v) < 0) {
			fprintf(stderr, "slotsync assemble: --max-attempts takes a number, not \"%s\"\n", arg);
			return -1;
		}
		fo->max_attempts = (int)v;
		return 0;
	default: /* OPT_STALL */
		if (parse_u64(arg, 1, 86400, &v) < 0) {
			fprintf(stderr, "slotsync assemble: --stall-timeout takes seconds, not \"%s\"\n", arg);
			return -1;
		}
		fo->stall_timeout_s = (long)v;
		/* retries of a stalled link start sooner too */
		fo->backoff_initial_ms = (long)(v * 100 < 500 ? v * 100 : 500);
		return 0;
	}
}

/* --seed IMAGE:INDEX, split in place where the rule of slotsync_seed_spec_parse
 * says INDEX is an index (an existing *.caibx file); else all of it is the image. */
static int split_seed_spec(char *spec, const char **index)
{
	struct slotsync_error err = { 0 };
	char *image = NULL, *idx = NULL;
	int r = slotsync_seed_spec_parse(spec, &image, &idx, &err);

	if (r < 0) {
		fprintf(stderr, "slotsync assemble: --seed: %s\n", slotsync_error_message(&err));
		return -1;
	}
	if (idx) {
		spec[strlen(image)] = '\0';
		*index = spec + strlen(image) + 1;
	}
	free(image);
	free(idx);
	return 0;
}

/* The options and arguments of slotsync assemble, into opt (seeds: room for
 * argc entries, behind opt->seeds) and sa.  0 to go on; 1 after --help; -1 on a
 * usage error (its message printed). */
static int parse_assemble_args(int argc, char **argv, struct slotsync_assemble_options *opt, const char **seeds,
			       struct slot_args *sa, int *json)
{
	int c, plain_http = 0, r;

	optind = 2;
	while ((c = getopt_long(argc, argv, "vqh", assemble_options, NULL)) != -1) {
		switch (c) {
		case OPT_STORE: {
			/* a local folder (absolute path) is read as a file:// store */
			static char store_url[8192];
			struct slotsync_error e = { 0 };
			if (slotsync_fetch_store_url(optarg, store_url, sizeof(store_url), &e) < 0) {
				fprintf(stderr, "slotsync assemble: --store: %s\n", slotsync_error_message(&e));
				return -1;
			}
			opt->fetch.base_url = store_url;
			break;
		}
		case OPT_SEED:
			seeds[opt->n_seeds++] = optarg;
			if (split_seed_spec(optarg, &sa->seed_indexes[opt->n_seeds - 1]) < 0)
				return -1;
			break;
		case OPT_SEED_INDEX:
			if (!opt->n_seeds || sa->seed_indexes[opt->n_seeds - 1]) {
				fprintf(stderr, "slotsync assemble: --seed-index %s must follow a --seed that has no index yet\n",
					optarg);
				return -1;
			}
			sa->seed_indexes[opt->n_seeds - 1] = optarg;
			break;
		case OPT_JOURNAL:
			opt->journal_path = optarg;
			break;
		case OPT_CA:
			opt->fetch.ca_file = optarg;
			break;
		case OPT_CERT:
			opt->fetch.client_cert = optarg;
			break;
		case OPT_KEY:
			opt->fetch.client_key = optarg;
			break;
		case OPT_CONC:
		case OPT_RATE:
		case OPT_ATTEMPTS:
		case OPT_STALL:
		case OPT_MIN_RATE:
			if (parse_fetch_limit(c, optarg, &opt->fetch) < 0)
				return -1;
			break;
		case OPT_JSON:
			*json = 1;
			break;
		case OPT_DRY:
			opt->dry_run = 1;
			break;
		case OPT_RESET:
			opt->reset_journal = 1;
			break;
		case OPT_NO_DELTA:
			opt->no_delta = 1;
			break;
		case OPT_DELTA_INDEX:
			opt->delta_index_path = optarg;
			break;
		case OPT_CONFIG:
			sa->config = optarg;
			break;
		case OPT_SLOT:
			sa->slot = optarg;
			break;
		case OPT_SEED_SLOT:
			if (sa->n_seed_slots == 2) {
				fputs("slotsync assemble: --seed-slot at most twice\n", stderr);
				return -1;
			}
			sa->seed_slot[sa->n_seed_slots++] = optarg;
			break;
		case OPT_PLAIN_HTTP:
			plain_http = 1;
			break;
		case 'v':
			slotsync_log_set_level(slotsync_log_get_level() + 1);
			break;
		case 'q':
			slotsync_log_set_level(SLOTSYNC_LOG_ERROR);
			break;
		case 'h':
			fputs(assemble_usage, stdout);
			return 1;
		default:
			return -1;
		}
	}
	if (argc - optind != (sa->slot ? 1 : 2)) {
		fputs(sa->slot ? "slotsync assemble: with --slot, needs INDEX only\n" : "slotsync assemble: needs INDEX and TARGET\n",
		      stderr);
		return -1;
	}
	if (!!opt->fetch.client_cert != !!opt->fetch.client_key) {
		fputs("slotsync assemble: --client-cert and --client-key go together\n", stderr);
		return -1;
	}
	r = opt->fetch.base_url ? parse_url(opt->fetch.base_url, plain_http) : 0;
	if (r < 0) {
		fprintf(stderr, "slotsync assemble: --store %s: %s\n", opt->fetch.base_url, parse_url_problem(r));
		return -1;
	}
	opt->index_path = argv[optind];
	opt->target = argv[optind + 1];
	return 0;
}

/* Opens the slots named through the configuration (if any), assembles, closes
 * them.  The exit code: 0, or 1 or 3 (cli_exit_code) with err filled. */
static int run_assemble(struct slot_args *sa, struct slotsync_assemble_options *opt, const char **seeds,
			struct slotsync_assemble_stats *st, struct slotsync_error *err)
{
	int rc;

	int r;

	if ((sa->slot || sa->n_seed_slots) && open_slots(sa, opt, seeds, err) < 0) {
		rc = 1;
	} else {
		r = slotsync_assemble(opt, st, err);
		rc = r < 0 ? cli_exit_code(r) : 0;
	}
	close_slots(sa);
	return rc;
}

/* --dry-run: where the chunks would come from. */
static void print_plan(const struct slotsync_assemble_stats *st)
{
	printf("plan: %" PRIu64 " chunks (%" PRIu64 " bytes); from seeds: %" PRIu64 " chunks (%" PRIu64
	       " bytes); from the network: %" PRIu64 " chunks (%" PRIu64 " bytes uncompressed)",
	       st->chunks_total, st->bytes_total, st->chunks_total - st->chunks_to_fetch - st->delta_chunks_planned,
	       st->bytes_total - st->bytes_to_fetch - st->delta_bytes_planned, st->chunks_to_fetch, st->bytes_to_fetch);
	if (st->delta_objects_planned)
		printf("; rebuilt by %" PRIu64 " delta objects (%" PRIu64 " bytes to fetch): %" PRIu64 " chunks (%" PRIu64
		       " bytes)",
		       st->delta_objects_planned, st->delta_bytes_to_fetch, st->delta_chunks_planned, st->delta_bytes_planned);
	printf("\n");
}

/* A run that succeeded: where the chunks came from. */
static void print_summary(const struct slotsync_assemble_stats *st)
{
	printf("assemble: %" PRIu64 " chunks, %" PRIu64 " bytes: %" PRIu64 " chunks from seeds, %" PRIu64
	       " rebuilt by %" PRIu64 " delta objects, %" PRIu64 " fetched (%" PRIu64
	       " bytes over %ld connection%s, HTTP/%d), %" PRIu64
	       " already done; %" PRIu64 " bytes written; verified in %.2f s\n",
	       st->chunks_total, st->bytes_total, st->chunks_from_seed, st->chunks_from_delta, st->delta_objects,
	       st->chunks_fetched, st->bytes_fetched, st->connections, st->connections == 1 ? "" : "s",
	       st->http_version ? st->http_version : 0, st->chunks_already_done, st->bytes_written, st->seconds);
	if (st->delta_objects_failed)
		printf("assemble: %" PRIu64 " delta objects could not be used: their %" PRIu64
		       " chunks were fetched instead\n",
		       st->delta_objects_failed, st->delta_chunks_refetched);
	if (st->delta_objects_skipped)
		printf("assemble: %s\n", st->delta_note);
}

/* The outcome of a run (rc 0, or 1 with err): the error on stderr, then one
 * JSON object, the plan (--dry-run) or the summary on stdout. */
static void print_assemble_result(const struct slotsync_assemble_options *opt, const struct slotsync_assemble_stats *st,
				  int json, int rc, const struct slotsync_error *err)
{
	if (opt->progress)
		fputs("\r\033[K", stderr);
	if (rc)
		fprintf(stderr, "slotsync assemble: %s\n", slotsync_error_message(err));
	if (rc == SLOTSYNC_EXIT_RESUMABLE && opt->journal_path)
		fprintf(stderr, "slotsync assemble: interrupted; run the same command again to resume it (journal %s)\n",
			opt->journal_path);
	if (json)
		print_json(st, opt->dry_run, rc ? slotsync_error_message(err) : NULL);
	else if (opt->dry_run)
		print_plan(st);
	else if (!rc)
		print_summary(st);
}

static int cmd_assemble(int argc, char **argv)
{
	static struct slot_args sa;
	struct slotsync_assemble_options opt = { 0 };
	struct slotsync_assemble_stats st;
	struct slotsync_error err = { 0 };
	const char **seeds = calloc(2 * ((size_t)argc + 1), sizeof(*seeds));
	int json = 0, rc;

	if (!seeds)
		return 1;
	opt.seeds = seeds;
	sa.seed_indexes = seeds + argc + 1;
	opt.seed_indexes = sa.seed_indexes;
	rc = parse_assemble_args(argc, argv, &opt, seeds, &sa, &json);
	if (rc != 0) {
		free(seeds);
		return rc > 0 ? 0 : 2;
	}
	if (!json && isatty(STDERR_FILENO))
		opt.progress = progress_line;
	memset(&st, 0, sizeof(st));
	rc = run_assemble(&sa, &opt, seeds, &st, &err);
	print_assemble_result(&opt, &st, json, rc, &err);
	free(seeds);
	return rc;
}

/* The verbs, each with its own options, usage (VERB --help) and exit codes. */
static const struct verb {
	const char *name;
	int (*run)(int argc, char **argv);
} verbs[] = {
	{ "install", cli_install },
	{ "status", cli_status },
	{ "mark-good", cli_mark },
	{ "mark-bad", cli_mark },
	{ "mark-active", cli_mark },
	{ "info", cli_info },
	{ "agent", cli_agent },
	{ "validate", cli_validate },
	{ "assemble", cmd_assemble },
	{ "index-info", cmd_index_info },
	{ "verify", cli_verify },
	{ "state", cli_state },
	{ "slot-format", cli_slot_format },
	{ "unlock", cli_unlock },
	{ "open-root", cli_open_root },
	{ "migrate-data", cli_migrate_data },
};

int main(int argc, char **argv)
{
	/* --version anywhere before "--"; -v/-q before the command apply to every command */
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "--version")) {
			printf("slotsync %s\n", SLOTSYNC_VERSION);
			return 0;
		}
	while (argc > 1 && (!strcmp(argv[1], "-v") || !strcmp(argv[1], "--verbose") || !strcmp(argv[1], "-q") ||
			    !strcmp(argv[1], "--quiet"))) {
		if (argv[1][1] == 'v' || argv[1][2] == 'v')
			slotsync_log_set_level(slotsync_log_get_level() + 1);
		else
			slotsync_log_set_level(SLOTSYNC_LOG_ERROR);
		argv[1] = argv[0];
		argv++;
		argc--;
	}
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (!strcmp(argv[1], verbs[i].name))
			return verbs[i].run(argc, argv);
	fprintf(stderr, "slotsync: unknown command \"%s\"\n", argv[1]);
	usage(stderr);
	return 2;
}

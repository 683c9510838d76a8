/* slotsync: the device's command line.  Thin: parses arguments, calls libslotsync,
 * prints.  The install verbs arrive with the device engine; this carries what the
 * device can already do with the shared format code. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "slotsync/index.h"
#include "slotsync/version.h"

static void usage(FILE *f)
{
	fputs("Usage: slotsync COMMAND [OPTIONS]\n"
	      "\n"
	      "Commands:\n"
	      "  index-info INDEX   Check an index and print what it describes.\n"
	      "\n"
	      "  --version, -h/--help\n",
	      f);
}

static int cmd_index_info(const char *path)
{
	struct slotsync_error err = { 0 };
	struct slotsync_index *idx = NULL;
	uint8_t digest[SLOTSYNC_DIGEST_BYTES];
	char hex[SLOTSYNC_DIGEST_HEX_BYTES];

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

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("slotsync %s\n", SLOTSYNC_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "index-info")) {
		if (argc != 3) {
			fputs("slotsync index-info: needs INDEX\n", stderr);
			return 2;
		}
		return cmd_index_info(argv[2]);
	}
	fprintf(stderr, "slotsync: unknown command \"%s\"\n", argv[1]);
	usage(stderr);
	return 2;
}

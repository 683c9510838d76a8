/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync-gen's help texts (see gen_usage.h): what each verb's --help prints,
 * with the defaults of gen.h.  docs/man/slotsync-gen.1.scd holds them too
 * (it_cli_docs checks that both name the same options). */
#include "gen_usage.h"

#include "gen.h"

void gen_usage(FILE *f)
{
	fputs("Usage: slotsync-gen COMMAND [OPTIONS]\n"
	      "\n"
	      "Commands:\n"
	      "  make [--store DIR] [--chunk-size MIN:AVG:MAX] [--threads N] [--level L]\n"
	      "       [--digest sha256|sha512-256] [--no-progress] IMAGE INDEX.caibx\n"
	      "      Cut IMAGE into content-defined chunks, add the new ones to the store,\n"
	      "      write the index.\n"
	      "  extract --store DIR [--seed IMAGE [--seed-index INDEX]]... INDEX OUT\n"
	      "      Rebuild the image of INDEX into OUT, taking chunks from seeds first.\n"
	      "  check --store DIR [--index INDEX] [--repair]\n"
	      "      Verify every chunk, delta object and delta index of the store.\n"
	      "  bundle --store DIR --image IMG --version V --compatible C [--security-version N]\n"
	      "       [--allow-downgrade-to V] [--store-url URL]... [--verity-root-hash HEX]\n"
	      "       [--hook-pre-install FILE] [--hook-post-install FILE] [--timestamp TIME]\n"
	      "       [--expires TIME] [--delta-from BASE.caibx:BASE.img]... [--verity] SIGNER OUT\n"
	      "      Chunk IMG into the store and write the signed release bundle OUT; with\n"
	      "      --delta-from, delta objects from each base too, their indexes signed;\n"
	      "      with --verity, IMG's slot image (as verity makes it) instead.\n"
	      "      TIME is 2026-01-31T12:00:00Z or @SECONDS; the creation time defaults to\n"
	      "      SOURCE_DATE_EPOCH, then to now.\n"
	      "  channel --bundle-url URL --bundle BUNDLE --version N --expires TIME\n"
	      "       [--compatible C] SIGNER OUT\n"
	      "      Write a signed channel pointer to BUNDLE.\n"
	      "  delta --store DIR --base INDEX --base-image IMAGE [--base ... --base-image ...]\n"
	      "       [--threads N] [--level L] [--records-level L] [--index-format 2|3]\n"
	      "       [--run-max BYTES] [--dry-run]\n"
	      "       NEW.caibx NEW.img\n"
	      "      For the chunks of NEW that each base lacks, write delta objects and the\n"
	      "      delta index of the pair into the store (docs/format.md); --dry-run only\n"
	      "      reports what a device would download.\n"
	      "  prune --store DIR --keep RELEASE... [--dry-run] [--grace MINUTES] [--keyring PEM]\n"
	      "      Remove from the store what no kept release (bundle or index) needs.\n"
	      "  publish [--store DIR] [--bundle FILE]... [--pointer FILE]... --to DEST [--jobs N]\n"
	      "      Send what DEST (a folder or s3://BUCKET/PREFIX) lacks: the store, then\n"
	      "      the bundles, the channel pointers last.\n"
	      "  verity [--json] IMAGE SLOT-IMAGE\n"
	      "      Write IMAGE's slot image: IMAGE padded to 4096-byte blocks, then its\n"
	      "      dm-verity hash tree; print the root hash, salt and data size.\n"
	      "  SIGNER: --signer-cert CERT --signer-key KEY|pkcs11:URI [--chain PEM]\n"
	      "       [--pkcs11-module SO]\n"
	      "\n"
	      "Options for every command: -v/--verbose, -q/--quiet, --version, -h/--help\n",
	      f);
}

/* The lines of every verb's usage that are the same everywhere. */
#define USAGE_COMMON \
	"  -v, --verbose                say more (again for more still)\n" \
	"  -q, --quiet                  errors only, no progress bar\n" \
	"  -h, --help                   print this help\n"
#define USAGE_VERSION "  --version                    print the program's version\n"
#define USAGE_SIGNER \
	"SIGNER:\n" \
	"  --signer-cert CERT           the signer's certificate (codeSigning usage)\n" \
	"  --signer-key KEY|pkcs11:URI  its key: a PEM file, or a key in a PKCS#11 token\n" \
	"  --chain PEM                  intermediate certificates to include\n" \
	"  --pkcs11-module SO           the PKCS#11 module (default: p11-kit's proxy)\n"

void gen_make_usage(FILE *f)
{
	fprintf(f,
		"Usage: slotsync-gen make [OPTIONS] IMAGE INDEX.caibx\n"
		"\n"
		"Cut IMAGE into content-defined chunks, add the new ones to the store, write\n"
		"the index.\n"
		"\n"
		"Options:\n"
		"  --store DIR                  the chunk store (none: write the index only)\n"
		"  --chunk-size MIN:AVG:MAX     chunk sizes (default %uK:%uK:%uK)\n"
		"  --threads N                  workers, 1 to 64 (default: one per core)\n"
		"  --level L                    zstd level of the chunks (default %d)\n"
		"  --digest sha256|sha512-256   the chunk ids (default sha256)\n"
		"  --no-progress                no progress bar on a terminal\n" USAGE_COMMON USAGE_VERSION,
		SLOTSYNC_CHUNK_MIN_DEFAULT / 1024, SLOTSYNC_CHUNK_AVG_DEFAULT / 1024, SLOTSYNC_CHUNK_MAX_DEFAULT / 1024,
		GEN_ZSTD_LEVEL_DEFAULT);
}

void gen_extract_usage(FILE *f)
{
	fputs("Usage: slotsync-gen extract --store DIR [--seed IMAGE [--seed-index INDEX]]... INDEX OUT\n"
	      "\n"
	      "Rebuild the image of INDEX into OUT, taking chunks from seeds first (each\n"
	      "one checked), the rest from the store.\n"
	      "\n"
	      "Options:\n"
	      "  --store DIR                  the chunk store\n"
	      "  --seed IMAGE                 an image that may hold chunks of INDEX (again for\n"
	      "                               more seeds); --seed IMAGE:INDEX gives its index\n"
	      "                               too when INDEX is an existing *.caibx file\n"
	      "  --seed-index INDEX           the index of the --seed before it\n"
	      USAGE_COMMON USAGE_VERSION,
	      f);
}

void gen_check_usage(FILE *f)
{
	fputs("Usage: slotsync-gen check --store DIR [--index INDEX] [--repair]\n"
	      "\n"
	      "Verify every chunk, delta object and delta index of the store.\n"
	      "\n"
	      "Options:\n"
	      "  --store DIR                  the chunk store\n"
	      "  --index INDEX                also, that the store holds every chunk INDEX names\n"
	      "  --repair                     delete bad chunks and delta files, and temp files\n"
	      USAGE_COMMON USAGE_VERSION,
	      f);
}

void gen_bundle_usage(FILE *f)
{
	fprintf(f,
		"Usage: slotsync-gen bundle --store DIR --image IMG [--image NAME=FILE]...\n"
		"       --version V --compatible C [OPTIONS] SIGNER OUT\n"
		"\n"
		"Chunk IMG into the store and write the signed release bundle OUT; with\n"
		"--delta-from, delta objects from each base too, their indexes signed.\n"
		"\n"
		"Options:\n"
		"  --store DIR                  the chunk store\n"
		"  --image IMG                  the release's image (the slot group's rootfs)\n"
		"  --image NAME=FILE            a further image of the slot group, e.g.\n"
		"                               boot=boot.vfat (again for more)\n"
		"  --version V                  the release's version\n"
		"  --compatible C               the devices it is for\n"
		"  --security-version N         the release's security version (default 0)\n"
		"  --allow-downgrade-to V       devices may go back to this release (V: its version)\n"
		"  --store-url URL              a store devices fetch from (again for more)\n"
		"  --verity-root-hash HEX       the image's dm-verity root hash\n"
		"  --verity                     compute IMG's dm-verity hash tree, chunk the slot\n"
		"                               image (IMG, padding, tree) and sign its root hash\n"
		"  --hook-pre-install FILE      a program the device runs before it installs\n"
		"  --hook-post-install FILE     a program the device runs after it installs\n"
		"  --timestamp TIME             the creation time (default: SOURCE_DATE_EPOCH,\n"
		"                               then now)\n"
		"  --expires TIME               when the bundle expires (default: never)\n"
		"  --delta-from BASE.caibx:BASE.img\n"
		"                               delta objects from this base (again for more;\n"
		"                               with --verity, BASE.img is the base's slot image)\n"
		"  --run-max BYTES              bytes of new chunks one delta object may rebuild\n"
		"                               (default %d)\n"
		"  --records-level L            as for delta (default %d)\n"
		"  --index-format 2|3           as for delta (default 3)\n"
		"  --packs                      pack objects too: a device with no base fetches\n"
		"                               about one object per MiB instead of each chunk\n"
		"  --embed                      put the release's chunks into the bundle: it\n"
		"                               installs with no network (a USB stick)\n"
		"  --embed-for BASE.caibx       embed only the chunks a device running BASE\n"
		"                               lacks (again for more bases)\n"
		"  --detach-index               leave the index out of the bundle: the store\n"
		"                               gets it as indexes/<SHA-256>.caibx, and a device\n"
		"                               with a base index fetches its index diff\n"
		"  --chunk-size, --threads, --digest, --no-progress  as for make\n"
		"  --level L                    zstd level of the chunks (default %d) and, if\n"
		"                               given, of the delta objects (default %d)\n" USAGE_COMMON USAGE_SIGNER
		"TIME is 2026-01-31T12:00:00Z or @SECONDS.\n",
		GEN_DELTA_RUN_MAX_DEFAULT, GEN_DELTA_RECORDS_LEVEL_DEFAULT, GEN_ZSTD_LEVEL_DEFAULT, GEN_DELTA_LEVEL_DEFAULT);
}

void gen_channel_usage(FILE *f)
{
	fputs("Usage: slotsync-gen channel --bundle-url URL --bundle BUNDLE --version N\n"
	      "       --expires TIME [--compatible C] SIGNER OUT\n"
	      "\n"
	      "Write a signed channel pointer to BUNDLE.\n"
	      "\n"
	      "Options:\n"
	      "  --bundle-url URL             where devices download the bundle\n"
	      "  --bundle BUNDLE              the bundle (its size and SHA-256 go in the pointer)\n"
	      "  --version N                  the pointer's version, a whole number\n"
	      "  --expires TIME               when the pointer goes stale (required)\n"
	      "  --compatible C               the devices it is for\n" USAGE_COMMON USAGE_SIGNER
	      "TIME is 2026-01-31T12:00:00Z or @SECONDS.\n",
	      f);
}

void gen_delta_usage(FILE *f)
{
	fprintf(f,
		"Usage: slotsync-gen delta --store DIR --base INDEX --base-image IMAGE\n"
		"       [--base INDEX --base-image IMAGE]... [OPTIONS] NEW.caibx NEW.img\n"
		"\n"
		"For the chunks of NEW that each base lacks, write delta objects and the\n"
		"delta index of the pair into the store (docs/format.md); --dry-run only\n"
		"reports what a device would download.\n"
		"\n"
		"Options:\n"
		"  --store DIR                  the chunk store\n"
		"  --base INDEX                 a base release's index (again for more bases)\n"
		"  --base-image IMAGE           its image (one for each --base, in their order)\n"
		"  --threads N                  workers, 1 to 64 (default: one per core)\n"
		"  --level L                    zstd level of the objects (default %d)\n"
		"  --records-level L            zstd level of the new blocks' content in objects\n"
		"                               (blocks of a gzip, xz, lz4 or zstd image; gzip\n"
		"                               files of an uncompressed one; default %d;\n"
		"                               19: a few %% smaller, about twice the time)\n"
		"  --index-format 2|3           3: gzip files inside compressed blocks are\n"
		"                               deflated again, zstd blocks are blocks objects\n"
		"                               (SSDELTA3 where used); 2: neither, for devices\n"
		"                               that read only SSDELTA2\n"
		"  --run-max BYTES              bytes of new chunks one object may rebuild\n"
		"                               (default %d)\n"
		"  --dry-run                    write nothing, report the download\n" USAGE_COMMON USAGE_VERSION,
		GEN_DELTA_LEVEL_DEFAULT, GEN_DELTA_RECORDS_LEVEL_DEFAULT, GEN_DELTA_RUN_MAX_DEFAULT);
}


/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Assembling an image onto a plain file: from a seed alone, from a seed and a
 * store served over HTTP (fixtures.c), with a damaged seed chunk (not used:
 * fetched instead), with a store chunk of the wrong content (refused), and
 * resumed from the journal after a simulated power cut.  Each ends byte-exact
 * or refused, never anything in between. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixtures.h"
#include "slotsync/assemble.h"
#include "slotsync/store.h"

#define IMG_LEN (2u << 20)

struct ctx {
	char *dir, www[PATH_MAX], store[PATH_MAX], target[PATH_MAX], log[PATH_MAX], url[128];
	const char *seeds[1], *seed_indexes[1];
	struct fx_image v1, v2;
	struct fx_http http;
	struct slotsync_assemble_options o;
	struct slotsync_assemble_stats st;
	struct slotsync_error err;
	uint64_t new_chunks;   /* unique chunks of v2 that v1 lacks */
};

static int index_has(const struct slotsync_index *idx, const uint8_t *id)
{
	for (size_t i = 0; i < idx->n_chunks; i++)
		if (!memcmp(idx->chunks[i].id, id, SLOTSYNC_DIGEST_BYTES))
			return 1;
	return 0;
}

/* v1 (the seed) and v2 (v1 with 128 KiB rewritten), v2's chunks in www/store. */
static void ctx_make(struct ctx *c, const struct fx_http_rule *rules, size_t n_rules)
{
	uint8_t *data = malloc(IMG_LEN);

	memset(c, 0, sizeof(*c));
	c->dir = test_mkdtemp();
	fx_path(c->www, c->dir, "www");
	fx_path(c->store, c->www, "store");
	fx_path(c->target, c->dir, "target.img");
	fx_path(c->log, c->dir, "requests.log");
	ck_assert_int_eq(mkdir(c->www, 0755), 0);
	fx_image_make(&c->v1, c->dir, "v1", IMG_LEN, 21, NULL);
	memcpy(data, c->v1.data, IMG_LEN);
	test_fill_random(data + IMG_LEN / 3, 128 << 10, 22);
	fx_image_make_from(&c->v2, c->dir, "v2", data, IMG_LEN, c->store);
	free(data);
	for (size_t i = 0; i < c->v2.index->n_chunks; i++) {
		int first = 1;
		for (size_t j = 0; j < i && first; j++)
			first = memcmp(c->v2.index->chunks[j].id, c->v2.index->chunks[i].id, SLOTSYNC_DIGEST_BYTES) != 0;
		if (first && !index_has(c->v1.index, c->v2.index->chunks[i].id))
			c->new_chunks++;
	}
	ck_assert_uint_gt(c->new_chunks, 0);
	fx_http_start(&c->http, c->www, rules, n_rules, c->log);
	snprintf(c->url, sizeof(c->url), "%s/store", c->http.url);
	c->seeds[0] = c->v1.img;
	c->seed_indexes[0] = c->v1.idx;
	c->o.index_path = c->v2.idx;
	c->o.target = c->target;
	c->o.seeds = c->seeds;
	c->o.seed_indexes = c->seed_indexes;
	c->o.n_seeds = 1;
	c->o.no_delta = 1;
	c->o.fetch.base_url = c->url;
	c->o.fetch.max_attempts = 3;
	c->o.fetch.backoff_initial_ms = 10;
	c->o.fetch.backoff_max_ms = 50;
	c->o.fetch.concurrency = 4;
}

static void ctx_free(struct ctx *c)
{
	fx_http_stop(&c->http);
	fx_image_free(&c->v1);
	fx_image_free(&c->v2);
	test_rmdir(c->dir);
}

static int assemble(struct ctx *c)
{
	memset(&c->err, 0, sizeof(c->err));
	return slotsync_assemble(&c->o, &c->st, &c->err);
}

START_TEST(test_seed_only)
{
	struct ctx c;
	uint8_t junk[4096];

	ctx_make(&c, NULL, 0);
	/* v1 again, from the seed alone, over a target holding garbage; the store
	 * is never asked */
	test_fill_random(junk, sizeof(junk), 5);
	ck_assert_int_eq(test_write_file(c.target, junk, sizeof(junk)), 0);
	c.o.index_path = c.v1.idx;
	ck_assert_msg(assemble(&c) == 0, "%s", c.err.msg);
	ck_assert(fx_file_equals(c.target, c.v1.data, IMG_LEN));
	ck_assert_int_eq(c.st.verified, 1);
	ck_assert_uint_eq(c.st.chunks_from_seed, c.v1.index->n_chunks);
	ck_assert_uint_eq(c.st.bytes_fetched, 0);
	ck_assert_int_eq(fx_http_count(&c.http, NULL, 0), 0);
	ctx_free(&c);
}
END_TEST

START_TEST(test_seed_and_store)
{
	struct ctx c;

	ctx_make(&c, NULL, 0);
	ck_assert_msg(assemble(&c) == 0, "%s", c.err.msg);
	ck_assert(fx_file_equals(c.target, c.v2.data, IMG_LEN));
	ck_assert_int_eq(c.st.verified, 1);
	/* only the chunks v1 lacks came over the network, each once */
	ck_assert_uint_eq(c.st.chunks_fetched, c.new_chunks);
	ck_assert_int_eq(fx_http_count(&c.http, NULL, 200), (int)c.new_chunks);
	ck_assert_uint_gt(c.st.chunks_from_seed, 0);
	ck_assert_uint_eq(c.st.seed_chunks_rejected, 0);

	/* run again: the journal says it is all there, nothing is fetched */
	ck_assert_msg(assemble(&c) == 0, "%s", c.err.msg);
	ck_assert(fx_file_equals(c.target, c.v2.data, IMG_LEN));
	ck_assert_uint_eq(c.st.chunks_fetched, 0);
	ck_assert_int_eq(fx_http_count(&c.http, NULL, 200), (int)c.new_chunks);
	ctx_free(&c);
}
END_TEST

START_TEST(test_damaged_seed_chunk_not_used)
{
	struct ctx c;
	char chunk[PATH_MAX], rel[SLOTSYNC_CHUNK_RELPATH_BYTES];
	FILE *f;

	ctx_make(&c, NULL, 0);
	/* the seed's first chunk (v2 has it too) changed since v1's index was made */
	ck_assert(index_has(c.v2.index, c.v1.index->chunks[0].id));
	f = fopen(c.v1.img, "r+b");
	ck_assert_ptr_nonnull(f);
	fseek(f, 100, SEEK_SET);
	fputc(c.v1.data[100] ^ 0xff, f);
	fclose(f);
	ck_assert_msg(assemble(&c) == 0, "%s", c.err.msg);
	/* the target is v2 all the same: that chunk came from the store */
	ck_assert(fx_file_equals(c.target, c.v2.data, IMG_LEN));
	ck_assert_uint_ge(c.st.seed_chunks_rejected, 1);
	ck_assert_uint_eq(c.st.chunks_fetched, c.new_chunks + 1);
	slotsync_store_chunk_relpath(c.v1.index->chunks[0].id, rel);
	snprintf(chunk, sizeof(chunk), "store/%s", rel);
	ck_assert_int_eq(fx_http_count(&c.http, chunk, 200), 1);
	ctx_free(&c);
}
END_TEST

/* The first new chunk of v2 (one v1 lacks), as a path under www. */
static void first_new_chunk(struct ctx *c, char out[PATH_MAX], char file[PATH_MAX])
{
	char rel[SLOTSYNC_CHUNK_RELPATH_BYTES];

	for (size_t i = 0; i < c->v2.index->n_chunks; i++) {
		if (index_has(c->v1.index, c->v2.index->chunks[i].id))
			continue;
		slotsync_store_chunk_relpath(c->v2.index->chunks[i].id, rel);
		snprintf(out, PATH_MAX, "store/%s", rel);
		fx_chunk_path(file, c->store, c->v2.index, i);
		return;
	}
	ck_abort_msg("v2 has no new chunk");
}

START_TEST(test_store_chunk_wrong_content)
{
	static char path[PATH_MAX], file[PATH_MAX], other[PATH_MAX];
	/* a store that answers one chunk with another chunk's (valid) bytes */
	struct fx_http_rule rules[] = { { path, 1000, 0, other } };
	struct ctx c;
	int r;

	ctx_make(&c, NULL, 0);
	first_new_chunk(&c, path, file);
	fx_chunk_path(other, c.store, c.v2.index, 0);
	ck_assert_str_ne(file, other);
	fx_http_stop(&c.http);
	fx_http_start(&c.http, c.www, rules, 1, c.log);
	snprintf(c.url, sizeof(c.url), "%s/store", c.http.url);
	r = assemble(&c);
	ck_assert_int_lt(r, 0);
	ck_assert_int_eq(c.st.verified, 0);
	ck_assert_msg(strstr(c.err.msg, path) != NULL,
		      "the error names the chunk: %s", c.err.msg);
	ck_assert_int_eq(fx_http_count(&c.http, path, 0), 3); /* max-attempts, then refused */
	ck_assert(!fx_file_equals(c.target, c.v2.data, IMG_LEN));

	/* once the store answers right, the same run resumes and ends byte-exact */
	fx_http_stop(&c.http);
	fx_http_start(&c.http, c.www, NULL, 0, c.log);
	snprintf(c.url, sizeof(c.url), "%s/store", c.http.url);
	ck_assert_msg(assemble(&c) == 0, "%s", c.err.msg);
	ck_assert(fx_file_equals(c.target, c.v2.data, IMG_LEN));
	ck_assert_uint_gt(c.st.chunks_already_done, 0);
	ctx_free(&c);
}
END_TEST

START_TEST(test_resume_after_power_cut)
{
	struct ctx c;
	pid_t pid;
	int status;
	char cut[32];

	ctx_make(&c, NULL, 0);
	/* a power cut at the last write but one to the target (the seed copies
	 * are journaled by then), in a child process: writes not yet synced are
	 * lost */
	snprintf(cut, sizeof(cut), "%zu", c.v2.index->n_chunks - 1);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		setenv("SLOTSYNC_TEST_CRASH_AFTER_WRITES", cut, 1);
		assemble(&c);
		_exit(99); /* the cut did not happen */
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 137, "the power cut did not happen (status %d)", status);
	ck_assert(!fx_file_equals(c.target, c.v2.data, IMG_LEN));
	/* the same command again: what the journal proves durable is not redone */
	ck_assert_msg(assemble(&c) == 0, "%s", c.err.msg);
	ck_assert(fx_file_equals(c.target, c.v2.data, IMG_LEN));
	ck_assert_int_eq(c.st.verified, 1);
	ck_assert_uint_gt(c.st.chunks_already_done, c.v2.index->n_chunks / 2);
	ck_assert_uint_lt(c.st.chunks_from_seed + c.st.chunks_fetched, c.v2.index->n_chunks / 2);
	ctx_free(&c);
}
END_TEST

static Suite *assemble_suite(void)
{
	Suite *s = suite_create("assemble");
	TCase *tc = tcase_create("assemble");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_seed_only);
	tcase_add_test(tc, test_seed_and_store);
	tcase_add_test(tc, test_damaged_seed_chunk_not_used);
	tcase_add_test(tc, test_store_chunk_wrong_content);
	tcase_add_test(tc, test_resume_after_power_cut);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run_suite(assemble_suite());
}

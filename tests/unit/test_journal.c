/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Journal: what it proves durable survives reopening; a torn tail is dropped;
 * a journal of another index or target is refused. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "slotsync/journal.h"
#include "test_util.h"

#define N 1000

static struct slotsync_journal_identity ident(void)
{
	struct slotsync_journal_identity id = { 0 };

	test_fill_random(id.index_digest, sizeof(id.index_digest), 42);
	id.image_size = 123456789;
	id.n_chunks = N;
	id.target_dev = 7;
	id.target_ino = 99;
	return id;
}

static char *jpath(char *dir)
{
	static char p[4200];

	snprintf(p, sizeof(p), "%s/j", dir);
	return p;
}

START_TEST(test_records_survive_reopen)
{
	char *dir = test_mkdtemp();
	struct slotsync_journal_identity id = ident();
	struct slotsync_journal *j;
	struct slotsync_error err = { 0 };
	uint8_t done[N];
	uint32_t a[] = { 1, 5, 999 }, b[] = { 5 };
	int verified;

	ck_assert_int_eq(slotsync_journal_open(jpath(dir), &id, 0, done, &verified, &j, &err), 0);
	ck_assert_int_eq(verified, 0);
	ck_assert_int_eq(slotsync_journal_append_done(j, a, 3, &err), 0);
	ck_assert_int_eq(slotsync_journal_append_invalid(j, b, 1, &err), 0);
	slotsync_journal_free(j);

	ck_assert_int_eq(slotsync_journal_open(jpath(dir), &id, 0, done, &verified, &j, &err), 0);
	ck_assert_int_eq(done[1], 1);
	ck_assert_int_eq(done[5], 0); /* invalidated after it was done */
	ck_assert_int_eq(done[999], 1);
	ck_assert_int_eq(done[2], 0);
	ck_assert_int_eq(slotsync_journal_append_verified(j, &err), 0);
	slotsync_journal_free(j);
	ck_assert_int_eq(slotsync_journal_open(jpath(dir), &id, 0, done, &verified, &j, &err), 0);
	ck_assert_int_eq(verified, 1);
	slotsync_journal_free(j);
	test_rmdir(dir);
}
END_TEST

/* WRITTEN marks places to check, not to trust; the last record about a place
 * wins, whatever its kind. */
START_TEST(test_written_is_not_durable)
{
	char *dir = test_mkdtemp();
	struct slotsync_journal_identity id = ident();
	struct slotsync_journal *j;
	struct slotsync_error err = { 0 };
	uint8_t done[N];
	uint32_t w[] = { 3, 4, 7 }, d[] = { 4 }, inv[] = { 7 }, w2[] = { 8 };
	int verified;

	ck_assert_int_eq(slotsync_journal_open(jpath(dir), &id, 0, done, &verified, &j, &err), 0);
	ck_assert_int_eq(slotsync_journal_append_written(j, w, 3, &err), 0);
	ck_assert_int_eq(slotsync_journal_append_done(j, d, 1, &err), 0);
	ck_assert_int_eq(slotsync_journal_append_invalid(j, inv, 1, &err), 0);
	ck_assert_int_eq(slotsync_journal_append_written(j, w2, 1, &err), 0);
	slotsync_journal_free(j);

	ck_assert_int_eq(slotsync_journal_open(jpath(dir), &id, 0, done, &verified, &j, &err), 0);
	ck_assert_int_eq(done[3], SLOTSYNC_JOURNAL_WRITTEN);
	ck_assert_int_eq(done[4], SLOTSYNC_JOURNAL_DURABLE); /* made durable after it was written */
	ck_assert_int_eq(done[7], SLOTSYNC_JOURNAL_TODO);    /* invalidated */
	ck_assert_int_eq(done[8], SLOTSYNC_JOURNAL_WRITTEN); /* the last record, unsynced, still read */
	ck_assert_int_eq(done[9], SLOTSYNC_JOURNAL_TODO);
	ck_assert_int_eq(verified, 0);
	slotsync_journal_free(j);
	test_rmdir(dir);
}
END_TEST

START_TEST(test_torn_tail_is_dropped)
{
	char *dir = test_mkdtemp();
	struct slotsync_journal_identity id = ident();
	struct slotsync_journal *j;
	struct slotsync_error err = { 0 };
	uint8_t done[N];
	uint32_t a[] = { 10, 11 }, b[] = { 20, 21, 22 }, c[] = { 30 };
	struct stat st;
	off_t full;
	int verified, fd;

	ck_assert_int_eq(slotsync_journal_open(jpath(dir), &id, 0, done, &verified, &j, &err), 0);
	ck_assert_int_eq(slotsync_journal_append_done(j, a, 2, &err), 0);
	ck_assert_int_eq(slotsync_journal_append_done(j, b, 3, &err), 0);
	slotsync_journal_free(j);
	ck_assert_int_eq(stat(jpath(dir), &st), 0);
	full = st.st_size;
	/* every cut inside the last record loses that record only */
	for (off_t cut = full - 1; cut > full - (8 + 12 + 8); cut--) {
		ck_assert_int_eq(truncate(jpath(dir), cut), 0);
		ck_assert_int_eq(slotsync_journal_open(jpath(dir), &id, 0, done, &verified, &j, &err), 0);
		ck_assert_int_eq(done[10], 1);
		ck_assert_int_eq(done[20], 0);
		slotsync_journal_free(j);
		/* the torn bytes were cut away: the file ends after the good record */
		ck_assert_int_eq(stat(jpath(dir), &st), 0);
		ck_assert_int_eq(st.st_size, full - (8 + 12 + 8));
		/* restore the second record for the next cut */
		ck_assert_int_eq(slotsync_journal_open(jpath(dir), &id, 0, done, &verified, &j, &err), 0);
		ck_assert_int_eq(slotsync_journal_append_done(j, b, 3, &err), 0);
		slotsync_journal_free(j);
	}
	/* a flipped bit in a record drops it and what follows */
	ck_assert_int_eq(slotsync_journal_open(jpath(dir), &id, 0, done, &verified, &j, &err), 0);
	ck_assert_int_eq(slotsync_journal_append_done(j, c, 1, &err), 0);
	slotsync_journal_free(j);
	fd = open(jpath(dir), O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, "\xff", 1, 96 + 8 + 8 + 8 + 8 + 2), 1); /* inside record 2 */
	close(fd);
	ck_assert_int_eq(slotsync_journal_open(jpath(dir), &id, 0, done, &verified, &j, &err), 0);
	ck_assert_int_eq(done[10], 1);
	ck_assert_int_eq(done[20], 0);
	ck_assert_int_eq(done[30], 0);
	slotsync_journal_free(j);
	test_rmdir(dir);
}
END_TEST

START_TEST(test_other_index_or_target_refused)
{
	char *dir = test_mkdtemp();
	struct slotsync_journal_identity id = ident(), other;
	struct slotsync_journal *j = NULL;
	struct slotsync_error err = { 0 };
	uint8_t done[N];
	uint32_t a[] = { 3 };
	int verified;

	ck_assert_int_eq(slotsync_journal_open(jpath(dir), &id, 0, done, &verified, &j, &err), 0);
	ck_assert_int_eq(slotsync_journal_append_done(j, a, 1, &err), 0);
	slotsync_journal_free(j);
	j = NULL;

	other = id;
	other.index_digest[0] ^= 1;
	ck_assert_int_eq(slotsync_journal_open(jpath(dir), &other, 0, done, &verified, &j, &err), -EEXIST);
	ck_assert_ptr_nonnull(strstr(err.msg, "belongs to another index"));
	ck_assert_ptr_null(j);
	slotsync_error_clear(&err);
	other = id;
	other.target_ino++;
	ck_assert_int_eq(slotsync_journal_open(jpath(dir), &other, 0, done, &verified, &j, &err), -EEXIST);
	ck_assert_ptr_nonnull(strstr(err.msg, "belongs to another target"));
	slotsync_error_clear(&err);
	/* reset starts anew: nothing done */
	ck_assert_int_eq(slotsync_journal_open(jpath(dir), &other, 1, done, &verified, &j, &err), 0);
	ck_assert_int_eq(done[3], 0);
	slotsync_journal_free(j);
	/* and the original identity is now the stranger */
	ck_assert_int_eq(slotsync_journal_open(jpath(dir), &id, 0, done, &verified, &j, &err), -EEXIST);
	test_rmdir(dir);
}
END_TEST

START_TEST(test_garbage_refused)
{
	char *dir = test_mkdtemp();
	struct slotsync_journal_identity id = ident();
	struct slotsync_journal *j = NULL;
	struct slotsync_error err = { 0 };
	uint8_t done[N], junk[200];
	int verified;

	test_fill_random(junk, sizeof(junk), 3);
	ck_assert_int_eq(test_write_file(jpath(dir), junk, sizeof(junk)), 0);
	ck_assert_int_eq(slotsync_journal_open(jpath(dir), &id, 0, done, &verified, &j, &err), -EEXIST);
	ck_assert_ptr_nonnull(strstr(err.msg, "not a slotsync journal"));
	test_rmdir(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("journal");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_records_survive_reopen);
	tcase_add_test(tc, test_written_is_not_durable);
	tcase_add_test(tc, test_torn_tail_is_dropped);
	tcase_add_test(tc, test_other_index_or_target_refused);
	tcase_add_test(tc, test_garbage_refused);
	suite_add_tcase(s, tc);
	return test_run_suite(s);
}

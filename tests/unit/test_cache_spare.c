// SPDX-License-Identifier: MIT
/* Unit tests of cache/spare: empty data files made ahead of the next inode
 * numbers, kept for regular files and symlinks, removed for the rest and
 * for numbers never taken. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cache/chunk.h"
#include "cache/meta.h"
#include "cache/spare_i.h"
#include "common/common.h"
#include "support.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct fixture {
	char dir[64];
	struct meta_db *db;
	struct chunk_store *cs;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/tidefs-spare-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	if (meta_open(f->dir, 0, true, &f->db))
		return -1;
	if (chunk_store_open(f->dir, CHUNK_SIZE_DEFAULT, &f->cs))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	chunk_store_close(f->cs);
	meta_close(f->db);
	support_rm_tree(f->dir);
	free(f);
	return 0;
}

static bool exists(struct fixture *f, uint64_t ino)
{
	int fd = chunk_open(f->cs, ino, false);

	if (fd >= 0)
		close(fd);
	return fd >= 0;
}

/* Wait (without a deadline that matters: the test's own timeout is the
 * bound) until ino's data file exists or not, as wanted. */
static void wait_for(struct fixture *f, uint64_t ino, bool want)
{
	struct timespec ts = {0, 2000000};

	for (int i = 0; i < 30000 && exists(f, ino) != want; i++)
		nanosleep(&ts, NULL);
	assert_int_equal(exists(f, ino), want);
}

/* Take the next inode number for an inode of this mode (0: no record, as
 * for an inode deleted since). */
static uint64_t take(struct fixture *f, uint32_t mode)
{
	struct meta_txn *txn;
	struct meta_inode mi = {0};
	uint64_t ino;

	assert_int_equal(meta_txn_begin(f->db, true, &txn), 0);
	assert_int_equal(meta_ino_alloc(txn, &ino), 0);
	if (mode) {
		mi.ino = ino;
		mi.mode = mode;
		mi.nlink = 1;
		assert_int_equal(meta_inode_put(txn, &mi), 0);
	}
	assert_int_equal(meta_txn_commit(txn), 0);
	return ino;
}

static void test_spares_follow_next_ino(void **state)
{
	struct fixture *f = *state;
	struct spare *sp;
	uint64_t reg, dir, lnk, gone, fifo, next;

	assert_int_equal(spare_new(f->db, f->cs, 8, &sp), 0);
	assert_non_null(sp);
	/* The store starts at inode 2 (the root is 1). */
	for (uint64_t ino = 2; ino < 10; ino++)
		wait_for(f, ino, true);
	assert_false(exists(f, 10));

	reg = take(f, S_IFREG | 0644);
	dir = take(f, S_IFDIR | 0755);
	lnk = take(f, S_IFLNK | 0777);
	gone = take(f, 0);
	fifo = take(f, S_IFIFO | 0644);
	next = fifo + 1;
	assert_int_equal(reg, 2);
	/* Half of the spares are left above fifo: the kick wakes the thread
	 * (a kick for a lower number does not, the next second does). */
	spare_kick(sp, fifo);
	wait_for(f, dir, false);
	wait_for(f, gone, false);
	wait_for(f, fifo, false);
	wait_for(f, next + 7, true);
	assert_true(exists(f, reg));
	assert_true(exists(f, lnk));
	assert_false(exists(f, next + 8));

	/* Numbers never taken lose their files at the end; taken ones are
	 * checked once more. */
	dir = take(f, S_IFDIR | 0755);
	spare_free(sp);
	assert_false(exists(f, dir));
	for (uint64_t ino = dir + 1; ino < next + 8; ino++)
		assert_false(exists(f, ino));
	assert_true(exists(f, reg));
	assert_true(exists(f, lnk));
}

static int count_fds(void)
{
	char path[64];
	int n = 0;

	for (int fd = 0; fd < 4096; fd++) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n += access(path, F_OK) == 0;
	}
	return n;
}

/* The thread keeps its spares open and the first open of a number takes
 * the descriptor: the file at the number's path, once, and never one whose
 * name is gone. Nothing stays open after spare_free. */
static void test_take_hands_over_open_spare(void **state)
{
	struct fixture *f = *state;
	struct spare *sp;
	struct stat st, byname;
	uint64_t reg, gone;
	int fds = count_fds(), fd;
	char c = 0;

	assert_int_equal(spare_take(NULL, 2, &st), -1);
	assert_int_equal(spare_new(f->db, f->cs, 8, &sp), 0);
	for (uint64_t ino = 2; ino < 10; ino++)
		wait_for(f, ino, true);

	reg = take(f, S_IFREG | 0644);
	fd = spare_take(sp, reg, &st);
	assert_true(fd >= 0);
	assert_int_equal(st.st_size, 0);
	assert_int_equal(st.st_nlink, 1);
	assert_int_equal(pwrite(fd, "x", 1, 0), 1);
	close(fd);
	fd = chunk_open(f->cs, reg, false);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &byname), 0);
	assert_int_equal(byname.st_ino, st.st_ino);
	assert_int_equal(pread(fd, &c, 1, 0), 1);
	assert_int_equal(c, 'x');
	close(fd);
	/* Once only. */
	assert_int_equal(spare_take(sp, reg, &st), -1);

	/* A spare removed under the thread (a failed symlink cleans up after
	 * itself) is not handed out: the caller opens by path. */
	gone = take(f, S_IFREG | 0644);
	assert_int_equal(chunk_remove(f->cs, gone), 0);
	assert_int_equal(spare_take(sp, gone, &st), -1);
	/* Numbers the thread made nothing for. */
	assert_int_equal(spare_take(sp, 1000, &st), -1);

	spare_free(sp);
	assert_int_equal(count_fds(), fds);
}

static void test_no_spares(void **state)
{
	struct fixture *f = *state;
	struct spare *sp = (struct spare *)1;

	assert_int_equal(spare_new(f->db, f->cs, 0, &sp), 0);
	assert_null(sp);
	spare_kick(sp, 2);
	spare_free(sp);
	assert_false(exists(f, 2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_spares_follow_next_ino,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_take_hands_over_open_spare,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_spares, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

// SPDX-License-Identifier: MIT
/*
 * Unit tests of cache/meta_check.c: a store that was not closed cleanly is
 * checked for damage before it is opened (meta_open_checked).
 *
 * A child process builds a store with something in every table, churns it
 * (so the free list holds pages), and dies without closing it. The tests
 * then damage pages of data.mdb in the ways a disk does (garbage, zeros, a
 * page written where another belongs) and check that every such store
 * either is refused with -EUCLEAN, untouched, or opens with exactly its
 * content (the damage hit a free page). Bit flips inside a record's value
 * are not among them: LMDB keeps no checksums, so a record that still
 * decodes is taken as it is.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cache/meta.h"
#include "common/common.h"
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PSIZE	 4096
#define FIRST	 100
#define N_FILES	 1200
#define N_DIRS	 30
#define MAX_READ (1 << 24)

struct fixture {
	char dir[64];
	char path[96]; /* dir/meta/data.mdb */
	uint8_t *pristine;
	size_t len;
	uint64_t last_pgno;
};

static void write_at(const char *path, const void *buf, size_t len, off_t off)
{
	int fd = open(path, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, len, off), (ssize_t)len);
	close(fd);
}

/* The newest meta page's last page number (LMDB's MDB_meta: mm_last_pg
 * at byte 136 of the page, mm_txnid at 144). */
static uint64_t last_pgno(const uint8_t *file)
{
	uint64_t best = 0, txn = 0;

	for (int i = 0; i < 2; i++) {
		uint64_t lp, id;

		memcpy(&lp, file + (size_t)i * PSIZE + 136, 8);
		memcpy(&id, file + (size_t)i * PSIZE + 144, 8);
		if (i == 0 || id > txn) {
			txn = id;
			best = lp;
		}
	}
	return best;
}

static void dir_of(struct meta_inode *in, uint64_t ino)
{
	memset(in, 0, sizeof(*in));
	in->ino = ino;
	in->mode = 040755;
	in->nlink = 2;
	in->state = META_NEW;
	in->mtime_ns = 1764000000000000000LL + (int64_t)ino;
}

static void file_of(struct meta_inode *in, uint64_t ino)
{
	memset(in, 0, sizeof(*in));
	in->ino = ino;
	in->mode = 0100644;
	in->uid = (uint32_t)ino;
	in->nlink = 1;
	in->state = ino % 3 ? META_ARCHIVED : META_DIRTY;
	in->size = ino * 1000;
	in->mtime_ns = 1764000000000000000LL + (int64_t)ino;
	in->ctime_ns = in->mtime_ns + 5;
	snprintf(in->etag, sizeof(in->etag), "\"e-%llu\"",
		 (unsigned long long)ino);
}

static uint64_t parent_of(uint64_t ino)
{
	return FIRST + (ino - FIRST) % N_DIRS;
}

static void name_of(char *buf, size_t len, uint64_t ino)
{
	snprintf(buf, len, "f-%06llu", (unsigned long long)ino);
}

/* Everything the store should hold. */
static int fill(struct meta_db *db)
{
	struct meta_txn *t;
	struct meta_inode in;
	char name[32];

	if (meta_txn_begin(db, true, &t))
		return -1;
	dir_of(&in, META_ROOT_INO);
	meta_inode_put(t, &in);
	for (uint64_t d = FIRST; d < FIRST + N_DIRS; d++) {
		dir_of(&in, d);
		meta_inode_put(t, &in);
		snprintf(name, sizeof(name), "d-%llu", (unsigned long long)d);
		meta_dentry_put(t, META_ROOT_INO, name, d, false);
	}
	for (uint64_t i = FIRST + N_DIRS; i < FIRST + N_DIRS + N_FILES; i++) {
		file_of(&in, i);
		meta_inode_put(t, &in);
		name_of(name, sizeof(name), i);
		meta_dentry_put(t, parent_of(i), name, i, false);
		meta_chunk_set(t, i, i % 7);
		if (i % 3 == 0)
			meta_dirty_add(t, i);
		meta_lru_put(t, (int64_t)i * 1000, i);
		if (i % 10 == 0)
			meta_xattr_put(t, i, "user.k", "value", 5);
	}
	meta_task_put(t, "task-0123456789abcdef01",
		      "{\"Lifecycle\":\"SUCCEEDED\"}");
	meta_gone_put(t, "some/key", "\"etag\"");
	return meta_txn_commit(t);
}

/* Churn: commits that free pages (now on the free list) and put back the
 * same content. */
static int churn(struct meta_db *db)
{
	for (int r = 0; r < 6; r++) {
		struct meta_txn *t;
		struct meta_inode in;
		char name[32];

		if (meta_txn_begin(db, true, &t))
			return -1;
		for (uint64_t i = FIRST + N_DIRS + (uint64_t)r * 150;
		     i < FIRST + N_DIRS + (uint64_t)r * 150 + 150; i++) {
			name_of(name, sizeof(name), i);
			meta_dentry_del(t, parent_of(i), name);
			meta_dentry_put(t, parent_of(i), name, i, false);
			file_of(&in, i);
			meta_inode_put(t, &in);
		}
		if (meta_txn_commit(t))
			return -1;
	}
	return 0;
}

/* Does the open store hold exactly what fill() put? */
static bool content_ok(struct meta_db *db)
{
	struct meta_txn *t;
	bool ok = true;
	char name[32];

	if (meta_txn_begin(db, false, &t))
		return false;
	for (uint64_t i = FIRST + N_DIRS; ok && i < FIRST + N_DIRS + N_FILES;
	     i++) {
		struct meta_inode got, want;
		uint64_t ino = 0;

		file_of(&want, i);
		name_of(name, sizeof(name), i);
		if (meta_inode_get(t, i, &got) != 0) {
			ok = false;
			break;
		}
		ok = got.mode == want.mode && got.size == want.size &&
		     got.uid == want.uid && got.mtime_ns == want.mtime_ns &&
		     got.ctime_ns == want.ctime_ns && got.state == want.state &&
		     strcmp(got.etag, want.etag) == 0;
		meta_inode_release(&got);
		ok = ok && meta_dentry_get(t, parent_of(i), name, &ino) == 0 &&
		     ino == i;
	}
	meta_txn_abort(t);
	return ok;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	pid_t pid;
	int st;

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/tidefs-check-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/meta/data.mdb", f->dir);
	*state = f;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		struct meta_db *db;

		if (meta_open(f->dir, 0, true, &db) || fill(db) || churn(db) ||
		    meta_sync(db))
			_exit(2);
		_exit(0); /* no meta_close(): as if killed */
	}
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
	    WEXITSTATUS(st) != 0)
		return -1;
	f->pristine = support_read_file(f->path, MAX_READ, &f->len);
	f->last_pgno = last_pgno(f->pristine);
	if (f->last_pgno < 20 || (f->last_pgno + 1) * PSIZE > f->len)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	support_rm_tree(f->dir);
	free(f->pristine);
	free(f);
	return 0;
}

static void restore(struct fixture *f)
{
	write_at(f->path, f->pristine, (f->last_pgno + 1) * PSIZE, 0);
}

static void test_intact_store_opens(void **state)
{
	struct fixture *f = *state;
	struct meta_db *db;
	char why[300] = "x";

	restore(f);
	assert_int_equal(
		meta_open_checked(f->dir, 0, true, why, sizeof(why), &db), 0);
	assert_string_equal(why, "");
	assert_true(content_ok(db));
	meta_close(db);
	/* Closed cleanly: opens again (without a walk) and still holds it. */
	assert_int_equal(
		meta_open_checked(f->dir, 0, true, why, sizeof(why), &db), 0);
	assert_true(content_ok(db));
	meta_close(db);
}

enum damage { D_GARBAGE, D_ZEROS, D_MISPLACED, D_COUNT };

static void test_damaged_stores_are_refused(void **state)
{
	struct fixture *f = *state;
	const char *kinds[D_COUNT] = {"garbage", "zeros", "another page"};
	unsigned refused = 0, opened = 0;
	uint8_t page[PSIZE];

	srandom(20261126);
	for (int trial = 0; trial < 90; trial++) {
		enum damage kind = (enum damage)(trial % D_COUNT);
		int npages = 1 + trial % 4;
		struct meta_db *db = NULL;
		char why[300] = "";
		uint8_t *before;
		size_t blen;
		int ret;

		restore(f);
		for (int i = 0; i < npages; i++) {
			uint64_t pg =
				2 + (uint64_t)random() % (f->last_pgno - 1);

			if (kind == D_GARBAGE) {
				for (size_t b = 0; b < PSIZE; b++)
					page[b] = (uint8_t)random();
			} else if (kind == D_ZEROS) {
				memset(page, 0, PSIZE);
			} else {
				uint64_t from = 2 + (uint64_t)random() %
							    (f->last_pgno - 1);
				memcpy(page, f->pristine + from * PSIZE, PSIZE);
			}
			write_at(f->path, page, PSIZE, (off_t)(pg * PSIZE));
		}
		before = support_read_file(f->path, MAX_READ, &blen);
		ret = meta_open_checked(f->dir, 0, true, why, sizeof(why), &db);
		if (ret == -EUCLEAN) {
			uint8_t *after;
			size_t alen;

			refused++;
			assert_true(why[0] != '\0');
			/* Nothing was written. */
			after = support_read_file(f->path, MAX_READ, &alen);
			assert_int_equal(alen, blen);
			assert_memory_equal(after, before, blen);
			free(after);
		} else {
			/* Only a free page was hit: the content is whole. */
			assert_int_equal(ret, 0);
			opened++;
			if (!content_ok(db))
				fail_msg("trial %d (%s, %d pages): damage not "
					 "found and the content differs",
					 trial, kinds[kind], npages);
			meta_close(db);
		}
		free(before);
	}
	print_message("%u damaged stores refused, %u opened whole\n", refused,
		      opened);
	/* Most pages are in use: most damage must have been found. */
	assert_true(refused > 45);
}

static void test_both_meta_pages_gone(void **state)
{
	struct fixture *f = *state;
	struct meta_db *db = NULL;
	uint8_t zero[2 * PSIZE] = {0};
	char why[300] = "";

	restore(f);
	write_at(f->path, zero, sizeof(zero), 0);
	assert_int_equal(
		meta_open_checked(f->dir, 0, true, why, sizeof(why), &db),
		-EUCLEAN);
	assert_null(db);
	assert_non_null(strstr(why, "cannot read it"));
	restore(f);
}

static void test_check_on_demand(void **state)
{
	struct fixture *f = *state;
	struct meta_db *db;
	uint8_t *zero = calloc(f->last_pgno - 1, PSIZE);
	char why[300] = "x";

	assert_non_null(zero);
	restore(f);
	assert_int_equal(
		meta_open_checked(f->dir, 0, true, why, sizeof(why), &db), 0);
	meta_close(db);
	/* Closed cleanly, checked all the same. */
	assert_int_equal(meta_check(f->dir, why, sizeof(why)), 0);
	assert_string_equal(why, "");
	write_at(f->path, zero, (f->last_pgno - 1) * PSIZE, 2 * PSIZE);
	assert_int_equal(meta_check(f->dir, why, sizeof(why)), -EUCLEAN);
	assert_true(why[0] != '\0');
	free(zero);
	restore(f);
}

struct found {
	unsigned n, named, wrong;
	char first_wrong[200];
};

/* Every file salvage reports must be one fill() put, with its own path,
 * or without one. */
static int salvage_cb(void *arg, const struct meta_salvage_ent *e)
{
	struct found *fd = arg;
	struct meta_inode want;
	char path[64];

	fd->n++;
	if (e->ino < FIRST + N_DIRS || e->ino >= FIRST + N_DIRS + N_FILES) {
		fd->wrong++;
		return 0;
	}
	file_of(&want, e->ino);
	snprintf(path, sizeof(path), "d-%llu/f-%06llu",
		 (unsigned long long)parent_of(e->ino),
		 (unsigned long long)e->ino);
	if (e->mode != want.mode || e->size != want.size ||
	    e->state != want.state || (e->path && strcmp(e->path, path))) {
		if (!fd->wrong)
			snprintf(fd->first_wrong, sizeof(fd->first_wrong),
				 "inode %llu: %s", (unsigned long long)e->ino,
				 e->path ? e->path : "(no path)");
		fd->wrong++;
	}
	if (e->path)
		fd->named++;
	return 0;
}

static void test_salvage_intact(void **state)
{
	struct fixture *f = *state;
	struct meta_salvage_stats st;
	struct found fd = {0};

	restore(f);
	assert_int_equal(meta_salvage(f->dir, salvage_cb, &fd, &st), 0);
	assert_int_equal(fd.wrong, 0);
	assert_int_equal(fd.n, N_FILES);
	assert_int_equal(fd.named, N_FILES);
	assert_int_equal(st.damaged_tables, 0);
	assert_int_equal(st.unnamed, 0);
	assert_int_equal(st.inodes, 1 + N_DIRS + N_FILES);
}

static void test_salvage_damaged(void **state)
{
	struct fixture *f = *state;
	unsigned total = 0, named = 0, damaged = 0;
	uint8_t page[PSIZE];

	srandom(7);
	for (int trial = 0; trial < 30; trial++) {
		struct meta_salvage_stats st;
		struct found fd = {0};

		restore(f);
		for (int i = 0; i < 1 + trial % 3; i++) {
			uint64_t pg =
				2 + (uint64_t)random() % (f->last_pgno - 1);

			for (size_t b = 0; b < PSIZE; b++)
				page[b] = trial % 2 ? 0 : (uint8_t)random();
			write_at(f->path, page, PSIZE, (off_t)(pg * PSIZE));
		}
		assert_int_equal(meta_salvage(f->dir, salvage_cb, &fd, &st), 0);
		if (fd.wrong)
			fail_msg("trial %d: %u wrong, first %s", trial,
				 fd.wrong, fd.first_wrong);
		total += fd.n;
		named += fd.named;
		damaged += st.damaged_tables;
	}
	print_message("salvage: %u of %u files found, %u named, %u damaged "
		      "table walks\n",
		      total, 30 * N_FILES, named, damaged);
	/* A few pages of many: most files come out, most with names. */
	assert_true(total > 30 * N_FILES * 8 / 10);
	assert_true(named > total * 8 / 10);
	restore(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_intact_store_opens),
		cmocka_unit_test(test_damaged_stores_are_refused),
		cmocka_unit_test(test_both_meta_pages_gone),
		cmocka_unit_test(test_check_on_demand),
		cmocka_unit_test(test_salvage_intact),
		cmocka_unit_test(test_salvage_damaged),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}

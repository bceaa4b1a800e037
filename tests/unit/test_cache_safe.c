// SPDX-License-Identifier: MIT
/*
 * Unit tests of cache/meta_safe.c: sync points of the metadata store and
 * going back to the last one after a power loss.
 *
 * A power loss is simulated on the file: a child process builds state A,
 * syncs (a sync point), records what the disk holds then (the first pages
 * of data.mdb), makes many more commits that free and reuse pages, and
 * dies without closing (as kill -9 would). The disk after a power loss may
 * hold any mix of the pages as synced and as written later, the meta pages
 * too: the test builds such mixes at random, makes the sync point's boot id
 * another boot's, and checks that the store opens as exactly state A and
 * takes new commits.
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
#define SAFE_HDR 128
#define N_A	 1500 /* inodes of state A: 100 .. 100 + N_A - 1 */
#define FIRST_B	 50000
#define N_B	 3000
#define B_ROUNDS 13

struct fixture {
	char dir[64];
	char path[96]; /* dir/meta */
	uint8_t *synced;
	size_t synced_len;
	uint8_t *later;
	size_t later_len;
	uint8_t *safe;
	size_t safe_len;
};

static void write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, len, 0), (ssize_t)len);
	close(fd);
}

static void inode_of(struct meta_inode *in, uint64_t ino, int version)
{
	memset(in, 0, sizeof(*in));
	in->ino = ino;
	in->mode = 0100644;
	in->uid = (uint32_t)ino;
	in->gid = 100;
	in->nlink = 1;
	in->state = META_ARCHIVED;
	in->size = ino * 3 + (uint64_t)version;
	in->mtime_ns = in->ctime_ns = in->atime_ns =
		1764000000000000000LL + (int64_t)ino;
	in->generation = (uint64_t)version;
	snprintf(in->etag, sizeof(in->etag), "\"etag-%llu-%d\"",
		 (unsigned long long)ino, version);
}

static int put_range(struct meta_db *db, uint64_t first, uint64_t n,
		     int version)
{
	struct meta_txn *t;
	struct meta_inode in;
	char name[32];

	if (meta_txn_begin(db, true, &t))
		return -1;
	for (uint64_t i = first; i < first + n; i++) {
		inode_of(&in, i, version);
		snprintf(name, sizeof(name), "file-%06llu",
			 (unsigned long long)i);
		meta_inode_put(t, &in);
		meta_dentry_put(t, 1, name, i, true);
	}
	return meta_txn_commit(t);
}

static int del_range(struct meta_db *db, uint64_t first, uint64_t n)
{
	struct meta_txn *t;
	char name[32];

	if (meta_txn_begin(db, true, &t))
		return -1;
	for (uint64_t i = first; i < first + n; i++) {
		snprintf(name, sizeof(name), "file-%06llu",
			 (unsigned long long)i);
		meta_inode_del(t, i);
		meta_dentry_del(t, 1, name);
	}
	return meta_txn_commit(t);
}

/* The child: state A, a sync point, the disk's copy, then commits that
 * free and reuse pages, then death without a close. */
static void build_crash(struct fixture *f)
{
	pid_t pid = fork();
	int st;

	assert_true(pid >= 0);
	if (pid == 0) {
		struct meta_db *db;
		char snap[128];
		size_t len;
		uint8_t *buf;

		if (meta_open(f->dir, 0, true, &db) ||
		    put_range(db, 100, N_A, 1) || meta_sync(db))
			_exit(2);
		snprintf(snap, sizeof(snap), "%s/synced", f->dir);
		buf = support_read_file(f->path, 1 << 24, &len);
		/* data.mdb may be longer than its pages (fallocate'd room):
		 * what counts is what was written. */
		write_file(snap, buf, len);
		free(buf);
		for (int r = 0; r < B_ROUNDS; r++) {
			if (put_range(db, FIRST_B + (uint64_t)r * 100, 100, 2))
				_exit(3);
			if (r % 3 == 0 &&
			    del_range(db, 100 + (uint64_t)r * 50, 50))
				_exit(4);
			if (r % 5 == 0 && put_range(db, 100, N_A, 3))
				_exit(5);
		}
		_exit(0); /* no meta_close(): as if killed */
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char p[128];

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/tidefs-safe-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/meta/data.mdb", f->dir);
	*state = f;
	build_crash(f);
	snprintf(p, sizeof(p), "%s/synced", f->dir);
	f->synced = support_read_file(p, 1 << 24, &f->synced_len);
	f->later = support_read_file(f->path, 1 << 24, &f->later_len);
	snprintf(p, sizeof(p), "%s/meta/safe", f->dir);
	f->safe = support_read_file(p, 1 << 16, &f->safe_len);
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	support_rm_tree(f->dir);
	free(f->synced);
	free(f->later);
	free(f->safe);
	free(f);
	return 0;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* The sidecar as left by the child, its slots' boot id set to boot (NULL:
 * as it was) and checksums recomputed; corrupt: both slots damaged. */
static void put_safe(struct fixture *f, const char *boot, bool corrupt)
{
	uint8_t *s = malloc(f->safe_len);
	char p[128];

	assert_non_null(s);
	memcpy(s, f->safe, f->safe_len);
	for (size_t at = 0; at + SAFE_HDR + PSIZE <= f->safe_len;
	     at += SAFE_HDR + PSIZE) {
		uint8_t *slot = s + at;

		if (memcmp(slot, "TIDESAFE", 8) != 0)
			continue;
		if (boot) {
			memset(slot + 32, 0, 40);
			memcpy(slot + 32, boot, strlen(boot));
		}
		put64(slot + 120, 0);
		put64(slot + 120, fnv1a64(slot, SAFE_HDR + PSIZE));
		if (corrupt)
			slot[SAFE_HDR + 200] ^= 1;
	}
	snprintf(p, sizeof(p), "%s/meta/safe", f->dir);
	write_file(p, s, f->safe_len);
	free(s);
}

/* data.mdb as the disk may hold it: each page at random as synced or as
 * written later (pages past what was synced: written or never). */
static void put_mix(struct fixture *f, unsigned seed)
{
	size_t n = MAX(f->synced_len, f->later_len);
	uint8_t *img = calloc(1, n);
	char p[128];

	assert_non_null(img);
	srandom(seed);
	for (size_t off = 0; off < n; off += PSIZE) {
		bool old = random() & 1;
		const uint8_t *src = NULL;

		if (old && off < f->synced_len)
			src = f->synced + off;
		else if (!old && off < f->later_len)
			src = f->later + off;
		if (src)
			memcpy(img + off, src, MIN((size_t)PSIZE, n - off));
	}
	write_file(f->path, img, n);
	free(img);
	snprintf(p, sizeof(p), "%s/meta/lock.mdb", f->dir);
	unlink(p);
}

static int count_inode(void *arg, const struct meta_inode *in)
{
	(void)in;
	++*(uint64_t *)arg;
	return 0;
}

/* The store holds exactly state A (plus whatever the open itself adds:
 * the root is not ours to check). */
static void assert_state_a(struct meta_db *db)
{
	struct meta_txn *t;
	struct meta_inode want, got;
	uint64_t n = 0, ino;
	char name[32];

	assert_int_equal(meta_txn_begin(db, false, &t), 0);
	for (uint64_t i = 100; i < 100 + N_A; i++) {
		inode_of(&want, i, 1);
		assert_int_equal(meta_inode_get(t, i, &got), 0);
		assert_int_equal(got.size, want.size);
		assert_int_equal(got.generation, 1);
		assert_string_equal(got.etag, want.etag);
		meta_inode_release(&got);
		snprintf(name, sizeof(name), "file-%06llu",
			 (unsigned long long)i);
		assert_int_equal(meta_dentry_get(t, 1, name, &ino), 0);
		assert_int_equal(ino, i);
	}
	assert_int_equal(meta_inode_get(t, FIRST_B, &got), -ENOENT);
	assert_int_equal(meta_inode_foreach(t, count_inode, &n), 0);
	assert_int_equal(n, N_A);
	meta_txn_abort(t);
}

static void assert_takes_commits(struct fixture *f, struct meta_db **db)
{
	assert_int_equal(put_range(*db, 900000, 500, 7), 0);
	assert_int_equal(del_range(*db, 100, 500), 0);
	meta_close(*db);
	*db = NULL;
	assert_int_equal(meta_open(f->dir, 0, true, db), 0);
}

/* The last page LMDB uses per the newer meta page of an image. */
static uint64_t last_pg(const uint8_t *img)
{
	int newer = get64(img + PSIZE + 144) > get64(img + 144);

	return get64(img + newer * PSIZE + 136);
}

/* After a power loss (another boot id) any mix of synced and later pages
 * opens as the synced state, intact. */
static void test_power_loss_goes_back(void **state)
{
	struct fixture *f = *state;
	struct meta_db *db = NULL;
	uint64_t grown;

	/* The later commits grew the store by less than a sync point's
	 * budget (2 MiB: past it the point lapses), but by more than a few
	 * pages: without the pin they would have reused the synced ones. */
	grown = last_pg(f->later) - last_pg(f->synced);
	assert_in_range(grown, 50, (2u << 20) / PSIZE - 1);
	for (unsigned seed = 1; seed <= 24; seed++) {
		put_mix(f, seed);
		put_safe(f, "00000000-0000-4000-8000-000000000000", false);
		assert_int_equal(meta_open(f->dir, 0, true, &db), 0);
		assert_state_a(db);
		assert_takes_commits(f, &db);
		meta_close(db);
		db = NULL;
	}
}

/* The same boot (the daemon was killed; the page cache had every commit):
 * nothing is rolled back. */
static void test_same_boot_keeps_everything(void **state)
{
	struct fixture *f = *state;
	struct meta_db *db = NULL;
	struct meta_txn *t;
	struct meta_inode in;

	write_file(f->path, f->later, f->later_len);
	put_safe(f, NULL, false);
	assert_int_equal(meta_open(f->dir, 0, true, &db), 0);
	assert_int_equal(meta_txn_begin(db, false, &t), 0);
	assert_int_equal(meta_inode_get(t, FIRST_B + 100 * (B_ROUNDS - 1), &in),
			 0);
	meta_inode_release(&in);
	/* rewritten in round 10, deleted in round 12 */
	assert_int_equal(meta_inode_get(t, 100, &in), 0);
	assert_int_equal(in.generation, 3);
	meta_inode_release(&in);
	assert_int_equal(meta_inode_get(t, 100 + 12 * 50, &in), -ENOENT);
	meta_txn_abort(t);
	meta_close(db);
}

/* A clean close leaves a sync point at the last commit: another boot
 * changes nothing. */
static void test_clean_close_keeps_everything(void **state)
{
	struct fixture *f = *state;
	struct meta_db *db = NULL;
	struct meta_txn *t;
	struct meta_inode in;
	char p[128];
	size_t len;

	write_file(f->path, f->later, f->later_len);
	put_safe(f, NULL, false);
	assert_int_equal(meta_open(f->dir, 0, true, &db), 0);
	assert_int_equal(put_range(db, 800000, 10, 9), 0);
	meta_close(db);
	db = NULL;
	/* the sidecar of the clean close, moved to another boot */
	free(f->safe);
	snprintf(p, sizeof(p), "%s/meta/safe", f->dir);
	f->safe = support_read_file(p, 1 << 16, &len);
	f->safe_len = len;
	put_safe(f, "11111111-1111-4111-8111-111111111111", false);
	assert_int_equal(meta_open(f->dir, 0, true, &db), 0);
	assert_int_equal(meta_txn_begin(db, false, &t), 0);
	assert_int_equal(meta_inode_get(t, 800009, &in), 0);
	assert_int_equal(in.generation, 9);
	meta_inode_release(&in);
	meta_txn_abort(t);
	meta_close(db);
}

/* A damaged sidecar is not used (warning); durable commits remove it. */
static void test_damaged_and_durable(void **state)
{
	struct fixture *f = *state;
	struct meta_db *db = NULL;
	struct meta_txn *t;
	struct meta_inode in;
	char p[128];

	write_file(f->path, f->later, f->later_len);
	put_safe(f, "22222222-2222-4222-8222-222222222222", true);
	assert_int_equal(meta_open(f->dir, 0, false, &db), 0);
	assert_int_equal(meta_txn_begin(db, false, &t), 0);
	assert_int_equal(meta_inode_get(t, FIRST_B, &in), 0);
	meta_inode_release(&in);
	meta_txn_abort(t);
	meta_close(db);
	snprintf(p, sizeof(p), "%s/meta/safe", f->dir);
	assert_int_equal(access(p, F_OK), -1);
	assert_int_equal(errno, ENOENT);
}

static int valid_slots(struct fixture *f)
{
	char p[128];
	size_t len;
	uint8_t *s;
	int n = 0;

	snprintf(p, sizeof(p), "%s/meta/safe", f->dir);
	s = support_read_file(p, 1 << 16, &len);
	for (size_t at = 0; at + SAFE_HDR + PSIZE <= len;
	     at += SAFE_HDR + PSIZE)
		n += memcmp(s + at, "TIDESAFE", 8) == 0;
	free(s);
	return n;
}

static uint64_t store_last_pg(struct fixture *f)
{
	size_t len;
	uint8_t *img = support_read_file(f->path, 2 * PSIZE, &len);
	uint64_t pg;

	assert_int_equal(len, 2 * PSIZE);
	pg = last_pg(img);
	free(img);
	return pg;
}

/* A writer that changes more than the budget (2 MiB of pages) after a sync
 * point makes it lapse: both slots invalid, the pin gone, and the store
 * stops growing (LMDB reuses pages again); meta_sync() makes a new one. */
static void test_busy_writer_lapses(void **state)
{
	struct fixture *f = *state;
	struct meta_db *db = NULL;
	uint64_t first, second;

	assert_int_equal(meta_open(f->dir, 0, true, &db), 0);
	/* No early renewal during this test (see the next one). */
	meta_set_sync_interval(db, 3600);
	assert_int_equal(meta_sync(db), 0);
	assert_true(valid_slots(f) >= 1);
	first = store_last_pg(f);
	for (int r = 0; r < 400 && valid_slots(f) > 0; r++) {
		assert_int_equal(put_range(db, 200000, 200, r), 0);
		if (r % 20 == 19)
			usleep(150 *
			       1000); /* let a periodic point interleave */
	}
	assert_int_equal(valid_slots(f), 0);
	usleep(200 * 1000);
	first = store_last_pg(f) - first;
	second = store_last_pg(f);
	for (int r = 0; r < 100; r++)
		assert_int_equal(put_range(db, 200000, 200, r), 0);
	second = store_last_pg(f) - second;
	assert_true(second < first / 4);
	assert_int_equal(meta_sync(db), 0);
	assert_int_equal(valid_slots(f), 1);
	meta_close(db);
}

/* A sync point that lasted a fifth of the interval (at least 1 s) before
 * it lapsed is renewed by the periodic thread at once, without an fsync; one
 * that lapsed sooner (a busy writer) waits for the interval. */
static void test_lapsed_point_is_renewed(void **state)
{
	struct fixture *f = *state;
	struct meta_db *db = NULL;
	int64_t t0;
	int r;

	assert_int_equal(meta_open(f->dir, 0, true, &db), 0);
	meta_set_sync_interval(db, 10); /* renewal after 2 s */
	assert_int_equal(meta_sync(db), 0);
	assert_true(valid_slots(f) >= 1);
	usleep(2100 * 1000);
	for (r = 0; r < 400 && valid_slots(f) > 0; r++)
		assert_int_equal(put_range(db, 200000, 200, r), 0);
	assert_int_equal(valid_slots(f), 0);
	t0 = time_mono_ns();
	while (valid_slots(f) == 0 && time_mono_ns() - t0 < 15000000000LL)
		usleep(20 * 1000);
	assert_true(valid_slots(f) >= 1);
	assert_true(time_mono_ns() - t0 < 3000000000LL);
	/* Now a quick lapse: no new point before the interval. */
	for (r = 0; r < 400 && valid_slots(f) > 0; r++)
		assert_int_equal(put_range(db, 200000, 200, r), 0);
	assert_int_equal(valid_slots(f), 0);
	usleep(1500 * 1000);
	assert_int_equal(valid_slots(f), 0);
	meta_close(db);
}

/* meta_sync_upto(): nothing while a sync point in force holds the asked
 * transaction, a new point otherwise (a later one asked, or the one that
 * held it lapsed); every sync counts. */
static void test_sync_upto(void **state)
{
	struct fixture *f = *state;
	struct meta_db *db = NULL;
	uint64_t a, b, n;
	int r;

	assert_int_equal(meta_open(f->dir, 0, true, &db), 0);
	meta_set_sync_interval(db, 3600);
	assert_int_equal(put_range(db, 300000, 10, 1), 0);
	a = meta_last_txn(db);
	assert_int_equal(meta_sync(db), 0);
	n = meta_sync_count(db);
	assert_int_equal(meta_sync_upto(db, a), 0);
	assert_int_equal(meta_sync_count(db), n);
	/* Later commits: a is still held by the point in force. */
	assert_int_equal(put_range(db, 300000, 10, 2), 0);
	b = meta_last_txn(db);
	assert_true(b > a);
	assert_int_equal(meta_sync_upto(db, a), 0);
	assert_int_equal(meta_sync_count(db), n);
	assert_int_equal(meta_sync_upto(db, b), 0);
	assert_int_equal(meta_sync_count(db), n + 1);
	assert_int_equal(meta_sync_upto(db, b), 0);
	assert_int_equal(meta_sync_count(db), n + 1);
	/* After a lapse nothing holds b any more: a power loss would find
	 * the store as the disk holds it. */
	for (r = 0; r < 400 && valid_slots(f) > 0; r++)
		assert_int_equal(put_range(db, 200000, 200, r), 0);
	assert_int_equal(valid_slots(f), 0);
	assert_int_equal(meta_sync_upto(db, b), 0);
	assert_int_equal(meta_sync_count(db), n + 2);
	assert_true(valid_slots(f) >= 1);
	/* The write transaction's own id is the one it commits as. */
	{
		struct meta_txn *t;
		uint64_t id;
		struct meta_inode in;

		assert_int_equal(meta_txn_begin(db, true, &t), 0);
		id = meta_txn_id(t);
		inode_of(&in, 400000, 1);
		assert_int_equal(meta_inode_put(t, &in), 0);
		assert_int_equal(meta_txn_commit(t), 0);
		assert_int_equal(meta_last_txn(db), id);
	}
	meta_close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_power_loss_goes_back,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_boot_keeps_everything,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_clean_close_keeps_everything, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_and_durable, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_busy_writer_lapses, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_lapsed_point_is_renewed,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_upto, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

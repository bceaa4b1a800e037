// SPDX-License-Identifier: MIT
/*
 * Unit tests of the release path of cache/hydrate: hydrate_release_many()
 * releases a batch of archived files with one LMDB commit (and sync) made
 * before any data file is punched; pinned, new, missing, open and busy files
 * are left alone with their own error; `want` stops the batch early. Which
 * handles may be passthrough, and what release and invalidation do while one
 * is open. No S3:
 * the files are made locally as a fetch would have left them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cache/chunk.h"
#include "cache/hydrate.h"
#include "cache/meta.h"
#include "common/common.h"
#include "support.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIB (1u << 20)

struct fixture {
	char dir[64];
	struct meta_db *db;
	struct chunk_store *cs;
	struct hydrate *h;
	/* Checked from on_change at the first punch (see test_order). */
	const uint64_t *batch;
	size_t nbatch;
	int changes;
	bool order_ok;
};

static bool chunks_present(struct fixture *f, uint64_t ino, uint64_t n)
{
	struct meta_txn *t = NULL;
	uint8_t bm[8] = {0};
	bool any = false;

	assert_true(n <= 64);
	assert_int_equal(meta_txn_begin(f->db, false, &t), 0);
	assert_int_equal(meta_chunk_load(t, ino, bm, n), 0);
	meta_txn_abort(t);
	for (size_t i = 0; i < sizeof(bm); i++)
		any |= bm[i] != 0;
	return any;
}

static uint32_t state_of(struct fixture *f, uint64_t ino)
{
	struct meta_txn *t = NULL;
	struct meta_inode mi = {0};
	uint32_t st;

	assert_int_equal(meta_txn_begin(f->db, false, &t), 0);
	assert_int_equal(meta_inode_get(t, ino, &mi), 0);
	meta_txn_abort(t);
	st = mi.state;
	meta_inode_release(&mi);
	return st;
}

static int count_lru(void *arg, int64_t ts, uint64_t ino)
{
	(void)ts;
	(void)ino;
	(*(size_t *)arg)++;
	return 0;
}

static size_t lru_len(struct fixture *f)
{
	struct meta_txn *t = NULL;
	size_t n = 0;

	assert_int_equal(meta_txn_begin(f->db, false, &t), 0);
	assert_int_equal(meta_lru_foreach(t, count_lru, &n), 0);
	meta_txn_abort(t);
	return n;
}

/* At the first state change (made after a punch), the whole batch must
 * already be released in the store, and the batch's last file not yet
 * punched: one commit for the batch, before any punch. */
static void on_change(void *arg, uint64_t ino, int old_state, int new_state)
{
	struct fixture *f = arg;

	(void)ino;
	if (old_state != META_ARCHIVED || new_state != META_RELEASED)
		return;
	if (f->changes++ > 0 || !f->batch)
		return;
	f->order_ok = chunk_allocated(f->cs, f->batch[f->nbatch - 1]) > 0;
	for (size_t i = 0; i < f->nbatch; i++)
		f->order_ok &= state_of(f, f->batch[i]) == META_RELEASED &&
			       !chunks_present(f, f->batch[i], 4);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct hydrate_config cfg = {.fetch_threads = 1};

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/tidefs-release-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	if (meta_open(f->dir, 0, true, &f->db) ||
	    chunk_store_open(f->dir, MIB, &f->cs))
		return -1;
	cfg.on_change = on_change;
	cfg.cb_arg = f;
	if (hydrate_new(f->db, f->cs, NULL, &cfg, &f->h))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	hydrate_free(f->h);
	chunk_store_close(f->cs);
	meta_close(f->db);
	support_rm_tree(f->dir);
	free(f);
	return 0;
}

/* A file of mib MiB, all of it fetched and recorded present, as a read
 * leaves it: data file written, chunks and lru entry in the store. */
static void make_file(struct fixture *f, uint64_t ino, uint32_t mib,
		      uint32_t state, uint32_t flags)
{
	struct meta_inode mi = {0};
	struct meta_txn *t = NULL;
	char *buf = malloc(MIB);
	int fd;

	assert_non_null(buf);
	memset(buf, (int)ino, MIB);
	fd = chunk_open(f->cs, ino, true);
	assert_true(fd >= 0);
	for (uint32_t i = 0; i < mib; i++)
		assert_int_equal(pwrite(fd, buf, MIB, (off_t)i * MIB), MIB);
	assert_int_equal(fsync(fd), 0);
	close(fd);
	free(buf);

	mi.ino = ino;
	mi.mode = S_IFREG | 0644;
	mi.nlink = 1;
	mi.state = state;
	mi.flags = flags;
	mi.size = mi.s3_size = (uint64_t)mib * MIB;
	mi.cached_bytes = mi.size;
	mi.last_access_ns = (int64_t)ino;
	snprintf(mi.etag, sizeof(mi.etag), "\"e%" PRIu64 "\"", ino);
	mi.s3_key = strdup("k");
	assert_int_equal(meta_txn_begin(f->db, true, &t), 0);
	assert_int_equal(meta_inode_put(t, &mi), 0);
	for (uint32_t i = 0; i < mib; i++)
		assert_int_equal(meta_chunk_set(t, ino, i), 0);
	if (state == META_ARCHIVED)
		assert_int_equal(meta_lru_put(t, mi.last_access_ns, ino), 0);
	assert_int_equal(meta_txn_commit(t), 0);
	meta_inode_release(&mi);
}

static void assert_released(struct fixture *f, uint64_t ino, uint32_t mib)
{
	struct stat st;
	char path[128];

	assert_int_equal(state_of(f, ino), META_RELEASED);
	assert_false(chunks_present(f, ino, mib));
	assert_int_equal(chunk_allocated(f->cs, ino), 0);
	/* The data file keeps its size: reads fetch the data again. */
	snprintf(path, sizeof(path), "%s/data/%02x/%" PRIu64, f->dir,
		 (unsigned)(ino % 256), ino);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, (off_t)mib * MIB);
}

static void assert_kept(struct fixture *f, uint64_t ino, uint32_t mib,
			uint32_t state)
{
	assert_int_equal(state_of(f, ino), state);
	assert_true(chunks_present(f, ino, mib));
	assert_true(chunk_allocated(f->cs, ino) >= (int64_t)mib * MIB);
}

/* Inodes: 10..12 archived, 13 pinned, 14 new, 15 dirty, 16 absent,
 * 17 archived but open. */
static void test_batch(void **state)
{
	struct fixture *f = *state;
	const uint64_t inos[] = {10, 13, 11, 14, 15, 16, 17, 12};
	const int want_err[] = {0,	 -EPERM,  0,	  -EAGAIN,
				-EAGAIN, -ENOENT, -EBUSY, 0};
	const size_t n = sizeof(inos) / sizeof(inos[0]);
	struct hydrate_file *open_f = NULL;
	uint64_t freed[8];
	int errs[8];
	size_t tried = 0;

	make_file(f, 10, 2, META_ARCHIVED, 0);
	make_file(f, 11, 1, META_ARCHIVED, 0);
	make_file(f, 12, 3, META_ARCHIVED, 0);
	make_file(f, 13, 2, META_ARCHIVED, META_F_NORELEASE);
	make_file(f, 14, 1, META_NEW, 0);
	make_file(f, 15, 1, META_DIRTY, 0);
	make_file(f, 17, 1, META_ARCHIVED, 0);
	assert_int_equal(hydrate_open(f->h, 17, &open_f), 0);
	hydrate_note_handle(open_f, 1);

	assert_int_equal(hydrate_release_many(f->h, inos, n, true, 0, errs,
					      freed, &tried),
			 0);
	assert_int_equal(tried, n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(errs[i], want_err[i]);
	assert_int_equal(freed[0], 2 * MIB);
	assert_int_equal(freed[2], 1 * MIB);
	assert_int_equal(freed[7], 3 * MIB);
	for (size_t i = 0; i < n; i++)
		if (errs[i] != 0)
			assert_int_equal(freed[i], 0);
	assert_released(f, 10, 2);
	assert_released(f, 11, 1);
	assert_released(f, 12, 3);
	assert_kept(f, 13, 2, META_ARCHIVED);
	assert_kept(f, 14, 1, META_NEW);
	assert_kept(f, 15, 1, META_DIRTY);
	assert_kept(f, 17, 1, META_ARCHIVED);
	assert_int_equal(lru_len(f), 2); /* the pinned and the open file */
	assert_int_equal(f->changes, 3);

	/* Closed, the file goes; released files are not archived any more. */
	hydrate_note_handle(open_f, -1);
	hydrate_close(open_f);
	assert_int_equal(hydrate_release_many(f->h, inos, n, true, 0, errs,
					      freed, &tried),
			 0);
	assert_int_equal(errs[0], -EAGAIN);
	assert_int_equal(errs[6], 0);
	assert_int_equal(freed[6], 1 * MIB);
	assert_released(f, 17, 1);
	assert_int_equal(lru_len(f), 1);
}

/* The whole batch is recorded (one commit) before its first file is
 * punched. */
static void test_order(void **state)
{
	struct fixture *f = *state;
	const uint64_t inos[] = {20, 21, 22, 23};
	uint64_t freed[4];
	int errs[4];
	size_t tried = 0;

	for (size_t i = 0; i < 4; i++)
		make_file(f, inos[i], 4, META_ARCHIVED, 0);
	f->batch = inos;
	f->nbatch = 4;
	assert_int_equal(hydrate_release_many(f->h, inos, 4, true, 0, errs,
					      freed, &tried),
			 0);
	assert_int_equal(tried, 4);
	assert_int_equal(f->changes, 4);
	assert_true(f->order_ok);
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(errs[i], 0);
		assert_released(f, inos[i], 4);
	}
}

/* `want`: files are taken until they hold that much; the rest is not
 * looked at. */
static void test_want(void **state)
{
	struct fixture *f = *state;
	const uint64_t inos[] = {30, 31, 32, 33};
	uint64_t freed[4];
	int errs[4];
	size_t tried = 0;

	for (size_t i = 0; i < 4; i++)
		make_file(f, inos[i], 2, META_ARCHIVED, 0);
	assert_int_equal(hydrate_release_many(f->h, inos, 4, true, 3 * MIB,
					      errs, freed, &tried),
			 0);
	assert_int_equal(tried, 2);
	assert_released(f, 30, 2);
	assert_released(f, 31, 2);
	assert_int_equal(freed[0] + freed[1], 4 * MIB);
	assert_kept(f, 32, 2, META_ARCHIVED);
	assert_kept(f, 33, 2, META_ARCHIVED);
}

struct busy_arg {
	struct fixture *f;
	int errs[2];
	uint64_t freed[2];
	size_t tried;
};

/* Runs inside hydrate_read(), which holds file 40's io lock for reading:
 * a release of it must not wait for that lock. */
static int release_while_reading(void *arg, int fd, uint64_t off, size_t n)
{
	struct busy_arg *b = arg;
	const uint64_t inos[] = {40, 41};

	(void)fd;
	(void)off;
	(void)n;
	return hydrate_release_many(b->f->h, inos, 2, true, 0, b->errs,
				    b->freed, &b->tried);
}

static void test_busy_reader(void **state)
{
	struct fixture *f = *state;
	struct busy_arg b = {.f = f};
	struct hydrate_file *hf = NULL;

	make_file(f, 40, 1, META_ARCHIVED, 0);
	make_file(f, 41, 1, META_ARCHIVED, 0);
	assert_int_equal(hydrate_open(f->h, 40, &hf), 0);
	assert_int_equal(hydrate_read(hf, 0, 4096, release_while_reading, &b),
			 0);
	hydrate_close(hf);
	assert_int_equal(b.tried, 2);
	assert_int_equal(b.errs[0], -EBUSY);
	assert_int_equal(b.errs[1], 0);
	assert_kept(f, 40, 1, META_ARCHIVED);
	assert_released(f, 41, 1);
	/* The single-file call: the same rules. */
	assert_int_equal(hydrate_release(f->h, 40, true, &b.freed[0]), 0);
	assert_int_equal(b.freed[0], 1 * MIB);
	assert_released(f, 40, 1);
	assert_int_equal(hydrate_release(f->h, 40, true, &b.freed[0]), -EAGAIN);
}

struct pt_calls {
	int attach_ret; /* what attach answers */
	int attached, detached, last_fd, last_detached;
};

static int pt_attach(void *arg, int fd)
{
	struct pt_calls *c = arg;

	c->attached++;
	c->last_fd = fd;
	return c->attach_ret;
}

static void pt_detach(void *arg, int id)
{
	struct pt_calls *c = arg;

	c->detached++;
	c->last_detached = id;
}

/* Passthrough handles: which handle may be one, that the kernel's id is
 * registered once per run of such handles and given back after the last,
 * and what release and invalidation do meanwhile. */
static void test_passthrough_handles(void **state)
{
	struct fixture *f = *state;
	struct pt_calls c = {.attach_ret = 7};
	struct hydrate_file *hf = NULL, *hp = NULL, *inv = NULL;
	struct meta_txn *t = NULL;
	uint64_t freed = 0;

	/* 10 chunks: whole bitmap bytes and a tail. */
	make_file(f, 50, 10, META_ARCHIVED, 0);
	make_file(f, 51, 10, META_ARCHIVED, 0);
	assert_int_equal(meta_txn_begin(f->db, true, &t), 0);
	assert_int_equal(meta_chunk_clear(t, 51, 9), 0); /* last one gone */
	assert_int_equal(meta_txn_commit(t), 0);

	/* Not set up: never passthrough. */
	assert_int_equal(hydrate_open(f->h, 50, &hf), 0);
	assert_int_equal(hydrate_handle_open(hf, false), -1);
	hydrate_handle_close(hf, false);
	hydrate_set_passthrough(f->h, pt_attach, pt_detach, &c);

	/* Fully cached: readers share one registration. */
	assert_int_equal(hydrate_handle_open(hf, false), 7);
	assert_int_equal(c.last_fd, hydrate_fd(hf));
	assert_int_equal(hydrate_handle_open(hf, false), 7);
	assert_int_equal(c.attached, 1);
	/* Open: release skips it, invalidation refuses it (after 2 s). */
	assert_int_equal(hydrate_release(f->h, 50, true, &freed), -EBUSY);
	assert_int_equal(hydrate_invalidate_begin(f->h, 50, &inv), -EBUSY);
	assert_null(inv);
	assert_int_equal(state_of(f, 50), META_ARCHIVED);
	hydrate_handle_close(hf, true);
	assert_int_equal(c.detached, 0);
	hydrate_handle_close(hf, true);
	assert_int_equal(c.detached, 1);
	assert_int_equal(c.last_detached, 7);

	/* An ordinary writer first: the reader beside it is ordinary. */
	assert_int_equal(hydrate_handle_open(hf, true), -1);
	assert_int_equal(hydrate_handle_open(hf, false), -1);
	assert_int_equal(c.attached, 1);
	hydrate_handle_close(hf, false);
	hydrate_handle_close(hf, false);

	/* A writer joining a passthrough reader is passthrough too, and the
	 * file counts as changed from then on. */
	c.attach_ret = 9;
	assert_int_equal(hydrate_handle_open(hf, false), 9);
	assert_int_equal(hydrate_handle_open(hf, true), 9);
	assert_int_equal(state_of(f, 50), META_DIRTY);
	hydrate_handle_close(hf, true);
	hydrate_handle_close(hf, true);
	assert_int_equal(c.detached, 2);
	assert_int_equal(c.last_detached, 9);
	hydrate_close(hf);

	/* Partly cached: ordinary. The kernel declining: ordinary. */
	assert_int_equal(hydrate_open(f->h, 51, &hp), 0);
	assert_int_equal(hydrate_handle_open(hp, false), -1);
	hydrate_handle_close(hp, false);
	hydrate_close(hp);
	make_file(f, 53, 10, META_ARCHIVED, 0);
	assert_int_equal(meta_txn_begin(f->db, true, &t), 0);
	assert_int_equal(meta_chunk_clear(t, 53, 2), 0); /* most gone */
	assert_int_equal(meta_txn_commit(t), 0);
	assert_int_equal(hydrate_open(f->h, 53, &hp), 0);
	assert_int_equal(hydrate_handle_open(hp, false), -1);
	hydrate_handle_close(hp, false);
	hydrate_close(hp);
	make_file(f, 52, 1, META_ARCHIVED, 0);
	c.attach_ret = -EPERM;
	assert_int_equal(hydrate_open(f->h, 52, &hp), 0);
	assert_int_equal(hydrate_handle_open(hp, false), -1);
	assert_int_equal(c.attached, 3);
	hydrate_handle_close(hp, false);
	hydrate_close(hp);
	/* Closed: released as usual. */
	assert_int_equal(hydrate_release(f->h, 52, true, &freed), 0);
	assert_released(f, 52, 1);
	assert_int_equal(c.detached, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_want, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy_reader, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_passthrough_handles, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

// SPDX-License-Identifier: MIT
/*
 * Unit tests of how cache/hydrate shares one loaded file between the opens
 * of an inode. Every open of an inode that is not loaded yet used to load
 * its own copy and keep the first one in the table; a loader that lost that
 * race had still squared the data file with the size it read from the
 * store, truncating bytes another handle had just written (seen in CI as a
 * corrupt file after six concurrent writers of one file). Now one open
 * loads and the others wait for it, so nothing touches a data file that a
 * loaded file owns. No S3: the files are new, made locally.
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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIB	 (1u << 20)
#define NWRITERS 6
#define PART	 (256 * 1024 + 333) /* not chunk aligned, as in the CI test */
#define ROUNDS	 40

struct fixture {
	char dir[64];
	struct meta_db *db;
	struct chunk_store *cs;
	struct hydrate *h;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct hydrate_config cfg = {.fetch_threads = 1};

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/tidefs-open-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	if (meta_open(f->dir, 0, true, &f->db) ||
	    chunk_store_open(f->dir, MIB, &f->cs) ||
	    hydrate_new(f->db, f->cs, NULL, &cfg, &f->h))
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

/* An empty new file, as a create leaves it. */
static void make_empty(struct fixture *f, uint64_t ino)
{
	struct meta_inode mi = {0};
	struct meta_txn *t = NULL;

	mi.ino = ino;
	mi.mode = S_IFREG | 0644;
	mi.nlink = 1;
	mi.state = META_NEW;
	assert_int_equal(meta_txn_begin(f->db, true, &t), 0);
	assert_int_equal(meta_inode_put(t, &mi), 0);
	assert_int_equal(meta_txn_commit(t), 0);
}

static uint64_t stored_size(struct fixture *f, uint64_t ino)
{
	struct meta_inode mi = {0};
	struct meta_txn *t = NULL;
	uint64_t size;

	assert_int_equal(meta_txn_begin(f->db, false, &t), 0);
	assert_int_equal(meta_inode_get(t, ino, &mi), 0);
	meta_txn_abort(t);
	size = mi.size;
	meta_inode_release(&mi);
	return size;
}

static void fill_part(char *buf, unsigned part, unsigned round)
{
	for (size_t k = 0; k < PART; k++)
		buf[k] = (char)(part * 31 + round * 7 + k % 251);
}

struct writer {
	struct fixture *f;
	pthread_barrier_t *go;
	uint64_t ino;
	unsigned part, round;
	int ret;
};

/* Open the inode (the first open of it loads it), write this writer's
 * part, close: the life of a handle of `pwrite` at one offset. */
static void *write_part(void *arg)
{
	struct writer *w = arg;
	struct hydrate_file *hf = NULL;
	char *buf = malloc(PART);
	int ret;

	pthread_barrier_wait(w->go);
	if (!buf) {
		w->ret = -ENOMEM;
		return NULL;
	}
	fill_part(buf, w->part, w->round);
	ret = hydrate_open(w->f->h, w->ino, &hf);
	if (ret == 0) {
		ret = hydrate_handle_open(hf, true);
		if (ret == -1) {
			ret = hydrate_write(hf, buf, PART,
					    (uint64_t)w->part * PART, NULL,
					    NULL);
			hydrate_handle_close(hf, false);
		}
		hydrate_close(hf);
	}
	free(buf);
	w->ret = ret;
	return NULL;
}

/* Six handles of one new file, opened at once, each writing its own part:
 * the file ends up with every part, in the data file and in the store. */
static void test_concurrent_first_opens(void **state)
{
	struct fixture *f = *state;
	char *want = malloc(PART), *got = malloc((size_t)NWRITERS * PART + 1);

	assert_non_null(want);
	assert_non_null(got);
	for (unsigned r = 0; r < ROUNDS; r++) {
		uint64_t ino = 100 + r;
		pthread_barrier_t go;
		pthread_t th[NWRITERS];
		struct writer w[NWRITERS];
		int fd;

		make_empty(f, ino);
		pthread_barrier_init(&go, NULL, NWRITERS);
		for (unsigned i = 0; i < NWRITERS; i++) {
			w[i] = (struct writer){f, &go, ino, i, r, 0};
			assert_int_equal(
				pthread_create(&th[i], NULL, write_part, &w[i]),
				0);
		}
		for (unsigned i = 0; i < NWRITERS; i++) {
			pthread_join(th[i], NULL);
			assert_int_equal(w[i].ret, 0);
		}
		pthread_barrier_destroy(&go);
		assert_int_equal(stored_size(f, ino),
				 (uint64_t)NWRITERS * PART);
		fd = chunk_open(f->cs, ino, false);
		assert_true(fd >= 0);
		assert_int_equal(pread(fd, got, (size_t)NWRITERS * PART + 1, 0),
				 (ssize_t)NWRITERS * PART);
		close(fd);
		for (unsigned i = 0; i < NWRITERS; i++) {
			fill_part(want, i, r);
			assert_memory_equal(got + (size_t)i * PART, want, PART);
		}
	}
	free(want);
	free(got);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_concurrent_first_opens,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

// SPDX-License-Identifier: MIT
/* Unit tests of cache/meta: the LMDB metadata store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <lmdb.h>

#include "cache/meta.h"
#include "common/common.h"
#include "support.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct fixture {
	char dir[64];
	struct meta_db *db;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/tidefs-meta-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	if (meta_open(f->dir, 0, true, &f->db))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	meta_close(f->db);
	umount2(f->dir, MNT_DETACH); /* test_writemap_full_fs's tmpfs */
	support_rm_tree(f->dir);
	free(f);
	return 0;
}

static struct meta_txn *wtxn(struct fixture *f)
{
	struct meta_txn *t = NULL;

	assert_int_equal(meta_txn_begin(f->db, true, &t), 0);
	return t;
}

static struct meta_txn *rtxn(struct fixture *f)
{
	struct meta_txn *t = NULL;

	assert_int_equal(meta_txn_begin(f->db, false, &t), 0);
	return t;
}

static void fill_inode(struct meta_inode *in, uint64_t ino, const char *key)
{
	memset(in, 0, sizeof(*in));
	in->ino = ino;
	in->mode = 0100644;
	in->uid = 1000 + (uint32_t)ino;
	in->gid = 2000;
	in->nlink = 1;
	in->state = META_RELEASED;
	in->flags = META_F_NORELEASE;
	in->rdev = 0x0102030405060708ULL;
	in->size = 5ULL << 40;
	in->atime_ns = -1234567890123LL;
	in->mtime_ns = 1600000000123456789LL;
	in->ctime_ns = 1700000000000000001LL;
	in->generation = 42 + ino;
	in->cached_bytes = 1 << 20;
	in->last_access_ns = 1800000000000000000LL;
	in->s3_size = 5ULL << 40;
	in->s3_mtime_ns = 1500000000000000000LL;
	snprintf(in->etag, sizeof(in->etag), "\"%032llx\"",
		 (unsigned long long)ino);
	in->s3_key = key ? strdup(key) : NULL;
}

static void assert_inode_equal(const struct meta_inode *a,
			       const struct meta_inode *b)
{
	assert_int_equal(a->ino, b->ino);
	assert_int_equal(a->mode, b->mode);
	assert_int_equal(a->uid, b->uid);
	assert_int_equal(a->gid, b->gid);
	assert_int_equal(a->nlink, b->nlink);
	assert_int_equal(a->state, b->state);
	assert_int_equal(a->flags, b->flags);
	assert_int_equal(a->rdev, b->rdev);
	assert_int_equal(a->size, b->size);
	assert_int_equal(a->atime_ns, b->atime_ns);
	assert_int_equal(a->mtime_ns, b->mtime_ns);
	assert_int_equal(a->ctime_ns, b->ctime_ns);
	assert_int_equal(a->generation, b->generation);
	assert_int_equal(a->cached_bytes, b->cached_bytes);
	assert_int_equal(a->last_access_ns, b->last_access_ns);
	assert_int_equal(a->s3_size, b->s3_size);
	assert_int_equal(a->s3_mtime_ns, b->s3_mtime_ns);
	assert_string_equal(a->etag, b->etag);
	if (!a->s3_key || !b->s3_key)
		assert_ptr_equal(a->s3_key, b->s3_key);
	else
		assert_string_equal(a->s3_key, b->s3_key);
}

/* ---- open, close, reopen ---- */

static void test_reopen_persists(void **state)
{
	struct fixture *f = *state;
	struct meta_inode in, out;
	struct meta_txn *t;
	uint64_t v, ino;
	char s[32];

	t = wtxn(f);
	fill_inode(&in, META_ROOT_INO, NULL);
	meta_inode_put(t, &in);
	meta_super_put_str(t, "fsid", "fs-0123456789abcdef0");
	assert_int_equal(meta_ino_alloc(t, &ino), 0);
	assert_int_equal(ino, 2);
	assert_int_equal(meta_ino_alloc(t, &ino), 0);
	assert_int_equal(ino, 3);
	assert_int_equal(meta_txn_commit(t), 0);
	assert_int_equal(meta_sync(f->db), 0);
	meta_close(f->db);
	f->db = NULL;

	/* Reopen durable (nosync=false). */
	assert_int_equal(meta_open(f->dir, 0, false, &f->db), 0);
	t = rtxn(f);
	assert_int_equal(meta_inode_get(t, META_ROOT_INO, &out), 0);
	assert_inode_equal(&in, &out);
	meta_inode_release(&out);
	assert_int_equal(meta_super_get_str(t, "fsid", s, sizeof(s)), 0);
	assert_string_equal(s, "fs-0123456789abcdef0");
	assert_int_equal(meta_super_get_u64(t, "format", &v), 0);
	assert_int_equal(v, 3);
	meta_txn_abort(t);

	t = wtxn(f);
	assert_int_equal(meta_ino_alloc(t, &ino), 0);
	assert_int_equal(ino, 4);
	assert_int_equal(meta_txn_commit(t), 0);
	meta_inode_release(&in);
}

static void test_unknown_format_refused(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t = wtxn(f);

	meta_super_put_u64(t, "format", 4);
	assert_int_equal(meta_txn_commit(t), 0);
	meta_close(f->db);
	f->db = NULL;
	assert_int_equal(meta_open(f->dir, 0, true, &f->db), -EPROTONOSUPPORT);
	assert_null(f->db);
}

/* A format-1 store (before lazy metadata) opens and becomes format 3; a
 * binary that reads format 1 only then refuses it (it would not know
 * pending inodes). Format 0 never existed. */
static void test_format_upgrade(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t = wtxn(f);
	uint64_t v = 0;

	meta_super_put_u64(t, "format", 1);
	assert_int_equal(meta_txn_commit(t), 0);
	meta_close(f->db);
	f->db = NULL;
	assert_int_equal(meta_open(f->dir, 0, true, &f->db), 0);
	t = wtxn(f);
	assert_int_equal(meta_super_get_u64(t, "format", &v), 0);
	assert_int_equal(v, 3);
	meta_super_put_u64(t, "format", 0);
	assert_int_equal(meta_txn_commit(t), 0);
	meta_close(f->db);
	f->db = NULL;
	assert_int_equal(meta_open(f->dir, 0, true, &f->db), -EPROTONOSUPPORT);
}

static void test_open_bad_dir(void **state)
{
	struct meta_db *db = (void *)1;

	(void)state;
	assert_int_equal(meta_open("/nonexistent/tidefs", 0, true, &db),
			 -ENOENT);
	assert_null(db);
}

/* ---- super ---- */

static void test_super(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t = wtxn(f);
	char buf[8], big[300];
	size_t n = 0;
	uint64_t v;

	assert_int_equal(meta_super_get(t, "nope", buf, sizeof(buf), &n),
			 -ENOENT);
	assert_int_equal(meta_super_put(t, "raw", "\0\1\2\3\4\5\6\7\10", 9), 0);
	assert_int_equal(meta_super_get(t, "raw", buf, sizeof(buf), &n), 0);
	assert_int_equal(n, 9); /* stored length, copy truncated */
	assert_memory_equal(buf, "\0\1\2\3\4\5\6\7", 8);
	assert_int_equal(meta_super_get(t, "raw", NULL, 0, &n), 0);
	assert_int_equal(n, 9);
	assert_int_equal(meta_super_put_str(t, "url", "s3://b/p/"), 0);
	assert_int_equal(meta_super_get_str(t, "url", buf, 5), -ERANGE);
	assert_int_equal(meta_super_get_str(t, "url", big, sizeof(big)), 0);
	assert_string_equal(big, "s3://b/p/");
	assert_int_equal(meta_super_put_u64(t, "n", UINT64_MAX - 1), 0);
	assert_int_equal(meta_super_get_u64(t, "n", &v), 0);
	assert_int_equal(v, UINT64_MAX - 1);
	assert_int_equal(meta_super_get_u64(t, "absent", &v), -ENOENT);
	/* None of those answers stuck. */
	assert_int_equal(meta_txn_error(t), 0);
	assert_int_equal(meta_txn_commit(t), 0);
}

/* ---- inodes ---- */

static int collect_inos(void *arg, const struct meta_inode *in)
{
	uint64_t *v = arg;

	v[++v[0]] = in->ino;
	return 0;
}

static void test_inodes(void **state)
{
	struct fixture *f = *state;
	static const uint64_t inos[] = {300, 5, 70000, 2, 256, 1ULL << 40};
	struct meta_inode in, out;
	char longkey[1100];
	uint64_t seen[16] = {0};
	struct meta_txn *t;

	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	t = wtxn(f);
	for (size_t i = 0; i < ARRAY_SIZE(inos); i++) {
		fill_inode(&in, inos[i],
			   i == 0 ? NULL : (i == 1 ? "" : longkey));
		assert_int_equal(meta_inode_put(t, &in), 0);
		meta_inode_release(&in);
	}
	assert_int_equal(meta_txn_commit(t), 0);

	t = rtxn(f);
	for (size_t i = 0; i < ARRAY_SIZE(inos); i++) {
		fill_inode(&in, inos[i],
			   i == 0 ? NULL : (i == 1 ? "" : longkey));
		assert_int_equal(meta_inode_get(t, inos[i], &out), 0);
		assert_inode_equal(&in, &out);
		meta_inode_release(&in);
		meta_inode_release(&out);
	}
	assert_int_equal(meta_inode_get(t, 4, &out), -ENOENT);
	assert_null(out.s3_key);
	assert_int_equal(meta_inode_foreach(t, collect_inos, seen), 0);
	assert_int_equal(seen[0], 6);
	assert_int_equal(seen[1], 2);
	assert_int_equal(seen[2], 5);
	assert_int_equal(seen[3], 256);
	assert_int_equal(seen[4], 300);
	assert_int_equal(seen[5], 70000);
	assert_int_equal(seen[6], 1ULL << 40);
	meta_txn_abort(t);

	t = wtxn(f);
	assert_int_equal(meta_inode_del(t, 5), 0);
	assert_int_equal(meta_inode_del(t, 5), -ENOENT);
	assert_int_equal(meta_inode_get(t, 5, &out), -ENOENT);
	assert_int_equal(meta_txn_error(t), 0);
	/* Overwrite: NULL key after a long key. */
	fill_inode(&in, 300, NULL);
	in.size = 7;
	assert_int_equal(meta_inode_put(t, &in), 0);
	assert_int_equal(meta_inode_get(t, 300, &out), 0);
	assert_inode_equal(&in, &out);
	meta_inode_release(&in);
	meta_inode_release(&out);
	/* ino 0 is invalid (and sticks). */
	fill_inode(&in, 0, NULL);
	assert_int_equal(meta_inode_put(t, &in), -EINVAL);
	assert_int_equal(meta_txn_commit(t), -EINVAL);
}

/* Extremes of every field round-trip (times are stored as differences,
 * which wrap). */
static void test_inode_record_extremes(void **state)
{
	struct fixture *f = *state;
	struct meta_inode in[4], out;
	struct meta_txn *t = wtxn(f);

	fill_inode(&in[0], 10, NULL);
	in[0].mtime_ns = INT64_MIN;
	in[0].atime_ns = INT64_MAX;
	in[0].ctime_ns = 0;
	in[0].last_access_ns = INT64_MAX;
	in[0].s3_mtime_ns = INT64_MIN + 1;
	in[0].size = in[0].s3_size = in[0].generation = UINT64_MAX;
	in[0].cached_bytes = in[0].rdev = UINT64_MAX;
	in[0].mode = in[0].uid = in[0].gid = in[0].nlink = UINT32_MAX;
	in[0].state = in[0].flags = UINT32_MAX;
	memset(in[0].etag, 'e', sizeof(in[0].etag) - 1);
	fill_inode(&in[1], 11, "");
	in[1].mtime_ns = INT64_MAX;
	in[1].atime_ns = in[1].ctime_ns = INT64_MIN;
	/* All optional fields absent, the key too. */
	memset(&in[2], 0, sizeof(in[2]));
	in[2].ino = 12;
	fill_inode(&in[3], 13, "a/b c/\\xff-key");
	in[3].etag[0] = '\0';
	in[3].rdev = in[3].cached_bytes = 0;
	for (int i = 0; i < 4; i++)
		assert_int_equal(meta_inode_put(t, &in[i]), 0);
	assert_int_equal(meta_txn_commit(t), 0);
	t = rtxn(f);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(meta_inode_get(t, in[i].ino, &out), 0);
		assert_inode_equal(&in[i], &out);
		meta_inode_release(&out);
		meta_inode_release(&in[i]);
	}
	meta_txn_abort(t);
}

/* Raw access to the store's inodes table, the store closed. */
static void raw_inodes(struct fixture *f, bool write, MDB_env **env,
		       MDB_txn **txn, MDB_dbi *dbi)
{
	char path[96];

	snprintf(path, sizeof(path), "%s/meta", f->dir);
	assert_int_equal(mdb_env_create(env), 0);
	assert_int_equal(mdb_env_set_maxdbs(*env, 16), 0);
	assert_int_equal(mdb_env_open(*env, path, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(*env, NULL, write ? 0 : MDB_RDONLY, txn),
			 0);
	assert_int_equal(mdb_dbi_open(*txn, "inodes", 0, dbi), 0);
}

static MDB_val be_key(uint8_t kb[8], uint64_t ino)
{
	for (int i = 0; i < 8; i++)
		kb[i] = (uint8_t)(ino >> (56 - 8 * i));
	return (MDB_val){.mv_size = 8, .mv_data = kb};
}

static void le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A version-1 record (metadata formats 1 and 2) as the old layout puts it. */
static size_t v1_record(uint8_t *p, const struct meta_inode *in)
{
	size_t elen = strlen(in->etag),
	       klen = in->s3_key ? strlen(in->s3_key) : 0;

	le(p, 1, 4);
	le(p + 4, in->mode, 4);
	le(p + 8, in->uid, 4);
	le(p + 12, in->gid, 4);
	le(p + 16, in->nlink, 4);
	le(p + 20, in->state, 4);
	le(p + 24, in->flags, 4);
	le(p + 28, in->rdev, 8);
	le(p + 36, in->size, 8);
	le(p + 44, (uint64_t)in->atime_ns, 8);
	le(p + 52, (uint64_t)in->mtime_ns, 8);
	le(p + 60, (uint64_t)in->ctime_ns, 8);
	le(p + 68, in->generation, 8);
	le(p + 76, in->cached_bytes, 8);
	le(p + 84, (uint64_t)in->last_access_ns, 8);
	le(p + 92, in->s3_size, 8);
	le(p + 100, (uint64_t)in->s3_mtime_ns, 8);
	le(p + 108, elen, 4);
	memcpy(p + 112, in->etag, elen);
	le(p + 112 + elen, in->s3_key ? klen : UINT32_MAX, 4);
	if (klen)
		memcpy(p + 116 + elen, in->s3_key, klen);
	return 116 + elen + klen;
}

/* A store written by an older tidefs (format 2, version-1 records) opens,
 * becomes format 3, reads every record, and rewrites a record it changes in
 * the compact version 2, which a new file's inode fits in 48 bytes. */
static void test_inode_record_versions(void **state)
{
	struct fixture *f = *state;
	struct meta_inode in[2], out;
	struct meta_txn *t;
	uint8_t kb[8], rec[512];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k, v;
	uint64_t format = 0;

	t = wtxn(f);
	meta_super_put_u64(t, "format", 2);
	assert_int_equal(meta_txn_commit(t), 0);
	meta_close(f->db);
	f->db = NULL;
	fill_inode(&in[0], 20, "dir/file");
	fill_inode(&in[1], 21, NULL);
	raw_inodes(f, true, &env, &txn, &dbi);
	for (int i = 0; i < 2; i++) {
		k = be_key(kb, in[i].ino);
		v = (MDB_val){.mv_size = v1_record(rec, &in[i]),
			      .mv_data = rec};
		assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	}
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);

	assert_int_equal(meta_open(f->dir, 0, true, &f->db), 0);
	t = wtxn(f);
	assert_int_equal(meta_super_get_u64(t, "format", &format), 0);
	assert_int_equal(format, 3);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(meta_inode_get(t, in[i].ino, &out), 0);
		assert_inode_equal(&in[i], &out);
		meta_inode_release(&out);
	}
	/* in[1] changes as a new file's inode: local, no object. */
	meta_inode_release(&in[1]);
	memset(&in[1], 0, sizeof(in[1]));
	in[1].ino = 21;
	in[1].mode = 0100644;
	in[1].uid = in[1].gid = 1000;
	in[1].nlink = 1;
	in[1].state = META_NEW;
	in[1].size = in[1].cached_bytes = 4096;
	in[1].generation = 2;
	in[1].mtime_ns = in[1].ctime_ns = 1764000000123456789LL;
	in[1].atime_ns = in[1].mtime_ns - 1000;
	in[1].last_access_ns = in[1].mtime_ns;
	assert_int_equal(meta_inode_put(t, &in[1]), 0);
	assert_int_equal(meta_txn_commit(t), 0);
	meta_close(f->db);
	f->db = NULL;

	raw_inodes(f, false, &env, &txn, &dbi);
	k = be_key(kb, 20);
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	assert_int_equal(((uint8_t *)v.mv_data)[0], 1); /* untouched */
	k = be_key(kb, 21);
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	assert_int_equal(((uint8_t *)v.mv_data)[0], 2);
	assert_in_range(v.mv_size, 20, 48);
	mdb_txn_abort(txn);
	mdb_env_close(env);

	assert_int_equal(meta_open(f->dir, 0, true, &f->db), 0);
	t = rtxn(f);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(meta_inode_get(t, in[i].ino, &out), 0);
		assert_inode_equal(&in[i], &out);
		meta_inode_release(&out);
		meta_inode_release(&in[i]);
	}
	meta_txn_abort(t);
}

/* Every cut of a record, a byte too many, an unknown version or field bit,
 * and an over-long varint are -EPROTO, never a crash or a half-read inode. */
static void test_inode_record_damaged(void **state)
{
	struct fixture *f = *state;
	struct meta_inode in, out;
	struct meta_txn *t = wtxn(f);
	uint8_t kb[8], good[512], bad[520];
	size_t glen;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k, v;

	fill_inode(&in, 30, "some/key");
	assert_int_equal(meta_inode_put(t, &in), 0);
	assert_int_equal(meta_txn_commit(t), 0);
	meta_close(f->db);
	f->db = NULL;
	raw_inodes(f, true, &env, &txn, &dbi);
	k = be_key(kb, 30);
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	glen = v.mv_size;
	assert_true(glen <= sizeof(good));
	memcpy(good, v.mv_data, glen);
	mdb_txn_abort(txn);
	mdb_env_close(env);

	/* Variants 0..glen-1: the record cut there; then a byte too many,
	 * version 3, an 11-byte varint for the mode, an unknown field bit. */
	for (size_t i = 0; i < glen + 4; i++) {
		size_t n = i < glen ? i : glen;

		memcpy(bad, good, glen);
		if (i == glen) {
			bad[glen] = 0;
			n = glen + 1;
		} else if (i == glen + 1) {
			bad[0] = 3;
		} else if (i == glen + 2) {
			memset(bad + 1, 0xff, 10);
			bad[11] = 0x01;
		} else if (i == glen + 3) {
			/* 'has' is the 12th varint after the version byte */
			size_t at = 1;

			for (int nvar = 0; nvar < 11; at++)
				if (!(bad[at] & 0x80))
					nvar++;
			bad[at] = (uint8_t)(bad[at] | 0x80); /* continued */
			memmove(bad + at + 2, bad + at + 1, glen - at - 1);
			bad[at + 1] = 0x01; /* has |= 1 << 7 */
			n = glen + 1;
		}
		raw_inodes(f, true, &env, &txn, &dbi);
		v = (MDB_val){.mv_size = n, .mv_data = bad};
		assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
		assert_int_equal(mdb_txn_commit(txn), 0);
		mdb_env_close(env);
		assert_int_equal(meta_open(f->dir, 0, true, &f->db), 0);
		t = rtxn(f);
		assert_int_equal(meta_inode_get(t, 30, &out), -EPROTO);
		assert_null(out.s3_key);
		meta_txn_abort(t);
		meta_close(f->db);
		f->db = NULL;
	}
	meta_inode_release(&in);
	assert_int_equal(meta_open(f->dir, 0, true, &f->db), 0);
}

static int stop_at_second(void *arg, const struct meta_inode *in)
{
	int *n = arg;

	(void)in;
	return ++*n == 2 ? 77 : 0;
}

static void test_foreach_stop(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t = wtxn(f);
	struct meta_inode in;
	int n = 0;

	for (uint64_t i = 1; i <= 5; i++) {
		fill_inode(&in, i, "k");
		meta_inode_put(t, &in);
		meta_inode_release(&in);
	}
	assert_int_equal(meta_inode_foreach(t, stop_at_second, &n), 77);
	assert_int_equal(n, 2);
	/* A callback's value is not an error of the transaction. */
	assert_int_equal(meta_txn_error(t), 0);
	assert_int_equal(meta_txn_commit(t), 0);
}

/* ---- dentries ---- */

struct names {
	int n;
	char name[16][300];
	uint64_t ino[16];
	int stop_after;
};

static int collect_dentry(void *arg, const char *name, uint64_t ino)
{
	struct names *c = arg;

	snprintf(c->name[c->n], sizeof(c->name[0]), "%s", name);
	c->ino[c->n] = ino;
	c->n++;
	return c->stop_after && c->n == c->stop_after ? 5 : 0;
}

static void test_dentries(void **state)
{
	struct fixture *f = *state;
	static const char *const names[] = {
		"b", "ab", "a", "B", "a.txt", "\xc3\xa9t\xc3\xa9", "zz"};
	struct meta_txn *t = wtxn(f);
	struct names c = {0};
	uint64_t ino;

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		assert_int_equal(meta_dentry_put(t, 1, names[i], 10 + i, false),
				 0);
	/* Neighbouring parents must not leak into the listing of 1. */
	assert_int_equal(meta_dentry_put(t, 0, "x", 99, false), 0);
	assert_int_equal(meta_dentry_put(t, 2, "0", 98, false), 0);
	assert_int_equal(meta_dentry_put(t, 256, "0", 97, false), 0);
	assert_int_equal(meta_dentry_put(t, 1, "a", 50, true), 0);
	assert_int_equal(meta_txn_commit(t), 0);

	t = rtxn(f);
	assert_int_equal(meta_dentry_get(t, 1, "a", &ino), 0);
	assert_int_equal(ino, 50);
	assert_int_equal(meta_dentry_get(t, 1, "c", &ino), -ENOENT);
	assert_int_equal(meta_dentry_get(t, 2, "a", &ino), -ENOENT);
	assert_int_equal(meta_dentry_foreach(t, 1, NULL, collect_dentry, &c),
			 0);
	assert_int_equal(c.n, 7);
	assert_string_equal(c.name[0], "B");
	assert_string_equal(c.name[1], "a");
	assert_int_equal(c.ino[1], 50);
	assert_string_equal(c.name[2], "a.txt");
	assert_string_equal(c.name[3], "ab");
	assert_string_equal(c.name[4], "b");
	assert_string_equal(c.name[5], "zz");
	assert_string_equal(c.name[6], "\xc3\xa9t\xc3\xa9");

	/* after: strictly after an existing name */
	memset(&c, 0, sizeof(c));
	assert_int_equal(meta_dentry_foreach(t, 1, "a.txt", collect_dentry, &c),
			 0);
	assert_int_equal(c.n, 4);
	assert_string_equal(c.name[0], "ab");
	/* after a name that is not there: from the next one */
	memset(&c, 0, sizeof(c));
	assert_int_equal(meta_dentry_foreach(t, 1, "aa", collect_dentry, &c),
			 0);
	assert_int_equal(c.n, 4);
	assert_string_equal(c.name[0], "ab");
	/* after the last: nothing, and no entries of parent 2 */
	memset(&c, 0, sizeof(c));
	assert_int_equal(meta_dentry_foreach(t, 1, "\xc3\xa9t\xc3\xa9",
					     collect_dentry, &c),
			 0);
	assert_int_equal(c.n, 0);
	/* stopping returns the callback's value */
	memset(&c, 0, sizeof(c));
	c.stop_after = 2;
	assert_int_equal(meta_dentry_foreach(t, 1, NULL, collect_dentry, &c),
			 5);
	assert_int_equal(c.n, 2);
	memset(&c, 0, sizeof(c));
	assert_int_equal(meta_dentry_foreach(t, 3, NULL, collect_dentry, &c),
			 0);
	assert_int_equal(c.n, 0);
	assert_int_equal(meta_dir_is_empty(t, 1), 0);
	assert_int_equal(meta_dir_is_empty(t, 3), 1);
	assert_int_equal(meta_dir_is_empty(t, 255), 1);
	assert_int_equal(meta_txn_commit(t), 0);

	t = wtxn(f);
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		assert_int_equal(meta_dentry_del(t, 1, names[i]), 0);
	assert_int_equal(meta_dentry_del(t, 1, "a"), -ENOENT);
	assert_int_equal(meta_dir_is_empty(t, 1), 1);
	assert_int_equal(meta_dir_is_empty(t, 2), 0);
	assert_int_equal(meta_txn_commit(t), 0);
}

static void test_dentry_exists_sticks(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t = wtxn(f);
	uint64_t ino;

	assert_int_equal(meta_dentry_put(t, 1, "x", 2, false), 0);
	assert_int_equal(meta_txn_commit(t), 0);
	t = wtxn(f);
	assert_int_equal(meta_dentry_put(t, 1, "y", 3, false), 0);
	assert_int_equal(meta_dentry_put(t, 1, "x", 4, false), -EEXIST);
	assert_int_equal(meta_txn_commit(t), -EEXIST);
	t = rtxn(f);
	assert_int_equal(meta_dentry_get(t, 1, "x", &ino), 0);
	assert_int_equal(ino, 2);
	assert_int_equal(meta_dentry_get(t, 1, "y", &ino), -ENOENT);
	meta_txn_abort(t);
}

static void test_long_names(void **state)
{
	struct fixture *f = *state;
	char n255[256], n256[257];
	struct meta_txn *t = wtxn(f);
	struct names c = {0};
	uint64_t ino;

	memset(n255, 'n', 255);
	n255[255] = '\0';
	memset(n256, 'n', 256);
	n256[256] = '\0';
	assert_int_equal(meta_dentry_put(t, 1, n255, 7, false), 0);
	assert_int_equal(meta_xattr_put(t, 1, n255, "v", 1), 0);
	/* A lookup of an impossible name is an answer, not an error. */
	assert_int_equal(meta_dentry_get(t, 1, n256, &ino), -ENAMETOOLONG);
	assert_int_equal(meta_txn_error(t), 0);
	assert_int_equal(meta_dentry_foreach(t, 1, n256, collect_dentry, &c),
			 0);
	assert_int_equal(c.n, 0);
	assert_int_equal(meta_txn_commit(t), 0);

	t = rtxn(f);
	assert_int_equal(meta_dentry_get(t, 1, n255, &ino), 0);
	assert_int_equal(ino, 7);
	assert_int_equal(meta_dentry_foreach(t, 1, NULL, collect_dentry, &c),
			 0);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.name[0], n255);
	meta_txn_abort(t);

	t = wtxn(f);
	assert_int_equal(meta_dentry_put(t, 1, n256, 8, false), -ENAMETOOLONG);
	assert_int_equal(meta_txn_commit(t), -ENAMETOOLONG);
	t = wtxn(f);
	assert_int_equal(meta_xattr_put(t, 1, n256, "v", 1), -ENAMETOOLONG);
	assert_int_equal(meta_txn_commit(t), -ENAMETOOLONG);
	t = wtxn(f);
	assert_int_equal(meta_dentry_put(t, 1, "", 8, false), -EINVAL);
	meta_txn_abort(t);
}

/* ---- sticky errors, abort ---- */

static void test_sticky_error(void **state)
{
	struct fixture *f = *state;
	static char big[64 * 1024 + 1];
	struct meta_txn *t = wtxn(f);
	struct meta_inode in, out;
	uint64_t ino;

	fill_inode(&in, 9, "k9");
	assert_int_equal(meta_inode_put(t, &in), 0);
	/* A lookup miss does not stick. */
	assert_int_equal(meta_dentry_get(t, 1, "nothing", &ino), -ENOENT);
	assert_int_equal(meta_txn_error(t), 0);
	/* A failed operation does ... */
	assert_int_equal(meta_xattr_put(t, 9, "user.big", big, sizeof(big)),
			 -E2BIG);
	assert_int_equal(meta_txn_error(t), -E2BIG);
	/* ... later calls return it without doing anything ... */
	assert_int_equal(meta_dentry_put(t, 1, "f", 9, false), -E2BIG);
	assert_int_equal(meta_inode_get(t, 9, &out), -E2BIG);
	assert_int_equal(meta_super_put_u64(t, "x", 1), -E2BIG);
	assert_int_equal(meta_chunk_set(t, 9, 0), -E2BIG);
	assert_int_equal(meta_txn_error(t), -E2BIG);
	/* ... and the commit aborts. */
	assert_int_equal(meta_txn_commit(t), -E2BIG);

	t = rtxn(f);
	assert_int_equal(meta_inode_get(t, 9, &out), -ENOENT);
	assert_int_equal(meta_dentry_get(t, 1, "f", &ino), -ENOENT);
	/* Writes in a read transaction fail (and stick). */
	assert_int_equal(meta_inode_put(t, &in), -EBADF);
	assert_int_equal(meta_txn_commit(t), -EBADF);
	meta_inode_release(&in);
}

static void test_abort_discards(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t = wtxn(f);
	struct meta_inode in, out;
	uint64_t ino;

	fill_inode(&in, 12, NULL);
	assert_int_equal(meta_inode_put(t, &in), 0);
	assert_int_equal(meta_dentry_put(t, 1, "g", 12, false), 0);
	assert_int_equal(meta_ino_alloc(t, &ino), 0);
	assert_int_equal(ino, 2);
	meta_txn_abort(t);
	meta_txn_abort(NULL);

	t = wtxn(f);
	assert_int_equal(meta_inode_get(t, 12, &out), -ENOENT);
	assert_int_equal(meta_dentry_get(t, 1, "g", &ino), -ENOENT);
	assert_int_equal(meta_ino_alloc(t, &ino), 0);
	assert_int_equal(ino, 2);
	assert_int_equal(meta_txn_commit(t), 0);
	meta_inode_release(&in);
}

/* ---- chunks ---- */

static void test_chunks(void **state)
{
	struct fixture *f = *state;
	static const uint64_t set[] = {0, 3, 9, 64, 65, 1000};
	struct meta_txn *t = wtxn(f);
	uint8_t bm[128];

	for (size_t i = 0; i < ARRAY_SIZE(set); i++)
		assert_int_equal(meta_chunk_set(t, 7, set[i]), 0);
	assert_int_equal(meta_chunk_set(t, 7, 3), 0); /* twice is fine */
	assert_int_equal(meta_chunk_set(t, 6, 1), 0);
	assert_int_equal(meta_chunk_set(t, 8, 2), 0);
	assert_int_equal(meta_txn_commit(t), 0);

	t = rtxn(f);
	memset(bm, 0, sizeof(bm));
	assert_int_equal(meta_chunk_load(t, 7, bm, 1001), 0);
	assert_int_equal(bm[0], 0x09);	 /* 0, 3 */
	assert_int_equal(bm[1], 0x02);	 /* 9 */
	assert_int_equal(bm[8], 0x03);	 /* 64, 65 */
	assert_int_equal(bm[125], 0x01); /* 1000 */
	for (size_t i = 2; i < 8; i++)
		assert_int_equal(bm[i], 0);
	/* Bits beyond nchunks are not written. */
	memset(bm, 0, sizeof(bm));
	assert_int_equal(meta_chunk_load(t, 7, bm, 5), 0);
	assert_int_equal(bm[0], 0x09);
	assert_int_equal(bm[1], 0);
	memset(bm, 0, sizeof(bm));
	assert_int_equal(meta_chunk_load(t, 5, bm, 1000), 0);
	for (size_t i = 0; i < sizeof(bm); i++)
		assert_int_equal(bm[i], 0);
	meta_txn_abort(t);

	t = wtxn(f);
	assert_int_equal(meta_chunk_clear(t, 7, 9), 0);
	memset(bm, 0, sizeof(bm));
	assert_int_equal(meta_chunk_load(t, 7, bm, 1001), 0);
	assert_int_equal(bm[0], 0x09);
	assert_int_equal(bm[1], 0);
	assert_int_equal(bm[8], 0);
	assert_int_equal(bm[125], 0);
	assert_int_equal(meta_chunk_clear(t, 7, 0), 0);
	memset(bm, 0, sizeof(bm));
	assert_int_equal(meta_chunk_load(t, 7, bm, 1001), 0);
	assert_int_equal(bm[0], 0);
	assert_int_equal(meta_chunk_clear(t, 7, 0), 0); /* nothing: fine */
	/* Neighbours untouched. */
	memset(bm, 0, sizeof(bm));
	assert_int_equal(meta_chunk_load(t, 6, bm, 8), 0);
	assert_int_equal(bm[0], 0x02);
	memset(bm, 0, sizeof(bm));
	assert_int_equal(meta_chunk_load(t, 8, bm, 8), 0);
	assert_int_equal(bm[0], 0x04);
	assert_int_equal(meta_txn_commit(t), 0);
}

/* ---- xattrs ---- */

static int collect_xattr(void *arg, const char *name)
{
	struct names *c = arg;

	snprintf(c->name[c->n++], sizeof(c->name[0]), "%s", name);
	return 0;
}

static void test_xattrs(void **state)
{
	struct fixture *f = *state;
	static char val[64 * 1024];
	struct meta_txn *t = wtxn(f);
	struct names c = {0};
	char buf[16];
	size_t n;

	memset(val, 'v', sizeof(val));
	assert_int_equal(meta_xattr_put(t, 3, "user.b", "bee", 3), 0);
	assert_int_equal(meta_xattr_put(t, 3, "user.a", "", 0), 0);
	assert_int_equal(meta_xattr_put(t, 3, "user.max", val, sizeof(val)), 0);
	assert_int_equal(meta_xattr_put(t, 4, "user.a", "x", 1), 0);
	assert_int_equal(meta_xattr_put(t, 2, "user.z", "x", 1), 0);
	assert_int_equal(meta_txn_commit(t), 0);

	t = rtxn(f);
	assert_int_equal(meta_xattr_get(t, 3, "user.b", buf, sizeof(buf), &n),
			 0);
	assert_int_equal(n, 3);
	assert_memory_equal(buf, "bee", 3);
	assert_int_equal(meta_xattr_get(t, 3, "user.a", buf, sizeof(buf), &n),
			 0);
	assert_int_equal(n, 0);
	assert_int_equal(meta_xattr_get(t, 3, "user.max", NULL, 0, &n), 0);
	assert_int_equal(n, sizeof(val));
	assert_int_equal(meta_xattr_get(t, 3, "user.c", buf, sizeof(buf), &n),
			 -ENOENT);
	assert_int_equal(meta_xattr_foreach(t, 3, collect_xattr, &c), 0);
	assert_int_equal(c.n, 3);
	assert_string_equal(c.name[0], "user.a");
	assert_string_equal(c.name[1], "user.b");
	assert_string_equal(c.name[2], "user.max");
	meta_txn_abort(t);

	t = wtxn(f);
	assert_int_equal(meta_xattr_del(t, 3, "user.b"), 0);
	assert_int_equal(meta_xattr_del(t, 3, "user.b"), -ENOENT);
	assert_int_equal(meta_txn_error(t), 0);
	assert_int_equal(meta_xattr_clear(t, 3), 0);
	memset(&c, 0, sizeof(c));
	assert_int_equal(meta_xattr_foreach(t, 3, collect_xattr, &c), 0);
	assert_int_equal(c.n, 0);
	assert_int_equal(meta_xattr_foreach(t, 4, collect_xattr, &c), 0);
	assert_int_equal(meta_xattr_foreach(t, 2, collect_xattr, &c), 0);
	assert_int_equal(c.n, 2);
	assert_int_equal(meta_txn_commit(t), 0);

	t = wtxn(f);
	assert_int_equal(meta_xattr_put(t, 3, "user.big", val, sizeof(val) + 0),
			 0);
	assert_int_equal(meta_txn_commit(t), 0);
}

/* ---- dirty, lru ---- */

static int collect_ino(void *arg, uint64_t ino)
{
	uint64_t *v = arg;

	v[++v[0]] = ino;
	return 0;
}

static int del_dirty_cb(void *arg, uint64_t ino)
{
	struct meta_txn *t = arg;

	return meta_dirty_del(t, ino);
}

static void test_dirty(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t = wtxn(f);
	uint64_t seen[16] = {0};

	assert_int_equal(meta_dirty_add(t, 300), 0);
	assert_int_equal(meta_dirty_add(t, 2), 0);
	assert_int_equal(meta_dirty_add(t, 256), 0);
	assert_int_equal(meta_dirty_add(t, 2), 0);
	assert_int_equal(meta_dirty_del(t, 999), 0); /* absent: fine */
	assert_int_equal(meta_dirty_foreach(t, collect_ino, seen), 0);
	assert_int_equal(seen[0], 3);
	assert_int_equal(seen[1], 2);
	assert_int_equal(seen[2], 256);
	assert_int_equal(seen[3], 300);
	assert_int_equal(meta_dirty_del(t, 256), 0);
	memset(seen, 0, sizeof(seen));
	assert_int_equal(meta_dirty_foreach(t, collect_ino, seen), 0);
	assert_int_equal(seen[0], 2);
	/* A callback may change the table it walks. */
	assert_int_equal(meta_dirty_foreach(t, del_dirty_cb, t), 0);
	memset(seen, 0, sizeof(seen));
	assert_int_equal(meta_dirty_foreach(t, collect_ino, seen), 0);
	assert_int_equal(seen[0], 0);
	assert_int_equal(meta_txn_commit(t), 0);
}

/* ---- gone ---- */

static void test_gone(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t = wtxn(f), *r;
	char etag[80], small[4], longkey[1025];

	memset(longkey, 'k', sizeof(longkey) - 1); /* longer than LMDB keys */
	longkey[sizeof(longkey) - 1] = '\0';
	assert_int_equal(meta_gone_get(t, "a/b", etag, sizeof(etag)), -ENOENT);
	assert_int_equal(meta_gone_put(t, "a/b", "\"e1\""), 0);
	assert_int_equal(meta_gone_put(t, longkey, "\"e2-3\""), 0);
	assert_int_equal(meta_gone_get(t, "a/b", etag, sizeof(etag)), 0);
	assert_string_equal(etag, "\"e1\"");
	assert_int_equal(meta_gone_get(t, longkey, small, sizeof(small)), 0);
	assert_string_equal(small, "\"e2"); /* truncated, terminated */
	/* Newer knowledge replaces older; other keys are not found. */
	assert_int_equal(meta_gone_put(t, "a/b", "\"e9\""), 0);
	assert_int_equal(meta_gone_get(t, "a/b", etag, sizeof(etag)), 0);
	assert_string_equal(etag, "\"e9\"");
	assert_int_equal(meta_gone_get(t, "a/b/", etag, sizeof(etag)), -ENOENT);
	assert_int_equal(meta_gone_get(t, "", etag, sizeof(etag)), -ENOENT);
	assert_int_equal(meta_gone_del(t, "a/b"), 0);
	assert_int_equal(meta_gone_del(t, "a/b"), 0); /* absent: fine */
	assert_int_equal(meta_gone_get(t, "a/b", etag, sizeof(etag)), -ENOENT);
	assert_int_equal(meta_txn_error(t), 0);
	assert_int_equal(meta_txn_commit(t), 0);

	assert_int_equal(meta_txn_begin(f->db, false, &r), 0);
	assert_int_equal(meta_gone_get(r, longkey, etag, sizeof(etag)), 0);
	assert_string_equal(etag, "\"e2-3\"");
	assert_int_equal(meta_gone_del(r, longkey), -EBADF);
	meta_txn_abort(r);
}

struct lru_seen {
	int n;
	int64_t ns[16];
	uint64_t ino[16];
};

static int collect_lru(void *arg, int64_t ns, uint64_t ino)
{
	struct lru_seen *s = arg;

	s->ns[s->n] = ns;
	s->ino[s->n++] = ino;
	return 0;
}

static void test_lru(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t = wtxn(f);
	struct lru_seen s = {0};

	assert_int_equal(meta_lru_put(t, 1700000000000000000LL, 5), 0);
	assert_int_equal(meta_lru_put(t, -5, 6), 0);
	assert_int_equal(meta_lru_put(t, 0, 7), 0);
	assert_int_equal(meta_lru_put(t, 1700000000000000000LL, 4), 0);
	assert_int_equal(meta_lru_put(t, 1600000000000000000LL, 9), 0);
	assert_int_equal(meta_lru_put(t, INT64_MAX, 1), 0);
	assert_int_equal(meta_lru_put(t, INT64_MIN, 2), 0);
	assert_int_equal(meta_txn_commit(t), 0);

	t = rtxn(f);
	assert_int_equal(meta_lru_foreach(t, collect_lru, &s), 0);
	meta_txn_abort(t);
	assert_int_equal(s.n, 7);
	assert_int_equal(s.ns[0], INT64_MIN);
	assert_int_equal(s.ino[0], 2);
	assert_int_equal(s.ns[1], -5);
	assert_int_equal(s.ino[2], 7);
	assert_int_equal(s.ino[3], 9);
	assert_int_equal(s.ino[4], 4);
	assert_int_equal(s.ino[5], 5);
	assert_int_equal(s.ns[6], INT64_MAX);

	t = wtxn(f);
	assert_int_equal(meta_lru_del(t, 1700000000000000000LL, 4), 0);
	assert_int_equal(meta_lru_del(t, 1700000000000000000LL, 4), 0);
	assert_int_equal(meta_lru_del(t, -5, 6), 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(meta_lru_foreach(t, collect_lru, &s), 0);
	assert_int_equal(s.n, 5);
	assert_int_equal(s.ino[1], 7);
	assert_int_equal(s.ino[3], 5);
	assert_int_equal(meta_txn_commit(t), 0);
}

/* ---- tasks ---- */

static int collect_task(void *arg, const char *id, const char *json)
{
	struct names *c = arg;

	snprintf(c->name[c->n++], sizeof(c->name[0]), "%s=%s", id, json);
	return 0;
}

static void test_tasks(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t = wtxn(f);
	struct names c = {0};
	char *json = NULL;

	assert_int_equal(
		meta_task_put(t, "task-0000000000000000b", "{\"b\":1}"), 0);
	assert_int_equal(meta_task_put(t, "task-0000000000000000a", "{}"), 0);
	assert_int_equal(meta_txn_commit(t), 0);

	t = rtxn(f);
	assert_int_equal(meta_task_get(t, "task-0000000000000000b", &json), 0);
	assert_string_equal(json, "{\"b\":1}");
	free(json);
	assert_int_equal(meta_task_get(t, "task-0000000000000000c", &json),
			 -ENOENT);
	assert_null(json);
	assert_int_equal(meta_task_foreach(t, collect_task, &c), 0);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.name[0], "task-0000000000000000a={}");
	assert_string_equal(c.name[1], "task-0000000000000000b={\"b\":1}");
	meta_txn_abort(t);

	t = wtxn(f);
	assert_int_equal(meta_task_del(t, "task-0000000000000000a"), 0);
	assert_int_equal(meta_task_del(t, "task-0000000000000000a"), -ENOENT);
	memset(&c, 0, sizeof(c));
	assert_int_equal(meta_task_foreach(t, collect_task, &c), 0);
	assert_int_equal(c.n, 1);
	assert_int_equal(meta_txn_commit(t), 0);
}

/* ---- map full ---- */

static void test_map_full(void **state)
{
	struct fixture *f = *state;
	static char val[60 * 1024];
	struct meta_txn *t;
	char name[32], buf[4];
	int ret = 0, i;
	size_t n;

	meta_close(f->db);
	f->db = NULL;
	support_rm_tree(f->dir);
	assert_int_equal(mkdir(f->dir, 0700), 0);
	assert_int_equal(meta_open(f->dir, 512 * 1024, true, &f->db), 0);

	t = wtxn(f);
	assert_int_equal(meta_xattr_put(t, 1, "user.keep", "k", 1), 0);
	assert_int_equal(meta_txn_commit(t), 0);

	t = wtxn(f);
	for (i = 0; i < 100 && ret == 0; i++) {
		snprintf(name, sizeof(name), "user.%d", i);
		ret = meta_xattr_put(t, 2, name, val, sizeof(val));
	}
	assert_int_equal(ret, -ENOSPC);
	assert_int_equal(meta_txn_commit(t), -ENOSPC);

	/* Nothing of it landed, the old data is intact, small writes work. */
	t = wtxn(f);
	assert_int_equal(meta_xattr_get(t, 2, "user.0", NULL, 0, &n), -ENOENT);
	assert_int_equal(
		meta_xattr_get(t, 1, "user.keep", buf, sizeof(buf), &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(meta_xattr_put(t, 1, "user.more", "m", 1), 0);
	assert_int_equal(meta_txn_commit(t), 0);
}

/* ---- room for MDB_WRITEMAP commits ---- */

static void check_room(struct fixture *f)
{
	struct meta_space sp;
	struct stat st;
	char path[96];

	meta_space_info(f->db, &sp);
	assert_true(sp.used_bytes > 0);
	if (!sp.writemap)
		return;
	assert_true(sp.allocated_bytes > sp.used_bytes);
	snprintf(path, sizeof(path), "%s/meta/data.mdb", f->dir);
	assert_int_equal(stat(path, &st), 0);
	/* The allocation is real: blocks on disk, not a hole. */
	assert_true((uint64_t)st.st_blocks * 512 >= sp.allocated_bytes);
}

/* The store grows by hundreds of overflow pages per transaction; what its
 * commits store into stays allocated ahead. */
static void test_writemap_room_grows(void **state)
{
	struct fixture *f = *state;
	static char val[60 * 1024];
	struct meta_space sp0, sp;
	struct meta_txn *t;
	char name[32];
	size_t n;

	meta_space_info(f->db, &sp0);
	if (!sp0.writemap)
		skip(); /* /tmp not on ext4, XFS or tmpfs; or a TSan build */
	check_room(f);
	for (int r = 0; r < 12; r++) {
		t = wtxn(f);
		for (int i = 0; i < 200; i++) {
			memset(val, 'a' + (r + i) % 26, sizeof(val));
			snprintf(name, sizeof(name), "user.%d", i);
			assert_int_equal(meta_xattr_put(t, 10 + (uint64_t)r,
							name, val, sizeof(val)),
					 0);
		}
		/* Freed pages come back through the free list. */
		if (r % 3 == 2)
			assert_int_equal(
				meta_xattr_clear(t, 10 + (uint64_t)r - 1), 0);
		assert_int_equal(meta_txn_commit(t), 0);
		check_room(f);
	}
	meta_space_info(f->db, &sp);
	assert_true(sp.used_bytes > sp0.used_bytes + 100 * 1024 * 1024);
	assert_true(sp.allocated_bytes > sp0.allocated_bytes);
	t = rtxn(f);
	assert_int_equal(
		meta_xattr_get(t, 21, "user.199", val, sizeof(val), &n), 0);
	assert_int_equal(n, sizeof(val));
	assert_int_equal(val[0], 'a' + (11 + 199) % 26);
	meta_txn_abort(t);
}

/* On a full file system (a 12 MiB tmpfs) changes fail with ENOSPC before
 * anything is stored into a page the file system could not give (that
 * would be SIGBUS), what was committed stays readable, and once space is
 * freed (another file on it removed) changes work again. */
static void test_writemap_full_fs(void **state)
{
	struct fixture *f = *state;
	static char val[8 * 1024];
	struct meta_space sp;
	struct meta_txn *t;
	char name[32], other[128];
	int ret = 0, committed = 0, fd;
	size_t n;

	meta_close(f->db);
	f->db = NULL;
	support_rm_tree(f->dir);
	assert_int_equal(mkdir(f->dir, 0700), 0);
	if (mount("tmpfs", f->dir, "tmpfs", 0, "size=12m") < 0)
		fail_msg("mount a tmpfs on %s: %s (the suites run as root)",
			 f->dir, strerror(errno));
	/* Something else takes 4 MiB of the file system. */
	snprintf(other, sizeof(other), "%s/other", f->dir);
	fd = open(other, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(posix_fallocate(fd, 0, 4 << 20), 0);
	close(fd);
	assert_int_equal(meta_open(f->dir, 0, true, &f->db), 0);
	meta_space_info(f->db, &sp);
#ifdef __SANITIZE_THREAD__
	assert_false(sp.writemap); /* meta_space_fs_ok() */
	skip();
#endif
	assert_true(sp.writemap);

	/* One value per transaction: the last one failed at the state that
	 * stays committed. */
	while (ret == 0 && committed < 5000) {
		t = wtxn(f);
		memset(val, 'a' + committed % 26, sizeof(val));
		snprintf(name, sizeof(name), "user.%d", committed);
		ret = meta_xattr_put(t, 5, name, val, sizeof(val));
		if (ret == 0)
			ret = meta_txn_commit(t);
		else
			meta_txn_abort(t);
		if (ret == 0)
			committed++;
	}
	assert_int_equal(ret, -ENOSPC);
	assert_true(committed > 100);
	check_room(f);

	/* Everything committed is there and intact. */
	t = rtxn(f);
	for (int c = 0; c < committed; c++) {
		snprintf(name, sizeof(name), "user.%d", c);
		assert_int_equal(
			meta_xattr_get(t, 5, name, val, sizeof(val), &n), 0);
		assert_int_equal(n, sizeof(val));
		assert_int_equal(val[sizeof(val) - 1], 'a' + c % 26);
	}
	meta_txn_abort(t);

	/* Other changes fail; one that frees space (removes files) still
	 * commits, in the room kept back for it. */
	t = wtxn(f);
	assert_int_equal(meta_xattr_put(t, 6, "user.x", val, sizeof(val)),
			 -ENOSPC);
	meta_txn_abort(t);
	t = wtxn(f);
	meta_txn_frees_space(t);
	snprintf(name, sizeof(name), "user.%d", committed - 1);
	assert_int_equal(meta_xattr_del(t, 5, name), 0);
	assert_int_equal(meta_inode_put(t, &(struct meta_inode){.ino = 7,
								.mode = 0100644,
								.nlink = 1}),
			 0);
	assert_int_equal(meta_txn_commit(t), 0);
	check_room(f);

	/* Space freed on the file system: changes work again, and the
	 * store reopens. */
	assert_int_equal(unlink(other), 0);
	t = wtxn(f);
	assert_int_equal(meta_xattr_put(t, 6, "user.after", "x", 1), 0);
	assert_int_equal(meta_txn_commit(t), 0);
	meta_close(f->db);
	f->db = NULL;
	assert_int_equal(meta_open(f->dir, 0, true, &f->db), 0);
	t = rtxn(f);
	assert_int_equal(
		meta_xattr_get(t, 6, "user.after", val, sizeof(val), &n), 0);
	snprintf(name, sizeof(name), "user.%d", committed - 2);
	assert_int_equal(meta_xattr_get(t, 5, name, val, sizeof(val), &n), 0);
	meta_txn_abort(t);
}

/* ---- concurrency ---- */

#define CONC_ROUNDS 300

struct conc {
	struct meta_db *db;
	int stop;
	int reads;
};

static void *reader_main(void *arg)
{
	struct conc *c = arg;
	uint64_t last = 0;

	while (!__atomic_load_n(&c->stop, __ATOMIC_RELAXED)) {
		struct meta_inode a, b;
		struct meta_txn *t;
		int ret;

		ret = meta_txn_begin(c->db, false, &t);
		if (ret)
			return (void *)(intptr_t)ret;
		if (meta_inode_get(t, 10, &a) || meta_inode_get(t, 11, &b)) {
			meta_txn_abort(t);
			return (void *)(intptr_t)-EIO;
		}
		meta_txn_abort(t);
		/* One snapshot: both updated by the same commit. */
		if (a.generation != b.generation || a.generation < last ||
		    strcmp(a.s3_key, b.s3_key) != 0) {
			meta_inode_release(&a);
			meta_inode_release(&b);
			return (void *)(intptr_t)-EPROTO;
		}
		last = a.generation;
		meta_inode_release(&a);
		meta_inode_release(&b);
		__atomic_add_fetch(&c->reads, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void test_concurrent_readers(void **state)
{
	struct fixture *f = *state;
	struct conc c = {.db = f->db};
	struct meta_inode in;
	pthread_t th[6];
	char key[32];

	/*
	 * Keep committing until the readers have overlapped with the writer
	 * for a while: on a loaded machine all rounds can finish before a
	 * reader thread runs at all.
	 */
	for (uint64_t gen = 0;
	     gen <= CONC_ROUNDS ||
	     (__atomic_load_n(&c.reads, __ATOMIC_RELAXED) < CONC_ROUNDS &&
	      gen <= 1000 * CONC_ROUNDS);
	     gen++) {
		struct meta_txn *t = wtxn(f);

		snprintf(key, sizeof(key), "key-%llu", (unsigned long long)gen);
		fill_inode(&in, 10, key);
		in.generation = gen;
		meta_inode_put(t, &in);
		in.ino = 11;
		meta_inode_put(t, &in);
		meta_inode_release(&in);
		assert_int_equal(meta_txn_commit(t), 0);
		if (gen == 0)
			for (size_t i = 0; i < ARRAY_SIZE(th); i++)
				assert_int_equal(pthread_create(&th[i], NULL,
								reader_main,
								&c),
						 0);
	}
	__atomic_store_n(&c.stop, 1, __ATOMIC_RELAXED);
	for (size_t i = 0; i < ARRAY_SIZE(th); i++) {
		void *res;

		assert_int_equal(pthread_join(th[i], &res), 0);
		assert_int_equal((intptr_t)res, 0);
	}
	assert_true(c.reads >= CONC_ROUNDS);
}

/* A read transaction begun in one thread, used and ended in another. */
static void *use_txn_main(void *arg)
{
	struct meta_txn *t = arg;
	uint64_t v = 0;
	int ret;

	ret = meta_super_get_u64(t, "format", &v);
	meta_txn_abort(t);
	return (void *)(intptr_t)(ret ? ret : (int)v);
}

static void test_txn_handoff(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t = rtxn(f);
	pthread_t th;
	void *res;

	assert_int_equal(pthread_create(&th, NULL, use_txn_main, t), 0);
	assert_int_equal(pthread_join(th, &res), 0);
	assert_int_equal((intptr_t)res, 3); /* the format */
}

/* A process killed (kill -9) with a read transaction open: the next
 * meta_open works (LMDB resets the reader table when no other process has
 * the environment open; mdb_reader_check covers the case where one has). */
static void test_stale_reader(void **state)
{
	struct fixture *f = *state;
	struct meta_txn *t;
	int status;
	pid_t pid;

	meta_close(f->db);
	f->db = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct meta_db *db;
		struct meta_txn *rt;

		if (meta_open(f->dir, 0, true, &db) ||
		    meta_txn_begin(db, false, &rt))
			_exit(1);
		raise(SIGKILL);
		_exit(2);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(meta_open(f->dir, 0, true, &f->db), 0);
	t = wtxn(f);
	assert_int_equal(meta_super_put_u64(t, "x", 1), 0);
	assert_int_equal(meta_txn_commit(t), 0);
}

static void test_state_names(void **state)
{
	(void)state;
	assert_string_equal(meta_state_name(META_NEW), "new");
	assert_string_equal(meta_state_name(META_DIRTY), "dirty");
	assert_string_equal(meta_state_name(META_ARCHIVED), "archived");
	assert_string_equal(meta_state_name(META_RELEASED), "released");
	assert_string_equal(meta_state_name(META_LOST), "lost");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

/* KiB of data.mdb mapped into this process (its Rss in /proc/self/smaps). */
static long store_rss_kib(const char *dir)
{
	char line[512], want[128];
	bool in = false;
	long kib = -1;
	FILE *m = fopen("/proc/self/smaps", "re");

	assert_non_null(m);
	snprintf(want, sizeof(want), "%s/meta/data.mdb", dir);
	while (fgets(line, sizeof(line), m)) {
		if (strstr(line, want))
			in = true;
		else if (in && strncmp(line, "Rss:", 4) == 0) {
			kib = strtol(line + 4, NULL, 10);
			break;
		}
	}
	fclose(m);
	return kib;
}

static void fill_val(char *v, size_t len, int i)
{
	for (size_t k = 0; k < len; k++)
		v[k] = (char)(i * 31 + (int)(k % 251));
}

/* Every value test_map_trim wrote reads back. */
static void check_trim_values(struct fixture *f)
{
	static char val[64 * 1024], got[64 * 1024];
	struct meta_txn *t = rtxn(f);
	size_t n;

	for (int i = 0; i < 48 * 8; i++) {
		fill_val(val, sizeof(val), i);
		assert_int_equal(meta_xattr_get(t, (uint64_t)i, "user.v", got,
						sizeof(got), &n),
				 0);
		assert_int_equal(n, sizeof(got));
		assert_memory_equal(got, val, sizeof(val));
	}
	meta_txn_abort(t);
}

/* The store's pages are unmapped after 256 write transactions and after a
 * transaction trim_every_ns after the last time; unsynced changes (with
 * MDB_WRITEMAP: dirty pages of the map) survive it, in this process and
 * after a reopen. */
static void test_map_trim(void **state)
{
	struct fixture *f = *state;
	static char val[64 * 1024];
	struct meta_txn *t;

	meta_set_trim_interval(f->db, INT64_MAX / 2);
	for (int i = 0; i < 48; i++) { /* 48 x 8 x 64 KiB = 24 MiB */
		t = wtxn(f);
		for (int j = 0; j < 8; j++) {
			fill_val(val, sizeof(val), i * 8 + j);
			assert_int_equal(
				meta_xattr_put(t, (uint64_t)(i * 8 + j),
					       "user.v", val, sizeof(val)),
				0);
		}
		assert_int_equal(meta_txn_commit(t), 0);
	}
	/* Mapped: written through the map (MDB_WRITEMAP) and read back. */
	check_trim_values(f);
	assert_true(store_rss_kib(f->dir) >= 16 * 1024);

	/* By time: the next transaction, a read, lets go of the map. */
	meta_set_trim_interval(f->db, 0);
	meta_txn_abort(rtxn(f));
	assert_true(store_rss_kib(f->dir) < 1024);
	meta_set_trim_interval(f->db, INT64_MAX / 2);

	/* Every value reads back (faulted in again, unsynced pages kept). */
	check_trim_values(f);
	assert_true(store_rss_kib(f->dir) >= 16 * 1024);

	/* By count: 256 small write transactions let go of it too. */
	for (int i = 0; i < 256; i++) {
		t = wtxn(f);
		assert_int_equal(meta_super_put_u64(t, "trim", (uint64_t)i), 0);
		assert_int_equal(meta_txn_commit(t), 0);
	}
	assert_true(store_rss_kib(f->dir) < 1024);

	/* And after a reopen (closed cleanly) everything is there. */
	meta_close(f->db);
	assert_int_equal(meta_open(f->dir, 0, true, &f->db), 0);
	check_trim_values(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_reopen_persists),
		T(test_unknown_format_refused),
		T(test_format_upgrade),
		cmocka_unit_test(test_open_bad_dir),
		T(test_super),
		T(test_inodes),
		T(test_inode_record_extremes),
		T(test_inode_record_versions),
		T(test_inode_record_damaged),
		T(test_map_trim),
		T(test_foreach_stop),
		T(test_dentries),
		T(test_dentry_exists_sticks),
		T(test_long_names),
		T(test_sticky_error),
		T(test_abort_discards),
		T(test_chunks),
		T(test_xattrs),
		T(test_dirty),
		T(test_gone),
		T(test_lru),
		T(test_tasks),
		T(test_map_full),
		T(test_writemap_room_grows),
		T(test_writemap_full_fs),
		T(test_concurrent_readers),
		T(test_txn_handoff),
		T(test_stale_reader),
		cmocka_unit_test(test_state_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

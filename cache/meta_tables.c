// SPDX-License-Identifier: MIT
/*
 * meta — the per-table accessors of the LMDB metadata store: directory
 * entries, chunk presence, xattrs, the dirty and LRU indexes and tasks, with
 * the walks over them. The environment, transactions, the super table and
 * the inode records are in meta.c, whose DESIGN comment gives the key
 * layout of every table and the error rules; the shared helpers are in
 * meta_i.h.
 */
#include "cache/meta_i.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "s3/s3.h"

/* ---- dentries ---- */

int meta_dentry_get(struct meta_txn *txn, uint64_t parent, const char *name,
		    uint64_t *ino)
{
	uint8_t kb[META_KEY_MAX];
	MDB_val k, v;
	int ret;

	if (txn->err)
		return txn->err;
	ret = key_name(kb, parent, name, &k);
	if (ret)
		return ret; /* an answer: no such name can exist */
	ret = raw_get(txn, T_DENTRIES, &k, &v);
	if (ret)
		return stick_lookup(txn, ret);
	if (v.mv_size != 8)
		return stick(txn, -EPROTO);
	*ino = get_le64(v.mv_data);
	return 0;
}

int meta_dentry_put(struct meta_txn *txn, uint64_t parent, const char *name,
		    uint64_t ino, bool replace)
{
	uint8_t kb[META_KEY_MAX], vb[8];
	MDB_val k, v = {.mv_size = 8, .mv_data = vb};
	int ret;

	ret = need_write(txn);
	if (ret)
		return ret;
	ret = key_name(kb, parent, name, &k);
	if (ret)
		return stick(txn, ret);
	put_le64(vb, ino);
	return stick(txn, raw_put(txn, T_DENTRIES, &k, &v,
				  replace ? 0 : MDB_NOOVERWRITE));
}

/* Delete (id, name) from a table keyed that way (dentries, xattrs); a name
 * too long to be stored is simply absent. */
static int name_del(struct meta_txn *txn, int table, uint64_t id,
		    const char *name)
{
	uint8_t kb[META_KEY_MAX];
	MDB_val k;
	int ret;

	ret = need_write(txn);
	if (ret)
		return ret;
	ret = key_name(kb, id, name, &k);
	if (ret)
		return ret == -ENAMETOOLONG ? -ENOENT : stick(txn, ret);
	return stick_lookup(txn, raw_del(txn, table, &k));
}

int meta_dentry_del(struct meta_txn *txn, uint64_t parent, const char *name)
{
	return name_del(txn, T_DENTRIES, parent, name);
}

struct dentry_walk {
	meta_dentry_cb cb;
	void *arg;
	struct meta_txn *txn;
};

/* The name of an (id, name) key, NUL-terminated; -EPROTO when too long. */
static int key_name_of(const MDB_val *k, char name[META_NAME_MAX + 1])
{
	size_t n = k->mv_size - 8;

	if (k->mv_size < 8 || n > META_NAME_MAX)
		return -EPROTO;
	memcpy(name, (const uint8_t *)k->mv_data + 8, n);
	name[n] = '\0';
	return 0;
}

static int dentry_walk_fn(void *ctx, const MDB_val *k, const MDB_val *v)
{
	struct dentry_walk *w = ctx;
	char name[META_NAME_MAX + 1];

	if (v->mv_size != 8 || key_name_of(k, name))
		return stick(w->txn, -EPROTO);
	return w->cb(w->arg, name, get_le64(v->mv_data));
}

int meta_dentry_foreach(struct meta_txn *txn, uint64_t parent,
			const char *after, meta_dentry_cb cb, void *arg)
{
	struct dentry_walk w = {.cb = cb, .arg = arg, .txn = txn};
	uint8_t pb[8], kb[META_KEY_MAX];
	MDB_val k;
	int ret;

	if (txn->err)
		return txn->err;
	put_be64(pb, parent);
	if (!after || !*after)
		return meta_walk(txn, T_DENTRIES, pb, 8, NULL, 0, false,
				 dentry_walk_fn, &w);
	ret = key_name(kb, parent, after, &k);
	if (ret == -ENAMETOOLONG) { /* sorts like its first 255 bytes */
		memcpy(kb, pb, 8);
		memcpy(kb + 8, after, META_NAME_MAX);
		k = (MDB_val){.mv_size = META_KEY_MAX - 8, .mv_data = kb};
		ret = 0;
	}
	if (ret)
		return stick(txn, ret);
	return meta_walk(txn, T_DENTRIES, pb, 8, k.mv_data, k.mv_size, true,
			 dentry_walk_fn, &w);
}

static int stop_walk_fn(void *ctx, const MDB_val *k, const MDB_val *v)
{
	(void)ctx;
	(void)k;
	(void)v;
	return 1;
}

int meta_dir_is_empty(struct meta_txn *txn, uint64_t parent)
{
	uint8_t pb[8];
	int ret;

	if (txn->err)
		return txn->err;
	put_be64(pb, parent);
	ret = meta_walk(txn, T_DENTRIES, pb, 8, NULL, 0, false, stop_walk_fn,
			NULL);
	if (ret < 0)
		return ret;
	return ret == 1 ? 0 : 1;
}

/* ---- chunks ---- */

int meta_chunk_set(struct meta_txn *txn, uint64_t ino, uint64_t idx)
{
	uint8_t kb[16];
	MDB_val k = key_u64_u64(kb, ino, idx), v = empty_val();
	int ret;

	ret = need_write(txn);
	if (ret)
		return ret;
	return stick(txn, raw_put(txn, T_CHUNKS, &k, &v, 0));
}

int meta_chunk_unset(struct meta_txn *txn, uint64_t ino, uint64_t idx)
{
	uint8_t kb[16];
	MDB_val k = key_u64_u64(kb, ino, idx);
	int ret;

	ret = need_write(txn);
	if (ret)
		return ret;
	ret = stick_lookup(txn, raw_del(txn, T_CHUNKS, &k));
	return ret == -ENOENT ? 0 : ret;
}

struct chunk_walk {
	uint8_t *bitmap;
	uint64_t nchunks;
};

static int chunk_walk_fn(void *ctx, const MDB_val *k, const MDB_val *v)
{
	struct chunk_walk *w = ctx;
	uint64_t idx;

	(void)v;
	if (k->mv_size != 16)
		return 0;
	idx = get_be64((const uint8_t *)k->mv_data + 8);
	if (idx >= w->nchunks)
		return 1; /* keys are in index order: nothing more to set */
	w->bitmap[idx / 8] |= (uint8_t)(1u << (idx % 8));
	return 0;
}

/* Bit idx is bitmap[idx / 8] & (1 << idx % 8). */
int meta_chunk_load(struct meta_txn *txn, uint64_t ino, uint8_t *bitmap,
		    uint64_t nchunks)
{
	struct chunk_walk w = {.bitmap = bitmap, .nchunks = nchunks};
	uint8_t pb[8];
	int ret;

	if (txn->err)
		return txn->err;
	if (!nchunks)
		return 0;
	put_be64(pb, ino);
	ret = meta_walk(txn, T_CHUNKS, pb, 8, NULL, 0, false, chunk_walk_fn,
			&w);
	return ret < 0 ? ret : 0;
}

/*
 * Delete every key of table t that starts with prefix and is >= start, by
 * re-seeking after each delete (mdb_cursor_del leaves cursors in a state
 * better not relied on).
 */
static int del_range(struct meta_txn *txn, enum meta_table t,
		     const uint8_t *prefix, size_t plen, const uint8_t *start,
		     size_t slen)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	rc = mdb_cursor_open(txn->txn, txn->db->dbi[t], &cur);
	if (rc)
		return stick(txn, meta_lmdb_err(rc, "cursor"));
	for (;;) {
		k = (MDB_val){.mv_size = slen, .mv_data = (void *)start};
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc)
			break;
		if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
			break;
		if (meta_space_room(txn, 0)) {
			mdb_cursor_close(cur);
			return txn->err;
		}
		rc = mdb_cursor_del(cur, 0);
		if (rc)
			break;
	}
	mdb_cursor_close(cur);
	if (rc && rc != MDB_NOTFOUND)
		return stick(txn, meta_lmdb_err(rc, "delete range"));
	return 0;
}

int meta_chunk_clear(struct meta_txn *txn, uint64_t ino, uint64_t from)
{
	uint8_t kb[16];
	int ret;

	ret = need_write(txn);
	if (ret)
		return ret;
	key_u64_u64(kb, ino, from);
	return del_range(txn, T_CHUNKS, kb, 8, kb, 16);
}

/* ---- xattrs ---- */

int meta_xattr_get(struct meta_txn *txn, uint64_t ino, const char *name,
		   void *buf, size_t len, size_t *outlen)
{
	uint8_t kb[META_KEY_MAX];
	MDB_val k, v;
	int ret;

	if (txn->err)
		return txn->err;
	ret = key_name(kb, ino, name, &k);
	if (ret)
		return ret == -ENAMETOOLONG ? ret : stick(txn, ret);
	ret = raw_get(txn, T_XATTRS, &k, &v);
	if (ret)
		return stick_lookup(txn, ret);
	copy_out(&v, buf, len, outlen);
	return 0;
}

int meta_xattr_put(struct meta_txn *txn, uint64_t ino, const char *name,
		   const void *val, size_t len)
{
	uint8_t kb[META_KEY_MAX];
	MDB_val k, v = {.mv_size = len, .mv_data = (void *)val};
	int ret;

	ret = need_write(txn);
	if (ret)
		return ret;
	ret = key_name(kb, ino, name, &k);
	if (ret)
		return stick(txn, ret);
	if (len > META_XATTR_VAL_MAX)
		return stick(txn, -E2BIG);
	if (!val && len)
		return stick(txn, -EINVAL);
	if (!len)
		v = empty_val();
	return stick(txn, raw_put(txn, T_XATTRS, &k, &v, 0));
}

int meta_xattr_del(struct meta_txn *txn, uint64_t ino, const char *name)
{
	return name_del(txn, T_XATTRS, ino, name);
}

struct name_walk {
	meta_xattr_cb cb;
	void *arg;
	struct meta_txn *txn;
};

static int xattr_walk_fn(void *ctx, const MDB_val *k, const MDB_val *v)
{
	struct name_walk *w = ctx;
	char name[META_NAME_MAX + 1];

	(void)v;
	if (key_name_of(k, name))
		return stick(w->txn, -EPROTO);
	return w->cb(w->arg, name);
}

int meta_xattr_foreach(struct meta_txn *txn, uint64_t ino, meta_xattr_cb cb,
		       void *arg)
{
	struct name_walk w = {.cb = cb, .arg = arg, .txn = txn};
	uint8_t pb[8];

	if (txn->err)
		return txn->err;
	put_be64(pb, ino);
	return meta_walk(txn, T_XATTRS, pb, 8, NULL, 0, false, xattr_walk_fn,
			 &w);
}

int meta_xattr_clear(struct meta_txn *txn, uint64_t ino)
{
	uint8_t pb[8];
	int ret;

	ret = need_write(txn);
	if (ret)
		return ret;
	put_be64(pb, ino);
	return del_range(txn, T_XATTRS, pb, 8, pb, 8);
}

/* ---- dirty and lru ---- */

int meta_dirty_add(struct meta_txn *txn, uint64_t ino)
{
	uint8_t kb[8];
	MDB_val k = key_u64(kb, ino), v = empty_val(), old;
	int ret;

	ret = need_write(txn);
	if (ret)
		return ret;
	/* Most changes hit an inode that is dirty already: a put would
	 * still copy the table's pages for nothing. */
	ret = raw_get(txn, T_DIRTY, &k, &old);
	if (ret != -ENOENT)
		return stick(txn, ret);
	return stick(txn, raw_put(txn, T_DIRTY, &k, &v, 0));
}

/* Absent is fine. */
int meta_dirty_del(struct meta_txn *txn, uint64_t ino)
{
	uint8_t kb[8];
	MDB_val k = key_u64(kb, ino);
	int ret;

	ret = need_write(txn);
	if (ret)
		return ret;
	ret = raw_del(txn, T_DIRTY, &k);
	return ret == -ENOENT ? 0 : stick(txn, ret);
}

struct ino_walk {
	meta_ino_cb cb;
	meta_lru_cb lru_cb;
	void *arg;
};

static int dirty_walk_fn(void *ctx, const MDB_val *k, const MDB_val *v)
{
	struct ino_walk *w = ctx;

	(void)v;
	if (k->mv_size != 8)
		return 0;
	return w->cb(w->arg, get_be64(k->mv_data));
}

int meta_dirty_foreach(struct meta_txn *txn, meta_ino_cb cb, void *arg)
{
	struct ino_walk w = {.cb = cb, .arg = arg};

	if (txn->err)
		return txn->err;
	return meta_walk(txn, T_DIRTY, NULL, 0, NULL, 0, false, dirty_walk_fn,
			 &w);
}

int meta_lru_put(struct meta_txn *txn, int64_t access_ns, uint64_t ino)
{
	uint8_t kb[16];
	MDB_val k = key_u64_u64(kb, bias_i64(access_ns), ino), v = empty_val();
	int ret;

	ret = need_write(txn);
	if (ret)
		return ret;
	return stick(txn, raw_put(txn, T_LRU, &k, &v, 0));
}

/* Absent is fine. */
int meta_lru_del(struct meta_txn *txn, int64_t access_ns, uint64_t ino)
{
	uint8_t kb[16];
	MDB_val k = key_u64_u64(kb, bias_i64(access_ns), ino);
	int ret;

	ret = need_write(txn);
	if (ret)
		return ret;
	ret = raw_del(txn, T_LRU, &k);
	return ret == -ENOENT ? 0 : stick(txn, ret);
}

static int lru_walk_fn(void *ctx, const MDB_val *k, const MDB_val *v)
{
	struct ino_walk *w = ctx;
	const uint8_t *p = k->mv_data;

	(void)v;
	if (k->mv_size != 16)
		return 0;
	return w->lru_cb(w->arg, unbias_i64(get_be64(p)), get_be64(p + 8));
}

int meta_lru_foreach(struct meta_txn *txn, meta_lru_cb cb, void *arg)
{
	struct ino_walk w = {.lru_cb = cb, .arg = arg};

	if (txn->err)
		return txn->err;
	return meta_walk(txn, T_LRU, NULL, 0, NULL, 0, false, lru_walk_fn, &w);
}

/* ---- tasks ---- */

/* *json is malloc'ed and NUL-terminated; the caller frees it. */
int meta_task_get(struct meta_txn *txn, const char *id, char **json)
{
	MDB_val k, v;
	int ret;

	*json = NULL;
	if (txn->err)
		return txn->err;
	ret = key_str(id, &k);
	if (ret)
		return ret == -ENAMETOOLONG ? -ENOENT : stick(txn, ret);
	ret = raw_get(txn, T_TASKS, &k, &v);
	if (ret)
		return stick_lookup(txn, ret);
	*json = strndup(v.mv_data, v.mv_size);
	if (!*json)
		return -ENOMEM;
	return 0;
}

int meta_task_put(struct meta_txn *txn, const char *id, const char *json)
{
	MDB_val k, v;
	int ret;

	ret = need_write(txn);
	if (ret)
		return ret;
	ret = key_str(id, &k);
	if (ret)
		return stick(txn, ret);
	if (!json || !*json)
		return stick(txn, -EINVAL);
	v = (MDB_val){.mv_size = strlen(json), .mv_data = (void *)json};
	return stick(txn, raw_put(txn, T_TASKS, &k, &v, 0));
}

int meta_task_del(struct meta_txn *txn, const char *id)
{
	MDB_val k;
	int ret;

	ret = need_write(txn);
	if (ret)
		return ret;
	ret = key_str(id, &k);
	if (ret)
		return ret == -ENAMETOOLONG ? -ENOENT : stick(txn, ret);
	return stick_lookup(txn, raw_del(txn, T_TASKS, &k));
}

struct task_walk {
	meta_task_cb cb;
	void *arg;
};

static int task_walk_fn(void *ctx, const MDB_val *k, const MDB_val *v)
{
	struct task_walk *w = ctx;
	char *id, *json;
	int ret;

	id = strndup(k->mv_data, k->mv_size);
	json = strndup(v->mv_data, v->mv_size);
	if (!id || !json) {
		free(id);
		free(json);
		return -ENOMEM;
	}
	ret = w->cb(w->arg, id, json);
	free(id);
	free(json);
	return ret;
}

int meta_task_foreach(struct meta_txn *txn, meta_task_cb cb, void *arg)
{
	struct task_walk w = {.cb = cb, .arg = arg};

	if (txn->err)
		return txn->err;
	return meta_walk(txn, T_TASKS, NULL, 0, NULL, 0, false, task_walk_fn,
			 &w);
}

/* ---- gone ---- */

static MDB_val gone_key(const char *key, char hex[65])
{
	s3_sha256_hex(key, strlen(key), hex);
	return (MDB_val){.mv_size = 64, .mv_data = hex};
}

int meta_gone_put(struct meta_txn *txn, const char *key, const char *etag)
{
	size_t el = strlen(etag), kl = strlen(key);
	char hex[65], *buf;
	MDB_val k = gone_key(key, hex), v;
	int ret;

	ret = need_write(txn);
	if (ret)
		return ret;
	buf = malloc(el + 1 + kl);
	if (!buf)
		return stick(txn, -ENOMEM);
	memcpy(buf, etag, el + 1);
	memcpy(buf + el + 1, key, kl);
	v = (MDB_val){.mv_size = el + 1 + kl, .mv_data = buf};
	ret = raw_put(txn, T_GONE, &k, &v, 0);
	free(buf);
	return stick(txn, ret);
}

int meta_gone_get(struct meta_txn *txn, const char *key, char *etag, size_t len)
{
	char hex[65];
	MDB_val k = gone_key(key, hex), v;
	const char *p, *nul;
	size_t kl = strlen(key);
	int ret;

	if (txn->err)
		return txn->err;
	ret = raw_get(txn, T_GONE, &k, &v);
	if (ret)
		return stick_lookup(txn, ret);
	p = v.mv_data;
	nul = memchr(p, '\0', v.mv_size);
	if (!nul || v.mv_size - (size_t)(nul + 1 - p) != kl ||
	    memcmp(nul + 1, key, kl) != 0)
		return -ENOENT; /* another key with the same hash */
	if (len)
		snprintf(etag, len, "%s", p);
	return 0;
}

int meta_gone_del(struct meta_txn *txn, const char *key)
{
	char hex[65], etag[1];
	MDB_val k = gone_key(key, hex);
	int ret;

	ret = need_write(txn);
	if (ret)
		return ret;
	/* Only this key's record, not another's with the same hash. */
	ret = meta_gone_get(txn, key, etag, 0);
	if (ret)
		return ret == -ENOENT ? 0 : ret;
	ret = raw_del(txn, T_GONE, &k);
	return ret == -ENOENT ? 0 : stick(txn, ret);
}

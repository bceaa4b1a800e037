// SPDX-License-Identifier: MIT
/*
 * meta — the LMDB metadata store (see meta.h for the contract).
 *
 * One environment in DIR/meta with nine named databases. Keys are built so
 * that LMDB's default memcmp order is the order callers want:
 *
 *   inodes    ino (BE u64)                  -> inode record (below)
 *   dentries  parent (BE u64) + name bytes  -> child ino (LE u64)
 *   chunks    ino (BE u64) + index (BE u64) -> ()
 *   lru       access ns (BE u64, sign bit flipped) + ino (BE u64) -> ()
 *   dirty     ino (BE u64)                  -> ()
 *   xattrs    ino (BE u64) + name bytes     -> value bytes
 *   tasks     task id bytes                 -> JSON text (no NUL)
 *   super     name bytes                    -> value (u64 as LE u64)
 *   gone      hex SHA-256 of an S3 key      -> ETag, NUL, the key
 *
 * The inode record is a versioned little-endian serialisation, never the C
 * struct (which holds a pointer): see inode_encode().
 *
 * Errors: MDB_* codes become -errno once, in meta_lmdb_err(). The first
 * error of a transaction sticks (txn->err): every later call returns it
 * untouched and meta_txn_commit() aborts. Answers do not stick: -ENOENT from
 * a lookup or from deleting an absent key, -ERANGE for a caller's buffer
 * that is too small, -ENAMETOOLONG from a lookup of an over-long name.
 * Deleting an absent dirty/lru entry, or clearing chunks/xattrs that are not
 * there, is not an error (those are index maintenance and meant to be
 * idempotent).
 *
 * Iteration (the *_foreach calls) re-seeks by a copy of the current key
 * after each callback, so a callback may modify the table it is walking in
 * the same write transaction.
 *
 * Files: meta.c (this one) holds the environment, transactions, the error
 * translation, the generic walk, the super table, and the inodes with their
 * record codec; meta_tables.c the accessors and walks of the other tables
 * (dentries, chunks, xattrs, dirty, lru, tasks, gone); meta_space.c the
 * room MDB_WRITEMAP commits need on disk; meta_i.h what they share
 * (struct meta_db and meta_txn, the table enum, byte order and key builders,
 * raw get/put/del, the sticky-error helpers).
 */
#include "cache/meta_i.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include "common/common.h"

/* Format 2: inodes may be META_F_HEAD_PENDING (lazily completed metadata),
 * which a format-1 binary would show with default attributes. A format-1
 * store is upgraded when opened; newer formats are refused. */
#define META_FORMAT	 2
#define META_FORMAT_MIN	 1
#define META_MAP_DEFAULT (64ULL << 30)
/* A failed commit with less free space than this means a full disk. */
#define META_FULL_BELOW	  (1ULL << 20)
#define META_MAXREADERS	  512
#define INODE_REC_VERSION 1
#define INODE_REC_FIXED	  108	     /* bytes before the variable part */
#define INODE_KEY_NULL	  UINT32_MAX /* s3_key length meaning NULL */

static const char *const table_names[T_COUNT] = {
	"inodes", "dentries", "chunks", "lru",	"dirty",
	"xattrs", "tasks",    "super",	"gone",
};

/* ---- errors ---- */

int meta_lmdb_err(int rc, const char *what)
{
	switch (rc) {
	case 0:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_KEYEXIST:
		return -EEXIST;
	case MDB_MAP_FULL:
		log_warn("meta: %s: the metadata map is full", what);
		return -ENOSPC;
	case MDB_READERS_FULL:
		log_warn("meta: %s: too many readers", what);
		return -EAGAIN;
	default:
		break;
	}
	if (rc > 0) /* an errno from the OS */
		return -rc;
	log_error("meta: %s: %s", what, mdb_strerror(rc));
	return -EIO;
}

const char *meta_state_name(enum meta_state s)
{
	switch (s) {
	case META_NEW:
		return "new";
	case META_DIRTY:
		return "dirty";
	case META_ARCHIVED:
		return "archived";
	case META_RELEASED:
		return "released";
	case META_LOST:
		return "lost";
	}
	return "unknown";
}

void meta_inode_release(struct meta_inode *ino)
{
	if (!ino)
		return;
	free(ino->s3_key);
	memset(ino, 0, sizeof(*ino));
}

/* ---- iteration ---- */

int meta_walk(struct meta_txn *txn, enum meta_table t, const void *prefix,
	      size_t plen, const void *start, size_t slen, bool skip_equal,
	      walk_fn fn, void *ctx)
{
	uint8_t cur_key[META_KEY_MAX];
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	MDB_cursor_op op;
	int rc, ret = 0;

	rc = mdb_cursor_open(txn->txn, txn->db->dbi[t], &cur);
	if (rc)
		return stick(txn, meta_lmdb_err(rc, "cursor"));
	if (!start) {
		start = prefix;
		slen = plen;
	}
	op = start && slen ? MDB_SET_RANGE : MDB_FIRST;
	for (;;) {
		if (op == MDB_SET_RANGE)
			k = (MDB_val){.mv_size = slen,
				      .mv_data = (void *)start};
		rc = mdb_cursor_get(cur, &k, &v, op);
		if (rc)
			break;
		op = MDB_NEXT;
		if (plen &&
		    (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0))
			break;
		if (skip_equal && k.mv_size == slen &&
		    memcmp(k.mv_data, start, slen) == 0)
			continue;
		if (k.mv_size > sizeof(cur_key)) { /* not one of our keys */
			rc = MDB_CORRUPTED;
			break;
		}
		memcpy(cur_key, k.mv_data, k.mv_size);
		ret = fn(ctx, &k, &v);
		if (ret)
			break;
		if (txn->err) { /* fn used this transaction and it failed */
			ret = txn->err;
			break;
		}
		/* Re-seek strictly after the key just visited: fn may have
		 * changed the table (even deleted that key). */
		start = cur_key;
		slen = k.mv_size;
		skip_equal = true;
		op = MDB_SET_RANGE;
	}
	mdb_cursor_close(cur);
	if (ret)
		return ret;
	if (rc && rc != MDB_NOTFOUND)
		return stick(txn, meta_lmdb_err(rc, "cursor get"));
	return 0;
}

/* ---- environment ---- */

static int check_format(struct meta_txn *txn, const char *path)
{
	uint64_t format;
	int ret;

	ret = meta_super_get_u64(txn, "format", &format);
	if (ret == -ENOENT)
		return meta_super_put_u64(txn, "format", META_FORMAT);
	if (ret)
		return ret;
	if (format < META_FORMAT_MIN || format > META_FORMAT) {
		log_error("meta: %s has metadata format %llu; this tidefs "
			  "reads formats %d to %d",
			  path, (unsigned long long)format, META_FORMAT_MIN,
			  META_FORMAT);
		return -EPROTONOSUPPORT;
	}
	if (format < META_FORMAT) {
		log_info("meta: %s: metadata format %llu upgraded to %d", path,
			 (unsigned long long)format, META_FORMAT);
		return meta_super_put_u64(txn, "format", META_FORMAT);
	}
	return 0;
}

static int open_tables(struct meta_db *db, const char *path)
{
	struct meta_txn txn = {.db = db, .write = true};
	int rc;

	rc = mdb_txn_begin(db->env, NULL, 0, &txn.txn);
	if (rc)
		return meta_lmdb_err(rc, "begin");
	rc = meta_space_room(&txn, META_ROOM_BEGIN);
	if (rc) {
		mdb_txn_abort(txn.txn);
		return rc;
	}
	for (int i = 0; i < T_COUNT; i++) {
		rc = mdb_dbi_open(txn.txn, table_names[i], MDB_CREATE,
				  &db->dbi[i]);
		if (rc) {
			mdb_txn_abort(txn.txn);
			return meta_lmdb_err(rc, table_names[i]);
		}
	}
	rc = check_format(&txn, path);
	if (!rc)
		rc = meta_space_room(&txn, META_ROOM_COMMIT);
	if (rc) {
		mdb_txn_abort(txn.txn);
		return rc;
	}
	return meta_lmdb_err(mdb_txn_commit(txn.txn), "commit");
}

/* Create and open the environment; with MDB_WRITEMAP only if its room can
 * be kept allocated (meta_space.c), else without. */
static int open_env(struct meta_db *db, const char *path, uint64_t map_size,
		    unsigned flags)
{
	MDB_stat st;
	int rc;

	db->writemap = meta_space_fs_ok(path);
	for (;;) {
		rc = mdb_env_create(&db->env);
		if (rc)
			return meta_lmdb_err(rc, "env create");
		rc = mdb_env_set_maxdbs(db->env, T_COUNT);
		if (!rc)
			rc = mdb_env_set_maxreaders(db->env, META_MAXREADERS);
		if (!rc)
			rc = mdb_env_set_mapsize(db->env, (size_t)map_size);
		if (!rc)
			rc = mdb_env_open(
				db->env, path,
				flags | (db->writemap ? MDB_WRITEMAP : 0),
				0600);
		if (!rc)
			rc = mdb_env_stat(db->env, &st);
		if (!rc) {
			db->psize = st.ms_psize;
			if (!db->writemap || meta_space_open(db) == 0)
				return 0;
		} else if (!db->writemap) {
			log_error("meta: cannot open %s: %s", path,
				  mdb_strerror(rc));
			mdb_env_close(db->env);
			return meta_lmdb_err(rc, "env open");
		}
		mdb_env_close(db->env);
		db->env = NULL;
		db->writemap = false;
	}
}

int meta_open(const char *dir, uint64_t map_size, bool nosync,
	      struct meta_db **out)
{
	struct meta_db *db = NULL;
	unsigned flags = MDB_NOTLS;
	char *path = NULL;
	int rc, dead = 0, ret;

	*out = NULL;
	if (asprintf(&path, "%s/meta", dir) < 0)
		return -ENOMEM;
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		ret = -errno;
		log_error("meta: mkdir %s: %s", path, strerror(errno));
		goto out_free_path;
	}
	db = calloc(1, sizeof(*db));
	if (!db) {
		ret = -ENOMEM;
		goto out_free_path;
	}
	atomic_init(&db->full_logged, INT64_MIN / 2);
	atomic_init(&db->alloc_pages, 0);
	if (!map_size)
		map_size = META_MAP_DEFAULT;
	if (nosync)
		flags |= MDB_NOSYNC | MDB_NOMETASYNC;
	ret = open_env(db, path, map_size, flags);
	if (ret)
		goto out_free_db;
	/* Readers left behind by a killed process pin old pages forever. */
	rc = mdb_reader_check(db->env, &dead);
	if (rc) {
		ret = meta_lmdb_err(rc, "reader check");
		goto out_close_env;
	}
	if (dead)
		log_info("meta: cleared %d stale reader slot(s)", dead);
	ret = open_tables(db, path);
	if (ret)
		goto out_close_env;
	free(path);
	*out = db;
	return 0;

out_close_env:
	mdb_env_close(db->env);
out_free_db:
	free(db);
out_free_path:
	free(path);
	return ret;
}

void meta_close(struct meta_db *db)
{
	if (!db)
		return;
	mdb_env_close(db->env);
	free(db);
}

int meta_sync(struct meta_db *db)
{
	return meta_lmdb_err(mdb_env_sync(db->env, 1), "sync");
}

/* ---- transactions ---- */

int meta_txn_begin(struct meta_db *db, bool write, struct meta_txn **out)
{
	struct meta_txn *txn;
	int rc;

	*out = NULL;
	txn = calloc(1, sizeof(*txn));
	if (!txn)
		return -ENOMEM;
	txn->db = db;
	txn->write = write;
	rc = mdb_txn_begin(db->env, NULL, write ? 0 : MDB_RDONLY, &txn->txn);
	if (rc == MDB_READERS_FULL) {
		/* Maybe slots of dead processes: reclaim them, try once more.
		 */
		int dead = 0;

		if (mdb_reader_check(db->env, &dead) == 0 && dead > 0)
			rc = mdb_txn_begin(db->env, NULL,
					   write ? 0 : MDB_RDONLY, &txn->txn);
	}
	if (rc) {
		free(txn);
		return meta_lmdb_err(rc, "begin");
	}
	if (write) {
		int ret = meta_space_room(txn, META_ROOM_BEGIN);

		if (ret) {
			mdb_txn_abort(txn->txn);
			free(txn);
			return ret;
		}
	}
	*out = txn;
	return 0;
}

void meta_warn_full(struct meta_db *db)
{
	int64_t now = time_mono_ns();
	int64_t last = atomic_load(&db->full_logged);

	if (now - last >= 5000000000ll &&
	    atomic_compare_exchange_strong(&db->full_logged, &last, now))
		log_warn("meta: the file system of the cache dir is full: "
			 "changes fail with ENOSPC until space is freed there");
}

/*
 * A commit could not write its pages: LMDB says EIO for a short write, which
 * is how a full file system shows. Tell full (ENOSPC, with one warning every
 * few seconds) from a real I/O error. The environment stays intact: the meta
 * page is only written after every other page was.
 */
static int commit_failed(struct meta_db *db, int rc)
{
	struct statvfs sv;
	mdb_filehandle_t fd;

	if (rc == EDQUOT)
		return rc;
	if (mdb_env_get_fd(db->env, &fd) != 0 || fstatvfs(fd, &sv) < 0 ||
	    (uint64_t)sv.f_bavail * sv.f_frsize >= META_FULL_BELOW) {
		if (rc == EIO)
			log_error("meta: commit: I/O error writing the "
				  "metadata");
		return rc;
	}
	meta_warn_full(db);
	return ENOSPC;
}

int meta_txn_commit(struct meta_txn *txn)
{
	int ret, rc;

	if (!txn)
		return -EINVAL;
	if (txn->write && !txn->err)
		meta_space_room(txn, META_ROOM_COMMIT);
	if (txn->err) {
		ret = txn->err;
		mdb_txn_abort(txn->txn);
	} else {
		rc = mdb_txn_commit(txn->txn);
		if (rc == EIO || rc == ENOSPC || rc == EDQUOT)
			rc = commit_failed(txn->db, rc);
		ret = meta_lmdb_err(rc, "commit");
	}
	free(txn);
	return ret;
}

void meta_txn_frees_space(struct meta_txn *txn)
{
	if (txn)
		txn->frees = true;
}

void meta_txn_abort(struct meta_txn *txn)
{
	if (!txn)
		return;
	mdb_txn_abort(txn->txn);
	free(txn);
}

int meta_txn_error(const struct meta_txn *txn)
{
	return txn->err;
}

/* ---- super ---- */

int meta_super_get(struct meta_txn *txn, const char *name, void *buf,
		   size_t len, size_t *outlen)
{
	MDB_val k, v;
	int ret;

	if (txn->err)
		return txn->err;
	ret = key_str(name, &k);
	if (ret)
		return ret == -ENAMETOOLONG ? ret : stick(txn, ret);
	ret = raw_get(txn, T_SUPER, &k, &v);
	if (ret)
		return stick_lookup(txn, ret);
	copy_out(&v, buf, len, outlen);
	return 0;
}

int meta_super_put(struct meta_txn *txn, const char *name, const void *val,
		   size_t len)
{
	MDB_val k, v = {.mv_size = len, .mv_data = (void *)val};
	int ret;

	ret = need_write(txn);
	if (ret)
		return ret;
	if (!val && len)
		return stick(txn, -EINVAL);
	if (!len)
		v = empty_val();
	ret = key_str(name, &k);
	if (!ret)
		ret = raw_put(txn, T_SUPER, &k, &v, 0);
	return stick(txn, ret);
}

/* -ERANGE (not sticky) when the value and its NUL do not fit in len. */
int meta_super_get_str(struct meta_txn *txn, const char *name, char *buf,
		       size_t len)
{
	size_t n;
	int ret;

	if (!len)
		return -ERANGE;
	ret = meta_super_get(txn, name, buf, len, &n);
	if (ret)
		return ret;
	if (n >= len) {
		buf[len - 1] = '\0';
		return -ERANGE;
	}
	buf[n] = '\0';
	return 0;
}

int meta_super_put_str(struct meta_txn *txn, const char *name, const char *val)
{
	return meta_super_put(txn, name, val, val ? strlen(val) : 0);
}

/* Stored as 8 bytes little-endian; another length is -EPROTO (sticky). */
int meta_super_get_u64(struct meta_txn *txn, const char *name, uint64_t *v)
{
	uint8_t b[8];
	size_t n;
	int ret;

	ret = meta_super_get(txn, name, b, sizeof(b), &n);
	if (ret)
		return ret;
	if (n != sizeof(b))
		return stick(txn, -EPROTO);
	*v = get_le64(b);
	return 0;
}

int meta_super_put_u64(struct meta_txn *txn, const char *name, uint64_t v)
{
	uint8_t b[8];

	put_le64(b, v);
	return meta_super_put(txn, name, b, sizeof(b));
}

/* ---- inodes ---- */

int meta_ino_alloc(struct meta_txn *txn, uint64_t *ino)
{
	uint64_t next = META_ROOT_INO + 1;
	int ret;

	ret = need_write(txn);
	if (ret)
		return ret;
	ret = meta_super_get_u64(txn, "next_ino", &next);
	if (ret && ret != -ENOENT)
		return ret;
	ret = meta_super_put_u64(txn, "next_ino", next + 1);
	if (ret)
		return ret;
	*ino = next;
	return 0;
}

/*
 * Inode record, version 1, all little-endian:
 *   0 u32 version   4 u32 mode   8 u32 uid   12 u32 gid   16 u32 nlink
 *  20 u32 state    24 u32 flags 28 u64 rdev  36 u64 size
 *  44 i64 atime    52 i64 mtime 60 i64 ctime 68 u64 generation
 *  76 u64 cached_bytes          84 i64 last_access
 *  92 u64 s3_size 100 i64 s3_mtime
 * 108 u32 etag length, etag bytes, u32 s3_key length (UINT32_MAX: NULL),
 *     s3_key bytes
 * A reader refuses other versions (-EPROTO); a new field means a new version
 * and a conversion at meta_open.
 */
static size_t inode_rec_size(const struct meta_inode *in, size_t *elen,
			     size_t *klen)
{
	*elen = strnlen(in->etag, sizeof(in->etag) - 1);
	*klen = in->s3_key ? strlen(in->s3_key) : 0;
	return INODE_REC_FIXED + 4 + *elen + 4 + *klen;
}

static void inode_encode(const struct meta_inode *in, uint8_t *p, size_t elen,
			 size_t klen)
{
	put_le32(p + 0, INODE_REC_VERSION);
	put_le32(p + 4, in->mode);
	put_le32(p + 8, in->uid);
	put_le32(p + 12, in->gid);
	put_le32(p + 16, in->nlink);
	put_le32(p + 20, in->state);
	put_le32(p + 24, in->flags);
	put_le64(p + 28, in->rdev);
	put_le64(p + 36, in->size);
	put_le64(p + 44, (uint64_t)in->atime_ns);
	put_le64(p + 52, (uint64_t)in->mtime_ns);
	put_le64(p + 60, (uint64_t)in->ctime_ns);
	put_le64(p + 68, in->generation);
	put_le64(p + 76, in->cached_bytes);
	put_le64(p + 84, (uint64_t)in->last_access_ns);
	put_le64(p + 92, in->s3_size);
	put_le64(p + 100, (uint64_t)in->s3_mtime_ns);
	p += INODE_REC_FIXED;
	put_le32(p, (uint32_t)elen);
	memcpy(p + 4, in->etag, elen);
	p += 4 + elen;
	put_le32(p, in->s3_key ? (uint32_t)klen : INODE_KEY_NULL);
	if (klen)
		memcpy(p + 4, in->s3_key, klen);
}

/* Decode into out (zeroed first); s3_key is malloc'ed. */
static int inode_decode(uint64_t ino, const MDB_val *v, struct meta_inode *out)
{
	const uint8_t *p = v->mv_data, *end = p + v->mv_size;
	uint32_t elen, klen;

	memset(out, 0, sizeof(*out));
	if (v->mv_size < INODE_REC_FIXED + 8 ||
	    get_le32(p) != INODE_REC_VERSION) {
		log_error("meta: inode %llu: bad record",
			  (unsigned long long)ino);
		return -EPROTO;
	}
	out->ino = ino;
	out->mode = get_le32(p + 4);
	out->uid = get_le32(p + 8);
	out->gid = get_le32(p + 12);
	out->nlink = get_le32(p + 16);
	out->state = get_le32(p + 20);
	out->flags = get_le32(p + 24);
	out->rdev = get_le64(p + 28);
	out->size = get_le64(p + 36);
	out->atime_ns = (int64_t)get_le64(p + 44);
	out->mtime_ns = (int64_t)get_le64(p + 52);
	out->ctime_ns = (int64_t)get_le64(p + 60);
	out->generation = get_le64(p + 68);
	out->cached_bytes = get_le64(p + 76);
	out->last_access_ns = (int64_t)get_le64(p + 84);
	out->s3_size = get_le64(p + 92);
	out->s3_mtime_ns = (int64_t)get_le64(p + 100);
	p += INODE_REC_FIXED;
	elen = get_le32(p);
	p += 4;
	if (elen >= sizeof(out->etag) || (size_t)(end - p) < elen + 4u)
		goto bad;
	memcpy(out->etag, p, elen);
	p += elen;
	klen = get_le32(p);
	p += 4;
	if (klen == INODE_KEY_NULL)
		return p == end ? 0 : -EPROTO;
	if ((size_t)(end - p) != klen)
		goto bad;
	out->s3_key = malloc((size_t)klen + 1);
	if (!out->s3_key)
		return -ENOMEM;
	memcpy(out->s3_key, p, klen);
	out->s3_key[klen] = '\0';
	return 0;
bad:
	log_error("meta: inode %llu: bad record", (unsigned long long)ino);
	memset(out, 0, sizeof(*out));
	return -EPROTO;
}

int meta_inode_get(struct meta_txn *txn, uint64_t ino, struct meta_inode *out)
{
	uint8_t kb[8];
	MDB_val k = key_u64(kb, ino), v;
	int ret;

	memset(out, 0, sizeof(*out));
	if (txn->err)
		return txn->err;
	ret = raw_get(txn, T_INODES, &k, &v);
	if (ret)
		return stick_lookup(txn, ret);
	return stick(txn, inode_decode(ino, &v, out));
}

int meta_inode_put(struct meta_txn *txn, const struct meta_inode *in)
{
	uint8_t kb[8], *buf;
	MDB_val k = key_u64(kb, in->ino), v;
	size_t elen, klen;
	int ret;

	ret = need_write(txn);
	if (ret)
		return ret;
	if (!in->ino)
		return stick(txn, -EINVAL);
	v.mv_size = inode_rec_size(in, &elen, &klen);
	if (klen >= INODE_KEY_NULL)
		return stick(txn, -ENAMETOOLONG);
	buf = malloc(v.mv_size);
	if (!buf)
		return stick(txn, -ENOMEM);
	inode_encode(in, buf, elen, klen);
	v.mv_data = buf;
	ret = raw_put(txn, T_INODES, &k, &v, 0);
	free(buf);
	return stick(txn, ret);
}

int meta_inode_del(struct meta_txn *txn, uint64_t ino)
{
	uint8_t kb[8];
	MDB_val k = key_u64(kb, ino);
	int ret;

	ret = need_write(txn);
	if (ret)
		return ret;
	return stick_lookup(txn, raw_del(txn, T_INODES, &k));
}

struct inode_walk {
	meta_inode_cb cb;
	void *arg;
	struct meta_txn *txn;
};

static int inode_walk_fn(void *ctx, const MDB_val *k, const MDB_val *v)
{
	struct inode_walk *w = ctx;
	struct meta_inode in;
	int ret;

	if (k->mv_size != 8)
		return stick(w->txn, -EPROTO);
	ret = inode_decode(get_be64(k->mv_data), v, &in);
	if (ret)
		return stick(w->txn, ret);
	ret = w->cb(w->arg, &in);
	meta_inode_release(&in);
	return ret;
}

int meta_inode_foreach(struct meta_txn *txn, meta_inode_cb cb, void *arg)
{
	struct inode_walk w = {.cb = cb, .arg = arg, .txn = txn};

	if (txn->err)
		return txn->err;
	return meta_walk(txn, T_INODES, NULL, 0, NULL, 0, false, inode_walk_fn,
			 &w);
}

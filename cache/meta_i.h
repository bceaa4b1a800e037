/* SPDX-License-Identifier: MIT */
/*
 * meta — what meta.c and meta_tables.c share (private to cache/; the
 * module's contract is meta.h): the handle structs, the table enum, byte
 * order and key builders, raw LMDB calls and the sticky-error helpers. The
 * tables, their keys and the error rules are in the DESIGN comment of
 * meta.c.
 */
#ifndef TIDEFS_META_I_H
#define TIDEFS_META_I_H

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "cache/meta.h"
#include "common/common.h"

/* Format 2: inodes may be META_F_HEAD_PENDING (lazily completed metadata),
 * which a format-1 binary would show with default attributes. Format 3:
 * inode records may be version 2 (compact), which a format-2 binary cannot
 * read. Older stores are upgraded when opened (their records are rewritten
 * as they change); newer formats are refused. */
#define META_FORMAT	3
#define META_FORMAT_MIN 1

#define META_NAME_MAX	   255
#define META_XATTR_VAL_MAX (64u * 1024)
#define META_KEY_MAX	   (8 + META_NAME_MAX + 8)

enum meta_table {
	T_INODES,
	T_DENTRIES,
	T_CHUNKS,
	T_LRU,
	T_DIRTY,
	T_XATTRS,
	T_TASKS,
	T_SUPER,
	T_GONE,
	T_COUNT,
};

struct meta_db {
	MDB_env *env;
	MDB_dbi dbi[T_COUNT]; /* opened once at meta_open, read-only after */
	atomic_int_least64_t full_logged; /* time_mono_ns of the last warning */
	/* MDB_WRITEMAP room (meta_space.c); fixed after meta_open but for
	 * alloc_pages, which only the writer changes. */
	bool writemap;
	int fd;			      /* data.mdb */
	uint64_t psize;		      /* LMDB page size */
	uint64_t cushion_pages;	      /* allocated ahead at a time */
	uint64_t map_pages;	      /* the map's size */
	_Atomic uint64_t alloc_pages; /* data.mdb is allocated below this */
	/* Sync points (meta_safe.c). commit_lock is held around every write
	 * commit; safe_lock around making a sync point. */
	pthread_mutex_t commit_lock, safe_lock;
	pthread_cond_t safe_cond; /* wakes the periodic thread to stop */
	bool safe_running, safe_stop;
	pthread_t safe_thread;
	int safe_fd; /* DIR/meta/safe; -1: no sync points */
	uint64_t safe_seq;
	_Atomic uint64_t safe_txnid; /* of the last sync point */
	_Atomic uint64_t syncs;	     /* sync points (or plain syncs) made */
	int64_t safe_every_ns;	     /* the periodic thread's interval */
	MDB_txn *safe_pin;	     /* read transaction at it */
	/* The pin keeps LMDB from reusing any page freed after it: past
	 * safe_pin_pgno + SAFE_BUDGET (meta_safe.c) the sync point lapses. */
	_Atomic uint64_t safe_pin_pgno; /* last page at the pin; 0: none */
	/* Under safe_lock: the last sync point lapsed after lasting a while;
	 * the periodic thread makes the next one early (SAFE_RENEW in
	 * meta_safe.c). safe_pin_ns: when the pin was taken. */
	bool safe_renew;
	int64_t safe_pin_ns;
	char boot[40]; /* this boot's id */
	/* trim_map() in meta.c: data.mdb's map (NULL: not found), when it
	 * was last let go of. */
	void *map_addr;
	size_t map_len;
	_Atomic int64_t trim_at;
	atomic_uint trim_commits;
	_Atomic int64_t trim_every_ns;
};

struct meta_txn {
	struct meta_db *db;
	MDB_txn *txn;
	bool write;
	bool frees; /* meta_txn_frees_space() */
	int err;    /* first error, sticky */
};

/* meta.c: decode an inode record into out (zeroed first; s3_key is
 * malloc'ed). 0, -EPROTO for a record that is not one, -ENOMEM; quiet. */
int meta_inode_decode(uint64_t ino, const MDB_val *v, struct meta_inode *out);

/* meta_check.c: check the store in path (DIR/meta) for damage, unless it
 * was closed cleanly (always: even then), in a child process. 0: intact
 * (or closed cleanly, or new); -EUCLEAN: damaged, why[len] says how; other
 * -errno: could not check (why may say more). */
int meta_check_store(const char *path, bool always, char *why, size_t len);

/* meta_check.c: a child process that reads a store which may be damaged
 * (LMDB may crash on a damaged page: that ends only the child). */
struct meta_reader {
	pid_t pid;
	int fd;		  /* the read end of the child's pipe */
	int64_t deadline; /* time_mono_ns after which reads time out */
};
/* In the child: open the environment in path read-only without a lock
 * file. An MDB_* code or errno (LMDB's convention); *out NULL on failure. */
int meta_reader_env(const char *path, MDB_env **out);
/* Run fn(arg, wfd) in a child, which opens its own read-only environment,
 * writes to wfd and ends with _exit(fn's return); crash signals get their
 * default action there. 0 or -errno. */
int meta_reader_start(struct meta_reader *r, int (*fn)(void *arg, int wfd),
		      void *arg, int timeout_s);
/* What the child wrote: bytes, 0 at its end, -ETIMEDOUT past the deadline,
 * or -errno. */
ssize_t meta_reader_read(struct meta_reader *r, void *buf, size_t len);
/* Close the pipe, kill the child when stop, reap it: its wait status. */
int meta_reader_finish(struct meta_reader *r, bool stop);

/* meta.c: the tables' names in the environment, by enum meta_table. */
extern const char *const meta_table_names[T_COUNT];

/* ---- errors ---- */

/* meta.c: translate an LMDB return code (MDB_* or an errno from the OS) to
 * 0 or -errno, once, at the module edge; what names the step in the log. */
int meta_lmdb_err(int rc, const char *what);

/* meta.c: warn (at most every 5 s) that the cache dir's file system is
 * full. */
void meta_warn_full(struct meta_db *db);

/* ---- room for MDB_WRITEMAP commits (meta_space.c) ---- */

#define META_ROOM_COMMIT SIZE_MAX
#define META_ROOM_BEGIN	 (SIZE_MAX - 1)

/* Whether the file system of dir overwrites in place and honours
 * fallocate, so MDB_WRITEMAP can be made safe there. */
bool meta_space_fs_ok(const char *dir);

/* After mdb_env_open with MDB_WRITEMAP: check the transaction layout, size
 * the cushion and allocate it; 0, or -errno (then reopen without). */
int meta_space_open(struct meta_db *db);

/* Before a put or delete of a value of value_size bytes (0 for a delete),
 * META_ROOM_COMMIT before a commit or META_ROOM_BEGIN when it begins, in a
 * write transaction: make sure every page it may store into is allocated.
 * 0 or -ENOSPC (sticky). */
int meta_space_room(struct meta_txn *txn, size_t value_size);

/* ---- sync points (meta_safe.c) ---- */

/* Before LMDB opens the store in path (DIR/meta): if the system went down
 * after the last sync point with later commits in data.mdb, go back to the
 * sync point. keep: sync points will be kept (nosync commits); otherwise
 * the file is removed. 0 or -errno. */
int meta_safe_recover(const char *path, bool keep);
/* After the store is open with nosync commits: make a first sync point and
 * start the thread that makes one every sync interval (default 5 s) while
 * there are commits. */
int meta_safe_start(struct meta_db *db, const char *path);
/* meta_sync(): sync, and make a sync point when there are sync points. */
int meta_safe_sync(struct meta_db *db);
/* meta_safe_sync(), unless a sync point still in force holds every
 * transaction up to txnid. */
int meta_safe_sync_upto(struct meta_db *db, uint64_t txnid);
/* After a write commit: past the budget, let the sync point lapse (unless
 * a sync point is being made: then a later commit does). */
void meta_safe_committed(struct meta_db *db);
/* A last sync point, then stop. Safe on a db that never started. */
void meta_safe_stop(struct meta_db *db);

/* Record ret as the sticky error (if it is one) and return it. */
static inline int stick(struct meta_txn *txn, int ret)
{
	if (ret && !txn->err)
		txn->err = ret;
	return ret;
}

/* Sticky unless it is an answer (-ENOENT). */
static inline int stick_lookup(struct meta_txn *txn, int ret)
{
	if (ret == -ENOENT)
		return ret;
	return stick(txn, ret);
}

static inline int need_write(struct meta_txn *txn)
{
	if (txn->err)
		return txn->err;
	if (!txn->write)
		return stick(txn, -EBADF);
	return 0;
}

/* ---- byte order ---- */

static inline void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static inline uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* Little-endian values of n bytes (records are stored that way). */
static inline void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static inline uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
	put_le(p, v, 4);
}

static inline uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)get_le(p, 4);
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
	put_le(p, v, 8);
}

static inline uint64_t get_le64(const uint8_t *p)
{
	return get_le(p, 8);
}

static inline MDB_val key_u64(uint8_t buf[8], uint64_t v)
{
	put_be64(buf, v);
	return (MDB_val){.mv_size = 8, .mv_data = buf};
}

static inline MDB_val key_u64_u64(uint8_t buf[16], uint64_t a, uint64_t b)
{
	put_be64(buf, a);
	put_be64(buf + 8, b);
	return (MDB_val){.mv_size = 16, .mv_data = buf};
}

/* id + name; name must be 1..255 bytes: -EINVAL / -ENAMETOOLONG. */
static inline int key_name(uint8_t buf[META_KEY_MAX], uint64_t id,
			   const char *name, MDB_val *out)
{
	size_t n;

	if (!name || !*name)
		return -EINVAL;
	n = strlen(name);
	if (n > META_NAME_MAX)
		return -ENAMETOOLONG;
	put_be64(buf, id);
	memcpy(buf + 8, name, n);
	*out = (MDB_val){.mv_size = 8 + n, .mv_data = buf};
	return 0;
}

/* A plain name key (tasks, super). */
static inline int key_str(const char *name, MDB_val *out)
{
	size_t n;

	if (!name || !*name)
		return -EINVAL;
	n = strlen(name);
	if (n > META_NAME_MAX)
		return -ENAMETOOLONG;
	*out = (MDB_val){.mv_size = n, .mv_data = (void *)name};
	return 0;
}

/* Access times may be negative: flip the sign bit so BE order is numeric. */
static inline uint64_t bias_i64(int64_t v)
{
	return (uint64_t)v ^ (1ULL << 63);
}

static inline int64_t unbias_i64(uint64_t v)
{
	return (int64_t)(v ^ (1ULL << 63));
}

/* ---- raw operations (no sticky handling) ---- */

static inline int raw_get(struct meta_txn *txn, enum meta_table t, MDB_val *k,
			  MDB_val *v)
{
	return meta_lmdb_err(mdb_get(txn->txn, txn->db->dbi[t], k, v), "get");
}

static inline int raw_put(struct meta_txn *txn, enum meta_table t, MDB_val *k,
			  MDB_val *v, unsigned flags)
{
	int ret = meta_space_room(txn, k->mv_size + v->mv_size);

	if (ret)
		return ret;
	return meta_lmdb_err(mdb_put(txn->txn, txn->db->dbi[t], k, v, flags),
			     "put");
}

static inline int raw_del(struct meta_txn *txn, enum meta_table t, MDB_val *k)
{
	int ret = meta_space_room(txn, 0);

	if (ret)
		return ret;
	return meta_lmdb_err(mdb_del(txn->txn, txn->db->dbi[t], k, NULL),
			     "del");
}

static inline MDB_val empty_val(void)
{
	return (MDB_val){.mv_size = 0, .mv_data = (void *)""};
}

/* Copy a stored value out: at most len bytes, *outlen the stored length. */
static inline void copy_out(const MDB_val *v, void *buf, size_t len,
			    size_t *outlen)
{
	if (buf && len)
		memcpy(buf, v->mv_data, MIN(len, v->mv_size));
	if (outlen)
		*outlen = v->mv_size;
}

/*
 * meta.c: walk table t from the first key >= start (start NULL: from the first
 * key), strictly after start when skip_equal, while keys begin with prefix
 * (plen 0: no bound). fn returns 0 to go on, non-zero to stop (returned).
 * Errors of LMDB stick; errors of fn are the caller's and only returned.
 */
typedef int (*walk_fn)(void *ctx, const MDB_val *k, const MDB_val *v);

int meta_walk(struct meta_txn *txn, enum meta_table t, const void *prefix,
	      size_t plen, const void *start, size_t slen, bool skip_equal,
	      walk_fn fn, void *ctx);

#endif

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
 * room MDB_WRITEMAP commits need on disk; meta_safe.c the sync points that
 * a mount after a power loss goes back to; meta_check.c the check of a
 * store that was not closed cleanly; meta_salvage.c reading what can be
 * read of a damaged one; meta_i.h what they share
 * (struct meta_db and meta_txn, the table enum, byte order and key builders,
 * raw get/put/del, the sticky-error helpers).
 */
#include "cache/meta_i.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <time.h>

#include "common/common.h"

#define META_MAP_DEFAULT (64ULL << 30)
/* The store's pages are unmapped after this many write transactions, or
 * after a transaction this long after the last time (trim_map()). */
#define META_TRIM_COMMITS  256u
#define META_TRIM_EVERY_NS 1000000000LL
/* A failed commit with less free space than this means a full disk. */
#define META_FULL_BELOW	  (1ULL << 20)
#define META_MAXREADERS	  512
#define INODE_REC_VERSION 2	     /* the version written */
#define INODE_REC1_FIXED  108	     /* version 1: bytes before the rest */
#define INODE_KEY_NULL	  UINT32_MAX /* version 1: s3_key length of NULL */

const char *const meta_table_names[T_COUNT] = {
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
		rc = mdb_dbi_open(txn.txn, meta_table_names[i], MDB_CREATE,
				  &db->dbi[i]);
		if (rc) {
			mdb_txn_abort(txn.txn);
			return meta_lmdb_err(rc, meta_table_names[i]);
		}
	}
	rc = check_format(&txn, path);
	/* Open for writing: until meta_close() says otherwise, the next
	 * open checks the store first (meta_check.c). */
	if (!rc)
		rc = meta_super_put_u64(&txn, "closed", 0);
	if (!rc)
		rc = meta_space_room(&txn, META_ROOM_COMMIT);
	if (rc) {
		mdb_txn_abort(txn.txn);
		return rc;
	}
	return meta_lmdb_err(mdb_txn_commit(txn.txn), "commit");
}

/* Where LMDB mapped data.mdb (mdb_env_info() gives the address only for
 * MDB_FIXEDMAP): the mapping of its inode in /proc/self/maps. NULL if not
 * found; then the map is not trimmed. */
static void find_map(struct meta_db *db)
{
	unsigned long lo, hi, maj, mnr, ino;
	mdb_filehandle_t fd;
	struct stat st;
	char line[512];
	FILE *f;

	db->map_addr = NULL;
	if (mdb_env_get_fd(db->env, &fd) != 0 || fstat(fd, &st) < 0)
		return;
	f = fopen("/proc/self/maps", "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx %*s %*x %lx:%lx %lu", &lo, &hi, &maj,
			   &mnr, &ino) == 5 &&
		    ino == (unsigned long)st.st_ino &&
		    makedev(maj, mnr) == st.st_dev && hi - lo >= db->psize) {
			db->map_addr = (void *)lo;
			db->map_len = hi - lo;
			break;
		}
	}
	fclose(f);
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
			find_map(db);
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

static int open_store(const char *dir, uint64_t map_size, bool nosync,
		      char *why, size_t why_len, struct meta_db **out)
{
	struct meta_db *db = NULL;
	pthread_condattr_t ca;
	unsigned flags = MDB_NOTLS | MDB_NORDAHEAD;
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
	atomic_init(&db->safe_txnid, 0);
	atomic_init(&db->safe_pin_pgno, 0);
	atomic_init(&db->trim_at, time_mono_ns());
	atomic_init(&db->trim_every_ns, META_TRIM_EVERY_NS);
	db->safe_fd = -1;
	db->safe_every_ns = 5 * 1000000000LL;
	pthread_mutex_init(&db->commit_lock, NULL);
	pthread_mutex_init(&db->safe_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&db->safe_cond, &ca);
	pthread_condattr_destroy(&ca);
	if (!map_size)
		map_size = META_MAP_DEFAULT;
	if (nosync)
		flags |= MDB_NOSYNC | MDB_NOMETASYNC;
	ret = meta_safe_recover(path, nosync);
	if (ret) {
		log_error("meta: %s: %s", path, strerror(-ret));
		goto out_free_db;
	}
	if (why) {
		ret = meta_check_store(path, false, why, why_len);
		if (ret == -EUCLEAN) {
			log_error("meta: %s is damaged: %s", path, why);
			goto out_free_db;
		}
		if (ret < 0)
			log_warn("meta: could not check %s (%s)%s%s", path,
				 strerror(-ret), why[0] ? ": " : "", why);
	}
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
	if (!ret && nosync)
		ret = meta_safe_start(db, path);
	if (ret)
		goto out_close_env;
	free(path);
	*out = db;
	return 0;

out_close_env:
	meta_safe_stop(db);
	mdb_env_close(db->env);
out_free_db:
	pthread_cond_destroy(&db->safe_cond);
	pthread_mutex_destroy(&db->commit_lock);
	pthread_mutex_destroy(&db->safe_lock);
	free(db);
out_free_path:
	free(path);
	return ret;
}

int meta_open(const char *dir, uint64_t map_size, bool nosync,
	      struct meta_db **out)
{
	return open_store(dir, map_size, nosync, NULL, 0, out);
}

int meta_open_checked(const char *dir, uint64_t map_size, bool nosync,
		      char *why, size_t why_len, struct meta_db **out)
{
	char none[1];

	if (!why || !why_len) {
		why = none;
		why_len = sizeof(none);
	}
	return open_store(dir, map_size, nosync, why, why_len, out);
}

int meta_check(const char *dir, char *why, size_t why_len)
{
	char *path = NULL, none[1];
	int ret;

	if (!why || !why_len) {
		why = none;
		why_len = sizeof(none);
	}
	why[0] = '\0';
	if (asprintf(&path, "%s/meta", dir) < 0)
		return -ENOMEM;
	ret = meta_safe_recover(path, true);
	if (ret == 0)
		ret = meta_check_store(path, true, why, why_len);
	free(path);
	return ret;
}

void meta_close(struct meta_db *db)
{
	struct meta_txn *txn;

	if (!db)
		return;
	/* Closed cleanly: the next open need not check the store. The sync
	 * makes the last sync point (or, without sync points, flushes the
	 * NOSYNC commits, which closing the environment does not). */
	if (meta_txn_begin(db, true, &txn) == 0) {
		meta_super_put_u64(txn, "closed", 1);
		meta_txn_commit(txn);
	}
	meta_sync(db);
	meta_safe_stop(db);
	mdb_env_close(db->env);
	pthread_cond_destroy(&db->safe_cond);
	pthread_mutex_destroy(&db->commit_lock);
	pthread_mutex_destroy(&db->safe_lock);
	free(db);
}

int meta_sync(struct meta_db *db)
{
	return meta_safe_sync(db);
}

int meta_sync_upto(struct meta_db *db, uint64_t txnid)
{
	return meta_safe_sync_upto(db, txnid);
}

uint64_t meta_sync_count(struct meta_db *db)
{
	return atomic_load(&db->syncs);
}

uint64_t meta_last_txn(struct meta_db *db)
{
	MDB_envinfo info;

	if (mdb_env_info(db->env, &info) != 0)
		return UINT64_MAX; /* unknown: anything may need a sync */
	return info.me_last_txnid;
}

uint64_t meta_txn_id(const struct meta_txn *txn)
{
	return mdb_txn_id(txn->txn);
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

/*
 * LMDB reads the store through a shared map of data.mdb (and with
 * MDB_WRITEMAP writes it that way): every page a transaction touches stays
 * mapped into the daemon, and counted in its resident memory, until it is
 * unmapped, and a busy writer touches many (each commit copies the pages it
 * changes to free ones): creating a 100,000-entry tree left 12-40 MiB of
 * the store mapped. So after every META_TRIM_COMMITS write transactions,
 * and after any transaction once trim_every_ns passed since the last time,
 * the whole map is let go of with MADV_DONTNEED. The pages stay in the page
 * cache (the kernel moves a mapping's dirty bit to the page when it unmaps
 * it, so WRITEMAP's unsynced pages are still written back and sync points
 * still sync them); the next access maps a page back with a minor fault.
 * Safe while other threads use the map: they fault the page back. The
 * store is opened with MDB_NORDAHEAD: without it a fault reads ahead into
 * large folios (ext4 has them since Linux 6.x) and maps a whole folio at
 * once, up to 1 MiB per touched page, which brought the whole store back
 * within milliseconds of a trim.
 */
static void trim_map(struct meta_db *db, bool wrote)
{
	int64_t now = time_mono_ns(), last = atomic_load(&db->trim_at);
	MDB_envinfo info;

	if (wrote &&
	    atomic_fetch_add(&db->trim_commits, 1) + 1 >= META_TRIM_COMMITS)
		atomic_store(&db->trim_at, now);
	else if (now - last < atomic_load(&db->trim_every_ns) ||
		 !atomic_compare_exchange_strong(&db->trim_at, &last, now))
		return;
	atomic_store(&db->trim_commits, 0);
	/* LMDB maps the store once, at open (it would map it anew only for a
	 * new map size, which nothing here sets after open); should it ever
	 * have, the address is stale: leave it alone. */
	if (db->map_addr && mdb_env_info(db->env, &info) == 0 &&
	    info.me_mapsize == db->map_len)
		madvise(db->map_addr, db->map_len, MADV_DONTNEED);
}

void meta_set_trim_interval(struct meta_db *db, int64_t ns)
{
	atomic_store(&db->trim_every_ns, ns);
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
		if (txn->write)
			pthread_mutex_lock(&txn->db->commit_lock);
		rc = mdb_txn_commit(txn->txn);
		if (txn->write)
			pthread_mutex_unlock(&txn->db->commit_lock);
		if (txn->write && rc == 0)
			meta_safe_committed(txn->db);
		if (rc == EIO || rc == ENOSPC || rc == EDQUOT)
			rc = commit_failed(txn->db, rc);
		ret = meta_lmdb_err(rc, "commit");
	}
	trim_map(txn->db, txn->write);
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
	trim_map(txn->db, false);
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
 * Inode records. Version 2, written since metadata format 3: one version
 * byte (2), then LEB128 varints (u = unsigned, z = zigzag of a difference,
 * taken modulo 2^64 so any two values round-trip):
 *   u mode, u uid, u gid, u nlink, u state, u flags, u size, u generation,
 *   z mtime (as a difference from 0), z atime - mtime, z ctime - mtime,
 *   u which of the following are present (bit 0 rdev, 1 cached_bytes,
 *     2 last_access, 3 s3_size, 4 s3_mtime, 5 etag, 6 s3_key),
 *   u rdev, u cached_bytes, z last_access - mtime, u s3_size,
 *   z s3_mtime - mtime, u etag length + bytes, u s3_key length + bytes
 *   (each only when present; absent means 0, "" or NULL).
 * A file's three times are usually equal or close, and most of its other
 * fields zero or small: a new file's record is ~40 bytes where version 1
 * took 116, which is most of what a million-file store costs on disk and in
 * the daemon's resident memory (the pages of data.mdb it touches).
 *
 * Version 1 (formats 1 and 2), still read, all little-endian:
 *   0 u32 version   4 u32 mode   8 u32 uid   12 u32 gid   16 u32 nlink
 *  20 u32 state    24 u32 flags 28 u64 rdev  36 u64 size
 *  44 i64 atime    52 i64 mtime 60 i64 ctime 68 u64 generation
 *  76 u64 cached_bytes          84 i64 last_access
 *  92 u64 s3_size 100 i64 s3_mtime
 * 108 u32 etag length, etag bytes, u32 s3_key length (UINT32_MAX: NULL),
 *     s3_key bytes
 * A record is rewritten as version 2 when its inode next changes. A reader
 * refuses other versions (-EPROTO).
 */
enum {
	REC_RDEV = 1u << 0,
	REC_CACHED = 1u << 1,
	REC_ACCESS = 1u << 2,
	REC_S3_SIZE = 1u << 3,
	REC_S3_MTIME = 1u << 4,
	REC_ETAG = 1u << 5,
	REC_KEY = 1u << 6,
};

/* The most a version-2 record takes besides the key: 20 varints of at most
 * 10 bytes, the version byte, the ETag. */
#define INODE_REC2_MAX (1 + 20 * 10 + sizeof(((struct meta_inode *)0)->etag))

static uint8_t *put_uvar(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

/* a - b as a zigzag varint: small either way round. */
static uint8_t *put_zdiff(uint8_t *p, int64_t a, int64_t b)
{
	uint64_t d = (uint64_t)a - (uint64_t)b;

	return put_uvar(p, (d << 1) ^ (0 - (d >> 63)));
}

/* Returns bytes taken (<= INODE_REC2_MAX + the key's length). */
static size_t inode_encode(const struct meta_inode *in, uint8_t *buf,
			   size_t elen, size_t klen)
{
	unsigned has = (in->rdev ? REC_RDEV : 0) |
		       (in->cached_bytes ? REC_CACHED : 0) |
		       (in->last_access_ns ? REC_ACCESS : 0) |
		       (in->s3_size ? REC_S3_SIZE : 0) |
		       (in->s3_mtime_ns ? REC_S3_MTIME : 0) |
		       (elen ? REC_ETAG : 0) | (in->s3_key ? REC_KEY : 0);
	uint8_t *p = buf;

	*p++ = INODE_REC_VERSION;
	p = put_uvar(p, in->mode);
	p = put_uvar(p, in->uid);
	p = put_uvar(p, in->gid);
	p = put_uvar(p, in->nlink);
	p = put_uvar(p, in->state);
	p = put_uvar(p, in->flags);
	p = put_uvar(p, in->size);
	p = put_uvar(p, in->generation);
	p = put_zdiff(p, in->mtime_ns, 0);
	p = put_zdiff(p, in->atime_ns, in->mtime_ns);
	p = put_zdiff(p, in->ctime_ns, in->mtime_ns);
	p = put_uvar(p, has);
	if (has & REC_RDEV)
		p = put_uvar(p, in->rdev);
	if (has & REC_CACHED)
		p = put_uvar(p, in->cached_bytes);
	if (has & REC_ACCESS)
		p = put_zdiff(p, in->last_access_ns, in->mtime_ns);
	if (has & REC_S3_SIZE)
		p = put_uvar(p, in->s3_size);
	if (has & REC_S3_MTIME)
		p = put_zdiff(p, in->s3_mtime_ns, in->mtime_ns);
	if (has & REC_ETAG) {
		p = put_uvar(p, elen);
		memcpy(p, in->etag, elen);
		p += elen;
	}
	if (has & REC_KEY) {
		p = put_uvar(p, klen);
		memcpy(p, in->s3_key, klen);
		p += klen;
	}
	return (size_t)(p - buf);
}

struct rec_reader {
	const uint8_t *p, *end;
	bool bad;
};

static uint64_t get_uvar(struct rec_reader *r)
{
	uint64_t v = 0;

	for (unsigned shift = 0; shift < 64; shift += 7) {
		uint8_t b;

		if (r->p == r->end)
			break;
		b = *r->p++;
		/* The tenth byte may only hold the top bit. */
		if (shift == 63 && b > 1)
			break;
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return v;
	}
	r->bad = true;
	return 0;
}

static int64_t get_zdiff(struct rec_reader *r, int64_t base)
{
	uint64_t z = get_uvar(r);
	uint64_t d = (z >> 1) ^ (0 - (z & 1));

	return (int64_t)((uint64_t)base + d);
}

static uint32_t get_u32var(struct rec_reader *r)
{
	uint64_t v = get_uvar(r);

	if (v > UINT32_MAX)
		r->bad = true;
	return (uint32_t)v;
}

/* The next n bytes, or NULL past the end. */
static const uint8_t *get_bytes(struct rec_reader *r, uint64_t n)
{
	const uint8_t *q = r->p;

	if (r->bad || n > (uint64_t)(r->end - r->p)) {
		r->bad = true;
		return NULL;
	}
	r->p += n;
	return q;
}

static int inode_decode_v2(const MDB_val *v, struct meta_inode *out)
{
	struct rec_reader r = {.p = (const uint8_t *)v->mv_data + 1,
			       .end = (const uint8_t *)v->mv_data + v->mv_size};
	const uint8_t *q;
	uint64_t has, n;

	out->mode = get_u32var(&r);
	out->uid = get_u32var(&r);
	out->gid = get_u32var(&r);
	out->nlink = get_u32var(&r);
	out->state = get_u32var(&r);
	out->flags = get_u32var(&r);
	out->size = get_uvar(&r);
	out->generation = get_uvar(&r);
	out->mtime_ns = get_zdiff(&r, 0);
	out->atime_ns = get_zdiff(&r, out->mtime_ns);
	out->ctime_ns = get_zdiff(&r, out->mtime_ns);
	has = get_uvar(&r);
	if (has & ~(uint64_t)(REC_KEY * 2 - 1))
		return -EPROTO;
	if (has & REC_RDEV)
		out->rdev = get_uvar(&r);
	if (has & REC_CACHED)
		out->cached_bytes = get_uvar(&r);
	if (has & REC_ACCESS)
		out->last_access_ns = get_zdiff(&r, out->mtime_ns);
	if (has & REC_S3_SIZE)
		out->s3_size = get_uvar(&r);
	if (has & REC_S3_MTIME)
		out->s3_mtime_ns = get_zdiff(&r, out->mtime_ns);
	if (has & REC_ETAG) {
		n = get_uvar(&r);
		if (n >= sizeof(out->etag))
			return -EPROTO;
		q = get_bytes(&r, n);
		if (q)
			memcpy(out->etag, q, n);
	}
	if (has & REC_KEY) {
		n = get_uvar(&r);
		q = get_bytes(&r, n);
		if (!q || r.p != r.end)
			return -EPROTO;
		out->s3_key = malloc(n + 1);
		if (!out->s3_key)
			return -ENOMEM;
		memcpy(out->s3_key, q, n);
		out->s3_key[n] = '\0';
	}
	return r.bad || r.p != r.end ? -EPROTO : 0;
}

static int inode_decode_v1(const MDB_val *v, struct meta_inode *out)
{
	const uint8_t *p = v->mv_data, *end = p + v->mv_size;
	uint32_t elen, klen;

	if (v->mv_size < INODE_REC1_FIXED + 8 || get_le32(p) != 1)
		return -EPROTO;
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
	p += INODE_REC1_FIXED;
	elen = get_le32(p);
	p += 4;
	if (elen >= sizeof(out->etag) || (size_t)(end - p) < elen + 4u)
		return -EPROTO;
	memcpy(out->etag, p, elen);
	p += elen;
	klen = get_le32(p);
	p += 4;
	if (klen == INODE_KEY_NULL)
		return p == end ? 0 : -EPROTO;
	if ((size_t)(end - p) != klen)
		return -EPROTO;
	out->s3_key = malloc((size_t)klen + 1);
	if (!out->s3_key)
		return -ENOMEM;
	memcpy(out->s3_key, p, klen);
	out->s3_key[klen] = '\0';
	return 0;
}

int meta_inode_decode(uint64_t ino, const MDB_val *v, struct meta_inode *out)
{
	int ret = -EPROTO;

	memset(out, 0, sizeof(*out));
	if (v->mv_size >= 1 && *(const uint8_t *)v->mv_data == 2)
		ret = inode_decode_v2(v, out);
	else if (v->mv_size >= 4)
		ret = inode_decode_v1(v, out);
	if (ret == 0) {
		out->ino = ino;
		return 0;
	}
	meta_inode_release(out);
	return ret;
}

/* Decode into out (zeroed first); s3_key is malloc'ed. */
static int inode_decode(uint64_t ino, const MDB_val *v, struct meta_inode *out)
{
	int ret = meta_inode_decode(ino, v, out);

	if (ret == -EPROTO)
		log_error("meta: inode %llu: bad record",
			  (unsigned long long)ino);
	return ret;
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
	uint8_t kb[8], small[512], *buf = small;
	MDB_val k = key_u64(kb, in->ino), v;
	size_t elen, klen;
	int ret;

	ret = need_write(txn);
	if (ret)
		return ret;
	if (!in->ino)
		return stick(txn, -EINVAL);
	elen = strnlen(in->etag, sizeof(in->etag) - 1);
	klen = in->s3_key ? strlen(in->s3_key) : 0;
	if (klen >= INODE_KEY_NULL)
		return stick(txn, -ENAMETOOLONG);
	if (INODE_REC2_MAX + klen > sizeof(small)) {
		buf = malloc(INODE_REC2_MAX + klen);
		if (!buf)
			return stick(txn, -ENOMEM);
	}
	v.mv_size = inode_encode(in, buf, elen, klen);
	v.mv_data = buf;
	ret = raw_put(txn, T_INODES, &k, &v, 0);
	if (buf != small)
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

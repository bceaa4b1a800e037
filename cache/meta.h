/* SPDX-License-Identifier: MIT */
/*
 * meta — the LMDB metadata store: inodes, directory entries, chunk presence,
 * xattrs, the LRU and dirty indexes, tasks, and the super table.
 *
 * Only this module includes lmdb.h; MDB_* codes are translated to negative
 * errno here (MDB_NOTFOUND -> -ENOENT, MDB_MAP_FULL -> -ENOSPC,
 * MDB_READERS_FULL -> -EAGAIN, MDB_KEYEXIST -> -EEXIST, others -> -EIO).
 *
 * A struct meta_txn is a read or write transaction. Its first error sticks:
 * once a call failed, later calls on the same transaction return that error
 * without touching LMDB and meta_txn_commit() aborts and returns it. So a
 * sequence of puts needs one check, at the commit. (-ENOENT from a lookup is
 * an answer, not an error, and does not stick.)
 *
 * Read transactions may run in any number of threads at once; LMDB serialises
 * writers. A thread holds at most one transaction. The environment is opened
 * with MDB_NOTLS so read transactions may be handed between threads.
 *
 * Durability: meta_open(..., nosync=false) makes every commit durable; with
 * nosync=true commits are durable after meta_sync() (used by fsync,
 * fsyncdir and unmount; a thread also syncs every 5 s while there are
 * commits) and the environment survives a process crash intact. After a
 * power loss the next meta_open() goes back to the last meta_sync(),
 * intact (meta_safe.c: the pages of a synced transaction are not reused
 * until the next sync, and its meta page is kept in DIR/meta/safe). On
 * ext4, XFS and tmpfs the environment uses MDB_WRITEMAP (a commit stores
 * into the shared map instead of writing each page), with data.mdb kept
 * allocated past every page a transaction may store into, so a full file
 * system fails changes with -ENOSPC instead of SIGBUS (meta_space.c);
 * elsewhere commits pwrite() their pages.
 */
#ifndef TIDEFS_META_H
#define TIDEFS_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define META_ROOT_INO 1

/* File states, after Lustre HSM (see docs/DESIGN.md). */
enum meta_state {
	META_NEW = 0,	   /* never exported */
	META_DIRTY = 1,	   /* exported, changed since */
	META_ARCHIVED = 2, /* matches S3; data fully or partly cached */
	META_RELEASED = 3, /* matches S3; no local data */
	META_LOST = 4, /* S3 object gone/changed under incomplete local data */
};

/* Returns "new", "dirty", "archived", "released", "lost". */
const char *meta_state_name(enum meta_state s);

enum meta_inode_flags {
	META_F_NORELEASE = 1 << 0, /* pinned */
	META_F_UNLINKED = 1 << 1,  /* nlink 0 but still open */
	META_F_DATA_CHANGED =
		1 << 2, /* data differs from S3 (not only metadata) */
	/* Created from a listing: mode, owner, times (and for a symlink its
	 * type and target) still to come from HeadObject. Such a record is
	 * never handed to the kernel; the metadata filler completes it. */
	META_F_HEAD_PENDING = 1 << 3,
};

struct meta_inode {
	uint64_t ino;
	uint32_t mode; /* with file-type bits */
	uint32_t uid, gid;
	uint32_t nlink;
	uint32_t state; /* enum meta_state */
	uint32_t flags; /* enum meta_inode_flags */
	uint64_t rdev;
	uint64_t size;
	int64_t atime_ns, mtime_ns, ctime_ns;
	uint64_t generation;   /* bumped on every data/metadata change */
	uint64_t cached_bytes; /* bytes of present chunks */
	int64_t last_access_ns;
	uint64_t s3_size;    /* size of the backing object */
	int64_t s3_mtime_ns; /* its LastModified */
	char etag[80];	     /* its ETag with quotes; "" when none */
	char *s3_key;	     /* owned, full object key; NULL when none. Symlink
			      * targets are stored in the data file, not here. */
};

/* Frees s3_key and zeroes the struct. */
void meta_inode_release(struct meta_inode *ino);

struct meta_db;	 /* opaque */
struct meta_txn; /* opaque */

/*
 * Open (creating if needed) the environment in dir/meta (a directory).
 * map_size: maximum size of the database (0 = 64 GiB, sparse). Returns 0,
 * -errno. The caller holds the cache dir's exclusive lock.
 */
int meta_open(const char *dir, uint64_t map_size, bool nosync,
	      struct meta_db **out);
/*
 * meta_open() for a mount: first, unless the store was closed cleanly
 * (meta_close) since it was last opened, check it for damage in a child
 * process (LMDB may crash on a damaged page): LMDB's page accounting and
 * free list, every table walked in order, every record decoded, every name
 * leading from a directory to an inode (meta_check.c). A damaged store is
 * left as it is: -EUCLEAN, with what is wrong in why[why_len].
 */
int meta_open_checked(const char *dir, uint64_t map_size, bool nosync,
		      char *why, size_t why_len, struct meta_db **out);
/*
 * The check of meta_open_checked() on demand (`tidefs check`), whether or
 * not the store was closed cleanly, after going back to the last sync point
 * where a mount would. Opens no environment for writing. 0: intact,
 * -EUCLEAN: damaged (why says how), other -errno: could not check. The
 * caller holds the cache dir's lock.
 */
int meta_check(const char *dir, char *why, size_t why_len);

/*
 * Read what can be read of a store that may be damaged (read-only, in child
 * processes, so LMDB crashing on a damaged page ends only them): every inode
 * record that decodes and the names that lead to it from the root, walking
 * each table forward and, where that stops early, backward from its end.
 * Calls cb for every regular file and symlink found; path is relative to
 * the root, or NULL when no complete chain of names was found. A non-zero
 * return of cb stops the walk and is returned. The caller holds the cache
 * dir's lock (nothing may write the store meanwhile).
 */
struct meta_salvage_ent {
	uint64_t ino;
	uint32_t mode, state, flags;
	uint64_t size;
	const char *path;
};
struct meta_salvage_stats {
	size_t inodes;		 /* inode records read */
	size_t unnamed;		 /* files and symlinks without a path */
	unsigned damaged_tables; /* of inodes, dentries: walks that stopped */
};
typedef int (*meta_salvage_cb)(void *arg, const struct meta_salvage_ent *e);
int meta_salvage(const char *dir, meta_salvage_cb cb, void *arg,
		 struct meta_salvage_stats *st);
/* Records that the store was closed cleanly, syncs, closes. */
void meta_close(struct meta_db *db);
/* Flush commits made with nosync to disk (a sync point: see above). */
int meta_sync(struct meta_db *db);
/* meta_sync() for one file's fdatasync: nothing when a sync point still in
 * force (one a power loss goes back to) already holds every transaction up
 * to txnid, the last one that changed what reading the file back needs.
 * Without sync points (another LMDB layout) it always syncs: the store is
 * then only whole on disk right after a sync. */
int meta_sync_upto(struct meta_db *db, uint64_t txnid);
/* The id of the last committed transaction; txn's own (a write
 * transaction's once it commits). */
uint64_t meta_last_txn(struct meta_db *db);
uint64_t meta_txn_id(const struct meta_txn *txn);
/* How many times the store was synced since it was opened. */
uint64_t meta_sync_count(struct meta_db *db);
/* With nosync: sync by itself every seconds (default 5) while there are
 * commits; what a power loss can lose of what was not synced. */
void meta_set_sync_interval(struct meta_db *db, int seconds);
/* The store's pages are unmapped from the process (they stay in the page
 * cache) after every 256 write transactions and after any transaction ns
 * (default 1 s) after the last time, so that the daemon's resident memory
 * does not grow with the store. */
void meta_set_trim_interval(struct meta_db *db, int64_t ns);

/* How the store uses its file: MDB_WRITEMAP or not, the bytes its pages
 * use (up to the last committed page) and, with MDB_WRITEMAP, the bytes of
 * data.mdb kept allocated for commits (the rest of the file is sparse). */
struct meta_space {
	bool writemap;
	uint64_t used_bytes;
	uint64_t allocated_bytes;
};
void meta_space_info(struct meta_db *db, struct meta_space *out);

int meta_txn_begin(struct meta_db *db, bool write, struct meta_txn **out);
/* This write transaction frees space on the cache dir's file system (it
 * removes files or data): when that file system is full it may use the
 * metadata room kept back for such changes, where others fail with
 * -ENOSPC. */
void meta_txn_frees_space(struct meta_txn *txn);
/* Commits (aborts if an error stuck) and frees the transaction. */
int meta_txn_commit(struct meta_txn *txn);
/* Aborts and frees; NULL is fine. */
void meta_txn_abort(struct meta_txn *txn);
/* The sticky error, 0 if none. */
int meta_txn_error(const struct meta_txn *txn);

/* ---- super: name -> opaque value ---- */
/* Copies at most len bytes into buf, sets *outlen to the stored length.
 * -ENOENT when absent. */
int meta_super_get(struct meta_txn *txn, const char *name, void *buf,
		   size_t len, size_t *outlen);
int meta_super_put(struct meta_txn *txn, const char *name, const void *val,
		   size_t len);
/* Convenience for NUL-terminated strings and u64 values. */
int meta_super_get_str(struct meta_txn *txn, const char *name, char *buf,
		       size_t len);
int meta_super_put_str(struct meta_txn *txn, const char *name, const char *val);
int meta_super_get_u64(struct meta_txn *txn, const char *name, uint64_t *v);
int meta_super_put_u64(struct meta_txn *txn, const char *name, uint64_t v);

/* ---- inodes ---- */
/* Allocate the next inode number (super "next_ino", starting at 2). */
int meta_ino_alloc(struct meta_txn *txn, uint64_t *ino);
/* out is overwritten; release it with meta_inode_release(). -ENOENT. */
int meta_inode_get(struct meta_txn *txn, uint64_t ino, struct meta_inode *out);
int meta_inode_put(struct meta_txn *txn, const struct meta_inode *ino);
int meta_inode_del(struct meta_txn *txn, uint64_t ino);
/* Visit every inode (ino order). cb returns 0 to go on, non-zero to stop
 * (returned). The inode is only valid during the call. */
typedef int (*meta_inode_cb)(void *arg, const struct meta_inode *ino);
int meta_inode_foreach(struct meta_txn *txn, meta_inode_cb cb, void *arg);

/* ---- dentries: (parent, name) -> ino ---- */
int meta_dentry_get(struct meta_txn *txn, uint64_t parent, const char *name,
		    uint64_t *ino);
/* -EEXIST when the name exists (unless replace). */
int meta_dentry_put(struct meta_txn *txn, uint64_t parent, const char *name,
		    uint64_t ino, bool replace);
int meta_dentry_del(struct meta_txn *txn, uint64_t parent, const char *name);
/* Entries of parent in name order starting strictly after `after` (NULL: from
 * the first). cb returns 0 to go on, non-zero to stop (returned). */
typedef int (*meta_dentry_cb)(void *arg, const char *name, uint64_t ino);
int meta_dentry_foreach(struct meta_txn *txn, uint64_t parent,
			const char *after, meta_dentry_cb cb, void *arg);
/* 1 when parent has no entries, 0 when it has, or -errno. */
int meta_dir_is_empty(struct meta_txn *txn, uint64_t parent);

/* ---- chunks: (ino, index) -> present ---- */
int meta_chunk_set(struct meta_txn *txn, uint64_t ino, uint64_t idx);
/* Set bits in bitmap (nchunks bits, caller-zeroed) for present chunks. */
int meta_chunk_load(struct meta_txn *txn, uint64_t ino, uint8_t *bitmap,
		    uint64_t nchunks);
/* Remove chunks with index >= from (0: all of them). */
int meta_chunk_clear(struct meta_txn *txn, uint64_t ino, uint64_t from);
/* Remove chunk idx; absent is fine. */
int meta_chunk_unset(struct meta_txn *txn, uint64_t ino, uint64_t idx);

/* ---- xattrs: (ino, name) -> value ---- */
/* Copies at most len bytes; *outlen gets the stored length. -ENOENT. */
int meta_xattr_get(struct meta_txn *txn, uint64_t ino, const char *name,
		   void *buf, size_t len, size_t *outlen);
int meta_xattr_put(struct meta_txn *txn, uint64_t ino, const char *name,
		   const void *val, size_t len);
int meta_xattr_del(struct meta_txn *txn, uint64_t ino, const char *name);
typedef int (*meta_xattr_cb)(void *arg, const char *name);
int meta_xattr_foreach(struct meta_txn *txn, uint64_t ino, meta_xattr_cb cb,
		       void *arg);
/* Remove every xattr of ino. */
int meta_xattr_clear(struct meta_txn *txn, uint64_t ino);

/* ---- dirty: ino -> (), lru: (last access ns, ino) -> () ---- */
int meta_dirty_add(struct meta_txn *txn, uint64_t ino);
int meta_dirty_del(struct meta_txn *txn, uint64_t ino);
typedef int (*meta_ino_cb)(void *arg, uint64_t ino);
int meta_dirty_foreach(struct meta_txn *txn, meta_ino_cb cb, void *arg);
int meta_lru_put(struct meta_txn *txn, int64_t access_ns, uint64_t ino);
int meta_lru_del(struct meta_txn *txn, int64_t access_ns, uint64_t ino);
/* Oldest first. */
typedef int (*meta_lru_cb)(void *arg, int64_t access_ns, uint64_t ino);
int meta_lru_foreach(struct meta_txn *txn, meta_lru_cb cb, void *arg);

/*
 * ---- gone: S3 key -> ETag ----
 * What this cache last knew a key to hold when a name standing for it went
 * away (deleted, renamed away or over, detached by an export, exported
 * under another key; or another name of a hard link was exported there): an
 * export of a file without its own object at that key may replace exactly
 * that object (If-Match) where it would otherwise expect none, and an
 * import finding it there counts it unchanged. The LMDB key is the hex
 * SHA-256 of the S3 key (S3 keys may be longer than LMDB keys); the record
 * keeps the S3 key to tell a collision.
 */
int meta_gone_put(struct meta_txn *txn, const char *key, const char *etag);
/* 0 and the ETag (NUL-terminated, truncated to len), or -ENOENT. */
int meta_gone_get(struct meta_txn *txn, const char *key, char *etag,
		  size_t len);
/* Absent is fine. */
int meta_gone_del(struct meta_txn *txn, const char *key);

/* ---- tasks: TaskId -> JSON text ---- */
int meta_task_get(struct meta_txn *txn, const char *id, char **json);
int meta_task_put(struct meta_txn *txn, const char *id, const char *json);
int meta_task_del(struct meta_txn *txn, const char *id);
typedef int (*meta_task_cb)(void *arg, const char *id, const char *json);
int meta_task_foreach(struct meta_txn *txn, meta_task_cb cb, void *arg);

#endif

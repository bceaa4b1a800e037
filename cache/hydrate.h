/* SPDX-License-Identifier: MIT */
/*
 * hydrate — bringing file data in from S3 on demand.
 *
 * A struct hydrate_file is the in-memory state of one open regular file,
 * shared by all handles of that inode: its data file descriptor, a bitmap of
 * present chunks, a bitmap of chunks being fetched, and read-ahead state.
 * hydrate_ensure() makes a byte range present, fetching the missing chunks
 * with ranged GETs (If-Match: the inode's ETag) on the fetch pool; readers of
 * a chunk already in flight wait for that one fetch. Sequential readers grow
 * a read-ahead window so several GETs are in flight.
 *
 * Presence reaches LMDB only after the bytes are on disk: fetched chunks go
 * onto a persist list; a persister thread fdatasync()s their files and then
 * records them (and the inode's cached_bytes / state) in one transaction.
 * A crash loses at most presence records, never marks absent data present.
 *
 * A 412 from S3 means the object changed: the file turns META_LOST and every
 * later read of it fails with -EIO, so old and new bytes are never mixed.
 */
#ifndef TIDEFS_HYDRATE_H
#define TIDEFS_HYDRATE_H

#include <stdbool.h>
#include <stdint.h>

#include "cache/chunk.h"
#include "cache/meta.h"
#include "s3/s3.h"

struct hydrate;	     /* opaque */
struct hydrate_file; /* opaque */

struct hydrate_stats {
	uint64_t hits;		/* reads served entirely from the cache */
	uint64_t misses;	/* reads that waited for a fetch */
	uint64_t bytes_fetched; /* bytes received from S3 */
	uint64_t fetch_errors;
	uint64_t passthrough_opens; /* handles the kernel read by itself */
	uint64_t open_handles;	    /* file handles open now */
};

/*
 * Called without locks held after an inode's state changed (old/new enum
 * meta_state), from the persister or from a writing thread.
 */
typedef void (*hydrate_change_cb)(void *arg, uint64_t ino, int old_state,
				  int new_state);

struct hydrate_config {
	int fetch_threads;	     /* 0 = 16 */
	uint32_t readahead_max;	     /* chunks; 0 = 128 */
	hydrate_change_cb on_change; /* may be NULL */
	void *cb_arg;
	uint64_t capacity;     /* cache size: writes beyond it get -ENOSPC */
	uint64_t initial_used; /* bytes cached at start (sum of cached_bytes) */
	/* Empty data files kept made ahead for the next inode numbers, so a
	 * new file's first write does not wait for the local file system to
	 * create one; 0 = none. Call hydrate_free() only once nothing
	 * allocates inode numbers any more (it removes the unused ones). */
	unsigned spare_files;
};

/* Starts the fetch pool and the persister. The store, chunk store and client
 * must outlive the returned context. */
int hydrate_new(struct meta_db *db, struct chunk_store *cs,
		struct s3_client *s3, const struct hydrate_config *cfg,
		struct hydrate **out);
/* Waits for in-flight fetches, persists what was fetched, stops threads. */
void hydrate_free(struct hydrate *h);
/* Persist pending presence records now (stats, tasks, unmount). */
int hydrate_flush(struct hydrate *h);

/*
 * Get the shared state of regular file ino, opening its data file (created
 * sparse at the inode's size). Reference counted: pair with hydrate_close().
 * -ENOENT, -EISDIR / -EINVAL for non-regular inodes, -errno.
 */
int hydrate_open(struct hydrate *h, uint64_t ino, struct hydrate_file **out);
void hydrate_close(struct hydrate_file *f);
/* The data file descriptor (valid until hydrate_close), or -1 for an empty
 * file that never had data. */
int hydrate_fd(const struct hydrate_file *f);
/* Current size of the file as known to the cache. */
uint64_t hydrate_size(const struct hydrate_file *f);

/*
 * Make [off, off+len) (clipped to the file size) present in the data file,
 * blocking until it is. 0, or -EIO (fetch failed within the retry budget, or
 * the file is lost and the range is not cached), -ENOMEM.
 */
int hydrate_ensure(struct hydrate_file *f, uint64_t off, uint64_t len);

/*
 * Read [off, off+len): makes it present, then calls reply(arg, fd, off, n)
 * with the data file and the range clipped to the file size (n may be 0),
 * while writers of the file are held off. Returns reply's result, or the
 * error of hydrate_ensure (reply is then not called).
 */
typedef int (*hydrate_reply_fn)(void *arg, int fd, uint64_t off, size_t n);
int hydrate_read(struct hydrate_file *f, uint64_t off, size_t len,
		 hydrate_reply_fn reply, void *arg);

/*
 * Changes. Each one fetches the chunks it only partly overwrites first
 * (read-modify-write), changes the data file, and records the result in one
 * transaction: size, mtime/ctime, generation, the presence of chunks it
 * overwrote whole, and the state (archived/released/lost -> dirty, added to
 * the dirty table; new stays new). Returns 0 or -errno: -ENOSPC when the
 * cache would grow past its capacity (or the disk is full), -EIO when a
 * needed fetch failed.
 */
enum hydrate_write_flags {
	/* In: the caller lacks CAP_FSETID and the kernel cleared nothing:
	 * also clear S_ISUID, and S_ISGID when group-executable or when the
	 * caller is not in the file's group, in the same transaction. */
	HYDRATE_KILL_SUIDGID = 1 << 0,
	/* Out: the mode changed (set-id bits cleared). */
	HYDRATE_MODE_CHANGED = 1 << 1,
	/* Out: the kernel may hold pages of the file (see
	 * hydrate_note_created). */
	HYDRATE_MAY_BE_CACHED = 1 << 2,
	/* In: also remove security.capability in the same transaction, as
	 * the kernel does before any write through its page cache (whoever
	 * writes) but not before a direct one. */
	HYDRATE_KILL_PRIV = 1 << 3,
	/* In (hydrate_truncate): update mtime and ctime even when the size
	 * does not change (open with O_TRUNC does). */
	HYDRATE_TIMES = 1 << 4,
	/* In: the caller lacks CAP_FSETID and the kernel cleared what its
	 * FUSE client clears (S_ISUID; S_ISGID when group-executable): also
	 * clear S_ISGID of a file that is not group-executable when the
	 * caller is not in its group, as the VFS does since Linux 6.2
	 * (setattr_should_drop_sgid) and FUSE's client does not. */
	HYDRATE_KILL_SGID_NOGROUP = 1 << 5,
};
/* Who makes a change, for the set-id rules: whether the caller is in group
 * gid (its own or a supplementary one); in_group NULL: S_ISGID without group
 * execute is never cleared for being outside the group. */
struct hydrate_caller {
	bool (*in_group)(void *arg, uint32_t gid);
	void *arg;
};
/* *flags: HYDRATE_KILL_* in; on success the out flags are added. caller:
 * for the group test of the KILL flags (NULL: taken to be in the group). */
int hydrate_write(struct hydrate_file *f, const void *buf, size_t len,
		  uint64_t off, unsigned *flags,
		  const struct hydrate_caller *caller);
/* f was just created (call before its first handle is noted): the kernel
 * holds no pages of it until it is read. */
void hydrate_note_created(struct hydrate_file *f);
/* mode: 0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE,
 * FALLOC_FL_ZERO_RANGE[|KEEP_SIZE]; others -EOPNOTSUPP. *flags and caller
 * as for hydrate_write(). */
int hydrate_fallocate(struct hydrate_file *f, int mode, uint64_t off,
		      uint64_t len, unsigned *flags,
		      const struct hydrate_caller *caller);
/* Truncate or extend; shrinking below the S3-backed extent needs no fetch.
 * flags: HYDRATE_KILL_SUIDGID, HYDRATE_KILL_SGID_NOGROUP, HYDRATE_TIMES;
 * caller as for hydrate_write(). */
int hydrate_truncate(struct hydrate_file *f, uint64_t size, unsigned flags,
		     const struct hydrate_caller *caller);
/* Data file and metadata durable on disk. */
int hydrate_fsync(struct hydrate_file *f, int datasync);

/*
 * An export gave ino a new S3 identity: key and ETag. With all_local, the
 * object now holds exactly the local size bytes, so everything is backed and
 * present; otherwise (a copy with new metadata) the content is unchanged.
 * Updates an open file's state; a no-op when ino is not open.
 */
int hydrate_exported(struct hydrate *h, uint64_t ino, const char *key,
		     const char *etag, uint64_t size, bool all_local);

/* Asked when the cache is full: free room for `bytes` (waiting for it);
 * 0 when something was freed (try again), -ENOSPC when nothing can be. */
typedef int (*hydrate_space_fn)(void *arg, uint64_t bytes);
void hydrate_set_space_cb(struct hydrate *h, hydrate_space_fn fn, void *arg);

/* A file handle opened (+1) or closed (-1) on f. When the last handle of
 * a file that was read closes, its LRU position is renewed. */
void hydrate_note_handle(struct hydrate_file *f, int delta);

/*
 * Passthrough (Linux 6.9+): the kernel reads a fully cached file's data
 * file itself, without a request to us per read. attach registers a data
 * file descriptor with the kernel and returns its id (>= 0) or -errno;
 * detach forgets an id once no handle uses it. Set once, before the mount
 * goes live; without it no handle is passthrough.
 */
typedef int (*hydrate_attach_fn)(void *arg, int fd);
typedef void (*hydrate_detach_fn)(void *arg, int id);
void hydrate_set_passthrough(struct hydrate *h, hydrate_attach_fn attach,
			     hydrate_detach_fn detach, void *arg);

/*
 * A handle opens on f: hydrate_note_handle(f, 1) that also decides whether
 * the handle is passthrough. Returns the data file's kernel id when it is,
 * -1 when it is not, or -errno (nothing noted).
 * A read-only handle is passthrough when every chunk is present, no fetch
 * is in flight, the file is not lost, and every other open handle of f is
 * passthrough too. The kernel refuses to mix the two kinds on one inode, so
 * while any handle is passthrough every new one is, writable ones too: the
 * caller must have the kernel still send their reads and writes to us
 * (FOPEN_DIRECT_IO), and since a shared writable mapping of such a handle
 * writes to the data file directly, the file is recorded as changed (dirty)
 * when it opens. Readers and writers of the other kind share the data
 * file's page cache, so all of them see every write at once.
 * While a handle is passthrough, hydrate_release() finds the file open and
 * hydrate_invalidate_begin() answers -EBUSY: its bytes cannot change under
 * the kernel's reads.
 */
int hydrate_handle_open(struct hydrate_file *f, bool writable);
/* A handle of hydrate_handle_open() closes; passthrough: it returned >= 0. */
void hydrate_handle_close(struct hydrate_file *f, bool passthrough);

/*
 * Release the cached data of regular file ino: only when it is archived
 * (matches S3), not pinned (META_F_NORELEASE) and, with skip_open, has no
 * open handles. The store forgets its chunks (durably) before the bytes are
 * punched; state becomes released. *freed gets the bytes freed.
 * 0, -EAGAIN (not archived), -EPERM (pinned), -EBUSY (open or busy),
 * -ENOENT, -errno.
 */
int hydrate_release(struct hydrate *h, uint64_t ino, bool skip_open,
		    uint64_t *freed);

/*
 * hydrate_release() for a batch, with one LMDB transaction and one sync for
 * all of it (durable before any file is punched). Looks at inos[0..n) in
 * order, taking each file it can (its io lock with a try-lock, so busy files
 * are skipped, never waited for; a file with fetches in flight is waited for
 * only while no other file is taken, else it is busy too), and stops taking
 * files once those taken hold at least `want` cached bytes (0: no limit).
 * *tried is how many inos it looked at; for each i < *tried, errs[i] gets
 * what hydrate_release() would return for it and freed[i] the bytes freed.
 * Holds the io locks of the files taken until the batch is punched: keep n
 * small (a few dozen). 0, or -ENOMEM (nothing was tried).
 */
int hydrate_release_many(struct hydrate *h, const uint64_t *inos, size_t n,
			 bool skip_open, uint64_t want, int *errs,
			 uint64_t *freed, size_t *tried);

/*
 * The S3 object of regular file ino changed (an IMPORT_METADATA_FROM_REPOSITORY
 * task): the caller brackets its LMDB update of the inode (new size, ETag,
 * times; state released; chunk records cleared) with these two calls.
 *
 * hydrate_invalidate_begin() takes the file's shared state (opening it when
 * nobody has), holds off its readers and writers, waits for its fetches and
 * persists their presence records, so none lands after the update. 0,
 * -ENOENT, -EISDIR / -EINVAL (not a regular file), -EBUSY (a passthrough
 * handle is still open after 2 s: the kernel reads the data file without
 * us), -errno; *out is NULL on error. Holds the file until the end call:
 * keep the bracket short (no network I/O inside).
 *
 * hydrate_invalidate_end() with changed (the update committed): drops the
 * cached bytes (the data file stays, sparse, at the new size), reloads size,
 * key, ETag and chunk state from the store so later reads fetch the new
 * object, and takes the dropped bytes off hydrate_used(). Without changed it
 * only lets readers and writers go on. Either way f is released; NULL is
 * fine. The kernel's page cache of the file is the caller's to invalidate.
 */
int hydrate_invalidate_begin(struct hydrate *h, uint64_t ino,
			     struct hydrate_file **out);
void hydrate_invalidate_end(struct hydrate_file *f, bool changed);

/* Bytes cached in total (what the capacity is measured against). */
uint64_t hydrate_used(struct hydrate *h);
/* Remove the data file of a deleted inode that held `cached` bytes. */
void hydrate_purge(struct hydrate *h, uint64_t ino, uint64_t cached);

void hydrate_get_stats(struct hydrate *h, struct hydrate_stats *out);

#endif

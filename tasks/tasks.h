/* SPDX-License-Identifier: MIT */
/*
 * tasks — data repository tasks: the FSx request/response model and
 * validation (task.h), the engine that queues, runs, persists, describes and
 * cancels tasks in two lanes, and the task types themselves (export, import,
 * release, auto-release). Also the first-mount import of a prefix.
 */
#ifndef TIDEFS_TASKS_H
#define TIDEFS_TASKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/chunk.h"
#include "cache/hydrate.h"
#include "cache/meta.h"
#include "s3/s3.h"
#include "tasks/task.h"

struct task_engine; /* opaque */
struct task_filler; /* opaque, see task_filler_new() */

struct task_engine_config {
	struct meta_db *db;
	struct chunk_store *cs;
	struct s3_client *s3;
	struct hydrate *hy;
	struct task_mount_info mount; /* fsid, bucket, prefix */
	const char *region;	      /* for ResourceARN */
	const char *account;	/* for ResourceARN; NULL = "000000000000" */
	unsigned max_active;	/* non-finished tasks; 0 = 100 */
	unsigned keep_finished; /* finished tasks kept; 0 = 1000 */
	uint64_t capacity; /* cache size: eviction and DescribeFileSystems */
	unsigned high_pct; /* start evicting above this % of capacity (90) */
	unsigned low_pct;  /* evict down to this % (75) */
	bool export_overwrite; /* --export-conflicts=overwrite */
	/* Told when a task changes a regular file's state (as hydrate's). */
	hydrate_change_cb on_change;
	void *cb_arg;
	/* Told (with cb_arg) when a task changed what the kernel may cache:
	 * the entry name in parent appeared or changed, or ino's attributes
	 * and data. May be NULL. */
	void (*inval_entry)(void *arg, uint64_t parent, const char *name);
	void (*inval_inode)(void *arg, uint64_t ino);
	/* Completes inodes the lazy import left pending before a task acts
	 * on them (import, export). May be NULL (nothing is pending). */
	struct task_filler *filler;
};

/*
 * Load persisted tasks (an EXECUTING one is resumed), start the task worker
 * (export, import) and the release lane. Returns 0 or -errno.
 */
int task_engine_new(const struct task_engine_config *cfg,
		    struct task_engine **out);
/* Stop between files; an executing task stays EXECUTING in the store and is
 * resumed at the next mount. */
void task_engine_free(struct task_engine *e);

/*
 * The FSx operations: request JSON in, response JSON out. *resp is always
 * set (malloc'ed, caller frees): the response object on success, the FSx
 * error body on failure. Return 0, or a TASK_ERR_* code, or -ENOMEM (then
 * *resp may be NULL).
 *   create:    CreateDataRepositoryTask -> {"DataRepositoryTask": {…}}
 *   describe:  DescribeDataRepositoryTasks -> {"DataRepositoryTasks": […],
 *              "NextToken": …}
 *   cancel:    CancelDataRepositoryTask -> {"Lifecycle": …, "TaskId": …}
 *   describe_fs: DescribeFileSystems -> {"FileSystems": [this mount]}
 */
int task_engine_create(struct task_engine *e, const char *json, size_t len,
		       enum task_source src, const char *ctl_token,
		       char **resp);
int task_engine_describe(struct task_engine *e, const char *json, size_t len,
			 char **resp);
int task_engine_cancel(struct task_engine *e, const char *json, size_t len,
		       char **resp);
int task_engine_describe_fs(struct task_engine *e, const char *json, size_t len,
			    char **resp);

/*
 * hydrate_space_fn for the cache: make room for bytes by running (or
 * joining) an automatic AUTO_RELEASE_DATA task and waiting for it. 0 when
 * it freed something, -ENOSPC when nothing was left to release.
 */
int task_engine_make_space(void *engine, uint64_t bytes);

/* The control tree: tasks by name (their ClientRequestToken, or TaskId when
 * they have none). get: the DataRepositoryTask JSON (malloc'ed) or -ENOENT.
 * list: a malloc'ed array of malloc'ed names. */
int task_engine_get_by_name(struct task_engine *e, const char *name,
			    char **json);
int task_engine_list_names(struct task_engine *e, char ***names, size_t *n);

struct task_import_stats {
	uint64_t objects;		/* keys listed */
	uint64_t files, dirs, symlinks; /* inodes created */
	uint64_t skipped; /* keys that cannot be POSIX names (one warning each)
			   */
	uint64_t pending; /* lazy: inodes left META_F_HEAD_PENDING (files
			   * count as files until the filler knows better) */
};

/*
 * Import every object under prefix ("" or ending in '/') into an empty
 * store: files become META_RELEASED (empty files META_ARCHIVED), directories
 * come from key prefixes and from "dir/" marker objects, POSIX metadata from
 * the x-amz-meta-file-* headers (HeadObject, `parallel` requests in flight),
 * defaults as docs/FSX-SEMANTICS.md says. Symlink targets are fetched and
 * written to their data files. The root inode (META_ROOT_INO) must exist.
 * Everything lands in one write transaction, together with the super entry
 * "imported" = 1, so a crash mid-import leaves nothing half-done. Progress is
 * logged for long imports. Returns 0 or -errno (S3 errors as s3.h).
 */
int task_import_prefix(struct meta_db *db, struct chunk_store *cs,
		       struct s3_client *s3, const char *prefix, int parallel,
		       bool lazy, struct task_import_stats *st);

/*
 * With lazy, task_import_prefix writes the tree from the listing alone
 * (only the prefix's own "prefix/" marker is HEADed): files and directory
 * markers get their listed size, ETag and LastModified, the FSx defaults
 * and META_F_HEAD_PENDING. The metadata filler HEADs them afterwards.
 *
 * The filler: a pool of up to `parallel` threads that completes pending
 * inodes exactly as the eager import would have made them (mode, owner,
 * group, times, ETag from HeadObject; symlinks get their type and target
 * from the object's body; a file whose object vanished is removed, a
 * vanished marker leaves an implicit directory), one write transaction per
 * inode. It starts with every pending inode of the store (so it resumes
 * after a crash) and works through them in inode order in the background;
 * task_filler_complete() puts given inodes first and waits for them.
 * Failed HEADs (after the S3 client's retries) stay pending and are tried
 * again every few seconds.
 */
struct task_filler_config {
	struct meta_db *db;
	struct chunk_store *cs;
	struct s3_client *s3;
	const char *prefix; /* the mount's: "" or ending in '/'; borrowed */
	int parallel;	    /* HEADs in flight; 0 = 32 */
	/* Told after each completed inode, from a filler thread, with the
	 * record before and after (after == NULL: the inode is gone). May be
	 * NULL. */
	void (*on_fill)(void *arg, const struct meta_inode *before,
			const struct meta_inode *after);
	void *cb_arg;
};

/* Scan the store for pending inodes and start the pool when there are
 * any. 0, -ENOMEM, -errno of the store. */
int task_filler_new(const struct task_filler_config *cfg,
		    struct task_filler **out);
/* Stop (between inodes; S3 requests in flight finish or are cancelled
 * with s3_client_cancel) and free. NULL is fine. No caller may be inside
 * task_filler_complete(). */
void task_filler_free(struct task_filler *f);
/* Complete the pending inodes among inos[0..n) now, in parallel, ahead of
 * the background order, and wait for them. Inodes not pending (any more)
 * are done at once. errs (may be NULL) gets 0 or -errno per inode (-EIO
 * for S3 failures, -ECANCELED when the filler stops). Returns 0 or the
 * first error. Must not be called holding a transaction. */
int task_filler_complete(struct task_filler *f, const uint64_t *inos, size_t n,
			 int *errs);
/* Queue inos ahead of the background order without waiting (a directory
 * about to be listed). */
void task_filler_prefetch(struct task_filler *f, const uint64_t *inos,
			  size_t n);
/* Inodes still pending in the store (0 when f is NULL). */
uint64_t task_filler_pending(struct task_filler *f);

/*
 * Map an object key (below prefix) to path components: returns 0 and fills
 * comps (pointers into the caller's writable copy `key`, which is split in
 * place) with *ncomps, and *is_dir when the key ends in '/'. -EINVAL for keys
 * that cannot be POSIX names: an empty component ("a//b"), "." or "..", a
 * component longer than 255 bytes, a key equal to the prefix itself.
 */
int task_key_split(char *key, char **comps, size_t maxcomps, size_t *ncomps,
		   int *is_dir);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * Private to tasks/: what the engine gives a running task type, and the
 * type implementations (export.c, import_task.c, release.c).
 */
#ifndef TIDEFS_TASKS_I_H
#define TIDEFS_TASKS_I_H

#include <stdbool.h>
#include <stdint.h>

#include "tasks/tasks.h"

/* One running task. Created by the engine's lane thread; the type
 * implementation reports through the task_run_* calls below, which are
 * thread-safe and cheap (they persist progress at most every ~1 s). */
struct task_run;

const struct task_engine_config *task_run_config(const struct task_run *r);
/* The request being executed (read-only while the task runs). */
const struct task_request *task_run_request(const struct task_run *r);
/* CreationTime of the task, ns since the epoch (for age-based release). */
int64_t task_run_created_ns(const struct task_run *r);

/* TotalCount, known before files are processed. */
void task_run_set_total(struct task_run *r, uint64_t total);
/* One file done: err 0 counts it succeeded; otherwise failed, with its path
 * relative to the mount (for the report) and a stable upper-case error
 * code (S3_ACCESS_DENIED, S3_PRECONDITION_FAILED, LOCAL_IO_ERROR,
 * PATH_NOT_FOUND, UNSUPPORTED_FILE_TYPE, LOCAL_CHANGES_CONFLICT, …). */
void task_run_file_done(struct task_run *r, const char *path, int err,
			const char *error_code);
/* Bytes of cached data freed (release types). */
void task_run_add_released(struct task_run *r, uint64_t bytes);
/* Was the task asked to stop? Check between files. */
bool task_run_canceled(const struct task_run *r);
/* The task as a whole failed (e.g. a path does not exist): FailureDetails
 * message; the type returns a negative value afterwards. */
void task_run_fail(struct task_run *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* For automatic AUTO_RELEASE tasks: the exact byte target (0: use
 * CapacityToRelease). */
uint64_t task_run_target_bytes(const struct task_run *r);
/* Files counted so far (succeeded + failed). */
uint64_t task_run_done_count(const struct task_run *r);

/* Release least recently used archived files until target bytes are freed
 * or none is left; r may be NULL (no task to report to). */
int task_release_lru(const struct task_engine_config *cfg, struct task_run *r,
		     uint64_t target, uint64_t *freed);

/* Type implementations: 0 when the task ran to its end (failed files make it
 * FAILED through their count), negative after task_run_fail(). */
int task_exec_export(struct task_run *r);
int task_exec_import(struct task_run *r);
int task_exec_release(struct task_run *r);
int task_exec_auto_release(struct task_run *r);

/* ---- tree helpers (walk.c) ---- */

/* Resolve a path relative to the mount root ("", "/", "a/b", "/a/b/") to an
 * inode. -ENOENT, -ENOTDIR, -errno. */
int task_resolve(struct meta_txn *txn, const char *path, uint64_t *ino);

/* Visit ino and everything below it, depth first, parents before children.
 * rel is the path relative to the mount root ("" for the root). cb returns
 * 0 to go on, non-zero to stop (returned). Each visit runs in its own short
 * read transaction, so a long walk never pins an old snapshot; entries
 * removed meanwhile are skipped. */
typedef int (*task_walk_cb)(void *arg, const char *rel,
			    const struct meta_inode *mi);
int task_walk(struct meta_db *db, uint64_t ino, const char *rel,
	      task_walk_cb cb, void *arg);

/* task_walk every path of the task's request (all of the mount when it
 * has none); a path that does not exist fails the task (task_run_fail,
 * -ENOENT). */
int task_walk_paths(struct task_run *r, task_walk_cb cb, void *arg);

/* A list of (path, inode) gathered by a walk, processed afterwards. */
struct task_cand {
	char *rel; /* owned */
	uint64_t ino;
};
struct task_cands {
	struct task_cand *v;
	size_t n, cap;
};
int task_cands_add(struct task_cands *c, const char *rel, uint64_t ino);
void task_cands_release(struct task_cands *c);

/* The S3 key of a path relative to the mount root: prefix + rel (+ "/" for
 * directories). Malloc'ed. */
char *task_key_of(const char *prefix, const char *rel, bool is_dir);

/* ---- which files stand on which objects (keyrefs.c) ---- */

struct task_key_ref {
	uint64_t hash, ino;
};

struct task_key_refs {
	struct task_key_ref *v; /* sorted by hash */
	size_t n, cap;
	bool built;
};

uint64_t task_key_hash(const char *key);
/* Fill k from the inode table (once: a no-op when built). 0 or -errno. */
int task_key_refs_build(struct meta_txn *txn, struct task_key_refs *k);
/* Index of the first entry with hash h (or k->n). */
size_t task_key_ref_lower(const struct task_key_refs *k, uint64_t h);
void task_key_refs_free(struct task_key_refs *k);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * tasks — data repository tasks. For now: importing the metadata of an S3
 * prefix into the metadata store (the first mount, and later the
 * IMPORT_METADATA_FROM_REPOSITORY task).
 */
#ifndef TIDEFS_TASKS_H
#define TIDEFS_TASKS_H

#include <stdint.h>

#include "cache/chunk.h"
#include "cache/meta.h"
#include "s3/s3.h"

struct task_import_stats {
	uint64_t objects;		/* keys listed */
	uint64_t files, dirs, symlinks; /* inodes created */
	uint64_t skipped; /* keys that cannot be POSIX names (one warning each)
			   */
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
		       struct task_import_stats *st);

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

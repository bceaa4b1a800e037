/* SPDX-License-Identifier: MIT */
/*
 * chunk — the local data store: one sparse file per inode under
 * CACHE_DIR/data/<ino % 256 as 2 hex>/<ino>, addressed in fixed-size chunks
 * (1 MiB default). Presence of a chunk is recorded in LMDB (meta_chunk_*)
 * only after its bytes are on disk; this module only owns the files.
 */
#ifndef TIDEFS_CHUNK_H
#define TIDEFS_CHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHUNK_SIZE_DEFAULT (1u << 20)

struct chunk_store; /* opaque */

/* Create dir/data and its 256 subdirectories if needed. */
int chunk_store_open(const char *dir, uint32_t chunk_size,
		     struct chunk_store **out);
void chunk_store_close(struct chunk_store *cs);
uint32_t chunk_size(const struct chunk_store *cs);

/* Open the data file of ino (O_RDWR, O_CREAT when create). Returns fd >= 0
 * or -errno (-ENOENT when absent and !create). Caller closes. */
int chunk_open(struct chunk_store *cs, uint64_t ino, bool create);
/* Remove the data file of ino; absent is fine. */
int chunk_remove(struct chunk_store *cs, uint64_t ino);
/* Drop all data of ino while keeping the (empty, sparse) file at size. */
int chunk_punch(struct chunk_store *cs, uint64_t ino);
/* Bytes the data file of ino allocates on disk (st_blocks * 512); 0 when
 * absent. */
int64_t chunk_allocated(struct chunk_store *cs, uint64_t ino);
/* Visit every data file's inode number (for orphan cleanup at mount). */
typedef int (*chunk_ino_cb)(void *arg, uint64_t ino);
int chunk_foreach(struct chunk_store *cs, chunk_ino_cb cb, void *arg);

/* Chunk math (pure). */
static inline uint64_t chunk_count(uint64_t size, uint32_t csize)
{
	return (size + csize - 1) / csize;
}
/* First and last (inclusive) chunk index touched by [off, off+len), len>0. */
static inline void chunk_span(uint64_t off, uint64_t len, uint32_t csize,
			      uint64_t *first, uint64_t *last)
{
	*first = off / csize;
	*last = (off + len - 1) / csize;
}

#endif

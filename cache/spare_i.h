/* SPDX-License-Identifier: MIT */
/*
 * spare — empty data files made ahead of need (private to cache/).
 *
 * Creating a file is the most expensive step of a small write: the local
 * file system allocates an inode while the writer waits. Inode numbers are
 * handed out in order (super "next_ino"), so a background thread creates
 * the empty data files of the next `ahead` numbers before they are taken;
 * chunk_open(..., create) then finds the file already there.
 *
 * Invariants: a spare file is empty and its number is >= next_ino when it
 * is made, so it never holds anybody's data. Once a number is taken the
 * thread checks what it became and removes the file unless the inode is a
 * regular file or a symlink (the only kinds with data files). At
 * spare_free() the files of numbers never taken are removed; after a crash
 * the mount-time orphan scan removes them (no inode record).
 */
#ifndef TIDEFS_SPARE_I_H
#define TIDEFS_SPARE_I_H

#include "cache/chunk.h"
#include "cache/meta.h"

#include <sys/stat.h>

struct spare; /* opaque */

/* Start the thread. ahead 0 = no spares: *out is NULL and every call below
 * is a no-op. db and cs must outlive the returned handle. 0 or -errno. */
int spare_new(struct meta_db *db, struct chunk_store *cs, unsigned ahead,
	      struct spare **out);
/* Inode ino is being opened for the first time (most often a create, of
 * the newest number): wake the thread once no more than half of its spares
 * are left above ino, so it makes them in batches, not one per create.
 * Cheap; NULL is fine. */
void spare_kick(struct spare *sp, uint64_t ino);
/* The open descriptor of ino's spare (O_RDWR | O_CLOEXEC), now the
 * caller's to close, with its fstat() in *st; or -1 (none kept: open it by
 * path). Checked to still be linked. Only the first open of ino should
 * ask; NULL is fine. */
int spare_take(struct spare *sp, uint64_t ino, struct stat *st);
/* Stop the thread and remove the spares nobody took. Call once nothing
 * allocates inode numbers any more. NULL is fine. */
void spare_free(struct spare *sp);

#endif

// SPDX-License-Identifier: MIT
/*
 * meta_space — room on disk for MDB_WRITEMAP commits (private to cache/;
 * declared in meta_i.h).
 *
 * With MDB_WRITEMAP a commit is a few stores into the shared map instead of
 * one pwrite() per page (small-file creates spend a fifth of the daemon's
 * time in those). But LMDB sizes data.mdb to the whole map, sparse, and a
 * store into a page the file system cannot allocate kills the process with
 * SIGBUS, where a pwrite() fails cleanly with ENOSPC. So data.mdb is kept
 * allocated (fallocate) past every page a write transaction can touch, and
 * a change that would need more than the file system can give fails with
 * ENOSPC before LMDB stores anything:
 *
 * - A write transaction takes pages from the free list (below its
 *   next_pgno: allocated) or at next_pgno and up. LMDB does not export
 *   next_pgno; it is the third member of MDB_txn (since LMDB 0.9.0), read
 *   here and checked at open against the committed last page + 1 that
 *   mdb_env_info() reports; if the check fails the store does not use
 *   MDB_WRITEMAP.
 * - Before every put or delete, pages [0, next_pgno + SPACE_OP + twice the
 *   value's pages + commit room) must be allocated; before the commit,
 *   [0, next_pgno + commit room). One put or delete allocates at most a
 *   path of copied pages and a path of split pages (SPACE_OP covers two
 *   paths of 30 pages; the trees here are 3 to 5 deep) plus the overflow
 *   pages of its value. The commit writes the lists
 *   of freed and reclaimed page numbers (8 bytes each, at most one entry per
 *   page of the file each): commit room is SPACE_OP + next_pgno / 128.
 * - When the allocation falls short, it grows to what is needed plus the
 *   cushion (1/64 of the file system, 4 to 32 MiB), or failing that to
 *   exactly what is needed; failing that too, the change fails with ENOSPC
 *   (and the transaction with it).
 * - A quarter of the cushion is kept back for transactions that free space
 *   (meta_txn_frees_space(): unlink, truncate, release...): on a full file
 *   system other changes fail with ENOSPC while those can still commit, and
 *   removing a file gives its space back.
 *
 * Only on file systems that overwrite allocated blocks in place and honour
 * fallocate (ext4, XFS, tmpfs): on copy-on-write file systems (btrfs, ZFS)
 * an overwrite needs new space, on overlayfs and others it is not known. A
 * store whose first allocation fails (no fallocate, the disk is full at
 * mount) is opened without MDB_WRITEMAP: commits pwrite() as before. So
 * is every store in a ThreadSanitizer build (see meta_space_fs_ok()).
 *
 * alloc_pages is only changed by the holder of LMDB's writer lock (write
 * transactions) and by meta_open() before anything else runs; it is atomic
 * because meta_space_info() (the stats) reads it from any thread.
 */
#include "cache/meta_i.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <linux/magic.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include "common/common.h"

#define SPACE_OP	   64u	 /* pages one put or delete may allocate */
#define SPACE_CUSHION_MIN  1024u /* pages (4 MiB at 4 KiB) */
#define SPACE_CUSHION_MAX  8192u /* pages (32 MiB at 4 KiB) */
#define SPACE_CUSHION_FRAC 64u	 /* of the file system's size */

/* LMDB's MDB_txn starts with mt_parent, mt_child, mt_next_pgno. */
static uint64_t txn_next_pgno(MDB_txn *t)
{
	size_t pg;

	memcpy(&pg, (const char *)t + 2 * sizeof(void *), sizeof(pg));
	return pg;
}

static uint64_t commit_room(uint64_t next)
{
	return SPACE_OP + next / 128;
}

bool meta_space_fs_ok(const char *dir)
{
	struct statfs sf;

#ifdef __SANITIZE_THREAD__
	/* ThreadSanitizer cannot see LMDB's reader table, the only thing
	 * that orders a writer's stores into a reused page after the reads
	 * of the readers that used it before: every such store would be a
	 * report. TSan builds check the pwrite() commits instead. */
	(void)dir;
	(void)sf;
	return false;
#endif
	if (statfs(dir, &sf) < 0)
		return false;
	switch ((unsigned long)sf.f_type) {
	case EXT4_SUPER_MAGIC: /* also ext2 and ext3 */
	case XFS_SUPER_MAGIC:
	case TMPFS_MAGIC:
		return true;
	default:
		return false;
	}
}

/* Allocate [db->alloc_pages, to) pages of data.mdb; 0 or -errno. */
static int allocate_to(struct meta_db *db, uint64_t to)
{
	uint64_t have =
		atomic_load_explicit(&db->alloc_pages, memory_order_relaxed);

	/* Nothing past the map: LMDB answers MDB_MAP_FULL before that. */
	if (to > db->map_pages)
		to = db->map_pages;
	if (to <= have)
		return 0;
	if (fallocate(db->fd, 0, (off_t)(have * db->psize),
		      (off_t)((to - have) * db->psize)) < 0)
		return -errno;
	atomic_store_explicit(&db->alloc_pages, to, memory_order_relaxed);
	return 0;
}

static int grow(struct meta_db *db, uint64_t need)
{
	int ret;

	ret = allocate_to(db, need + db->cushion_pages);
	if (ret == -ENOSPC || ret == -EDQUOT)
		ret = allocate_to(db, need);
	if (ret == -ENOSPC || ret == -EDQUOT) {
		meta_warn_full(db);
		return -ENOSPC;
	}
	if (ret)
		log_error("meta: cannot allocate room for the metadata: %s",
			  strerror(-ret));
	return ret;
}

int meta_space_room(struct meta_txn *txn, size_t value_size)
{
	struct meta_db *db = txn->db;
	uint64_t next, need;

	if (!db->writemap)
		return 0;
	next = txn_next_pgno(txn->txn);
	need = next + commit_room(next);
	if (value_size != META_ROOM_COMMIT && value_size != META_ROOM_BEGIN)
		need += SPACE_OP +
			2 * ((value_size + db->psize - 1) / db->psize);
	if (value_size == META_ROOM_BEGIN)
		need += SPACE_OP;
	else if (!txn->frees)
		need += db->cushion_pages / 4;
	if (need <=
	    atomic_load_explicit(&db->alloc_pages, memory_order_relaxed))
		return 0;
	return stick(txn, grow(db, need));
}

int meta_space_open(struct meta_db *db)
{
	MDB_envinfo info;
	MDB_txn *t;
	struct statfs sf;
	uint64_t next, cushion;
	int rc, ret;

	if (mdb_env_get_fd(db->env, &db->fd) || mdb_env_info(db->env, &info))
		return -EINVAL;
	db->map_pages = info.me_mapsize / db->psize;
	rc = mdb_txn_begin(db->env, NULL, 0, &t);
	if (rc)
		return meta_lmdb_err(rc, "begin");
	next = txn_next_pgno(t);
	mdb_txn_abort(t);
	if (next != (uint64_t)info.me_last_pgno + 1) {
		log_info("meta: this LMDB's transaction layout is not the "
			 "known one: commits write their pages one by one");
		return -EINVAL;
	}
	cushion = SPACE_CUSHION_MAX;
	if (fstatfs(db->fd, &sf) == 0 && sf.f_blocks)
		cushion = (uint64_t)sf.f_blocks * (uint64_t)sf.f_frsize /
			  SPACE_CUSHION_FRAC / db->psize;
	if (cushion < SPACE_CUSHION_MIN)
		cushion = SPACE_CUSHION_MIN;
	if (cushion > SPACE_CUSHION_MAX)
		cushion = SPACE_CUSHION_MAX;
	db->cushion_pages = cushion;
	/* From page 0: pages below the last one that no commit ever wrote
	 * (allocated and freed in one transaction) are holes too. The part
	 * kept for transactions that free space is there from the start. */
	atomic_store_explicit(&db->alloc_pages, 0, memory_order_relaxed);
	ret = allocate_to(db, next + SPACE_OP + commit_room(next) +
				      cushion / 4 + cushion);
	if (ret) {
		log_info("meta: cannot allocate room for the metadata (%s): "
			 "commits write their pages one by one",
			 strerror(-ret));
		return ret;
	}
	return 0;
}

void meta_space_info(struct meta_db *db, struct meta_space *out)
{
	MDB_envinfo info;

	memset(out, 0, sizeof(*out));
	out->writemap = db->writemap;
	if (mdb_env_info(db->env, &info) == 0)
		out->used_bytes = ((uint64_t)info.me_last_pgno + 1) * db->psize;
	if (db->writemap)
		out->allocated_bytes =
			atomic_load_explicit(&db->alloc_pages,
					     memory_order_relaxed) *
			db->psize;
}

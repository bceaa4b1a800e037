// SPDX-License-Identifier: MIT
/*
 * DESIGN
 *
 * Spare data files (see spare_i.h for the contract). One thread keeps the
 * empty data files of inode numbers [next_ino, next_ino + ahead) in place,
 * so a writer's chunk_open(..., create) opens an existing file instead of
 * waiting for the local file system to allocate an inode (on a busy ext4
 * that allocation costs from tens of microseconds to milliseconds, more
 * than the rest of a small file's create+write+close).
 *
 * The thread owns lo and hi: it made spares for numbers [lo, hi). Each
 * round it reads next_ino from the store (a read transaction), checks what
 * the numbers [lo, min(hi, next_ino)) became — they are committed with
 * their inode records, so the record is there unless the inode was already
 * deleted — and removes the files of anything but regular files and
 * symlinks; then it creates files up to next_ino + ahead, a slice at a
 * time. A number taken by a transaction that aborted stays below next_ino,
 * so it is offered again; its spare may have been removed meanwhile (a
 * failed symlink cleans up after itself), which only costs the writer the
 * creation it would have paid anyway.
 *
 * It wakes when kicked (a file is opened for the first time: likely a
 * create; only once half the spares are taken, so a run of creates wakes
 * it once per ahead/2 of them, not once each) and once a second otherwise.
 *
 * The thread also keeps each spare open, in slot ino % ahead, and the
 * first open of that number takes the descriptor (spare_take) instead of
 * looking the path up again: one openat less on a create's path. A slot's
 * descriptor is closed when its slot is needed for the number `ahead`
 * above, when retire() removes its file, or at spare_free(), so at most
 * `ahead` are open. A descriptor may outlive its name (a failed symlink
 * removes its spare, and its number is offered again): the taker checks
 * the link count, and data files are never renamed, so a linked one is the
 * file at the number's path.
 *
 * Lock: sp->lock guards the kicked/stopping flags and the slots, and is
 * never held across I/O or with another lock.
 */
#include "cache/spare_i.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"

#define SPARE_SLICE 16 /* files made between two looks at next_ino */

struct spare_slot {
	uint64_t ino;
	int fd; /* -1: none */
};

struct spare {
	struct meta_db *db;
	struct chunk_store *cs;
	unsigned ahead;
	struct spare_slot *slots; /* ahead of them; protected by lock */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* kicked or stopping */
	bool kicked;	     /* protected by lock */
	bool stopping;	     /* protected by lock */
	/* Owned by the thread, then by spare_free() after the join: spares
	 * were made for [lo, hi); those below next_ino await their check. */
	uint64_t lo, hi;
	_Atomic uint64_t made_to; /* hi, for spare_kick() */
};

static int read_next(struct meta_db *db, uint64_t *next)
{
	struct meta_txn *txn;
	int ret;

	ret = meta_txn_begin(db, false, &txn);
	if (ret < 0)
		return ret;
	ret = meta_super_get_u64(txn, "next_ino", next);
	if (ret == -ENOENT) {
		*next = META_ROOT_INO + 1;
		ret = 0;
	}
	meta_txn_abort(txn);
	return ret;
}

/* Take the descriptor kept for ino out of its slot: it, or -1. */
static int slot_take(struct spare *sp, uint64_t ino)
{
	struct spare_slot *s = &sp->slots[ino % sp->ahead];
	int fd = -1;

	pthread_mutex_lock(&sp->lock);
	if (s->ino == ino) {
		fd = s->fd;
		s->fd = -1;
	}
	pthread_mutex_unlock(&sp->lock);
	return fd;
}

/* Keep fd for ino, closing what its slot held (a number `ahead` below). */
static void slot_put(struct spare *sp, uint64_t ino, int fd)
{
	struct spare_slot *s = &sp->slots[ino % sp->ahead];
	int old;

	pthread_mutex_lock(&sp->lock);
	old = s->fd;
	s->ino = ino;
	s->fd = fd;
	pthread_mutex_unlock(&sp->lock);
	if (old >= 0)
		close(old);
}

/* Numbers [from, to) were taken: keep the files of regular files and
 * symlinks, remove the others. */
static void retire(struct spare *sp, uint64_t from, uint64_t to)
{
	struct meta_txn *txn;

	if (meta_txn_begin(sp->db, false, &txn) < 0)
		return; /* the mount-time scan tidies up */
	for (uint64_t ino = from; ino < to; ino++) {
		struct meta_inode mi = {0};
		int ret = meta_inode_get(txn, ino, &mi);
		bool keep = ret == 0 && (S_ISREG(mi.mode) || S_ISLNK(mi.mode));

		/* Deleted already (its purge removes the file too) or a kind
		 * without data; on a read error, leave it to the next mount. */
		if (ret < 0 && ret != -ENOENT)
			keep = true;
		meta_inode_release(&mi);
		if (!keep) {
			int fd = slot_take(sp, ino);

			if (fd >= 0)
				close(fd);
			chunk_remove(sp->cs, ino);
		}
	}
	meta_txn_abort(txn);
}

/* One round; true when there is more to make right away. */
static bool refill(struct spare *sp)
{
	uint64_t next, end;
	unsigned made = 0;

	if (read_next(sp->db, &next) < 0)
		return false;
	end = MIN(sp->hi, next);
	if (sp->lo < end)
		retire(sp, sp->lo, end);
	sp->lo = MAX(sp->lo, next);
	sp->hi = MAX(sp->hi, next);
	while (sp->hi < next + sp->ahead && made < SPARE_SLICE) {
		int fd = chunk_open(sp->cs, sp->hi, true);

		if (fd < 0) {
			/* Out of inodes or descriptors: writers create their
			 * own files; try again in a while. */
			log_debug("spare data file %" PRIu64 ": %s", sp->hi,
				  strerror(-fd));
			return false;
		}
		slot_put(sp, sp->hi, fd);
		sp->hi++;
		made++;
	}
	atomic_store(&sp->made_to, sp->hi);
	return sp->hi < next + sp->ahead;
}

static void *spare_main(void *arg)
{
	struct spare *sp = arg;

	pthread_mutex_lock(&sp->lock);
	while (!sp->stopping) {
		bool more;

		sp->kicked = false;
		pthread_mutex_unlock(&sp->lock);
		more = refill(sp);
		pthread_mutex_lock(&sp->lock);
		if (!more && !sp->kicked && !sp->stopping) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&sp->cond, &sp->lock, &ts);
		}
	}
	pthread_mutex_unlock(&sp->lock);
	return NULL;
}

int spare_new(struct meta_db *db, struct chunk_store *cs, unsigned ahead,
	      struct spare **out)
{
	struct spare *sp;
	uint64_t next;
	int ret;

	*out = NULL;
	if (ahead == 0)
		return 0;
	ret = read_next(db, &next);
	if (ret < 0)
		return ret;
	sp = calloc(1, sizeof(*sp));
	if (!sp)
		return -ENOMEM;
	sp->slots = calloc(ahead, sizeof(*sp->slots));
	if (!sp->slots) {
		free(sp);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < ahead; i++)
		sp->slots[i] = (struct spare_slot){.ino = UINT64_MAX, .fd = -1};
	sp->db = db;
	sp->cs = cs;
	sp->ahead = ahead;
	sp->lo = sp->hi = next;
	atomic_init(&sp->made_to, next);
	pthread_mutex_init(&sp->lock, NULL);
	pthread_cond_init(&sp->cond, NULL);
	ret = -pthread_create(&sp->thread, NULL, spare_main, sp);
	if (ret < 0) {
		pthread_mutex_destroy(&sp->lock);
		pthread_cond_destroy(&sp->cond);
		free(sp->slots);
		free(sp);
		return ret;
	}
	*out = sp;
	return 0;
}

void spare_kick(struct spare *sp, uint64_t ino)
{
	if (!sp || ino + sp->ahead / 2 < atomic_load(&sp->made_to))
		return;
	pthread_mutex_lock(&sp->lock);
	if (!sp->kicked) {
		sp->kicked = true;
		pthread_cond_signal(&sp->cond);
	}
	pthread_mutex_unlock(&sp->lock);
}

int spare_take(struct spare *sp, uint64_t ino, struct stat *st)
{
	int fd;

	if (!sp)
		return -1;
	fd = slot_take(sp, ino);
	if (fd < 0)
		return -1;
	if (fstat(fd, st) < 0 || st->st_nlink == 0) {
		close(fd); /* its name is gone: the caller opens by path */
		return -1;
	}
	return fd;
}

void spare_free(struct spare *sp)
{
	uint64_t next;

	if (!sp)
		return;
	pthread_mutex_lock(&sp->lock);
	sp->stopping = true;
	pthread_cond_signal(&sp->cond);
	pthread_mutex_unlock(&sp->lock);
	pthread_join(sp->thread, NULL);
	for (unsigned i = 0; i < sp->ahead; i++)
		if (sp->slots[i].fd >= 0)
			close(sp->slots[i].fd);
	if (read_next(sp->db, &next) == 0) {
		uint64_t end = MIN(sp->hi, next);

		if (sp->lo < end)
			retire(sp, sp->lo, end);
		for (uint64_t ino = MAX(sp->lo, next); ino < sp->hi; ino++)
			chunk_remove(sp->cs, ino);
	}
	pthread_mutex_destroy(&sp->lock);
	pthread_cond_destroy(&sp->cond);
	free(sp->slots);
	free(sp);
}

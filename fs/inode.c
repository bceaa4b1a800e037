// SPDX-License-Identifier: MIT
/*
 * Kernel lookup counts. Every entry we hand the kernel (lookup, create,
 * mkdir, mknod, symlink, link, readdirplus) adds one; FORGET takes them
 * away. An inode whose last name is gone (nlink 0) stays in the store, marked
 * META_F_UNLINKED, while the kernel still knows it — open files keep
 * working — and is purged when its count drops to zero. Inodes left marked
 * by a crash are purged at the next mount.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs_i.h"

#define NB 4096

struct lk {
	uint64_t ino;
	uint64_t n;
	bool unlinked;
	struct lk *next;
};

struct fs_lookups {
	pthread_mutex_t lock;
	struct lk *b[NB]; /* protected by lock */
};

int fs_lookups_new(struct fs_lookups **out)
{
	struct fs_lookups *l = calloc(1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	pthread_mutex_init(&l->lock, NULL);
	*out = l;
	return 0;
}

void fs_lookups_free(struct fs_lookups *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < NB; i++) {
		while (l->b[i]) {
			struct lk *n = l->b[i]->next;
			free(l->b[i]);
			l->b[i] = n;
		}
	}
	pthread_mutex_destroy(&l->lock);
	free(l);
}

static struct lk **find(struct fs_lookups *l, uint64_t ino)
{
	struct lk **pp = &l->b[ino % NB];

	while (*pp && (*pp)->ino != ino)
		pp = &(*pp)->next;
	return pp;
}

void fs_lookup_ref(struct fs *fs, uint64_t ino)
{
	struct fs_lookups *l = fs->lookups;
	struct lk **pp;

	if (fs_is_ctl(ino) || ino == FUSE_ROOT_ID)
		return;
	pthread_mutex_lock(&l->lock);
	pp = find(l, ino);
	if (!*pp) {
		*pp = calloc(1, sizeof(**pp));
		if (!*pp) {
			/* Without a count the inode is purged at the next
			 * mount instead of at forget: nothing is lost. */
			pthread_mutex_unlock(&l->lock);
			return;
		}
		(*pp)->ino = ino;
	}
	(*pp)->n++;
	pthread_mutex_unlock(&l->lock);
}

/* Drop n references; returns true when the inode should be purged now. */
static bool unref(struct fs_lookups *l, uint64_t ino, uint64_t n)
{
	struct lk **pp, *e;
	bool purge = false;

	pthread_mutex_lock(&l->lock);
	pp = find(l, ino);
	e = *pp;
	if (e) {
		e->n = e->n > n ? e->n - n : 0;
		if (e->n == 0) {
			purge = e->unlinked;
			*pp = e->next;
			free(e);
		}
	}
	pthread_mutex_unlock(&l->lock);
	return purge;
}

void fs_lookup_forget(struct fs *fs, uint64_t ino, uint64_t n)
{
	if (fs_is_ctl(ino) || ino == FUSE_ROOT_ID)
		return;
	if (unref(fs->lookups, ino, n))
		fs_purge_inode(fs, ino);
}

bool fs_lookup_unlinked(struct fs *fs, uint64_t ino)
{
	struct fs_lookups *l = fs->lookups;
	struct lk **pp;
	bool known;

	pthread_mutex_lock(&l->lock);
	pp = find(l, ino);
	known = *pp != NULL;
	if (known)
		(*pp)->unlinked = true;
	pthread_mutex_unlock(&l->lock);
	return !known;
}

int fs_purge_inode(struct fs *fs, uint64_t ino)
{
	struct meta_inode mi = {0};
	struct meta_txn *txn;
	int ret;

	ret = meta_txn_begin(fs->db, true, &txn);
	if (ret < 0)
		return ret;
	meta_txn_frees_space(txn);
	ret = meta_inode_get(txn, ino, &mi);
	if (ret < 0 || mi.nlink > 0) {
		/* Gone already, or linked again meanwhile. */
		meta_txn_abort(txn);
		meta_inode_release(&mi);
		return ret == -ENOENT ? 0 : ret;
	}
	meta_inode_del(txn, ino);
	meta_chunk_clear(txn, ino, 0);
	meta_xattr_clear(txn, ino);
	meta_dirty_del(txn, ino);
	ret = meta_txn_commit(txn);
	if (ret == 0) {
		/* Counted out of the stats at its last unlink. Only regular
		 * files' bytes count as cache use (a symlink's target does
		 * not: nothing added it when it was made). */
		hydrate_purge(fs->hy, ino,
			      S_ISREG(mi.mode) ? mi.cached_bytes : 0);
	} else {
		log_warn("purging inode %" PRIu64 ": %s", ino, strerror(-ret));
	}
	meta_inode_release(&mi);
	return ret;
}

// SPDX-License-Identifier: MIT
/*
 * FUSE directory listing: opendir takes a snapshot of the entries, which
 * readdir and readdirplus hand out at stable offsets, completing pending
 * (lazily imported) inodes a reply batch at a time; releasedir frees it.
 * The rest of the FUSE operations are in ops.c and nsops.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs_i.h"
#include "tasks/tasks.h"

static struct fs *req_fs(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* ---- directories: a snapshot taken at opendir keeps offsets stable ---- */

struct dirent_snap {
	char *name;
	uint64_t ino;
	uint32_t mode; /* file type bits, for d_type */
};

struct dirh {
	struct dirent_snap *ents;
	size_t n, cap;
	struct dirh *prev, *next; /* protected by fs->stats_lock */
};

static int dirh_add(struct dirh *d, const char *name, uint64_t ino,
		    uint32_t mode)
{
	if (d->n == d->cap) {
		struct dirent_snap *n =
			array_grow(d->ents, &d->cap, sizeof(*n), 64);
		if (!n)
			return -ENOMEM;
		d->ents = n;
	}
	d->ents[d->n].name = strdup(name);
	if (!d->ents[d->n].name)
		return -ENOMEM;
	d->ents[d->n].ino = ino;
	d->ents[d->n].mode = mode & S_IFMT;
	d->n++;
	return 0;
}

static void dirh_free(struct dirh *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->ents[i].name);
	free(d->ents);
	free(d);
}

void fs_release_dirs(struct fs *fs)
{
	while (fs->dirs) {
		struct dirh *d = fs->dirs;
		fs->dirs = d->next;
		dirh_free(d);
	}
}

struct snap_arg {
	struct dirh *d;
	struct meta_txn *txn;
	bool root;
	uint64_t *pending; /* entries whose metadata is still to come */
	size_t npending, cap;
};

static void note_pending(struct snap_arg *sa, uint64_t ino)
{
	/* Only a hint: out of memory, it is left out. */
	(void)u64_push(&sa->pending, &sa->npending, &sa->cap, ino);
}

static int snap_cb(void *arg, const char *name, uint64_t ino)
{
	struct snap_arg *sa = arg;
	struct meta_inode mi = {0};
	int ret;

	if (sa->root && strcmp(name, FS_CTL_NAME) == 0)
		return 0; /* shadowed by the control tree */
	ret = meta_inode_get(sa->txn, ino, &mi);
	if (ret == -ENOENT)
		return 0; /* dangling: skip rather than fail the listing */
	if (ret < 0)
		return ret;
	if (mi.flags & META_F_HEAD_PENDING)
		note_pending(sa, ino);
	ret = dirh_add(sa->d, name, ino, mi.mode);
	meta_inode_release(&mi);
	return ret;
}

void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct meta_inode mi = {0};
	struct meta_txn *txn = NULL;
	struct snap_arg sa = {0};
	int ret;

	if (fs_is_ctl(ino)) {
		fi->fh = 0;
		fuse_reply_open(req, fi);
		return;
	}
	sa.d = calloc(1, sizeof(*sa.d));
	sa.root = ino == FUSE_ROOT_ID;
	if (!sa.d) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ret = meta_txn_begin(fs->db, false, &txn);
	if (ret < 0)
		goto out_err;
	ret = meta_inode_get(txn, ino, &mi);
	if (ret < 0)
		goto out_err;
	if (!S_ISDIR(mi.mode)) {
		ret = -ENOTDIR;
		goto out_err;
	}
	sa.txn = txn;
	ret = dirh_add(sa.d, ".", ino, S_IFDIR);
	if (ret == 0)
		ret = dirh_add(sa.d, "..", ino, S_IFDIR);
	if (ret == 0 && sa.root)
		ret = dirh_add(sa.d, FS_CTL_NAME, FS_CTL_DIR, S_IFDIR);
	if (ret == 0)
		ret = meta_dentry_foreach(txn, ino, NULL, snap_cb, &sa);
	if (ret < 0)
		goto out_err;
	meta_txn_abort(txn);
	meta_inode_release(&mi);
	/* About to be listed: their metadata first, ahead of the rest. */
	task_filler_prefetch(fs->filler, sa.pending, sa.npending);
	free(sa.pending);
	/* Listed, so a handle the kernel never releases (a lazy unmount)
	 * is still freed at shutdown. */
	pthread_mutex_lock(&fs->stats_lock);
	sa.d->next = fs->dirs;
	if (sa.d->next)
		sa.d->next->prev = sa.d;
	fs->dirs = sa.d;
	pthread_mutex_unlock(&fs->stats_lock);
	fi->fh = (uintptr_t)sa.d;
	fi->cache_readdir = 0;
	fuse_reply_open(req, fi);
	return;

out_err:
	meta_txn_abort(txn);
	meta_inode_release(&mi);
	free(sa.pending);
	dirh_free(sa.d);
	fuse_reply_err(req, -ret);
}

/* The entries [off, *end) a reply of size bytes can hold at most. */
static size_t batch_end(fuse_req_t req, const struct dirh *d, size_t off,
			size_t size, int plus)
{
	struct fuse_entry_param e = {0};
	struct stat st = {0};
	size_t used = 0, i;

	for (i = off; i < d->n; i++) {
		size_t len =
			plus ? fuse_add_direntry_plus(req, NULL, 0,
						      d->ents[i].name, &e, 0)
			     : fuse_add_direntry(req, NULL, 0, d->ents[i].name,
						 &st, 0);
		if (used + len > size)
			break;
		used += len;
	}
	return i;
}

/*
 * Complete the pending inodes among the entries [off, end) in one go (in
 * parallel): the kernel never sees a pending inode, not even its type.
 * Returns 0, or -errno of the store; entries whose metadata could not be
 * had stay pending and end the batch in do_readdir.
 */
static int fill_batch(struct fs *fs, const struct dirh *d, size_t off,
		      size_t end)
{
	struct meta_txn *txn;
	uint64_t *inos;
	size_t n = 0;
	int ret;

	if (!fs->filler || off >= end)
		return 0;
	inos = malloc((end - off) * sizeof(*inos));
	if (!inos)
		return -ENOMEM;
	ret = meta_txn_begin(fs->db, false, &txn);
	for (size_t i = off; ret == 0 && i < end; i++) {
		struct meta_inode mi = {0};

		if (i < 2 || d->ents[i].ino == FS_CTL_DIR)
			continue;
		if (meta_inode_get(txn, d->ents[i].ino, &mi) == 0 &&
		    (mi.flags & META_F_HEAD_PENDING))
			inos[n++] = d->ents[i].ino;
		meta_inode_release(&mi);
	}
	meta_txn_abort(txn);
	if (ret == 0 && n > 0)
		fs_fill(fs, inos, n, NULL); /* failures: seen below */
	free(inos);
	return ret;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, int plus)
{
	struct fs *fs = req_fs(req);
	struct dirh *d = (struct dirh *)(uintptr_t)fi->fh;
	struct meta_txn *txn = NULL;
	char *buf, *p;
	size_t rem = size, filled;
	int ret = 0;

	if (fs_is_ctl(ino)) {
		ctl_readdir(fs, req, ino, size, off, plus);
		return;
	}
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	p = buf;
	filled = batch_end(req, d, (size_t)off, size, plus);
	ret = fill_batch(fs, d, (size_t)off, filled);
	if (ret == 0)
		ret = meta_txn_begin(fs->db, false, &txn);
	for (size_t i = (size_t)off; ret == 0 && i < d->n; i++) {
		const struct dirent_snap *de = &d->ents[i];
		struct meta_inode mi = {0};
		struct fuse_entry_param e;
		size_t len;

		if (i >= 2 && de->ino != FS_CTL_DIR) {
			if (meta_inode_get(txn, de->ino, &mi) < 0)
				continue; /* removed since opendir */
			if ((mi.flags & META_F_HEAD_PENDING) && i >= filled) {
				/* Entries that vanished made room: the next
				 * batch's metadata, then this one again. */
				meta_inode_release(&mi);
				meta_txn_abort(txn);
				txn = NULL;
				filled = batch_end(req, d, i, rem, plus);
				ret = fill_batch(fs, d, i, filled);
				if (ret == 0)
					ret = meta_txn_begin(fs->db, false,
							     &txn);
				if (ret == 0)
					ret = meta_inode_get(txn, de->ino, &mi);
				if (ret == -ENOENT) {
					ret = 0;
					continue;
				}
				if (ret < 0)
					break;
			}
			if (mi.flags & META_F_HEAD_PENDING) {
				/* Its HEAD failed: EIO when nothing else
				 * goes out first, so the caller sees it. */
				meta_inode_release(&mi);
				if (p == buf)
					ret = -EIO;
				break;
			}
		}
		if (!plus) {
			struct stat st = {
				.st_ino = de->ino,
				.st_mode = i >= 2 && de->ino != FS_CTL_DIR
						   ? mi.mode & S_IFMT
						   : de->mode};
			len = fuse_add_direntry(req, p, rem, de->name, &st,
						(off_t)i + 1);
		} else if (de->ino == FS_CTL_DIR) {
			ctl_dir_entry(fs, &e);
			len = fuse_add_direntry_plus(req, p, rem, de->name, &e,
						     (off_t)i + 1);
		} else if (i < 2) {
			/* "." and "..": the kernel does not link these. */
			memset(&e, 0, sizeof(e));
			e.attr.st_ino = de->ino;
			e.attr.st_mode = S_IFDIR;
			len = fuse_add_direntry_plus(req, p, rem, de->name, &e,
						     (off_t)i + 1);
		} else {
			fs_fill_entry(fs, &mi, &e);
			len = fuse_add_direntry_plus(req, p, rem, de->name, &e,
						     (off_t)i + 1);
		}
		meta_inode_release(&mi);
		if (len > rem)
			break;
		if (plus && i >= 2 && de->ino != FS_CTL_DIR)
			fs_lookup_ref(fs, de->ino);
		p += len;
		rem -= len;
	}
	meta_txn_abort(txn);
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_buf(req, buf, size - rem);
	free(buf);
}

void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 0);
}

void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 1);
}

void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	struct fs *fs = req_fs(req);
	struct dirh *d = (struct dirh *)(uintptr_t)fi->fh;

	if (d) {
		pthread_mutex_lock(&fs->stats_lock);
		if (d->prev)
			d->prev->next = d->next;
		else
			fs->dirs = d->next;
		if (d->next)
			d->next->prev = d->prev;
		pthread_mutex_unlock(&fs->stats_lock);
	}
	dirh_free(d);
	fuse_reply_err(req, 0);
}

// SPDX-License-Identifier: MIT
/*
 * Changes to the namespace and to attributes: create, mknod, mkdir, symlink,
 * link, unlink, rmdir, rename, setattr, setxattr, removexattr. Each is one
 * LMDB write transaction, so it is atomic and survives a crash of the daemon
 * once replied; fsync/fsyncdir make it durable against power loss.
 *
 * The kernel checks permissions (default_permissions), sticky directories,
 * and renames of a directory into itself; we check what only the store
 * knows: existence, emptiness, name lengths, types.
 *
 * State: a change to an archived/released/lost inode makes it dirty; new
 * stays new. Either way the inode lands in the dirty table for export.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fs/fs_i.h"

#define RESERVED_XATTR_PREFIX "user.tidefs."

static struct fs *req_fs(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static int check_name(fuse_ino_t parent, const char *name)
{
	size_t l = strlen(name);

	if (l > 255)
		return -ENAMETOOLONG;
	if (l == 0 || strchr(name, '/') || !strcmp(name, ".") ||
	    !strcmp(name, ".."))
		return -EINVAL;
	if (parent == FUSE_ROOT_ID && !strcmp(name, FS_CTL_NAME))
		return -EEXIST;
	if (fs_is_ctl(parent))
		return -EPERM;
	return 0;
}

struct state_note {
	uint64_t ino;
	int old_state, new_state;
};

/* A change to mi: generation, dirty table, state. Regular-file state moves
 * are noted for the counters of .tidefs/stats. */
static void mark_changed(struct meta_txn *txn, struct meta_inode *mi,
			 struct state_note *note)
{
	int old = (int)mi->state;

	mi->generation++;
	if (mi->state != META_NEW)
		mi->state = META_DIRTY;
	meta_dirty_add(txn, mi->ino);
	if (note && S_ISREG(mi->mode) && old != (int)mi->state) {
		note->ino = mi->ino;
		note->old_state = old;
		note->new_state = (int)mi->state;
	}
}

static void apply_notes(struct fs *fs, const struct state_note *n, size_t cnt)
{
	for (size_t i = 0; i < cnt; i++)
		if (n[i].ino)
			fs_on_change(fs, n[i].ino, n[i].old_state,
				     n[i].new_state);
}

static void touch_dir(struct meta_txn *txn, struct meta_inode *dir, int64_t now)
{
	dir->mtime_ns = dir->ctime_ns = now;
	mark_changed(txn, dir, NULL);
}

/* Get parent as a live directory. */
static int get_dir(struct meta_txn *txn, fuse_ino_t ino, struct meta_inode *dir)
{
	int ret = meta_inode_get(txn, ino, dir);

	if (ret < 0)
		return ret;
	if (!S_ISDIR(dir->mode))
		return -ENOTDIR;
	if (dir->nlink == 0)
		return -ENOENT; /* removed while someone sat in it */
	return 0;
}

static int write_symlink(struct fs *fs, uint64_t ino, const char *target)
{
	int fd = chunk_open(fs->cs, ino, true), ret;

	if (fd < 0)
		return fd;
	ret = pwrite_all(fd, target, strlen(target), 0);
	if (ret == 0 && ftruncate(fd, (off_t)strlen(target)) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/* 0 when dir has no entry name, -EEXIST when it has, or the error. */
static int name_unused(struct meta_txn *txn, uint64_t dir, const char *name)
{
	uint64_t ino;
	int ret = meta_dentry_get(txn, dir, name, &ino);

	if (ret == 0)
		return -EEXIST;
	return ret == -ENOENT ? 0 : ret;
}

/* create, mknod, mkdir, symlink: one transaction, then the reply. */
static int make_node(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev, const char *target,
		     struct meta_inode *out)
{
	struct fs *fs = req_fs(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct meta_inode dir = {0}, mi = {0};
	struct meta_txn *txn = NULL;
	int64_t now = time_now_ns();
	uint64_t ino;
	int ret;

	ret = check_name(parent, name);
	if (ret < 0)
		return ret;
	if (target && strlen(target) >= 4096)
		return -ENAMETOOLONG;
	ret = meta_txn_begin(fs->db, true, &txn);
	if (ret < 0)
		return ret;
	ret = get_dir(txn, parent, &dir);
	if (ret < 0)
		goto out_abort;
	ret = name_unused(txn, parent, name);
	if (ret < 0)
		goto out_abort;
	ret = meta_ino_alloc(txn, &ino);
	if (ret < 0)
		goto out_abort;

	mi.ino = ino;
	mi.mode = mode;
	mi.uid = ctx->uid;
	mi.gid = ctx->gid;
	if (dir.mode & S_ISGID) {
		/* BSD group semantics in setgid directories. */
		mi.gid = dir.gid;
		if (S_ISDIR(mode))
			mi.mode |= S_ISGID;
	}
	mi.nlink = S_ISDIR(mode) ? 2 : 1;
	mi.rdev = rdev;
	mi.state = META_NEW;
	mi.atime_ns = mi.mtime_ns = mi.ctime_ns = now;
	mi.generation = 1;
	if (target) {
		mi.size = strlen(target);
		mi.cached_bytes = mi.size;
		ret = write_symlink(fs, ino, target);
		if (ret < 0)
			goto out_abort;
	}
	meta_inode_put(txn, &mi);
	meta_dentry_put(txn, parent, name, ino, false);
	meta_dirty_add(txn, ino);
	if (S_ISDIR(mode))
		dir.nlink++;
	touch_dir(txn, &dir, now);
	meta_inode_put(txn, &dir);
	ret = meta_txn_commit(txn);
	txn = NULL;
	if (ret < 0) {
		if (target)
			chunk_remove(fs->cs, ino);
		goto out_abort;
	}
	fs_count_inode(fs, &mi, 1);
	*out = mi;
	meta_inode_release(&dir);
	return 0;

out_abort:
	meta_txn_abort(txn);
	meta_inode_release(&dir);
	meta_inode_release(&mi);
	return ret;
}

static void reply_new_entry(fuse_req_t req, int ret, struct meta_inode *mi)
{
	struct fs *fs = req_fs(req);
	struct fuse_entry_param e;

	if (ret < 0) {
		fuse_reply_err(req, -ret);
	} else {
		fs_fill_entry(fs, mi, &e);
		/* Counted before the reply: once the kernel has the entry,
		 * an unlink racing with us must see it as looked up. */
		fs_lookup_ref(fs, mi->ino);
		if (fuse_reply_entry(req, &e) != 0)
			fs_lookup_forget(fs, mi->ino, 1);
	}
	meta_inode_release(mi);
}

void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	       struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct meta_inode mi = {0};
	struct fuse_entry_param e;
	struct hydrate_file *hf;
	int ret;

	if (fs_is_ctl(parent)) {
		ret = ctl_create(fs, parent, name, fi, &e);
		if (ret < 0)
			fuse_reply_err(req, -ret);
		else
			fuse_reply_create(req, &e, fi);
		return;
	}
	ret = make_node(req, parent, name, S_IFREG | (mode & 07777), 0, NULL,
			&mi);
	if (ret == 0)
		ret = hydrate_open(fs->hy, mi.ino, &hf);
	if (ret < 0) {
		/* A created but unopenable file stays; the kernel never
		 * learns of it and the next lookup finds it. */
		meta_inode_release(&mi);
		fuse_reply_err(req, -ret);
		return;
	}
	fs_fill_entry(fs, &mi, &e);
	meta_inode_release(&mi);
	/* A new inode number: the kernel has no pages of it. */
	hydrate_note_created(hf);
	hydrate_note_handle(hf, 1);
	fs_open_flags(fi, hf);
	fs_lookup_ref(fs, e.ino); /* before the reply, as in reply_new_entry */
	if (fuse_reply_create(req, &e, fi) != 0) {
		fs_lookup_forget(fs, e.ino, 1);
		hydrate_note_handle(hf, -1);
		hydrate_close(hf);
	}
}

void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	      dev_t rdev)
{
	struct meta_inode mi = {0};
	int ret;

	switch (mode & S_IFMT) {
	case S_IFREG:
	case S_IFIFO:
	case S_IFSOCK:
	case S_IFCHR:
	case S_IFBLK:
		break;
	default:
		fuse_reply_err(req, EINVAL);
		return;
	}
	ret = make_node(req, parent, name, mode, rdev, NULL, &mi);
	reply_new_entry(req, ret, &mi);
}

void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct meta_inode mi = {0};
	int ret;

	ret = make_node(req, parent, name, S_IFDIR | (mode & 07777), 0, NULL,
			&mi);
	reply_new_entry(req, ret, &mi);
}

void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		const char *name)
{
	struct meta_inode mi = {0};
	int ret;

	ret = make_node(req, parent, name, S_IFLNK | 0777, 0, link, &mi);
	reply_new_entry(req, ret, &mi);
}

void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
	     const char *newname)
{
	struct fs *fs = req_fs(req);
	struct meta_inode dir = {0}, mi = {0};
	struct meta_txn *txn = NULL;
	struct state_note note = {0};
	int64_t now = time_now_ns();
	int ret;

	ret = check_name(newparent, newname);
	if (ret == 0 && fs_is_ctl(ino))
		ret = -EPERM;
	if (ret == 0)
		ret = meta_txn_begin(fs->db, true, &txn);
	if (ret < 0)
		goto out;
	ret = get_dir(txn, newparent, &dir);
	if (ret == 0)
		ret = meta_inode_get(txn, ino, &mi);
	if (ret < 0)
		goto out;
	if (S_ISDIR(mi.mode)) {
		ret = -EPERM;
		goto out;
	}
	if (mi.nlink == 0) {
		ret = -ENOENT;
		goto out;
	}
	ret = name_unused(txn, newparent, newname);
	if (ret < 0)
		goto out;
	mi.nlink++;
	mi.ctime_ns = now;
	mark_changed(txn, &mi, &note);
	meta_inode_put(txn, &mi);
	meta_dentry_put(txn, newparent, newname, ino, false);
	touch_dir(txn, &dir, now);
	meta_inode_put(txn, &dir);
	ret = meta_txn_commit(txn);
	txn = NULL;
	if (ret == 0)
		apply_notes(fs, &note, 1);
out:
	meta_txn_abort(txn);
	meta_inode_release(&dir);
	reply_new_entry(req, ret, &mi);
}

/*
 * A name of mi goes away or moves: its object stays in S3 (exports never
 * delete), and what that key holds is remembered (meta.h, gone), so a file
 * that takes the name may replace it and an import finds it unchanged.
 * Whoever still stands on the object is detached before an export replaces
 * it (tasks/export.c).
 */
static void note_name_left(struct meta_txn *txn, const struct meta_inode *mi)
{
	if (mi->s3_key && mi->etag[0] && mi->state != META_NEW)
		meta_gone_put(txn, mi->s3_key, mi->etag);
}

/*
 * Take the name (parent, name) -> mi away inside txn: nlink, ctime, and
 * for a directory its parent's link. Returns 1 when mi has no name left.
 */
static int drop_name(struct meta_txn *txn, struct meta_inode *dir,
		     struct meta_inode *mi, int64_t now,
		     struct state_note *note)
{
	note_name_left(txn, mi);
	if (S_ISDIR(mi->mode)) {
		mi->nlink = 0;
		dir->nlink--;
	} else if (mi->nlink > 0) {
		mi->nlink--;
	}
	mi->ctime_ns = now;
	if (mi->nlink == 0) {
		/* Counted out of the stats when purged. */
		mi->flags |= META_F_UNLINKED;
		meta_dirty_del(txn, mi->ino);
	} else {
		mark_changed(txn, mi, note);
	}
	meta_inode_put(txn, mi);
	return mi->nlink == 0;
}

/* The last name of mi is gone: it leaves the counters now (a user sees it
 * gone), and the store once the kernel forgets it. */
static void finish_unlink(struct fs *fs, const struct meta_inode *mi)
{
	fs_count_inode(fs, mi, -1);
	if (fs_lookup_unlinked(fs, mi->ino))
		fs_purge_inode(fs, mi->ino);
}

static void do_remove(fuse_req_t req, fuse_ino_t parent, const char *name,
		      bool dir_wanted)
{
	struct fs *fs = req_fs(req);
	struct meta_inode dir = {0}, mi = {0};
	struct meta_txn *txn = NULL;
	struct state_note note = {0};
	int64_t now = time_now_ns();
	uint64_t ino = 0;
	int ret, gone = 0;

	if (parent == FUSE_ROOT_ID && !strcmp(name, FS_CTL_NAME)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (strlen(name) > 255) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	ret = meta_txn_begin(fs->db, true, &txn);
	meta_txn_frees_space(txn);
	if (ret == 0)
		ret = get_dir(txn, parent, &dir);
	if (ret == 0)
		ret = meta_dentry_get(txn, parent, name, &ino);
	if (ret == 0)
		ret = meta_inode_get(txn, ino, &mi);
	if (ret < 0)
		goto out;
	if (dir_wanted && !S_ISDIR(mi.mode)) {
		ret = -ENOTDIR;
		goto out;
	}
	if (!dir_wanted && S_ISDIR(mi.mode)) {
		ret = -EISDIR;
		goto out;
	}
	if (dir_wanted) {
		ret = meta_dir_is_empty(txn, ino);
		if (ret == 0)
			ret = -ENOTEMPTY;
		if (ret < 0)
			goto out;
	}
	meta_dentry_del(txn, parent, name);
	gone = drop_name(txn, &dir, &mi, now, &note);
	touch_dir(txn, &dir, now);
	meta_inode_put(txn, &dir);
	ret = meta_txn_commit(txn);
	txn = NULL;
	if (ret == 0) {
		apply_notes(fs, &note, 1);
		if (gone)
			finish_unlink(fs, &mi);
	}
out:
	meta_txn_abort(txn);
	meta_inode_release(&dir);
	meta_inode_release(&mi);
	fuse_reply_err(req, -ret);
}

void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	do_remove(req, parent, name, false);
}

void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	do_remove(req, parent, name, true);
}

struct rename_ctx {
	struct meta_inode sd, dd_store, smi, dmi;
	struct meta_inode *dd; /* &sd when both names share a directory */
	uint64_t sino, dino;   /* dino 0: no target */
	struct state_note notes[2];
};

static int rename_exchange(struct meta_txn *txn, struct rename_ctx *r,
			   fuse_ino_t parent, const char *name,
			   fuse_ino_t newparent, const char *newname,
			   int64_t now)
{
	if (!r->dino)
		return -ENOENT;
	meta_dentry_put(txn, parent, name, r->dino, true);
	meta_dentry_put(txn, newparent, newname, r->sino, true);
	note_name_left(txn, &r->smi);
	note_name_left(txn, &r->dmi);
	if (parent != newparent) {
		if (S_ISDIR(r->smi.mode)) {
			r->sd.nlink--;
			r->dd->nlink++;
		}
		if (S_ISDIR(r->dmi.mode)) {
			r->dd->nlink--;
			r->sd.nlink++;
		}
	}
	r->smi.ctime_ns = r->dmi.ctime_ns = now;
	mark_changed(txn, &r->smi, &r->notes[0]);
	mark_changed(txn, &r->dmi, &r->notes[1]);
	meta_inode_put(txn, &r->smi);
	meta_inode_put(txn, &r->dmi);
	return 0;
}

/* Returns 1 when the replaced target lost its last name. */
static int rename_move(struct meta_txn *txn, struct rename_ctx *r,
		       fuse_ino_t parent, const char *name,
		       fuse_ino_t newparent, const char *newname,
		       unsigned flags, int64_t now)
{
	int ret, gone = 0;

	if (r->dino) {
		if (flags & RENAME_NOREPLACE)
			return -EEXIST;
		if (S_ISDIR(r->smi.mode) && !S_ISDIR(r->dmi.mode))
			return -ENOTDIR;
		if (!S_ISDIR(r->smi.mode) && S_ISDIR(r->dmi.mode))
			return -EISDIR;
		if (S_ISDIR(r->dmi.mode)) {
			ret = meta_dir_is_empty(txn, r->dino);
			if (ret <= 0)
				return ret == 0 ? -ENOTEMPTY : ret;
		}
		gone = drop_name(txn, r->dd, &r->dmi, now, &r->notes[1]);
	}
	meta_dentry_del(txn, parent, name);
	meta_dentry_put(txn, newparent, newname, r->sino, true);
	note_name_left(txn, &r->smi);
	if (S_ISDIR(r->smi.mode) && parent != newparent) {
		r->sd.nlink--;
		r->dd->nlink++;
	}
	/* Renamed files export under their new key: a metadata change. */
	r->smi.ctime_ns = now;
	mark_changed(txn, &r->smi, &r->notes[0]);
	meta_inode_put(txn, &r->smi);
	return gone;
}

static int rename_lookup(struct meta_txn *txn, struct rename_ctx *r,
			 fuse_ino_t parent, const char *name,
			 fuse_ino_t newparent, const char *newname)
{
	int ret;

	ret = get_dir(txn, parent, &r->sd);
	if (ret < 0)
		return ret;
	r->dd = &r->sd;
	if (newparent != parent) {
		r->dd = &r->dd_store;
		ret = get_dir(txn, newparent, r->dd);
		if (ret < 0)
			return ret;
	}
	ret = meta_dentry_get(txn, parent, name, &r->sino);
	if (ret == 0)
		ret = meta_inode_get(txn, r->sino, &r->smi);
	if (ret < 0)
		return ret;
	ret = meta_dentry_get(txn, newparent, newname, &r->dino);
	if (ret == -ENOENT) {
		r->dino = 0;
		return 0;
	}
	if (ret == 0)
		ret = meta_inode_get(txn, r->dino, &r->dmi);
	return ret;
}

void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
	       fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct fs *fs = req_fs(req);
	struct rename_ctx r = {0};
	struct meta_txn *txn = NULL;
	int64_t now = time_now_ns();
	int ret, gone = 0;

	if ((parent == FUSE_ROOT_ID && !strcmp(name, FS_CTL_NAME)) ||
	    fs_is_ctl(parent) || fs_is_ctl(newparent)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE) ||
	    (flags & RENAME_NOREPLACE && flags & RENAME_EXCHANGE)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	ret = check_name(newparent, newname);
	if (ret == 0 && strlen(name) > 255)
		ret = -ENAMETOOLONG;
	if (ret == 0)
		ret = meta_txn_begin(fs->db, true, &txn);
	meta_txn_frees_space(txn); /* it may replace a file */
	if (ret == 0)
		ret = rename_lookup(txn, &r, parent, name, newparent, newname);
	if (ret < 0)
		goto out;
	if (r.dino == r.sino) {
		/* Two names of one inode: POSIX says do nothing. */
		ret = 0;
		goto out;
	}
	if (flags & RENAME_EXCHANGE)
		ret = rename_exchange(txn, &r, parent, name, newparent, newname,
				      now);
	else
		ret = gone = rename_move(txn, &r, parent, name, newparent,
					 newname, flags, now);
	if (ret < 0)
		goto out;
	touch_dir(txn, &r.sd, now);
	meta_inode_put(txn, &r.sd);
	if (r.dd != &r.sd) {
		touch_dir(txn, r.dd, now);
		meta_inode_put(txn, r.dd);
	}
	ret = meta_txn_commit(txn);
	txn = NULL;
	if (ret == 0) {
		apply_notes(fs, r.notes, 2);
		if (gone)
			finish_unlink(fs, &r.dmi);
	}
out:
	meta_txn_abort(txn);
	meta_inode_release(&r.sd);
	meta_inode_release(&r.dd_store);
	meta_inode_release(&r.smi);
	meta_inode_release(&r.dmi);
	fuse_reply_err(req, ret < 0 ? -ret : 0);
}

/* The kernel clears S_ISUID and a group-executable S_ISGID of a file a
 * caller without CAP_FSETID (root stands for it) truncates, by FUSE's
 * older rule; the VFS also clears S_ISGID without group execute when the
 * caller is not in the file's group. */
static int truncate_ino(fuse_req_t req, fuse_ino_t ino, uint64_t size,
			struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct hydrate_caller who = fs_caller(req);
	unsigned flags =
		fuse_req_ctx(req)->uid != 0 ? HYDRATE_KILL_SGID_NOGROUP : 0;
	struct hydrate_file *hf = NULL;
	int ret;

	if (fi && fi->fh)
		return hydrate_truncate(fs_fh_file(fi), size, flags, &who);
	ret = hydrate_open(fs->hy, ino, &hf);
	if (ret < 0)
		return ret == -EINVAL ? -EINVAL : ret;
	ret = hydrate_truncate(hf, size, flags, &who);
	hydrate_close(hf);
	return ret;
}

static void set_times(struct meta_inode *mi, const struct stat *attr,
		      int to_set, int64_t now)
{
	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		mi->atime_ns = now;
	else if (to_set & FUSE_SET_ATTR_ATIME)
		mi->atime_ns = attr->st_atim.tv_sec * 1000000000LL +
			       attr->st_atim.tv_nsec;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		mi->mtime_ns = now;
	else if (to_set & FUSE_SET_ATTR_MTIME)
		mi->mtime_ns = attr->st_mtim.tv_sec * 1000000000LL +
			       attr->st_mtim.tv_nsec;
}

void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct meta_inode mi = {0};
	struct meta_txn *txn = NULL;
	struct state_note note = {0};
	int64_t now = time_now_ns();
	struct stat st;
	int ret = 0;

	if (fs_is_ctl(ino)) {
		ret = ctl_setattr(fs, ino, to_set, &st);
		if (ret < 0)
			fuse_reply_err(req, -ret);
		else
			fuse_reply_attr(req, &st, 0);
		return;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (attr->st_size < 0)
			ret = -EINVAL;
		else
			ret = truncate_ino(req, ino, (uint64_t)attr->st_size,
					   fi);
		if (ret < 0)
			goto out;
	}
	ret = meta_txn_begin(fs->db, true, &txn);
	if (ret == 0)
		ret = meta_inode_get(txn, ino, &mi);
	if (ret < 0)
		goto out;
	if (to_set & ~FUSE_SET_ATTR_SIZE) {
		if (to_set & FUSE_SET_ATTR_MODE) {
			uint32_t was = mi.mode;

			mi.mode = (mi.mode & S_IFMT) | (attr->st_mode & 07777);
			/* The kernel's mode for a truncate that clears set-id
			 * bits comes from before the truncate, which may have
			 * cleared S_ISGID (truncate_ino): keep it cleared. */
			if ((to_set & FUSE_SET_ATTR_SIZE) && !(was & S_ISGID) &&
			    (mi.mode & S_ISGID) && !(mi.mode & S_IXGRP) &&
			    fuse_req_ctx(req)->uid != 0)
				mi.mode &= ~(uint32_t)S_ISGID;
		}
		if (to_set & FUSE_SET_ATTR_UID)
			mi.uid = attr->st_uid;
		if (to_set & FUSE_SET_ATTR_GID)
			mi.gid = attr->st_gid;
		set_times(&mi, attr, to_set, now);
		mi.ctime_ns = now;
		if (to_set & FUSE_SET_ATTR_CTIME)
			mi.ctime_ns = attr->st_ctim.tv_sec * 1000000000LL +
				      attr->st_ctim.tv_nsec;
		mark_changed(txn, &mi, &note);
		meta_inode_put(txn, &mi);
		ret = meta_txn_commit(txn);
	} else {
		meta_txn_abort(txn);
	}
	txn = NULL;
	if (ret < 0)
		goto out;
	apply_notes(fs, &note, 1);
	fs_fill_stat(fs, &mi, &st);
	meta_inode_release(&mi);
	fuse_reply_attr(req, &st, fs->timeout);
	return;
out:
	meta_txn_abort(txn);
	meta_inode_release(&mi);
	fuse_reply_err(req, -ret);
}

static int xattr_name_ok(const char *name)
{
	if (!strcmp(name, FS_PIN_XATTR))
		return 0;
	if (!strncmp(name, RESERVED_XATTR_PREFIX,
		     strlen(RESERVED_XATTR_PREFIX)))
		return -EPERM;
	if (!fs_xattr_supported(name))
		return -EOPNOTSUPP;
	if (strlen(name) > 255)
		return -ERANGE;
	return 0;
}

static int pin_value_ok(const char *value, size_t size)
{
	if (!value)
		return 0;
	return size == 1 && value[0] == '1' ? 0 : -EINVAL;
}

/* Set (value != NULL) or remove an xattr in one transaction. */
static int change_xattr(struct fs *fs, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	struct meta_inode mi = {0};
	struct meta_txn *txn = NULL;
	struct state_note note = {0};
	char probe[1];
	size_t len;
	int ret, exists;

	ret = fs_is_ctl(ino) ? -EPERM : xattr_name_ok(name);
	if (ret == 0 && value && size > 65536)
		ret = -E2BIG;
	if (ret == 0)
		ret = meta_txn_begin(fs->db, true, &txn);
	if (ret == 0)
		ret = meta_inode_get(txn, ino, &mi);
	if (ret < 0)
		goto out;
	if (!strcmp(name, FS_PIN_XATTR)) {
		/* Pinning (hsm_set --norelease): a flag, not a stored value. */
		exists = (mi.flags & META_F_NORELEASE) != 0;
		ret = pin_value_ok(value, size);
	} else {
		ret = meta_xattr_get(txn, ino, name, probe, 0, &len);
		if (ret < 0 && ret != -ENOENT && ret != -ERANGE)
			goto out;
		exists = ret != -ENOENT;
		ret = 0;
	}
	if (ret < 0)
		goto out;
	if (value && exists && !(flags & XATTR_CREATE) && len == size &&
	    strcmp(name, FS_PIN_XATTR) != 0) {
		/* The same value again changes nothing, not even ctime (as
		 * on ext4): the file does not become dirty for it. */
		char *cur = malloc(size ? size : 1);
		bool same =
			cur &&
			meta_xattr_get(txn, ino, name, cur, size, &len) == 0 &&
			len == size && memcmp(cur, value, size) == 0;

		free(cur);
		if (same)
			goto out; /* ret is 0; the transaction is aborted */
	}
	if (value && (flags & XATTR_CREATE) && exists)
		ret = -EEXIST;
	else if ((!value || (flags & XATTR_REPLACE)) && !exists)
		ret = -ENODATA;
	else if (!strcmp(name, FS_PIN_XATTR) && !S_ISREG(mi.mode))
		ret = -EPERM;
	else if (!strcmp(name, FS_PIN_XATTR))
		mi.flags = value ? mi.flags | META_F_NORELEASE
				 : mi.flags & ~(uint32_t)META_F_NORELEASE;
	else if (value)
		ret = meta_xattr_put(txn, ino, name, value, size);
	else
		ret = meta_xattr_del(txn, ino, name);
	if (ret < 0)
		goto out;
	if (!strcmp(name, FS_PIN_XATTR)) {
		/* Local policy, not file metadata: no ctime, not dirty. */
		meta_inode_put(txn, &mi);
		ret = meta_txn_commit(txn);
		txn = NULL;
		goto out;
	}
	mi.ctime_ns = time_now_ns();
	mark_changed(txn, &mi, &note);
	meta_inode_put(txn, &mi);
	ret = meta_txn_commit(txn);
	txn = NULL;
	if (ret == 0)
		apply_notes(fs, &note, 1);
out:
	meta_txn_abort(txn);
	meta_inode_release(&mi);
	return ret;
}

void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		 const char *value, size_t size, int flags)
{
	int ret = change_xattr(req_fs(req), ino, name, value ? value : "", size,
			       flags);

	fuse_reply_err(req, -ret);
}

void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	int ret = change_xattr(req_fs(req), ino, name, NULL, 0, 0);

	fuse_reply_err(req, -ret);
}

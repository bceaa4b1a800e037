// SPDX-License-Identifier: MIT
/*
 * FUSE low-level operations over the metadata store and the hydrating data
 * path, and the fs_ops table. Inode numbers are the store's (the root is
 * META_ROOT_INO == FUSE_ROOT_ID). Changes to the namespace and attributes
 * live in nsops.c, directory listing in dirops.c, the .tidefs control tree
 * in ctl.c.
 *
 * The kernel checks permissions itself (default_permissions is always on);
 * access() is answered from the same mode bits for callers that ask.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fs/fs_i.h"
#include "tasks/tasks.h"

#define STATE_XATTR FS_STATE_XATTR

static struct fs *req_fs(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* Floor division: times before 1970 keep 0 <= tv_nsec < 1e9. */
static void ns_to_ts(int64_t ns, struct timespec *ts)
{
	int64_t sec = ns / 1000000000, rem = ns % 1000000000;

	if (rem < 0) {
		sec--;
		rem += 1000000000;
	}
	ts->tv_sec = (time_t)sec;
	ts->tv_nsec = (long)rem;
}

void fs_fill_stat(const struct fs *fs, const struct meta_inode *mi,
		  struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = mi->ino;
	st->st_mode = mi->mode;
	st->st_nlink = mi->nlink;
	st->st_uid = mi->uid;
	st->st_gid = mi->gid;
	st->st_rdev = mi->rdev;
	st->st_size = (off_t)mi->size;
	st->st_blksize = (blksize_t)fs->csize;
	/* Blocks show what is cached locally, so du tells cache use. */
	st->st_blocks = (blkcnt_t)((mi->cached_bytes + 511) / 512);
	ns_to_ts(mi->atime_ns, &st->st_atim);
	ns_to_ts(mi->mtime_ns, &st->st_mtim);
	ns_to_ts(mi->ctime_ns, &st->st_ctim);
}

void fs_on_change(void *arg, uint64_t ino, int old_state, int new_state)
{
	struct fs *fs = arg;

	(void)ino;
	if (old_state == new_state || old_state >= FS_NSTATES ||
	    new_state < 0 || new_state >= FS_NSTATES)
		return;
	pthread_mutex_lock(&fs->stats_lock);
	if (old_state < 0)
		fs->ninodes++; /* a file a task created (import) */
	else
		fs->nstate[old_state]--;
	fs->nstate[new_state]++;
	pthread_mutex_unlock(&fs->stats_lock);
}

void fs_inval_entry(void *arg, uint64_t parent, const char *name)
{
	struct fs *fs = arg;
	int ret;

	if (!fs->se)
		return;
	ret = fuse_lowlevel_notify_inval_entry(fs->se, parent, name,
					       strlen(name));
	if (ret < 0 && ret != -ENOENT)
		log_debug("invalidating entry %s in %" PRIu64 ": %s", name,
			  parent, strerror(-ret));
}

void fs_inval_inode(void *arg, uint64_t ino)
{
	struct fs *fs = arg;
	int ret;

	if (!fs->se)
		return;
	ret = fuse_lowlevel_notify_inval_inode(fs->se, ino, 0, 0);
	if (ret < 0 && ret != -ENOENT)
		log_debug("invalidating inode %" PRIu64 ": %s", ino,
			  strerror(-ret));
}

void fs_on_fill(void *arg, const struct meta_inode *before,
		const struct meta_inode *after)
{
	struct fs *fs = arg;

	/* The kernel never saw the record before: nothing to invalidate. */
	fs_count_inode(fs, before, -1);
	if (after)
		fs_count_inode(fs, after, 1);
}

int fs_fill(struct fs *fs, const uint64_t *inos, size_t n, int *errs)
{
	int ret = task_filler_complete(fs->filler, inos, n, errs);

	if (ret < 0) {
		for (size_t i = 0; i < n; i++)
			if (!errs || errs[i] < 0) {
				log_error("metadata of inode %" PRIu64
					  " is not available (%s): EIO",
					  inos[i],
					  strerror(errs ? -errs[i] : -ret));
				if (!errs)
					break;
			}
		return -EIO;
	}
	return 0;
}

void fs_count_inode(struct fs *fs, const struct meta_inode *mi, int delta)
{
	pthread_mutex_lock(&fs->stats_lock);
	fs->ninodes += (uint64_t)(int64_t)delta;
	if (S_ISREG(mi->mode) && mi->state < FS_NSTATES)
		fs->nstate[mi->state] += (uint64_t)(int64_t)delta;
	pthread_mutex_unlock(&fs->stats_lock);
}

/* Read one inode in its own read transaction, completing its metadata
 * first when it is still pending. */
static int get_inode(struct fs *fs, uint64_t ino, struct meta_inode *mi)
{
	struct meta_txn *txn;
	int ret;

	for (int tries = 0;; tries++) {
		ret = meta_txn_begin(fs->db, false, &txn);
		if (ret < 0)
			return ret;
		ret = meta_inode_get(txn, ino, mi);
		meta_txn_abort(txn);
		if (ret < 0 || !(mi->flags & META_F_HEAD_PENDING))
			return ret;
		meta_inode_release(mi);
		if (tries > 0)
			return -EIO;
		ret = fs_fill(fs, &ino, 1, NULL);
		if (ret < 0)
			return ret;
	}
}

void fs_fill_entry(struct fs *fs, const struct meta_inode *mi,
		   struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = mi->ino;
	e->generation = 1;
	e->attr_timeout = fs->timeout;
	e->entry_timeout = fs->timeout;
	fs_fill_stat(fs, mi, &e->attr);
}

/* 0 with *e, 1 with *pending set when the inode's metadata is still to
 * come, or -errno. */
static int do_lookup(struct fs *fs, struct meta_txn *txn, fuse_ino_t parent,
		     const char *name, struct fuse_entry_param *e,
		     uint64_t *pending)
{
	struct meta_inode mi = {0};
	uint64_t ino;
	int ret;

	ret = meta_dentry_get(txn, parent, name, &ino);
	if (ret < 0)
		return ret;
	ret = meta_inode_get(txn, ino, &mi);
	if (ret < 0)
		return ret == -ENOENT ? -EIO : ret; /* dangling entry */
	if (mi.flags & META_F_HEAD_PENDING) {
		*pending = ino;
		meta_inode_release(&mi);
		return 1;
	}
	fs_fill_entry(fs, &mi, e);
	meta_inode_release(&mi);
	return 0;
}

/* Look a name up, completing its inode's metadata first if needed (the
 * kernel never sees a pending inode). */
static int lookup_filled(struct fs *fs, fuse_ino_t parent, const char *name,
			 struct fuse_entry_param *e)
{
	struct meta_txn *txn;
	uint64_t pending = 0;
	int ret;

	for (int tries = 0;; tries++) {
		ret = meta_txn_begin(fs->db, false, &txn);
		if (ret < 0)
			return ret;
		ret = do_lookup(fs, txn, parent, name, e, &pending);
		meta_txn_abort(txn);
		if (ret <= 0)
			return ret;
		if (tries > 0)
			return -EIO;
		ret = fs_fill(fs, &pending, 1, NULL);
		if (ret < 0)
			return ret;
	}
}

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = req_fs(req);
	struct fuse_entry_param e;
	int ret;

	if (strlen(name) > 255) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	if (parent == FUSE_ROOT_ID && strcmp(name, FS_CTL_NAME) == 0) {
		ctl_dir_entry(fs, &e);
		fuse_reply_entry(req, &e);
		return;
	}
	if (fs_is_ctl(parent)) {
		ret = ctl_lookup(fs, parent, name, &e);
		if (ret < 0)
			fuse_reply_err(req, -ret);
		else
			fuse_reply_entry(req, &e);
		return;
	}
	ret = lookup_filled(fs, parent, name, &e);
	if (ret == -ENOENT) {
		/* Negative entry: cached briefly, so names an import task
		 * brings in show up soon. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = 1.0;
		fuse_reply_entry(req, &e);
		return;
	}
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else {
		/* Counted before the reply: a rename or unlink handled by
		 * another thread right after the kernel got the entry must
		 * not find the inode unknown and purge it under an open
		 * file. */
		fs_lookup_ref(fs, e.ino);
		if (fuse_reply_entry(req, &e) != 0)
			fs_lookup_forget(fs, e.ino, 1);
	}
}

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fs_lookup_forget(req_fs(req), ino, nlookup);
	fuse_reply_none(req);
}

static void fs_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		fs_lookup_forget(req_fs(req), forgets[i].ino,
				 forgets[i].nlookup);
	fuse_reply_none(req);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct meta_inode mi = {0};
	struct stat st;
	int ret;

	(void)fi;
	if (fs_is_ctl(ino)) {
		ret = ctl_getattr(fs, ino, &st);
		if (ret < 0)
			fuse_reply_err(req, -ret);
		else
			fuse_reply_attr(req, &st, fs->timeout);
		return;
	}
	ret = get_inode(fs, ino, &mi);
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	fs_fill_stat(fs, &mi, &st);
	meta_inode_release(&mi);
	fuse_reply_attr(req, &st, fs->timeout);
}

/* ---- files ---- */

/* Is the caller of req (arg) in group gid: its own, or a supplementary
 * one (from /proc, only asked for files whose set-group-id bit is at
 * stake)? When that cannot be told, yes: the bit stays, as before. */
static bool req_in_group(void *arg, uint32_t gid)
{
	fuse_req_t req = arg;
	gid_t small[64], *list = small;
	int n, max = 64;
	bool in = false;

	if (fuse_req_ctx(req)->gid == gid)
		return true;
	for (;;) {
		n = fuse_req_getgroups(req, max, list);
		if (n < 0 || n <= max)
			break;
		if (list != small)
			free(list);
		max = n;
		list = malloc((size_t)max * sizeof(*list));
		if (!list)
			return true;
	}
	if (n < 0)
		in = true;
	for (int i = 0; i < n && !in; i++)
		in = list[i] == gid;
	if (list != small)
		free(list);
	return in;
}

/* Does this kernel's VFS clear S_ISGID without group execute for a caller
 * outside the file's group (setattr_should_drop_sgid, Linux 6.2)? Then so
 * does tidefs, as the local file systems here do. */
static bool vfs_drops_sgid_nogroup;

static void check_vfs_sgid(void)
{
	struct utsname u;
	int major = 0, minor = 0;

	if (uname(&u) == 0 && sscanf(u.release, "%d.%d", &major, &minor) == 2)
		vfs_drops_sgid_nogroup =
			major > 6 || (major == 6 && minor >= 2);
}

struct hydrate_caller fs_caller(fuse_req_t req)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, check_vfs_sgid);
	return (struct hydrate_caller){
		.in_group = vfs_drops_sgid_nogroup ? req_in_group : NULL,
		.arg = req,
	};
}

void fs_open_flags(struct fuse_file_info *fi, struct hydrate_file *hf)
{
	/* A write-only handle cannot read or map the file: the kernel may
	 * pass its writes straight to us instead of copying them into its
	 * page cache first (half the memory traffic of a large write). */
	bool direct = (fi->flags & O_ACCMODE) == O_WRONLY;

	fi->fh = fs_fh(hf, direct);
	fi->direct_io = direct;
	/* Clean data never changes under a handle: keep the page cache
	 * (direct writes invalidate what they overwrite, fs_write_buf). */
	fi->keep_cache = 1;
	/* Writes are on disk and in the store before they are acknowledged,
	 * so close has nothing to flush: spare it the round trip. */
	fi->noflush = 1;
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct hydrate_file *hf;
	int id, ret;

	if (fs_is_ctl(ino)) {
		ctl_open(fs, req, ino, fi);
		return;
	}
	ret = hydrate_open(fs->hy, ino, &hf);
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	/* libfuse asks for atomic O_TRUNC: the kernel leaves it to us, with
	 * what its truncate would do besides: mtime and ctime change even
	 * when the file was empty, and a caller without CAP_FSETID (root
	 * stands for it) loses S_ISUID, and S_ISGID when group-executable
	 * or (kernels since 6.2) when it is not in the file's group.
	 * O_RDONLY | O_TRUNC truncates too, as on Linux: the kernel checked
	 * for write permission, which it asks whenever O_TRUNC is set. */
	if (fi->flags & O_TRUNC) {
		struct hydrate_caller who = fs_caller(req);
		unsigned tflags = HYDRATE_TIMES;

		if (fuse_req_ctx(req)->uid != 0)
			tflags |= HYDRATE_KILL_SUIDGID;
		ret = hydrate_truncate(hf, 0, tflags, &who);
		if (ret < 0) {
			hydrate_close(hf);
			fuse_reply_err(req, -ret);
			return;
		}
	}
	id = hydrate_handle_open(hf, (fi->flags & O_ACCMODE) != O_RDONLY);
	if (id < -1) {
		hydrate_close(hf);
		fuse_reply_err(req, -id);
		return;
	}
	fs_open_flags(fi, hf);
	if (id >= 0) {
		/* Passthrough: the kernel reads the data file itself. A
		 * writable handle still sends its reads and writes to us
		 * (FOPEN_DIRECT_IO wins over passthrough for them). */
		bool writable = (fi->flags & O_ACCMODE) != O_RDONLY;

		fi->fh = fs_fh(hf, writable) | FS_FH_PT;
		fi->direct_io = writable;
		fi->keep_cache = 0;
		fs_pt_arm(id);
	}
	ret = fuse_reply_open(req, fi);
	if (id >= 0 && !fs_pt_disarm() && ret == 0)
		log_error("open of inode %" PRIu64 ": passthrough reply"
			  " not sent",
			  (uint64_t)ino);
	if (ret == -ENOENT) {
		hydrate_handle_close(hf, id >= 0);
		hydrate_close(hf); /* interrupted open */
	}
}

#define SMALL_READ (64 * 1024)

static int reply_read(void *arg, int fd, uint64_t off, size_t n)
{
	fuse_req_t req = arg;
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(n);

	if (n == 0)
		return fuse_reply_buf(req, NULL, 0);
	if (n <= SMALL_READ) {
		/* Small reads: one copy beats setting up a splice. */
		char *tmp = malloc(n);
		ssize_t got;
		if (tmp) {
			got = pread(fd, tmp, n, (off_t)off);
			if (got < 0)
				fuse_reply_err(req, errno);
			else
				fuse_reply_buf(req, tmp, (size_t)got);
			free(tmp);
			return 0;
		}
	}
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = fd;
	buf.buf[0].pos = (off_t)off;
	fuse_reply_data(req, &buf, 0);
	return 0;
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct hydrate_file *hf = fs_fh_file(fi);
	int ret;

	if (fs_is_ctl(ino)) {
		ctl_read(req, size, off, fi);
		return;
	}
	ret = hydrate_read(hf, (uint64_t)off, size, reply_read, req);
	if (ret < 0)
		fuse_reply_err(req, ret == -ENOMEM ? ENOMEM : EIO);
}

/*
 * After a direct write that changed the mode (set-id bits cleared) or to a
 * file the kernel may hold pages of: it drops its cached pages of the range
 * before it sends the write, but a reader may have cached the old bytes
 * again since. Drop the range and the attributes again now that the bytes
 * are in place. Not from inside hydrate: no lock of ours is held here.
 */
static void direct_written(struct fs *fs, fuse_ino_t ino, off_t off, size_t len)
{
	int ret;

	if (!fs->se)
		return;
	ret = fuse_lowlevel_notify_inval_inode(fs->se, ino, off, (off_t)len);
	if (ret < 0 && ret != -ENOENT)
		log_debug("invalidating inode %" PRIu64 ": %s", (uint64_t)ino,
			  strerror(-ret));
}

static void fs_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in,
			 off_t off, struct fuse_file_info *fi)
{
	struct hydrate_file *hf = fs_fh_file(fi);
	size_t len = fuse_buf_size(in);
	struct fuse_bufvec mem = FUSE_BUFVEC_INIT(len);
	struct hydrate_caller who = fs_caller(req);
	unsigned flags = 0;
	void *data = NULL;
	int ret;

	if (in->count == 1 && !(in->buf[0].flags & FUSE_BUF_IS_FD)) {
		data = in->buf[0].mem;
	} else {
		data = malloc(len);
		if (!data) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		mem.buf[0].mem = data;
		if ((size_t)fuse_buf_copy(&mem, in, 0) != len) {
			free(data);
			fuse_reply_err(req, EIO);
			return;
		}
	}
	/* The kernel asks us to clear the set-id bits of a direct write
	 * by a caller without CAP_FSETID; libfuse does not pass that flag
	 * on, so root stands for the capability. Before a write through its
	 * page cache it clears them itself, by FUSE's older rule, which
	 * keeps S_ISGID of a file that is not group-executable. */
	if (!fs_is_ctl(ino) && fuse_req_ctx(req)->uid != 0)
		flags |= fs_fh_direct(fi) ? HYDRATE_KILL_SUIDGID
					  : HYDRATE_KILL_SGID_NOGROUP;
	/* The kernel removes security.capability before a write through
	 * its page cache (whoever writes), not before a direct one. */
	if (!fs_is_ctl(ino) && fs_fh_direct(fi))
		flags |= HYDRATE_KILL_PRIV;
	if (fs_is_ctl(ino))
		ctl_write(req, data, len, off, fi);
	else
		ret = hydrate_write(hf, data, len, (uint64_t)off, &flags, &who);
	if (data != in->buf[0].mem)
		free(data);
	if (fs_is_ctl(ino))
		return;
	if (ret == 0 && fs_fh_direct(fi) &&
	    (flags & (HYDRATE_MODE_CHANGED | HYDRATE_MAY_BE_CACHED)))
		direct_written(req_fs(req), ino, off, len);
	else if (ret == 0 && (flags & HYDRATE_MODE_CHANGED))
		direct_written(req_fs(req), ino, -1, 0); /* attributes only */
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_write(req, len);
}

static void fs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
			 off_t length, struct fuse_file_info *fi)
{
	struct hydrate_file *hf = fs_fh_file(fi);
	struct hydrate_caller who = fs_caller(req);
	/* The kernel clears set-id bits first, by FUSE's older rule. */
	unsigned flags =
		fuse_req_ctx(req)->uid != 0 ? HYDRATE_KILL_SGID_NOGROUP : 0;
	int ret;

	if (fs_is_ctl(ino) || offset < 0 || length <= 0) {
		fuse_reply_err(req, fs_is_ctl(ino) ? EOPNOTSUPP : EINVAL);
		return;
	}
	ret = hydrate_fallocate(hf, mode, (uint64_t)offset, (uint64_t)length,
				&flags, &who);
	if (ret == 0 && (flags & HYDRATE_MODE_CHANGED))
		direct_written(req_fs(req), ino, -1, 0); /* attributes only */
	fuse_reply_err(req, -ret);
}

static void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (fs_is_ctl(ino)) {
		ctl_flush(req_fs(req), req, fi);
		return;
	}
	/* Writes reach the data file and the store before they are
	 * acknowledged: nothing is buffered here. */
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	int ret;

	if (fs_is_ctl(ino)) {
		fuse_reply_err(req, 0);
		return;
	}
	if (fi && fi->fh)
		ret = hydrate_fsync(fs_fh_file(fi), datasync);
	else
		ret = meta_sync(fs->db);
	fuse_reply_err(req, -ret);
}

static void fs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, -meta_sync(req_fs(req)->db));
}

static void fs_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req); /* req is gone once replied to */
	bool pt = fi->fh & FS_FH_PT;

	if (fs_is_ctl(ino)) {
		ctl_release(req, fi);
		return;
	}
	hydrate_handle_close(fs_fh_file(fi), pt);
	hydrate_close(fs_fh_file(fi));
	fuse_reply_err(req, 0);
	/* A shared writable mapping of a passthrough handle wrote to the
	 * data file behind the kernel's page cache of the inode (kept for
	 * later handles of the other kind): drop it. */
	if (pt && fs_fh_direct(fi))
		direct_written(fs, ino, 0, 0);
}

static void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = req_fs(req);
	struct meta_inode mi = {0};
	char target[4097];
	ssize_t n;
	int fd, ret;

	ret = get_inode(fs, ino, &mi);
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	if (!S_ISLNK(mi.mode) || mi.size >= sizeof(target)) {
		meta_inode_release(&mi);
		fuse_reply_err(req, S_ISLNK(mi.mode) ? EIO : EINVAL);
		return;
	}
	fd = chunk_open(fs->cs, ino, false);
	if (fd < 0) {
		meta_inode_release(&mi);
		fuse_reply_err(req, EIO);
		return;
	}
	n = pread(fd, target, mi.size, 0);
	close(fd);
	if (n != (ssize_t)mi.size) {
		meta_inode_release(&mi);
		fuse_reply_err(req, EIO);
		return;
	}
	target[n] = '\0';
	meta_inode_release(&mi);
	fuse_reply_readlink(req, target);
}

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = req_fs(req);
	struct statvfs sv;
	uint64_t used, files;

	(void)ino;
	used = hydrate_used(fs->hy);
	pthread_mutex_lock(&fs->stats_lock);
	files = fs->ninodes;
	pthread_mutex_unlock(&fs->stats_lock);
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_blocks = fs->capacity / 4096;
	sv.f_bfree = used >= fs->capacity ? 0 : (fs->capacity - used) / 4096;
	sv.f_bavail = sv.f_bfree;
	sv.f_files = files + (1u << 30);
	sv.f_ffree = 1u << 30;
	sv.f_favail = sv.f_ffree;
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}

/* ---- xattrs ---- */

static int state_name(struct fs *fs, fuse_ino_t ino, const char **name)
{
	struct meta_inode mi = {0};
	int ret;

	/* Fetched chunks reach LMDB through the persister: settle first. */
	hydrate_flush(fs->hy);
	ret = get_inode(fs, ino, &mi);
	if (ret < 0)
		return ret;
	*name = meta_state_name((enum meta_state)mi.state);
	meta_inode_release(&mi);
	return 0;
}

static void reply_xattr(fuse_req_t req, const void *val, size_t len,
			size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, val, len);
}

static void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	char small[4096];
	struct fs *fs = req_fs(req);
	struct meta_txn *txn;
	size_t len = 0;
	char *val;
	int ret;

	if (!fs_xattr_supported(name)) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (fs_is_ctl(ino)) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	if (strcmp(name, FS_PIN_XATTR) == 0) {
		struct meta_inode mi = {0};
		ret = get_inode(fs, ino, &mi);
		if (ret == 0 && !(mi.flags & META_F_NORELEASE))
			ret = -ENODATA;
		meta_inode_release(&mi);
		if (ret < 0)
			fuse_reply_err(req, -ret);
		else
			reply_xattr(req, "1", 1, size);
		return;
	}
	if (strcmp(name, STATE_XATTR) == 0) {
		const char *st;
		ret = state_name(fs, ino, &st);
		if (ret < 0)
			fuse_reply_err(req, -ret);
		else
			reply_xattr(req, st, strlen(st), size);
		return;
	}
	/* Most values are small: a stack buffer, a second look for big ones
	 * (the kernel asks for security.capability before exec). */
	val = small;
	ret = meta_txn_begin(fs->db, false, &txn);
	if (ret == 0) {
		ret = meta_xattr_get(txn, ino, name, val, sizeof(small), &len);
		if (ret == 0 && len > sizeof(small)) {
			val = malloc(len);
			ret = val ? meta_xattr_get(txn, ino, name, val, len,
						   &len)
				  : -ENOMEM;
		}
		meta_txn_abort(txn);
	}
	if (ret == -ENOENT)
		fuse_reply_err(req, ENODATA);
	else if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		reply_xattr(req, val, len, size);
	if (val != small)
		free(val);
}

struct xlist {
	char *buf;
	size_t len, cap;
	int err;
};

static int xlist_add(void *arg, const char *name)
{
	struct xlist *x = arg;
	size_t l = strlen(name) + 1;

	if (x->len + l > x->cap) {
		size_t ncap = (x->len + l) * 2;
		char *n = realloc(x->buf, ncap);
		if (!n)
			return -ENOMEM;
		x->buf = n;
		x->cap = ncap;
	}
	memcpy(x->buf + x->len, name, l);
	x->len += l;
	return 0;
}

static void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct fs *fs = req_fs(req);
	struct xlist x = {0};
	struct meta_txn *txn;
	int ret;

	if (fs_is_ctl(ino)) {
		reply_xattr(req, "", 0, size);
		return;
	}
	ret = xlist_add(&x, STATE_XATTR);
	if (ret == 0)
		ret = meta_txn_begin(fs->db, false, &txn);
	if (ret == 0) {
		struct meta_inode mi = {0};
		if (meta_inode_get(txn, ino, &mi) == 0 &&
		    (mi.flags & META_F_NORELEASE))
			ret = xlist_add(&x, FS_PIN_XATTR);
		meta_inode_release(&mi);
		if (ret == 0)
			ret = meta_xattr_foreach(txn, ino, xlist_add, &x);
		meta_txn_abort(txn);
	}
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		reply_xattr(req, x.buf, x.len, size);
	free(x.buf);
}

static void fs_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct fs *fs = req_fs(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct meta_inode mi = {0};
	struct stat st;
	unsigned bits;
	int ret;

	if (fs_is_ctl(ino))
		ret = ctl_getattr(fs, ino, &st);
	else {
		ret = get_inode(fs, ino, &mi);
		if (ret == 0)
			fs_fill_stat(fs, &mi, &st);
		meta_inode_release(&mi);
	}
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	if (mask == F_OK) {
		fuse_reply_err(req, 0);
		return;
	}
	if ((mask & W_OK) && fs->opt->read_only) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (ctx->uid == 0) {
		ret = (mask & X_OK) && !S_ISDIR(st.st_mode) &&
		      !(st.st_mode & 0111);
		fuse_reply_err(req, ret ? EACCES : 0);
		return;
	}
	if (ctx->uid == st.st_uid)
		bits = (st.st_mode >> 6) & 7;
	else if (ctx->gid == st.st_gid)
		bits = (st.st_mode >> 3) & 7;
	else
		bits = st.st_mode & 7;
	fuse_reply_err(req, ((unsigned)mask & ~bits) ? EACCES : 0);
}

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->want &= ~(unsigned)FUSE_CAP_READDIRPLUS_AUTO;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	conn->max_readahead = 1u << 20;
}

const struct fuse_lowlevel_ops fs_ops = {
	.init = fs_init,
	.lookup = fs_lookup,
	.getattr = fs_getattr,
	.forget = fs_forget,
	.forget_multi = fs_forget_multi,
	.setattr = fs_setattr,
	.readlink = fs_readlink,
	.mknod = fs_mknod,
	.mkdir = fs_mkdir,
	.unlink = fs_unlink,
	.rmdir = fs_rmdir,
	.symlink = fs_symlink,
	.rename = fs_rename,
	.link = fs_link,
	.open = fs_open,
	.read = fs_read,
	.write_buf = fs_write_buf,
	.flush = fs_flush,
	.fsync = fs_fsync,
	.fsyncdir = fs_fsyncdir,
	.fallocate = fs_fallocate,
	.release = fs_release,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.readdirplus = fs_readdirplus,
	.releasedir = fs_releasedir,
	.statfs = fs_statfs,
	.setxattr = fs_setxattr,
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
	.removexattr = fs_removexattr,
	.access = fs_access,
	.create = fs_create,
};

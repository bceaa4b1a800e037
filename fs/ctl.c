// SPDX-License-Identifier: MIT
/*
 * The .tidefs control tree at the mount root: virtual inodes above
 * FS_CTL_BASE, never stored in LMDB, never exported. For now it holds
 * `stats`, a JSON snapshot of the cache taken when the file is opened.
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs_i.h"

struct ctl_buf {
	char *data;
	size_t len;
	struct ctl_buf *prev, *next; /* protected by fs->stats_lock */
};

static void buf_link(struct fs *fs, struct ctl_buf *b)
{
	pthread_mutex_lock(&fs->stats_lock);
	b->next = fs->ctl_bufs;
	if (b->next)
		b->next->prev = b;
	fs->ctl_bufs = b;
	pthread_mutex_unlock(&fs->stats_lock);
}

static void buf_free(struct fs *fs, struct ctl_buf *b)
{
	pthread_mutex_lock(&fs->stats_lock);
	if (b->prev)
		b->prev->next = b->next;
	else
		fs->ctl_bufs = b->next;
	if (b->next)
		b->next->prev = b->prev;
	pthread_mutex_unlock(&fs->stats_lock);
	free(b->data);
	free(b);
}

void ctl_release_all(struct fs *fs)
{
	while (fs->ctl_bufs)
		buf_free(fs, fs->ctl_bufs);
}

static void ctl_stat(struct fs *fs, fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = fs->owner_uid;
	st->st_gid = fs->owner_gid;
	if (ino == FS_CTL_DIR) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
	}
}

void ctl_dir_entry(struct fs *fs, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = FS_CTL_DIR;
	e->generation = 1;
	e->attr_timeout = fs->timeout;
	e->entry_timeout = fs->timeout;
	ctl_stat(fs, FS_CTL_DIR, &e->attr);
}

int ctl_getattr(struct fs *fs, fuse_ino_t ino, struct stat *st)
{
	if (ino != FS_CTL_DIR && ino != FS_CTL_STATS)
		return -ENOENT;
	ctl_stat(fs, ino, st);
	return 0;
}

int ctl_lookup(struct fs *fs, fuse_ino_t parent, const char *name,
	       struct fuse_entry_param *e)
{
	if (parent != FS_CTL_DIR || strcmp(name, "stats") != 0)
		return -ENOENT;
	memset(e, 0, sizeof(*e));
	e->ino = FS_CTL_STATS;
	e->generation = 1;
	/* Contents change all the time: no attribute caching. */
	ctl_stat(fs, FS_CTL_STATS, &e->attr);
	return 0;
}

void ctl_readdir(struct fs *fs, fuse_req_t req, fuse_ino_t ino, size_t size,
		 off_t off, int plus)
{
	static const struct {
		const char *name;
		fuse_ino_t ino;
	} ents[] = {{".", FS_CTL_DIR},
		    {"..", FUSE_ROOT_ID},
		    {"stats", FS_CTL_STATS}};
	char buf[1024];
	size_t used = 0;

	if (ino != FS_CTL_DIR) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	for (size_t i = (size_t)off; i < ARRAY_SIZE(ents); i++) {
		struct fuse_entry_param e;
		size_t len;

		memset(&e, 0, sizeof(e));
		if (ents[i].ino == FS_CTL_STATS) {
			ctl_lookup(fs, FS_CTL_DIR, "stats", &e);
		} else {
			e.attr.st_ino = ents[i].ino;
			e.attr.st_mode = S_IFDIR;
		}
		if (plus)
			len = fuse_add_direntry_plus(
				req, buf + used, MIN(size, sizeof(buf)) - used,
				ents[i].name, &e, (off_t)i + 1);
		else
			len = fuse_add_direntry(
				req, buf + used, MIN(size, sizeof(buf)) - used,
				ents[i].name, &e.attr, (off_t)i + 1);
		if (used + len > MIN(size, sizeof(buf)))
			break;
		used += len;
	}
	fuse_reply_buf(req, buf, used);
}

static char *stats_json(struct fs *fs)
{
	static const char *const names[FS_NSTATES] = {
		"new", "dirty", "archived", "released", "lost"};
	struct hydrate_stats hs;
	json_t *root, *states;
	char *out;

	hydrate_flush(fs->hy);
	hydrate_get_stats(fs->hy, &hs);
	states = json_object();
	root = json_object();
	if (!root || !states) {
		json_decref(root);
		json_decref(states);
		return NULL;
	}
	pthread_mutex_lock(&fs->stats_lock);
	for (int i = 0; i < FS_NSTATES; i++)
		json_object_set_new(states, names[i],
				    json_integer((json_int_t)fs->nstate[i]));
	json_object_set_new(root, "cached_bytes",
			    json_integer((json_int_t)hydrate_used(fs->hy)));
	json_object_set_new(root, "inodes",
			    json_integer((json_int_t)fs->ninodes));
	pthread_mutex_unlock(&fs->stats_lock);
	json_object_set_new(root, "file_system_id", json_string(fs->fsid));
	json_object_set_new(root, "repository", json_string(fs->repo));
	json_object_set_new(root, "cache_capacity_bytes",
			    json_integer((json_int_t)fs->capacity));
	json_object_set_new(root, "chunk_size",
			    json_integer((json_int_t)fs->csize));
	json_object_set_new(root, "hits", json_integer((json_int_t)hs.hits));
	json_object_set_new(root, "misses",
			    json_integer((json_int_t)hs.misses));
	json_object_set_new(root, "bytes_fetched",
			    json_integer((json_int_t)hs.bytes_fetched));
	json_object_set_new(root, "fetch_errors",
			    json_integer((json_int_t)hs.fetch_errors));
	json_object_set_new(root, "states", states);
	out = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(root);
	return out;
}

void ctl_open(struct fs *fs, fuse_req_t req, fuse_ino_t ino,
	      struct fuse_file_info *fi)
{
	struct ctl_buf *b;

	if (ino == FS_CTL_DIR) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (ino != FS_CTL_STATS) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EACCES);
		return;
	}
	b = calloc(1, sizeof(*b));
	if (!b || !(b->data = stats_json(fs))) {
		free(b);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	b->len = strlen(b->data);
	/* json_dumps leaves room for exactly the NUL: swap it for a newline
	 * so `cat` output ends cleanly. */
	b->data[b->len++] = '\n';
	buf_link(fs, b);
	fi->fh = (uintptr_t)b;
	fi->direct_io = 1;
	fi->nonseekable = 0;
	fuse_reply_open(req, fi);
}

void ctl_read(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct ctl_buf *b = (struct ctl_buf *)(uintptr_t)fi->fh;

	size_t n;
	char *copy;

	if (!b || (size_t)off >= b->len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	/* Reply from a private copy: once the reply is in, a RELEASE on
	 * another thread may free b while writev() is still returning. */
	n = MIN(size, b->len - (size_t)off);
	copy = malloc(n);
	if (!copy) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	memcpy(copy, b->data + off, n);
	fuse_reply_buf(req, copy, n);
	free(copy);
}

void ctl_release(fuse_req_t req, struct fuse_file_info *fi)
{
	struct ctl_buf *b = (struct ctl_buf *)(uintptr_t)fi->fh;

	if (b)
		buf_free(fuse_req_userdata(req), b);
	fuse_reply_err(req, 0);
}

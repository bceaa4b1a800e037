// SPDX-License-Identifier: MIT
/*
 * The .tidefs control tree at the mount root: virtual inodes above
 * FS_CTL_BASE, never stored in LMDB, never exported.
 *
 *   .tidefs/stats         JSON snapshot of the cache, taken at open
 *   .tidefs/tasks/NAME    write a CreateDataRepositoryTask request to create
 *                         a task with ClientRequestToken NAME; read the live
 *                         DataRepositoryTask JSON (or the FSx error JSON of
 *                         a rejected request)
 *   .tidefs/cancel        write a TaskId to cancel that task
 *
 * A write is buffered per handle and submitted at flush (close), whose
 * result close(2) returns: EINVAL for a rejected request. Permissions are
 * the kernel's (default_permissions): the tree belongs to the mount's owner,
 * so only the owner and root may create or cancel.
 *
 * Task files get inode numbers from a registry of names (FS_CTL_TASK0 +
 * index), kept for the life of the mount.
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs_i.h"
#include "tasks/tasks.h"

#define FS_CTL_TASKS  (FS_CTL_BASE + 3)
#define FS_CTL_CANCEL (FS_CTL_BASE + 4)
#define FS_CTL_TASK0  (FS_CTL_BASE + 1024)
#define CTL_MAX_WRITE (1u << 20)

enum ctl_kind { CTL_READ, CTL_TASK_WRITE, CTL_CANCEL_WRITE };

struct ctl_buf {
	enum ctl_kind kind;
	char *data;
	size_t len, cap;
	size_t name_idx; /* task files */
	bool submitted;	 /* later writes (e.g. a newline) are ignored */
	struct ctl_buf *prev, *next; /* protected by fs->stats_lock */
};

struct ctl_name {
	char *name;
	char *error_json; /* the FSx error of the last rejected request */
};

/* ---- registry of task names (protected by fs->stats_lock) ---- */

static int name_valid(const char *name)
{
	size_t l = strlen(name);

	if (l == 0 || l > 63)
		return 0;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' ||
		      *p == '-'))
			return 0;
	return strcmp(name, ".") && strcmp(name, "..");
}

/* Index of name, registering it when add; -ENOENT / -ENOMEM. */
static long name_index(struct fs *fs, const char *name, bool add)
{
	struct ctl_name *n;

	for (size_t i = 0; i < fs->nctl_names; i++)
		if (!strcmp(fs->ctl_names[i].name, name))
			return (long)i;
	if (!add)
		return -ENOENT;
	if (fs->nctl_names == fs->ctl_names_cap) {
		n = array_grow(fs->ctl_names, &fs->ctl_names_cap, sizeof(*n),
			       64);
		if (!n)
			return -ENOMEM;
		fs->ctl_names = n;
	}
	n = &fs->ctl_names[fs->nctl_names];
	n->name = strdup(name);
	n->error_json = NULL;
	if (!n->name)
		return -ENOMEM;
	return (long)fs->nctl_names++;
}

/* Is a task (or a rejected request) known under this name? */
static bool name_live(struct fs *fs, size_t idx)
{
	char *json = NULL;
	bool live;

	if (fs->ctl_names[idx].error_json)
		return true;
	live = task_engine_get_by_name(fs->engine, fs->ctl_names[idx].name,
				       &json) == 0;
	free(json);
	return live;
}

/* ---- handles ---- */

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
	for (size_t i = 0; i < fs->nctl_names; i++) {
		free(fs->ctl_names[i].name);
		free(fs->ctl_names[i].error_json);
	}
	free(fs->ctl_names);
	fs->ctl_names = NULL;
	free(fs->cancel_result);
	fs->cancel_result = NULL;
	fs->nctl_names = fs->ctl_names_cap = 0;
}

/* ---- attributes and names ---- */

static void ctl_stat(struct fs *fs, fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = fs->owner_uid;
	st->st_gid = fs->owner_gid;
	st->st_atim.tv_sec = st->st_mtim.tv_sec = st->st_ctim.tv_sec =
		fs->mount_time;
	if (ino == FS_CTL_DIR || ino == FS_CTL_TASKS) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else if (ino == FS_CTL_STATS) {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
	} else {
		st->st_mode = S_IFREG | 0644; /* writable by the owner */
		st->st_nlink = 1;
	}
}

static void fill(struct fs *fs, fuse_ino_t ino, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = ino;
	e->generation = 1;
	/* Task files come and go: only the fixed entries are cached. */
	if (ino < FS_CTL_TASK0)
		e->attr_timeout = e->entry_timeout = fs->timeout;
	ctl_stat(fs, ino, &e->attr);
}

void ctl_dir_entry(struct fs *fs, struct fuse_entry_param *e)
{
	fill(fs, FS_CTL_DIR, e);
}

static int valid_ino(struct fs *fs, fuse_ino_t ino)
{
	bool ok = true;

	if (ino >= FS_CTL_TASK0) {
		pthread_mutex_lock(&fs->stats_lock);
		ok = ino - FS_CTL_TASK0 < fs->nctl_names;
		pthread_mutex_unlock(&fs->stats_lock);
	} else {
		ok = ino == FS_CTL_DIR || ino == FS_CTL_STATS ||
		     ino == FS_CTL_TASKS || ino == FS_CTL_CANCEL;
	}
	return ok ? 0 : -ENOENT;
}

int ctl_getattr(struct fs *fs, fuse_ino_t ino, struct stat *st)
{
	int ret = valid_ino(fs, ino);

	if (ret == 0)
		ctl_stat(fs, ino, st);
	return ret;
}

int ctl_lookup(struct fs *fs, fuse_ino_t parent, const char *name,
	       struct fuse_entry_param *e)
{
	long idx;
	bool live;

	if (parent == FS_CTL_DIR) {
		if (!strcmp(name, "stats"))
			fill(fs, FS_CTL_STATS, e);
		else if (!strcmp(name, "tasks"))
			fill(fs, FS_CTL_TASKS, e);
		else if (!strcmp(name, "cancel"))
			fill(fs, FS_CTL_CANCEL, e);
		else
			return -ENOENT;
		return 0;
	}
	if (parent != FS_CTL_TASKS)
		return -ENOENT;
	if (!name_valid(name))
		return -ENOENT;
	pthread_mutex_lock(&fs->stats_lock);
	idx = name_index(fs, name, false);
	live = idx >= 0 && name_live(fs, (size_t)idx);
	if (!live) {
		/* A task created through another interface has a name too. */
		char *json = NULL;
		if (task_engine_get_by_name(fs->engine, name, &json) == 0) {
			idx = name_index(fs, name, true);
			live = idx >= 0;
		}
		free(json);
	}
	pthread_mutex_unlock(&fs->stats_lock);
	if (!live)
		return -ENOENT;
	fill(fs, FS_CTL_TASK0 + (fuse_ino_t)idx, e);
	return 0;
}

int ctl_create(struct fs *fs, fuse_ino_t parent, const char *name,
	       struct fuse_file_info *fi, struct fuse_entry_param *e)
{
	struct ctl_buf *b;
	long idx;

	if (parent != FS_CTL_TASKS)
		return parent == FS_CTL_DIR ? -EPERM : -ENOENT;
	if (!name_valid(name))
		return strlen(name) > 255 ? -ENAMETOOLONG : -EINVAL;
	if ((fi->flags & O_ACCMODE) == O_RDONLY)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	pthread_mutex_lock(&fs->stats_lock);
	idx = name_index(fs, name, true);
	pthread_mutex_unlock(&fs->stats_lock);
	if (idx < 0) {
		free(b);
		return (int)idx;
	}
	b->kind = CTL_TASK_WRITE;
	b->name_idx = (size_t)idx;
	buf_link(fs, b);
	fi->fh = (uintptr_t)b;
	fi->direct_io = 1;
	fill(fs, FS_CTL_TASK0 + (fuse_ino_t)idx, e);
	return 0;
}

int ctl_setattr(struct fs *fs, fuse_ino_t ino, int to_set, struct stat *st)
{
	int ret = valid_ino(fs, ino);

	if (ret < 0)
		return ret;
	/* O_TRUNC on a task or cancel file: the write replaces anyway. */
	if ((to_set & ~FUSE_SET_ATTR_SIZE) != 0 ||
	    (ino != FS_CTL_CANCEL && ino < FS_CTL_TASK0))
		return -EPERM;
	ctl_stat(fs, ino, st);
	return 0;
}

void ctl_readdir(struct fs *fs, fuse_req_t req, fuse_ino_t ino, size_t size,
		 off_t off, int plus)
{
	static const char *const top[] = {"stats", "tasks", "cancel"};
	static const fuse_ino_t top_ino[] = {FS_CTL_STATS, FS_CTL_TASKS,
					     FS_CTL_CANCEL};
	char **names = NULL, *buf;
	size_t n = 0, used = 0;

	if (ino != FS_CTL_DIR && ino != FS_CTL_TASKS) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (ino == FS_CTL_TASKS &&
	    task_engine_list_names(fs->engine, &names, &n) < 0) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (ino == FS_CTL_DIR)
		n = ARRAY_SIZE(top);
	buf = malloc(size);
	for (size_t i = (size_t)off; buf && i < n + 2; i++) {
		struct fuse_entry_param e;
		const char *name;
		size_t len;

		memset(&e, 0, sizeof(e));
		if (i < 2) {
			name = i == 0 ? "." : "..";
			e.attr.st_ino = i == 0 ? ino : FS_CTL_DIR;
			e.attr.st_mode = S_IFDIR;
		} else if (ino == FS_CTL_DIR) {
			name = top[i - 2];
			fill(fs, top_ino[i - 2], &e);
		} else {
			name = names[i - 2];
			if (ctl_lookup(fs, FS_CTL_TASKS, name, &e) < 0)
				continue;
		}
		if (plus)
			len = fuse_add_direntry_plus(req, buf + used,
						     size - used, name, &e,
						     (off_t)i + 1);
		else
			len = fuse_add_direntry(req, buf + used, size - used,
						name, &e.attr, (off_t)i + 1);
		if (used + len > size)
			break;
		used += len;
	}
	if (buf)
		fuse_reply_buf(req, buf, used);
	else
		fuse_reply_err(req, ENOMEM);
	free(buf);
	for (size_t i = 0; names && i < n; i++)
		free(names[i]);
	free(names);
}

/* ---- contents ---- */

struct unexported {
	struct meta_txn *txn;
	uint64_t files, bytes;
};

static int count_dirty(void *arg, uint64_t ino)
{
	struct unexported *u = arg;
	struct meta_inode mi = {0};

	if (ino == META_ROOT_INO)
		return 0; /* the root has no object to export */
	if (meta_inode_get(u->txn, ino, &mi) == 0) {
		u->files++;
		if (S_ISREG(mi.mode))
			u->bytes += mi.size;
		meta_inode_release(&mi);
	}
	return 0;
}

static char *stats_json(struct fs *fs)
{
	static const char *const names[FS_NSTATES] = {
		"new", "dirty", "archived", "released", "lost"};
	struct unexported u = {0};
	struct hydrate_stats hs;
	struct meta_space sp;
	json_t *root, *states;
	char *out;

	hydrate_flush(fs->hy);
	hydrate_get_stats(fs->hy, &hs);
	if (meta_txn_begin(fs->db, false, &u.txn) == 0) {
		meta_dirty_foreach(u.txn, count_dirty, &u);
		meta_txn_abort(u.txn);
	}
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
	json_object_set_new(root, "inodes",
			    json_integer((json_int_t)fs->ninodes));
	pthread_mutex_unlock(&fs->stats_lock);
	json_object_set_new(root, "cached_bytes",
			    json_integer((json_int_t)hydrate_used(fs->hy)));
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
	json_object_set_new(root, "passthrough",
			    json_boolean(atomic_load(&fs->pt_asked)));
	json_object_set_new(root, "passthrough_opens",
			    json_integer((json_int_t)hs.passthrough_opens));
	json_object_set_new(root, "open_handles",
			    json_integer((json_int_t)hs.open_handles));
	json_object_set_new(root, "unexported_files",
			    json_integer((json_int_t)u.files));
	json_object_set_new(root, "unexported_bytes",
			    json_integer((json_int_t)u.bytes));
	json_object_set_new(root, "safe_to_unmount",
			    json_boolean(u.files == 0));
	/* Objects whose HeadObject metadata is still to come (lazy first
	 * mount); 0 once every inode is complete. */
	json_object_set_new(
		root, "metadata_pending",
		json_integer((json_int_t)task_filler_pending(fs->filler)));
	/* The metadata store's file: what its pages use and, with
	 * MDB_WRITEMAP commits, what is kept allocated for them. */
	meta_space_info(fs->db, &sp);
	json_object_set_new(root, "metadata_bytes",
			    json_integer((json_int_t)sp.used_bytes));
	json_object_set_new(root, "metadata_allocated_bytes",
			    json_integer((json_int_t)sp.allocated_bytes));
	/* Sync points made (fsync, fsyncdir, unmount, the periodic one). */
	json_object_set_new(root, "metadata_syncs",
			    json_integer((json_int_t)meta_sync_count(fs->db)));
	json_object_set_new(root, "states", states);
	out = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(root);
	return out;
}

/* The text a task file reads as. */
static char *task_text(struct fs *fs, size_t idx)
{
	char *json = NULL, *name;

	pthread_mutex_lock(&fs->stats_lock);
	name = idx < fs->nctl_names ? strdup(fs->ctl_names[idx].name) : NULL;
	/* The last request written here was rejected: show why, even when
	 * an earlier request made a task under this name. */
	if (name && fs->ctl_names[idx].error_json)
		json = strdup(fs->ctl_names[idx].error_json);
	pthread_mutex_unlock(&fs->stats_lock);
	if (name && !json)
		task_engine_get_by_name(fs->engine, name, &json);
	free(name);
	return json;
}

void ctl_open(struct fs *fs, fuse_req_t req, fuse_ino_t ino,
	      struct fuse_file_info *fi)
{
	int acc = fi->flags & O_ACCMODE;
	struct ctl_buf *b;

	if (ino == FS_CTL_DIR || ino == FS_CTL_TASKS) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (valid_ino(fs, ino) < 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	b = calloc(1, sizeof(*b));
	if (!b) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (acc != O_RDONLY) {
		if (ino == FS_CTL_STATS) {
			free(b);
			fuse_reply_err(req, EACCES);
			return;
		}
		b->kind = ino == FS_CTL_CANCEL ? CTL_CANCEL_WRITE
					       : CTL_TASK_WRITE;
		b->name_idx = (size_t)(ino - FS_CTL_TASK0);
	} else {
		b->kind = CTL_READ;
		if (ino == FS_CTL_STATS)
			b->data = stats_json(fs);
		else if (ino >= FS_CTL_TASK0)
			b->data = task_text(fs, (size_t)(ino - FS_CTL_TASK0));
		else if (ino == FS_CTL_CANCEL) {
			pthread_mutex_lock(&fs->stats_lock);
			b->data = strdup(fs->cancel_result ? fs->cancel_result
							   : "");
			pthread_mutex_unlock(&fs->stats_lock);
		} else
			b->data = strdup("");
		if (!b->data) {
			free(b);
			fuse_reply_err(req,
				       ino >= FS_CTL_TASK0 ? ENOENT : ENOMEM);
			return;
		}
		b->len = strlen(b->data);
		/* json_dumps leaves room for exactly the NUL: swap it for a
		 * newline so `cat` output ends cleanly. */
		if (b->len)
			b->data[b->len++] = '\n';
	}
	buf_link(fs, b);
	fi->fh = (uintptr_t)b;
	fi->direct_io = 1;
	fuse_reply_open(req, fi);
}

void ctl_read(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct ctl_buf *b = (struct ctl_buf *)(uintptr_t)fi->fh;
	size_t n;
	char *copy;

	if (!b || b->kind != CTL_READ || (size_t)off >= b->len) {
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

static int submit_task(struct fs *fs, struct ctl_buf *b);
static int submit_cancel(struct fs *fs, struct ctl_buf *b);

/* Does the buffer hold a whole JSON text yet (or something that can never
 * become one)? Then it can be submitted now, so the write itself fails
 * for a rejected request — shells ignore errors from close(). */
static bool complete_json(const struct ctl_buf *b)
{
	json_error_t err;
	json_t *j = json_loadb(b->data, b->len, 0, &err);

	if (j) {
		json_decref(j);
		return true;
	}
	return json_error_code(&err) != json_error_premature_end_of_input;
}

void ctl_write(fuse_req_t req, const char *data, size_t size, off_t off,
	       struct fuse_file_info *fi)
{
	struct ctl_buf *b = (struct ctl_buf *)(uintptr_t)fi->fh;
	size_t end = (size_t)off + size;

	if (!b || b->kind == CTL_READ) {
		fuse_reply_err(req, EBADF);
		return;
	}
	if (off < 0 || end > CTL_MAX_WRITE) {
		fuse_reply_err(req, EFBIG);
		return;
	}
	if (end > b->cap) {
		char *n = realloc(b->data, end + 1);
		if (!n) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		b->data = n;
		b->cap = end;
	}
	if (b->submitted) {
		/* After a whole request: only whitespace may follow. */
		for (size_t i = 0; i < size; i++)
			if (!strchr(" \t\r\n", data[i])) {
				fuse_reply_err(req, EINVAL);
				return;
			}
		fuse_reply_write(req, size);
		return;
	}
	if ((size_t)off > b->len)
		memset(b->data + b->len, ' ', (size_t)off - b->len);
	memcpy(b->data + off, data, size);
	b->len = MAX(b->len, end);
	if ((b->kind == CTL_TASK_WRITE && complete_json(b)) ||
	    (b->kind == CTL_CANCEL_WRITE && memchr(b->data, '\n', b->len))) {
		/* A whole request (or a TaskId line): submit now, so the
		 * write reports a refusal — shells ignore close() errors. */
		int ret = b->kind == CTL_TASK_WRITE
				  ? submit_task(fuse_req_userdata(req), b)
				  : submit_cancel(fuse_req_userdata(req), b);
		b->len = 0; /* submitted: nothing left for flush */
		b->submitted = true;
		if (ret < 0) {
			fuse_reply_err(req, -ret);
			return;
		}
	}
	fuse_reply_write(req, size);
}

static int submit_task(struct fs *fs, struct ctl_buf *b)
{
	char *resp = NULL, *name;
	int ret;

	pthread_mutex_lock(&fs->stats_lock);
	name = b->name_idx < fs->nctl_names
		       ? strdup(fs->ctl_names[b->name_idx].name)
		       : NULL;
	pthread_mutex_unlock(&fs->stats_lock);
	if (!name)
		return -ENOMEM;
	ret = task_engine_create(fs->engine, b->data ? b->data : "", b->len,
				 TASK_SRC_CTL, name, &resp);
	pthread_mutex_lock(&fs->stats_lock);
	free(fs->ctl_names[b->name_idx].error_json);
	fs->ctl_names[b->name_idx].error_json = ret < 0 ? resp : NULL;
	pthread_mutex_unlock(&fs->stats_lock);
	if (ret < 0) {
		log_info("control file tasks/%s: request rejected: %s", name,
			 resp ? resp : "out of memory");
	} else {
		free(resp);
	}
	free(name);
	return ret == -ENOMEM ? -ENOMEM : ret < 0 ? -EINVAL : 0;
}

static int submit_cancel(struct fs *fs, struct ctl_buf *b)
{
	char id[64], body[128], *resp = NULL;
	size_t l = 0;
	int ret;

	for (size_t i = 0; i < b->len && l < sizeof(id) - 1; i++)
		if (b->data[i] != '\n' && b->data[i] != ' ' &&
		    b->data[i] != '\r' && b->data[i] != '\t')
			id[l++] = b->data[i];
	id[l] = '\0';
	snprintf(body, sizeof(body), "{\"TaskId\": \"%s\"}", id);
	ret = task_engine_cancel(fs->engine, body, strlen(body), &resp);
	if (ret < 0)
		log_info("control file cancel %s: %s", id,
			 resp ? resp : "out of memory");
	/* Reading .tidefs/cancel shows the answer to the last cancel. */
	pthread_mutex_lock(&fs->stats_lock);
	free(fs->cancel_result);
	fs->cancel_result = resp;
	pthread_mutex_unlock(&fs->stats_lock);
	if (ret == TASK_ERR_NOT_FOUND)
		return -ENOENT;
	return ret == -ENOMEM ? -ENOMEM : ret < 0 ? -EINVAL : 0;
}

void ctl_flush(struct fs *fs, fuse_req_t req, struct fuse_file_info *fi)
{
	struct ctl_buf *b = (struct ctl_buf *)(uintptr_t)fi->fh;
	int ret = 0;

	if (b && b->kind != CTL_READ && b->len > 0) {
		ret = b->kind == CTL_TASK_WRITE ? submit_task(fs, b)
						: submit_cancel(fs, b);
		b->len = 0; /* submitted once, even if dup'ed fds flush again */
	}
	fuse_reply_err(req, -ret);
}

void ctl_release(fuse_req_t req, struct fuse_file_info *fi)
{
	struct ctl_buf *b = (struct ctl_buf *)(uintptr_t)fi->fh;

	if (b)
		buf_free(fuse_req_userdata(req), b);
	fuse_reply_err(req, 0);
}
